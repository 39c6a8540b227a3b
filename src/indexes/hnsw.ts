/** @module indexes/hnsw — the vector index: hnswlib (cosine) with exact search for selective filters and crash-safe snapshots. */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
import { z } from 'zod';
import { LivedexError, describeError } from '../core/errors.js';
import { Slicer } from '../core/slices.js';
import { definePlugin, type VectorIndexContext } from '../core/registry.js';
import type { Logger, VectorFilter, VectorHit, VectorIndex } from '../core/types.js';
import { HnswWorkerIndex } from './hnsw-worker.js';
import { hnswOptionsSchema, type HnswOptions } from './hnsw-options.js';

export { hnswOptionsSchema, type HnswOptions } from './hnsw-options.js';

type Graph = InstanceType<typeof hnswlib.HierarchicalNSW>;

type ResolvedOptions = z.output<typeof hnswOptionsSchema>;

/** What `meta.json` records; written last, so its presence commits a snapshot. */
const snapshotMetaSchema = z.object({
  version: z.literal(1),
  modelKey: z.string(),
  dimensions: z.number().int().positive(),
  seq: z.number().int().min(0),
  count: z.number().int().min(0),
  options: z.object({ m: z.number(), ef_construction: z.number() }).passthrough(),
  files: z.object({
    index: z.string().regex(/^index-[\w-]+\.hnsw$/),
    ids: z.string().regex(/^ids-[\w-]+\.u32$/),
  }),
  bytes: z.object({ index: z.number().int().min(0), ids: z.number().int().min(0) }),
  sha1: z.object({ index: z.string(), ids: z.string() }),
});
type SnapshotMeta = z.output<typeof snapshotMetaSchema>;

const META = 'meta.json';
const SNAPSHOT_FILE = /^(?:index-[\w-]+\.hnsw|ids-[\w-]+\.u32|.+\.tmp)$/;
const MAX_LABEL = 0xffff_ffff;
/** Below this cosine distance two vectors are the same vector (float32 rounding of 1 − 1). */
const SAME = 1e-6;

/**
 * How many accepted ids are searched exactly rather than through the graph. `getPoint` costs
 * ~60–100 µs per 384-d vector, while a filtered graph search visits about ef·N/accepted nodes
 * at ~1.4 µs each (it walks past every rejected node); the two meet near 2·√N accepted ids.
 */
function exactLimit(live: number, k: number): number {
  return Math.max(k, 64, Math.ceil(2 * Math.sqrt(live)));
}

const snap = (d: number): number => (d < SAME ? 0 : d);

function normalized(vec: Float32Array | readonly number[]): number[] {
  let sum = 0;
  for (let i = 0; i < vec.length; i++) sum += (vec[i] as number) * (vec[i] as number);
  const norm = Math.sqrt(sum);
  const out = new Array<number>(vec.length);
  for (let i = 0; i < vec.length; i++) out[i] = norm > 0 ? (vec[i] as number) / norm : 0;
  return out;
}

function dot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

const byDistance = (a: VectorHit, b: VectorHit): number => a.distance - b.distance || a.id - b.id;

