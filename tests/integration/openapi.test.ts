/** `/openapi.json` and `/docs`: a valid OpenAPI 3.1 document listing every route, whose examples get the documented answers. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { createApp } from '../../src/server/index.js';
import { startFakeChat, type FakeChat } from '../helpers/fake-chat.js';
import { startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';
import { createStubIndex } from '../helpers/stub-index.js';

const TOKEN = 'openapi-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

type Doc = { openapi: string; paths: Record<string, Record<string, OperationObject>> };
interface OperationObject {
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; example?: unknown }>;
  requestBody?: { content: Record<string, { example?: unknown }> };
  responses: Record<string, { content: Record<string, { schema?: object }> }>;
}

describe('the OpenAPI document', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let chat: FakeChat;
  let server: TestServer;
  let doc: Doc;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'harbor.md'), '# Harbor\n\nThe harbor lantern burns all night to guide the boats.\n');
    chat = await startFakeChat({ respond: () => ({ text: 'The harbor lantern guides the boats [1].' }), apiKey: 'sk-test' });
    server = await startServer(folder.path, {
      dataDir: data.path,
      config: {
        auth: { tokens: [TOKEN] },
        sandbox: { enabled: false },
        sources: [{ fs: { path: folder.path, reconcile_interval_s: 0 } }, 'push'],
        llm: { openai: { model: 'fake-gpt', base_url: chat.url, api_key: 'sk-test', max_attempts: 2, retry_base_ms: 1, retry_max_ms: 5 } },
      },
    });
    await server.ready;
    const res = await fetch(`${server.url}/openapi.json`, { headers: auth });
    assert.equal(res.status, 200);
    doc = (await res.json()) as Doc;
  });

  after(async () => {
    await server?.close();
    await chat?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('validates as OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Parameters<Validator['validate']>[0]);
    assert.deepEqual(result, { valid: true });
    assert.equal(validator.version, '3.1');
  });

  it('lists every route of the app, and nothing the app does not serve', () => {
    const app = createApp(createStubIndex(), { push: { target: () => null, maxBytes: 1000, parses: () => true } });
    const served = new Set<string>();
    for (const r of app.routes) {
      if (r.path === '/*' || r.path === '*') continue; // middleware
      const path = r.path.replace(/:(\w+)\{[^}]*\}/g, '{$1}').replace(/:(\w+)/g, '{$1}');
      const methods = r.method === 'ALL' ? ['get', 'post', 'delete'] : [r.method.toLowerCase()];
      for (const m of methods) served.add(`${m} ${path}`);
    }
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
    assert.deepEqual([...served].filter((r) => !documented.has(r)), [], 'routes missing from the document');
    assert.deepEqual([...documented].filter((r) => !served.has(r)), [], 'documented operations the app does not serve');
    assert.ok(served.size >= 30, `only ${served.size} routes`);
  });

  it('gives each operation its schemas and each input an example', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const ok = Object.keys(op.responses).find((s) => s.startsWith('2'));
        assert.ok(ok, `${method} ${path}: no success response`);
        const body = op.requestBody?.content['application/json'];
        if (body) assert.ok(body.example, `${method} ${path}: no example`);
      }
    }
  });

  it('documents the refusals every route may give before it runs: 403 (Host, Origin), 408 (slow request), 415 (a body not JSON)', async () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        assert.ok(op.responses['403'] && op.responses['408'], `${method} ${path}: no 403 or 408`);
        if (op.requestBody) assert.ok(op.responses['415'], `${method} ${path}: no 415`);
      }
    }
    // And the server gives them as documented: a foreign Origin on a JSON route, text/plain on it.
    const foreign = await fetch(`${server.url}/v1/retrieve`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', origin: 'http://evil.example' }, body: '{"query":"x"}' });
    assert.equal(foreign.status, 403);
    const plain = await fetch(`${server.url}/v1/retrieve`, { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: '{"query":"x"}' });
    assert.equal(plain.status, 415);
  });

  it('answers each documented example with the documented shape', async () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    // Push first, so that reading and deleting the pushed document have something to act on.
    const order = (path: string, method: string) => (method === 'put' ? 0 : method === 'delete' ? 2 : path.includes('{key}') ? 1 : 1);
    const ops = Object.entries(doc.paths)
      .flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })))
      .sort((a, b) => order(a.path, a.method) - order(b.path, b.method));
    let sent = 0;
    for (const { path, method, op } of ops) {
      const params = op.parameters ?? [];
      const body = op.requestBody?.content['application/json']?.example;
      const query = params.filter((p) => p.in === 'query');
      const needsInput = op.requestBody !== undefined || query.length > 0;
      const hasExample = body !== undefined || query.some((p) => p.example !== undefined);
      if (needsInput && !hasExample) continue; // a GET whose example does not fit a query string
      let url = server.url + path.replace('{key}', () => String(params.find((p) => p.name === 'key')?.example));
      const qs = new URLSearchParams(query.filter((p) => p.example !== undefined).map((p): [string, string] => [p.name, String(p.example)]));
      if ([...qs].length > 0) url += `?${qs}`;
      if (method === 'get' && path.includes('{key}')) {
        await waitFor(async () => (await fetch(url, { headers: auth })).status === 200, 15_000);
      }
      // MCP's streamable HTTP needs both; elsewhere an event-stream Accept asks for a streamed answer.
      const headers: Record<string, string> = { ...auth, accept: path === '/mcp' ? 'application/json, text/event-stream' : 'application/json' };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(url, { method: method.toUpperCase(), headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      const where = `${method.toUpperCase()} ${path}`;
      const documented = op.responses[String(res.status)];
      const text = await res.text();
      assert.ok(documented, `${where} answered ${res.status}, not documented: ${text.slice(0, 300)}`);
      if (hasExample || !needsInput) {
        if (!path.startsWith('/mcp') || method === 'post') assert.ok(res.status < 300, `${where} → ${res.status}: ${text.slice(0, 300)}`);
      }
      const schema = documented.content['application/json']?.schema;
      if (schema) {
        const type = res.headers.get('content-type') ?? '';
        // MCP may answer one JSON-RPC message as a server-sent event.
        const json = type.startsWith('text/event-stream') ? JSON.parse(/^data: (.*)$/m.exec(text)![1]!) : JSON.parse(text);
        const validate = ajv.compile(schema);
        assert.ok(validate(json), `${where} → ${res.status}: ${ajv.errorsText(validate.errors)}\n${text.slice(0, 300)}`);
      } else {
        const media = Object.keys(documented.content)[0]!;
        assert.ok((res.headers.get('content-type') ?? '').startsWith(media), `${where}: ${res.headers.get('content-type')} is not ${media}`);
      }
      sent++;
    }
    assert.ok(sent >= 30, `sent only ${sent} examples`);
  });

  it('renders the reference at /docs from the document', async () => {
    const res = await fetch(`${server.url}/docs`, { headers: auth });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    const html = await res.text();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) assert.ok(html.includes(`id="${method}-${path}"`), `${method} ${path} missing from /docs`);
    }
    assert.ok(!/<script[^>]+src=/.test(html), 'the page loads nothing from elsewhere');
  });
});
