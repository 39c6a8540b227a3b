/**
 * A full or read-only data directory: commits fail with a clear reason and are retried, reads keep
 * serving, nothing is half-committed, and once space is back every edit lands exactly once.
 * The data dir lives on a small tmpfs this test mounts (root only; skipped where mounting is refused).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeSync } from 'node:fs';
import { mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LiveIndex } from '../../src/core/live-index.js';
import { silentLogger } from '../../src/core/log.js';
import { parseConfig } from '../../src/livedex.js';
import { countingRegistry, post, retrieve, runCli, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const FILES = 24;

/** Mounts a tmpfs of `size` at `dir`; the reason it cannot, else null. */
function mountTmpfs(dir: string, size: string): string | null {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `mount refused: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
}

/** Writes zeros to `file` until the file system is full. */
function fillDisk(file: string): number {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(64 * 1024);
  let written = 0;
  try {
    for (;;) written += writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}

const text = (i: number, variant: string) =>
  `commonword ${variant} file ${i}: ${`term${(i * 7) % 31} `.repeat(40)}\n\nsecond paragraph ${variant} of ${i} ${`more${i} `.repeat(30)}`;

/** Every chunk of the data dir as document#ordinal#hash, checked against the text index and the vectors. */
async function chunkSet(folder: string, dataDir: string): Promise<{ chunks: string[]; problems: string[] }> {
  const config = parseConfig({ data_dir: dataDir, embedder: 'counting', sources: [{ fs: { path: folder, reconcile_interval_s: 0 } }], sandbox: { enabled: false } });
  const index = await LiveIndex.open({ config, registry: countingRegistry(), logger: silentLogger });
  try {
    await index.start();
    const chunks: string[] = [];
    const ids: number[] = [];
    for (let afterId = 0; ; ) {
      const page = await index.engine.listChunks(afterId, 1000);
      for (const c of page) {
        chunks.push(`${c.docKey}#${c.ordinal}#${c.textHash}`);
        ids.push(c.id);
      }
      if (page.length < 1000) break;
      afterId = page[page.length - 1]!.id;
    }
    const problems: string[] = [];
    const sorted = [...ids].sort((a, b) => a - b);
    const bm25 = (await index.engine.searchText('commonword', ids.length + 50)).map((h) => h.id).sort((a, b) => a - b);
    if (JSON.stringify(bm25) !== JSON.stringify(sorted)) problems.push(`text index has ${bm25.length} chunks, store ${ids.length}`);
    const vectors = index.vectors.ids().sort((a, b) => a - b);
    if (JSON.stringify(vectors) !== JSON.stringify(sorted)) problems.push(`vector index has ${vectors.length} chunks, store ${ids.length}`);
    const stats = await index.engine.stats();
    if (stats.textIndexSeq !== stats.lastSeq) problems.push(`text index at sequence ${stats.textIndexSeq}, change log at ${stats.lastSeq}`);
    return { chunks: chunks.sort(), problems };
  } finally {
    await index.close();
  }
}

type Listed = Array<Record<string, unknown> & { path?: string }>;

