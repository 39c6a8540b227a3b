/**
 * Who may call the server and how much: bearer tokens with scopes on every route and MCP,
 * open probes, CORS off by default, body/query/rate/concurrency limits, and no unauthenticated
 * server beyond loopback.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/log.js';
import type { RetrieveRequest } from '../../src/core/types.js';
import { createApp } from '../../src/server/index.js';
import { matchToken, securityFor, type SecurityOptions } from '../../src/server/security.js';
import { parseConfig } from '../../src/livedex.js';
import { serveHeron, tempDir, waitFor, type HeronServer, type TestServer } from '../helpers/livedex.js';
import { createStubIndex } from '../helpers/stub-index.js';

const ADMIN = 'admin-token-0123456789abcdef';
const READER = 'reader-token-0123456789abcdef';

/** Every route a client can call, with a request that reaches it. */
const ROUTES: Array<[method: string, path: string, body?: unknown]> = [
  ['POST', '/v1/retrieve', { query: 'heron' }],
  ['GET', '/v1/retrieve?query=heron'],
  ['POST', '/v1/statistics', {}],
  ['POST', '/v1/inputs', {}],
  ['POST', '/v2/list_documents', {}],
  ['POST', '/v1/pw_list_documents', {}],
  ['GET', '/v1/status'],
  ['GET', '/v1/documents/anything.md'],
  ['POST', '/v2/answer', { prompt: 'what stands still?' }],
  ['POST', '/v1/pw_ai_answer', { prompt: 'what stands still?' }],
  ['POST', '/v2/summarize', { text_list: ['a'] }],
  ['POST', '/v1/pw_ai_summary', { text_list: ['a'] }],
  ['POST', '/v1/chat/completions', { model: 'livedex', messages: [{ role: 'user', content: 'hi' }] }],
  ['PUT', '/v1/documents/pushed.txt', 'a pushed note'],
  ['DELETE', '/v1/documents/pushed.txt'],
  ['POST', '/mcp', { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }],
];

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const init: RequestInit = { method, headers: { accept: 'application/json, text/event-stream', ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = typeof body === 'string' ? 'text/plain' : 'application/json';
  }
  return fetch(`${base}${path}`, init);
}

describe('security', () => {
  let served: HeronServer;
  let server: TestServer;

  before(async () => {
    served = await serveHeron({ auth: { tokens: [ADMIN, { token: READER, scope: 'read', name: 'reader' }] } });
    server = served.server;
  });

  after(async () => {
    await served?.close();
  });

  it('refuses every route and MCP without a token or with a wrong one (401), and lets the probes through', async () => {
    for (const [method, path, body] of ROUTES) {
      const none = await call(server.url, method, path, body);
      assert.equal(none.status, 401, `${method} ${path} without a token`);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="livedex"');
      const json = (await none.json()) as { error: { code: string; message: string } };
      assert.equal(json.error.code, 'unauthorized');
      assert.match(json.error.message, /Authorization: Bearer/);
      const wrong = await call(server.url, method, path, body, { authorization: `Bearer ${ADMIN}x` });
      assert.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
      await wrong.body?.cancel();
      const basic = await call(server.url, method, path, body, { authorization: `Basic ${Buffer.from(`u:${ADMIN}`).toString('base64')}` });
      assert.equal(basic.status, 401, `${method} ${path} with basic auth`);
      await basic.body?.cancel();
    }
    for (const probe of ['/healthz', '/readyz']) assert.equal((await fetch(`${server.url}${probe}`)).status, 200, probe);
  });

  it('accepts the right token on every route', async () => {
    for (const [method, path, body] of ROUTES) {
      const res = await call(server.url, method, path, body, { authorization: `Bearer ${ADMIN}` });
      assert.notEqual(res.status, 401, `${method} ${path} with the admin token`);
      assert.notEqual(res.status, 403, `${method} ${path} with the admin token`);
      await res.body?.cancel();
    }
    const hits = (await (await call(server.url, 'POST', '/v1/retrieve', { query: 'heron', k: 1 }, { authorization: `bearer ${READER}` })).json()) as Array<{ text: string }>;
    assert.match(hits[0]!.text, /heron stands still/);
  });

  it('lets a read-only token read but not push or delete (403)', async () => {
    const auth = { authorization: `Bearer ${READER}` };
    const put = await call(server.url, 'PUT', '/v1/documents/reader.txt', 'from a reader', auth);
    assert.equal(put.status, 403);
    const body = (await put.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'forbidden');
    assert.match(body.error.message, /"reader" is read-only/);
    assert.equal((await call(server.url, 'DELETE', '/v1/documents/reader.txt', undefined, auth)).status, 403);

    const admin = { authorization: `Bearer ${ADMIN}` };
    const ok = await call(server.url, 'PUT', '/v1/documents/admin.txt', 'the kingfisher dives from its perch', admin);
    assert.equal(ok.status, 202, await ok.text());
    await waitFor(async () => {
      const res = await call(server.url, 'POST', '/v1/retrieve', { query: 'kingfisher dives', k: 1 }, auth);
      const hits = (await res.json()) as Array<{ text: string }>;
      return hits[0]?.text.includes('kingfisher') || undefined;
    }, 20_000);
  });

  it('refuses an oversized body (413) and an overlong query string (414) with messages naming the limit', async () => {
    const auth = { authorization: `Bearer ${ADMIN}` };
    const big = await call(server.url, 'POST', '/v1/retrieve', { query: 'x'.repeat(2 * 1024 * 1024) }, auth);
    assert.equal(big.status, 413);
    assert.match(((await big.json()) as { error: { message: string } }).error.message, /limits\.max_body_bytes/);
    const long = await call(server.url, 'GET', `/v1/retrieve?query=${'y'.repeat(10_000)}`, undefined, auth);
    assert.equal(long.status, 414);
    assert.match(((await long.json()) as { error: { message: string } }).error.message, /limits\.max_query_chars/);
  });

  it('compares tokens by value only', () => {
    const tokens = [{ token: ADMIN, scope: 'admin' as const, name: 'a' }, { token: READER, scope: 'read' as const, name: 'r' }];
    assert.equal(matchToken(tokens, READER)?.name, 'r');
    assert.equal(matchToken(tokens, ADMIN)?.name, 'a');
    assert.equal(matchToken(tokens, ADMIN.slice(0, -1)), null);
    assert.equal(matchToken(tokens, ''), null);
  });
});

