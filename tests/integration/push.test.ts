/** Push ingestion: PUT/DELETE/GET /v1/documents/{key} through the same pipeline, kept across restarts. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../src/core/log.js';
import type { DocumentInfo } from '../../src/core/types.js';
import { parseConfig, serve } from '../../src/livedex.js';
import { countingRegistry, embedCounter, get, retrieve, tempDir, waitFor, type WireHit } from '../helpers/livedex.js';
import { makePdf } from '../helpers/pdf.js';

async function start(dataDir: string, opts: { push?: boolean; config?: Record<string, unknown> } = {}) {
  const config = parseConfig({
    data_dir: dataDir,
    host: '127.0.0.1',
    port: 0,
    embedder: 'counting',
    // Parsing runs in-thread: the worker sandbox is not under test here, and its start-up is slow on a busy machine.
    sandbox: { enabled: false },
    sources: opts.push === false ? [] : ['push'],
    ...opts.config,
  });
  return serve(config, { logger: createLogger({ level: 'silent' }), registry: countingRegistry() });
}

async function put(base: string, key: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/v1/documents/${key}`, { method: 'PUT', headers, body });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string; field?: string } } };
}

async function del(base: string, key: string) {
  const res = await fetch(`${base}/v1/documents/${key}`, { method: 'DELETE' });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { message: string } } };
}

const find = (url: string, query: string): Promise<WireHit[]> => retrieve(url, { query, k: 10, mode: 'bm25' });
const indexed = (url: string, key: string) => async () => (await get<DocumentInfo>(url, `/v1/documents/${key}`)).body.status === 'indexed';

describe('push ingestion', () => {
  let data: { path: string; cleanup(): Promise<void> };
  let server: Awaited<ReturnType<typeof start>>;

  before(async () => {
    data = await tempDir();
    server = await start(data.path, { config: { pipeline: { max_file_bytes: 4096 } } });
    await server.ready;
  });
  after(async () => {
    await server.close();
    await data.cleanup();
  });

  it('PUT raw bytes, then a query finds them; GET shows the document', async () => {
    const res = await put(server.url, 'notes/lemur.md', '# Lemurs\n\nThe ring-tailed lemur lives in Madagascar.', { 'content-type': 'text/markdown' });
    assert.equal(res.status, 202);
    assert.equal(res.body.key, 'push:notes/lemur.md');
    assert.equal(res.body.created, true);
    assert.equal(res.headers.get('location'), '/v1/documents/push%3Anotes/lemur.md');
    await waitFor(indexed(server.url, 'push:notes/lemur.md'), 20_000);
    const [hit] = await find(server.url, 'Madagascar');
    assert.equal(hit?.metadata.path, 'push:notes/lemur.md');
    assert.equal(hit?.metadata.source, 'push');
    assert.equal(hit?.metadata.content_type, 'text/markdown');
    const doc = await get<DocumentInfo>(server.url, '/v1/documents/push:notes/lemur.md');
    assert.equal(doc.status, 200);
    assert.equal(doc.body.status, 'indexed');
  });

  it('PUT JSON {text, metadata}: the metadata is filterable', async () => {
    const res = await put(server.url, 'tickets/42', JSON.stringify({ text: 'The printer on floor three jams with glossy paper.', metadata: { team: 'it', priority: 2 } }), {
      'content-type': 'application/json',
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await waitFor(indexed(server.url, 'push:tickets/42'), 20_000);
    const hits = await retrieve(server.url, { query: 'printer glossy', k: 5, mode: 'bm25', metadata_filter: "team == 'it' && priority == `2`" });
    assert.equal(hits[0]?.metadata.path, 'push:tickets/42');
    assert.deepEqual(await retrieve(server.url, { query: 'printer glossy', k: 5, mode: 'bm25', metadata_filter: "team == 'hr'" }), []);
  });

  it('reads a key without an extension by its Content-Type (a PDF)', async () => {
    const res = await put(server.url, 'scans/report', makePdf(['Quarterly capybara census results']), { 'content-type': 'application/pdf' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await waitFor(indexed(server.url, 'push:scans/report'), 20_000);
    assert.equal((await find(server.url, 'capybara'))[0]?.metadata.path, 'push:scans/report');
  });

  it('a second PUT replaces the document; DELETE removes it for good', async () => {
    await put(server.url, 'push:memo.txt', 'The first memo talks about otters.', { 'content-type': 'text/plain' });
    await waitFor(async () => (await find(server.url, 'otters')).length === 1, 20_000);
    const again = await put(server.url, 'memo.txt', 'The second memo talks about beavers.', { 'content-type': 'text/plain' });
    assert.equal(again.body.created, false, 'with or without the prefix, one key');
    await waitFor(async () => (await find(server.url, 'beavers')).length === 1, 20_000);
    assert.deepEqual(await find(server.url, 'otters'), []);

    const gone = await del(server.url, 'memo.txt');
    assert.equal(gone.status, 200);
    assert.deepEqual(gone.body, { key: 'push:memo.txt', deleted: true });
    await waitFor(async () => (await get(server.url, '/v1/documents/push:memo.txt')).status === 404, 20_000);
    assert.deepEqual(await find(server.url, 'beavers'), []);
    assert.equal((await del(server.url, 'memo.txt')).status, 404, 'deleting twice: nothing there');
  });

  it('refuses an unsupported type (415) and a document over the size limit (413), with messages', async () => {
    const png = await put(server.url, 'pics/cat.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]), { 'content-type': 'image/png' });
    assert.equal(png.status, 415);
    assert.match(png.body.error?.message ?? '', /no parser reads "image\/png"/);
    const unknown = await put(server.url, 'blob.bin', new Uint8Array([1, 2, 3]), { 'content-type': 'application/octet-stream' });
    assert.equal(unknown.status, 415);
    assert.match(unknown.body.error?.message ?? '', /"\.bin"/);

    const big = await put(server.url, 'big.txt', 'x'.repeat(5000), { 'content-type': 'text/plain' });
    assert.equal(big.status, 413);
    assert.match(big.body.error?.message ?? '', /above the 4096 bytes limit \(pipeline\.max_file_bytes\)/);
    const bigJson = await put(server.url, 'big2', JSON.stringify({ text: 'y'.repeat(5000) }), { 'content-type': 'application/json' });
    assert.equal(bigJson.status, 413);
    assert.equal((await get(server.url, '/v1/documents/push:big.txt')).status, 404, 'nothing is kept of a refused push');
  });

  it('refuses bad keys and bad bodies, naming the field', async () => {
    // Encoded slashes: a client's URL library would resolve `a/../b.md` before sending it.
    for (const key of ['a%2F..%2Fb.md', '.%2Fx.md', 'a%2F%2Fb.md', `${'k'.repeat(1100)}.md`, 'back%5Cslash.md', 'ctl%01.md']) {
      const res = await put(server.url, key, 'text', { 'content-type': 'text/plain' });
      assert.equal(res.status, 400, key);
      assert.equal(res.body.error?.field, 'key', key);
    }
    const extra = await put(server.url, 'x.md', JSON.stringify({ text: 'a', title: 'b' }), { 'content-type': 'application/json' });
    assert.equal(extra.status, 400);
    assert.equal(extra.body.error?.field, 'title');
    const noText = await put(server.url, 'x.md', JSON.stringify({ metadata: {} }), { 'content-type': 'application/json' });
    assert.equal(noText.body.error?.field, 'text');
    const badMeta = await put(server.url, 'x.md', 'hello', { 'content-type': 'text/plain', 'x-livedex-metadata': '[1]' });
    assert.equal(badMeta.body.error?.field, 'metadata');
  });
});

describe('push ingestion across restarts', () => {
  it('keeps pushed documents (and deletions) without embedding them again', async () => {
    const data = await tempDir();
    try {
      const first = await start(data.path);
      await first.ready;
      await put(first.url, 'keep.md', '# Keep\n\nThe gecko stays.', { 'content-type': 'text/markdown' });
      await put(first.url, 'drop.md', '# Drop\n\nThe newt goes.', { 'content-type': 'text/markdown' });
      await waitFor(indexed(first.url, 'push:keep.md'), 20_000);
      await waitFor(indexed(first.url, 'push:drop.md'), 20_000);
      await del(first.url, 'drop.md');
      await first.close();

      embedCounter.reset();
      const second = await start(data.path);
      try {
        await second.ready;
        assert.equal((await find(second.url, 'gecko'))[0]?.metadata.path, 'push:keep.md');
        assert.deepEqual(await find(second.url, 'newt'), []);
        assert.equal(embedCounter.texts, 0);
        const files = await readdir(join(data.path, 'push', 'push'));
        assert.equal(files.filter((f) => f.endsWith('.json')).length, 1, 'one entry left on disk');
      } finally {
        await second.close();
      }
    } finally {
      await data.cleanup();
    }
  });

  it('says push ingestion is off when no push source is configured', async () => {
    const data = await tempDir();
    try {
      const server = await start(data.path, { push: false });
      try {
        await server.ready;
        const res = await put(server.url, 'a.md', 'hello', { 'content-type': 'text/plain' });
        assert.equal(res.status, 404);
        assert.match(res.body.error?.message ?? '', /push ingestion is off/);
      } finally {
        await server.close();
      }
    } finally {
      await data.cleanup();
    }
  });
});
