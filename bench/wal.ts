/**
 * @module bench/wal — the store's WAL through a first ingest: --files synthetic notes (about
 * five chunks each) in a fresh folder and data dir, served with the `hashing` embedder; prints
 * the largest store.sqlite-wal seen (sampled every 50 ms), its size at ready and the chunks/s.
 *
 *   node --import tsx bench/wal.ts [--files 3000]
 */
import { mkdtemp, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/core/log.js';
import { parseConfig, serve } from '../src/livedex.js';

const i = process.argv.indexOf('--files');
const FILES = i > 0 ? Number(process.argv[i + 1]) : 3000;
const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu'.split(' ');
const note = (n: number) => `# Note ${n}\n\n` + Array.from({ length: 5 }, (_, p) => Array.from({ length: 180 }, (_, w) => WORDS[(n * 13 + p * 7 + w * (p + 3)) % WORDS.length]).join(' ') + ` n${n}p${p}.`).join('\n\n') + '\n';

const base = await mkdtemp(join(tmpdir(), 'livedex-wal-'));
const folder = join(base, 'docs');
const data = join(base, 'data');
await mkdir(folder);
for (let n = 0; n < FILES; n++) await writeFile(join(folder, `n${n}.md`), note(n));
const wal = () => stat(join(data, 'store.sqlite-wal')).then((s) => s.size, () => 0);
const t = performance.now();
const server = await serve(parseConfig({ data_dir: data, port: 0, embedder: 'hashing', sources: [{ fs: { path: folder } }] }), { logger: silentLogger });
let largest = 0;
const timer = setInterval(() => void wal().then((s) => (largest = Math.max(largest, s))), 50);
await server.ready;
const s = (performance.now() - t) / 1000;
clearInterval(timer);
const atReady = await wal();
largest = Math.max(largest, atReady);
const { chunks } = await server.index.status();
await server.close();
console.log(`${FILES} files, ${chunks} chunks in ${s.toFixed(1)} s (${(chunks / s).toFixed(0)} chunks/s): store.sqlite-wal largest ${(largest / 2 ** 20).toFixed(1)} MiB, at ready ${(atReady / 2 ** 20).toFixed(1)} MiB, store.sqlite ${((await stat(join(data, 'store.sqlite'))).size / 2 ** 20).toFixed(1)} MiB`);
await rm(base, { recursive: true, force: true });
