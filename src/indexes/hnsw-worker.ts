/**
 * @module indexes/hnsw-worker — the HNSW index on a thread of its own (`vector_index.hnsw.thread`).
 *
 * hnswlib's `addPoint` costs about a millisecond a vector at 100k and more at a million; on the
 * main thread it is most of an ingest's CPU and holds every query behind it. Here the graph lives
 * in a worker (hnsw-thread.ts) and this side keeps only what answers at once: the live ids, as a
 * bitmap (a bit a chunk id, not an object), and the snapshot sequence. Changes are sent in
 * batches, in order; `flush` resolves when the thread has applied every change sent before it,
 * `search` is answered by the thread between two slices of changes: it sees every change flushed
 * before it (and perhaps later ones), and never an id removed before it.
 */
import { Worker } from 'node:worker_threads';
import { ChunkIdSet } from '../core/catalog.js';
import { describeError, LivedexError, type ErrorCode } from '../core/errors.js';
import type { VectorIndexContext } from '../core/registry.js';
import { threadEntry } from '../core/threads.js';
import type { Logger, VectorFilter, VectorHit, VectorIndex } from '../core/types.js';
import type { HnswOptions } from './hnsw-options.js';

/** What the thread is started with. */
export interface ThreadData {
  options: HnswOptions;
  dimensions: number;
  modelKey: string;
  dir: string;
  dataDir: string;
}

/** A filter on the wire: a bitmap of chunk ids, accepted (`exclude` false) or refused. */
export interface WireFilter {
  bits: Uint32Array;
  size: number;
  exclude: boolean;
}

export interface WireError {
  code: ErrorCode;
  message: string;
}

/** Main thread → worker. `kinds[i]` is 1 for an add (its vector next in `vecs`), 0 for a removal. */
export type ToThread =
  | { t: 'ops'; kinds: Uint8Array; ids: Uint32Array; vecs: Float32Array }
  | { t: 'search'; n: number; query: Float32Array; k: number; filter?: WireFilter }
  | { t: 'flush'; n: number }
  | { t: 'save'; n: number; seq: number }
  | { t: 'close'; n: number };

/** Worker → main thread. */
export type FromThread =
  | { t: 'log'; level: keyof Logger; msg: string; fields?: Record<string, unknown> }
  | { t: 'opened'; seq: number; ids: Uint32Array }
  | { t: 'failed'; error: WireError }
  | { t: 'done'; n: number; hits?: { ids: Uint32Array; distances: Float64Array }; error?: WireError };

/** Changes buffered before they are sent in one message. */
const BATCH = 1024;
const MAX_ID = 0xffff_ffff;

const THREAD = threadEntry(import.meta.url, 'hnsw-thread');

/** The live ids: a growable bitmap with a count. */
class IdBits {
  bits = new Uint32Array(1024);
  size = 0;

  has(id: number): boolean {
    const w = id >>> 5;
    return w < this.bits.length && (this.bits[w]! & (1 << (id & 31))) !== 0;
  }

  set(id: number): boolean {
    const w = id >>> 5;
    if (w >= this.bits.length) {
      const next = new Uint32Array(Math.max(w + 1, Math.ceil(this.bits.length * 1.5)));
      next.set(this.bits);
      this.bits = next;
    }
    const bit = 1 << (id & 31);
    if ((this.bits[w]! & bit) !== 0) return false;
    this.bits[w]! |= bit;
    this.size++;
    return true;
  }

  unset(id: number): boolean {
    if (!this.has(id)) return false;
    this.bits[id >>> 5]! &= ~(1 << (id & 31));
    this.size--;
    return true;
  }

  /** The ids as a set that reads these bits (valid until the next change). */
  view(): ChunkIdSet {
    return new ChunkIdSet(this.bits, this.size);
  }
}

/** A bitmap of `ids` for the wire: a catalog set's own words, else built from the ids. */
function wireBits(ids: ReadonlySet<number>): { bits: Uint32Array; size: number } {
  if (ids instanceof ChunkIdSet) return { bits: ids.bits, size: ids.size };
  const out = new IdBits();
  for (const id of ids) if (Number.isInteger(id) && id >= 0 && id <= MAX_ID) out.set(id);
  return { bits: out.bits, size: out.size };
}

