import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { CallError, type CallingEmbedder } from '../../src/core/calls.js';
import { LivedexError } from '../../src/core/errors.js';
import { LiveIndex } from '../../src/core/live-index.js';
import { parseConfig } from '../../src/livedex.js';
import { builtinRegistry } from '../../src/plugins.js';
import { silentLogger } from '../../src/core/log.js';
import { Registry } from '../../src/core/registry.js';
import { embedderPlugins } from '../../src/models/index.js';
import { resolveOpenAIConnection } from '../../src/models/openai.js';
import { startFakeOpenAI, type Fault, type FakeOpenAI } from '../helpers/fake-openai.js';

const registry = new Registry().register(...embedderPlugins);
const ctx = { logger: silentLogger, dataDir: '/tmp/unused' };
/** Fast machinery for tests: short timeouts and backoff. */
const FAST = { timeout_ms: 400, retry_base_ms: 10, retry_max_ms: 40, flush_ms: 5 };

async function embedderFor(fake: FakeOpenAI, options: Record<string, unknown> = {}): Promise<CallingEmbedder> {
  return (await registry.create('embedder', 'openai', { base_url: fake.url, api_key: 'sk-test', ...FAST, ...options }, ctx)) as CallingEmbedder;
}

/** Embeds texts the way the pipeline does: several documents at once, `perCall` texts per call. */
async function indexTexts(embedder: CallingEmbedder, texts: string[], perCall = 16): Promise<Float32Array[]> {
  const calls: Promise<Float32Array[]>[] = [];
  for (let i = 0; i < texts.length; i += perCall) calls.push(embedder.embed(texts.slice(i, i + perCall)));
  return (await Promise.all(calls)).flat();
}

const corpus = Array.from({ length: 50 }, (_, i) => `paragraph ${i % 40} of the live index: ${'words '.repeat(i % 7)}`);
const uniqueCount = new Set(corpus).size; // 40

async function failureOf(p: Promise<unknown>): Promise<CallError> {
  const err = await p.then(() => null, (e: unknown) => e);
  assert.ok(err instanceof CallError, `expected a CallError, got ${String(err)}`);
  return err;
}

