/**
 * `limits.max_response_bytes` bounds an answer: `/v1/retrieve` keeps the best hits that fit
 * (still a JSON array, with `X-Livedex-Truncated` saying how many), a document listing past it
 * is refused with a 400 saying how to narrow it. The MCP tools keep to the same cap.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { parseConfig } from '../../src/livedex.js';
import { post, startServer, tempDir, waitFor, type TestServer, type WireHit } from '../helpers/livedex.js';

const CAP = 8 * 1024;
const FILES = 30;

describe('the response size cap', () => {
  let server: TestServer;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    const folder = await tempDir();
    const data = await tempDir();
    cleanups.push(folder.cleanup, data.cleanup);
    // Each file one chunk of about 700 bytes mentioning the otter: 30 hits are about 25 KB of JSON.
    for (let i = 0; i < FILES; i++) {
      const words = Array.from({ length: 100 }, (_, j) => `otter${(i * 7 + j) % 40}`).join(' ');
      // Long names make the listing (paths and metadata) about 14 KB.
      await writeFile(join(folder.path, `note-${String(i).padStart(2, '0')}-${'about-the-river-otters-of-the-northern-lakes-'.repeat(3)}.txt`), `The otter number ${i}. ${words}`);
    }
    server = await startServer(folder.path, { dataDir: data.path, config: { limits: { max_response_bytes: CAP } } });
    await server.ready;
    await waitFor(async () => (await post<{ file_count: number }>(server.url, '/v1/statistics', {})).body.file_count === FILES || undefined, 20_000);
  });

  after(async () => {
    await server?.close();
    for (const c of cleanups) await c();
  });

  it('keeps the best hits that fit under the cap and says how many were left out', async () => {
    const res = await fetch(`${server.url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'otter', k: FILES, mode: 'bm25' }) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const text = await res.text();
    assert.ok(Buffer.byteLength(text) <= CAP, `${Buffer.byteLength(text)} bytes`);
    const hits = JSON.parse(text) as WireHit[];
    assert.ok(Array.isArray(hits) && hits.length >= 1 && hits.length < FILES, `${hits.length} hits`);
    assert.equal(res.headers.get('x-livedex-truncated'), `${hits.length} of ${FILES} hits fit limits.max_response_bytes (${CAP} bytes)`);
    // The ones kept are the best: the same as asking for only that many.
    const fewer = await post<WireHit[]>(server.url, '/v1/retrieve', { query: 'otter', k: hits.length, mode: 'bm25' });
    assert.deepEqual(hits.map((h) => h.metadata.path), fewer.body.map((h) => h.metadata.path));
    // A small k under the cap is answered whole, without the header.
    const small = await fetch(`${server.url}/v1/retrieve?query=otter&k=2&mode=bm25`);
    assert.equal(small.headers.get('x-livedex-truncated'), null);
    assert.equal(((await small.json()) as WireHit[]).length, 2);
  });

  it('refuses a document listing past the cap with 400 naming the filters, and answers a narrowed one', async () => {
    for (const route of ['/v1/inputs', '/v2/list_documents', '/v1/pw_list_documents']) {
      const all = await post<{ error: { code: string; message: string; field: string } }>(server.url, route, { return_status: true });
      assert.equal(all.status, 400, route);
      assert.equal(all.body.error.field, 'filepath_globpattern');
      assert.match(all.body.error.message, /limits\.max_response_bytes/);
      assert.match(all.body.error.message, /filepath_globpattern or metadata_filter/);
      const some = await post<unknown[]>(server.url, route, { filepath_globpattern: '**/note-0*.txt' });
      assert.equal(some.status, 200, route);
      assert.equal(some.body.length, 10);
    }
  });

  it('holds the MCP tools to the same cap: retrieve keeps the best hits that fit, a listing past it is a tool error naming the limit', async () => {
    const client = new Client({ name: 'response-size', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', server.url)));
    try {
      const res = (await client.callTool({ name: 'retrieve', arguments: { query: 'otter', k: FILES, mode: 'bm25' } })) as CallToolResult;
      assert.ok(!res.isError, JSON.stringify(res.content));
      const hits = (res.structuredContent as { hits: WireHit[] }).hits;
      const text = res.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
      assert.ok(hits.length >= 1 && hits.length < FILES, `${hits.length} hits`);
      assert.ok(Buffer.byteLength(JSON.stringify(res)) <= CAP + 1024, `${Buffer.byteLength(JSON.stringify(res))} bytes`);
      assert.match(text, new RegExp(`${hits.length} of ${FILES} fit limits\\.max_response_bytes`));
      const fewer = await post<WireHit[]>(server.url, '/v1/retrieve', { query: 'otter', k: hits.length, mode: 'bm25' });
      assert.deepEqual(hits.map((h) => h.metadata.path), fewer.body.map((h) => h.metadata.path));

      const listing = (await client.callTool({ name: 'list_documents', arguments: {} })) as CallToolResult;
      assert.equal(listing.isError, true);
      assert.match(listing.content.map((c) => (c.type === 'text' ? c.text : '')).join(''), /limits\.max_response_bytes/);
      const narrowed = (await client.callTool({ name: 'list_documents', arguments: { filepath_globpattern: '**/note-0[0-2]*.txt' } })) as CallToolResult;
      assert.ok(!narrowed.isError, JSON.stringify(narrowed.content));
      assert.equal((narrowed.structuredContent as { documents: unknown[] }).documents.length, 3);
    } finally {
      await client.close();
    }
  });

  it('is 32 MiB unless the config says otherwise, and at least 1 KiB', () => {
    assert.equal(parseConfig({}).limits.max_response_bytes, 32 * 1024 * 1024);
    assert.throws(() => parseConfig({ limits: { max_response_bytes: 100 } }), /limits\.max_response_bytes/);
  });
});
