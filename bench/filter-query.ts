/**
 * @module bench/filter-query — hybrid, vector and BM25 queries over REST with and without a metadata filter keeping 1 % of the documents, on one push-fed index built once (`--scale 100k` chunks, 5 a document); figures are ratios against the unfiltered query of the same run.
 */
import { rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../src/core/log.js';
import { parseConfig, serve } from '../src/livedex.js';
import { arg, DEFAULT_DATASET, loadDataset, parseScale, percentile, postJson, scaleName } from './lib.js';
import { chunkedDocument, groupOf, loadSciFactSource, prng } from './synth.js';

const here = new URL('.', import.meta.url).pathname;
const scale = parseScale(arg('scale', '100k'));
const rounds = Number(arg('queries', '500'));
const out = arg('out', '');
const CHUNKS_PER_FILE = 5;
const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

const dataset = await loadDataset(DEFAULT_DATASET, join(here, '.cache', 'scifact'));
const src = await loadSciFactSource(dataset.folder);
const rand = prng(0x9e3779b9);
const queries = Array.from({ length: rounds }, () => src.sentences[Math.floor(rand() * src.sentences.length)]!.split(/\s+/).slice(0, 6 + Math.floor(rand() * 9)).join(' '));

const dataDir = join(here, '.cache', `filter-query-${scaleName(scale)}`);
await rm(dataDir, { recursive: true, force: true });
await mkdir(dataDir, { recursive: true });
const server = await serve(parseConfig({ data_dir: dataDir, port: 0, embedder: 'hashing', sources: ['push'] }), { logger: silentLogger });
await server.ready;
const files = Math.ceil(scale / CHUNKS_PER_FILE);
const base = new URL('/v1/documents/', server.url).toString();
const t = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: 4 }, async () => {
    for (let i = next++; i < files; i = next++) {
      const res = await fetch(`${base}c${i}.txt`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: chunkedDocument(src, i, CHUNKS_PER_FILE).text, metadata: { group: groupOf(i) } }) });
      if (!res.ok) throw new Error(`PUT c${i}.txt → ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    }
  }),
);
await server.index.sync();
const status = await server.index.status();
log(`${status.chunks} chunks in ${files} documents (${((performance.now() - t) / 1000).toFixed(0)} s)`);

const url = new URL('/v1/retrieve', server.url).toString();
const filter = 'group == `7`';
interface Lat { p50: number; p99: number; max: number }
async function latency(mode: string, filtered: boolean): Promise<Lat> {
  const lat: number[] = [];
  for (const q of queries) {
    const s = performance.now();
    const hits = await postJson<Array<{ metadata: { group: number } }>>(url, { query: q, k: 10, mode, ...(filtered ? { metadata_filter: filter } : {}) });
    lat.push(performance.now() - s);
    if (filtered && hits.some((h) => h.metadata.group !== 7)) throw new Error(`the filter does not filter: ${JSON.stringify(hits.map((h) => h.metadata))}`);
  }
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), max: Math.max(...lat) };
}
const lines = [`# filtered query, ${status.chunks} chunks, ${rounds} queries a row, k=10, filter \`${filter}\` (1 % of the documents), ${new Date().toISOString()}`, `mode    filter  p50 ms  p99 ms  max ms  p50 × unfiltered  p99 × unfiltered`];
for (const mode of ['hybrid', 'vector', 'bm25']) {
  await latency(mode, false); // warm
  const plain = await latency(mode, false);
  const filtered = await latency(mode, true);
  for (const [name, l] of [['none', plain], ['1 %', filtered]] as const) {
    lines.push(`${mode.padEnd(8)}${name.padEnd(8)}${l.p50.toFixed(2).padStart(6)}  ${l.p99.toFixed(2).padStart(6)}  ${l.max.toFixed(1).padStart(6)}  ${(l.p50 / plain.p50).toFixed(2).padStart(16)}  ${(l.p99 / plain.p99).toFixed(2).padStart(16)}`);
  }
}
const report = lines.join('\n');
console.log(report);
if (out) await writeFile(out, report + '\n');
await server.close();
await rm(dataDir, { recursive: true, force: true });
