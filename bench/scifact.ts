/**
 * Retrieval evaluation on a BEIR dataset (SciFact by default) through the real server:
 * nDCG@10, Recall@100 and MRR@10 per mode. `npm run eval [-- --dataset DIR --embedder NAME --no-sweep --fresh]`; writes
 * `bench/results/<date>-eval.json` (summary + per-query metrics) and a markdown table beside it;
 * `--embedder local [--model DIR]` uses a local ONNX model (default: all-MiniLM-L6-v2, fetched by bench/fetch-model.ts).
 *
 * The knobs behind the defaults: `--text-language L`, `--stop-words`, `--ascii-folding` (the BM25
 * analyzer; the text index is rebuilt from the store, nothing is embedded again), `--max-tokens N`
 * (chunk size of the splitter), and the sweep of `retrieval.rrf_k` (a restart per value).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { silentLogger } from '../src/core/log.js';
import { parseConfig, serve } from '../src/livedex.js';
import { DEFAULT_MODEL_DIR, fetchMiniLM } from './fetch-model.js';
import { arg, DEFAULT_DATASET, distinctDocs, loadDataset, mean, mrrAt, ndcgAt, postJson, recallAt } from './lib.js';
import { prng } from './synth.js';

interface Variant {
  name: string;
  body: Record<string, unknown>;
}

const datasetDir = arg('dataset', DEFAULT_DATASET);
const embedder = arg('embedder', 'hashing');
const cache = join(new URL('.', import.meta.url).pathname, '.cache', datasetDir.split('/').pop()!);
// A local model is named by its directory (and fetched when it is the default one).
const modelDir = embedder === 'local' ? (process.argv.includes('--model') ? resolve(arg('model', '')) : await fetchMiniLM(DEFAULT_MODEL_DIR)) : null;
const label = modelDir ? `local-${basename(modelDir)}` : embedder;
/** `--splitter NAME`: every document split by that splitter (in its own data directory); default: per parser. */
const splitter = arg('splitter', '');
const maxTokens = Number(arg('max-tokens', '0'));
const dataDir = join(cache, `data-${label}${splitter ? `-${splitter}` : ''}${maxTokens > 0 ? `-${maxTokens}t` : ''}`);
const fresh = process.argv.includes('--fresh');
const sweep = !process.argv.includes('--no-sweep');
const textIndex = {
  language: arg('text-language', 'english'),
  stop_words: process.argv.includes('--stop-words'),
  ascii_folding: process.argv.includes('--ascii-folding'),
};
const textLabel = `${textIndex.language === 'english' ? '' : `-${textIndex.language}`}${textIndex.stop_words ? '-stop' : ''}${textIndex.ascii_folding ? '-fold' : ''}`;
const splitterRef = maxTokens > 0 ? { [splitter || 'token']: { max_tokens: maxTokens } } : splitter || undefined;
const splitLabel = `${splitter ? `-${splitter}` : ''}${maxTokens > 0 ? `-${maxTokens}t` : ''}`;

const dataset = await loadDataset(datasetDir, cache);
if (fresh) await rm(dataDir, { recursive: true, force: true });
await mkdir(dataDir, { recursive: true });
const configFor = (rrfK?: number) =>
  parseConfig({
    data_dir: dataDir,
    port: 0,
    embedder: modelDir ? { local: { model: modelDir } } : embedder,
    ...(splitterRef ? { splitter: splitterRef } : {}),
    text_index: textIndex,
    ...(rrfK ? { retrieval: { rrf_k: rrfK } } : {}),
    sources: [{ fs: { path: dataset.folder, reconcile_interval_s: 0 } }],
  });
const started = performance.now();
let server = await serve(configFor(), { logger: silentLogger });
await server.ready;
const ingestS = (performance.now() - started) / 1000;
// CPU time next to wall time: on a shared machine the wall time says more about the neighbours.
const cpu = process.cpuUsage();
console.log(
  `${dataset.docCount} documents, ${server.index.catalog.size} chunks; ready in ${ingestS.toFixed(1)} s, ${((cpu.user + cpu.system) / 1e6).toFixed(0)} s of CPU ` +
    `(${server.index.pipeline.counters.parsed} parsed, ${server.index.pipeline.counters.embedded} texts embedded now)`,
);

const variants: Variant[] = [
  { name: 'bm25', body: { mode: 'bm25' } },
  { name: 'vector', body: { mode: 'vector' } },
  { name: 'hybrid (default)', body: { mode: 'hybrid' } },
  { name: 'hybrid (rrf)', body: { mode: 'hybrid', fusion: 'rrf' } },
  { name: 'hybrid (convex α=0.5)', body: { mode: 'hybrid', fusion: 'convex', alpha: 0.5 } },
];
// The convex alpha sweep runs by default (300 queries per point, a few seconds each); `--no-sweep` skips it.
if (sweep) {
  for (const alpha of [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]) variants.push({ name: `hybrid (convex α=${alpha})`, body: { mode: 'hybrid', fusion: 'convex', alpha } });
  variants.sort((a, b) => variantOrder(a) - variantOrder(b));
}

