/**
 * @module bench/scale — `npm run bench -- --scale 100k|1m`: livedex at a corpus size, each goal of
 * the million-chunk issue beside its target, and the limits measured in the same run.
 *
 * The corpus is `chunkedCorpus` (bench/synth.ts): SciFact sentences in paragraphs the size of one
 * chunk, five to a file (1M chunks in 200k files), one file in a hundred in each group folder.
 * In order:
 *
 * 1. the limits, on the same chunk texts: reading the files, raw hnswlib-node `addPoint` of their
 *    `hashing` vectors with the index's own M and efConstruction (hnswlib-node has no bulk add), and
 *    a raw tantivy index in one commit (`src/engine/examples/tantivy_limit.rs`, run through cargo);
 * 2. the folder variant, the server in its own process (bench/scale-server.ts): first ingest
 *    (chunks/s from 10k to 100k chunks and over the whole, RSS peak), RSS and JS heap while
 *    serving, hybrid p50/p99 over REST with and without a filter keeping 1 % of the documents,
 *    q/s with 1 and 4 clients, the worst query while idle (over two folder reconciles), freshness
 *    of one-file edits while 10,000 other files are ingested, then a restart (first query, ready);
 * 3. the push variant: every document `PUT` by 4 clients with a `group` metadata field, ingest
 *    chunks/s, RSS, hybrid p50/p99 with and without `group == 7`.
 *
 * Writes `bench/results/<date>-scale-<scale>.md` and `.json`. Flags: `--skip-limits`,
 * `--skip-push`, `--idle-s 65`, `--qps-s 10`, `--bulk 10000`, `--vector-thread on|off` (the HNSW
 * index on its own thread, or on the main one, the default; on adds `-thread` to the file names).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import hnswlib from 'hnswlib-node';
import { hnswOptionsSchema } from '../src/indexes/hnsw.js';
import { arg, DEFAULT_DATASET, loadDataset, parseScale, percentile, postJson, scaleName } from './lib.js';
import { chunkedCorpus, chunkedDocument, groupOf, loadSciFactSource, prng } from './synth.js';
import { chunkVectors, row } from './vectors.js';

const here = new URL('.', import.meta.url).pathname;
const root = join(here, '..');
const scale = parseScale(arg('scale', '100k'));
const datasetDir = arg('dataset', DEFAULT_DATASET);
const cache = join(here, '.cache', datasetDir.split('/').pop()!);
const idleS = Number(arg('idle-s', '65'));
const qpsS = Number(arg('qps-s', '10'));
const bulkFiles = Number(arg('bulk', '10000'));
const skipLimits = process.argv.includes('--skip-limits');
const skipPush = process.argv.includes('--skip-push');
const vectorThread = arg('vector-thread', 'off') === 'on';
/** The vector index's options beyond the defaults, in every server's config. */
const vectorIndex = vectorThread ? { vector_index: { hnsw: { thread: true } } } : {};
const DIMS = 384;
const CHUNKS_PER_FILE = 5;
const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
const MB = 2 ** 20;

const dataset = await loadDataset(datasetDir, cache);
let t = performance.now();
const corpus = await chunkedCorpus(dataset.folder, cache, scale, CHUNKS_PER_FILE);
// What an interrupted run left: the freshness stage's bulk folder, and the file it edits.
await rm(join(corpus.folder, 'bulk'), { recursive: true, force: true });
await writeFile(join(corpus.folder, 'g00', '000', 'c0.txt'), chunkedDocument(await loadSciFactSource(dataset.folder), 0, CHUNKS_PER_FILE).text);
log(`corpus: ${corpus.chunks} chunk texts in ${corpus.files} files (${((performance.now() - t) / 1000).toFixed(0)} s)`);
const hnswOpts = hnswOptionsSchema.parse({});

/** Query texts: SciFact's 300, then the first 6–14 words of SciFact sentences (seeded), 1,000 in all. */
async function queryTexts(count: number): Promise<string[]> {
  const out = dataset.queries.map((q) => q.text).slice(0, count);
  const { sentences } = await loadSciFactSource(dataset.folder);
  const rand = prng(0x9e3779b9);
  while (out.length < count) out.push(sentences[Math.floor(rand() * sentences.length)]!.split(/\s+/).slice(0, 6 + Math.floor(rand() * 9)).join(' '));
  return out;
}
const queries = await queryTexts(1000);

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

