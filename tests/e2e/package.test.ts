/**
 * livedex as a new user installs it: `npm pack`, then `npm install <tarball> llamaindex
 * @langchain/core` into a fresh app outside the repository, and an ESM script that uses the
 * main entry in-process (open over a folder, retrieve, a change event after an edit), serves
 * it, and queries the server through `livedex/langchain` and `livedex/llamaindex` (inside
 * llamaindex's own `RetrieverQueryEngine`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, tempDir } from '../helpers/livedex.js';

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.on('error', reject);
    proc.on('exit', (code) => resolve({ code, out }));
  });
}

const SCRIPT = `
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openLivedex, serve, parseConfig } from 'livedex';
import { LivedexRetriever } from 'livedex/langchain';
import { LivedexRetriever as LlamaRetriever } from 'livedex/llamaindex';
import { RetrieverQueryEngine, getResponseSynthesizer } from 'llamaindex';
import { MockLLM } from '@llamaindex/core/llms/mock';

const here = process.cwd();
const docs = join(here, 'docs');
await mkdir(docs, { recursive: true });
await writeFile(join(docs, 'otters.md'), 'Sea otters hold hands while they sleep.');
const out = {};

// In-process: open, retrieve, see the change an edit makes.
const livedex = await openLivedex({ folder: docs, config: { data_dir: join(here, 'data-lib') } });
await livedex.ready;
out.first = (await livedex.retrieve('otters', { k: 1 }))[0]?.text;
const changed = new Promise((resolve) => livedex.on('change', (c) => resolve(c)));
await writeFile(join(docs, 'otters.md'), 'Sea otters hold hands while they sleep, and use rocks as tools.');
out.change = await changed;
out.edited = (await livedex.retrieve('rocks tools', { k: 1, mode: 'bm25' }))[0]?.text;
await livedex.close();

// Served: the adapters query it over HTTP.
const server = await serve(parseConfig({ port: 0, data_dir: join(here, 'data-server'), sources: [{ fs: { path: docs } }] }), {});
await server.ready;
out.langchain = (await new LivedexRetriever({ url: server.url, k: 1 }).invoke('otters'))[0]?.pageContent;
const engine = new RetrieverQueryEngine(new LlamaRetriever({ url: server.url, k: 1 }), getResponseSynthesizer('compact', { llm: new MockLLM({ timeBetweenToken: 0, responseMessage: 'They hold hands.' }) }));
const response = await engine.query({ query: 'What do sea otters do?' });
out.llamaindex = { answer: response.message.content, source: response.sourceNodes?.[0]?.node.text };
await server.close();
console.log('RESULT ' + JSON.stringify(out));
`;

describe('the packed package in a fresh app', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('npm pack, npm install <tarball> llamaindex @langchain/core, then the main entry, livedex/langchain and livedex/llamaindex work', async () => {
    assert.ok(existsSync(join(ROOT, 'dist/index.js')), 'npm install builds dist/ (the main entry)');
    const work = await tempDir('livedex-pack-');
    cleanups.push(work.cleanup);
    // dist/ and the engine are built by the install; the pack only bundles them.
    const pack = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', work.path], ROOT);
    assert.equal(pack.code, 0, pack.out);
    const tarball = (await readdir(work.path)).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote a tarball');

    const app = join(work.path, 'app');
    await run('mkdir', ['-p', app], work.path);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }));
    // onnxruntime-node (under the local embedder's transformers.js) would fetch CUDA libraries at install otherwise.
    await writeFile(join(app, '.npmrc'), 'onnxruntime-node-install=skip\n');
    const install = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work.path, tarball!), 'llamaindex', '@langchain/core'], app);
    assert.equal(install.code, 0, install.out);
    await writeFile(join(app, 'main.mjs'), SCRIPT);

    const res = await run(process.execPath, ['main.mjs'], app);
    const line = res.out.split('\n').find((l) => l.startsWith('RESULT '));
    assert.ok(res.code === 0 && line, res.out);
    const out = JSON.parse(line.slice('RESULT '.length)) as {
      first: string;
      change: { seq: number; updated: string[]; deleted: string[] };
      edited: string;
      langchain: string;
      llamaindex: { answer: string; source: string };
    };
    assert.equal(out.first, 'Sea otters hold hands while they sleep.');
    assert.equal(out.change.updated.length, 1);
    assert.match(out.edited, /rocks as tools/);
    assert.match(out.langchain, /Sea otters hold hands/);
    assert.equal(out.llamaindex.answer, 'They hold hands.');
    assert.match(out.llamaindex.source, /Sea otters hold hands/);
  });
});
