/**
 * The folder source through a served index: links out of the folder are never indexed (even with
 * follow_symlinks, even when a file is swapped for one), loops end, and FIFOs, sockets and files
 * that vanish never block or crash the pipeline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { silentLogger } from '../../src/core/log.js';
import type { Change, SourceContext, SourceDocument, SourceStatus } from '../../src/core/types.js';
import { FolderSource } from '../../src/sources/fs/index.js';
import { get, post, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

type Listed = Array<Record<string, unknown> & { path?: string }>;

describe('folder source safety, served', () => {
  let root: { path: string; cleanup(): Promise<void> };
  let docs: string;
  let outside: string;
  let server: TestServer;
  const sockets: Server[] = [];

  const paths = async () => (await post<Listed>(server.url, '/v2/list_documents', {})).body.map((d) => String(d.path)).sort();

  before(async () => {
    root = await tempDir('livedex-fs-safety-');
    docs = join(root.path, 'docs');
    outside = join(root.path, 'outside');
    await mkdir(join(docs, 'real'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(outside, 'secret.md'), 'secretword: a file outside the watched folder');
    await writeFile(join(docs, 'real/a.md'), 'alphaword inside the folder');
    await writeFile(join(docs, 'swap.md'), 'swapword before the swap');
    await symlink(join(outside, 'secret.md'), join(docs, 'file-out.md'));
    await symlink(outside, join(docs, 'dir-out'));
    await symlink(docs, join(docs, 'real/loop'));
    await symlink(join(docs, 'real/loop'), join(docs, 'loop2'));
    execFileSync('mkfifo', [join(docs, 'pipe.md')]);
    const sock = createServer();
    sockets.push(sock);
    await new Promise<void>((r) => sock.listen(join(docs, 'sock.md'), r));
    server = await startServer(docs, { dataDir: join(root.path, 'data'), fs: { follow_symlinks: true }, config: { sandbox: { enabled: false } } });
    await server.ready;
  });
  after(async () => {
    await server?.close();
    for (const s of sockets) await new Promise<void>((r) => s.close(() => r()));
    await root.cleanup();
  });

  it('indexes what is inside (loops end), never what a link leads out to, and a FIFO or socket does not block the start', async () => {
    const listed = await paths();
    assert.ok(listed.includes(join(docs, 'real/a.md')));
    assert.ok(listed.includes(join(docs, 'swap.md')));
    assert.ok(listed.every((p) => p.startsWith(docs + '/')), listed.join(', '));
    assert.ok(!listed.some((p) => /file-out|dir-out|pipe|sock/.test(p)), listed.join(', '));
    assert.equal((await retrieve(server.url, { query: 'secretword', k: 5, mode: 'bm25' })).length, 0);
  });

  it('lists the links leading out of the folder in its status, with the reason', async () => {
    const status = await get<{ sources: SourceStatus[] }>(server.url, '/v1/status');
    const skipped = status.body.sources[0]!.skipped;
    assert.ok(skipped, JSON.stringify(status.body.sources[0]));
    const byPath = new Map(skipped.paths.map((p) => [p.path, p.reason]));
    assert.equal(byPath.get(join(docs, 'file-out.md')), 'symlink leads outside the folder');
    assert.equal(byPath.get(join(docs, 'dir-out')), 'symlink leads outside the folder');
    assert.ok(![...byPath.keys()].some((p) => /pipe|sock|loop/.test(p)), [...byPath.keys()].join(', '));
    assert.equal(skipped.count, skipped.paths.length);
  });

  it('a file swapped for a link out of the folder is dropped, not followed', async () => {
    await unlink(join(docs, 'swap.md'));
    await symlink(join(outside, 'secret.md'), join(docs, 'swap.md'));
    await waitFor(async () => !(await paths()).includes(join(docs, 'swap.md')), 20_000, 100);
    assert.equal((await retrieve(server.url, { query: 'secretword', k: 5, mode: 'bm25' })).length, 0);
    assert.equal((await retrieve(server.url, { query: 'swapword', k: 5, mode: 'bm25' })).length, 0);
  });

  it('a FIFO created while serving and a file that vanishes right away leave the pipeline moving', async () => {
    execFileSync('mkfifo', [join(docs, 'late-pipe.txt')]);
    for (let i = 0; i < 20; i++) {
      await writeFile(join(docs, `blink-${i}.md`), `blinkword ${i}`);
      await rm(join(docs, `blink-${i}.md`));
    }
    await writeFile(join(docs, 'after.md'), 'afterword written after the FIFO');
    await waitFor(async () => (await retrieve(server.url, { query: 'afterword', k: 1, mode: 'bm25' })).length === 1, 20_000, 100);
    await waitFor(async () => !(await paths()).some((p) => /blink-/.test(p)), 20_000, 100);
    assert.ok(!(await paths()).some((p) => /late-pipe/.test(p)));
    assert.equal((await post(server.url, '/v1/statistics', {})).status, 200);
  });

  for (const follow of [false, true]) {
    it(`a listed file that became a FIFO or a link out before its read is refused at once, not read (follow_symlinks: ${follow})`, async () => {
      const dir = join(root.path, `race-${follow}`);
      await mkdir(dir);
      for (const name of ['fifo.md', 'link.md', 'fine.md']) await writeFile(join(dir, name), `racing ${name}`);
      const docs = new Map<string, SourceDocument>();
      const controller = new AbortController();
      const ctx: SourceContext = {
        knownVersions: async () => new Map(),
        emit: async (changes: Change[]) => {
          for (const c of changes) if (c.kind === 'upsert') docs.set(c.doc.key, c.doc);
        },
        getCursor: async () => null,
        setCursor: async () => {},
        settled: async () => {},
        reportHealth: () => {},
        logger: silentLogger,
        signal: controller.signal,
      };
      const source = new FolderSource({ path: dir, follow_symlinks: follow, reconcile_interval_s: 0 });
      await source.start(ctx);
      try {
        await unlink(join(dir, 'fifo.md'));
        execFileSync('mkfifo', [join(dir, 'fifo.md')]);
        await unlink(join(dir, 'link.md'));
        await symlink(join(outside, 'secret.md'), join(dir, 'link.md'));
        // A FIFO with no writer would block its open() for good: the read must not wait for one.
        await assert.rejects(docs.get(join(dir, 'fifo.md'))!.read(), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
        await assert.rejects(docs.get(join(dir, 'link.md'))!.read(), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
        assert.equal(new TextDecoder().decode(await docs.get(join(dir, 'fine.md'))!.read()), 'racing fine.md');
      } finally {
        controller.abort();
        await source.stop();
      }
    });
  }
});
