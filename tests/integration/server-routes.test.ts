import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { createApp, startServer } from '../../src/server/index.js';
import type { RunningServer } from '../../src/server/index.js';
import { LivedexError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/types.js';
import { STUB_DOCUMENTS, createStubIndex } from '../helpers/stub-index.js';
import type { StubIndex } from '../helpers/stub-index.js';

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

function recordingLogger(): Logger & { errors: { msg: string; fields?: Record<string, unknown> }[] } {
  const errors: { msg: string; fields?: Record<string, unknown> }[] = [];
  const noop = () => {};
  return { debug: noop, info: noop, warn: noop, error: (msg, fields) => errors.push({ msg, fields }), errors };
}

/** Starts the real server over a fresh stub; tests share it through the returned handle. */
function useServer(opts: { maxK?: number } = {}) {
  const ctx = {} as { server: RunningServer; stub: StubIndex; logger: ReturnType<typeof recordingLogger> };
  before(async () => {
    ctx.stub = createStubIndex();
    ctx.logger = recordingLogger();
    ctx.server = await startServer(createApp(ctx.stub, { logger: ctx.logger, ...opts }), { host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await ctx.server.close();
  });
  beforeEach(() => {
    ctx.stub.calls.retrieve.length = 0;
    ctx.stub.calls.listDocuments.length = 0;
    ctx.stub.calls.getDocument.length = 0;
    ctx.stub.ready = true;
    ctx.stub.failWith = undefined;
  });
  const call = async (method: string, path: string, body?: unknown): Promise<Reply> => {
    // A POST says its body is JSON even when it sends none, as every client does (anything else is a 415).
    const init: RequestInit = { method, redirect: 'manual', ...(method === 'POST' ? { headers: { 'content-type': 'application/json' } } : {}) };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers = { 'content-type': 'application/json' };
    }
    const res = await fetch(ctx.server.url + path, init);
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) };
  };
  return {
    ctx,
    get: (path: string) => call('GET', path),
    post: (path: string, body?: unknown) => call('POST', path, body),
    call,
  };
}

function assertError(reply: Reply, status: number, code: string, field?: string): string {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  assert.match(reply.headers.get('content-type') ?? '', /application\/json/);
  const body = reply.body as { error: { code: string; message: string; field?: string } };
  assert.equal(body.error.code, code);
  assert.equal(body.error.field, field);
  assert.ok(body.error.message.length > 0);
  return body.error.message;
}