describe('openai embedder against a fake OpenAI server', () => {
  let fake: FakeOpenAI;
  let reference: Float32Array[];
  before(async () => {
    fake = await startFakeOpenAI();
    reference = corpus.map((t) => fake.vectorOf(t));
  });
  after(() => fake.close());
  const reset = () => fake.reset();

  it('makes exactly ⌈unique texts / batch⌉ requests and returns the server vectors, in order', async () => {
    reset();
    const embedder = await embedderFor(fake, { max_batch_items: 8 });
    const vectors = await indexTexts(embedder, corpus);
    assert.equal(fake.embeddingRequests.length, Math.ceil(uniqueCount / 8));
    assert.deepEqual(vectors, reference);
    const sent = fake.embeddingRequests.flatMap((r) => r.inputs);
    assert.equal(sent.length, uniqueCount);
    const body = fake.embeddingRequests[0]!.body as Record<string, unknown>;
    assert.equal(body.model, 'text-embedding-3-small');
    assert.equal(body.encoding_format, 'base64');
    assert.equal('dimensions' in body, false);
    assert.equal(fake.embeddingRequests[0]!.headers.authorization, 'Bearer sk-test');
    assert.equal(embedder.dimensions, 1536);
    assert.equal(embedder.modelKey, `openai:text-embedding-3-small:1536:${new URL(fake.url).host}`);
    assert.equal(embedder.lexical, undefined);
    // A second run is served from the cache.
    await indexTexts(embedder, corpus);
    assert.equal(fake.embeddingRequests.length, Math.ceil(uniqueCount / 8));
    await embedder.close();
  });

  it('passes dimensions through and keys vectors by them', async () => {
    reset();
    const embedder = await embedderFor(fake, { model: 'text-embedding-3-large', dimensions: 256 });
    const [v] = await embedder.embed(['short vectors']);
    assert.equal(v!.length, 256);
    assert.equal((fake.embeddingRequests[0]!.body as { dimensions: number }).dimensions, 256);
    assert.match(embedder.modelKey, /^openai:text-embedding-3-large:256:127\.0\.0\.1:\d+$/);
    await embedder.close();
  });

  const recoverable: Array<{ name: string; faults: Fault[]; minMs?: number }> = [
    { name: '429 with Retry-After: 1', faults: [{ kind: 'status', status: 429, retryAfter: '1' }], minMs: 950 },
    { name: 'two 500s', faults: [{ kind: 'status', status: 500 }, { kind: 'status', status: 500 }] },
    { name: 'a 503 then a 502', faults: [{ kind: 'status', status: 503 }, { kind: 'status', status: 502 }] },
    { name: 'a hang past the timeout', faults: [{ kind: 'hang' }], minMs: 390 },
    { name: 'a connection reset', faults: [{ kind: 'reset' }] },
    { name: 'malformed JSON', faults: [{ kind: 'malformed' }] },
    { name: 'a missing embedding', faults: [{ kind: 'wrong_count' }] },
  ];
  for (const { name, faults, minMs } of recoverable) {
    it(`retries ${name} and ends with the fault-free vectors`, async () => {
      reset();
      fake.faults.push(...faults);
      const embedder = await embedderFor(fake, { max_batch_items: 64 });
      const started = Date.now();
      const vectors = await embedder.embed(corpus);
      const elapsed = Date.now() - started;
      assert.equal(fake.embeddingRequests.length, 1 + faults.length);
      assert.equal(embedder.counters.retries, faults.length);
      assert.deepEqual(vectors, reference);
      if (minMs !== undefined) assert.ok(elapsed >= minMs, `waited ${elapsed} ms, expected ≥ ${minMs}`);
      assert.ok(elapsed < 3000, `took ${elapsed} ms`);
      await embedder.close();
    });
  }

  it('loses nothing when faults hit some of many concurrent requests', async () => {
    reset();
    fake.faultAt.set(1, { kind: 'status', status: 500 });
    fake.faultAt.set(3, { kind: 'reset' });
    fake.faultAt.set(4, { kind: 'status', status: 429, retryAfterMs: '50' });
    fake.faultAt.set(6, { kind: 'malformed' });
    const embedder = await embedderFor(fake, { max_batch_items: 8, max_concurrency: 3 });
    const vectors = await indexTexts(embedder, corpus);
    assert.deepEqual(vectors, reference);
    assert.equal(fake.embeddingRequests.length, Math.ceil(uniqueCount / 8) + 4);
    assert.ok(fake.maxConcurrent <= 3);
    await embedder.close();
  });

  it('gives up after max_attempts with an error saying the documents are held back', async () => {
    reset();
    fake.faults.push(...Array.from({ length: 3 }, (): Fault => ({ kind: 'status', status: 500, message: 'overloaded' })));
    const embedder = await embedderFor(fake, { max_attempts: 3 });
    const err = await failureOf(embedder.embed(['a', 'b']));
    assert.equal(fake.embeddingRequests.length, 3);
    assert.equal(err.transient, true);
    assert.match(err.message, /gave up after 3 attempts: 500 overloaded; the documents of these texts are held back/);
    await embedder.close();
  });

  it('embeds a query at once, and gives up on it after query_max_attempts', async () => {
    reset();
    const embedder = await embedderFor(fake, { max_attempts: 6, query_max_attempts: 2 });
    assert.deepEqual(await embedder.embedQuery!('what is live?'), fake.vectorOf('what is live?'));
    assert.equal(fake.embeddingRequests.length, 1);
    fake.faults.push(...Array.from({ length: 6 }, (): Fault => ({ kind: 'status', status: 503 })));
    const err = await failureOf(embedder.embedQuery!('is the model down?'));
    assert.equal(fake.embeddingRequests.length, 3);
    assert.equal(err.code, 'model_unavailable');
    assert.match(err.message, /\(query\) gave up after 2 attempts: 503/);
    await embedder.close();
  });

  it('fails for good on vectors of the wrong length, with a message that says what to set', async () => {
    reset();
    fake.faults.push({ kind: 'wrong_length', length: 768 });
    const embedder = await embedderFor(fake);
    const err = await failureOf(embedder.embed(['a']));
    assert.equal(fake.embeddingRequests.length, 1);
    assert.equal(err.transient, false);
    assert.match(err.message, /returned vectors of 768 numbers for model "text-embedding-3-small", expected 1536: set embedder\.openai\.dimensions/);
    await embedder.close();
  });

  it('does not retry a 400', async () => {
    reset();
    const embedder = await embedderFor(fake, { model: 'text-embedding-ada-002', dimensions: 256 });
    const err = await failureOf(embedder.embed(['a']));
    assert.equal(fake.embeddingRequests.length, 1);
    assert.equal(err.httpStatus, 400);
    assert.match(err.message, /does not support specifying dimensions/);
    await embedder.close();
  });

  it('names the model on a 404', async () => {
    reset();
    const embedder = await embedderFor(fake, { model: 'no-such-model', dimensions: 8 });
    const err = await failureOf(embedder.embed(['a']));
    assert.equal(fake.embeddingRequests.length, 1);
    assert.match(err.message, /has no model "no-such-model".*404/);
    await embedder.close();
  });
});

