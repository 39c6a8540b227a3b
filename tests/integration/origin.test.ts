/**
 * Who may talk to a server: without a token, only requests addressed to this machine by a
 * loopback name (or a name of `allowed_hosts`); on every server, an `Origin` only when it is the
 * server's own or in `cors_origins`; POST bodies only when declared as JSON. Every operation of
 * the OpenAPI document is tried, so a new route is covered without touching this file.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/log.js';
import { parseConfig } from '../../src/livedex.js';
import { createApp, startServer as startApp } from '../../src/server/index.js';
import { securityFor } from '../../src/server/security.js';
import { operations, type Operation } from '../../src/server/openapi.js';
import { runCli, serveHeron, startServer, tempDir, waitFor, type HeronServer, type TestServer } from '../helpers/livedex.js';
import { createStubIndex } from '../helpers/stub-index.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): { error?: { code: string; message: string; field?: string } } & Record<string, unknown>;
}

/** A request to 127.0.0.1:`port` with any `Host` and `Origin` (fetch would not let a test choose the Host). */
function send(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode!, headers: res.headers, text, json: () => JSON.parse(text) });
      });
      // An event stream (MCP) stays open: its status and headers are all a test needs.
      if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        resolve({ status: res.statusCode!, headers: res.headers, text: '', json: () => ({}) });
        res.destroy();
      }
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

const PROBES = new Set(['/healthz', '/readyz']);

/** Every operation as a request that reaches its route: path key filled in, the example as body or query. */
function calls(): Array<{ op: Operation; method: string; path: string; body?: string; headers: Record<string, string> }> {
  return operations().map((op) => {
    let path = op.pathKey !== undefined ? op.path.replace('{key}', op.pathKey) : op.path;
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream', ...op.headers };
    let body: string | undefined;
    if (op.input?.in === 'body') {
      body = JSON.stringify(op.input.example ?? {});
      headers['content-type'] = 'application/json';
    } else if (op.input?.in === 'query' && op.input.example) {
      path += `?${new URLSearchParams(Object.entries(op.input.example).map(([k, v]): [string, string] => [k, String(v)]))}`;
    }
    return { op, method: op.method.toUpperCase(), path, headers, ...(body !== undefined ? { body } : {}) };
  });
}

