/**
 * The folder source at scale, served: a folder of 20,000 files costs one system watch per
 * directory (counted from the process's inotify descriptors), changes deep in it are seen in
 * seconds, and a restart answers from the old index before its reconcile ends, then finds
 * what changed while it was down.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SourceStatus } from '../../src/core/types.js';
import { get, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const FILES = 20_000;
const TOP = 4;
const SUB = 4;
/** The root, its TOP directories, their SUB directories each, and deep/er under the first. */
const DIRECTORIES = 1 + TOP + TOP * SUB + 2;

/** inotify watches this process holds: the `inotify wd:` lines of each inotify descriptor's fdinfo. */
async function inotifyWatches(): Promise<number> {
  let watches = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target !== 'anon_inode:inotify') continue;
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
    watches += info.split('\n').filter((line) => line.startsWith('inotify wd:')).length;
  }
  return watches;
}

describe('a folder of 20,000 files, served', { skip: process.platform !== 'linux' ? 'counts inotify watches' : false }, () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer | null = null;
  let deep: string;

  const found = async (url: string, word: string): Promise<string[]> =>
    (await retrieve(url, { query: word, k: 5, mode: 'bm25' })).map((h) => String(h.metadata.path));
  const fsStatus = async (url: string): Promise<SourceStatus> =>
    (await get<{ sources: SourceStatus[] }>(url, '/v1/status')).body.sources[0]!;

  before(async () => {
    folder = await tempDir('livedex-fs-scale-');
    data = await tempDir('livedex-fs-scale-data-');
    deep = join(folder.path, 't0', 's0', 'deep', 'er');
    await mkdir(deep, { recursive: true });
    for (let t = 0; t < TOP; t++) for (let s = 0; s < SUB; s++) await mkdir(join(folder.path, `t${t}`, `s${s}`), { recursive: true });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < FILES; i++) {
      const dir = join(folder.path, `t${i % TOP}`, `s${Math.floor(i / TOP) % SUB}`);
      writes.push(writeFile(join(dir, `f${i}.txt`), `note ${i} word${i}`));
      if (writes.length >= 256) await Promise.all(writes.splice(0));
    }
    await writeFile(join(deep, 'deep-edit.txt'), 'the deep note says heron');
    await writeFile(join(deep, 'deep-gone.txt'), 'the deep note says osprey');
    await writeFile(join(deep, 'deep-move.txt'), 'the deep note says plover');
    await Promise.all(writes);
  });
  after(async () => {
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('watches it with one watch per directory, and sees an edit, a new file, a delete and a rename deep in it within seconds', { timeout: 600_000 }, async () => {
    const before = await inotifyWatches();
    server = await startServer(folder.path, { dataDir: data.path, fs: { debounce_ms: 20 } });
    await server.ready;
    const url = server.url;
    assert.deepEqual(await found(url, 'word19999'), [join(folder.path, 't3', 's3', 'f19999.txt')]);
    const watches = (await inotifyWatches()) - before;
    assert.ok(watches >= DIRECTORIES && watches <= DIRECTORIES + 2, `${watches} watches for ${DIRECTORIES} directories and ${FILES} files`);

    await writeFile(join(deep, 'deep-edit.txt'), 'the deep note now says egret');
    await writeFile(join(deep, 'deep-new.txt'), 'a new deep note says bittern');
    await rm(join(deep, 'deep-gone.txt'));
    await rename(join(deep, 'deep-move.txt'), join(folder.path, 't1', 's2', 'moved.txt'));
    const seconds = 30_000; // seen in under a second when idle; the margin is for a loaded machine
    await waitFor(async () => (await found(url, 'egret')).includes(join(deep, 'deep-edit.txt')) && (await found(url, 'heron')).length === 0, seconds);
    await waitFor(async () => (await found(url, 'bittern')).includes(join(deep, 'deep-new.txt')), seconds);
    await waitFor(async () => (await found(url, 'osprey')).length === 0, seconds);
    await waitFor(async () => {
      const hits = await found(url, 'plover');
      return hits.length === 1 && hits[0] === join(folder.path, 't1', 's2', 'moved.txt');
    }, seconds);
    // A directory made with its contents at once (mkdir -p) is watched whole.
    await mkdir(join(folder.path, 't2', 'fresh', 'inner'), { recursive: true });
    await writeFile(join(folder.path, 't2', 'fresh', 'inner', 'first.txt'), 'first fresh note: avocet');
    await waitFor(async () => (await found(url, 'avocet')).length === 1, seconds);
    await writeFile(join(folder.path, 't2', 'fresh', 'inner', 'second.txt'), 'second fresh note: dunlin');
    await waitFor(async () => (await found(url, 'dunlin')).length === 1, seconds);
    assert.equal((await inotifyWatches()) - before, DIRECTORIES + 2, 'the two new directories are watched too');
  });

  it('serves the old index at once on a restart, before its reconcile ends, and still finds what changed while it was down', { timeout: 600_000 }, async () => {
    assert.ok(server, 'the first case started the server');
    await server.close();
    server = null;
    await writeFile(join(folder.path, 't2', 's1', 'f6.txt'), 'rewritten while down: kittiwake');

    server = await startServer(folder.path, { dataDir: data.path, fs: { debounce_ms: 20 } });
    const url = server.url;
    // Answered from the old index: the file's old text, while the source is still listing the folder.
    assert.deepEqual(await found(url, 'word6'), [join(folder.path, 't2', 's1', 'f6.txt')]);
    assert.equal((await fsStatus(url)).state, 'syncing', 'the reconcile had not ended when the old index answered');
    await server.ready;
    await waitFor(async () => (await found(url, 'kittiwake')).length === 1 && (await found(url, 'word6')).length === 0, 60_000);
    await waitFor(async () => (await fsStatus(url)).state === 'idle', 60_000);
    assert.equal(server.index.pipeline.counters.parsed, 1, 'only the file changed while down is parsed again');
  });
});
