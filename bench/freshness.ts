/**
 * Freshness under a bulk load: a server starts over a folder of --files small notes (its first
 * listing is the bulk ingest) and, while that sync runs, one other file is edited at a time;
 * each edit is timed from the write to the first REST query that finds it. Edits go one after
 * another (the next once the last is found, after a short pause) and only those that answered
 * while the sync still ran count; rounds repeat on a fresh data dir until --edits are measured.
 * The same bulk ingest runs once without edits, for its rate beside the one with edits, and
 * the same edits are timed on the idle server after the sync, as the baseline an edit costs.
 *
 *   npm run bench:freshness [-- --files 10000 --edits 50 --out bench/results/<date>-freshness.txt]
 *
 * An edit not found within 30 s is a failed sample: counted, reported, and taken as 30 s in the
 * percentiles (a lower bound of its real wait). Exits non-zero when an edit failed, or the edits'
 * p50 passes 300 ms or their p99 passes 1 s.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/core/log.js';
import { parseConfig, serve, type RunningServer } from '../src/livedex.js';
import { builtinRegistry } from '../src/plugins.js';
import { arg, percentile, postJson } from './lib.js';

const FILES = Number(arg('files', '10000'));
const EDITS = Number(arg('edits', '50'));
const OUT = arg('out', '');
const PAUSE_MS = 20;
const POLL_MS = 5;
/** An edit not queryable after this long is a failed sample. */
const TIMEOUT_MS = 30_000;

interface Status {
  ready: boolean;
  documents: { indexed: number };
  chunks: number;
}

interface Hit {
  metadata: { path?: unknown };
}

async function status(url: string): Promise<Status> {
  return (await (await fetch(`${url}/v1/status`)).json()) as Status;
}

/** A folder of `FILES` notes in directories of 100, and one directory of the files the edits rewrite. */
async function makeFolder(): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'livedex-fresh-'));
  for (let d = 0; d < FILES / 100; d++) {
    const dir = join(folder, `d${d}`);
    await mkdir(dir);
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const n = d * 100 + i;
        return writeFile(join(dir, `n${n}.txt`), `Note ${n} of the bulk load: a small file about item${n}, filed under shelf${n % 97} and box${n % 89}.\n`);
      }),
    );
  }
  return folder;
}

async function start(folder: string, dataDir: string): Promise<RunningServer> {
  const config = parseConfig({ data_dir: dataDir, host: '127.0.0.1', port: 0, embedder: 'hashing', sources: [{ fs: { path: folder, reconcile_interval_s: 0 } }] });
  return serve(config, { logger: createLogger({ level: 'warn' }), registry: builtinRegistry() });
}

