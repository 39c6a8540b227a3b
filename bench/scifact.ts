/**
 * Retrieval evaluation on a BEIR dataset (SciFact by default) through the real server:
 * nDCG@10, Recall@100 and MRR@10 per mode. `npm run eval [-- --dataset DIR --embedder NAME --sweep]`
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../src/core/log.js';
import { parseConfig, serve } from '../src/livedex.js';
import { arg, DEFAULT_DATASET, distinctDocs, loadDataset, mean, mrrAt, ndcgAt, postJson, recallAt } from './lib.js';

interface Variant {
  name: string;
  body: Record<string, unknown>;
}

const datasetDir = arg('dataset', DEFAULT_DATASET);
const embedder = arg('embedder', 'hashing');
const cache = join(new URL('.', import.meta.url).pathname, '.cache', datasetDir.split('/').pop()!);
const dataDir = join(cache, `data-${embedder}`);
const fresh = process.argv.includes('--fresh');

const dataset = await loadDataset(datasetDir, cache);
if (fresh) await rm(dataDir, { recursive: true, force: true });
await mkdir(dataDir, { recursive: true });
const config = parseConfig({ data_dir: dataDir, port: 0, embedder, sources: [{ fs: { path: dataset.folder, reconcile_interval_s: 0 } }] });
const started = performance.now();
const server = await serve(config, { logger: silentLogger });
await server.ready;
const ingestS = (performance.now() - started) / 1000;
console.log(`${dataset.docCount} documents, ${server.index.catalog.size} chunks; ready in ${ingestS.toFixed(1)} s (${server.index.pipeline.counters.parsed} parsed now)`);

const variants: Variant[] = [
  { name: 'bm25', body: { mode: 'bm25' } },
  { name: 'vector', body: { mode: 'vector' } },
  { name: 'hybrid (default)', body: { mode: 'hybrid' } },
  { name: 'hybrid (rrf)', body: { mode: 'hybrid', fusion: 'rrf' } },
];
if (process.argv.includes('--sweep')) {
  for (const alpha of [0.1, 0.2, 0.3, 0.5, 0.7, 0.9]) variants.push({ name: `hybrid (convex α=${alpha})`, body: { mode: 'hybrid', alpha } });
}

const url = new URL('/v1/retrieve', server.url).toString();
const rows: string[] = [];
const perQuery: Record<string, Record<string, { ndcg10: number; recall100: number; mrr10: number }>> = {};
for (const v of variants) {
  const ndcg: number[] = [];
  const recall: number[] = [];
  const mrr: number[] = [];
  for (const q of dataset.queries) {
    const hits = await postJson<Array<{ metadata: { path: string } }>>(url, { query: q.text, k: 150, ...v.body });
    const ranked = distinctDocs(hits.map((h) => h.metadata.path));
    const rel = dataset.qrels.get(q.id)!;
    const m = { ndcg10: ndcgAt(ranked, rel, 10), recall100: recallAt(ranked, rel, 100), mrr10: mrrAt(ranked, rel, 10) };
    ndcg.push(m.ndcg10);
    recall.push(m.recall100);
    mrr.push(m.mrr10);
    (perQuery[v.name] ??= {})[q.id] = m;
  }
  rows.push(`| ${v.name.padEnd(24)} | ${mean(ndcg).toFixed(4)} | ${mean(recall).toFixed(4)} | ${mean(mrr).toFixed(4)} |`);
}
console.log(`\n${datasetDir.split('/').pop()} · ${dataset.queries.length} queries · embedder ${embedder}\n`);
console.log('| mode                     | nDCG@10 | Recall@100 | MRR@10 |');
console.log('|--------------------------|---------|------------|--------|');
for (const r of rows) console.log(r);
const resultsDir = join(new URL('.', import.meta.url).pathname, 'results');
await mkdir(resultsDir, { recursive: true });
const out = join(resultsDir, `eval-${embedder}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
await writeFile(out, JSON.stringify({ dataset: datasetDir, embedder, ingestS, perQuery }, null, 1));
console.log(`\nper-query results: ${out}`);
await server.close();
