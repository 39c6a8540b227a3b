/**
 * Time to the first streamed token of an answer, beside its baseline measured in the same run:
 * the official openai client streaming straight from the (fake, loopback) chat server. The
 * difference is what livedex adds: reading the request, retrieval, the prompt, the call
 * machinery and SSE re-encoding. `npm run bench:answer [-- --runs 60 --docs 300]`
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { silentLogger } from '../src/core/log.js';
import { parseConfig, serve } from '../src/livedex.js';
import { parseContext, startFakeChat, type ChatReply, type SeenChatRequest } from '../tests/helpers/fake-chat.js';
import { arg, percentile } from './lib.js';

const runs = Number(arg('runs', '60'));
const docCount = Number(arg('docs', '300'));
const work = join(new URL('.', import.meta.url).pathname, '.cache', 'answer');
await rm(work, { recursive: true, force: true });
const folder = join(work, 'docs');
await mkdir(folder, { recursive: true });
const WORDS = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda sigma tau upsilon omega'.split(' ');
for (let i = 0; i < docCount; i++) {
  const filler = Array.from({ length: 80 }, (_, j) => WORDS[(i * 7 + j * 3) % WORDS.length]).join(' ');
  await writeFile(join(folder, `item-${i}.md`), `# Item ${i}\n\nThe serial number of item ${i} is SN-${10_000 + i}. ${filler}\n`);
}

const reply = (req: SeenChatRequest): ChatReply => {
  const item = /item (\d+)\?/.exec(req.user.slice(req.user.lastIndexOf('Question:')))?.[1];
  const block = parseContext(req.user).find((b) => b.text.includes(`serial number of item ${item} is`));
  // A 40-word answer, streamed word by word.
  const tail = Array.from({ length: 40 }, (_, j) => WORDS[j % WORDS.length]).join(' ');
  return block ? { text: `The serial number is ${/SN-\d+/.exec(block.text)![0]} [${block.ref}]. ${tail}` } : { toolCall: { name: 'no_answer', arguments: '{}' } };
};
const fake = await startFakeChat({ respond: reply });
const server = await serve(
  parseConfig({
    data_dir: join(work, 'data'),
    host: '127.0.0.1',
    port: 0,
    sources: [{ fs: { path: folder, reconcile_interval_s: 0 } }],
    llm: { openai: { model: 'fake', base_url: fake.url, api_key: 'none' } },
  }),
  { logger: silentLogger },
);
await server.ready;

const question = (i: number) => `What is the serial number of item ${i}?`;
const direct = new OpenAI({ baseURL: fake.url, apiKey: 'none', maxRetries: 0 });
const viaLivedex = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });

/** Milliseconds to the first content chunk of a chat completion stream. */
async function firstChunk(client: OpenAI, content: string): Promise<number> {
  const started = performance.now();
  let at = 0;
  const stream = await client.chat.completions.create({ model: client === direct ? 'fake' : 'livedex', messages: [{ role: 'user', content }], stream: true });
  for await (const chunk of stream) if (!at && chunk.choices[0]?.delta.content) at = performance.now() - started;
  return at;
}

/** Milliseconds to the first `event: token` of `/v2/answer`, reading the rest to the end. */
async function firstSseToken(prompt: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${server.url}/v2/answer`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ prompt }) });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let at = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (!at && text.includes('event: token')) at = performance.now() - started;
  }
  if (!text.includes('event: done')) throw new Error(`no done event: ${text.slice(0, 200)}`);
  return at;
}

// The same prompt size for the baseline: the prompt livedex sent for the same question.
const prompts: string[] = [];
for (let i = 0; i < runs; i++) {
  await firstSseToken(question(i % docCount));
  prompts.push(fake.requests.at(-1)!.user);
}
const calls = fake.requests.length;
const baseline: number[] = [];
const sse: number[] = [];
const openaiCompat: number[] = [];
const retrieval: number[] = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  await (await fetch(`${server.url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: question(i % docCount), k: 16 }) })).json();
  retrieval.push(performance.now() - t);
  baseline.push(await firstChunk(direct, prompts[i]!));
  sse.push(await firstSseToken(question(i % docCount)));
  openaiCompat.push(await firstChunk(viaLivedex, question(i % docCount)));
}
const row = (name: string, xs: number[]) => `${name.padEnd(48)} p50 ${percentile(xs, 50).toFixed(1).padStart(6)} ms   p95 ${percentile(xs, 95).toFixed(1).padStart(6)} ms`;
console.log(`time to first token, ${runs} questions over ${docCount} documents (fake model on loopback, adaptive RAG; ${(calls / runs).toFixed(2)} model calls per answer):`);
console.log(row('baseline: openai client → model', baseline));
console.log(row('livedex /v1/retrieve k=16 (part of the overhead)', retrieval));
console.log(row('livedex /v2/answer (SSE)', sse));
console.log(row('livedex /v1/chat/completions (openai client)', openaiCompat));
console.log(`overhead at p50: ${(percentile(sse, 50) - percentile(baseline, 50)).toFixed(1)} ms (SSE), ${(percentile(openaiCompat, 50) - percentile(baseline, 50)).toFixed(1)} ms (chat completions)`);

await server.close();
await fake.close();