describe('openai embedder keys and configuration', () => {
  it('fails a 401 at once with a message naming the key source', async () => {
    const fake = await startFakeOpenAI({ apiKey: 'sk-right' });
    try {
      const embedder = await embedderFor(fake, { api_key: 'sk-wrong' });
      const err = await failureOf(embedder.embed(['a']));
      assert.equal(fake.embeddingRequests.length, 1);
      assert.equal(err.transient, false);
      assert.equal(err.kind, 'auth');
      assert.ok(err.message.includes(`OpenAI-compatible server at ${fake.url} rejected the API key from embedder.openai.api_key (401): set OPENAI_API_KEY or embedder.openai.api_key`), err.message);
      await embedder.close();
      // The fake answers the SDK's other calls like OpenAI.
      const models = await new OpenAI({ apiKey: 'sk-right', baseURL: fake.url, maxRetries: 0 }).models.list();
      assert.ok(models.data.some((m) => m.id === 'text-embedding-3-small'));
    } finally {
      await fake.close();
    }
  });

  it('takes the key and URL from the environment, and says where to set a missing key', () => {
    assert.deepEqual(resolveOpenAIConnection({}, { OPENAI_API_KEY: 'sk-env', OPENAI_BASE_URL: 'http://localhost:11434/v1' }), {
      apiKey: 'sk-env',
      keySource: 'OPENAI_API_KEY',
      baseURL: 'http://localhost:11434/v1',
    });
    assert.equal(resolveOpenAIConnection({ api_key: 'none' }, {}).baseURL, 'https://api.openai.com/v1');
    assert.throws(
      () => resolveOpenAIConnection({}, {}),
      (err: unknown) => err instanceof LivedexError && err.code === 'config_error' && /set OPENAI_API_KEY or embedder\.openai\.api_key/.test(err.message),
    );
  });

  it('requires dimensions for a model it does not know, and accepts api_key "none"', async () => {
    await assert.rejects(
      registry.create('embedder', 'openai', { model: 'nomic-embed-text', api_key: 'none', base_url: 'http://127.0.0.1:9/v1' }, ctx),
      /embedder\.openai\.dimensions: required for model "nomic-embed-text"/,
    );
    const e = (await registry.create('embedder', 'openai', { model: 'nomic-embed-text', dimensions: 768, api_key: 'none', base_url: 'http://127.0.0.1:9/v1' }, ctx)) as CallingEmbedder;
    assert.equal(e.modelKey, 'openai:nomic-embed-text:768:127.0.0.1:9');
    await e.close();
    await assert.rejects(registry.create('embedder', 'openai', { api_key: 'x', max_batch_items: 5000 }, ctx), /embedder\.openai\.max_batch_items/);
  });
});

