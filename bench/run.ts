/**
 * Speed, size and memory with the offline embedder (so model time does not hide ours), and livedex
 * side by side with LangChain.js and LlamaIndex.TS, all in one run:
 *
 * - per corpus size (synthetic SciFact text, bench/synth.ts; 10k and 100k chunks by default, `--full`
 *   adds 50k between them, `--sizes 10000,30000` picks): ingest docs/s and chunks/s, query latency p50/p99 per
 *   mode over the 300 SciFact queries, index size on disk, peak RSS so far;
 * - write → queryable over `--edits 200` edits (smallest corpus), restart-to-ready (largest);
 * - the side-by-side on SciFact itself (bench/peers.ts), as ratios against livedex.
 *
 * Writes `bench/results/<date>.json`, `<date>.md` and `<date>-latency.png`. `npm run bench [-- --full]`;
 * `npm run bench -- --scale 100k|1m` runs bench/scale.ts instead.
 */
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/core/log.js';
import { parseConfig, serve } from '../src/livedex.js';
import { lineChartSvg, renderPng } from './chart.js';
import { arg, DEFAULT_DATASET, distinctDocs, loadDataset, mean, ndcgAt, percentile, postJson } from './lib.js';
import { runLangChain, runLlamaIndex, type PeerDoc, type PeerResult } from './peers.js';
import { syntheticCorpus } from './synth.js';

// `--scale 100k|1m`: the million-chunk goals and their limits (bench/scale.ts) instead of the size sweep.
if (process.argv.includes('--scale')) {
  await import('./scale.js');
  process.exit(0);
}

const benchStarted = performance.now();
const datasetDir = arg('dataset', DEFAULT_DATASET);
const edits = Number(arg('edits', '200'));
const sizes = arg('sizes', process.argv.includes('--full') ? '10000,50000,100000' : '10000,100000').split(',').map(Number);
const cache = join(new URL('.', import.meta.url).pathname, '.cache', datasetDir.split('/').pop()!);
const resultsDir = join(new URL('.', import.meta.url).pathname, 'results');
const dataset = await loadDataset(datasetDir, cache);
const rssMb = () => process.resourceUsage().maxRSS / 1024;
const MODES = ['bm25', 'vector', 'hybrid'] as const;
const log = (s: string) => console.log(s);

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? await dirBytes(p) : e.isFile() ? (await stat(p)).size : 0;
  }
  return total;
}