describe('a server without a token', () => {
  let served: HeronServer;
  let server: TestServer;
  let port: number;

  before(async () => {
    served = await serveHeron();
    server = served.server;
    port = server.port;
  });

  after(async () => {
    await served?.close();
  });

  it('reaches every route from a loopback name with a JSON body (the checks below refuse nothing else)', async () => {
    for (const { method, path, headers, body } of calls()) {
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'localhost', `127.0.0.2:${port}`, `LOCALHOST:${port}`]) {
        const res = await send(port, method, path, { ...headers, host }, body);
        assert.ok(res.status !== 403 && res.status !== 415 && res.status !== 421, `${method} ${path} with Host ${host}: ${res.status} ${res.text}`);
      }
    }
  });

  it('refuses a foreign Host with 403 naming host and allowed_hosts on every route but the probes', async () => {
    let checked = 0;
    for (const { method, path, headers, body } of calls()) {
      for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, `localhost.evil.example`, `192.168.1.20:${port}`]) {
        const res = await send(port, method, path, { ...headers, host }, body);
        if (PROBES.has(path)) {
          assert.ok(res.status === 200, `probe ${path} answers any Host: ${res.status}`);
          continue;
        }
        assert.equal(res.status, 403, `${method} ${path} with Host ${host}: ${res.text}`);
        const { error } = res.json();
        assert.equal(error?.code, 'forbidden');
        assert.equal(error?.field, 'host');
        assert.match(error!.message, /allowed_hosts \(--allowed-host /);
        checked++;
      }
    }
    assert.ok(checked > 100, `${checked} refusals checked`);
  });

  it('refuses a foreign Origin with 403 naming origin on every route, probes and MCP included', async () => {
    for (const { method, path, headers, body } of calls()) {
      for (const origin of [`http://evil.example:${port}`, 'https://evil.example', 'null', `http://localhost:${port + 1}`, 'http://127.0.0.1']) {
        const res = await send(port, method, path, { ...headers, origin }, body);
        assert.equal(res.status, 403, `${method} ${path} with Origin ${origin}: ${res.text}`);
        const { error } = res.json();
        assert.equal(error?.field, 'origin');
        assert.match(error!.message, /cors_origins/);
      }
    }
  });

  it("serves pages of its own origin (the status page's calls) and refuses the preflight of a foreign one", async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      const res = await send(port, 'POST', '/v1/retrieve', { host, origin: `http://${host}`, 'content-type': 'application/json' }, JSON.stringify({ query: 'heron', k: 1 }));
      assert.equal(res.status, 200, res.text);
      assert.match(res.text, /heron stands still/);
    }
    const preflight = await send(port, 'OPTIONS', '/v1/retrieve', { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' });
    assert.equal(preflight.status, 403);
    assert.equal(preflight.headers['access-control-allow-origin'], undefined);
  });

  it('refuses POST bodies not declared as JSON with 415 naming content-type on every POST route; GET with a query string stays valid', async () => {
    const posts = calls().filter((c) => c.method === 'POST');
    assert.ok(posts.length >= 10, `${posts.length} POST routes`);
    for (const { path, headers, body } of posts) {
      for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', undefined]) {
        const h: Record<string, string> = { ...headers };
        delete h['content-type'];
        if (type) h['content-type'] = type;
        const res = await send(port, 'POST', path, h, body);
        assert.equal(res.status, 415, `POST ${path} as ${type ?? 'no type'}: ${res.text}`);
        const { error } = res.json();
        assert.equal(error?.field, 'content-type');
        assert.match(error!.message, /application\/json/);
      }
    }
    // No body at all, the fields in the query string: what a form on any page can send.
    const bare = await send(port, 'POST', '/v1/retrieve?query=heron');
    assert.equal(bare.status, 415, bare.text);
    for (const type of ['application/json; charset=utf-8', 'Application/JSON', 'application/vnd.livedex+json']) {
      const res = await send(port, 'POST', '/v1/retrieve', { 'content-type': type }, JSON.stringify({ query: 'heron', k: 1 }));
      assert.equal(res.status, 200, `${type}: ${res.text}`);
    }
    const empty = await send(port, 'POST', '/v1/statistics', { 'content-type': 'application/json' });
    assert.equal(empty.status, 200, empty.text);
    const get = await send(port, 'GET', '/v1/retrieve?query=heron&k=1');
    assert.equal(get.status, 200);
    assert.match(get.text, /heron stands still/);
  });

  it('refuses the DNS-rebinding reproduction: retrieve, push PUT and DELETE, MCP initialize', async () => {
    // curl -H 'Host: evil.example:8000' -H 'Origin: http://evil.example:8000' 'http://127.0.0.1:8000/v1/retrieve?query=x'
    const rebound = { host: 'evil.example:8000', origin: 'http://evil.example:8000' };
    const read = await send(port, 'GET', '/v1/retrieve?query=x', rebound);
    assert.equal(read.status, 403);
    assert.doesNotMatch(read.text, /heron/);

    const kept = await send(port, 'PUT', '/v1/documents/kept.txt', { 'content-type': 'text/plain' }, 'The kept note stays.');
    assert.equal(kept.status, 202, kept.text);
    await waitFor(async () => (await send(port, 'GET', '/v1/documents/push:kept.txt')).status === 200 || undefined, 20_000);
    const put = await send(port, 'PUT', '/v1/documents/rebound.txt', { ...rebound, 'content-type': 'text/plain' }, 'planted by a web page');
    assert.equal(put.status, 403);
    const del = await send(port, 'DELETE', '/v1/documents/kept.txt', rebound);
    assert.equal(del.status, 403);
    // A push after the refused ones: once it shows, anything accepted before it would show too.
    assert.equal((await send(port, 'PUT', '/v1/documents/marker.txt', { 'content-type': 'text/plain' }, 'a marker')).status, 202);
    await waitFor(async () => (await send(port, 'GET', '/v1/documents/push:marker.txt')).status === 200 || undefined, 20_000);
    assert.equal((await send(port, 'GET', '/v1/documents/push:rebound.txt')).status, 404, 'nothing was pushed');
    assert.equal((await send(port, 'GET', '/v1/documents/push:kept.txt')).status, 200, 'nothing was deleted');

    const init = await send(
      port,
      'POST',
      '/mcp',
      { ...rebound, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'page', version: '1' } } }),
    );
    assert.equal(init.status, 403);
    assert.equal(init.headers['mcp-session-id'], undefined);
    // Each header alone is enough.
    assert.equal((await send(port, 'GET', '/v1/retrieve?query=x', { host: rebound.host })).status, 403);
    assert.equal((await send(port, 'GET', '/v1/retrieve?query=x', { origin: rebound.origin })).status, 403);
  });
});

