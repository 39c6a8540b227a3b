/** Restarts: nothing is parsed or embedded again, the index serves at once, and changes made while down are picked up. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SourceStatus } from '../../src/core/types.js';
import { embedCounter, get, retrieve, startServer, tempDir, type TestServer } from '../helpers/livedex.js';

/** A restart is ready before its folder is listed: waits until the listing is done and what it found is indexed, as /v1/status then says. */
async function reconciled(server: TestServer): Promise<void> {
  await server.ready;
  await server.synced;
  const status = (await get<{ synced: boolean; sources: SourceStatus[] }>(server.url, '/v1/status')).body;
  assert.equal(status.synced, true);
  assert.equal(status.sources[0]?.state, 'idle');
}

describe('restarting on the same data dir', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    for (let i = 0; i < 20; i++) {
      await writeFile(join(folder.path, `doc-${i}.md`), `# Document ${i}\n\nThis is document number ${i} about topic${i % 5}.\n\n${'Some more body text here. '.repeat(30)}\n`);
    }
  });
  after(async () => {
    await folder.cleanup();
    await data.cleanup();
  });

  it('parses 0 files and embeds 0 chunks, serves at once, then picks up what changed while it was down', async () => {
    const first = await startServer(folder.path, { dataDir: data.path });
    await first.ready;
    const chunks = first.index.catalog.size;
    assert.ok(chunks >= 20);
    await first.close();

    // Changes while the server is down.
    await writeFile(join(folder.path, 'doc-3.md'), '# Document 3\n\nRewritten while the server was down: walrus.\n');
    await writeFile(join(folder.path, 'doc-new.md'), '# New\n\nCreated while the server was down: narwhal.\n');
    await rm(join(folder.path, 'doc-7.md'));

    embedCounter.reset();
    const second = await startServer(folder.path, { dataDir: data.path });
    try {
      // Serves at once: the old index answers before the first reconcile has finished.
      const early = await retrieve(second.url, { query: 'topic1', k: 3, mode: 'bm25' });
      assert.ok(early.length > 0, 'answers before the sync completes');
      await reconciled(second);
      const c = second.index.pipeline.counters;
      assert.equal(c.parsed, 2, 'only the changed and the new file are parsed');
      assert.equal(c.deleted, 1);
      assert.equal(embedCounter.texts, 2, 'only the two new texts are embedded');
      assert.equal((await retrieve(second.url, { query: 'walrus', k: 1, mode: 'bm25' }))[0]?.metadata.path, join(folder.path, 'doc-3.md'));
      assert.equal((await retrieve(second.url, { query: 'narwhal', k: 1, mode: 'bm25' }))[0]?.metadata.path, join(folder.path, 'doc-new.md'));
      const gone = await retrieve(second.url, { query: 'document number 7', k: 50, mode: 'hybrid' });
      assert.ok(gone.every((h) => h.metadata.path !== join(folder.path, 'doc-7.md')));
    } finally {
      await second.close();
    }

    // And a third start with nothing changed does no work at all.
    embedCounter.reset();
    const third = await startServer(folder.path, { dataDir: data.path });
    try {
      await reconciled(third);
      assert.equal(third.index.pipeline.counters.parsed, 0);
      assert.equal(embedCounter.texts, 0);
      assert.ok(third.index.vectors.snapshotSeq > 0, 'the vector index came from its snapshot');
      assert.equal(third.index.vectors.size, third.index.catalog.size);
    } finally {
      await third.close();
    }
  });

  it('rebuilds the vector index from stored embeddings when its snapshot is lost, embedding nothing', async () => {
    const s1 = await startServer(folder.path, { dataDir: data.path });
    await s1.ready;
    await s1.close();
    await rm(join(data.path, 'vectors'), { recursive: true, force: true });
    embedCounter.reset();
    const s2 = await startServer(folder.path, { dataDir: data.path });
    try {
      await s2.ready;
      assert.equal(embedCounter.texts, 0);
      assert.equal(s2.index.vectors.size, s2.index.catalog.size);
      const hits = await retrieve(s2.url, { query: 'narwhal', k: 1, mode: 'vector' });
      assert.equal(hits[0]?.metadata.path, join(folder.path, 'doc-new.md'));
    } finally {
      await s2.close();
    }
  });
});
