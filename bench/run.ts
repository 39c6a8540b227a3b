/**
 * Speed and memory on SciFact with the offline embedder, each figure beside a baseline measured in
 * the same run: ingest vs reading+hashing the files, query latency vs an HTTP no-op, write→queryable
 * vs the raw file-watch event, restart vs fresh ingest. `npm run bench [-- --dataset DIR --edits 100]`
 */
import { createHash } from 'node:crypto';
import { watch } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../src/core/log.js';
import { parseConfig, serve } from '../src/livedex.js';
import { arg, DEFAULT_DATASET, loadDataset, percentile, postJson } from './lib.js';

const datasetDir = arg('dataset', DEFAULT_DATASET);
const edits = Number(arg('edits', '100'));
const cache = join(new URL('.', import.meta.url).pathname, '.cache', datasetDir.split('/').pop()!);
const dataDir = join(cache, 'bench-data');
const dataset = await loadDataset(datasetDir, cache);
const files = (await readdir(dataset.folder)).map((f) => join(dataset.folder, f));
const rssMb = () => process.resourceUsage().maxRSS / 1024;
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
const lines: string[] = [];
const report = (s: string) => {
  lines.push(s);
  console.log(s);
};

// Baseline: read and hash every file (the I/O floor of any ingest).
let t = performance.now();
for (const f of files) createHash('sha256').update(await readFile(f)).digest('hex');
const readHashS = (performance.now() - t) / 1000;
const rssBefore = rssMb();

await rm(dataDir, { recursive: true, force: true });
const config = parseConfig({ data_dir: dataDir, port: 0, sources: [{ fs: { path: dataset.folder, reconcile_interval_s: 0 } }] });
t = performance.now();
let server = await serve(config, { logger: silentLogger });
await server.ready;
const ingestS = (performance.now() - t) / 1000;
const chunks = server.index.catalog.size;
report(`ingest: ${files.length} docs, ${chunks} chunks in ${ingestS.toFixed(1)} s = ${(files.length / ingestS).toFixed(0)} docs/s, ${(chunks / ingestS).toFixed(0)} chunks/s (${(ingestS / readHashS).toFixed(1)}× the time to read+hash the files: ${readHashS.toFixed(2)} s)`);

// Query latency per mode, against an HTTP no-op on the same server.
const retrieveUrl = new URL('/v1/retrieve', server.url).toString();
const noop: number[] = [];
for (let i = 0; i < 300; i++) {
  const s = performance.now();
  await (await fetch(new URL('/healthz', server.url))).json();
  noop.push(performance.now() - s);
}
const noopP50 = percentile(noop, 50);
report(`http no-op (/healthz): p50 ${fmt(noopP50)}, p99 ${fmt(percentile(noop, 99))}`);
for (const mode of ['bm25', 'vector', 'hybrid']) {
  const lat: number[] = [];
  for (const q of dataset.queries) {
    const s = performance.now();
    await postJson(retrieveUrl, { query: q.text, k: 10, mode });
    lat.push(performance.now() - s);
  }
  report(`query ${mode.padEnd(6)} k=10: p50 ${fmt(percentile(lat, 50))} (${(percentile(lat, 50) / noopP50).toFixed(1)}× no-op), p99 ${fmt(percentile(lat, 99))}`);
}

// Write → queryable, against the raw watch event for the same kind of write.
const target = files[0]!;
const original = await readFile(target, 'utf8');
const rawEvent: number[] = [];
for (let i = 0; i < 20; i++) {
  const w = watch(dataset.folder);
  const got = new Promise<void>((res) => w.once('change', () => res()));
  const s = performance.now();
  await writeFile(join(dataset.folder, '.probe-event'), String(i));
  await got;
  rawEvent.push(performance.now() - s);
  w.close();
}
await rm(join(dataset.folder, '.probe-event'), { force: true });
const fresh: number[] = [];
for (let i = 0; i < edits; i++) {
  const token = `freshnesstoken${i}x${Math.random().toString(36).slice(2, 8)}`;
  const s = performance.now();
  await writeFile(target, `${original}\n${token}\n`);
  for (;;) {
    const hits = await postJson<unknown[]>(retrieveUrl, { query: token, k: 1, mode: 'bm25' });
    if (hits.length > 0) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  fresh.push(performance.now() - s);
}
await writeFile(target, original);
report(`write → queryable over ${edits} edits: p50 ${fmt(percentile(fresh, 50))}, p99 ${fmt(percentile(fresh, 99))} (raw watch event p50 ${fmt(percentile(rawEvent, 50))})`);
await server.index.sync();
await server.close();

// Restart on the same data dir.
t = performance.now();
server = await serve(config, { logger: silentLogger });
const listeningMs = performance.now() - t;
await postJson(retrieveUrl.replace(/:\d+\//, `:${server.port}/`), { query: 'cancer', k: 3 });
const firstQueryMs = performance.now() - t;
await server.ready;
const readyMs = performance.now() - t;
report(`restart: listening ${fmt(listeningMs)}, first query answered ${fmt(firstQueryMs)}, ready (sync done) ${fmt(readyMs)} = ${((readyMs / 1000 / ingestS) * 100).toFixed(1)}% of a fresh ingest; parsed ${server.index.pipeline.counters.parsed}, embedded ${server.index.pipeline.counters.embedded}`);
await server.close();
report(`peak RSS: ${rssMb().toFixed(0)} MB (${rssBefore.toFixed(0)} MB before the index was opened)`);
await writeFile(join(cache, 'bench-last.txt'), lines.join('\n') + '\n');
