/** The store's write-ahead log stays bounded through a bulk ingest: checkpoints are not starved by the reads a held commit pins. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { retrieve, startServer, tempDir, type TestServer } from '../helpers/livedex.js';

const FILES = 1500;
/** The engine checkpoints past 16 MiB; one commit of this ingest (8 small documents) adds well under 8 MiB more. */
const WAL_BOUND = 24 << 20;
const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa'.split(' ');
const body = (i: number) =>
  `# Note ${i}\n\n` +
  Array.from({ length: 4 }, (_, p) => Array.from({ length: 120 }, (_, w) => WORDS[(i * 7 + p * 5 + w * 3) % WORDS.length]).join(' ') + ` note${i}p${p}.`).join('\n\n') +
  '\n';

async function walBytes(dataDir: string): Promise<number> {
  return stat(join(dataDir, 'store.sqlite-wal')).then((s) => s.size, () => 0);
}

describe('the store WAL during a bulk ingest', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer | undefined;
  let largest = 0;

  before(async () => {
    folder = await tempDir('livedex-wal-docs-');
    data = await tempDir('livedex-wal-data-');
    for (let i = 0; i < FILES; i++) await writeFile(join(folder.path, `n${i}.md`), body(i));
    server = await startServer(folder.path, {
      dataDir: data.path,
      // Small commits, as a bulk load's are many: the WAL grew with every one of them.
      config: { embedder: 'hashing', sandbox: { enabled: false }, pipeline: { commit_batch: 8 } },
    });
    // The largest size seen on the way, beside the final one (the file never shrinks without a reset).
    let watching = true;
    const watch = (async () => {
      while (watching) {
        largest = Math.max(largest, await walBytes(data.path));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await server.ready;
    } finally {
      watching = false;
      await watch;
    }
    largest = Math.max(largest, await walBytes(data.path));
  });
  after(async () => {
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it(`keeps store.sqlite-wal under ${WAL_BOUND >> 20} MiB through an ingest of ${FILES} documents`, async () => {
    const last = await retrieve(server!.url, { query: `note${FILES - 1}p3`, k: 1, mode: 'bm25' });
    assert.equal(last.length, 1, 'the last document is served');
    assert.ok(largest > 0, 'the store is in WAL mode');
    assert.ok(largest < WAL_BOUND, `store.sqlite-wal reached ${(largest / 2 ** 20).toFixed(1)} MiB`);
  });
});
