/**
 * @module bench/restart — how long a restart takes before it serves: builds (once) a folder of
 * --files synthetic notes and its data dir, then restarts a server on it --runs times in its own
 * process (bench/scale-server.ts) and prints, after `serve()` is called, when it listens, when the
 * first hybrid query is answered and when it is ready, beside the process start. With --cpu-prof
 * the server processes write V8 CPU profiles into --prof-dir.
 *
 *   node --import tsx bench/restart.ts [--files 6000] [--runs 3] [--cpu-prof --prof-dir DIR]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const num = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const str = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const FILES = num('files', 6000);
const RUNS = num('runs', 3);
const PROF = process.argv.includes('--cpu-prof');
const PROF_DIR = str('prof-dir', join(root, 'bench', '.cache', 'restart-prof'));
const base = join(root, 'bench', '.cache', `restart-${FILES}`);
const folder = join(base, 'docs');
const data = join(base, 'data');

const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu'.split(' ');
/** Note `i`: five paragraphs of ~180 words each, so about five chunks. */
function note(i: number): string {
  const paras = Array.from({ length: 5 }, (_, p) => Array.from({ length: 180 }, (_, w) => WORDS[(i * 13 + p * 7 + w * (p + 3)) % WORDS.length]).join(' ') + ` n${i}p${p}.`);
  return `# Note ${i}\n\n${paras.join('\n\n')}\n`;
}

interface Run { listening: number; firstQuery: number; ready: number; processToReady: number; chunks: number }

function start(execArgv: string[]): Promise<Run> {
  const spawnedAt = performance.now();
  const config = { data_dir: data, port: 0, embedder: 'hashing', sources: [{ fs: { path: folder } }] };
  const child = spawn(process.execPath, [...execArgv, '--import', 'tsx', join(here, 'scale-server.ts'), JSON.stringify(config)], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let startedAt = 0;
    let listening = 0;
    let firstQuery = 0;
    let url = '';
    let queried: Promise<void> = Promise.resolve();
    const replies = new Map<number, (v: unknown) => void>();
    const ask = (type: string, id: number) => new Promise<unknown>((r) => {
      replies.set(id, r);
      child.send({ type, id });
    });
    child.on('message', (m: { type: string; startedAt?: number; at?: number; url?: string; id?: number; value?: unknown; error?: string }) => {
      if (m.type === 'listening') {
        startedAt = m.startedAt!;
        listening = m.at! - startedAt;
        url = new URL('/v1/retrieve', m.url!).toString();
        queried = fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'charlie n17p2', k: 3, mode: 'hybrid' }) })
          .then((r) => { if (!r.ok) throw new Error(`first query: ${r.status}`); return r.json(); })
          .then(() => { firstQuery = Date.now() - startedAt; });
      } else if (m.type === 'ready') {
        const ready = m.at! - startedAt;
        const processToReady = performance.now() - spawnedAt;
        void (async () => {
          await queried;
          const s = (await ask('count', 1)) as { chunks: number };
          await ask('close', 2);
          resolve({ listening, firstQuery, ready, processToReady, chunks: s.chunks });
        })().catch(reject);
      } else if (m.type === 'failed') reject(new Error(m.error));
      else if (m.type === 'reply') replies.get(m.id!)?.(m.value);
    });
    child.on('exit', (code) => { if (code) reject(new Error(`server exited with ${code}`)); });
  });
}

if (!existsSync(data)) {
  await mkdir(folder, { recursive: true });
  for (let i = 0; i < FILES; i++) await writeFile(join(folder, `n${i}.md`), note(i));
  const t = performance.now();
  const first = await start([]);
  console.log(`built ${data}: ${first.chunks} chunks from ${FILES} files in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
if (PROF) await mkdir(PROF_DIR, { recursive: true });
const runs: Run[] = [];
for (let r = 0; r < RUNS; r++) {
  const run = await start(PROF ? ['--cpu-prof', '--cpu-prof-dir', PROF_DIR] : []);
  runs.push(run);
  console.log(`restart ${r + 1} on ${run.chunks} chunks: listening ${run.listening} ms, first query ${run.firstQuery} ms, ready ${run.ready} ms after serve(); process start to ready ${run.processToReady.toFixed(0)} ms`);
}
const median = (k: keyof Run) => runs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;
console.log(`median of ${RUNS}: listening ${median('listening')} ms, first query ${median('firstQuery')} ms, ready ${median('ready')} ms, process start to ready ${median('processToReady').toFixed(0)} ms`);