/** Writes an edit and polls the REST query until it is found; returns the milliseconds, or null past `TIMEOUT_MS`. */
async function timeEdit(url: string, folder: string, n: number): Promise<number | null> {
  const token = `zq${n}x${Math.random().toString(36).slice(2, 8)}`;
  const name = `edit${n % 10}.txt`;
  const t0 = performance.now();
  await writeFile(join(folder, 'edits', name), `An edit with the token ${token}, made during the bulk load.\n`);
  for (;;) {
    const hits = await postJson<Hit[]>(`${url}/v1/retrieve`, { query: token, k: 1, mode: 'bm25' });
    if (hits.some((h) => String(h.metadata.path).endsWith(name))) return performance.now() - t0;
    if (performance.now() - t0 > TIMEOUT_MS) return null;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

interface Round {
  seconds: number;
  chunks: number;
  during: number[];
  /** Edits made during the sync that were not found within `TIMEOUT_MS`. */
  failed: number;
}

/** One bulk ingest from an empty data dir; with `edits`, edits run until the sync ends or enough are measured. */
async function round(folder: string, edits: { want: number; next: () => number } | null): Promise<Round> {
  const dataDir = await mkdtemp(join(tmpdir(), 'livedex-fresh-data-'));
  const t0 = performance.now();
  const server = await start(folder, dataDir);
  let synced = false;
  const ready = server.ready.then(() => {
    synced = true;
    return performance.now() - t0;
  });
  const during: number[] = [];
  let failed = 0;
  try {
    if (edits) {
      // Start once the sync is under way, as an edit in the middle of a load would.
      while (!synced && (await status(server.url)).documents.indexed < 200) await new Promise((r) => setTimeout(r, 20));
      while (!synced && during.length < edits.want) {
        const ms = await timeEdit(server.url, folder, edits.next());
        if (ms === null) failed++;
        else if (!synced) during.push(ms);
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
    }
    const ms = await ready;
    const s = await status(server.url);
    return { seconds: ms / 1000, chunks: s.chunks, during, failed };
  } finally {
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const folder = await makeFolder();
  await mkdir(join(folder, 'edits'));
  for (let i = 0; i < 10; i++) await writeFile(join(folder, 'edits', `edit${i}.txt`), `An edit target, number ${i}.\n`);
  let n = 0;
  const next = () => n++;
  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    console.log(line);
  };
  try {
    say(`# freshness ${new Date().toISOString().slice(0, 10)}: ${FILES.toLocaleString('en')} files (+10 edit targets) in a watched folder, hashing embedder, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const plain = await round(folder, null);
    const during: number[] = [];
    let failed = 0;
    const withEdits: Round[] = [];
    while (during.length + failed < EDITS && withEdits.length < 10) {
      const r = await round(folder, { want: EDITS - during.length - failed, next });
      withEdits.push(r);
      during.push(...r.during);
      failed += r.failed;
    }
    const found = during.length;
    for (let i = 0; i < failed; i++) during.push(TIMEOUT_MS);

    // The baseline: the same edits on the idle server once its sync is done.
    const dataDir = await mkdtemp(join(tmpdir(), 'livedex-fresh-data-'));
    const idle: number[] = [];
    let idleFailed = 0;
    const server = await start(folder, dataDir);
    try {
      await server.ready;
      for (let i = 0; i < 20; i++) {
        const ms = await timeEdit(server.url, folder, next());
        if (ms === null) idleFailed++;
        idle.push(ms ?? TIMEOUT_MS);
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
    } finally {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }

    const rate = (r: Round) => r.chunks / r.seconds;
    const editedRate = withEdits.reduce((a, r) => a + rate(r), 0) / withEdits.length;
    const p50 = percentile(during, 50);
    const p99 = percentile(during, 99);
    const fmt = (x: number) => `${Math.round(x)} ms`;
    say('');
    say(`edits during the bulk ingest: ${during.length} in ${withEdits.length} round(s): ${found} found, ${failed} failed (not queryable after ${TIMEOUT_MS / 1000} s, taken as ${TIMEOUT_MS / 1000} s below)`);
    say(`  write → queryable  p50 ${fmt(p50)}  p99 ${fmt(p99)}  max ${fmt(Math.max(...during))}   limits 300 ms / 1000 ms   p50/limit ${(p50 / 300).toFixed(2)}  p99/limit ${(p99 / 1000).toFixed(2)}`);
    say(`  the same edits on the idle server: p50 ${fmt(percentile(idle, 50))}  p99 ${fmt(percentile(idle, 99))}   (during bulk / idle: p50 ${(p50 / percentile(idle, 50)).toFixed(2)}×)${idleFailed > 0 ? `, ${idleFailed} failed` : ''}`);
    say(`bulk ingest, ${FILES.toLocaleString('en')} files from an empty data dir to ready:`);
    say(`  without edits  ${plain.seconds.toFixed(1)} s  ${Math.round(rate(plain))} chunks/s`);
    say(`  with edits     ${(withEdits.reduce((a, r) => a + r.seconds, 0) / withEdits.length).toFixed(1)} s  ${Math.round(editedRate)} chunks/s  (${(editedRate / rate(plain)).toFixed(2)} of the rate without edits)`);
    say(`load after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    if (OUT) await writeFile(OUT, lines.join('\n') + '\n');
    if (failed > 0 || idleFailed > 0 || !(p50 <= 300 && p99 <= 1000)) process.exitCode = 1;
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

await main();
