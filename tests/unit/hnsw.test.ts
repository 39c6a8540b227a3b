import { describe, it, before, after } from 'node:test';
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../src/core/log.js';
import type { VectorIndexContext } from '../../src/core/registry.js';
import { ChunkIdSet } from '../../src/core/catalog.js';
import { HnswIndex, hnswIndexPlugin, type HnswOptions } from '../../src/indexes/hnsw.js';
import { HnswWorkerIndex } from '../../src/indexes/hnsw-worker.js';
import { vectorIndexPlugins } from '../../src/indexes/index.js';
// Deterministic vectors (mulberry32), so that failures reproduce.
import { rng } from '../helpers/engine-fixtures.js';
import { watchEventLoop } from '../helpers/stalls.js';

const DIM = 32;


function vectors(n: number, seed = 1, dim = DIM): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => r() * 2 - 1));
}

function cosineDistance(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return 1 - d / Math.sqrt(na * nb);
}

/** The exact answer: ids ranked by cosine distance to `q`. */
function exact(q: Float32Array, vecs: Map<number, Float32Array>, k: number, accept: (id: number) => boolean = () => true): number[] {
  return [...vecs]
    .filter(([id]) => accept(id))
    .map(([id, v]) => ({ id, d: cosineDistance(q, v) }))
    .sort((a, b) => a.d - b.d || a.id - b.id)
    .slice(0, k)
    .map((h) => h.id);
}

interface Captured {
  ctx: VectorIndexContext;
  warnings: string[];
}

function context(dir: string, over: Partial<VectorIndexContext> = {}): Captured {
  const warnings: string[] = [];
  const logger = createLogger({
    level: 'debug',
    write: (line) => {
      const rec = JSON.parse(line) as { level: string; msg: string; reason?: string };
      if (rec.level === 'warn') warnings.push(`${rec.msg}: ${rec.reason ?? ''}`);
    },
  });
  return { warnings, ctx: { logger, dataDir: dir, dir, dimensions: DIM, modelKey: 'test:model-a', ...over } };
}

async function open(dir: string, options: HnswOptions = {}, over: Partial<VectorIndexContext> = {}): Promise<{ index: HnswIndex; warnings: string[] }> {
  const { ctx, warnings } = context(dir, over);
  return { index: await HnswIndex.open(options, ctx), warnings };
}

/** Flips the byte `fromEnd` bytes before the end of the graph file saved in `dir`. */
async function flipGraphByte(dir: string, fromEnd: number): Promise<void> {
  const file = path.join(dir, (await readdir(dir)).find((f) => f.endsWith('.hnsw'))!);
  const bytes = await readFile(file);
  bytes[bytes.length - fromEnd] = bytes[bytes.length - fromEnd]! ^ 0xff;
  await writeFile(file, bytes);
}