async function sha1Of(file: string): Promise<string> {
  const hash = createHash('sha1');
  // Streamed so that hashing a large snapshot never blocks the event loop for long.
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function writeDurably(file: string, data: Uint8Array | string): Promise<void> {
  const fh = await fsp.open(file, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Makes renames inside `dir` durable; not every platform can open a directory, which is fine. */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await fsp.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}

/**
 * An HNSW vector index over chunk ids. Live ids are tracked here (hnswlib keeps deleted labels
 * around); deleted slots are reused by new ids, so churn does not grow the index.
 *
 * @example
 * const index = await HnswIndex.open({ m: 16 }, { dimensions: 384, modelKey, dir, dataDir, logger });
 * index.add(42, vector);
 * index.search(query, 5, new Set([42, 43])); // [{ id: 42, distance: 0 }, …]
 * await index.save(seq);
 */
export class HnswIndex implements VectorIndex {
  readonly dimensions: number;
  #snapshotSeq = 0;
  readonly #opts: ResolvedOptions;
  readonly #ctx: VectorIndexContext;
  readonly #log: Logger;
  #graph: Graph;
  /** Labels live in the graph, as a list (for sampling) and a position map (for membership). */
  readonly #labels: number[] = [];
  readonly #slot = new Map<number, number>();
  /** While a snapshot is written from another thread the graph is read-only: changes wait here (null = removed). */
  #deferred: Map<number, number[] | null> | null = null;
  /** True while hnswlib reads the graph on another thread; after it, only ids still waiting wait. */
  #writing = false;
  #size = 0;
  #ef = -1;
  #saving: Promise<void> | null = null;

  private constructor(options: ResolvedOptions, ctx: VectorIndexContext, graph: Graph) {
    this.#opts = options;
    this.#ctx = ctx;
    this.#log = ctx.logger;
    this.dimensions = ctx.dimensions;
    this.#graph = graph;
  }

  /** Opens the snapshot in `ctx.dir` when it fits `ctx.modelKey`/`ctx.dimensions`, else an empty index. */
  static async open(options: HnswOptions, ctx: VectorIndexContext): Promise<HnswIndex> {
    const opts = hnswOptionsSchema.parse(options);
    if (!Number.isInteger(ctx.dimensions) || ctx.dimensions <= 0) {
      throw new LivedexError('config_error', `vector index: dimensions must be a positive integer, got ${ctx.dimensions}`);
    }
    const index = new HnswIndex(opts, ctx, HnswIndex.#emptyGraph(opts, ctx.dimensions));
    await index.#load();
    return index;
  }

  static #emptyGraph(opts: ResolvedOptions, dimensions: number): Graph {
    const graph = new hnswlib.HierarchicalNSW('cosine', dimensions);
    graph.initIndex({
      maxElements: opts.initial_capacity,
      m: opts.m,
      efConstruction: opts.ef_construction,
      allowReplaceDeleted: true,
    });
    return graph;
  }

  get snapshotSeq(): number {
    return this.#snapshotSeq;
  }

  get size(): number {
    return this.#size;
  }

  /** Slots allocated in the graph (grows by doubling). */
  get capacity(): number {
    return this.#graph.getMaxElements();
  }

  has(id: number): boolean {
    const pending = this.#deferred?.get(id);
    return pending !== undefined ? pending !== null : this.#slot.has(id);
  }

  ids(): number[] {
    if (!this.#deferred) return [...this.#labels];
    const out = this.#labels.filter((id) => !this.#deferred?.has(id));
    for (const [id, vec] of this.#deferred) if (vec) out.push(id);
    return out;
  }

  add(id: number, vector: Float32Array): void {
    this.#checkId(id);
    this.#checkVector(vector);
    const vec = normalized(vector);
    if (!this.has(id)) this.#size++;
    if (this.#mustWait(id)) this.#deferred!.set(id, vec);
    else this.#put(id, vec);
  }

  remove(id: number): void {
    if (!this.has(id)) return;
    this.#size--;
    if (this.#mustWait(id)) this.#deferred!.set(id, null);
    else this.#drop(id);
  }

  search(query: Float32Array, k: number, filter?: VectorFilter): VectorHit[] {
    this.#checkVector(query);
    const want = Math.min(Math.floor(k), this.#size);
    if (!(want > 0)) return [];
    const q = normalized(query);
    if (filter !== undefined && 'exclude' in filter) {
      const refused = filter.exclude;
      return this.search(query, k, refused.size === 0 ? undefined : (id) => !refused.has(id));
    }
    const accepts = filter === undefined ? null : typeof filter === 'function' ? filter : (id: number) => filter.has(id);
    const limit = exactLimit(this.#size, want);

    // Selective filters: count the accepted ids cheaply and, when few, search them exactly.
    let accepted: number[] | null = null;
    if (filter !== undefined && typeof filter !== 'function') {
      accepted = [];
      for (const id of filter) {
        if (this.has(id)) accepted.push(id);
        if (accepted.length > limit) {
          accepted = null; // many: the graph is faster, and at least `want` exist
          break;
        }
      }
    } else if (accepts && this.#estimateAccepted(accepts) <= 2 * limit) {
      accepted = this.ids().filter((id) => accepts(id));
    }
    if (accepted && accepted.length <= limit) return this.#exact(q, accepted, want);

    const hits = this.#graphSearch(q, want, accepts);
    if (hits.length >= want) return hits;
    // The graph came back short (a very selective predicate, or nodes cut off by deletions).
    accepted ??= accepts ? this.ids().filter((id) => accepts(id)) : this.ids();
    return accepted.length > hits.length ? this.#exact(q, accepted, want) : hits;
  }

  /** Writes the graph, the live ids and `meta.json` (last) under `ctx.dir`; never two at once. */
  save(seq: number): Promise<void> {
    if (!Number.isInteger(seq) || seq < 0) {
      return Promise.reject(new LivedexError('internal', `vector index: bad snapshot sequence ${seq}`));
    }
    // When idle, start at once: the snapshot then holds exactly the state at this call.
    const run = this.#saving ? this.#saving.then(() => this.#saveNow(seq)) : this.#saveNow(seq);
    const settled: Promise<void> = run.catch(() => undefined).finally(() => {
      if (this.#saving === settled) this.#saving = null;
    });
    this.#saving = settled;
    return run;
  }

  /** A change waits while the graph is being written, and after it while an older change of the same id waits. */
  #mustWait(id: number): boolean {
    return this.#deferred !== null && (this.#writing || this.#deferred.has(id));
  }

  // ───────────── graph operations (only when no snapshot is being written) ─────────────

  #put(id: number, vec: number[]): void {
    const graph = this.#graph;
    if (this.#slot.has(id)) {
      graph.addPoint(vec, id, false); // live: hnswlib updates the vector in place
      return;
    }
    let hasSlot = true;
    try {
      graph.unmarkDelete(id); // removed earlier and its slot not reused yet: revive it, then update
    } catch (err) {
      if (!describeError(err).includes('Label not found')) throw err;
      hasSlot = false;
    }
    if (hasSlot) {
      graph.addPoint(vec, id, false);
    } else {
      // New to hnswlib: take a deleted slot if there is one, else a fresh one (doubling when full).
      const vacant = graph.getCurrentCount() - this.#labels.length;
      if (vacant <= 0 && graph.getCurrentCount() >= graph.getMaxElements()) this.#grow();
      try {
        graph.addPoint(vec, id, true);
      } catch (err) {
        if (!describeError(err).includes('exceeds the specified limit')) throw err;
        this.#grow();
        graph.addPoint(vec, id, true);
      }
    }
    this.#slot.set(id, this.#labels.length);
    this.#labels.push(id);
  }

  #drop(id: number): void {
    const pos = this.#slot.get(id);
    if (pos === undefined) return;
    this.#graph.markDelete(id);
    const last = this.#labels.pop() as number;
    if (last !== id) {
      this.#labels[pos] = last;
      this.#slot.set(last, pos);
    }
    this.#slot.delete(id);
  }

  #grow(): void {
    const next = Math.max(this.#graph.getMaxElements() * 2, this.#opts.initial_capacity);
    this.#graph.resizeIndex(next);
    this.#log.debug('vector index grown', { capacity: next });
  }

  // ───────────── search ─────────────

  /** Estimated accepted ids, from a sample of live ids (the predicate may be costly). */
  #estimateAccepted(accepts: (id: number) => boolean): number {
    const n = this.#labels.length;
    if (n === 0) return this.#size;
    const samples = Math.min(n, 256);
    let hit = 0;
    for (let i = 0; i < samples; i++) {
      const id = samples === n ? (this.#labels[i] as number) : (this.#labels[Math.floor(Math.random() * n)] as number);
      if (accepts(id)) hit++;
    }
    return Math.round((hit / samples) * this.#size);
  }

  #graphSearch(q: number[], want: number, accepts: ((id: number) => boolean) | null): VectorHit[] {
    const deferred = this.#deferred;
    const graphLive = this.#labels.length;
    let hits: VectorHit[] = [];
    if (graphLive > 0) {
      let thrown: unknown = null;
      const skip = deferred && deferred.size > 0 ? deferred : null;
      const filter =
        accepts || skip
          ? (id: number): boolean => {
              if (skip?.has(id)) return false; // its graph state is stale until the snapshot is written
              if (!accepts) return true;
              try {
                return accepts(id);
              } catch (err) {
                thrown ??= err;
                return false;
              }
            }
          : undefined;
      const kk = Math.min(want, graphLive);
      const ef = Math.max(this.#opts.ef_search, kk);
      if (ef !== this.#ef) {
        this.#graph.setEf(ef);
        this.#ef = ef;
      }
      const res = this.#graph.searchKnn(q, kk, filter);
      if (thrown !== null) throw thrown;
      hits = res.neighbors.map((id, i) => ({ id, distance: snap(res.distances[i] as number) }));
    }
    if (deferred && deferred.size > 0) {
      for (const [id, vec] of deferred) {
        if (vec && (!accepts || accepts(id))) hits.push({ id, distance: snap(1 - dot(q, vec)) });
      }
      hits.sort(byDistance);
      if (hits.length > want) hits.length = want;
    }
    return hits;
  }

  /** Exact cosine over `ids` (vectors straight from hnswlib, already normalized). */
  #exact(q: number[], ids: readonly number[], want: number): VectorHit[] {
    const hits: VectorHit[] = [];
    for (const id of ids) {
      const vec = this.#deferred?.get(id) ?? this.#graph.getPoint(id);
      hits.push({ id, distance: snap(1 - dot(q, vec)) });
    }
    hits.sort(byDistance);
    if (hits.length > want) hits.length = want;
    return hits;
  }

  // ───────────── snapshots ─────────────

  async #saveNow(seq: number): Promise<void> {
    const dir = this.#ctx.dir;
    // From here until the graph file is written, hnswlib reads the graph on another thread.
    this.#deferred = new Map();
    this.#writing = true;
    const ids = Uint32Array.from(this.#labels);
    const gen = `${seq}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const files = { index: `index-${gen}.hnsw`, ids: `ids-${gen}.u32` };
    const at = (name: string): string => path.join(dir, name);
    const started = Date.now();
    try {
      await fsp.mkdir(dir, { recursive: true });
      await this.#graph.writeIndex(at(files.index + '.tmp'));
    } catch (err) {
      this.#writing = false;
      await this.#applyDeferred();
      await fsp.rm(at(files.index + '.tmp'), { force: true });
      throw new LivedexError('internal', `vector index: cannot write snapshot in ${dir}: ${describeError(err)}`, { cause: err });
    }
    this.#writing = false;
    await this.#applyDeferred();
    try {
      await syncFile(at(files.index + '.tmp'));
      const idsBytes = new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength);
      await writeDurably(at(files.ids + '.tmp'), idsBytes);
      const meta: SnapshotMeta = {
        version: 1,
        modelKey: this.#ctx.modelKey,
        dimensions: this.dimensions,
        seq,
        count: ids.length,
        options: { ...this.#opts },
        files,
        bytes: { index: (await fsp.stat(at(files.index + '.tmp'))).size, ids: idsBytes.byteLength },
        sha1: { index: await sha1Of(at(files.index + '.tmp')), ids: createHash('sha1').update(idsBytes).digest('hex') },
      };
      await fsp.rename(at(files.index + '.tmp'), at(files.index));
      await fsp.rename(at(files.ids + '.tmp'), at(files.ids));
      await writeDurably(at(META + '.tmp'), JSON.stringify(meta, null, 2) + '\n');
      await syncDir(dir);
      await fsp.rename(at(META + '.tmp'), at(META)); // the commit point
      await syncDir(dir);
    } catch (err) {
      await Promise.all([files.index, files.ids].flatMap((f) => [at(f + '.tmp'), at(f)]).map((f) => fsp.rm(f, { force: true })));
      throw new LivedexError('internal', `vector index: cannot write snapshot in ${dir}: ${describeError(err)}`, { cause: err });
    }
    this.#snapshotSeq = seq;
    await this.#removeStale(files);
    this.#log.debug('vector snapshot saved', { seq, count: ids.length, ms: Date.now() - started });
  }

  /**
   * Puts the changes that waited for the snapshot into the graph, in slices: thousands may have
   * piled up while a large graph was written, at about a millisecond each. Meanwhile a change
   * of an id still waiting replaces its waiting change, so each id's last change is the one that stays.
   */
  async #applyDeferred(): Promise<void> {
    const deferred = this.#deferred;
    if (!deferred) return;
    const slicer = new Slicer();
    while (deferred.size > 0) {
      const [id, vec] = deferred.entries().next().value!;
      deferred.delete(id);
      if (vec) this.#put(id, vec);
      else this.#drop(id);
      await slicer.pause();
    }
    this.#deferred = null;
  }

  /** Deletes snapshot files other than `keep` (older generations, temp files of a crashed save). */
  async #removeStale(keep: { index: string; ids: string } | null): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(this.#ctx.dir);
    } catch {
      return;
    }
    const stale = names.filter((n) => SNAPSHOT_FILE.test(n) && n !== keep?.index && n !== keep?.ids);
    await Promise.all(stale.map((n) => fsp.rm(path.join(this.#ctx.dir, n), { force: true }).catch(() => undefined)));
  }

  async #load(): Promise<void> {
    const dir = this.#ctx.dir;
    const metaPath = path.join(dir, META);
    let raw: string;
    try {
      raw = await fsp.readFile(metaPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#discard(`cannot read ${META}: ${describeError(err)}`);
      else this.#log.debug('no vector snapshot; starting empty', { dir });
      return;
    }
    try {
      const parsed = snapshotMetaSchema.safeParse(JSON.parse(raw));
      if (!parsed.success) return this.#discard(`${META} is not a snapshot description`);
      const meta = parsed.data;
      if (meta.modelKey !== this.#ctx.modelKey) return this.#discard(`it was built for model ${meta.modelKey}`);
      if (meta.dimensions !== this.dimensions) return this.#discard(`it has ${meta.dimensions} dimensions, not ${this.dimensions}`);
      const indexPath = path.join(dir, meta.files.index);
      const idsPath = path.join(dir, meta.files.ids);

      const idsBuf = await fsp.readFile(idsPath);
      if (idsBuf.byteLength !== meta.bytes.ids || idsBuf.byteLength !== meta.count * 4) return this.#discard('the id list is truncated');
      if (createHash('sha1').update(idsBuf).digest('hex') !== meta.sha1.ids) return this.#discard('the id list is damaged');
      if ((await fsp.stat(indexPath)).size !== meta.bytes.index) return this.#discard('the graph file is truncated');
      // hnswlib trusts the graph it reads: a flipped byte could crash a later search, so the graph
      // is used only once its checksum matches. hnswlib reads it on a thread of the pool while the
      // checksum streams here: at a million chunks each takes over a second, side by side.
      const graph = new hnswlib.HierarchicalNSW('cosine', this.dimensions);
      const [sum, read] = await Promise.allSettled([sha1Of(indexPath), graph.readIndex(indexPath, true)]);
      if (sum.status === 'rejected') throw sum.reason;
      if (sum.value !== meta.sha1.index) return this.#discard('the graph file is damaged');
      if (read.status === 'rejected') throw read.reason;
      const ids = new Uint32Array(idsBuf.buffer.slice(idsBuf.byteOffset, idsBuf.byteOffset + idsBuf.byteLength));
      const labels = new Set(graph.getIdsList());
      const unique = new Set(ids);
      if (graph.getNumDimensions() !== this.dimensions || unique.size !== ids.length || ids.some((id) => !labels.has(id))) {
        return this.#discard('the id list does not match the graph');
      }
      if (meta.options.m !== this.#opts.m || meta.options.ef_construction !== this.#opts.ef_construction) {
        this.#log.info('vector snapshot was built with other graph options; they stay until the index is rebuilt', {
          built: { m: meta.options.m, ef_construction: meta.options.ef_construction },
          configured: { m: this.#opts.m, ef_construction: this.#opts.ef_construction },
        });
      }
      this.#graph = graph;
      this.#ef = -1;
      for (const id of ids) {
        this.#slot.set(id, this.#labels.length);
        this.#labels.push(id);
      }
      this.#size = ids.length;
      this.#snapshotSeq = meta.seq;
      await this.#removeStale(meta.files);
      this.#log.info('vector snapshot loaded', { dir, seq: meta.seq, count: meta.count });
    } catch (err) {
      this.#discard(describeError(err));
    }
  }

  #discard(reason: string): void {
    this.#log.warn('vector snapshot not used; starting empty (the index is rebuilt from the store)', {
      dir: this.#ctx.dir,
      reason,
    });
  }

  #checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id > MAX_LABEL) {
      throw new LivedexError('internal', `vector index: id ${id} is not an integer in 0..${MAX_LABEL}`);
    }
  }

  #checkVector(vec: Float32Array): void {
    if (vec.length !== this.dimensions) {
      throw new LivedexError('internal', `vector index: vector has ${vec.length} dimensions, the index ${this.dimensions}`);
    }
  }
}

export const hnswIndexPlugin = definePlugin({
  kind: 'vectorIndex',
  name: 'hnsw',
  description: 'HNSW approximate nearest neighbours (hnswlib, cosine) with exact search under selective filters.',
  options: hnswOptionsSchema,
  create: (options, ctx) => (options.thread ? HnswWorkerIndex.open(options, ctx) : HnswIndex.open(options, ctx)),
});
