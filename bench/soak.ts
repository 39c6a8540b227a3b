/**
 * Soak: a `livedex serve` child process takes a steady stream of edits (modify, create, delete)
 * and queries for a bounded time while its RSS is sampled. Reports the RSS slope (least squares
 * over the second half, MB/min), errors, and query latency p50/p99; checks at the end that the
 * index holds exactly the files on disk.
 *
 *   npm run bench:soak [-- --minutes 10 --edits 1000 --queries 50000 --files 200 --max-slope 8]
 *
 * Exits non-zero on any error, a final mismatch, or a slope above --max-slope MB/min.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { prng } from './synth.js';

const ROOT = resolve(new URL('..', import.meta.url).pathname);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const n = i > 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a number above 0`);
  return n;
}

const MINUTES = arg('minutes', 10);
const EDITS = arg('edits', 1000);
const QUERIES = arg('queries', 50_000);
const FILES = arg('files', 200);
const MAX_SLOPE = arg('max-slope', 8);
const SAMPLE_S = arg('sample-s', MINUTES <= 2 ? 2 : 5);
const WORKERS = arg('workers', 8);

const random = prng(20261123);
const pick = (n: number) => Math.floor(random() * n);

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november'];
const fileName = (i: number) => `doc-${String(i).padStart(4, '0')}.md`;
function fileText(i: number, version: number): string {
  const paras = Array.from({ length: 2 + ((i + version) % 4) }, (_, p) =>
    `## Part ${p}\n\n${Array.from({ length: 60 }, (_, w) => WORDS[(i * 7 + p * 3 + w + version) % WORDS.length]).join(' ')} soakword file${i} v${version}.`);
  return `# Document ${i}\n\n${paras.join('\n\n')}\n`;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'livedex-soak-'));
  const folder = join(work, 'docs');
  await mkdir(folder);
  const versions = new Map<number, number>();
  for (let i = 0; i < FILES; i++) {
    await writeFile(join(folder, fileName(i)), fileText(i, 0));
    versions.set(i, 0);
  }
  const proc = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(ROOT, 'src/cli.ts'), 'serve', folder, '--data-dir', join(work, 'data'), '--port', '0', '--log-level', 'error'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let exitedEarly = false;
  const exited = new Promise<void>((r) => proc.once('exit', () => {
      exitedEarly = true;
      r();
    }));
  const errors: string[] = [];
  const fail = (what: string) => {
    if (errors.length < 20) console.error(`error: ${what}`);
    errors.push(what);
  };
  try {
    const url = await new Promise<string>((res, rej) => {
      let out = '';
      proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        const m = /serving .* at (http:\/\/\S+)/.exec(out);
        if (m) res(m[1]!);
      });
      void exited.then(() => rej(new Error('the server exited before listening')));
    });
    const fileCount = async () => ((await (await fetch(new URL('/v1/statistics', url))).json()) as { file_count: number }).file_count;
    const readyAt = Date.now();
    while ((await fileCount()) < FILES) {
      if (Date.now() - readyAt > 300_000) throw new Error('initial sync did not finish in 5 minutes');
      await sleep(250);
    }
    console.log(`soak: ${MINUTES} min, ${EDITS} edits, ${QUERIES} queries over ${FILES} files (server pid ${proc.pid}, initial sync ${((Date.now() - readyAt) / 1000).toFixed(1)} s)`);

    const durationMs = MINUTES * 60_000;
    const started = Date.now();
    const end = started + durationMs;
    const samples: Array<[number, number]> = [];
    const sampler = setInterval(() => {
      if (!exitedEarly) samples.push([(Date.now() - started) / 60_000, rssMb(proc.pid!)]);
    }, SAMPLE_S * 1000);
    samples.push([0, rssMb(proc.pid!)]);

    // Edits: evenly spaced over the run; mostly rewrites, some deletes and re-creations.
    let edits = 0;
    const editor = (async () => {
      for (; edits < EDITS && Date.now() < end && !exitedEarly; edits++) {
        await sleep(Math.max(0, started + ((edits + 1) * durationMs) / (EDITS + 1) - Date.now()));
        const i = pick(FILES);
        const path = join(folder, fileName(i));
        const v = versions.get(i);
        try {
          if (v !== undefined && random() < 0.05) {
            await unlink(path);
            versions.delete(i);
          } else {
            const next = (v ?? 0) + 1;
            await writeFile(path, fileText(i, next));
            versions.set(i, next);
          }
        } catch (err) {
          fail(`edit of ${fileName(i)}: ${String(err)}`);
        }
      }
    })();

    // Queries: paced to spread QUERIES over the run, by WORKERS clients.
    const latencies: number[] = [];
    let issued = 0;
    const modes = ['hybrid', 'bm25', 'vector'] as const;
    const worker = async () => {
      while (!exitedEarly) {
        const n = issued++;
        if (n >= QUERIES) return;
        const due = started + (n * durationMs) / QUERIES;
        if (due > end) return;
        await sleep(Math.max(0, due - Date.now()));
        if (Date.now() > end + 1000) return;
        const body = { query: `${WORDS[pick(WORDS.length)]} ${WORDS[pick(WORDS.length)]} file${pick(FILES)}`, k: 1 + pick(10), mode: modes[n % 3] };
        const t0 = performance.now();
        try {
          const res = await fetch(new URL('/v1/retrieve', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
          const json = (await res.json()) as unknown;
          if (res.status !== 200 || !Array.isArray(json)) fail(`query → HTTP ${res.status}: ${JSON.stringify(json).slice(0, 200)}`);
          else latencies.push(performance.now() - t0);
        } catch (err) {
          fail(`query: ${String(err)}`);
        }
      }
    };
    await Promise.all([editor, ...Array.from({ length: WORKERS }, worker)]);
    clearInterval(sampler);
    samples.push([(Date.now() - started) / 60_000, rssMb(proc.pid!)]);
    if (exitedEarly) fail('the server exited during the soak');

    // The index must end up holding exactly the files on disk.
    const settleAt = Date.now();
    let indexed = await fileCount();
    while (indexed !== versions.size && Date.now() - settleAt < 120_000) {
      await sleep(500);
      indexed = await fileCount();
    }
    if (indexed !== versions.size) fail(`the index holds ${indexed} documents, the folder ${versions.size} files`);
    for (const [i, v] of [...versions].slice(0, 20)) {
      const res = await fetch(new URL('/v1/retrieve', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: `file${i} v${v}`, k: 20, mode: 'bm25' }) });
      const hits = (await res.json()) as Array<{ text: string; metadata: { path: string } }>;
      if (!hits.some((h) => h.metadata.path.endsWith(fileName(i)) && h.text.includes(`file${i} v${v}.`))) fail(`${fileName(i)} version ${v} is not what the index serves`);
    }

    const second = samples.filter(([t]) => t >= samples[samples.length - 1]![0] / 2);
    const mbPerMin = slope(second);
    const sorted = [...latencies].sort((a, b) => a - b);
    const rss = samples.map(([, y]) => y);
    console.log(
      [
        `duration: ${((Date.now() - started) / 60_000).toFixed(2)} min`,
        `edits: ${edits}`,
        `queries: ${latencies.length} answered (${(latencies.length / ((Date.now() - started) / 1000)).toFixed(0)}/s), p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms`,
        `RSS: start ${rss[0]!.toFixed(0)} MB, max ${Math.max(...rss).toFixed(0)} MB, end ${rss[rss.length - 1]!.toFixed(0)} MB; slope over the second half ${mbPerMin.toFixed(2)} MB/min (${second.length} samples, limit ${MAX_SLOPE})`,
        `errors: ${errors.length}`,
        `end state: ${indexed} documents indexed = ${versions.size} files on disk; the latest version of 20 sampled files served`,
      ].join('\n'),
    );
    if (latencies.length < QUERIES) console.log(`note: ${QUERIES} queries were planned; the machine answered ${latencies.length} in the time`);
    process.exitCode = errors.length > 0 || mbPerMin > MAX_SLOPE ? 1 : 0;
  } finally {
    proc.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (!exitedEarly) proc.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
