/**
 * @module bench/large-document — a 31 MB text and a 10 MB CSV with a million columns dropped
 * into a served folder while queries and /healthz go on. Reports, against the idle index of
 * the same run: query latency (p50, worst), the longest the event loop was held (main-thread
 * CPU between ticks of a 10 ms timer), /healthz worst, ingest time, and memory before, at the
 * peak and after (after indexing, and after the document is deleted).
 *
 *   npm run bench:large [-- --text-mb 31 --csv-columns 1000000 --idle-s 10 --out bench/results]
 *
 * The server runs in this process (so the event loop watched is the server's); the documents
 * are generated and written before the baseline, and `--expose-gc` lets each memory figure be
 * taken after a full collection.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createLogger } from '../src/core/log.js';
import type { DocumentInfo } from '../src/core/types.js';
import { parseConfig, serve, type RunningServer } from '../src/livedex.js';
import { builtinRegistry } from '../src/plugins.js';
import { watchEventLoop } from '../tests/helpers/stalls.js';
import { syntheticText, wideCsv } from './synth.js';

const MB = 1024 * 1024;
const ROOT = resolve(new URL('..', import.meta.url).pathname);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const n = i > 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a number above 0`);
  return n;
}
const OUT = (() => {
  const i = process.argv.indexOf('--out');
  return resolve(i > 0 ? process.argv[i + 1]! : join(ROOT, 'bench/results'));
})();
const TEXT_MB = arg('text-mb', 31);
const CSV_COLUMNS = arg('csv-columns', 1_000_000);
const IDLE_S = arg('idle-s', 10);
const SMALL_FILES = arg('small-files', 200);
/** Wait before the memory after a document: past the parse workers' minute of idle. */
const SETTLE_S = arg('settle-s', 65);

interface Memory {
  rssMb: number;
  heapMb: number;
  externalMb: number;
  arrayBuffersMb: number;
}

const mb = (n: number) => Math.round((n / MB) * 10) / 10;

async function memoryNow(collect: boolean): Promise<Memory> {
  if (collect && global.gc) {
    // Twice, with a turn between: finalizers of the first pass free native memory the second sees.
    global.gc();
    await new Promise((r) => setTimeout(r, 200));
    global.gc();
  }
  const m = process.memoryUsage();
  return { rssMb: mb(m.rss), heapMb: mb(m.heapUsed), externalMb: mb(m.external), arrayBuffersMb: mb(m.arrayBuffers) };
}