interface Call {
  resolve(m: Extract<FromThread, { t: 'done' }>): void;
  reject(err: Error): void;
}

/**
 * An HNSW vector index whose graph is built and searched on its own thread; the same index as
 * `HnswIndex` (the same snapshot files), with `search` answering a Promise.
 *
 * @example
 * const index = await HnswWorkerIndex.open({ m: 16 }, ctx);
 * index.add(42, vector);
 * await index.flush(); // the thread has it
 * await index.search(query, 5); // [{ id: 42, distance: 0 }, …]
 * await index.close();
 */
export class HnswWorkerIndex implements VectorIndex {
  readonly dimensions: number;
  readonly #worker: Worker;
  readonly #log: Logger;
  readonly #live = new IdBits();
  #snapshotSeq = 0;
  #calls = new Map<number, Call>();
  #next = 1;
  #ended: Error | null = null;
  #closing: Promise<void> | null = null;
  // Changes not sent yet.
  #kinds: number[] = [];
  #ids: number[] = [];
  #vecs: Float32Array[] = [];
  #sendScheduled = false;

  private constructor(worker: Worker, ctx: VectorIndexContext) {
    this.#worker = worker;
    this.#log = ctx.logger;
    this.dimensions = ctx.dimensions;
  }

  /** Starts the thread, which opens the snapshot in `ctx.dir` as `HnswIndex.open` does. */
  static async open(options: HnswOptions, ctx: VectorIndexContext): Promise<HnswWorkerIndex> {
    if (!Number.isInteger(ctx.dimensions) || ctx.dimensions <= 0) {
      throw new LivedexError('config_error', `vector index: dimensions must be a positive integer, got ${ctx.dimensions}`);
    }
    const data: ThreadData = { options, dimensions: ctx.dimensions, modelKey: ctx.modelKey, dir: ctx.dir, dataDir: ctx.dataDir };
    const worker = new Worker(THREAD.entry, { workerData: { ...data, ...THREAD.workerData } });
    const index = new HnswWorkerIndex(worker, ctx);
    const opened = new Promise<Extract<FromThread, { t: 'opened' }>>((resolve, reject) => {
      worker.on('message', (m: FromThread) => {
        if (m.t === 'opened') resolve(m);
        else if (m.t === 'failed') reject(new LivedexError(m.error.code, m.error.message));
        else index.#receive(m);
      });
      worker.on('error', (err) => {
        reject(err);
        index.#end(err);
      });
      worker.on('exit', (code) => {
        const err = new LivedexError('internal', `vector index: its thread ended (exit code ${code})`);
        reject(err);
        index.#end(err);
      });
    });
    try {
      const m = await opened;
      index.#snapshotSeq = m.seq;
      for (const id of m.ids) index.#live.set(id);
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    worker.unref();
    return index;
  }

  get snapshotSeq(): number {
    return this.#snapshotSeq;
  }

  get size(): number {
    return this.#live.size;
  }

  has(id: number): boolean {
    return this.#live.has(id);
  }

  ids(): number[] {
    return [...this.#live.view()];
  }

  add(id: number, vector: Float32Array): void {
    this.#checkUsable();
    if (!Number.isInteger(id) || id < 0 || id > MAX_ID) throw new LivedexError('internal', `vector index: id ${id} is not an integer in 0..${MAX_ID}`);
    if (vector.length !== this.dimensions) throw new LivedexError('internal', `vector index: vector has ${vector.length} dimensions, the index ${this.dimensions}`);
    this.#live.set(id);
    this.#queue(1, id, vector);
  }

  remove(id: number): void {
    this.#checkUsable();
    if (!this.#live.unset(id)) return;
    this.#queue(0, id, null);
  }

  search(query: Float32Array, k: number, filter?: VectorFilter): Promise<VectorHit[]> {
    if (query.length !== this.dimensions) {
      return Promise.reject(new LivedexError('internal', `vector index: vector has ${query.length} dimensions, the index ${this.dimensions}`));
    }
    const want = Math.min(Math.floor(k), this.#live.size);
    if (!(want > 0)) return Promise.resolve([]);
    let wire: WireFilter | undefined;
    if (filter === undefined) wire = undefined;
    else if (typeof filter === 'function') {
      // A predicate cannot cross threads: it is run here over the live ids (linear in them).
      const accepted = new IdBits();
      for (const id of this.#live.view()) if (filter(id)) accepted.set(id);
      wire = { bits: accepted.bits, size: accepted.size, exclude: false };
    } else if ('exclude' in filter) wire = { ...wireBits(filter.exclude), exclude: true };
    else wire = { ...wireBits(filter), exclude: false };
    return this.#call((n) => ({ t: 'search', n, query, k: want, ...(wire ? { filter: wire } : {}) })).then((m) => {
      const hits: VectorHit[] = [];
      const { ids, distances } = m.hits!;
      for (let i = 0; i < ids.length; i++) hits.push({ id: ids[i]!, distance: distances[i]! });
      return hits;
    });
  }

  /** Resolves when the thread has applied every change made before this call. */
  async flush(): Promise<void> {
    await this.#call((n) => ({ t: 'flush', n }));
  }

  /** Writes a crash-safe snapshot recording `seq`, holding every change made before this call. */
  async save(seq: number): Promise<void> {
    if (!Number.isInteger(seq) || seq < 0) throw new LivedexError('internal', `vector index: bad snapshot sequence ${seq}`);
    await this.#call((n) => ({ t: 'save', n, seq }));
    this.#snapshotSeq = Math.max(this.#snapshotSeq, seq);
  }

  /** Applies what was sent, waits for a snapshot being written, and ends the thread. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.#ended) await this.#call((n) => ({ t: 'close', n })).catch(() => undefined);
      this.#ended ??= new LivedexError('internal', 'vector index: closed');
      await this.#worker.terminate();
    })();
    return this.#closing;
  }

  #checkUsable(): void {
    if (this.#ended) throw this.#ended;
  }

  #queue(kind: number, id: number, vector: Float32Array | null): void {
    this.#kinds.push(kind);
    this.#ids.push(id);
    if (vector) this.#vecs.push(vector.slice());
    if (this.#kinds.length >= BATCH) this.#send();
    else if (!this.#sendScheduled) {
      this.#sendScheduled = true;
      queueMicrotask(() => this.#send());
    }
  }

  /** Sends the buffered changes as one message (the vectors packed into one transferred buffer). */
  #send(): void {
    this.#sendScheduled = false;
    if (this.#kinds.length === 0 || this.#ended) return;
    const kinds = Uint8Array.from(this.#kinds);
    const ids = Uint32Array.from(this.#ids);
    const vecs = new Float32Array(this.#vecs.length * this.dimensions);
    this.#vecs.forEach((v, i) => { vecs.set(v, i * this.dimensions); });
    this.#kinds = [];
    this.#ids = [];
    this.#vecs = [];
    const m: ToThread = { t: 'ops', kinds, ids, vecs };
    this.#worker.postMessage(m, [kinds.buffer, ids.buffer, vecs.buffer]);
  }

  /** Sends a call after every buffered change; the thread is kept alive while calls are out. */
  #call(make: (n: number) => ToThread): Promise<Extract<FromThread, { t: 'done' }>> {
    if (this.#ended) return Promise.reject(this.#ended);
    this.#send();
    const n = this.#next++;
    if (this.#calls.size === 0) this.#worker.ref();
    const done = new Promise<Extract<FromThread, { t: 'done' }>>((resolve, reject) => this.#calls.set(n, { resolve, reject }));
    this.#worker.postMessage(make(n));
    return done.then((m) => {
      if (m.error) throw new LivedexError(m.error.code, m.error.message);
      return m;
    });
  }

  #receive(m: FromThread): void {
    if (m.t === 'log') {
      this.#log[m.level](m.msg, m.fields);
      return;
    }
    if (m.t !== 'done') return;
    const call = this.#calls.get(m.n);
    if (!call) return;
    this.#calls.delete(m.n);
    if (this.#calls.size === 0) this.#worker.unref();
    call.resolve(m);
  }

  #end(err: Error): void {
    if (!this.#ended) {
      this.#ended = err instanceof LivedexError ? err : new LivedexError('internal', `vector index: its thread failed: ${describeError(err)}`, { cause: err });
      if (!this.#closing) this.#log.error('vector index thread ended', { error: describeError(err) });
    }
    for (const call of this.#calls.values()) call.reject(this.#ended);
    this.#calls.clear();
  }
}
