/**
 * Parsing throughput: a small plain text parsed on the main thread against in a worker (same
 * run), files/s per format on the shared corpus, 50 generated PDFs with 1 worker against 2, and
 * a 100-page PDF from write to queryable. `npm run bench:parse` (`-- --micro` for the first only)
 */
import { cp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { readFile } from 'node:fs/promises';
import { silentLogger } from '../src/core/log.js';
import { builtinRegistry } from '../src/plugins.js';
import { ParseSandbox } from '../src/core/sandbox.js';
import { parseConfig, serve } from '../src/livedex.js';
import { makePdf } from '../tests/helpers/pdf.js';
import { arg, postJson } from './lib.js';

const corpus = resolve(arg('corpus', new URL('../../shared/data/docs', import.meta.url).pathname));
const work = join(new URL('.', import.meta.url).pathname, '.cache', 'parse');
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
const rssMb = () => process.resourceUsage().maxRSS / 1024;

/** Indexes `folder` from scratch with `workers` parse workers; returns the seconds to ready. */
async function indexOnce(folder: string, workers: number): Promise<{ seconds: number; failed: number; chunks: number }> {
  const dataDir = join(work, `data-${workers}-${Math.random().toString(36).slice(2)}`);
  const config = parseConfig({ data_dir: dataDir, port: 0, sources: [{ fs: { path: folder, reconcile_interval_s: 0 } }], sandbox: { workers } });
  const t = performance.now();
  const server = await serve(config, { logger: silentLogger });
  await server.ready;
  const seconds = (performance.now() - t) / 1000;
  const s = await server.index.status();
  await server.close();
  return { seconds, failed: s.documents.failed, chunks: s.chunks };
}

// 0. One small plain text (a SciFact abstract's size), parsed 2,000 times: by the parser on this
// thread, through the sandbox with text in process (the default), and through a worker.
{
  const text = Buffer.from(`${'The committee reviewed the findings and recorded them in detail. '.repeat(24)}\n`);
  const input = () => ({ key: 'a.txt', bytes: new Uint8Array(text), extension: '.txt', metadata: {} });
  const registry = builtinRegistry();
  const ref = { name: 'text', module: registry.get('parser', 'text').module! };
  const local = await registry.create('parser', 'text', {}, { logger: silentLogger, dataDir: work });
  const N = 2_000;
  const time = async (parse: (i: ReturnType<typeof input>) => Promise<unknown>): Promise<number> => {
    for (let i = 0; i < 50; i++) await parse(input()); // warm: the worker loads its parser
    const t0 = performance.now();
    // 16 in flight, as the pipeline keeps several files parsing at once.
    for (let i = 0; i < N; i += 16) await Promise.all(Array.from({ length: 16 }, () => parse(input())));
    return (performance.now() - t0) / N;
  };
  await time((i) => local.parse(i)); // JIT warm-up of the parser itself
  const here = await time((i) => local.parse(i));
  const inProcess = new ParseSandbox({ logger: silentLogger, dataDir: work, workers: 2 });
  const wrapped = inProcess.wrap(local, ref);
  const defaultPath = await time((i) => wrapped.parse(i));
  await inProcess.close();
  const sandboxed = new ParseSandbox({ logger: silentLogger, dataDir: work, workers: 2, in_process: [] });
  const inWorker = sandboxed.wrap(local, ref);
  const worker = await time((i) => inWorker.parse(i));
  await sandboxed.close();
  const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
  console.log(`plain text, ${text.byteLength} bytes, ${N} parses: parser alone ${us(here)} each, through the sandbox (text in process, the default) ${us(defaultPath)} (${(defaultPath / here).toFixed(2)}×), in a worker (in_process: []) ${us(worker)} (${(worker / here).toFixed(1)}×)`);
}
if (process.argv.includes('--micro')) process.exit(0);

// 1. Files/s per format: each format's files of the shared corpus in a folder of their own.
const byFormat = new Map<string, string[]>();
for (const name of await readdir(corpus)) {
  const ext = extname(name).toLowerCase();
  if (!ext || name === 'MANIFEST.md') continue;
  byFormat.set(ext, [...(byFormat.get(ext) ?? []), name]);
}
// Baseline: an empty folder's time to ready (opening the store, starting the parse workers).
const empty = join(work, 'empty');
await mkdir(empty);
const baseline = (await indexOnce(empty, 2)).seconds;
console.log(`shared corpus (${corpus}), 2 workers; an empty folder is ready in ${baseline.toFixed(2)} s, subtracted below:`);
for (const [ext, names] of [...byFormat].sort()) {
  const folder = join(work, `corpus${ext.replace('.', '-')}`);
  await mkdir(folder);
  let bytes = 0;
  for (const n of names) {
    await cp(join(corpus, n), join(folder, n));
    bytes += (await stat(join(corpus, n))).size;
  }
  const r = await indexOnce(folder, 2);
  const work_s = Math.max(0.001, r.seconds - baseline);
  console.log(`  ${ext.padEnd(6)} ${names.length} files, ${(bytes / 1024 / 1024).toFixed(1)} MB: ${work_s.toFixed(2)} s beyond the baseline (${(names.length / work_s).toFixed(1)} files/s, ${r.failed} failed, ${r.chunks} chunks)`);
}

// 2. 50 PDFs of 20 pages each: 1 worker against 2.
const pdfs = join(work, 'pdfs');
await mkdir(pdfs);
const sentence = (i: number, p: number) => `Report ${i} page ${p}: the committee reviewed item ${i * 100 + p} and recorded its findings in detail.`;
for (let i = 0; i < 50; i++) {
  const pages = Array.from({ length: 20 }, (_, p) => Array.from({ length: 40 }, (_, l) => `${sentence(i, p)} line ${l}`).join('\n'));
  await writeFile(join(pdfs, `report-${i}.pdf`), makePdf(pages));
}
// Parsing alone (the sandbox, as the pipeline calls it), then the whole ingest.
const pdfFiles = (await readdir(pdfs)).map((n) => join(pdfs, n));
async function parseAll(workers: number): Promise<number> {
  const sandbox = new ParseSandbox({ logger: silentLogger, dataDir: work, workers });
  try {
    await Promise.all(Array.from({ length: workers }, () => sandbox.parse({ name: 'text' }, { key: 'warm.txt', bytes: Buffer.from('warm'), extension: '.txt', metadata: {} })));
    const t0 = performance.now();
    await Promise.all(pdfFiles.map(async (f) => sandbox.parse({ name: 'pdf' }, { key: f, bytes: await readFile(f), extension: '.pdf', metadata: {} })));
    return (performance.now() - t0) / 1000;
  } finally {
    await sandbox.close();
  }
}
const parse1 = await parseAll(1);
const parse2 = await parseAll(2);
console.log(`parsing 50 PDFs × 20 pages: 1 worker ${parse1.toFixed(2)} s (${(1000 / parse1).toFixed(0)} pages/s), 2 workers ${parse2.toFixed(2)} s (${(1000 / parse2).toFixed(0)} pages/s): ${(parse1 / parse2).toFixed(2)}× faster with 2`);
const one = await indexOnce(pdfs, 1);
const two = await indexOnce(pdfs, 2);
console.log(`indexing them (parse + split + embed + commit): 1 worker ${one.seconds.toFixed(2)} s, 2 workers ${two.seconds.toFixed(2)} s: ${(one.seconds / two.seconds).toFixed(2)}× (on 2 cores the main thread's split/embed/commit shares the cores with the workers)`);

// 3. A 100-page PDF, from write to queryable, on a running server.
const live = join(work, 'live');
await mkdir(live);
await writeFile(join(live, 'seed.txt'), 'seed\n');
const server = await serve(parseConfig({ data_dir: join(work, 'data-live'), port: 0, sources: [{ fs: { path: live, reconcile_interval_s: 0 } }] }), { logger: silentLogger });
await server.ready;
const token = `hundredpagetoken${Date.now()}`;
// The token opens the last line of the last page (text past the right edge of a page is not read).
const pages = Array.from({ length: 100 }, (_, p) => Array.from({ length: 40 }, (_, l) => `${p === 99 && l === 39 ? `${token} ` : ''}${sentence(7, p)} line ${l}`).join('\n'));
const t = performance.now();
await writeFile(join(live, 'hundred.pdf'), makePdf(pages));
let found = false;
while (!found && performance.now() - t < 120_000) {
  found = (await postJson<unknown[]>(new URL('/v1/retrieve', server.url).toString(), { query: token, k: 1, mode: 'bm25' })).length > 0;
  if (!found) await new Promise((r) => setTimeout(r, 10));
}
console.log(found ? `100-page PDF: write → queryable ${((performance.now() - t) / 1000).toFixed(2)} s` : '100-page PDF: NOT queryable after 120 s');
await server.close();
console.log(`peak RSS of this process: ${rssMb().toFixed(0)} MB (parse workers are threads of it; this run opened ${byFormat.size + 4} indexes one after another)`);
