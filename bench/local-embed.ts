/**
 * Throughput of the `local` embedder alone on SciFact documents: texts per second, CPU
 * seconds per text (the figure that survives a busy machine; the model's thread included) and
 * the longest the main thread's event loop went without running a 5 ms timer while the model ran.
 * `node --import tsx bench/local-embed.ts [--model DIR] [--docs 128] [--threads N]`
 */
import { readdir, readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { LocalWorkerEmbedder } from '../src/models/local.js';
import { DEFAULT_MODEL_DIR, fetchMiniLM } from './fetch-model.js';
import { arg, DEFAULT_DATASET, loadDataset } from './lib.js';

const model = process.argv.includes('--model') ? arg('model', '') : await fetchMiniLM(DEFAULT_MODEL_DIR, () => {});
const count = Number(arg('docs', '128'));
const threads = process.argv.includes('--threads') ? Number(arg('threads', '1')) : undefined;
const cache = join(new URL('.', import.meta.url).pathname, '.cache', 'scifact');
const dataset = await loadDataset(DEFAULT_DATASET, cache);
const names = (await readdir(dataset.folder)).sort().slice(0, count);
const texts = await Promise.all(names.map((n) => readFile(join(dataset.folder, n), 'utf8')));

const loadStarted = performance.now();
const embedder = await LocalWorkerEmbedder.start({ model, ...(threads ? { threads } : {}) });
const loadMs = performance.now() - loadStarted;
await embedder.embed(texts.slice(0, 2));

let longestGap = 0;
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  longestGap = Math.max(longestGap, now - last);
  last = now;
}, 5);
const cpu0 = process.cpuUsage();
const started = performance.now();
await embedder.embed(texts);
const wallS = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpu0);
clearInterval(timer);
await embedder.close();

const cpuS = (cpu.user + cpu.system) / 1e6;
console.log(`model ${embedder.modelKey} (loaded in ${loadMs.toFixed(0)} ms)`);
console.log(
  `${texts.length} SciFact documents (max ${embedder.maxTokens} tokens): ${wallS.toFixed(1)} s = ${(texts.length / wallS).toFixed(1)} texts/s; ` +
    `${((cpuS / texts.length) * 1000).toFixed(0)} ms of CPU per text; longest event-loop gap ${longestGap.toFixed(0)} ms`,
);
console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} (wall time is only meaningful on an idle machine)`);
