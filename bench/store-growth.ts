/**
 * Store growth: a server's pipeline takes the same 100 documents edited over and over. Each
 * cycle edits every document (one of its four paragraphs changes, so the other chunks keep
 * their cached embeddings) and waits until the cycle is indexed. The edits go straight into
 * the pipeline, as a source would send them: the push route's own spool (two fsyncs per
 * document) would make this a benchmark of the disk's fsync instead. Prints the store file (with its WAL) and the
 * data dir size after 100 and after 1,000 cycles, their ratio, and the rows of the embedding
 * cache and the change log; then the same 100 cycles with housekeeping off, for comparison.
 *
 *   npm run bench:store [-- --cycles 1000 --files 100 --grace-s 10 --interval-s 2]
 *
 * Exits non-zero when the store grows by more than --max-ratio (default 1.5) between the first
 * checkpoint and the last.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEngine } from '../src/engine/index.js';
import { createLogger } from '../src/core/log.js';
import { parseConfig, serve, type RunningServer } from '../src/livedex.js';
import { builtinRegistry } from '../src/plugins.js';
import type { Change } from '../src/core/types.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const n = i > 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a number above 0`);
  return n;
}

const CYCLES = arg('cycles', 1000);
const FILES = arg('files', 100);
const GRACE_S = arg('grace-s', 10);
const INTERVAL_S = arg('interval-s', 2);
const MAX_RATIO = arg('max-ratio', 1.5);
const CHECKPOINTS = [...new Set([Math.min(100, CYCLES), CYCLES])];

const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango'.split(' ');
/** Document `i` at `cycle`: paragraph `cycle % 4` carries the cycle, the other three stay as they were. */
function docText(i: number, cycle: number): string {
  const paras = Array.from({ length: 4 }, (_, p) => {
    // Paragraph p last changed at the latest cycle ≤ `cycle` that is p modulo 4.
    const rev = Math.max(0, cycle - ((cycle - p + 4) % 4));
    const words = Array.from({ length: 90 }, (_, w) => WORDS[(i * 7 + p * 3 + w * (rev + 1)) % WORDS.length]).join(' ');
    return `## Part ${p}\n\n${words} doc${i} part${p} rev${rev}.`;
  });
  return `# Document ${i}\n\n${paras.join('\n\n')}\n`;
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await bytesUnder(path);
    else if (entry.isFile()) total += (await stat(path)).size;
  }
  return total;
}

interface Sample {
  cycle: number;
  /** `store.sqlite` and its WAL. */
  storeBytes: number;
  walBytes: number;
  dataDirBytes: number;
  embeddings: number;
  changeLog: number;
  chunks: number;
  freePages: number;
  seconds: number;
}

async function sample(dataDir: string, cycle: number, started: number): Promise<Sample> {
  const size = async (f: string) => (await stat(join(dataDir, f)).catch(() => ({ size: 0 }))).size;
  const engine = await openEngine(dataDir, { readOnly: true });
  try {
    const [c, s] = await Promise.all([engine.housekeepingCounts(), engine.stats()]);
    return {
      cycle,
      storeBytes: (await size('store.sqlite')) + (await size('store.sqlite-wal')),
      walBytes: await size('store.sqlite-wal'),
      dataDirBytes: await bytesUnder(dataDir),
      embeddings: c.embeddings,
      changeLog: c.changeLog,
      chunks: s.chunks,
      freePages: c.freelistCount,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await engine.close();
  }
}

/** An edit of document `key`, as a source reports it. */
function change(key: string, cycle: number, text: string): Change {
  const bytes = new TextEncoder().encode(text);
  return { kind: 'upsert', doc: { key, version: String(cycle), metadata: { path: key, size: bytes.byteLength }, read: async () => bytes } };
}

async function settled(server: RunningServer, seq: number): Promise<void> {
  for (;;) {
    const s = await server.index.status();
    if (s.lastSeq >= seq && s.queue.depth === 0 && s.queue.inFlight === 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function run(label: string, cycles: number, housekeeping: Record<string, number>): Promise<Sample[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'livedex-store-growth-'));
  const config = parseConfig({
    data_dir: dataDir,
    host: '127.0.0.1',
    port: 0,
    sources: [],
    sandbox: { enabled: false },
    housekeeping,
  });
  const server = await serve(config, { logger: createLogger({ level: 'warn' }), registry: builtinRegistry() });
  const samples: Sample[] = [];
  const started = performance.now();
  try {
    await server.ready;
    const keys = Array.from({ length: FILES }, (_, i) => `bench/doc-${String(i).padStart(3, '0')}.md`);
    let seq = (await server.index.status()).lastSeq;
    for (let cycle = 0; cycle < cycles; cycle++) {
      await server.index.pipeline.enqueue(keys.map((key, i) => change(key, cycle, docText(i, cycle))));
      seq += FILES;
      await settled(server, seq);
      if (CHECKPOINTS.includes(cycle + 1)) {
        // What a steady server holds: the passes that ran meanwhile, plus one now.
        if (housekeeping.interval_s! > 0) await server.index.housekeeper?.run();
        const s = await sample(dataDir, cycle + 1, started);
        samples.push(s);
        console.log(`${label}: ${report(s)}`);
      }
    }
  } finally {
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return samples;
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MB`;
function report(s: Sample): string {
  return `after ${String(s.cycle).padStart(4)} cycles (${s.seconds.toFixed(0)} s): store ${mb(s.storeBytes)} (WAL ${mb(s.walBytes)}, ${s.freePages} free pages), data dir ${mb(s.dataDirBytes)}, ${s.chunks} chunks, ${s.embeddings} embeddings, ${s.changeLog} change-log rows`;
}

console.log(`store growth: ${FILES} documents × ${CYCLES} cycles (each cycle edits every document: one paragraph of four), hashing embedder, cache_grace_s ${GRACE_S}, interval_s ${INTERVAL_S}; ${new Date().toISOString()}`);
const pruned = await run('housekeeping on ', CYCLES, { interval_s: INTERVAL_S, cache_grace_s: GRACE_S });
const first = pruned[0]!;
const last = pruned[pruned.length - 1]!;
const ratio = last.storeBytes / first.storeBytes;
console.log(`housekeeping on: store ${mb(first.storeBytes)} → ${mb(last.storeBytes)} from cycle ${first.cycle} to ${last.cycle}: ratio ${ratio.toFixed(2)} (data dir ${(last.dataDirBytes / first.dataDirBytes).toFixed(2)})`);
const off = await run('housekeeping off', Math.min(100, CYCLES), { interval_s: 0 });
const offLast = off[off.length - 1]!;
console.log(`housekeeping off: after ${offLast.cycle} cycles the store is ${(offLast.storeBytes / first.storeBytes).toFixed(2)}× the pruned one (${offLast.embeddings} vs ${first.embeddings} embeddings)`);
if (ratio > MAX_RATIO) {
  console.error(`the store grew ${ratio.toFixed(2)}× between cycle ${first.cycle} and ${last.cycle} (limit ${MAX_RATIO})`);
  process.exitCode = 1;
}