describe('allowed_hosts', () => {
  it('serves the names it lists (any port, or the one given) and their own origin, and nothing else', async () => {
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'heron.md'), '# Heron\n\nThe heron stands still.');
    const server = await startServer(folder.path, { dataDir: data.path, config: { allowed_hosts: ['Docs.Internal', 'proxy.internal:443', 'fe80::1'] } });
    try {
      const port = server.port;
      const ok = async (host: string, origin?: string) => (await send(port, 'GET', '/v1/statistics', { host, ...(origin ? { origin } : {}) })).status;
      assert.equal(await ok(`docs.internal:${port}`), 200);
      assert.equal(await ok('docs.internal'), 200);
      assert.equal(await ok(`docs.internal:${port}`, `http://docs.internal:${port}`), 200);
      assert.equal(await ok('proxy.internal:443', 'https://proxy.internal'), 200);
      assert.equal(await ok('[fe80::1]:8000'), 200);
      assert.equal(await ok(`proxy.internal:${port}`), 403);
      assert.equal(await ok(`evil.example:${port}`), 403);
      assert.equal(await ok(`docs.internal:${port}`, 'http://evil.example'), 403);
    } finally {
      await server.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });

  it('includes the address a server without a token is bound to beyond loopback, and adds nothing for a wildcard or with a token', async () => {
    const remote = { auth: { allow_remote_without_auth: true } };
    assert.deepEqual((await securityFor(parseConfig({ ...remote, host: '192.168.1.20', allowed_hosts: ['docs.internal'] }), silentLogger)).allowedHosts, ['docs.internal', '192.168.1.20']);
    assert.deepEqual((await securityFor(parseConfig({ ...remote, host: '0.0.0.0' }), silentLogger)).allowedHosts, []);
    assert.deepEqual((await securityFor(parseConfig({ host: '192.168.1.20', auth: { tokens: ['origin-test-token-0123456789'] } }), silentLogger)).allowedHosts, []);
  });

  it('comes from --allowed-host on the command line', { timeout: 120_000 }, async () => {
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'heron.md'), '# Heron\n\nThe heron stands still.');
    const cli = runCli(['serve', folder.path, '--data-dir', data.path, '--port', '0', '--log-level', 'error', '--allowed-host', 'docs.internal', 'wiki.internal']);
    try {
      const port = Number(new URL(await cli.url).port);
      await waitFor(async () => (await send(port, 'GET', '/readyz')).status === 200 || undefined, 60_000, 100);
      assert.equal((await send(port, 'GET', '/v1/retrieve?query=heron', { host: `docs.internal:${port}` })).status, 200);
      assert.equal((await send(port, 'GET', '/v1/retrieve?query=heron', { host: `wiki.internal:${port}` })).status, 200);
      const other = await send(port, 'GET', '/v1/retrieve?query=heron', { host: `evil.example:${port}` });
      assert.equal(other.status, 403);
      assert.match(other.json().error!.message, /--allowed-host evil\.example/);
    } finally {
      cli.proc.kill('SIGTERM');
      await cli.exited;
      await folder.cleanup();
      await data.cleanup();
    }
  });
});

describe('a server with a token', () => {
  const TOKEN = 'origin-test-token-0123456789';
  const base = { tokens: [{ token: TOKEN, scope: 'admin' as const, name: 'a' }], maxBodyBytes: 1 << 20, maxQueryChars: 8192, ratePerMinute: 0, maxConcurrent: 64 };
  const auth = { authorization: `Bearer ${TOKEN}` };

  it('serves any Host, still checks Origin against cors_origins, and lets only those origins preflight', async () => {
    const app = createApp(createStubIndex(), { logger: silentLogger, security: { ...base, corsOrigins: ['https://app.example/'] } });
    const server = await startApp(app, { host: '127.0.0.1', port: 0 });
    try {
      const port = server.port;
      assert.equal((await send(port, 'GET', '/v1/statistics', { ...auth, host: 'livedex.example.com' })).status, 200);
      const foreign = await send(port, 'GET', '/v1/statistics', { ...auth, origin: 'https://evil.example' });
      assert.equal(foreign.status, 403, 'a valid token does not make a foreign page welcome');
      assert.equal(foreign.json().error?.field, 'origin');
      const listed = await send(port, 'GET', '/v1/statistics', { ...auth, origin: 'https://app.example' });
      assert.equal(listed.status, 200);
      assert.equal(listed.headers['access-control-allow-origin'], 'https://app.example');
      const preflight = { 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' };
      const good = await send(port, 'OPTIONS', '/v1/retrieve', { ...preflight, origin: 'https://app.example' });
      assert.ok(good.status === 204 || good.status === 200, String(good.status));
      assert.equal(good.headers['access-control-allow-origin'], 'https://app.example');
      const bad = await send(port, 'OPTIONS', '/v1/retrieve', { ...preflight, origin: 'https://evil.example' });
      assert.equal(bad.status, 403);
      assert.equal(bad.headers['access-control-allow-origin'], undefined);
      const own = await send(port, 'POST', '/v1/retrieve', { ...auth, host: 'livedex.example.com', origin: 'https://livedex.example.com', 'content-type': 'application/json' }, '{"query":"guide"}');
      assert.equal(own.status, 200, 'the page a TLS proxy serves at the same name is the server\'s own');
      const plain = await send(port, 'POST', '/v1/retrieve', { ...auth, 'content-type': 'text/plain' }, '{"query":"guide"}');
      assert.equal(plain.status, 415, 'text/plain is refused with a token too');
    } finally {
      await server.close();
    }
  });

  it('keeps allowed_hosts when it is given', async () => {
    const app = createApp(createStubIndex(), { logger: silentLogger, security: { ...base, corsOrigins: [], allowedHosts: ['livedex.example.com'] } });
    const server = await startApp(app, { host: '127.0.0.1', port: 0 });
    try {
      assert.equal((await send(server.port, 'GET', '/v1/statistics', { ...auth, host: 'livedex.example.com' })).status, 200);
      assert.equal((await send(server.port, 'GET', '/v1/statistics', { ...auth })).status, 200);
      const other = await send(server.port, 'GET', '/v1/statistics', { ...auth, host: 'evil.example' });
      assert.equal(other.status, 403);
      assert.equal(other.json().error?.field, 'host');
    } finally {
      await server.close();
    }
  });
});