describe('/v1/retrieve', () => {
  const { ctx, get, post } = useServer();

  it('answers GET with a bare array of hits and passes defaults to the index', async () => {
    const reply = await get('/v1/retrieve?query=hello');
    assert.equal(reply.status, 200);
    const hits = reply.body as { text: string; metadata: object; dist: number; scores: object }[];
    assert.ok(Array.isArray(hits));
    assert.equal(hits.length, 3);
    for (const hit of hits) {
      assert.equal(typeof hit.text, 'string');
      assert.equal(typeof hit.metadata, 'object');
      assert.equal(typeof hit.dist, 'number');
      assert.equal(typeof hit.scores, 'object');
    }
    assert.deepEqual(ctx.stub.calls.retrieve, [
      { query: 'hello', k: 3, mode: 'hybrid', metadataFilter: null, filepathGlobpattern: null },
    ]);
  });

  it('coerces a string k from the query string', async () => {
    const reply = await get('/v1/retrieve?query=hello&k=2&mode=bm25');
    assert.equal(reply.status, 200);
    assert.equal((reply.body as unknown[]).length, 2);
    assert.equal(ctx.stub.calls.retrieve[0]?.k, 2);
    assert.equal(ctx.stub.calls.retrieve[0]?.mode, 'bm25');
  });

  it('answers POST with a JSON body, explicit nulls meaning defaults (LangChain and LlamaIndex send them)', async () => {
    const reply = await post('/v1/retrieve', {
      query: 'hello',
      k: null,
      metadata_filter: null,
      filepath_globpattern: null,
      mode: null,
      fusion: null,
      alpha: null,
    });
    assert.equal(reply.status, 200);
    assert.deepEqual(ctx.stub.calls.retrieve, [
      { query: 'hello', k: 3, mode: 'hybrid', metadataFilter: null, filepathGlobpattern: null },
    ]);
  });

  it('accepts k as a numeric string in a JSON body', async () => {
    assert.equal((await post('/v1/retrieve', { query: 'hello', k: '1' })).status, 200);
    assert.equal(ctx.stub.calls.retrieve[0]?.k, 1);
  });

  it('fills keys missing from the body from the query string, and lets the body win', async () => {
    await post('/v1/retrieve?k=1', { query: 'hello' });
    await post('/v1/retrieve?k=1', { query: 'hello', k: 2 });
    await post('/v1/retrieve?k=1', { query: 'hello', k: null });
    await post('/v1/retrieve?query=from-url');
    assert.deepEqual(
      ctx.stub.calls.retrieve.map((r) => [r.query, r.k]),
      [
        ['hello', 1],
        ['hello', 2],
        ['hello', 3],
        ['from-url', 3],
      ],
    );
  });

  it('passes filters through and returns only what they keep', async () => {
    const reply = await post('/v1/retrieve', { query: 'q', k: 5, metadata_filter: 'globmatch(`**/*.md`, path)', filepath_globpattern: 'docs/*.md' });
    assert.equal(reply.status, 200);
    assert.deepEqual(
      (reply.body as { metadata: { path: string } }[]).map((h) => h.metadata.path),
      ['docs/guide.md'],
    );
    assert.equal(ctx.stub.calls.retrieve[0]?.metadataFilter, 'globmatch(`**/*.md`, path)');
    assert.equal(ctx.stub.calls.retrieve[0]?.filepathGlobpattern, 'docs/*.md');
  });

  it('treats an empty metadata_filter or filepath_globpattern as none', async () => {
    await get('/v1/retrieve?query=q&metadata_filter=&filepath_globpattern=');
    assert.equal(ctx.stub.calls.retrieve[0]?.metadataFilter, null);
    assert.equal(ctx.stub.calls.retrieve[0]?.filepathGlobpattern, null);
  });

  it('takes mode, fusion and alpha, alpha implying convex fusion', async () => {
    await post('/v1/retrieve', { query: 'q', mode: 'vector' });
    await post('/v1/retrieve', { query: 'q', fusion: 'rrf' });
    await get('/v1/retrieve?query=q&alpha=0.25');
    await post('/v1/retrieve', { query: 'q', fusion: 'convex', alpha: 1 });
    const [a, b, c, d] = ctx.stub.calls.retrieve;
    assert.equal(a?.mode, 'vector');
    assert.equal(b?.fusion, 'rrf');
    assert.equal(b?.alpha, undefined);
    assert.deepEqual([c?.fusion, c?.alpha], ['convex', 0.25]);
    assert.deepEqual([d?.fusion, d?.alpha], ['convex', 1]);
  });

  it('ignores unknown extra fields', async () => {
    const reply = await post('/v1/retrieve', { query: 'q', k: 1, return_context_docs: true, collection: 'x' });
    assert.equal(reply.status, 200);
    assert.deepEqual(ctx.stub.calls.retrieve[0], { query: 'q', k: 1, mode: 'hybrid', metadataFilter: null, filepathGlobpattern: null });
  });

  it('routes trailing and doubled slashes without redirecting', async () => {
    for (const path of ['/v1/retrieve/', '/v1//retrieve/', '/v1/retrieve//']) {
      const reply = await post(path, { query: 'q', k: 1 });
      assert.equal(reply.status, 200, path);
    }
    assert.equal((await get('/v1/retrieve/?query=q')).status, 200);
  });

  it('serves //v1/retrieve as sent by a client whose base URL ends in /', async () => {
    const url = new URL(ctx.server.url);
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: url.hostname, port: url.port, method: 'POST', path: '//v1/retrieve', headers: { 'content-type': 'application/json' } },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (data += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ query: 'q', k: 1 }));
    });
    assert.equal(status, 200);
    assert.equal((JSON.parse(body) as unknown[]).length, 1);
  });

  it('rejects a malformed JSON body naming the field body', async () => {
    assertError(await post('/v1/retrieve', '{"query": "q",'), 400, 'invalid_request', 'body');
  });

  it('rejects a JSON body that is not an object', async () => {
    for (const body of ['[1, 2]', '"query"', '42', 'null']) {
      const message = assertError(await post('/v1/retrieve', body), 400, 'invalid_request', 'body');
      assert.match(message, /JSON object/);
    }
  });

  it('reads an empty POST body as {} (so query is then missing)', async () => {
    const message = assertError(await post('/v1/retrieve'), 400, 'invalid_request', 'query');
    assert.match(message, /query is required/);
  });

  it('rejects a missing or non-string query naming query', async () => {
    assertError(await get('/v1/retrieve'), 400, 'invalid_request', 'query');
    assertError(await post('/v1/retrieve', { k: 2 }), 400, 'invalid_request', 'query');
    assertError(await post('/v1/retrieve', { query: 5 }), 400, 'invalid_request', 'query');
    assert.equal(ctx.stub.calls.retrieve.length, 0);
  });

  it('passes an empty query through (Pathway accepts it; the index answers it with no hits)', async () => {
    const res = await post('/v1/retrieve', { query: '' });
    assert.equal(res.status, 200);
    assert.equal(ctx.stub.calls.retrieve.at(-1)?.query, '');
  });

  it('rejects k below 1, fractional, non-numeric or above the maximum naming k', async () => {
    assertError(await get('/v1/retrieve?query=q&k=0'), 400, 'invalid_request', 'k');
    assertError(await post('/v1/retrieve', { query: 'q', k: -3 }), 400, 'invalid_request', 'k');
    assertError(await post('/v1/retrieve', { query: 'q', k: 2.5 }), 400, 'invalid_request', 'k');
    assertError(await post('/v1/retrieve', { query: 'q', k: true }), 400, 'invalid_request', 'k');
    const message = assertError(await get('/v1/retrieve?query=q&k=abc'), 400, 'invalid_request', 'k');
    assert.equal(message, 'k must be an integer ≥ 1 (got "abc")');
    const tooBig = assertError(await post('/v1/retrieve', { query: 'q', k: 1001 }), 400, 'invalid_request', 'k');
    assert.match(tooBig, /at most 1000/);
    assert.equal(ctx.stub.calls.retrieve.length, 0);
  });

  it('rejects an unknown mode or fusion, and alpha out of range or with rrf', async () => {
    const message = assertError(await post('/v1/retrieve', { query: 'q', mode: 'semantic' }), 400, 'invalid_request', 'mode');
    assert.match(message, /hybrid, vector, bm25/);
    assertError(await get('/v1/retrieve?query=q&fusion=max'), 400, 'invalid_request', 'fusion');
    assertError(await get('/v1/retrieve?query=q&alpha=1.5'), 400, 'invalid_request', 'alpha');
    assertError(await get('/v1/retrieve?query=q&alpha=high'), 400, 'invalid_request', 'alpha');
    assertError(await post('/v1/retrieve', { query: 'q', fusion: 'rrf', alpha: 0.5 }), 400, 'invalid_request', 'alpha');
  });

  it('maps an invalid JMESPath filter to 400 naming metadata_filter', async () => {
    const message = assertError(
      await post('/v1/retrieve', { query: 'q', metadata_filter: 'path == `a` && ) x' }),
      400,
      'invalid_filter',
      'metadata_filter',
    );
    assert.match(message, /position 15/);
  });

  it('maps a LivedexError from the index to its status and body', async () => {
    ctx.stub.failWith = new LivedexError('not_ready', 'the embedder is still loading');
    const message = assertError(await get('/v1/retrieve?query=q'), 503, 'not_ready');
    assert.equal(message, 'the embedder is still loading');
  });

  it('answers any other failure with a generic 500 JSON and logs the cause', async () => {
    ctx.stub.failWith = new Error('disk on fire at /secret/path');
    const message = assertError(await get('/v1/retrieve?query=q'), 500, 'internal');
    assert.doesNotMatch(message, /secret/);
    assert.ok(ctx.logger.errors.some((e) => String(e.fields?.error).includes('disk on fire')));
  });
});

