/** Changing the embedding model: the previous model serves while the new index builds, then the switch is atomic. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { embedCounter, get, retrieve, startServer, tempDir, waitFor } from '../helpers/livedex.js';

/** The graph on its own thread: a build opens a second one while the first serves. */
const threaded = { hnsw: { thread: true } };

/** Queries with a document's whole text: an exact match, whatever the hash collisions of a small model. */
const textOf = (i: number) => `Document ${i} is about subject${i % 7} and keyword${i}.`;

interface StatusBody {
  model: { active: string; building: { model: string; done: number; total: number } | null };
}

describe('changing the embedding model', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    for (let i = 0; i < 60; i++) {
      await writeFile(join(folder.path, `doc-${i}.txt`), `${textOf(i)}\n`);
    }
  });
  after(async () => {
    await folder.cleanup();
    await data.cleanup();
  });

  it('keeps answering with the previous model during the rebuild, then answers from the new one; a restart mid-rebuild resumes', async () => {
    const first = await startServer(folder.path, { dataDir: data.path, config: { embedder: { hashing: { dimensions: 384 } }, vector_index: threaded } });
    await first.ready;
    const oldModel = first.index.model.active;
    await first.close();

    // The new model is slow: 60 chunks, 8 per call, 150 ms a call.
    const slow = { 'slow-hashing': { dimensions: 256, delay_ms: 150 } };
    const config = { embedder: slow, pipeline: { embed_batch: 8 }, vector_index: threaded };
    embedCounter.reset();
    const second = await startServer(folder.path, { dataDir: data.path, config });
    await second.ready;
    const during = (await get<StatusBody>(second.url, '/v1/status')).body;
    assert.equal(during.model.active, oldModel, 'the previous model serves');
    assert.equal(during.model.building?.model, 'slow-hashing:v2:256');
    const hits = await retrieve(second.url, { query: textOf(7), k: 3, mode: 'vector' });
    assert.equal(hits[0]?.metadata.path, join(folder.path, 'doc-7.txt'), 'vector queries answer during the rebuild');
    assert.equal(second.index.vectors.dimensions, 384);
    // Stop part-way through, then restart: the build resumes without embedding anything twice.
    await waitFor(() => (second.index.model.building?.done ?? 0) >= 16, 10_000);
    await second.close();
    const embeddedBefore = embedCounter.texts;
    assert.ok(embeddedBefore > 0 && embeddedBefore < 60, `stopped part-way (${embeddedBefore} of 60 embedded)`);

    // The build is held open (gate) until the test has written a document during it.
    const gate = join(data.path, 'gate');
    await writeFile(gate, '');
    const gated = { embedder: { 'slow-hashing': { dimensions: 256, delay_ms: 150, gate } }, pipeline: { embed_batch: 8 }, vector_index: threaded };
    const third = await startServer(folder.path, { dataDir: data.path, config: gated });
    try {
      assert.equal(third.index.model.active, oldModel, 'still the previous model after the restart');
      // A document written during the rebuild is embedded with the serving model, then picked up.
      await writeFile(join(folder.path, 'late.txt'), 'A late document about zeppelins.\n');
      await third.ready;
      await waitFor(async () => (await retrieve(third.url, { query: 'zeppelins', k: 1, mode: 'bm25' })).length === 1, 20_000);
      assert.notEqual(third.index.model.building, null, 'the late document arrived during the build');
      await rm(gate);
      // Queries keep answering through the switch, always from one model's index.
      let answered = 0;
      await waitFor(async () => {
        const h = await retrieve(third.url, { query: textOf(12), k: 1, mode: 'vector' });
        assert.equal(h[0]?.metadata.path, join(folder.path, 'doc-12.txt'));
        answered++;
        return third.index.model.building === null;
      }, 30_000, 10);
      assert.ok(answered > 1);
      const after = (await get<StatusBody>(third.url, '/v1/status')).body;
      assert.equal(after.model.active, 'slow-hashing:v2:256');
      assert.equal(third.index.vectors.dimensions, 256);
      assert.equal(third.index.vectors.size, third.index.catalog.size);
      const late = await retrieve(third.url, { query: 'A late document about zeppelins.', k: 1, mode: 'vector' });
      assert.equal(late[0]?.metadata.path, join(folder.path, 'late.txt'), 'the new index has what arrived during the rebuild');
      // Every text embedded once by the new model across both runs (the late one included).
      const late1 = embedCounter.seen.filter((t) => t.includes('zeppelins')).length;
      assert.equal(embedCounter.texts, 61 + (late1 - 1), `each text embedded once (${embedCounter.texts})`);
    } finally {
      await third.close();
    }

    // The switch is durable: a restart serves the new model and builds nothing.
    embedCounter.reset();
    const fourth = await startServer(folder.path, { dataDir: data.path, config: gated });
    try {
      await fourth.ready;
      assert.equal(fourth.index.model.active, 'slow-hashing:v2:256');
      assert.equal(fourth.index.model.building, null);
      assert.equal(embedCounter.texts, 0);
    } finally {
      await fourth.close();
    }
  });
});
