/** A burst of new files written into a watched folder: an edit of a document the index holds goes ahead of it. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { get, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

interface Status {
  documents: { indexed: number };
}

describe('an edit during a burst of new files written into the watched folder', () => {
  const BURST = 3000;
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  /** The edit: write → first hit, and how many of the burst's files were indexed at the write and then. */
  let edit: { ms: number; indexedAtWrite: number; indexedThen: number };

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'known.txt'), 'A note the index holds before the burst.\n');
    server = await startServer(folder.path, { dataDir: data.path });
    await server.ready;
    // Every file of the burst is a live change (a watcher event), as an edit is: they fill the
    // edit lane and queue behind it by the thousand.
    for (let i = 0; i < BURST; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => writeFile(join(folder.path, `burst-${i + j}.txt`), `Burst file ${i + j} about item${i + j}.\n`)));
    }
    const indexed = async () => (await get<Status>(server.url, '/v1/status')).body.documents.indexed - 1;
    const started = await waitFor(async () => {
      const n = await indexed();
      return n >= 100 ? n : null;
    }, 60_000, 10);
    const t0 = performance.now();
    await writeFile(join(folder.path, 'known.txt'), 'The pangolin ledger rewrote the note the index held, during the burst.\n');
    await waitFor(async () => (await retrieve(server.url, { query: 'pangolin ledger', k: 1, mode: 'bm25' })).length === 1, 60_000, 10);
    edit = { ms: performance.now() - t0, indexedAtWrite: started.value!, indexedThen: await indexed() };
    await server.index.synced();
    await waitFor(async () => ((await indexed()) === BURST ? true : null), 120_000, 20);
  });

  after(async () => {
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('makes the edit of a document the index holds queryable ahead of the burst’s new files', (t) => {
    t.diagnostic(`write → queryable ${Math.round(edit.ms)} ms; burst files indexed at the write ${edit.indexedAtWrite}, then ${edit.indexedThen}`);
    // Behind the burst, the edit waited for ~800 of its 3,000 files; ahead, for the commit under way.
    assert.ok(edit.indexedThen - edit.indexedAtWrite < BURST / 4, `${edit.indexedThen - edit.indexedAtWrite} burst files were indexed before the edit answered`);
    assert.ok(edit.indexedThen < BURST, 'the burst was still being indexed when the edit answered');
  });

  it('indexes every file of the burst, and the edit once', async () => {
    assert.equal((await get<Status>(server.url, '/v1/status')).body.documents.indexed, BURST + 1);
    assert.equal((await retrieve(server.url, { query: 'pangolin ledger', k: 5, mode: 'bm25' })).length, 1);
    assert.equal((await retrieve(server.url, { query: 'item2999', k: 5, mode: 'bm25' })).length, 1);
  });
});