describe('limits and CORS (in-process app)', () => {
  const base: SecurityOptions = { tokens: [], corsOrigins: [], maxBodyBytes: 1 << 20, maxQueryChars: 8192, ratePerMinute: 0, maxConcurrent: 256 };

  it('rate-limits each caller with 429 and Retry-After', async () => {
    const app = createApp(createStubIndex(), { logger: silentLogger, security: { ...base, ratePerMinute: 60, tokens: [{ token: ADMIN, scope: 'admin', name: 'a' }, { token: READER, scope: 'read', name: 'r' }] } });
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 12; i++) {
      const res = await app.request('/v1/statistics', { headers: { authorization: `Bearer ${ADMIN}` } });
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
    }
    assert.deepEqual(statuses.slice(0, 6), [200, 200, 200, 200, 200, 200], 'a burst of a tenth of the minute passes');
    assert.ok(statuses.slice(6).every((s) => s === 429), statuses.join(','));
    assert.equal(retryAfter, '1');
    // Another token has its own budget.
    assert.equal((await app.request('/v1/statistics', { headers: { authorization: `Bearer ${READER}` } })).status, 200);
  });

  it('caps requests in flight with 429', async () => {
    const stub = createStubIndex();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const retrieve = stub.retrieve.bind(stub);
    stub.retrieve = async (req: RetrieveRequest) => {
      await gate;
      return retrieve(req);
    };
    const app = createApp(stub, { logger: silentLogger, security: { ...base, maxConcurrent: 2 } });
    // Both enter the guard synchronously and wait inside the route on the gate.
    const held = [app.request('/v1/retrieve?query=a'), app.request('/v1/retrieve?query=b')];
    const third = await app.request('/v1/retrieve?query=c');
    assert.equal(third.status, 429);
    assert.match(((await third.json()) as { error: { message: string } }).error.message, /limits\.max_concurrent/);
    release();
    assert.deepEqual((await Promise.all(held)).map((r) => r.status), [200, 200]);
    assert.equal((await app.request('/v1/retrieve?query=d')).status, 200);
  });

  it('sends no CORS headers by default, and answers preflights for configured origins', async () => {
    const closed = createApp(createStubIndex(), { logger: silentLogger, security: base });
    const res = await closed.request('/v1/statistics', { headers: { origin: 'https://app.example' } });
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    const open = createApp(createStubIndex(), { logger: silentLogger, security: { ...base, corsOrigins: ['https://app.example'], tokens: [{ token: ADMIN, scope: 'admin', name: 'a' }] } });
    const preflight = await open.request('/v1/retrieve', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    assert.ok(preflight.status === 204 || preflight.status === 200, String(preflight.status));
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Authorization/i);
    const other = await open.request('/v1/statistics', { headers: { origin: 'https://evil.example', authorization: `Bearer ${ADMIN}` } });
    assert.notEqual(other.headers.get('access-control-allow-origin'), 'https://evil.example');
  });
});

describe('binding without a token', () => {
  it('refuses a non-loopback address without a token unless told to, and reads a tokens file', async () => {
    const data = await tempDir();
    try {
      await assert.rejects(securityFor(parseConfig({ host: '0.0.0.0' }), silentLogger), /refusing to serve 0\.0\.0\.0 without an auth token.*--allow-remote-without-auth/s);
      const open = await securityFor(parseConfig({ host: '0.0.0.0', auth: { allow_remote_without_auth: true } }), silentLogger);
      assert.deepEqual(open.tokens, []);
      assert.deepEqual((await securityFor(parseConfig({ host: '127.0.0.1' }), silentLogger)).tokens, []);
      const file = join(data.path, 'tokens.yaml');
      await writeFile(file, `- token: ${READER}\n  scope: read\n  name: dashboards\n- ${ADMIN}\n`);
      const fromFile = await securityFor(parseConfig({ host: '0.0.0.0', auth: { tokens_file: file } }), silentLogger);
      assert.deepEqual(fromFile.tokens.map((t) => [t.name, t.scope]), [['dashboards', 'read'], ['token-2', 'admin']]);
      await writeFile(file, '- token: short\n');
      await assert.rejects(securityFor(parseConfig({ auth: { tokens_file: file } }), silentLogger), /tokens_file: .*at least 16 characters/);
    } finally {
      await data.cleanup();
    }
  });
});
