/** kill -9 during indexing, then restart: the chunk set equals a fresh index of the same folder. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LiveIndex } from '../../src/core/live-index.js';
import { silentLogger } from '../../src/core/log.js';
import { parseConfig } from '../../src/livedex.js';
import { countingRegistry, runCli, tempDir } from '../helpers/livedex.js';

const FILES = 200;
// A few kill points per suite run; `npm run bench:crash` runs a hundred, during edits too.
const RUNS = Number(process.env.CRASH_RUNS ?? 4);

/** Every chunk as (document, ordinal, text hash), plus the cross-checks between the store and both indexes. */
async function snapshotOf(folder: string, dataDir: string): Promise<{ chunks: string[]; problems: string[] }> {
  // The checking index parses text files in process: worker start-up would only slow the eleven restarts.
  const config = parseConfig({ data_dir: dataDir, embedder: 'counting', sources: [{ fs: { path: folder, reconcile_interval_s: 0 } }], sandbox: { enabled: false } });
  const index = await LiveIndex.open({ config, registry: countingRegistry(), logger: silentLogger });
  try {
    await index.start();
    const problems: string[] = [];
    const chunks: string[] = [];
    const ids: number[] = [];
    for (let after = 0; ; ) {
      const page = await index.engine.listChunks(after, 1000);
      for (const c of page) {
        chunks.push(`${c.docKey}#${c.ordinal}#${c.textHash}`);
        ids.push(c.id);
      }
      if (page.length < 1000) break;
      after = page[page.length - 1]!.id;
    }
    // Every chunk contains the word "commonword": BM25 must find each stored chunk exactly once.
    const bm25 = await index.engine.searchText('commonword', ids.length + 100);
    const bm25Ids = bm25.map((h) => h.id).sort((a, b) => a - b);
    if (bm25Ids.length !== new Set(bm25Ids).size) problems.push('duplicate chunk in the text index');
    if (JSON.stringify(bm25Ids) !== JSON.stringify([...ids].sort((a, b) => a - b))) problems.push(`text index has ${bm25Ids.length} chunks, store has ${ids.length}`);
    const vectorIds = index.vectors.ids().sort((a, b) => a - b);
    if (JSON.stringify(vectorIds) !== JSON.stringify([...ids].sort((a, b) => a - b))) problems.push(`vector index has ${vectorIds.length} chunks, store has ${ids.length}`);
    const status = await index.status();
    if (status.documents.indexed !== FILES) problems.push(`${status.documents.indexed} documents indexed, expected ${FILES}`);
    return { chunks: chunks.sort(), problems };
  } finally {
    await index.close();
  }
}

describe('crash safety', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    folder = await tempDir();
    for (let i = 0; i < FILES; i++) {
      const paragraphs = Array.from({ length: 1 + (i % 4) }, (_, p) => `commonword paragraph ${p} of file ${i}: ${`word${(i * 31 + p) % 97} `.repeat(120)}`);
      await writeFile(join(folder.path, `file-${String(i).padStart(3, '0')}.txt`), paragraphs.join('\n\n'));
    }
  });
  after(async () => {
    await folder.cleanup();
    for (const c of cleanups) await c();
  });

  it(`after kill -9 at ${RUNS} random points while indexing ${FILES} files, a restart has exactly the chunks of a fresh index`, async () => {
    const freshDir = await tempDir();
    cleanups.push(freshDir.cleanup);
    const fresh = await snapshotOf(folder.path, freshDir.path);
    assert.deepEqual(fresh.problems, []);
    assert.ok(fresh.chunks.length > FILES);

    const killedAt: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const data = await tempDir();
      cleanups.push(data.cleanup);
      const child = runCli(['serve', folder.path, '--data-dir', data.path, '--port', '0', '--log-level', 'warn']);
      const url = await child.url;
      // Kill when a random share of the files is indexed, so the kills spread over the ingest.
      const target = Math.floor(Math.random() * FILES);
      let indexed = 0;
      while (indexed < target) {
        const res = await fetch(new URL('/v1/statistics', url)).catch(() => null);
        if (res?.ok) indexed = ((await res.json()) as { file_count: number }).file_count;
        else await new Promise((r) => setTimeout(r, 2));
      }
      child.proc.kill('SIGKILL');
      await child.exited;
      const recovered = await snapshotOf(folder.path, data.path);
      assert.deepEqual(recovered.problems, [], `run ${run} (killed with ${indexed} of ${FILES} files indexed)`);
      assert.deepEqual(recovered.chunks, fresh.chunks, `run ${run}: chunk set differs from a fresh index`);
      killedAt.push(String(indexed));
    }
    console.log(`killed with ${killedAt.join(', ')} of ${FILES} files indexed; every restart matched the fresh index (${fresh.chunks.length} chunks)`);
  });
});