/** Peaks of RSS and heap, sampled every 50 ms until stopped. */
function watchMemory(): { stop(): Memory } {
  const peak: Memory = { rssMb: 0, heapMb: 0, externalMb: 0, arrayBuffersMb: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peak.rssMb = Math.max(peak.rssMb, mb(m.rss));
    peak.heapMb = Math.max(peak.heapMb, mb(m.heapUsed));
    peak.externalMb = Math.max(peak.externalMb, mb(m.external));
    peak.arrayBuffersMb = Math.max(peak.arrayBuffersMb, mb(m.arrayBuffers));
  };
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

async function post<T>(url: string, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path} → ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

async function getJson<T>(url: string, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`);
  return { status: res.status, body: (await res.json()) as T };
}

interface Hit {
  text: string;
  metadata: Record<string, unknown>;
}

interface Traffic {
  queries: number[];
  healthWorstMs: number;
  heldWorstMs: number;
}

/** Queries (hybrid, k=3) and /healthz in a loop, 20 ms apart, until `until` settles. */
async function traffic(url: string, until: Promise<unknown>): Promise<Traffic> {
  let done = false;
  void until.finally(() => (done = true));
  const loop = watchEventLoop();
  const queries: number[] = [];
  let healthWorstMs = 0;
  while (!done) {
    let t = performance.now();
    const health = await fetch(`${url}/healthz`);
    await health.arrayBuffer();
    healthWorstMs = Math.max(healthWorstMs, performance.now() - t);
    t = performance.now();
    const hits = await post<Hit[]>(url, '/v1/retrieve', { query: 'quick brown fox', k: 3 });
    queries.push(performance.now() - t);
    if (!String(hits[0]?.metadata.path ?? '').endsWith('small.txt')) throw new Error('the small document stopped answering');
    await new Promise((r) => setTimeout(r, 20));
  }
  await until;
  return { queries, healthWorstMs, heldWorstMs: loop.stop().worstHeldMs };
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface CaseResult {
  name: string;
  bytes: number;
  chunks: number;
  indexedS: number;
  /** Until its last vector answers a vector query. */
  ingestS: number;
  queries: number;
  queryP50Ms: number;
  queryWorstMs: number;
  healthWorstMs: number;
  heldWorstMs: number;
  before: Memory;
  peak: Memory;
  after: Memory;
  afterDelete: Memory;
}

/** Drops `file` (written beside the folder) into it, queries until indexed and searchable by vector, then deletes it. */
async function runCase(server: RunningServer, docs: string, name: string, staged: string, bytes: number, marker: string, waitForVectors: boolean): Promise<CaseResult> {
  const key = join(docs, name);
  const before = await memoryNow(true);
  const memory = watchMemory();
  const started = performance.now();
  let indexedS = 0;
  let doc: DocumentInfo | null = null;
  const ingest = (async () => {
    await rename(staged, key);
    for (;;) {
      const res = await getJson<DocumentInfo>(server.url, `/v1/documents/${encodeURIComponent(key)}`);
      if (res.status === 200 && (res.body.status === 'indexed' || res.body.status === 'failed')) {
        doc = res.body;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    indexedS = (performance.now() - started) / 1000;
    if (doc.status !== 'indexed') throw new Error(`${name}: ${doc.error ?? doc.status}`);
    const last = (await post<Hit[]>(server.url, '/v1/retrieve', { query: marker, k: 1, mode: 'bm25' }))[0]?.text;
    if (!last) throw new Error(`${name}: its last chunk is not found`);
    while (waitForVectors) {
      const hits: Hit[] = await post<Hit[]>(server.url, '/v1/retrieve', { query: last, k: 1, mode: 'vector' });
      if (hits[0]?.text === last) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const t = await traffic(server.url, ingest);
  const ingestS = (performance.now() - started) / 1000;
  const peak = memory.stop();
  // Settled: the snapshot timer and the text index's merges have had their turn, and the parse
  // workers, idle for a minute, have left (they return the memory the parse took).
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const after = await memoryNow(true);
  await unlink(key);
  for (;;) {
    const res = await getJson<DocumentInfo>(server.url, `/v1/documents/${encodeURIComponent(key)}`);
    if (res.status === 404) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 5000));
  const afterDelete = await memoryNow(true);
  const d = doc as DocumentInfo | null;
  return {
    name,
    bytes,
    chunks: d?.chunk_count ?? 0,
    indexedS,
    ingestS,
    queries: t.queries.length,
    queryP50Ms: percentile(t.queries, 50),
    queryWorstMs: Math.max(...t.queries),
    healthWorstMs: t.healthWorstMs,
    heldWorstMs: t.heldWorstMs,
    before,
    peak,
    after,
    afterDelete,
  };
}

const r1 = (n: number) => Math.round(n * 10) / 10;
const ratio = (a: number, b: number) => (b > 0 ? `${r1(a / b)}×` : 'n/a');

const MARKER = 'zanzibarquokka';

/** Writes the small files into `work/docs` and the two large documents beside it. */
async function writeDocuments(work: string): Promise<void> {
  const docs = join(work, 'docs');
  await mkdir(docs, { recursive: true });
  await writeFile(join(docs, 'small.txt'), 'The quick brown fox jumps over the lazy dog.');
  for (let i = 0; i < SMALL_FILES; i++) await writeFile(join(docs, `note-${i}.txt`), syntheticText(2000, 100 + i));
  await writeFile(join(work, 'book.txt'), `${syntheticText(TEXT_MB * MB - 200)}\n\n${MARKER} closes the book.`);
  await writeFile(join(work, 'wide.csv'), wideCsv(CSV_COLUMNS, 1));
}

async function main(): Promise<void> {
  if (!global.gc) console.warn('run with --expose-gc (npm run bench:large does) for memory figures after a full collection');
  const work = join(tmpdir(), `livedex-large-${process.pid}`);
  const docs = join(work, 'docs');
  // Generated by another process: building 31 MB of text here would leave its garbage in the
  // memory figures of the server.
  const writer = spawnSync(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, ...process.argv.slice(2), '--write', work], { stdio: 'inherit' });
  if (writer.status !== 0) throw new Error('writing the documents failed');
  const marker = MARKER;
  const book = join(work, 'book.txt');
  const csv = join(work, 'wide.csv');
  const bookBytes = (await stat(book)).size;
  const csvBytes = (await stat(csv)).size;
  const config = parseConfig({ data_dir: join(work, 'data'), host: '127.0.0.1', port: 0, sources: [{ fs: { path: docs } }] });
  const startedAt = new Date();
  const server = await serve(config, { logger: createLogger({ level: 'warn' }), registry: builtinRegistry() });
  try {
    let t = performance.now();
    await server.ready;
    const smallIngestS = (performance.now() - t) / 1000;
    // Baseline: the idle index, the same traffic.
    t = performance.now();
    const idle = await traffic(server.url, new Promise((r) => setTimeout(r, IDLE_S * 1000)));
    const idleMemory = await memoryNow(true);
    console.log(`idle: ${idle.queries.length} queries, p50 ${r1(percentile(idle.queries, 50))} ms, worst ${r1(Math.max(...idle.queries))} ms, held ${r1(idle.heldWorstMs)} ms, rss ${idleMemory.rssMb} MB`);
    const cases: CaseResult[] = [];
    for (const [name, staged, mark, vectors, bytes] of [
      ['book.txt', book, marker, true, bookBytes],
      ['wide.csv', csv, `c${CSV_COLUMNS - 1}`, false, csvBytes],
    ] as const) {
      const c = await runCase(server, docs, name, staged, bytes, mark, vectors);
      cases.push(c);
      console.log(JSON.stringify(c));
    }
    const idleP50 = percentile(idle.queries, 50);
    const idleWorst = Math.max(...idle.queries);
    const lines = [
      `# Large documents — ${startedAt.toISOString().slice(0, 10)}`,
      '',
      'Command: `npm run bench:large` (in-process server, default config, hashing embedder, hnsw).',
      `Machine: 2 shared cores, loaded by other work during the run (${process.platform}, node ${process.version}).`,
      `Baseline: the idle index of ${SMALL_FILES + 1} small files (indexed in ${r1(smallIngestS)} s), ${idle.queries.length} hybrid queries over ${IDLE_S} s:`,
      `p50 ${r1(idleP50)} ms, worst ${r1(idleWorst)} ms, /healthz worst ${r1(idle.healthWorstMs)} ms, event loop held at most ${r1(idle.heldWorstMs)} ms, RSS ${idleMemory.rssMb} MB.`,
      '',
      'Ratios are against that baseline. "Held" is main-thread CPU between two ticks of a 10 ms timer (a wait for a core is not counted); "ingest" runs until the last chunk answers a vector query (the text) or is indexed (the CSV).',
      '',
      '| document | size | chunks | indexed | ingest | queries | query p50 | query worst | /healthz worst | held worst |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...cases.map((c) => `| ${c.name} | ${mb(c.bytes)} MB | ${c.chunks} | ${r1(c.indexedS)} s | ${r1(c.ingestS)} s | ${c.queries} | ${r1(c.queryP50Ms)} ms (${ratio(c.queryP50Ms, idleP50)}) | ${r1(c.queryWorstMs)} ms (${ratio(c.queryWorstMs, idleWorst)}) | ${r1(c.healthWorstMs)} ms (${ratio(c.healthWorstMs, idle.healthWorstMs)}) | ${r1(c.heldWorstMs)} ms (${ratio(c.heldWorstMs, idle.heldWorstMs)}) |`),
      '',
      `Memory (MB; after a full collection, except the sampled peak): RSS / JS heap / external. "After indexing" is ${SETTLE_S} s after the ingest, once the parse workers, idle a minute, have left; after a commit of thousands of chunks the engine gives freed memory back to the system, which also returns some of what the process held before, so "after" can be below "before".`,
      '',
      '| document | before | peak | after indexing | after deleting it | RSS after / before |',
      '|---|---|---|---|---|---|',
      ...cases.map((c) => {
        const m = (x: Memory) => `${x.rssMb} / ${x.heapMb} / ${x.externalMb}`;
        return `| ${c.name} | ${m(c.before)} | ${m(c.peak)} | ${m(c.after)} | ${m(c.afterDelete)} | ${ratio(c.after.rssMb, c.before.rssMb)} (peak ${ratio(c.peak.rssMb, c.before.rssMb)}) |`;
      }),
      '',
    ];
    await mkdir(OUT, { recursive: true });
    const stem = join(OUT, `${startedAt.toISOString().slice(0, 10)}-large-document`);
    await writeFile(`${stem}.md`, lines.join('\n'));
    await writeFile(`${stem}.json`, JSON.stringify({ startedAt, idle: { queries: idle.queries.length, p50Ms: idleP50, worstMs: idleWorst, healthWorstMs: idle.healthWorstMs, heldWorstMs: idle.heldWorstMs, memory: idleMemory, smallIngestS }, cases }, null, 2) + '\n');
    console.log(lines.join('\n'));
    console.log(`written: ${stem}.md`);
  } finally {
    await server.close();
    await rm(work, { recursive: true, force: true });
  }
}

const writeTo = process.argv.indexOf('--write');
if (writeTo > 0) await writeDocuments(process.argv[writeTo + 1]!);
else await main();