describe('hnsw vector index', () => {
  let root: string;
  let n = 0;
  const freshDir = (): string => path.join(root, `case-${n++}`);
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'livedex-hnsw-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('is registered as the vectorIndex plugin "hnsw" with documented defaults', () => {
    assert.equal(hnswIndexPlugin.kind, 'vectorIndex');
    assert.equal(hnswIndexPlugin.name, 'hnsw');
    assert.ok(vectorIndexPlugins.includes(hnswIndexPlugin));
    assert.deepEqual(hnswIndexPlugin.options.parse({}), { thread: false, m: 16, ef_construction: 200, ef_search: 64, initial_capacity: 1024 });
    assert.throws(() => hnswIndexPlugin.options.parse({ m: 'x' }));
  });

  it('returns [] from an empty index and snapshotSeq 0 for a new one', async () => {
    const { index } = await open(freshDir());
    assert.equal(index.size, 0);
    assert.equal(index.snapshotSeq, 0);
    assert.deepEqual(index.search(vectors(1)[0]!, 5), []);
    assert.deepEqual(index.ids(), []);
  });

  it('finds an identical vector at distance 0 and ranks the rest ascending', async () => {
    const { index } = await open(freshDir());
    const vs = vectors(50, 2);
    vs.forEach((v, i) => { index.add(i, v); });
    const hits = index.search(vs[7]!, 5);
    assert.equal(hits.length, 5);
    assert.deepEqual(hits[0], { id: 7, distance: 0 });
    for (let i = 1; i < hits.length; i++) assert.ok(hits[i]!.distance >= hits[i - 1]!.distance);
    assert.ok(Math.abs(hits[1]!.distance - cosineDistance(vs[7]!, vs[hits[1]!.id]!)) < 1e-5);
  });

  it('adds, removes, re-adds a removed id and replaces a live one', async () => {
    const { index } = await open(freshDir(), { initial_capacity: 8 });
    const vs = vectors(6, 3);
    for (let i = 0; i < 5; i++) index.add(i, vs[i]!);
    assert.equal(index.size, 5);

    index.remove(2);
    index.remove(2); // no-op
    index.remove(999); // absent: no-op
    assert.equal(index.size, 4);
    assert.equal(index.has(2), false);
    assert.ok(!index.search(vs[2]!, 5).some((h) => h.id === 2));
    assert.deepEqual(index.ids().sort(), [0, 1, 3, 4]);

    index.add(2, vs[5]!); // previously removed, new vector
    assert.equal(index.size, 5);
    assert.equal(index.has(2), true);
    assert.deepEqual(index.search(vs[5]!, 1)[0], { id: 2, distance: 0 });

    index.add(3, vs[2]!); // live: replaced in place
    assert.equal(index.size, 5);
    assert.deepEqual(index.search(vs[2]!, 1)[0], { id: 3, distance: 0 });
    assert.ok(index.search(vs[3]!, 5).find((h) => h.id === 3)!.distance > 0);
    assert.deepEqual(index.ids().sort(), [0, 1, 2, 3, 4]);
  });

  it('reuses the slots of removed ids for new ones instead of growing', async () => {
    const { index } = await open(freshDir(), { initial_capacity: 16 });
    const vs = vectors(64, 4);
    for (let i = 0; i < 16; i++) index.add(i, vs[i]!);
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < 16; i++) index.remove((round - 1) * 16 + i);
      for (let i = 0; i < 16; i++) index.add(round * 16 + i, vs[round * 16 + i]!);
    }
    assert.equal(index.capacity, 16);
    assert.equal(index.size, 16);
    for (let i = 48; i < 64; i++) assert.equal(index.search(vs[i]!, 1)[0]!.id, i);
    // An id whose slot was taken by another id can still come back.
    index.add(0, vs[0]!);
    assert.equal(index.search(vs[0]!, 1)[0]!.id, 0);
    assert.equal(index.size, 17);
  });

  it('grows beyond its initial capacity by doubling', async () => {
    const { index } = await open(freshDir(), { initial_capacity: 4 });
    const vs = vectors(100, 5);
    vs.forEach((v, i) => { index.add(1000 + i, v); });
    assert.equal(index.size, 100);
    assert.equal(index.capacity, 128);
    for (let i = 0; i < 100; i += 9) assert.equal(index.search(vs[i]!, 1)[0]!.id, 1000 + i);
  });

  it('returns every live id when k exceeds the live count', async () => {
    const { index } = await open(freshDir());
    const vs = vectors(10, 6);
    vs.forEach((v, i) => { index.add(i, v); });
    index.remove(4);
    const hits = index.search(vs[0]!, 50);
    assert.deepEqual(hits.map((h) => h.id).sort((a, b) => a - b), [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    assert.deepEqual(index.search(vs[0]!, 0), []);
  });

  it('applies a selective id-set filter inside the search: 5 of 2,000 with k=5 are those 5 in exact order', async () => {
    const { index } = await open(freshDir());
    const vs = vectors(2000, 7);
    const all = new Map(vs.map((v, i) => [i, v] as const));
    vs.forEach((v, i) => { index.add(i, v); });
    const allowed = new Set([13, 402, 977, 1501, 1999]);
    const q = vectors(1, 99)[0]!;
    const hits = index.search(q, 5, allowed);
    assert.deepEqual(hits.map((h) => h.id), exact(q, all, 5, (id) => allowed.has(id)));
    for (const h of hits) assert.ok(Math.abs(h.distance - cosineDistance(q, all.get(h.id)!)) < 1e-5);
    // The same with a predicate, and with ids that are not live in the set.
    assert.deepEqual(index.search(q, 5, (id) => allowed.has(id)).map((h) => h.id), hits.map((h) => h.id));
    index.remove(13);
    const after = index.search(q, 5, new Set([...allowed, 5000]));
    assert.deepEqual(after.map((h) => h.id).sort((a, b) => a - b), [402, 977, 1501, 1999]);
  });

  it('returns k hits for broad filters, all accepted (predicate and set)', async () => {
    const { index } = await open(freshDir());
    const vs = vectors(3000, 8);
    const all = new Map(vs.map((v, i) => [i, v] as const));
    vs.forEach((v, i) => { index.add(i, v); });
    const q = vectors(1, 98)[0]!;
    const even = (id: number): boolean => id % 2 === 0;
    const byPredicate = index.search(q, 10, even);
    assert.equal(byPredicate.length, 10);
    assert.ok(byPredicate.every((h) => even(h.id)));
    const truth = exact(q, all, 10, even);
    const recall = byPredicate.filter((h) => truth.includes(h.id)).length / 10;
    assert.ok(recall >= 0.8, `recall ${recall}`);
    const tenth = new Set([...all.keys()].filter((id) => id % 10 === 3));
    const bySet = index.search(q, 20, tenth);
    assert.equal(bySet.length, 20);
    assert.ok(bySet.every((h) => tenth.has(h.id)));
    // A predicate that accepts few ids still gets all of them back, exactly.
    const few = (id: number): boolean => id % 1000 === 1;
    assert.deepEqual(index.search(q, 10, few).map((h) => h.id), exact(q, all, 10, few));
  });

  it('saves a snapshot and loads it back with the same results and snapshotSeq', async () => {
    const dir = freshDir();
    const { index } = await open(dir, { initial_capacity: 64 });
    const vs = vectors(300, 9);
    vs.forEach((v, i) => { index.add(i, v); });
    for (let i = 0; i < 300; i += 7) index.remove(i);
    await index.save(42);
    assert.equal(index.snapshotSeq, 42);
    await index.save(43); // a second generation replaces the first
    const files = (await readdir(dir)).sort();
    assert.equal(files.length, 3, files.join(', '));
    assert.ok(files.includes('meta.json'));

    const { index: loaded, warnings } = await open(dir, { initial_capacity: 64 });
    assert.deepEqual(warnings, []);
    assert.equal(loaded.snapshotSeq, 43);
    assert.equal(loaded.size, index.size);
    assert.deepEqual(loaded.ids().sort((a, b) => a - b), index.ids().sort((a, b) => a - b));
    const q = vectors(3, 97);
    for (const v of q) assert.deepEqual(loaded.search(v, 10), index.search(v, 10));
    assert.equal(loaded.has(7), false);
    // Removed labels stay reusable after a load.
    loaded.add(7, vs[7]!);
    loaded.add(5000, vs[14]!);
    assert.equal(loaded.search(vs[7]!, 1)[0]!.id, 7);
    assert.equal(loaded.size, index.size + 2);
    const meta = JSON.parse(await readFile(path.join(dir, 'meta.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(meta.modelKey, 'test:model-a');
    assert.equal(meta.dimensions, DIM);
    assert.equal(meta.seq, 43);
    assert.equal(meta.count, index.size);
  });

  it('keeps answering, and takes changes, while a snapshot is being written', async () => {
    const dir = freshDir();
    const { index } = await open(dir);
    const vs = vectors(400, 10);
    for (let i = 0; i < 300; i++) index.add(i, vs[i]!);
    const saving = index.save(1);
    // These land while hnswlib writes the graph on another thread.
    for (let i = 300; i < 400; i++) index.add(i, vs[i]!);
    index.remove(0);
    index.add(1, vs[399]!);
    assert.equal(index.size, 399);
    assert.equal(index.has(0), false);
    assert.equal(index.search(vs[350]!, 1)[0]!.id, 350);
    assert.ok(!index.search(vs[0]!, 5).some((h) => h.id === 0));
    await saving;
    assert.equal(index.size, 399);
    assert.equal(index.search(vs[350]!, 1)[0]!.id, 350);
    assert.ok(!index.search(vs[0]!, 5).some((h) => h.id === 0));
    // The snapshot holds the state at the moment save() was called.
    const { index: loaded } = await open(dir);
    assert.equal(loaded.size, 300);
    assert.equal(loaded.has(0), true);
    assert.equal(loaded.has(350), false);
  });

  it('puts back the changes made during a snapshot in slices, and a later change of an id wins over the one waiting', async () => {
    const dir = freshDir();
    const { index } = await open(dir);
    const vs = vectors(3000, 14);
    for (let i = 0; i < 200; i++) index.add(i, vs[i]!);
    const saving = index.save(1);
    let settled = false;
    void saving.finally(() => (settled = true));
    // Thousands wait while the graph is written (~a millisecond each to put back).
    for (let i = 200; i < 2200; i++) index.add(i, vs[i]!);
    const expected = new Map<number, Float32Array>(Array.from({ length: 2200 }, (_, i) => [i, vs[i]!] as const));
    const loop = watchEventLoop();
    let turns = 0;
    for (let k = 0; !settled; k++) {
      // Between slices: change ids still waiting (from the end) and ids already back (from the start).
      const waiting = 2199 - k;
      index.remove(waiting);
      expected.delete(waiting);
      index.add(k, vs[2200 + k]!);
      expected.set(k, vs[2200 + k]!);
      assert.equal(index.size, expected.size);
      assert.equal(index.search(vs[2200 + k]!, 1)[0]!.id, k);
      await new Promise((r) => setImmediate(r));
      turns++;
    }
    await saving;
    const { worstHeldMs } = loop.stop();
    // Put back at once, they held the event loop ~10× as long.
    assert.ok(worstHeldMs <= 60, `the event loop was held at most 60 ms at a time (${worstHeldMs} ms, ${turns} turns)`);
    assert.equal(index.size, expected.size);
    assert.deepEqual(index.ids().sort((a, b) => a - b), [...expected.keys()].sort((a, b) => a - b));
    for (const [id, v] of [...expected].filter((_, i) => i % 97 === 0)) assert.equal(index.search(v, 1)[0]!.id, id, `id ${id} keeps its last vector`);
  });

  it('starts empty, without throwing, when the graph file is truncated', async () => {
    const dir = freshDir();
    const { index } = await open(dir);
    vectors(50, 11).forEach((v, i) => { index.add(i, v); });
    await index.save(5);
    const graph = (await readdir(dir)).find((f) => f.endsWith('.hnsw'))!;
    await truncate(path.join(dir, graph), 1000);
    const { index: loaded, warnings } = await open(dir);
    assert.equal(loaded.size, 0);
    assert.equal(loaded.snapshotSeq, 0);
    assert.match(warnings.join('\n'), /truncated/);
    // and it is usable, and its next save replaces the damaged snapshot
    loaded.add(1, vectors(1, 12)[0]!);
    await loaded.save(6);
    assert.equal((await open(dir)).index.size, 1);
  });

  it('starts empty when a byte of the graph file is flipped', async () => {
    const dir = freshDir();
    const { index } = await open(dir);
    vectors(50, 13).forEach((v, i) => { index.add(i, v); });
    await index.save(5);
    await flipGraphByte(dir, 3);
    const { index: loaded, warnings } = await open(dir);
    assert.equal(loaded.size, 0);
    assert.match(warnings.join('\n'), /damaged/);
  });

  it('starts empty when the header of the graph file is damaged, though hnswlib reads it beside the checksum', async () => {
    const dir = freshDir();
    const { index } = await open(dir);
    vectors(50, 14).forEach((v, i) => { index.add(i, v); });
    await index.save(5);
    const file = path.join(dir, (await readdir(dir)).find((f) => f.endsWith('.hnsw'))!);
    const good = await readFile(file);
    // The element count, the bytes per element and the link-list size: what hnswlib sizes its reads by.
    for (const at of [8, 16, 24, 33, 60]) {
      const bytes = Buffer.from(good);
      bytes[at] = bytes[at]! ^ 0x7f;
      await writeFile(file, bytes);
      const { index: loaded, warnings } = await open(dir);
      assert.equal(loaded.size, 0, `byte ${at}`);
      assert.match(warnings.join('\n'), /damaged/, `byte ${at}`);
    }
  });

  it('starts empty when meta.json is garbage or missing its files', async () => {
    const dir = freshDir();
    const { index } = await open(dir);
    vectors(20, 14).forEach((v, i) => { index.add(i, v); });
    await index.save(3);
    await writeFile(path.join(dir, 'meta.json'), '{"version": 1, "modelKey": ');
    const garbage = await open(dir);
    assert.equal(garbage.index.size, 0);
    assert.equal(garbage.warnings.length, 1);

    await index.save(4);
    const ids = (await readdir(dir)).find((f) => f.endsWith('.u32'))!;
    await rm(path.join(dir, ids));
    const missing = await open(dir);
    assert.equal(missing.index.size, 0);
    assert.equal(missing.warnings.length, 1);
  });

  it('does not reuse a snapshot made for another model or dimension', async () => {
    const dir = freshDir();
    const { index } = await open(dir);
    vectors(20, 15).forEach((v, i) => { index.add(i, v); });
    await index.save(9);
    const other = await open(dir, {}, { modelKey: 'test:model-b' });
    assert.equal(other.index.size, 0);
    assert.equal(other.index.snapshotSeq, 0);
    assert.match(other.warnings.join('\n'), /model test:model-a/);
    const wider = await open(dir, {}, { dimensions: DIM * 2 });
    assert.equal(wider.index.size, 0);
    assert.equal((await open(dir)).index.size, 20);
  });

  it('rejects vectors of the wrong dimension and ids hnswlib cannot hold', async () => {
    const { index } = await open(freshDir());
    assert.throws(() => index.add(1, new Float32Array(DIM + 1)), /dimensions/);
    assert.throws(() => index.add(-1, new Float32Array(DIM)), /not an integer/);
    assert.throws(() => index.add(1.5, new Float32Array(DIM)), /not an integer/);
    assert.throws(() => index.search(new Float32Array(3), 1), /dimensions/);
  });
});

describe('hnsw vector index on its own thread', () => {
  let root: string;
  let n = 0;
  const freshDir = (): string => path.join(root, `case-${n++}`);
  const opened: HnswWorkerIndex[] = [];
  async function openThread(dir: string, options: HnswOptions = {}): Promise<{ index: HnswWorkerIndex; warnings: string[] }> {
    const { ctx, warnings } = context(dir);
    const index = await HnswWorkerIndex.open(options, ctx);
    opened.push(index);
    return { index, warnings };
  }
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'livedex-hnsw-thread-'));
  });
  after(async () => {
    await Promise.all(opened.map((i) => i.close()));
    await rm(root, { recursive: true, force: true });
  });

  it('is what the plugin builds with thread: true, and HnswIndex by default', async () => {
    const { ctx } = context(freshDir());
    const threaded = await hnswIndexPlugin.create(hnswIndexPlugin.options.parse({ thread: true }), ctx);
    const here = await hnswIndexPlugin.create(hnswIndexPlugin.options.parse({}), ctx);
    assert.ok(threaded instanceof HnswWorkerIndex);
    assert.ok(here instanceof HnswIndex);
    await threaded.close!();
  });

  it('answers every kind of filter as the index on this thread does, once changes are flushed', async () => {
    const { index } = await openThread(freshDir(), { initial_capacity: 64 });
    const { index: local } = await open(freshDir(), { initial_capacity: 64 });
    const vs = vectors(600, 21);
    vs.forEach((v, i) => { index.add(i * 3, v); local.add(i * 3, v); });
    for (const id of [0, 30, 300, 1797]) {
      index.remove(id);
      local.remove(id);
    }
    index.add(33, vs[5]!);
    local.add(33, vs[5]!);
    assert.equal(index.size, local.size);
    assert.ok(index.has(33) && !index.has(30) && !index.has(31));
    assert.deepEqual(index.ids().sort((a, b) => a - b), local.ids().sort((a, b) => a - b));
    await index.flush();
    const odd = new Set(local.ids().filter((id) => id % 2 === 1));
    const few = new Set([3, 6, 9, 12, 30]);
    const filters: Array<Parameters<HnswIndex['search']>[2]> = [undefined, odd, few, { exclude: odd }, (id) => id % 5 === 0, ChunkIdSet.of([...odd].slice(0, 40))];
    for (const q of vectors(8, 22)) {
      for (const filter of filters) assert.deepEqual(await index.search(q, 7, filter), local.search(q, 7, filter));
    }
    assert.deepEqual(await index.search(vs[5]!, 1, new Set([1, 2, 4, 30])), [], 'a set of absent and removed ids');
  });

  it('never returns an id whose removal was sent, even before the thread applies it', async () => {
    const { index } = await openThread(freshDir());
    const vs = vectors(400, 23);
    vs.forEach((v, i) => { index.add(i, v); });
    await index.flush();
    // Thousands of adds queued ahead of the removals: the searches are answered between slices.
    vectors(3000, 24).forEach((v, i) => { index.add(1000 + i, v); });
    for (let i = 0; i < 400; i += 2) index.remove(i);
    const answers = await Promise.all(vs.slice(0, 40).map((v) => index.search(v, 5)));
    for (const hits of answers) assert.ok(hits.every((h) => h.id % 2 === 1 || h.id >= 1000), JSON.stringify(hits));
    // One removal past the over-fetch limit is still honoured, by filtering inside the search.
    for (let i = 1; i < 400; i += 2) index.remove(i);
    for (const hits of await Promise.all(vs.slice(0, 10).map((v) => index.search(v, 5)))) assert.ok(hits.every((h) => h.id >= 1000));
    await index.flush();
    assert.equal(index.size, 3000);
  });

  it('saves the snapshot HnswIndex reads, with every change made before the save, and reopens it', async () => {
    const dir = freshDir();
    const { index } = await openThread(dir);
    const vs = vectors(300, 25);
    vs.forEach((v, i) => { index.add(i, v); });
    await index.save(7);
    index.add(999, vs[0]!); // after the save: not in it
    assert.equal(index.snapshotSeq, 7);
    await index.close();
    await assert.rejects(index.search(vs[0]!, 1), /closed/);
    assert.throws(() => index.add(1, vs[0]!), /closed/);
    const { index: local } = await open(dir);
    assert.equal(local.size, 300);
    assert.equal(local.snapshotSeq, 7);
    const { index: again } = await openThread(dir);
    assert.equal(again.size, 300);
    assert.equal(again.snapshotSeq, 7);
    assert.deepEqual(await again.search(vs[42]!, 3), local.search(vs[42]!, 3));
  });

  it('reports a damaged snapshot through the logger and starts empty; refuses bad vectors at once', async () => {
    const dir = freshDir();
    const { index } = await openThread(dir);
    vectors(50, 26).forEach((v, i) => { index.add(i, v); });
    await index.save(3);
    await flipGraphByte(dir, 5);
    const { index: loaded, warnings } = await openThread(dir);
    assert.equal(loaded.size, 0);
    assert.match(warnings.join('\n'), /damaged/);
    assert.throws(() => loaded.add(1, new Float32Array(DIM + 1)), /dimensions/);
    assert.throws(() => loaded.add(-1, new Float32Array(DIM)), /not an integer/);
    await assert.rejects(loaded.search(new Float32Array(3), 1), /dimensions/);
    await assert.rejects(HnswWorkerIndex.open({}, { ...context(dir).ctx, dimensions: 0 }), /positive integer/);
  });

  it('does not keep the process alive: a script that never closes it exits by itself', async () => {
    const script = [
      `import { HnswWorkerIndex } from ${JSON.stringify(new URL('../../src/indexes/hnsw-worker.ts', import.meta.url).href)};`,
      `const logger = { debug() {}, info() {}, warn() {}, error() {} };`,
      `const index = await HnswWorkerIndex.open({}, { logger, dataDir: ${JSON.stringify(root)}, dir: ${JSON.stringify(path.join(root, 'alive'))}, dimensions: 4, modelKey: 'm' });`,
      `index.add(1, new Float32Array([1, 0, 0, 0]));`,
      `await index.flush();`,
      `console.log(JSON.stringify(await index.search(new Float32Array([1, 0, 0, 0]), 1)));`,
    ].join('\n');
    const file = path.join(root, 'never-closed.mjs');
    await writeFile(file, script);
    const started = Date.now();
    const { stdout, code } = await new Promise<{ stdout: string; code: number | null }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error('the process did not exit within 30 s'));
      }, 30_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve({ stdout: out, code: c });
      });
    });
    assert.equal(code, 0);
    assert.deepEqual(JSON.parse(stdout), [{ id: 1, distance: 0 }]);
    assert.ok(Date.now() - started < 30_000);
  });
});
