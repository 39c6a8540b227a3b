/**
 * Token splitting of SciFact in JavaScript and in the engine, in the same run: `npm run bench:split [-- --dataset DIR --rounds N]`.
 * Each round splits the whole corpus both ways (the JavaScript counter's piece cache warm after the first round) and checks the
 * chunks are the same; the result is the ratio of the medians. Writes bench/results/<date>-split.txt.
 */
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { engineTokenSplitting } from '../src/engine/index.js';
import { loadTokenCounter, TokenSplitter, type TokenSplitterOptions } from '../src/splitters/token.js';
import { arg, DEFAULT_DATASET } from './lib.js';

const dataset = arg('dataset', DEFAULT_DATASET);
const rounds = Number(arg('rounds', '5'));
const corpus = join(dataset, 'corpus.jsonl.gz');
if (!existsSync(corpus)) throw new Error(`no corpus.jsonl.gz in ${dataset}`);
const texts: string[] = [];
for await (const line of createInterface({ input: createReadStream(corpus).pipe(createGunzip()), crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  const doc = JSON.parse(line) as { title?: string; text?: string };
  texts.push(`${doc.title ?? ''}\n\n${doc.text ?? ''}\n`);
}
const engine = engineTokenSplitting();
if (!engine) throw new Error('the engine addon has no token splitting: npm run build:engine');
const counter = await loadTokenCounter();
const chars = texts.reduce((n, t) => n + t.length, 0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const lines: string[] = [
  `token splitting, SciFact: ${texts.length} documents, ${(chars / 1e6).toFixed(2)} M characters; ${rounds} rounds; ${new Date().toISOString()}`,
  `machine: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start`,
  '',
  '| max / min / overlap tokens | chunks | JavaScript ms (median) | engine ms (median, one call) | JavaScript ÷ engine |',
  '|---|---|---|---|---|',
];
for (const opts of [
  { maxTokens: 400, minTokens: 50, overlapTokens: 0 },
  { maxTokens: 128, minTokens: 32, overlapTokens: 16 },
] satisfies TokenSplitterOptions[]) {
  const js = new TokenSplitter(counter, opts);
  const jsMs: number[] = [];
  const engineMs: number[] = [];
  let chunks = 0;
  for (let r = 0; r < rounds; r++) {
    let t = performance.now();
    const want = texts.map((text) => js.splitText(text));
    jsMs.push(performance.now() - t);
    t = performance.now();
    const packed = await engine.splitTokenChunks(texts, opts);
    engineMs.push(performance.now() - t);
    // Same chunks, or the timing means nothing.
    let at = 0;
    chunks = 0;
    for (let i = 0; i < texts.length; i++) {
      const n = packed[at]!;
      if (n !== want[i]!.length) throw new Error(`document ${i}: ${n} chunks in the engine, ${want[i]!.length} in JavaScript`);
      for (let k = 0; k < n; k++) if (texts[i]!.slice(packed[at + 1 + 2 * k]!, packed[at + 2 + 2 * k]!) !== want[i]![k]) throw new Error(`document ${i}, chunk ${k} differs`);
      at += 1 + 2 * n;
      chunks += n;
    }
  }
  const j = median(jsMs);
  const e = median(engineMs);
  lines.push(`| ${opts.maxTokens} / ${opts.minTokens} / ${opts.overlapTokens} | ${chunks} | ${j.toFixed(0)} | ${e.toFixed(0)} | ${(j / e).toFixed(2)}× |`);
}
lines.push('', `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at end; the engine splits on one thread-pool thread, the JavaScript on the main thread.`);
const out = lines.join('\n') + '\n';
console.log(out);
const dir = new URL('./results/', import.meta.url).pathname;
await mkdir(dir, { recursive: true });
// `--date`: the results file of an issue's series keeps its date.
await writeFile(join(dir, `${arg('date', new Date().toISOString().slice(0, 10))}-split.txt`), out);
