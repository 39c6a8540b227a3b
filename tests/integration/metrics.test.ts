/** `/metrics`: Prometheus text from a registry per app, whose counters follow what the index does. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LiveIndex } from '../../src/core/live-index.js';
import { builtinRegistry } from '../../src/plugins.js';
import { startFakeOpenAI, type FakeOpenAI } from '../helpers/fake-openai.js';
import { startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';
import { parsePrometheus, type Scrape } from '../helpers/prometheus.js';

const TOKEN = 'metrics-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

async function scrape(base: string): Promise<Scrape> {
  const res = await fetch(`${base}/metrics`, { headers: auth });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

async function query(base: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${base}/v1/retrieve`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('/metrics', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'harbor.md'), '# Harbor\n\nThe harbor lantern burns all night.\n');
    await writeFile(join(folder.path, 'meadow.txt'), 'The meadow orchard grows quinces.\n');
    await writeFile(join(folder.path, 'binary.md'), Buffer.from([0x89, 0x50, 0x00, 0x00, 0x01, 0x02, 0x00, 0xff, 0x00, 0x00]));
    server = await startServer(folder.path, { dataDir: data.path, config: { auth: { tokens: [TOKEN] } } });
    await server.ready;
  });

  after(async () => {
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('stays behind the token', async () => {
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 401);
  });

  it('parses as Prometheus text and counts the documents of the folder by status', async () => {
    const m = await scrape(server.url);
    assert.equal(m.types.get('livedex_documents'), 'gauge');
    assert.equal(m.types.get('livedex_ingest_latency_seconds'), 'histogram');
    assert.equal(m.types.get('livedex_query_duration_seconds'), 'histogram');
    assert.equal(m.value('livedex_documents', { status: 'indexed' }), 2);
    assert.equal(m.value('livedex_documents', { status: 'failed' }), 1);
    assert.ok(m.value('livedex_chunks') >= 2);
    assert.equal(m.value('livedex_ready'), 1);
    assert.equal(m.value('livedex_queue_depth'), 0);
    assert.equal(m.value('livedex_documents_settled_total', { state: 'indexed' }), 2);
    assert.equal(m.value('livedex_documents_settled_total', { state: 'failed' }), 1);
    assert.equal(m.value('livedex_errors_total', { kind: 'document_failed' }), 1);
    assert.equal(m.value('livedex_ingest_latency_seconds_count'), 3);
    assert.equal(m.value('livedex_ingest_latency_seconds_bucket', { le: '+Inf' }), 3);
    assert.equal(m.value('livedex_changes_seen_total'), 3);
    assert.equal(m.value('livedex_source_up', { source: m.samples.find((s) => s.name === 'livedex_source_up')!.labels.source! }), 1);
  });

  it('moves the query histogram by mode, and the error counter by code', async () => {
    const before = await scrape(server.url);
    assert.equal((await query(server.url, { query: 'lantern', mode: 'bm25' })).status, 200);
    assert.equal((await query(server.url, { query: 'lantern' })).status, 200);
    assert.equal((await query(server.url, { query: 'lantern', k: 0 })).status, 400);
    const after = await scrape(server.url);
    const count = (s: Scrape, mode: string) => s.value('livedex_query_duration_seconds_count', { mode, outcome: 'ok' });
    assert.equal(count(after, 'bm25') - count(before, 'bm25'), 1);
    assert.equal(count(after, 'hybrid') - count(before, 'hybrid'), 1);
    assert.ok(after.value('livedex_query_duration_seconds_sum', { mode: 'bm25' }) > before.value('livedex_query_duration_seconds_sum', { mode: 'bm25' }));
    assert.equal(after.value('livedex_http_errors_total', { code: 'invalid_request', status: '400' }) - before.value('livedex_http_errors_total', { code: 'invalid_request', status: '400' }), 1);
  });

  it('counts a new file from its change to queryable, and a new failure', async () => {
    const before = await scrape(server.url);
    await writeFile(join(folder.path, 'quarry.md'), 'The quarry stone is grey.\n');
    await writeFile(join(folder.path, 'broken.md'), Buffer.from([0x00, 0x01, 0x02, 0x00, 0xfe, 0x00]));
    await waitFor(async () => {
      const m = await scrape(server.url);
      // The store counts a document at its commit; the settle event follows once the vectors are in.
      return m.value('livedex_documents_settled_total', { state: 'indexed' }) === 3 && m.value('livedex_documents_settled_total', { state: 'failed' }) === 2;
    }, 20_000);
    const after = await scrape(server.url);
    const diff = (name: string, labels?: Record<string, string>) => after.value(name, labels) - before.value(name, labels);
    assert.equal(after.value('livedex_documents', { status: 'indexed' }), 3);
    assert.equal(after.value('livedex_documents', { status: 'failed' }), 2);
    assert.equal(diff('livedex_documents_settled_total', { state: 'indexed' }), 1);
    assert.equal(diff('livedex_documents_settled_total', { state: 'failed' }), 1);
    assert.equal(diff('livedex_errors_total', { kind: 'document_failed' }), 1);
    assert.equal(diff('livedex_ingest_latency_seconds_count'), 2);
    assert.ok(diff('livedex_ingest_latency_seconds_sum') > 0);
    assert.ok(diff('livedex_chunks') >= 1);
    assert.ok(after.value('livedex_last_ingest_lag_seconds') > 0);
    assert.ok(diff('livedex_documents_parsed_total') >= 1);
  });

  it('keeps one registry per app: a second server in the process has its own counts', async () => {
    const otherFolder = await tempDir();
    const otherData = await tempDir();
    await writeFile(join(otherFolder.path, 'one.md'), 'Only one document here.\n');
    const other = await startServer(otherFolder.path, { dataDir: otherData.path, config: { auth: { tokens: [TOKEN] } } });
    try {
      await other.ready;
      const m = await scrape(other.url);
      assert.equal(m.value('livedex_documents', { status: 'indexed' }), 1);
      assert.equal(m.value('livedex_documents_settled_total'), 1);
      assert.equal((await scrape(server.url)).value('livedex_documents', { status: 'indexed' }), 3);
    } finally {
      await other.close();
      await otherFolder.cleanup();
      await otherData.cleanup();
    }
  });
});

describe('/metrics of model calls', () => {
  let fake: FakeOpenAI;
  before(async () => {
    fake = await startFakeOpenAI();
  });
  after(async () => fake?.close());

  it('counts requests, retries and failures of the embedding model', async () => {
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'a.md'), 'Alpha paragraph about lanterns.\n');
    // The first request fails with a 500: the machine tries again.
    fake.faultAt.set(1, { kind: 'status', status: 500 });
    const server = await startServer(folder.path, {
      dataDir: data.path,
      registry: builtinRegistry(),
      config: {
        auth: { tokens: [TOKEN] },
        embedder: { openai: { base_url: fake.url, api_key: 'sk-test', timeout_ms: 2000, retry_base_ms: 10, retry_max_ms: 40, flush_ms: 5 } },
        sandbox: { enabled: false },
      },
    });
    try {
      await server.ready;
      const before = await scrape(server.url);
      assert.equal(before.value('livedex_model_retries_total', { call: 'documents' }), 1);
      assert.equal(before.value('livedex_model_requests_total', { call: 'documents' }), fake.embeddingRequests.length);
      assert.ok(before.value('livedex_model_items_total', { call: 'documents' }) >= 1);
      assert.equal(before.types.get('livedex_model_cache_hits_total'), 'counter');
      const counters = (server.index as LiveIndex).telemetry().model.documents!;
      assert.equal(before.value('livedex_model_cache_hits_total', { call: 'documents' }), counters.cacheHits);

      // A query whose every attempt fails: a model error by kind (and a BM25 answer).
      fake.faults.push({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 });
      assert.equal((await query(server.url, { query: 'lanterns', mode: 'hybrid' })).status, 200);
      const after = await scrape(server.url);
      assert.equal(after.value('livedex_model_requests_total', { call: 'queries' }), 2);
      assert.equal(after.value('livedex_model_retries_total', { call: 'queries' }), 1);
      assert.equal(after.value('livedex_errors_total', { kind: 'model_server_error' }), 1);
    } finally {
      await server.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });
});