describe('a full or read-only data directory', () => {
  let root: { path: string; cleanup(): Promise<void> };
  let folder: string;
  let mnt: string;
  let skip: string | null = null;
  let server: TestServer | null = null;

  before(async () => {
    root = await tempDir('livedex-diskfull-');
    folder = join(root.path, 'docs');
    mnt = join(root.path, 'mnt');
    await mkdir(folder);
    mkdirSync(mnt);
    skip = mountTmpfs(mnt, '24m');
    for (let i = 0; i < FILES; i++) await writeFile(join(folder, `f${String(i).padStart(2, '0')}.txt`), text(i, 'original'));
  });
  after(async () => {
    await server?.close().catch(() => {});
    if (!skip) unmount(mnt);
    await root.cleanup();
  });

  it('keeps answering, holds edits pending with the reason, retries, and lands them exactly once when space is back', async (t) => {
    if (skip) return t.skip(`needs a tmpfs: ${skip}`);
    const dataDir = join(mnt, 'data');
    server = await startServer(folder, {
      dataDir,
      config: { sandbox: { enabled: false }, pipeline: { retry_base_ms: 100, retry_max_ms: 800, snapshot_interval_s: 0.5 } },
    });
    await server.ready;
    const before = await retrieve(server.url, { query: 'original file 3', k: 3, mode: 'bm25' });
    assert.ok(before.length > 0);

    const ballast = join(mnt, 'ballast');
    assert.ok(fillDisk(ballast) > 0);
    // Edits, a new file and a delete while nothing can be written.
    for (let i = 0; i < 6; i++) await writeFile(join(folder, `f${String(i).padStart(2, '0')}.txt`), text(i, 'edited'));
    await writeFile(join(folder, 'new.txt'), text(99, 'edited'));
    await unlink(join(folder, 'f23.txt'));

    const held = await waitFor(async () => {
      const listed = (await post<Listed>(server!.url, '/v2/list_documents', { return_status: true })).body;
      const pending = listed.filter((d) => d._indexing_status === 'INGESTED' && /is full: free space/.test(String(d._indexing_error)));
      return pending.length >= 6 ? pending : null;
    }, 30_000, 100);
    assert.ok(held.value!.every((d) => /retried/.test(String(d._indexing_error))), 'the reason says it is retried');

    // Reads keep serving the indexed versions.
    for (let n = 0; n < 5; n++) {
      const hits = await retrieve(server.url, { query: 'original file 2', k: 3 });
      assert.ok(hits.some((h) => String(h.metadata.path).endsWith('f02.txt')));
    }
    assert.equal((await retrieve(server.url, { query: 'edited', k: 5, mode: 'bm25' })).length, 0, 'nothing half-committed reaches the text index');
    const status = runCli(['status', '--url', server.url]);
    assert.equal(await status.exited, 0, status.stderr.join(''));
    assert.match(status.stdout.join(''), /pending .*f0[0-5]\.txt: the data directory .* is full/);

    await rm(ballast);
    await waitFor(async () => {
      const listed = (await post<Listed>(server!.url, '/v2/list_documents', { return_status: true })).body;
      return listed.length === FILES && listed.every((d) => d._indexing_status === 'INDEXED');
    }, 30_000, 100);
    const edited = await retrieve(server.url, { query: 'edited', k: 50, mode: 'bm25' });
    assert.ok(edited.some((h) => String(h.metadata.path).endsWith('new.txt')));
    assert.equal((await retrieve(server.url, { query: 'more23', k: 5, mode: 'bm25' })).length, 0, 'the delete landed');
    await server.close();
    server = null;

    // The same folder indexed afresh gives the same chunks: none lost, none twice, none stale.
    const fresh = await tempDir('livedex-diskfull-fresh-');
    try {
      const recovered = await chunkSet(folder, dataDir);
      const expected = await chunkSet(folder, fresh.path);
      assert.deepEqual(recovered.problems, []);
      assert.deepEqual(expected.problems, []);
      assert.equal(recovered.chunks.length, expected.chunks.length);
      assert.deepEqual(recovered.chunks, expected.chunks);
    } finally {
      await fresh.cleanup();
    }
  });

  it('a read-only data directory fails with a clear error saying what to do', async (t) => {
    if (skip) return t.skip(`needs a tmpfs: ${skip}`);
    // Files open for writing keep a file system from being remounted read-only: index into a
    // tmpfs of its own from a process that exits, remount, then start again.
    const ro = join(root.path, 'ro');
    mkdirSync(ro);
    const why = mountTmpfs(ro, '16m');
    if (why) return t.skip(`needs a second tmpfs: ${why}`);
    try {
      const first = runCli(['index', folder, '--data-dir', join(ro, 'data'), '--embedder', 'hashing']);
      assert.equal(await first.exited, 0, first.stderr.join(''));
      execFileSync('mount', ['-o', 'remount,ro', ro], { stdio: 'pipe' });
      const cli = runCli(['index', folder, '--data-dir', join(ro, 'data'), '--embedder', 'hashing']);
      assert.notEqual(await cli.exited, 0);
      assert.match(cli.stderr.join(''), /data directory .* is read-only: remount it read-write/);
    } finally {
      unmount(ro);
    }
  });
});