/** Keeps the table readable: the fixed modes first, then convex points by ascending alpha. */
function variantOrder(v: Variant): number {
  return typeof v.body.alpha === 'number' ? 10 + v.body.alpha : 0;
}

const summary: Array<{ mode: string; request: Record<string, unknown>; ndcg10: number; recall100: number; mrr10: number }> = [];
const perQuery: Record<string, Record<string, { ndcg10: number; recall100: number; mrr10: number }>> = {};
for (const v of variants) await runVariant(v);
// RRF's k is a server setting: one restart per value (the indexes load from disk, nothing is redone).
if (sweep) {
  for (const rrfK of [5, 10, 20, 40, 100]) {
    await server.close();
    server = await serve(configFor(rrfK), { logger: silentLogger });
    await server.ready;
    await runVariant({ name: `hybrid (rrf k=${rrfK})`, body: { mode: 'hybrid', fusion: 'rrf' } });
  }
}

async function runVariant(v: Variant): Promise<void> {
  const url = new URL('/v1/retrieve', server.url).toString();
  const ndcg: number[] = [];
  const recall: number[] = [];
  const mrr: number[] = [];
  for (const q of dataset.queries) {
    // 150 chunks give at least 100 distinct documents on SciFact (a few documents have 2+ chunks).
    const hits = await postJson<Array<{ metadata: { path: string } }>>(url, { query: q.text, k: 150, ...v.body });
    const ranked = distinctDocs(hits.map((h) => h.metadata.path));
    const rel = dataset.qrels.get(q.id)!;
    const m = { ndcg10: ndcgAt(ranked, rel, 10), recall100: recallAt(ranked, rel, 100), mrr10: mrrAt(ranked, rel, 10) };
    ndcg.push(m.ndcg10);
    recall.push(m.recall100);
    mrr.push(m.mrr10);
    (perQuery[v.name] ??= {})[q.id] = m;
  }
  summary.push({ mode: v.name, request: v.body, ndcg10: mean(ndcg), recall100: mean(recall), mrr10: mean(mrr) });
}
const heading = `${datasetDir.split('/').pop()} · ${dataset.queries.length} queries · ${dataset.docCount} documents, ${server.index.catalog.size} chunks · embedder ${label} (${server.index.embedder.modelKey}) · splitter ${splitter || 'per parser'}${maxTokens > 0 ? ` (max_tokens ${maxTokens})` : ''} · BM25 analyzer ${textIndex.language}${textIndex.stop_words ? ' + stop words' : ''}${textIndex.ascii_folding ? ' + ASCII folding' : ''}`;
const best = Math.max(...summary.map((r) => r.ndcg10));

/**
 * The paired difference in nDCG@10 between `mode` and the default hybrid over the same queries,
 * with a 95% bootstrap interval (seeded: the same run prints the same interval). An interval
 * holding 0 means no measurable difference.
 */
function versusDefault(mode: string): string {
  const base = perQuery['hybrid (default)'];
  const other = perQuery[mode];
  if (!base || !other || mode === 'hybrid (default)') return '—';
  const ids = Object.keys(base).sort();
  const diffs = ids.map((id) => other[id]!.ndcg10 - base[id]!.ndcg10);
  const random = prng(7);
  const means: number[] = [];
  for (let b = 0; b < 2000; b++) {
    let sum = 0;
    for (let i = 0; i < diffs.length; i++) sum += diffs[Math.floor(random() * diffs.length)]!;
    means.push(sum / diffs.length);
  }
  means.sort((a, b) => a - b);
  const sign = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(4)}`;
  return `${sign(mean(diffs))} [${sign(means[50]!)}, ${sign(means[1949]!)}]`;
}

const table = [
  '| mode | nDCG@10 | Recall@100 | MRR@10 | Δ nDCG@10 vs hybrid (default) [95% CI] |',
  '|---|---|---|---|---|',
  ...summary.map((r) => `| ${r.mode}${r.ndcg10 === best ? ' ★' : ''} | ${r.ndcg10.toFixed(4)} | ${r.recall100.toFixed(4)} | ${r.mrr10.toFixed(4)} | ${versusDefault(r.mode)} |`),
].join('\n');
console.log(`\n${heading}\n\n${table}`);
const resultsDir = join(new URL('.', import.meta.url).pathname, 'results');
await mkdir(resultsDir, { recursive: true });
const stem = `${new Date().toISOString().slice(0, 10)}-eval${label === 'hashing' ? '' : `-${label}`}${splitLabel}${textLabel}`;
const out = join(resultsDir, `${stem}.json`);
await writeFile(
  out,
  JSON.stringify({ date: new Date().toISOString(), dataset: datasetDir.split('/').pop(), queries: dataset.queries.length, documents: dataset.docCount, chunks: server.index.catalog.size, embedder: label, modelKey: server.index.embedder.modelKey, splitter: splitter || null, maxTokens: maxTokens || null, textIndex, ingestS, summary, perQuery }, null, 1),
);
await writeFile(join(resultsDir, `${stem}.md`), `# Retrieval evaluation (\`npm run eval\`)\n\n${heading}\n\n★ = best nDCG@10. Per-query results: \`${stem}.json\`.\n\n${table}\n`);
console.log(`\nresults: ${out} (+ .md)`);
await server.close();
