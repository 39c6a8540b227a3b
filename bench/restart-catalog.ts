/**
 * @module bench/restart-catalog — the catalog's load on a restart, the way it was (pages of
 * listChunks, grouped and sorted in JS) beside one loadCatalog call: wall and main-thread CPU
 * time, median of --runs, on the data dir bench/restart.ts built.
 *
 *   node --import tsx bench/restart-catalog.ts [--files 6000] [--runs 5]
 */
import { join } from 'node:path';
import { openEngine, type Engine } from '../src/engine/index.js';
import { Catalog } from '../src/core/catalog.js';

const num = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const data = join(import.meta.dirname, '.cache', `restart-${num('files', 6000)}`, 'data');
const RUNS = num('runs', 5);

/** The load before: 5,000-row pages by id, each document's chunks gathered and put in ordinal order. */
async function paged(engine: Engine): Promise<number> {
  const pending = new Map<string, { ids: number[]; ordinals: number[]; metadata: unknown[] }>();
  let after = 0;
  for (;;) {
    const rows = await engine.listChunks(after, 5000);
    for (const row of rows) {
      let doc = pending.get(row.docKey);
      if (!doc) pending.set(row.docKey, (doc = { ids: [], ordinals: [], metadata: [] }));
      doc.ids.push(row.id);
      doc.ordinals.push(row.ordinal);
      doc.metadata.push(row.metadata);
    }
    if (rows.length < 5000) break;
    after = rows[rows.length - 1]!.id;
  }
  let n = 0;
  for (const doc of pending.values()) n += doc.ids.map((_, i) => i).sort((a, b) => doc.ordinals[a]! - doc.ordinals[b]!).length;
  return n;
}

async function time(what: () => Promise<number>): Promise<{ ms: number; cpuMs: number; n: number }> {
  const cpu = process.cpuUsage();
  const t = performance.now();
  const n = await what();
  const ms = performance.now() - t;
  const c = process.cpuUsage(cpu);
  return { ms, cpuMs: (c.user + c.system) / 1000, n };
}

const engine = await openEngine(data, { readOnly: true });
const old: { ms: number; cpuMs: number; n: number }[] = [];
const now: { ms: number; cpuMs: number; n: number }[] = [];
for (let r = 0; r < RUNS; r++) {
  old.push(await time(() => paged(engine)));
  now.push(await time(async () => (await Catalog.load(engine)).size));
}
await engine.close();
const med = (xs: { ms: number; cpuMs: number }[], k: 'ms' | 'cpuMs') => xs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`catalog of ${now[0]!.n} chunks (${old[0]!.n} paged), median of ${RUNS}: pages of listChunks ${med(old, 'ms').toFixed(0)} ms wall, ${med(old, 'cpuMs').toFixed(0)} ms CPU; one loadCatalog call + Catalog.load ${med(now, 'ms').toFixed(0)} ms wall, ${med(now, 'cpuMs').toFixed(0)} ms CPU (${(med(old, 'ms') / med(now, 'ms')).toFixed(1)}× faster wall, ${(med(old, 'cpuMs') / med(now, 'cpuMs')).toFixed(1)}× less CPU; the paged figure leaves out the catalog's own placing)`);
