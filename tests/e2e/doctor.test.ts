/** `livedex doctor` through the real CLI: a healthy data dir passes; damage, a bad config and an unreachable model fail with what to do. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { LiveIndex } from '../../src/core/live-index.js';
import { silentLogger } from '../../src/core/log.js';
import { parseConfig } from '../../src/livedex.js';
import { builtinRegistry } from '../../src/plugins.js';
import { startFakeChat, type FakeChat } from '../helpers/fake-chat.js';
import { startFakeOpenAI, type FakeOpenAI } from '../helpers/fake-openai.js';
import { runCli, startServer, tempDir } from '../helpers/livedex.js';

/** Runs `livedex doctor …`; resolves with its exit code and output. */
async function doctor(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const cli = runCli(['doctor', ...args], { env });
  const code = await cli.exited;
  return { code, out: cli.stdout.join('') + cli.stderr.join('') };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('livedex doctor', () => {
  let root: { path: string; cleanup(): Promise<void> };
  let docs: string;
  let dataDir: string;
  let fake: FakeOpenAI;
  let chat: FakeChat;

  before(async () => {
    root = await tempDir('livedex-doctor-');
    docs = join(root.path, 'docs');
    dataDir = join(root.path, 'data');
    await cp(new URL('../../templates/document-store/docs', import.meta.url).pathname, docs, { recursive: true });
    const config = parseConfig({ data_dir: dataDir, sources: [{ fs: { path: docs, reconcile_interval_s: 0 } }], sandbox: { enabled: false } });
    const index = await LiveIndex.open({ config, registry: builtinRegistry(), logger: silentLogger });
    await index.start();
    await index.close();
    fake = await startFakeOpenAI();
    chat = await startFakeChat({ respond: () => ({ text: 'OK' }) });
  });
  after(async () => {
    await fake.close();
    await chat.close();
    await root.cleanup();
  });

  const appFile = async (name: string, body: string) => {
    const file = join(root.path, name);
    await writeFile(file, body);
    return file;
  };

  it('passes on a healthy data dir, with its models and sources reachable', async () => {
    const app = await appFile(
      'ok.yaml',
      `data_dir: ${dataDir}\nsources:\n  - fs:\n      path: ${docs}\nembedder:\n  openai:\n    model: text-embedding-3-small\n    base_url: ${fake.url}\nllm:\n  openai:\n    model: gpt-4o-mini\n    base_url: ${chat.url}\n`,
    );
    const { code, out } = await doctor(['--config', app], { OPENAI_API_KEY: 'sk-test' });
    assert.equal(code, 0, out);
    for (const line of [/ok {4}config: .*ok\.yaml is valid/, /ok {4}store: \d+ documents \(\d+ indexed/, /ok {4}text index: at sequence (\d+), as the change log/, /ok {4}vector snapshot: hashing/, /ok {4}embedder openai: openai:text-embedding-3-small/, /ok {4}llm openai/, /ok {4}sources\[0\]\.fs: .* is readable/]) {
      assert.match(out, line);
    }
    assert.equal(fake.embeddingRequests.length, 1, 'the embedder was really called');
    assert.equal(chat.requests.length, 1, 'the chat model was really called');
    assert.match(out, /all checks passed/);
  });

  it('reports a running server holding the data dir, not an error', async () => {
    const server = await startServer(docs, { dataDir, config: { embedder: 'hashing', sandbox: { enabled: false } } });
    try {
      await server.ready;
      const { code, out } = await doctor(['--data-dir', dataDir]);
      assert.equal(code, 0, out);
      assert.match(out, new RegExp(`a server \\(pid ${process.pid}\\) holds it and serves ${server.url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    } finally {
      await server.close();
    }
  });

  it('fails on a deleted or corrupted text index, saying it is rebuilt from the store', async () => {
    const copy = join(root.path, 'damaged');
    await cp(dataDir, copy, { recursive: true });
    await rm(join(copy, 'text-index'), { recursive: true });
    let res = await doctor(['--data-dir', copy]);
    assert.equal(res.code, 1, res.out);
    assert.match(res.out, /FAIL {2}text index: .*cannot be opened/);
    assert.match(res.out, /→ the store is intact: .*rebuilds the text index from the store/);

    await rm(copy, { recursive: true });
    await cp(dataDir, copy, { recursive: true });
    await writeFile(join(copy, 'text-index', 'meta.json'), '{ not json');
    res = await doctor(['--data-dir', copy]);
    assert.equal(res.code, 1, res.out);
    assert.match(res.out, /FAIL {2}text index: .*corrupt/i);
  });

  it('fails on a damaged store, saying to restore or re-index', async () => {
    const copy = join(root.path, 'bad-store');
    await cp(dataDir, copy, { recursive: true });
    await writeFile(join(copy, 'store.sqlite'), 'this is not a database'.repeat(200));
    await rm(join(copy, 'store.sqlite-wal'), { force: true });
    const { code, out } = await doctor(['--data-dir', copy]);
    assert.equal(code, 1, out);
    assert.match(out, /FAIL {2}store: .*not a database/);
    assert.match(out, /→ the store is damaged: restore .* or move the data dir away and index again/);
  });

  it('fails on a store older than its indexes (a restored backup), saying what it means', async () => {
    const copy = join(root.path, 'restored');
    await cp(dataDir, copy, { recursive: true });
    const backup = join(root.path, 'store-backup');
    await cp(copy, backup, { recursive: true, filter: (src) => src === copy || /store\.sqlite/.test(src) });
    // The indexes move on past the backup…
    await writeFile(join(docs, 'later.md'), '# Later\n\nA note written after the backup.\n');
    try {
      const config = parseConfig({ data_dir: copy, sources: [{ fs: { path: docs, reconcile_interval_s: 0 } }], sandbox: { enabled: false } });
      const index = await LiveIndex.open({ config, registry: builtinRegistry(), logger: silentLogger });
      await index.synced();
      await index.close();
    } finally {
      await rm(join(docs, 'later.md'));
    }
    // …and the store is put back.
    await rm(join(copy, 'store.sqlite-wal'), { force: true });
    await cp(backup, copy, { recursive: true });
    const { code, out } = await doctor(['--data-dir', copy]);
    assert.equal(code, 1, out);
    assert.match(out, /FAIL {2}store reset: the store was reset: .*store\.sqlite is older than its indexes \(at change-log sequence \d+\) while the text index reflects sequence \d+/);
    assert.match(out, /likely it was restored from an older backup/);
    assert.match(out, /At the next start the indexes are rebuilt .*documents pushed over HTTP are lost unless pushed again/);
  });

  it('fails on a bad config, naming the field', async () => {
    const app = await appFile('bad.yaml', `data_dir: ${dataDir}\nsources:\n  - fs:\n      paht: ${docs}\n`);
    const { code, out } = await doctor(['--config', app]);
    assert.equal(code, 1, out);
    assert.match(out, /FAIL {2}config: .*bad\.yaml:4:7: sources\[0\]\.fs\.path/);
    assert.match(out, /→ fix .*bad\.yaml/);
  });

  it('fails on an unreachable model and a missing folder, saying what to check', async () => {
    const port = await closedPort();
    const app = await appFile('down.yaml', `data_dir: ${dataDir}\nsources:\n  - fs:\n      path: ${join(root.path, 'nowhere')}\nembedder:\n  openai:\n    model: text-embedding-3-small\n`);
    const { code, out } = await doctor(['--config', app], { OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`, OPENAI_API_KEY: 'sk-test' });
    assert.equal(code, 1, out);
    assert.match(out, /FAIL {2}embedder openai: /);
    assert.match(out, /→ check OPENAI_BASE_URL/);
    assert.match(out, /FAIL {2}sources\[0\]\.fs: .*nowhere/);
  });
});
