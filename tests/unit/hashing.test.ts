import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, silentLogger } from '../../src/core/log.js';
import { Registry } from '../../src/core/registry.js';
import { HashingEmbedder, words } from '../../src/models/hashing.js';
import { embedderPlugins } from '../../src/models/index.js';

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const norm = (a: Float32Array) => Math.sqrt(cosine(a, a));

describe('hashing embedder', () => {
  const embedder = new HashingEmbedder();

  it('is deterministic, across calls and instances', async () => {
    const texts = ['The live index follows the folder.', 'Ünïcödé and 東京 and emoji 😀'];
    const a = await embedder.embed(texts);
    const b = await new HashingEmbedder({ dimensions: 384 }).embed(texts);
    assert.deepEqual(a, b);
    assert.deepEqual(await embedder.embed(texts), a);
  });

  it('returns L2-normalized Float32Arrays of `dimensions` numbers, in order', async () => {
    const texts = ['one', 'two words', 'a longer text '.repeat(500), 'Ελληνικά κείμενα', 'العربية', 'x'.repeat(10_000), '1 2 3 4 5'];
    const vectors = await embedder.embed(texts);
    assert.equal(vectors.length, texts.length);
    for (const v of vectors) {
      assert.ok(v instanceof Float32Array);
      assert.equal(v.length, 384);
      assert.ok(Math.abs(norm(v) - 1) < 1e-6, `norm ${norm(v)}`);
    }
    assert.deepEqual(vectors[1], embedder.embedText('two words'));
  });

  it('puts similar texts closer than unrelated ones', async () => {
    const [query, near, far] = await embedder.embed([
      'how does the live index follow changes to documents',
      'The index follows document changes live, within seconds.',
      'Bananas are a good source of potassium and vitamin B6.',
    ]);
    assert.ok(cosine(query!, near!) > cosine(query!, far!) + 0.2, `${cosine(query!, near!)} vs ${cosine(query!, far!)}`);
    assert.ok(cosine(query!, far!) < 0.2);
  });

  it('puts CJK texts that share characters closer than unrelated ones', async () => {
    const [a, b, c] = await embedder.embed(['東京の天気は晴れです', '今日の東京の天気', 'Rust compiler errors']);
    assert.ok(cosine(a!, b!) > cosine(a!, c!) + 0.2);
  });

  it('lets word order matter through bigrams', async () => {
    const [a, b] = await embedder.embed(['dog bites man', 'man bites dog']);
    const similarity = cosine(a!, b!);
    assert.ok(similarity < 0.9, `${similarity}`);
    assert.ok(similarity > 0.3, 'same words still count');
  });

  it('folds case and English plurals', async () => {
    const [a, b] = await embedder.embed(['Documents and Queries', 'document and query']);
    assert.ok(cosine(a!, b!) > 0.999);
    assert.deepEqual(words('Documents queries classes bus glass'), ['document', 'query', 'classe', 'bus', 'glass']);
  });

  it('never gives NaN: text without words gets a fixed unit vector', async () => {
    const vectors = await embedder.embed(['', '   ', '!!! ... ---', '\n\t']);
    for (const v of vectors) {
      assert.ok(v.every((x) => Number.isFinite(x)));
      assert.ok(Math.abs(norm(v) - 1) < 1e-6);
      assert.deepEqual(v, vectors[0]);
    }
    const [word] = await embedder.embed(['word']);
    assert.ok(Number.isFinite(cosine(vectors[0]!, word!)));
  });

  it('names its vectors by algorithm version and dimensions', () => {
    assert.equal(embedder.modelKey, 'hashing:v2:384');
    assert.equal(embedder.dimensions, 384);
    const small = new HashingEmbedder({ dimensions: 128 });
    assert.equal(small.modelKey, 'hashing:v2:128');
    assert.equal(small.embedText('hello').length, 128);
  });

  it('embeds queries like documents', async () => {
    assert.deepEqual(await embedder.embedQuery('find the index'), (await embedder.embed(['find the index']))[0]);
  });

  it('stops when its signal is aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(embedder.embed(['x'], ac.signal), { name: 'AbortError' });
  });

  it('embeds tens of megabytes per second', async () => {
    const vocabulary = 'the live index follows documents within seconds retrieval hybrid vector search chunk embedding naïve café 東京 2024 data'.split(' ');
    let seed = 1;
    const texts = Array.from({ length: 4000 }, () =>
      Array.from({ length: 250 }, () => vocabulary[(seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % vocabulary.length]).join(' '),
    );
    const chars = texts.reduce((n, t) => n + t.length, 0);
    await embedder.embed(texts.slice(0, 200)); // warm the JIT
    const t0 = performance.now();
    await embedder.embed(texts);
    const seconds = (performance.now() - t0) / 1000;
    const mbPerSecond = chars / 1e6 / seconds;
    console.log(`# hashing embedder: ${(chars / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${mbPerSecond.toFixed(1)} MB/s`);
    assert.ok(mbPerSecond > 2, `${mbPerSecond.toFixed(2)} MB/s`);
  });
});

describe('hashing embedder plugin', () => {
  it('logs once per process that it is lexical-only, naming the semantic options', async () => {
    const registry = new Registry().register(...embedderPlugins);
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (line) => lines.push(line) });
    const a = await registry.create('embedder', 'hashing', {}, { logger, dataDir: '/tmp/unused' });
    const b = await registry.create('embedder', 'hashing', { dimensions: 64 }, { logger, dataDir: '/tmp/unused' });
    assert.equal(a.modelKey, 'hashing:v2:384');
    assert.equal(b.modelKey, 'hashing:v2:64');
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]!) as { level: string; msg: string };
    assert.equal(entry.level, 'info');
    assert.match(entry.msg, /lexical/);
    assert.match(entry.msg, /--embedder openai/);
    assert.match(entry.msg, /OPENAI_BASE_URL/);
    assert.match(entry.msg, /--embedder local/);
  });

  it('validates dimensions', async () => {
    const registry = new Registry().register(...embedderPlugins);
    const ctx = { logger: silentLogger, dataDir: '/tmp/unused' };
    await assert.rejects(registry.create('embedder', 'hashing', { dimensions: 3 }, ctx), /embedder\.hashing\.dimensions/);
    await assert.rejects(registry.create('embedder', 'hashing', { dimensions: 100.5 }, ctx), /embedder\.hashing\.dimensions/);
    await assert.rejects(registry.create('embedder', 'hashing', { dims: 100 }, ctx), /embedder\.hashing/);
  });
});

describe('hashing embedder stop words', () => {
  it('ignores English stop words, so the words that matter decide similarity', async () => {
    const { HashingEmbedder } = await import('../../src/models/hashing.js');
    const e = new HashingEmbedder();
    const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);
    // Same content words, different function words: identical vectors.
    assert.ok(Math.abs(dot(e.embedText('the effect of aspirin on the heart'), e.embedText('effect aspirin heart')) - 1) < 1e-6);
    // Sharing only stop words is no similarity at all.
    assert.ok(Math.abs(dot(e.embedText('the cat is on the mat'), e.embedText('the dog is in the house'))) < 0.35);
  });
});
