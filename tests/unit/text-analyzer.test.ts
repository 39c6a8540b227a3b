/** Spec: the BM25 analyzer is configurable (language, stop words, ASCII folding); a change rebuilds the text index from the store. */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEngine } from '../../src/engine/index.js';
import type { Engine, TextAnalyzer } from '../../src/engine/types.js';
import { parseConfig } from '../../src/livedex.js';
import { makeChunk, sha256 } from '../helpers/engine-fixtures.js';

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'livedex-analyzer-'));
  dirs.push(d);
  return d;
}

const TEXTS: Record<string, string> = {
  run: 'The runner was running every morning.',
  cafe: 'A café in Zürich serves crème brûlée.',
  the: 'The the the and of.',
  chats: 'Les chats dorment au soleil.',
};

async function indexed(dir: string, analyzer?: TextAnalyzer): Promise<Engine> {
  const engine = await openEngine(dir, analyzer ? { analyzer } : {});
  await engine.commit(
    'm',
    Object.entries(TEXTS).map(([key, text]) => ({ op: 'upsert' as const, key, version: 'v1', contentHash: sha256(text), metadata: {}, chunks: [makeChunk(text, 0)] })),
  );
  return engine;
}

async function keysFor(engine: Engine, query: string): Promise<string[]> {
  const hits = await engine.searchText(query, 10);
  const rows = await engine.getChunks(hits.map((h) => h.id));
  return rows.map((r) => r.docKey).sort();
}

describe('the BM25 analyzer', () => {
  it('stems English by default, keeps stop words and accents', async () => {
    const engine = await indexed(await tempDir());
    try {
      assert.deepEqual(await keysFor(engine, 'runs'), ['run']);
      assert.deepEqual(await keysFor(engine, 'the'), ['run', 'the']);
      assert.deepEqual(await keysFor(engine, 'cafe'), []);
      assert.deepEqual(await keysFor(engine, 'café'), ['cafe']);
    } finally {
      await engine.close();
    }
  });

  it('drops stop words and folds accents when asked, in documents and queries alike', async () => {
    const engine = await indexed(await tempDir(), { language: 'english', stopWords: true, asciiFolding: true });
    try {
      assert.deepEqual(await keysFor(engine, 'the and of'), [], 'a query of stop words finds nothing');
      assert.deepEqual(await keysFor(engine, 'the runs'), ['run']);
      assert.deepEqual(await keysFor(engine, 'cafe zurich'), ['cafe']);
      assert.deepEqual(await keysFor(engine, 'CRÈME'), ['cafe']);
    } finally {
      await engine.close();
    }
  });

  it('stems another language, or none', async () => {
    const french = await indexed(await tempDir(), { language: 'french' });
    try {
      assert.deepEqual(await keysFor(french, 'chat'), ['chats']);
    } finally {
      await french.close();
    }
    const none = await indexed(await tempDir(), { language: 'none' });
    try {
      assert.deepEqual(await keysFor(none, 'runs'), []);
      assert.deepEqual(await keysFor(none, 'RUNNING'), ['run']);
    } finally {
      await none.close();
    }
  });

  it('rebuilds the text index from the store when the analyzer changes, saying why; a reader uses the index its own way', async () => {
    const dir = await tempDir();
    const first = await indexed(dir);
    await first.close();
    const again = await openEngine(dir);
    assert.equal(again.textIndexRebuilt, null, 'the same analyzer reuses the index');
    await again.close();
    const stop = await openEngine(dir, { analyzer: { stopWords: true } });
    try {
      assert.match(String(stop.textIndexRebuilt), /built with the analyzer en_stem, the configuration asks for livedex:english:stop/);
      assert.deepEqual(await keysFor(stop, 'the'), [], 'the rebuilt index has no stop words');
      assert.deepEqual(await keysFor(stop, 'runner'), ['run'], 'and every chunk, from the store');
      const reader = await openEngine(dir, { readOnly: true });
      try {
        assert.deepEqual(await keysFor(reader, 'the runs'), ['run'], 'a reader analyzes queries as the index was built');
      } finally {
        await reader.close();
      }
    } finally {
      await stop.close();
    }
  });

  it('refuses an unknown language, and stop words where there is no list, naming the field', async () => {
    await assert.rejects(openEngine(await tempDir(), { analyzer: { language: 'klingon' } }), /text_index\.language: unknown language "klingon"/);
    await assert.rejects(openEngine(await tempDir(), { analyzer: { language: 'tamil', stopWords: true } }), /text_index\.stop_words/);
    assert.throws(() => parseConfig({ text_index: { language: 'tamil', stop_words: true } }), /text_index\.stop_words/);
    assert.throws(() => parseConfig({ text_index: { language: 'klingon' } }), /text_index\.language/);
    assert.deepEqual(parseConfig({}).text_index, { language: 'english', stop_words: false, ascii_folding: false });
  });
});