describe('/v1/retrieve with a configured maxK', () => {
  const { get } = useServer({ maxK: 10 });

  it('rejects k above maxK naming k', async () => {
    assert.equal((await get('/v1/retrieve?query=q&k=10')).status, 200);
    const message = assertError(await get('/v1/retrieve?query=q&k=11'), 400, 'invalid_request', 'k');
    assert.match(message, /at most 10 \(got 11\)/);
  });
});

describe('/v1/statistics', () => {
  const { get, post } = useServer();

  it('returns file_count, last_modified and last_indexed over GET and POST', async () => {
    for (const reply of [await get('/v1/statistics'), await post('/v1/statistics', {}), await post('/v1/statistics/')]) {
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.body, { file_count: 3, last_modified: 1700000300, last_indexed: 1700000500 });
    }
  });
});

describe('/v1/inputs and its aliases', () => {
  const { ctx, get, post } = useServer();

  it('returns a bare array of metadata on every alias, GET and POST', async () => {
    for (const path of ['/v1/inputs', '/v2/list_documents', '/v1/pw_list_documents']) {
      for (const reply of [await get(path), await post(path, {}), await post(path)]) {
        assert.equal(reply.status, 200, path);
        assert.deepEqual(reply.body, STUB_DOCUMENTS);
      }
    }
    assert.ok(ctx.stub.calls.listDocuments.every((r) => r.returnStatus === false && r.metadataFilter === null));
  });

  it('coerces return_status from "true", "1", "false" and "0"', async () => {
    await get('/v1/inputs?return_status=true');
    await get('/v1/inputs?return_status=1');
    await get('/v1/inputs?return_status=false');
    await get('/v1/inputs?return_status=0');
    await post('/v1/inputs', { return_status: true });
    await post('/v1/inputs', { return_status: null });
    assert.deepEqual(
      ctx.stub.calls.listDocuments.map((r) => r.returnStatus),
      [true, true, false, false, true, false],
    );
    const reply = await get('/v2/list_documents?return_status=true');
    assert.ok((reply.body as { _indexing_status?: string }[]).every((m) => m._indexing_status === 'INDEXED'));
  });

  it('rejects a return_status that is not a boolean naming return_status', async () => {
    assertError(await get('/v1/inputs?return_status=maybe'), 400, 'invalid_request', 'return_status');
  });

  it('filters by metadata_filter and filepath_globpattern', async () => {
    const reply = await post('/v2/list_documents', { metadata_filter: 'modified_at > `1650000000`', filepath_globpattern: '*.md' });
    assert.deepEqual(
      (reply.body as { path: string }[]).map((m) => m.path),
      ['docs/guide.md', 'docs/api/reference.md'],
    );
    assert.deepEqual(ctx.stub.calls.listDocuments[0], {
      metadataFilter: 'modified_at > `1650000000`',
      filepathGlobpattern: '*.md',
      returnStatus: false,
    });
  });

  it('rejects an invalid filter and a malformed body', async () => {
    assertError(await get('/v1/inputs?metadata_filter=' + encodeURIComponent('foo(')), 400, 'invalid_filter', 'metadata_filter');
    assertError(await post('/v1/pw_list_documents', '{nope'), 400, 'invalid_request', 'body');
  });
});