async function dirBytes(p: string): Promise<number> {
  const s = await stat(p);
  if (!s.isDirectory()) return s.size;
  let total = 0;
  for (const e of await readdir(p)) total += await dirBytes(join(p, e));
  return total;
}

// ───────────── 1. the limits ─────────────

interface Limit {
  name: string;
  seconds: number;
  chunksPerS: number;
  detail: string;
}
const limits: Limit[] = [];
if (!skipLimits) {
  const files = await filesUnder(corpus.folder);
  t = performance.now();
  let bytes = 0;
  for (let i = 0; i < files.length; i += 64) {
    const batch = await Promise.all(files.slice(i, i + 64).map((f) => readFile(f)));
    for (const b of batch) bytes += b.length;
  }
  const readS = (performance.now() - t) / 1000;
  limits.push({ name: 'read the files', seconds: readS, chunksPerS: corpus.chunks / readS, detail: `${files.length} files, ${(bytes / MB).toFixed(0)} MB (${(files.length / readS).toFixed(0)} files/s, page cache warm)` });
  log(`limit: read ${files.length} files in ${readS.toFixed(1)} s`);

  t = performance.now();
  let { vectors, embedS } = await chunkVectors(corpus.chunksFile, corpus.chunks, DIMS);
  log(`vectors: ${embedS === null ? `read from cache in ${((performance.now() - t) / 1000).toFixed(1)} s` : `hashing embedded in ${embedS.toFixed(1)} s`}`);
  const graph = new hnswlib.HierarchicalNSW('cosine', DIMS);
  graph.initIndex({ maxElements: corpus.chunks, m: hnswOpts.m, efConstruction: hnswOpts.ef_construction, allowReplaceDeleted: true });
  let addS = 0;
  for (let i = 0; i < corpus.chunks; i++) {
    const v = row(vectors, i, DIMS);
    const s = performance.now();
    graph.addPoint(v, i + 1, true);
    addS += performance.now() - s;
  }
  addS /= 1000;
  limits.push({ name: 'hnswlib-node addPoint', seconds: addS, chunksPerS: corpus.chunks / addS, detail: `M ${hnswOpts.m}, efConstruction ${hnswOpts.ef_construction}, ${DIMS} dims, one call a vector (the binding has no bulk add)` });
  log(`limit: hnswlib addPoint ${corpus.chunks} in ${addS.toFixed(1)} s`);
  vectors = new Float32Array(0);

  const indexDir = join(cache, `tantivy-limit-${scale}`);
  const res = await new Promise<string>((resolve, reject) => {
    const child = spawn('cargo', ['run', '--quiet', '--release', '--example', 'tantivy_limit', '--', corpus.chunksFile, indexDir, String(CHUNKS_PER_FILE)], { cwd: join(root, 'src', 'engine'), stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`tantivy_limit exited with ${code}`))));
  });
  await rm(indexDir, { recursive: true, force: true });
  const tv = JSON.parse(res.trim().split('\n').pop()!) as { chunks: number; index_s: number; chunks_per_s: number; bytes: number; threads: number; heap: number };
  limits.push({ name: 'tantivy, one commit', seconds: tv.index_s, chunksPerS: tv.chunks_per_s, detail: `0.26 with the engine's schema and writer (${tv.threads} thread, ${tv.heap / 1e6} MB heap), index ${(tv.bytes / MB).toFixed(0)} MB` });
  log(`limit: tantivy ${tv.chunks} in ${tv.index_s.toFixed(1)} s`);
}

// ───────────── the server, in its own process ─────────────

interface Stats {
  chunks: number;
  documents: { total: number; pending: number; indexed: number; failed: number };
  queue: { depth: number; inFlight: number };
  ready: boolean;
  mem?: { heapUsed: number; heapTotal: number; external: number; arrayBuffers: number; rss: number; heapLimit: number };
}

