/**
 * The HNSW recall/speed curve behind the vector index's M, efConstruction and ef: hnswlib-node
 * graphs over the `hashing` vectors (384 dims) of the chunked synthetic corpus, each build timed
 * and sized, then 1,000 queries per ef timed and scored as recall@10 against exact (brute-force)
 * search. The `hashing` vectors tie often (many chunks at the same cosine), so a hit counts when
 * its distance is within 1e-6 of the exact 10th distance: a tie is not a miss.
 *
 * `npm run bench:hnsw -- --scale 100k [--settings 16:200,32:200] [--efs 32,64,128] [--queries 1000] [--out FILE]`
 */
import { existsSync } from 'node:fs';
import { appendFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { arg, DEFAULT_DATASET, loadDataset, parseScale, percentile, scaleName } from './lib.js';
import { chunkedCorpus } from './synth.js';
import { chunkVectors, queryVectors, row } from './vectors.js';

const DIMS = 384;
const K = 10;
const TIE = 1e-6;
const scale = parseScale(arg('scale', '100k'));
const settings = arg('settings', '8:100,16:100,16:200,32:200').split(',').map((s) => s.split(':').map(Number) as [number, number]);
const efs = arg('efs', '16,32,64,128,256').split(',').map(Number);
const queryCount = Number(arg('queries', '1000'));
const datasetDir = arg('dataset', DEFAULT_DATASET);
const here = new URL('.', import.meta.url).pathname;
const cache = join(here, '.cache', datasetDir.split('/').pop()!);
const out = arg('out', '');
const log = async (line: string) => {
  console.log(line);
  if (out) await appendFile(out, `${line}\n`);
};

const dataset = await loadDataset(datasetDir, cache);
const corpus = await chunkedCorpus(dataset.folder, cache, scale);
const { vectors, embedS } = await chunkVectors(corpus.chunksFile, corpus.chunks, DIMS);
const n = corpus.chunks;
const queries = (await queryVectors(datasetDir, dataset.folder, queryCount, DIMS)).map((q) => Array.from(q));
await log(`# HNSW recall/speed, ${n} vectors × ${DIMS} (hashing), ${queries.length} queries, k=${K}; ${new Date().toISOString()}`);
await log(`# ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at the start; hashing embed ${embedS === null ? 'cached' : `${embedS.toFixed(0)} s`}`);

// Exact neighbours once per corpus size: the 10th exact distance is all recall needs (ties).
const truthFile = join(cache, `chunked-${scale}`, `truth-${queries.length}.f32`);
let kth: Float32Array;
if (existsSync(truthFile)) {
  const b = await readFile(truthFile);
  kth = new Float32Array(b.buffer, b.byteOffset, queries.length);
} else {
  const t = performance.now();
  const exact = new hnswlib.BruteforceSearch('cosine', DIMS);
  exact.initIndex(n);
  for (let i = 0; i < n; i++) exact.addPoint(row(vectors, i, DIMS), i);
  kth = new Float32Array(queries.length);
  queries.forEach((q, j) => {
    const r = exact.searchKnn(q, K);
    kth[j] = r.distances[r.distances.length - 1]!;
  });
  await writeFile(truthFile, new Uint8Array(kth.buffer));
  await log(`# exact search: ${((performance.now() - t) / 1000).toFixed(0)} s for ${queries.length} queries`);
}

await log('| M | efConstruction | build s | inserts/s | index MB | bytes/vector | ef | query µs mean | query µs p99 | recall@10 |');
await log('|---|---|---|---|---|---|---|---|---|---|');
const tmp = join(tmpdir(), `livedex-hnsw-curve-${process.pid}.hnsw`);
for (const [m, efConstruction] of settings) {
  let graph: InstanceType<typeof hnswlib.HierarchicalNSW> | null = new hnswlib.HierarchicalNSW('cosine', DIMS);
  graph.initIndex({ maxElements: n, m, efConstruction });
  const t = performance.now();
  for (let i = 0; i < n; i++) graph.addPoint(row(vectors, i, DIMS), i);
  const buildS = (performance.now() - t) / 1000;
  await graph.writeIndex(tmp);
  const bytes = (await stat(tmp)).size;
  await rm(tmp, { force: true });
  for (const ef of efs) {
    graph.setEf(Math.max(ef, K));
    const lat: number[] = [];
    let found = 0;
    queries.forEach((q, j) => {
      const s = performance.now();
      const r = graph!.searchKnn(q, K);
      lat.push((performance.now() - s) * 1000);
      for (const d of r.distances) if (d <= kth[j]! + TIE) found++;
    });
    const recall = found / (K * queries.length);
    const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
    await log(`| ${m} | ${efConstruction} | ${buildS.toFixed(1)} | ${(n / buildS).toFixed(0)} | ${(bytes / 2 ** 20).toFixed(0)} | ${(bytes / n).toFixed(0)} | ${ef} | ${mean.toFixed(0)} | ${percentile(lat, 99).toFixed(0)} | ${recall.toFixed(4)} |`);
  }
  graph = null;
}
await log(`# ${scaleName(n)} done, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at the end`);
