/**
 * The folder source says what it could not index and why, in GET /v1/status: names that are not
 * UTF-8, unreadable files; a folder that disappears or becomes a file is an error (not `idle`);
 * a folder removed and created again is watched again at once, not at the next reconcile.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../src/core/log.js';
import type { SourceStatus } from '../../src/core/types.js';
import { get, post, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

type Status = { sources: SourceStatus[] };
type Listed = Array<Record<string, unknown> & { path?: string }>;

/** `<dir>/<prefix><bytes><suffix>` as a Buffer path: the bytes need not be UTF-8. */
const bytePath = (dir: string, prefix: string, bytes: number[], suffix = ''): Buffer =>
  Buffer.concat([Buffer.from(`${dir}/${prefix}`), Buffer.from(bytes), Buffer.from(suffix)]);

describe('folder source health, served (reconcile an hour away: only the watcher and the folder check act)', () => {
  let base: { path: string; cleanup(): Promise<void> };
  let docs: string;
  let server: TestServer;
  const logs: Array<{ msg: string; path?: string }> = [];

  const source = async (): Promise<SourceStatus> => (await get<Status>(server.url, '/v1/status')).body.sources[0]!;
  const found = async (word: string): Promise<boolean> => (await retrieve(server.url, { query: word, k: 5, mode: 'bm25' })).length > 0;

  before(async () => {
    base = await tempDir('livedex-fs-health-');
    docs = join(base.path, 'docs');
    await mkdir(docs);
    await writeFile(join(docs, 'a.md'), 'alphaword');
    await writeFile(bytePath(docs, 'bad', [0xff], '.md'), 'mangledword');
    await mkdir(bytePath(docs, 'dir', [0xfe]));
    await writeFile(Buffer.concat([bytePath(docs, 'dir', [0xfe]), Buffer.from('/inner.md')]), 'innerword');
    await writeFile(bytePath(docs, 'tmp', [0xff], '.swp'), 'an editor file: never a document, never reported');
    const logger = createLogger({ level: 'warn', write: (line) => logs.push(JSON.parse(line) as { msg: string; path?: string }) });
    server = await startServer(docs, { dataDir: join(base.path, 'data'), logger, fs: { reconcile_interval_s: 3600, debounce_ms: 20 } });
    await server.ready;
  });
  after(async () => {
    await server?.close();
    await base.cleanup();
  });

  it('lists names that are not valid UTF-8 in status with their reason, and indexes nothing under a mangled name', async () => {
    const s = await source();
    assert.equal(s.state, 'idle');
    assert.equal(s.skipped?.count, 2);
    assert.deepEqual([...(s.skipped?.paths ?? [])].sort((a, b) => a.path.localeCompare(b.path)), [
      { path: `${docs}/bad\\xFF.md`, reason: 'file name is not valid UTF-8' },
      { path: `${docs}/dir\\xFE`, reason: 'directory name is not valid UTF-8' },
    ]);
    const paths = (await post<Listed>(server.url, '/v2/list_documents', {})).body.map((d) => String(d.path));
    assert.deepEqual(paths, [join(docs, 'a.md')]);
    assert.equal(await found('mangledword'), false);
    assert.equal(logs.filter((l) => l.msg === 'skipped: file name is not valid UTF-8').length, 1);
  });

  it('reports a bad name created while serving (seen by the watcher), warning once', async () => {
    await writeFile(bytePath(docs, 'late', [0xc3, 0x28], '.md'), 'lateword');
    const late = `${docs}/late\\xC3(.md`;
    const { ms } = await waitFor(async () => (await source()).skipped?.paths.some((p) => p.path === late), 15_000, 50);
    await writeFile(join(docs, 'a.md'), 'alphaword again'); // more events in the same directory
    await writeFile(bytePath(docs, 'late', [0xc3, 0x28], '.md'), 'lateword, edited');
    await waitFor(() => found('again'), 15_000, 50);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(logs.filter((l) => l.path === late).length, 1);
    assert.equal((await source()).skipped?.count, 3);
    console.log(`# bad name reported ${Math.round(ms)} ms after it was created`);
  });

  it('lists an unreadable file with "permission denied" and keeps its indexed text', { skip: process.getuid?.() === 0 ? 'root reads everything' : false }, async () => {
    await writeFile(join(docs, 'locked.md'), 'lockedword');
    await waitFor(() => found('lockedword'), 15_000, 50);
    await writeFile(join(docs, 'locked.md'), 'lockedword, changed while nobody may read it');
    await chmod(join(docs, 'locked.md'), 0o000);
    try {
      await waitFor(async () => (await source()).skipped?.paths.some((p) => p.path === join(docs, 'locked.md') && p.reason === 'permission denied'), 15_000, 50);
      assert.equal(await found('lockedword'), true);
      assert.equal((await source()).state, 'idle');
    } finally {
      await chmod(join(docs, 'locked.md'), 0o644);
    }
    await writeFile(join(docs, 'locked.md'), 'lockedword readable again');
    await waitFor(async () => !(await source()).skipped?.paths.some((p) => p.path === join(docs, 'locked.md')), 15_000, 50);
  });

  it('watches the folder again when it is removed and created again: a change is seen in seconds', async () => {
    await rm(docs, { recursive: true });
    await mkdir(docs);
    await writeFile(join(docs, 'back.md'), 'backword');
    const back = await waitFor(() => found('backword'), 15_000, 50);
    // The new watcher, not the reconcile that re-armed it, sees this one.
    await new Promise((r) => setTimeout(r, 200));
    await writeFile(join(docs, 'later.md'), 'laterword');
    const later = await waitFor(() => found('laterword'), 15_000, 50);
    const s = await source();
    assert.equal(s.state, 'idle');
    assert.equal(s.skipped, undefined, 'the bad names went with the old folder');
    assert.equal(await found('alphaword'), false);
    console.log(`# recreated folder: first file seen after ${Math.round(back.ms)} ms, the next by the watcher after ${Math.round(later.ms)} ms`);
  });

  it('removed and created again at once (no moment without it): watched again all the same', async () => {
    await rm(docs, { recursive: true });
    await mkdir(docs);
    await writeFile(join(docs, 'quick.md'), 'quickword');
    await waitFor(() => found('quickword'), 15_000, 50);
    await writeFile(join(docs, 'quick2.md'), 'quicktwoword');
    await waitFor(() => found('quicktwoword'), 15_000, 50);
  });

  it('a folder replaced by a file is an error with its reason, not idle, and recovers when the folder is back', async () => {
    await rm(docs, { recursive: true });
    await writeFile(docs, 'a file where the folder was');
    // First gone (not reachable), then a file: the reason follows what is there.
    await waitFor(async () => {
      const s = await source();
      return s.state === 'error' && /folder not reachable: .* is no longer a directory/.test(String(s.error));
    }, 15_000, 50);
    assert.equal((await get(server.url, '/healthz')).status, 200);
    await rm(docs);
    await mkdir(docs);
    await writeFile(join(docs, 'again.md'), 'againword');
    await waitFor(() => found('againword'), 15_000, 50);
    const s = await source();
    assert.equal(s.state, 'idle');
    assert.equal(s.error, null);
  });

  it('a folder that disappears is an error with its reason, and recovers when it is back', async () => {
    await rename(docs, `${docs}-away`);
    await waitFor(async () => {
      const s = await source();
      return s.state === 'error' && /folder not reachable: ENOENT/.test(String(s.error));
    }, 15_000, 50);
    await rename(`${docs}-away`, docs);
    await waitFor(async () => (await source()).state === 'idle', 15_000, 50);
    await writeFile(join(docs, 'returned.md'), 'returnedword');
    await waitFor(() => found('returnedword'), 15_000, 50);
  });
});