describe('GET /v1/documents/{key}', () => {
  const { ctx, get, call } = useServer();

  it('returns the document of a URL-encoded key containing slashes', async () => {
    const reply = await get('/v1/documents/' + encodeURIComponent('docs/api/reference.md'));
    assert.equal(reply.status, 200);
    const doc = reply.body as { key: string; status: string; metadata: { path: string }; chunk_count: number };
    assert.equal(doc.key, 'docs/api/reference.md');
    assert.equal(doc.status, 'indexed');
    assert.equal(doc.metadata.path, 'docs/api/reference.md');
    assert.deepEqual(ctx.stub.calls.getDocument, ['docs/api/reference.md']);
  });

  it('decodes Unicode, spaces and apostrophes in the key', async () => {
    const key = "reports/l'été 2024.pdf";
    const reply = await get('/v1/documents/' + encodeURIComponent(key));
    assert.equal(reply.status, 200);
    assert.equal((reply.body as { key: string }).key, key);
  });

  it('answers 404 JSON naming key for an unknown document', async () => {
    const message = assertError(await get('/v1/documents/' + encodeURIComponent('no/such.md')), 404, 'not_found', 'key');
    assert.match(message, /no\/such\.md/);
  });

  it('answers 405 JSON to a method it does not take', async () => {
    const reply = await call('POST', '/v1/documents/a.md', {});
    assertError(reply, 405, 'method_not_allowed');
    assert.match(reply.headers.get('allow') ?? '', /GET/);
  });
});