describe('a live index embedding through the openai embedder', () => {
  /** Eight documents of five paragraphs; two paragraphs are shared by every document. */
  const docText = (d: number, edit = '') =>
    [0, 1, 2].map((p) => `Document ${d} paragraph ${p} about harbor ${d * 10 + p}${p === 1 ? edit : ''}.`).join('\n\n') +
    '\n\nShared boilerplate paragraph one.\n\nShared boilerplate paragraph two.\n';

  async function withIndex<T>(
    fake: FakeOpenAI,
    dataDir: string,
    folder: string,
    options: Record<string, unknown>,
    fn: (index: LiveIndex) => Promise<T>,
    extra: Record<string, unknown> = {},
  ): Promise<T> {
    const config = parseConfig({
      ...extra,
      data_dir: dataDir,
      embedder: { openai: { base_url: fake.url, api_key: 'sk-test', ...FAST, ...options } },
      sources: [{ fs: { path: folder } }],
      // Parsing in worker threads is not what these tests are about (and slows every open).
      sandbox: { enabled: false },
    });
    const index = await LiveIndex.open({ config, registry: builtinRegistry(), logger: silentLogger });
    try {
      await index.synced();
      return await fn(index);
    } finally {
      await index.close();
    }
  }

  it('embeds each unique text once, nothing on restart, only the changed text after an edit', async () => {
    const fake = await startFakeOpenAI();
    const folder = await mkdtemp(join(tmpdir(), 'livedex-openai-src-'));
    const data = await mkdtemp(join(tmpdir(), 'livedex-openai-data-'));
    try {
      for (let d = 0; d < 8; d++) await writeFile(join(folder, `doc${d}.md`), docText(d));
      const batch = 8;
      await withIndex(fake, data, folder, { max_batch_items: batch }, async (index) => {
        const sent = fake.embeddingRequests.flatMap((r) => r.inputs);
        assert.equal(new Set(sent).size, sent.length, 'a text was sent twice');
        const unique = sent.length;
        assert.ok(unique > 0);
        // Documents arrive one by one, so a request may leave before it is full; never more than this:
        assert.ok(fake.embeddingRequests.length <= Math.ceil(unique / batch) + 8, `${fake.embeddingRequests.length} requests for ${unique} texts`);
        // The fake's vectors are random per text: only the very same text is near, and it is.
        const hits = await index.retrieve({ query: sent[3]!, k: 1, mode: 'vector' });
        assert.equal(hits[0]!.text, sent[3]);
      });
      const before = fake.embeddingRequests.length;
      await withIndex(fake, data, folder, { max_batch_items: batch }, async () => {
        assert.equal(fake.embeddingRequests.length, before, 'a restart embedded again');
      });
      await writeFile(join(folder, 'doc5.md'), docText(5, ' and a lighthouse'));
      await withIndex(fake, data, folder, { max_batch_items: batch }, async (index) => {
        const fresh = fake.embeddingRequests.slice(before);
        const inputs = fresh.flatMap((r) => r.inputs);
        assert.equal(fresh.length, 1);
        assert.ok(inputs.every((t) => t.includes('lighthouse')), JSON.stringify(inputs));
        assert.equal((await index.getDocument(join(folder, 'doc5.md')))?.status, 'indexed');
      });
    } finally {
      await fake.close();
      await rm(folder, { recursive: true, force: true });
      await rm(data, { recursive: true, force: true });
    }
  });

  it('holds a document back as pending while the model is down, serves its indexed version, and catches up when the model is back', async () => {
    const fake = await startFakeOpenAI();
    const folder = await mkdtemp(join(tmpdir(), 'livedex-openai-src-'));
    const data = await mkdtemp(join(tmpdir(), 'livedex-openai-data-'));
    const path = join(folder, 'a.md');
    try {
      await writeFile(path, 'The lighthouse keeper logs the weather.\n');
      const pipeline = { retry_base_ms: 50, retry_max_ms: 200 };
      await withIndex(fake, data, folder, { max_attempts: 2 }, async (index) => {
        assert.equal((await index.getDocument(path))?.status, 'indexed');
        // The model goes down (every request answers 500) and the document changes.
        for (let i = 0; i < 10_000; i++) fake.faults.push({ kind: 'status', status: 500 });
        await writeFile(path, 'The lighthouse keeper now logs the zeppelins.\n');
        let doc = await index.getDocument(path);
        for (let i = 0; i < 500 && doc?.status !== 'pending'; i++) {
          await new Promise((r) => setTimeout(r, 10));
          doc = await index.getDocument(path);
        }
        assert.equal(doc?.status, 'pending');
        assert.match(doc?.error ?? '', /trying again in \d+ s/);
        const listed = await index.listDocuments({ returnStatus: true });
        assert.match(String(listed[0]?._indexing_error), /trying again/);
        // The indexed version keeps serving meanwhile.
        assert.match((await index.retrieve({ query: 'lighthouse weather', k: 1, mode: 'bm25' }))[0]?.text ?? '', /weather/);
        const failedRequests = fake.embeddingRequests.length;
        // The model is back: the document catches up without any new change.
        fake.faults.length = 0;
        for (let i = 0; i < 500 && (await index.getDocument(path))?.status !== 'indexed'; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal((await index.getDocument(path))?.status, 'indexed');
        assert.match((await index.retrieve({ query: 'zeppelins', k: 1, mode: 'bm25' }))[0]?.text ?? '', /zeppelins/);
        assert.ok(fake.embeddingRequests.length > failedRequests);
      }, { pipeline });
    } finally {
      await fake.close();
      await rm(folder, { recursive: true, force: true });
      await rm(data, { recursive: true, force: true });
    }
  });

  it('marks documents failed with a message naming the key on a 401, and keeps serving BM25', async () => {
    const fake = await startFakeOpenAI({ apiKey: 'sk-right' });
    const folder = await mkdtemp(join(tmpdir(), 'livedex-openai-src-'));
    const data = await mkdtemp(join(tmpdir(), 'livedex-openai-data-'));
    try {
      await writeFile(join(folder, 'a.md'), 'The lighthouse keeper logs the weather.\n');
      await withIndex(fake, data, folder, { api_key: 'sk-wrong' }, async (index) => {
        const doc = await index.getDocument(join(folder, 'a.md'));
        assert.equal(doc?.status, 'failed');
        assert.match(doc?.error ?? '', /rejected the API key from embedder\.openai\.api_key \(401\): set OPENAI_API_KEY or embedder\.openai\.api_key/);
        assert.equal(fake.embeddingRequests.length, 1);
        assert.deepEqual(await index.retrieve({ query: 'lighthouse', k: 3, mode: 'bm25' }), []);
      });
    } finally {
      await fake.close();
      await rm(folder, { recursive: true, force: true });
      await rm(data, { recursive: true, force: true });
    }
  });
});
