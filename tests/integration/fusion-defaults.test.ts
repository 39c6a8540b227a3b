/** Spec: which fusion and alpha a hybrid request gets when it names none, per embedder kind and config. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { retrieve, startServer, tempDir } from '../helpers/livedex.js';

const TEXTS = [
  'Otters hold hands while they sleep so they do not drift apart.',
  'Sea otters use stones as tools to open shellfish.',
  'Beavers build dams from branches and mud.',
  'River otters live in burrows near the water.',
  'The platypus hunts by sensing electric fields.',
  'Otter fur is the densest of any animal.',
];

/** Hits as comparable rows: the same list in the same order with the same fused scores. */
async function ranked(url: string, body: Record<string, unknown>) {
  const hits = await retrieve(url, { query: 'otters sleep holding hands', k: 6, ...body });
  return hits.map((h) => [h.metadata.path, h.dist]);
}

async function withServer(config: Record<string, unknown>, fn: (url: string) => Promise<void>) {
  const folder = await tempDir();
  const data = await tempDir();
  await Promise.all(TEXTS.map((t, i) => writeFile(join(folder.path, `doc-${i}.txt`), t)));
  const server = await startServer(folder.path, { dataDir: data.path, config });
  try {
    await server.ready;
    await fn(server.url);
  } finally {
    await server.close();
    await folder.cleanup();
    await data.cleanup();
  }
}

describe('default fusion', () => {
  it('with a lexical-only embedder (hashing): convex leaning on BM25 (lexical_alpha), also when a request asks for convex', async () => {
    await withServer({ embedder: 'hashing' }, async (url) => {
      const lexical = await ranked(url, { alpha: 0.2 });
      assert.deepEqual(await ranked(url, {}), lexical);
      assert.deepEqual(await ranked(url, { fusion: 'convex' }), lexical);
      assert.notDeepEqual(await ranked(url, { alpha: 0.7 }), lexical, 'the weights change the fused scores');
    });
  });

  it('with a semantic embedder: RRF, and convex at alpha 0.7 when asked', async () => {
    await withServer({}, async (url) => {
      assert.deepEqual(await ranked(url, {}), await ranked(url, { fusion: 'rrf' }));
      assert.deepEqual(await ranked(url, { fusion: 'convex' }), await ranked(url, { alpha: 0.7 }));
    });
  });

  it('follows retrieval.default_fusion and retrieval.alpha from the config', async () => {
    await withServer({ retrieval: { default_fusion: 'convex', alpha: 0.4 } }, async (url) => {
      assert.deepEqual(await ranked(url, {}), await ranked(url, { alpha: 0.4 }));
    });
  });
});