class ServerProcess {
  readonly child: ChildProcess;
  url = '';
  startedAt = 0;
  listeningAt = 0;
  readyAt = 0;
  syncedAt = 0;
  listeningHeap = 0;
  readonly listening: Promise<void>;
  readonly ready: Promise<void>;
  readonly synced: Promise<void>;
  #next = 1;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(config: unknown) {
    this.child = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '--import', 'tsx', join(here, 'scale-server.ts'), JSON.stringify(config)], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let onListening!: () => void;
    let onReady!: () => void;
    let onFail!: (e: Error) => void;
    let onSynced!: () => void;
    this.synced = new Promise((r) => (onSynced = r));
    this.listening = new Promise((r) => (onListening = r));
    this.ready = new Promise((r, j) => {
      onReady = r;
      onFail = j;
    });
    this.child.on('message', (m: { type: string; id?: number; value?: unknown; error?: string; url?: string; startedAt?: number; at?: number; mem?: { heapUsed: number } }) => {
      if (m.type === 'listening') {
        this.url = m.url!;
        this.startedAt = m.startedAt!;
        this.listeningAt = m.at!;
        this.listeningHeap = m.mem!.heapUsed;
        onListening();
      } else if (m.type === 'ready') {
        this.readyAt = m.at!;
        onReady();
      } else if (m.type === 'synced') {
        this.syncedAt = m.at!;
        onSynced();
      } else if (m.type === 'failed') onFail(new Error(m.error));
      else if (m.type === 'reply') {
        const w = this.#waiting.get(m.id!);
        this.#waiting.delete(m.id!);
        if (m.error) w?.reject(new Error(m.error));
        else w?.resolve(m.value);
      }
    });
    this.child.on('exit', (code) => {
      onFail(new Error(`server exited with ${code}`));
      for (const w of this.#waiting.values()) w.reject(new Error(`server exited with ${code}`));
    });
  }

  #ask<T>(type: string): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ type, id });
    });
  }

  stats = () => this.#ask<Stats>('stats');
  count = () => this.#ask<Stats>('count');
  sync = () => this.#ask<null>('sync');
  async close(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r));
    await this.#ask('close');
    await exited;
  }

  /** RSS now and its peak so far (VmHWM), from /proc. */
  async rss(): Promise<{ rss: number; peak: number }> {
    const s = await readFile(`/proc/${this.child.pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  }
}

/** Samples a server's RSS every 250 ms until stopped: the largest value seen. */
function rssSampler(server: ServerProcess): { stop: () => Promise<number> } {
  let max = 0;
  let on = true;
  const loop = (async () => {
    while (on) {
      try {
        max = Math.max(max, (await server.rss()).rss);
      } catch {
        /* exited */
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
      return max;
    },
  };
}

/** Polls the chunk count every 500 ms until `done` resolves: (ms since `from`, chunks). */
async function ingestTimeline(server: ServerProcess, from: number, done: Promise<unknown>): Promise<Array<[number, number]>> {
  const points: Array<[number, number]> = [[0, 0]];
  let finished = false;
  void done.finally(() => (finished = true)).catch(() => undefined);
  while (!finished) {
    await Promise.race([new Promise((r) => setTimeout(r, 500)), done]).catch(() => undefined);
    const s = await server.count().catch(() => null);
    if (s) points.push([performance.now() - from, s.chunks]);
  }
  return points;
}

/** When the timeline passed `chunks` (linear between samples). */
function timeAt(points: Array<[number, number]>, chunks: number): number {
  for (let i = 1; i < points.length; i++) {
    const [t1, c1] = points[i]!;
    const [t0, c0] = points[i - 1]!;
    if (c1 >= chunks) return c1 === c0 ? t1 : t0 + ((chunks - c0) / (c1 - c0)) * (t1 - t0);
  }
  return NaN;
}

interface Latency {
  p50: number;
  p99: number;
  max: number;
  n: number;
}
async function latency(url: string, bodies: object[]): Promise<Latency> {
  const lat: number[] = [];
  for (const b of bodies) {
    const s = performance.now();
    await postJson(url, b);
    lat.push(performance.now() - s);
  }
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), max: Math.max(...lat), n: lat.length };
}

/** Hybrid queries/s with `clients` concurrent clients for `seconds`. */
async function throughput(url: string, clients: number, seconds: number): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = c; performance.now() < until; i += clients) {
        await postJson(url, { query: queries[i % queries.length], k: 10, mode: 'hybrid' });
        done++;
      }
    }),
  );
  return done / seconds;
}

const hybrid = (filter?: string) => queries.map((q) => ({ query: q, k: 10, mode: 'hybrid', ...(filter ? { metadata_filter: filter } : {}) }));

// ───────────── 2. the folder variant ─────────────

const fsData = join(cache, `scale-data-${scale}`);
await rm(fsData, { recursive: true, force: true });
const fsConfig = { data_dir: fsData, port: 0, embedder: 'hashing', ...vectorIndex, sources: [{ fs: { path: corpus.folder } }] };
t = performance.now();
let server = new ServerProcess(fsConfig);
let sampler = rssSampler(server);
await server.listening;
const timeline = await ingestTimeline(server, t, server.ready);
await server.ready;
const ingestS = (performance.now() - t) / 1000;
const ingestPeakRss = Math.max(await sampler.stop(), (await server.rss()).peak);
let st = await server.stats();
const chunks = st.chunks;
const from10k = timeAt(timeline, 10_000);
const to100k = timeAt(timeline, Math.min(100_000, chunks));
const rate10kTo100k = chunks > 10_000 ? ((Math.min(100_000, chunks) - 10_000) / (to100k - from10k)) * 1000 : NaN;
log(`folder ingest: ${chunks} chunks of ${st.documents.total} documents in ${ingestS.toFixed(1)} s (${(chunks / ingestS).toFixed(0)} chunks/s; 10k–100k ${rate10kTo100k.toFixed(0)}/s), peak RSS ${(ingestPeakRss / MB).toFixed(0)} MB`);
const atReady = { ...(await server.rss()), mem: st.mem!, listeningHeap: server.listeningHeap };

const url = new URL('/v1/retrieve', server.url).toString();
const groupFilter = "contains(path, 'g07/')";
// The filter must keep the 1 % it claims: every hit in group 07.
const probe = await postJson<Array<{ metadata: { path: string } }>>(url, { query: queries[0], k: 10, mode: 'hybrid', metadata_filter: groupFilter });
if (probe.length === 0 || probe.some((h) => !h.metadata.path.includes('g07/'))) throw new Error(`the 1 % filter does not filter: ${JSON.stringify(probe.map((h) => h.metadata.path))}`);
sampler = rssSampler(server);
const fsHybrid = await latency(url, hybrid());
const fsFiltered = await latency(url, hybrid(groupFilter));
const qps1 = await throughput(url, 1, qpsS);
const qps4 = await throughput(url, 4, qpsS);
const servingRss = await sampler.stop();
log(`folder queries: hybrid p50 ${fsHybrid.p50.toFixed(1)} / p99 ${fsHybrid.p99.toFixed(1)} ms, filtered ${fsFiltered.p50.toFixed(1)} / ${fsFiltered.p99.toFixed(1)} ms; ${qps1.toFixed(0)} q/s with 1 client, ${qps4.toFixed(0)} with 4; RSS under load ${(servingRss / MB).toFixed(0)} MB`);

// Worst query while the server idles: one query every 200 ms across two folder reconciles (30 s).
const idleLat: number[] = [];
const idleUntil = performance.now() + idleS * 1000;
for (let i = 0; performance.now() < idleUntil; i++) {
  const s = performance.now();
  await postJson(url, { query: queries[i % queries.length], k: 10, mode: 'hybrid' });
  idleLat.push(performance.now() - s);
  await new Promise((r) => setTimeout(r, 200));
}
const idleWorst = Math.max(...idleLat);
log(`idle: worst of ${idleLat.length} queries over ${idleS} s: ${idleWorst.toFixed(1)} ms`);

// Freshness: one-file edits while `bulkFiles` other files are ingested.
const bulkDir = join(corpus.folder, 'bulk');
const src = await loadSciFactSource(dataset.folder);
const beforeBulkCount = await server.count();
const beforeBulk = beforeBulkCount.chunks;
const target = join(corpus.folder, 'g00', '000', 'c0.txt');
const original = await readFile(target, 'utf8');
await mkdir(bulkDir, { recursive: true });
t = performance.now();
const writing = (async () => {
  for (let i = 0; i < bulkFiles; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, bulkFiles - i) }, (_, j) => writeFile(join(bulkDir, `b${i + j}.txt`), chunkedDocument(src, 10_000_000 + i + j, CHUNKS_PER_FILE).text)));
  }
})();
const fresh: number[] = [];
let missed = 0;
let bulkIngested = 0;
for (let e = 0; ; e++) {
  await new Promise((r) => setTimeout(r, 300));
  const token = `freshnesstoken${e}z${scaleName(scale)}`;
  const s = performance.now();
  await writeFile(target, `${original}\n${token}\n`);
  let found = false;
  while (performance.now() - s < 30_000) {
    if ((await postJson<unknown[]>(url, { query: token, k: 1, mode: 'bm25' })).length > 0) {
      found = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  if (found) fresh.push(performance.now() - s);
  else missed++;
  const now = await server.count();
  bulkIngested = now.chunks - beforeBulk;
  // Done when every bulk file is indexed (a file may hold a chunk fewer than CHUNKS_PER_FILE when paragraphs merge).
  if (now.documents.indexed + now.documents.failed >= beforeBulkCount.documents.indexed + beforeBulkCount.documents.failed + bulkFiles || performance.now() - t > 20 * 60_000) break;
}
await writing;
const bulkS = (performance.now() - t) / 1000;
log(`freshness during a bulk of ${bulkFiles} files (${bulkIngested} chunks in ${bulkS.toFixed(0)} s): ${fresh.length} edits, p50 ${percentile(fresh, 50).toFixed(0)} ms, p99 ${percentile(fresh, 99).toFixed(0)} ms, ${missed} not found within 30 s`);
await writeFile(target, original);
await rm(bulkDir, { recursive: true, force: true });
while ((await server.count()).chunks > chunks) await new Promise((r) => setTimeout(r, 500));
await server.sync();
st = await server.stats();
const serving = { ...(await server.rss()), mem: st.mem!, chunks: st.chunks };
await server.close();
const dataDirParts: Record<string, number> = {};
for (const e of await readdir(fsData)) dataDirParts[e] = await dirBytes(join(fsData, e));

// Restart on the same data dir, with one file changed while it was down: the listing behind `ready` must find it.
const downFile = join(corpus.folder, 'g00', '000', 'c0.txt');
const downOriginal = await readFile(downFile, 'utf8');
const downToken = 'whiledownzqx';
await writeFile(downFile, `${downOriginal}\n${downToken}\n`);
t = performance.now();
server = new ServerProcess(fsConfig);
await server.listening;
const restartListeningMs = server.listeningAt - server.startedAt;
const restartUrl = new URL('/v1/retrieve', server.url).toString();
await postJson(restartUrl, { query: 'cancer', k: 3, mode: 'hybrid' });
const restartFirstQueryMs = Date.now() - server.startedAt;
await server.ready;
const restartReadyMs = server.readyAt - server.startedAt;
const restartProcessMs = performance.now() - t;
await server.synced;
const restartSyncedMs = server.syncedAt - server.startedAt;
const downHits = (await postJson(restartUrl, { query: downToken, k: 1, mode: 'bm25' })) as Array<{ metadata: { path: string } }>;
const downFound = downHits[0]?.metadata.path === downFile;
const afterRestart = { ...(await server.rss()), mem: (await server.stats()).mem! };
await server.close();
await writeFile(downFile, downOriginal);
log(`restart on ${chunks} chunks: listening ${restartListeningMs} ms, first query ${restartFirstQueryMs} ms, ready ${restartReadyMs} ms after serve() (process start to ready ${restartProcessMs.toFixed(0)} ms); RSS ${(afterRestart.rss / MB).toFixed(0)} MB`);

// ───────────── 3. the push variant ─────────────

let push: { chunks: number; ingestS: number; peakRss: number; hybrid: Latency; filtered: Latency; rss: number; heapUsed: number } | null = null;
if (!skipPush) {
  const pushData = join(cache, `scale-push-${scale}`);
  await rm(pushData, { recursive: true, force: true });
  server = new ServerProcess({ data_dir: pushData, port: 0, embedder: 'hashing', ...vectorIndex, sources: ['push'] });
  sampler = rssSampler(server);
  await server.listening;
  await server.ready;
  const base = new URL('/v1/documents/', server.url).toString();
  t = performance.now();
  let nextFile = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = nextFile++; i < corpus.files; i = nextFile++) {
        const res = await fetch(`${base}c${i}.txt`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: chunkedDocument(src, i, Math.min(CHUNKS_PER_FILE, corpus.chunks - i * CHUNKS_PER_FILE)).text, metadata: { group: groupOf(i) } }) });
        if (!res.ok) throw new Error(`PUT c${i}.txt → ${res.status}: ${await res.text()}`);
        await res.arrayBuffer();
      }
    }),
  );
  await server.sync();
  const pushS = (performance.now() - t) / 1000;
  const ps = await server.stats();
  const pushUrl = new URL('/v1/retrieve', server.url).toString();
  const filter = 'group == `7`';
  const pprobe = await postJson<Array<{ metadata: { group: number } }>>(pushUrl, { query: queries[0], k: 10, mode: 'hybrid', metadata_filter: filter });
  if (pprobe.length === 0 || pprobe.some((h) => h.metadata.group !== 7)) throw new Error(`the push filter does not filter: ${JSON.stringify(pprobe.map((h) => h.metadata))}`);
  const ph = await latency(pushUrl, hybrid());
  const pf = await latency(pushUrl, hybrid(filter));
  const peak = Math.max(await sampler.stop(), (await server.rss()).peak);
  push = { chunks: ps.chunks, ingestS: pushS, peakRss: peak, hybrid: ph, filtered: pf, rss: (await server.rss()).rss, heapUsed: ps.mem!.heapUsed };
  await server.close();
  await rm(pushData, { recursive: true, force: true });
  log(`push: ${ps.chunks} chunks in ${pushS.toFixed(1)} s (${(ps.chunks / pushS).toFixed(0)}/s), hybrid p50 ${ph.p50.toFixed(1)} / p99 ${ph.p99.toFixed(1)} ms, filtered ${pf.p50.toFixed(1)} / ${pf.p99.toFixed(1)} ms, peak RSS ${(peak / MB).toFixed(0)} MB`);
}

// ───────────── report ─────────────

const date = new Date().toISOString().slice(0, 10);
const name = scaleName(scale);
const stem = `${date}-scale-${name}${vectorThread ? '-thread' : ''}`;
const f0 = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '–');
const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');
const avgRate = chunks / ingestS;
const slowest = limits.length ? limits.reduce((a, b) => (a.chunksPerS < b.chunksPerS ? a : b)) : null;
const serial = limits.length ? 1 / limits.reduce((s, l) => s + 1 / l.chunksPerS, 0) : NaN;
interface Goal {
  goal: string;
  measured: number;
  unit: string;
  target: number;
  atLeast: boolean;
}
const goals: Goal[] = [
  { goal: 'ingest, 10k–100k chunks', measured: rate10kTo100k, unit: 'chunks/s', target: 5000, atLeast: true },
  { goal: `ingest, averaged over all ${chunks} chunks`, measured: avgRate, unit: 'chunks/s', target: 2000, atLeast: true },
  { goal: 'RSS while serving (query load)', measured: servingRss / MB, unit: 'MB', target: 2500, atLeast: false },
  { goal: 'RSS peak during the first ingest', measured: ingestPeakRss / MB, unit: 'MB', target: 3500, atLeast: false },
  { goal: 'JS heap a chunk (live heap after GC, above the empty server\'s, ÷ chunks)', measured: Math.max(0, serving.mem.heapUsed - atReady.listeningHeap) / chunks, unit: 'bytes', target: 100, atLeast: false },
  { goal: 'restart: first query answered', measured: restartFirstQueryMs, unit: 'ms', target: 1000, atLeast: false },
  { goal: 'restart: ready', measured: restartReadyMs, unit: 'ms', target: 3000, atLeast: false },
  { goal: 'restart: the file changed while down is found after the listing', measured: downFound ? 1 : 0, unit: 'found', target: 1, atLeast: true },
  { goal: 'hybrid p50 (REST)', measured: fsHybrid.p50, unit: 'ms', target: 5, atLeast: false },
  { goal: 'hybrid p99 (REST)', measured: fsHybrid.p99, unit: 'ms', target: 25, atLeast: false },
  { goal: 'hybrid p50, filter keeping 1 %', measured: fsFiltered.p50, unit: 'ms', target: 5, atLeast: false },
  { goal: 'hybrid p99, filter keeping 1 %', measured: fsFiltered.p99, unit: 'ms', target: 25, atLeast: false },
  { goal: 'hybrid q/s, 4 concurrent clients', measured: qps4, unit: 'q/s', target: 400, atLeast: true },
  { goal: `worst query while idle (${idleS} s)`, measured: idleWorst, unit: 'ms', target: 50, atLeast: false },
  { goal: `one-file edit queryable p50, during a ${bulkFiles}-file bulk`, measured: percentile(fresh, 50), unit: 'ms', target: 300, atLeast: false },
  { goal: `one-file edit queryable p99, during a ${bulkFiles}-file bulk`, measured: percentile(fresh, 99), unit: 'ms', target: 1000, atLeast: false },
  ...(slowest ? [{ goal: `ingest ÷ the slowest limit (${slowest.name})`, measured: (avgRate / slowest.chunksPerS) * 100, unit: '%', target: 60, atLeast: true }] : []),
];
const met = (g: Goal) => (!Number.isFinite(g.measured) ? '–' : (g.atLeast ? g.measured >= g.target : g.measured <= g.target) ? 'yes' : 'no');
// A ratio above 1 is better than the target, below 1 short of it, whichever way the goal points.
const ratio = (g: Goal) => (g.atLeast ? g.measured / g.target : g.target / g.measured);
const machine = `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GB, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at the end, Node ${process.version}`;
const mem = serving.mem;
const hnswFile = Object.entries(dataDirParts).find(([k]) => /vector|hnsw/.test(k));
const md = [
  `# livedex at ${name} chunks (\`npm run bench -- --scale ${name}${vectorThread ? ' --vector-thread on' : ''}\`), ${date}`,
  '',
  `Offline \`hashing\` embedder (${DIMS} dims), default config (fs source, reconcile every 30 s), HNSW ${vectorThread ? 'on its own thread' : 'on the main thread'}, M ${hnswOpts.m}, efConstruction ${hnswOpts.ef_construction}, ef ${hnswOpts.ef_search}. ${machine}. Corpus: ${corpus.files} files of ${CHUNKS_PER_FILE} chunk-sized paragraphs of SciFact sentences (bench/synth.ts \`chunkedCorpus\`); the index holds ${chunks} chunks. The server runs in its own process; figures are its own.`,
  '',
  '## Goals',
  '',
  'Ratio: above 1 beats the target by that factor, below 1 falls short (measured ÷ target for a floor, target ÷ measured for a ceiling).' + (scale < 1e6 ? ` The goals are set for 1M chunks; this run has ${name}.` : ''),
  '',
  '| goal | measured | target | ratio | met |',
  '|---|---|---|---|---|',
  ...goals.map((g) => `| ${g.goal} | ${g.unit === 'ms' || g.unit === '%' ? f1(g.measured) : f0(g.measured)} ${g.unit} | ${g.atLeast ? '≥' : '≤'} ${g.target} ${g.unit} | ${Number.isFinite(ratio(g)) ? ratio(g).toFixed(2) : '–'}× | ${met(g)} |`),
  '',
  '## The limits, same run, same chunk texts',
  '',
  '| limit | seconds | chunks/s | livedex ingest ÷ limit | detail |',
  '|---|---|---|---|---|',
  ...limits.map((l) => `| ${l.name} | ${f1(l.seconds)} | ${f0(l.chunksPerS)} | ${((avgRate / l.chunksPerS) * 100).toFixed(1)} % | ${l.detail} |`),
  ...(limits.length ? [`| the three one after another | ${f1(corpus.chunks / serial)} | ${f0(serial)} | ${((avgRate / serial) * 100).toFixed(1)} % | what a pipeline that overlaps nothing could reach |`] : []),
  '',
  '## Folder variant',
  '',
  `- first ingest: ${chunks} chunks in ${f1(ingestS)} s, ${f0(avgRate)} chunks/s averaged, ${f0(rate10kTo100k)} chunks/s from 10k to ${Math.min(100_000, chunks)} chunks; peak RSS ${f0(ingestPeakRss / MB)} MB`,
  `- hybrid over REST, ${fsHybrid.n} queries, k=10: p50 ${f1(fsHybrid.p50)} ms, p99 ${f1(fsHybrid.p99)} ms, max ${f1(fsHybrid.max)} ms; with \`metadata_filter: ${groupFilter}\` (1 % of the documents): p50 ${f1(fsFiltered.p50)} ms, p99 ${f1(fsFiltered.p99)} ms, max ${f1(fsFiltered.max)} ms`,
  `- hybrid q/s for ${qpsS} s: ${f0(qps1)} with 1 client, ${f0(qps4)} with 4 (${(qps4 / qps1).toFixed(2)}×)`,
  `- worst of ${idleLat.length} queries (one every 200 ms) over ${idleS} s of idling: ${f1(idleWorst)} ms; p50 ${f1(percentile(idleLat, 50))} ms`,
  `- one-file edits during a bulk of ${bulkFiles} new files (${bulkIngested} chunks ingested in ${f0(bulkS)} s): ${fresh.length} edits found, p50 ${f0(percentile(fresh, 50))} ms, p99 ${f0(percentile(fresh, 99))} ms, max ${f0(Math.max(...fresh))} ms, ${missed} not found within 30 s`,
  `- restart: listening ${restartListeningMs} ms, first query answered ${restartFirstQueryMs} ms, ready ${restartReadyMs} ms after \`serve()\` is called; ${f0(restartProcessMs)} ms from process spawn (Node and tsx start-up included) to ready; the listing behind it done after ${restartSyncedMs} ms, and the file changed while down ${downFound ? 'found' : 'NOT found'}`,
  '',
  '### Memory (server process)',
  '',
  '| when | RSS MB | JS heap used MB | heap bytes a chunk | external MB | array buffers MB |',
  '|---|---|---|---|---|---|',
  `| listening, before the first ingest | – | ${f0(atReady.listeningHeap / MB)} | – | – | – |`,
  `| ready after the first ingest | ${f0(atReady.rss / MB)} | ${f0(atReady.mem.heapUsed / MB)} | ${f0(atReady.mem.heapUsed / chunks)} | ${f0(atReady.mem.external / MB)} | ${f0(atReady.mem.arrayBuffers / MB)} |`,
  `| serving, after the bulk and its removal | ${f0(serving.rss / MB)} | ${f0(mem.heapUsed / MB)} | ${f0(mem.heapUsed / chunks)} | ${f0(mem.external / MB)} | ${f0(mem.arrayBuffers / MB)} |`,
  `| ready after a restart | ${f0(afterRestart.rss / MB)} | ${f0(afterRestart.mem.heapUsed / MB)} | ${f0(afterRestart.mem.heapUsed / chunks)} | ${f0(afterRestart.mem.external / MB)} | ${f0(afterRestart.mem.arrayBuffers / MB)} |`,
  '',
  `Where the serving RSS goes (${f0(serving.rss / MB)} MB, ${f0(serving.rss / chunks)} bytes a chunk): JS heap ${f0(mem.heapTotal / MB)} MB reserved (${f0(mem.heapUsed / MB)} live), external ${f0(mem.external / MB)} MB` +
    (hnswFile ? `, the HNSW graph ≈ its snapshot, ${f0(hnswFile[1] / MB)} MB` : '') +
    `, the rest (${f0((serving.rss - mem.heapTotal - mem.external - (hnswFile?.[1] ?? 0)) / MB)} MB) native: SQLite page cache, tantivy's mmapped segments, allocator slack, code. Data dir: ` +
    Object.entries(dataDirParts).map(([k, v]) => `${k} ${f0(v / MB)} MB`).join(', ') + '.',
  '',
  ...(push
    ? [
        '## Push variant',
        '',
        `${corpus.files} documents \`PUT\` by 4 clients (\`{"text", "metadata": {"group"}}\`): ${push.chunks} chunks in ${f1(push.ingestS)} s = ${f0(push.chunks / push.ingestS)} chunks/s, peak RSS ${f0(push.peakRss / MB)} MB, RSS after ${f0(push.rss / MB)} MB, JS heap ${f0(push.heapUsed / push.chunks)} bytes a chunk. Hybrid p50 ${f1(push.hybrid.p50)} / p99 ${f1(push.hybrid.p99)} ms; with \`group == 7\` (1 %): p50 ${f1(push.filtered.p50)} / p99 ${f1(push.filtered.p99)} ms.`,
        '',
      ]
    : []),
].join('\n');
console.log(`\n${md}`);
const resultsDir = join(here, 'results');
await mkdir(resultsDir, { recursive: true });
await writeFile(join(resultsDir, `${stem}.md`), `${md}\n`);
await writeFile(
  join(resultsDir, `${stem}.json`),
  JSON.stringify({ date: new Date().toISOString(), machine, scale, corpus: { files: corpus.files, chunks: corpus.chunks, folder: relative(root, corpus.folder) }, hnsw: hnswOpts, limits, goals, ingest: { chunks, ingestS, rate10kTo100k, avgRate, peakRss: ingestPeakRss, timeline }, queries: { hybrid: fsHybrid, filtered: fsFiltered, qps1, qps4, idleWorst }, freshness: { edits: fresh, missed, bulkFiles, bulkS }, restart: { restartListeningMs, restartFirstQueryMs, restartReadyMs, restartProcessMs, restartSyncedMs, downFound }, memory: { atReady, serving, afterRestart, servingRssUnderLoad: servingRss, dataDirParts }, push }, null, 1),
);
console.log(`\nresults: ${join(resultsDir, `${stem}.md`)} (+ .json)`);
