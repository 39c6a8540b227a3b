/**
 * @module indexes/hnsw-thread — the worker thread behind `HnswWorkerIndex` (hnsw-worker.ts): it
 * holds an `HnswIndex` and applies the changes the main thread sends, in order, in slices of a
 * few milliseconds, so that a search sent meanwhile is answered between two slices rather than
 * after the whole batch. A flush, a save and a close wait for every change sent before them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ChunkIdSet } from '../core/catalog.js';
import { describeError, LivedexError } from '../core/errors.js';
import type { Logger, VectorFilter, VectorHit } from '../core/types.js';
import { HnswIndex } from './hnsw.js';
import type { FromThread, ThreadData, ToThread, WireError, WireFilter } from './hnsw-worker.js';

/** Longest a slice of changes holds the thread before a waiting search is answered. */
const SLICE_MS = 4;

const port = parentPort!;
const send = (m: FromThread, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
const logAt =
  (level: keyof Logger) =>
  (msg: string, fields?: Record<string, unknown>): void =>
    send({ t: 'log', level, msg, ...(fields ? { fields } : {}) });
const logger: Logger = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };

function wireError(err: unknown): WireError {
  return { code: err instanceof LivedexError ? err.code : 'internal', message: describeError(err) };
}

const data = workerData as ThreadData;
let index: HnswIndex;
try {
  index = await HnswIndex.open(data.options, { logger, dataDir: data.dataDir, dimensions: data.dimensions, modelKey: data.modelKey, dir: data.dir });
} catch (err) {
  send({ t: 'failed', error: wireError(err) });
  port.close();
  throw err;
}
const opened = Uint32Array.from(index.ids());
send({ t: 'opened', seq: index.snapshotSeq, ids: opened }, [opened.buffer]);

type Step = { t: 'ops'; m: Extract<ToThread, { t: 'ops' }>; at: number; vec: number } | Exclude<ToThread, { t: 'ops' | 'search' }>;
const queue: Step[] = [];
let draining = false;
const saves = new Set<Promise<void>>();
/**
 * Ids whose removal arrived but is not applied yet (how many times): a search must not return
 * them, since the main thread may already have published their removal.
 */
const removing = new Map<number, number>();
/** Above this many, removed ids are filtered inside the search rather than asked for on top of `k`. */
const OVERFETCH_MAX = 256;

function filterOf(w: WireFilter | undefined): VectorFilter | undefined {
  if (!w) return undefined;
  const set = new ChunkIdSet(w.bits, w.size);
  return w.exclude ? { exclude: set } : set;
}

/** `index.search`, never returning an id being removed. */
function search(query: Float32Array, k: number, filter: VectorFilter | undefined): VectorHit[] {
  if (removing.size === 0) return index.search(query, k, filter);
  if (removing.size <= OVERFETCH_MAX) {
    // Ask for as many more as could be dropped: the top `k` of the rest are among them.
    const hits = index.search(query, k + removing.size, filter).filter((h) => !removing.has(h.id));
    return hits.length > k ? hits.slice(0, k) : hits;
  }
  const accepts: (id: number) => boolean =
    filter === undefined ? () => true : typeof filter === 'function' ? filter : 'exclude' in filter ? (id) => !filter.exclude.has(id) : (id) => filter.has(id);
  return index.search(query, k, (id) => !removing.has(id) && accepts(id));
}

port.on('message', (m: ToThread) => {
  if (m.t === 'search') {
    try {
      const hits = search(m.query, m.k, filterOf(m.filter));
      const ids = Uint32Array.from(hits, (h) => h.id);
      const distances = Float64Array.from(hits, (h) => h.distance);
      send({ t: 'done', n: m.n, hits: { ids, distances } }, [ids.buffer, distances.buffer]);
    } catch (err) {
      send({ t: 'done', n: m.n, error: wireError(err) });
    }
    return;
  }
  if (m.t === 'ops') {
    for (let i = 0; i < m.ids.length; i++) if (m.kinds[i] === 0) removing.set(m.ids[i]!, (removing.get(m.ids[i]!) ?? 0) + 1);
  }
  queue.push(m.t === 'ops' ? { t: 'ops', m, at: 0, vec: 0 } : m);
  if (!draining) {
    draining = true;
    setImmediate(drain);
  }
});

/** Applies queued steps for one slice, then yields to the messages waiting (searches first of all). */
function drain(): void {
  const until = performance.now() + SLICE_MS;
  while (queue.length > 0 && performance.now() < until) {
    const step = queue[0]!;
    if (step.t === 'ops') {
      const { kinds, ids, vecs } = step.m;
      const dims = index.dimensions;
      // A few changes between clock reads: one addPoint is about a millisecond at scale.
      for (let n = 0; n < 4 && step.at < ids.length; n++, step.at++) {
        const id = ids[step.at]!;
        try {
          if (kinds[step.at] === 1) {
            index.add(id, vecs.subarray(step.vec * dims, (step.vec + 1) * dims));
            step.vec++;
          } else {
            const left = removing.get(id)! - 1;
            if (left > 0) removing.set(id, left);
            else removing.delete(id);
            index.remove(id);
          }
        } catch (err) {
          logger.error('vector index: a change could not be applied', { id, error: describeError(err) });
        }
      }
      if (step.at >= ids.length) queue.shift();
      continue;
    }
    queue.shift();
    if (step.t === 'flush') send({ t: 'done', n: step.n });
    else if (step.t === 'save') {
      // Changes go on while the graph is written: the index keeps them aside until it is.
      const saving = index.save(step.seq).then(
        () => send({ t: 'done', n: step.n }),
        (err: unknown) => send({ t: 'done', n: step.n, error: wireError(err) }),
      );
      saves.add(saving);
      void saving.finally(() => saves.delete(saving));
    } else {
      void Promise.all(saves).then(() => {
        send({ t: 'done', n: step.n });
        port.close();
      });
      queue.length = 0;
    }
  }
  if (queue.length > 0) setImmediate(drain);
  else draining = false;
}