describe('/healthz and /readyz', () => {
  const { ctx, get } = useServer();

  it('answers /healthz with 200 {status: "ok"} whatever the index state', async () => {
    ctx.stub.ready = false;
    const reply = await get('/healthz');
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, { status: 'ok' });
  });

  it('answers /readyz with 200 {ready: true} once the index is ready', async () => {
    const reply = await get('/readyz');
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, { ready: true });
  });

  it('answers /readyz with 503 JSON {ready: false, …} before that', async () => {
    ctx.stub.ready = false;
    const reply = await get('/readyz/');
    assert.equal(reply.status, 503);
    assert.match(reply.headers.get('content-type') ?? '', /application\/json/);
    const body = reply.body as { ready: boolean; documents?: { pending: number } };
    assert.equal(body.ready, false);
    assert.equal(body.documents?.pending, 2);
  });
});

describe('unknown routes and methods', () => {
  const { get, call } = useServer();

  it('answers an unknown route with 404 JSON', async () => {
    assertError(await get('/v1/nope'), 404, 'not_found');
    assertError(await call('POST', '/v2/nope', {}), 404, 'not_found');
  });

  it('answers a wrong method with 405 JSON and an Allow header', async () => {
    for (const [method, path] of [
      ['PUT', '/v1/retrieve'],
      ['DELETE', '/v1/inputs/'],
      ['POST', '/healthz'],
      ['PATCH', '//v1/statistics'],
      ['POST', '/'], // the status page is GET only
    ] as const) {
      const reply = await call(method, path);
      assertError(reply, 405, 'method_not_allowed');
      assert.ok((reply.headers.get('allow') ?? '').length > 0, `${method} ${path}`);
    }
  });
});

describe('startServer', () => {
  it('listens on port 0, reports its URL and closes while a keep-alive connection is open', async () => {
    const server = await startServer(createApp(createStubIndex()), { host: '127.0.0.1', port: 0 });
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
    const res = await fetch(`${server.url}/healthz`, { headers: { connection: 'keep-alive' } });
    await res.text();
    const started = Date.now();
    await server.close();
    await server.close(); // idempotent
    assert.ok(Date.now() - started < 1500, 'close() should not wait for the keep-alive timeout');
    await assert.rejects(fetch(`${server.url}/healthz`));
  });
});