async function queryLatency(url: string, mode: string): Promise<{ p50: number; p99: number }> {
  const lat: number[] = [];
  for (const q of dataset.queries) {
    const s = performance.now();
    await postJson(url, { query: q.text, k: 10, mode });
    lat.push(performance.now() - s);
  }
  return { p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

interface SizeResult {
  docs: number;
  chunks: number;
  ingestS: number;
  docsPerS: number;
  chunksPerS: number;
  indexMb: number;
  latency: Record<string, { p50: number; p99: number }>;
  peakRssMb: number;
}
const perSize: SizeResult[] = [];
let freshness: { edits: number; p50: number; p99: number } | null = null;
let restart: { listeningMs: number; firstQueryMs: number; readyMs: number; ofIngestPct: number; chunks: number } | null = null;

for (const [i, size] of sizes.entries()) {
  let t = performance.now();
  const folder = await syntheticCorpus(dataset.folder, cache, size);
  log(`corpus ${size}: files ready in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const dataDir = join(cache, `bench-data-${size}`);
  await rm(dataDir, { recursive: true, force: true });
  const config = parseConfig({ data_dir: dataDir, port: 0, embedder: 'hashing', sources: [{ fs: { path: folder, reconcile_interval_s: 0 } }] });
  t = performance.now();
  let server = await serve(config, { logger: silentLogger });
  await server.ready;
  const ingestS = (performance.now() - t) / 1000;
  const chunks = server.index.catalog.size;
  const url = new URL('/v1/retrieve', server.url).toString();
  const latency: SizeResult['latency'] = {};
  for (const mode of MODES) latency[mode] = await queryLatency(url, mode);
  await server.index.sync();

  if (i === 0) {
    // Write → queryable: append a unique token to one file, poll bm25 until it is found.
    const target = join(folder, '000', 's0.txt');
    const original = await readFile(target, 'utf8');
    const lat: number[] = [];
    for (let e = 0; e < edits; e++) {
      const token = `freshnesstoken${e}q${size}`;
      const s = performance.now();
      await writeFile(target, `${original}\n${token}\n`);
      while ((await postJson<unknown[]>(url, { query: token, k: 1, mode: 'bm25' })).length === 0) await new Promise((r) => setTimeout(r, 2));
      lat.push(performance.now() - s);
    }
    await writeFile(target, original);
    await server.index.sync();
    freshness = { edits, p50: percentile(lat, 50), p99: percentile(lat, 99) };
    log(`write → queryable over ${edits} edits: p50 ${freshness.p50.toFixed(1)} ms, p99 ${freshness.p99.toFixed(1)} ms`);
  }
  await server.close();
  const indexMb = (await dirBytes(dataDir)) / 2 ** 20;
  if (i === sizes.length - 1) {
    t = performance.now();
    server = await serve(config, { logger: silentLogger });
    const listeningMs = performance.now() - t;
    await postJson(new URL('/v1/retrieve', server.url).toString(), { query: 'cancer', k: 3 });
    const firstQueryMs = performance.now() - t;
    await server.ready;
    const readyMs = performance.now() - t;
    restart = { listeningMs, firstQueryMs, readyMs, ofIngestPct: (readyMs / 1000 / ingestS) * 100, chunks };
    log(`restart (${chunks} chunks): listening ${listeningMs.toFixed(0)} ms, first query ${firstQueryMs.toFixed(0)} ms, ready ${readyMs.toFixed(0)} ms`);
    await server.close();
  }
  const r: SizeResult = { docs: size, chunks, ingestS, docsPerS: size / ingestS, chunksPerS: chunks / ingestS, indexMb, latency, peakRssMb: rssMb() };
  perSize.push(r);
  log(`${size} docs, ${chunks} chunks: ingest ${ingestS.toFixed(1)} s (${r.chunksPerS.toFixed(0)} chunks/s), index ${indexMb.toFixed(0)} MB, ` + MODES.map((m) => `${m} p50 ${latency[m]!.p50.toFixed(1)}/p99 ${latency[m]!.p99.toFixed(1)} ms`).join(', ') + `, peak RSS ${r.peakRssMb.toFixed(0)} MB`);
}
const livedexPeakRssMb = rssMb();

// Side by side on SciFact itself (a private copy of the files, since livedex's edit is a real file write).
const peerFolder = join(cache, 'peers-docs');
await rm(peerFolder, { recursive: true, force: true });
await cp(dataset.folder, peerFolder, { recursive: true });
const names = (await readdir(peerFolder)).filter((n) => n.endsWith('.txt')).sort();
const docs: PeerDoc[] = await Promise.all(names.map(async (n) => ({ id: n.replace(/\.txt$/, ''), text: await readFile(join(peerFolder, n), 'utf8') })));
const edit: PeerDoc = { id: docs[0]!.id, text: `${docs[0]!.text}\nsidebysidetoken\n` };
const input = { docs, queries: dataset.queries, qrels: dataset.qrels, edit };

const peersDataDir = join(cache, 'bench-data-peers');
await rm(peersDataDir, { recursive: true, force: true });
let t = performance.now();
const server = await serve(parseConfig({ data_dir: peersDataDir, port: 0, embedder: 'hashing', sources: [{ fs: { path: peerFolder, reconcile_interval_s: 0 } }] }), { logger: silentLogger });
await server.ready;
const ldIngestMs = performance.now() - t;
const url = new URL('/v1/retrieve', server.url).toString();
t = performance.now();
await writeFile(join(peerFolder, `${edit.id}.txt`), edit.text);
while ((await postJson<unknown[]>(url, { query: 'sidebysidetoken', k: 1, mode: 'bm25' })).length === 0) await new Promise((r) => setTimeout(r, 2));
const ldReindexMs = performance.now() - t;
const livedexRows: PeerResult[] = [];
for (const mode of ['hybrid', 'vector'] as const) {
  const lat: number[] = [];
  const ndcg: number[] = [];
  for (const q of dataset.queries) {
    const s = performance.now();
    const hits = await postJson<Array<{ metadata: { path: string } }>>(url, { query: q.text, k: 20, mode });
    lat.push(performance.now() - s);
    ndcg.push(ndcgAt(distinctDocs(hits.map((h) => h.metadata.path)), dataset.qrels.get(q.id)!, 10));
  }
  livedexRows.push({ system: `livedex ${mode} (REST)`, ingestMs: ldIngestMs, reindexOneMs: ldReindexMs, queryP50Ms: percentile(lat, 50), queryP99Ms: percentile(lat, 99), ndcg10: mean(ndcg) });
}
await server.close();
const [lcHybrid, lcVector] = await runLangChain(input);
const llama = await runLlamaIndex(input);
const sideBySide = [
  { ...livedexRows[0]!, vs: livedexRows[0]! },
  { ...lcHybrid!, vs: livedexRows[0]! },
  { ...livedexRows[1]!, vs: livedexRows[1]! },
  { ...lcVector!, vs: livedexRows[1]! },
  { ...llama, vs: livedexRows[1]! },
].map(({ vs, ...r }) => ({ ...r, ratios: { ingest: r.ingestMs / vs.ingestMs, reindexOne: r.reindexOneMs / vs.reindexOneMs, queryP50: r.queryP50Ms / vs.queryP50Ms, ndcg10: r.ndcg10 / vs.ndcg10 } }));

// Report.
const date = new Date().toISOString().slice(0, 10);
const totalS = (performance.now() - benchStarted) / 1000;
const machine = `${cpus().length} cores (${cpus()[0]?.model.trim()}), load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at the end, Node ${process.version}`;
const x = (v: number) => `${v.toFixed(2)}×`;
const md = [
  `# livedex benchmark (\`npm run bench\`), ${date}`,
  '',
  `Offline \`hashing\` embedder. ${machine}. Whole run: ${totalS.toFixed(0)} s.`,
  '',
  '## Corpus size (synthetic SciFact text, 300 SciFact queries over REST, k=10)',
  '',
  '| docs | chunks | ingest s | docs/s | chunks/s | index on disk MB | bm25 p50/p99 ms | vector p50/p99 ms | hybrid p50/p99 ms | peak RSS MB |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...perSize.map((r) => `| ${r.docs} | ${r.chunks} | ${r.ingestS.toFixed(1)} | ${r.docsPerS.toFixed(0)} | ${r.chunksPerS.toFixed(0)} | ${r.indexMb.toFixed(1)} | ` + MODES.map((m) => `${r.latency[m]!.p50.toFixed(1)} / ${r.latency[m]!.p99.toFixed(1)}`).join(' | ') + ` | ${r.peakRssMb.toFixed(0)} |`),
  '',
  `- write → queryable over ${freshness!.edits} edits (${perSize[0]!.chunks} chunks): p50 ${freshness!.p50.toFixed(1)} ms, p99 ${freshness!.p99.toFixed(1)} ms`,
  `- restart on ${restart!.chunks} chunks: listening ${restart!.listeningMs.toFixed(0)} ms, first query answered ${restart!.firstQueryMs.toFixed(0)} ms, ready (sync done) ${restart!.readyMs.toFixed(0)} ms = ${restart!.ofIngestPct.toFixed(1)}% of its fresh ingest`,
  `- peak RSS of the process after the livedex part: ${livedexPeakRssMb.toFixed(0)} MB (peak RSS is cumulative: each row includes the sizes above it)`,
  '',
  `## Side by side on SciFact (${docs.length} documents, ${dataset.queries.length} queries, same hashing vectors)`,
  '',
  'Ratios are other ÷ livedex (for time, above 1 means livedex is faster; for nDCG, below 1 means livedex ranks better). Hybrid rows compare with livedex hybrid, vector rows with livedex vector. livedex is measured through its REST API and persists everything to disk; the libraries run in-process and in memory. Re-index for livedex is file write → found by a query; for the libraries it starts with the edited document in hand.',
  '',
  '| system | ingest | re-index after one edit | query p50 | nDCG@10 | nDCG@10 (abs) |',
  '|---|---|---|---|---|---|',
  ...sideBySide.map((r) => `| ${r.system} | ${x(r.ratios.ingest)} | ${x(r.ratios.reindexOne)} | ${x(r.ratios.queryP50)} | ${x(r.ratios.ndcg10)} | ${r.ndcg10.toFixed(4)} |`),
  '',
  'LangChain\'s BM25 leg is a minimal Okapi BM25 written in bench/peers.ts (@langchain/community does not install here), rebuilt after the edit; its `MemoryVectorStore` got `delete` and id support so `index()` can clean up.',
].join('\n');
console.log(`\n${md}`);
await mkdir(resultsDir, { recursive: true });
const colors: Record<string, string> = { bm25: '#1f77b4', vector: '#d62728', hybrid: '#2ca02c' };
const svg = lineChartSvg(
  'livedex query latency vs corpus size (REST, k=10)',
  'chunks in the index',
  'latency (ms)',
  MODES.flatMap((m) => [
    { name: `${m} p50`, color: colors[m]!, points: perSize.map((r) => [r.chunks, r.latency[m]!.p50] as [number, number]) },
    { name: `${m} p99`, color: colors[m]!, dashed: true, points: perSize.map((r) => [r.chunks, r.latency[m]!.p99] as [number, number]) },
  ]),
);
await writeFile(join(resultsDir, `${date}-latency.png`), renderPng(svg));
await writeFile(join(resultsDir, `${date}.md`), `${md}\n\n![latency vs corpus size](${date}-latency.png)\n`);
await writeFile(join(resultsDir, `${date}.json`), JSON.stringify({ date: new Date().toISOString(), machine, totalS, embedder: 'hashing', perSize, freshness, restart, livedexPeakRssMb, sideBySide }, null, 1));
console.log(`\nresults: ${join(resultsDir, `${date}.json`)} (+ .md, -latency.png)`);
