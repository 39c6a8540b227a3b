import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rename, rm, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../src/core/log.js';
import type { Change, SourceContext, SourceDocument, SourceHealth } from '../../src/core/types.js';
import { FolderSource, fsSourcePlugin, type FsSourceOptions } from '../../src/sources/fs/index.js';
import { sourcePlugins } from '../../src/sources/index.js';

/** A SourceContext that records what the source emits and acts as the store's version table. */
class Recorder implements SourceContext {
  readonly batches: Change[][] = [];
  readonly versions: Map<string, string>;
  readonly docs = new Map<string, SourceDocument>();
  readonly warnings: string[] = [];
  readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  readonly logger = createLogger({
    level: 'warn',
    write: (line) => this.warnings.push((JSON.parse(line) as { msg: string }).msg),
  });
  #cursor: string | null = null;
  readonly health: SourceHealth[] = [];

  reportHealth(health: SourceHealth): void {
    this.health.push(health);
  }

  constructor(versions: Map<string, string> = new Map()) {
    this.versions = new Map(versions);
  }

  get changes(): Change[] {
    return this.batches.flat();
  }

  /** Emits are applied as they come: everything emitted is already settled. */
  async settled(): Promise<void> {}

  async knownVersions(): Promise<Map<string, string>> {
    return new Map(this.versions);
  }

  async emit(changes: Change[]): Promise<void> {
    this.batches.push(changes);
    for (const c of changes) {
      if (c.kind === 'upsert') {
        this.versions.set(c.doc.key, c.doc.version);
        this.docs.set(c.doc.key, c.doc);
      } else {
        this.versions.delete(c.key);
        this.docs.delete(c.key);
      }
    }
  }

  async getCursor(): Promise<string | null> {
    return this.#cursor;
  }

  async setCursor(value: string): Promise<void> {
    this.#cursor = value;
  }

  /** Forgets what was recorded so far (the store stays). */
  clear(): void {
    this.batches.length = 0;
  }
}

const upserts = (changes: Change[]): string[] =>
  changes.flatMap((c) => (c.kind === 'upsert' ? [c.doc.key] : [])).sort();
const deletes = (changes: Change[]): string[] =>
  changes.flatMap((c) => (c.kind === 'delete' ? [c.key] : [])).sort();

async function waitFor(what: string, cond: () => boolean, timeoutMs = 1500): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function put(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
}

describe('folder source (fs)', () => {
  let root: string;
  let n = 0;
  const sources: FolderSource[] = [];
  const servers: Server[] = [];

  /** A fresh folder with the given files. */
  async function folder(files: Record<string, string>): Promise<string> {
    const dir = path.join(root, `case-${n++}`);
    await mkdir(dir, { recursive: true });
    for (const [rel, text] of Object.entries(files)) await put(path.join(dir, rel), text);
    return dir;
  }

  async function started(options: FsSourceOptions, ctx = new Recorder()): Promise<{ source: FolderSource; ctx: Recorder }> {
    const source = new FolderSource({ reconcile_interval_s: 0, debounce_ms: 20, ...options });
    sources.push(source);
    await source.start(ctx);
    return { source, ctx };
  }

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'livedex-fs-'));
  });

  after(async () => {
    await Promise.all(sources.map((s) => s.stop()));
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await rm(root, { recursive: true, force: true });
  });

  it('is registered as the source plugin "fs" with documented defaults', () => {
    assert.equal(fsSourcePlugin.kind, 'source');
    assert.equal(fsSourcePlugin.name, 'fs');
    assert.ok(sourcePlugins.includes(fsSourcePlugin));
    assert.deepEqual(fsSourcePlugin.options.parse({ path: './docs' }), {
      path: './docs',
      include: [],
      exclude: [],
      reconcile_interval_s: 30,
      debounce_ms: 50,
      debounce_max_ms: 500,
      follow_symlinks: false,
      exclude_dirs: [],
      skipped_listed: 100,
    });
    assert.deepEqual(fsSourcePlugin.options.parse({ path: 'd', include: '*.md' }).include, ['*.md']);
    assert.throws(() => fsSourcePlugin.options.parse({}));
    assert.throws(() => fsSourcePlugin.options.parse({ path: 'd', includ: ['*.md'] }));
  });

  it('keys documents by the path as given joined with the relative path', () => {
    const rel = new FolderSource({ path: './examples/docs/' });
    assert.equal(rel.id, `fs:${path.resolve('examples/docs')}`);
    assert.equal(rel.owns('examples/docs/a/b.md'), true);
    assert.equal(rel.owns('examples/docs2/b.md'), false);
    assert.equal(rel.owns('/abs/examples/docs/b.md'), false);
    const abs = new FolderSource({ path: '/srv/docs' });
    assert.equal(abs.owns('/srv/docs/x.md'), true);
    assert.equal(abs.owns('/srv/docsx/x.md'), false);
    const here = new FolderSource({ path: '.' });
    assert.equal(here.owns('a.md'), true);
    assert.equal(here.owns('../a.md'), false);
  });

  it('emits an upsert for every file on start, with key, version, metadata and bytes', async () => {
    const dir = await folder({ 'a.md': '# A', 'sub/b.txt': 'bee', 'sub/deep/c.md': 'see', '.env': 'X=1' });
    const { ctx } = await started({ path: dir });
    assert.deepEqual(upserts(ctx.changes), [`${dir}/.env`, `${dir}/a.md`, `${dir}/sub/b.txt`, `${dir}/sub/deep/c.md`]);
    const doc = ctx.docs.get(`${dir}/sub/b.txt`)!;
    const st = await stat(path.join(dir, 'sub/b.txt'));
    assert.equal(doc.version, `${Math.trunc(st.mtimeMs)}:3`);
    assert.deepEqual(doc.metadata, {
      path: `${dir}/sub/b.txt`,
      modified_at: Math.floor(st.mtimeMs / 1000),
      created_at: doc.metadata.created_at,
      size: 3,
      owner: String(st.uid),
    });
    assert.ok(Number.isInteger(doc.metadata.created_at));
    assert.equal(new TextDecoder().decode(await doc.read()), 'bee');
    assert.deepEqual(ctx.health.at(-1), { state: 'idle' });
  });

  it('reports an unreachable folder as an error in its health, and recovers once it is back', async () => {
    const dir = await folder({ 'here.md': 'here' });
    const { source, ctx } = await started({ path: dir });
    await rename(dir, `${dir}-away`);
    await source.reconcile();
    assert.equal(ctx.health.at(-1)?.state, 'error');
    assert.match(String(ctx.health.at(-1)?.error), /folder not reachable/);
    await rename(`${dir}-away`, dir);
    await source.reconcile();
    assert.deepEqual(ctx.health.at(-1), { state: 'idle' });
    assert.deepEqual(upserts(ctx.changes), [`${dir}/here.md`]);
  });

  it('joins a relative folder path into relative POSIX keys', async () => {
    const dir = await folder({ 'x/y.md': 'y' });
    const given = './' + path.relative(process.cwd(), dir);
    const { ctx } = await started({ path: given });
    const expected = path.join(given, 'x/y.md').split(path.sep).join('/');
    assert.ok(!expected.startsWith('./'));
    assert.deepEqual(upserts(ctx.changes), [expected]);
    assert.equal(ctx.docs.get(expected)!.metadata.path, expected);
  });

  it('ignores editor and OS temp files, dot-directories, excluded dirs, sockets and unfollowed links', async () => {
    const dir = await folder({
      'keep.md': 'k',
      'notes.md.swp': 's',
      'notes.md.swo': 's',
      'notes.md~': 'b',
      '.#notes.md': 'l',
      '#notes.md#': 'a',
      '4913': 'v',
      '.DS_Store': 'd',
      'Thumbs.db': 't',
      'x.tmp': 't',
      'big.zip.crdownload': 'c',
      'movie.part': 'p',
      '.~lock.report.odt#': 'l',
      '.git/config': 'g',
      '.livedex/store.db': 's',
      'sub/.cache/x.md': 'c',
      'data/index.bin': 'i',
    });
    await symlink(path.join(dir, 'keep.md'), path.join(dir, 'link.md'));
    const server = createServer();
    servers.push(server);
    await new Promise<void>((r) => server.listen(path.join(dir, 'sock'), r));
    const { ctx } = await started({ path: dir, exclude_dirs: [path.join(dir, 'data')] });
    assert.deepEqual(upserts(ctx.changes), [`${dir}/keep.md`]);
  });

  it('applies include and exclude globs to the relative path (a pattern without / matches the name)', async () => {
    const dir = await folder({
      'a.md': '',
      'b.txt': '',
      'docs/c.md': '',
      'docs/d.pdf': '',
      'docs/draft/e.md': '',
      'build/f.md': '',
      '.github/workflow.yml': '',
      '.git/HEAD.md': '',
    });
    const { ctx } = await started({ path: dir, include: ['*.md', 'docs/*.pdf', '.github/**'], exclude: ['build/**', 'docs/draft/*'] });
    assert.deepEqual(
      upserts(ctx.changes),
      ['.github/workflow.yml', 'a.md', 'docs/c.md', 'docs/d.pdf'].map((r) => `${dir}/${r}`),
    );
  });

  it('follows files as they are created, modified, deleted and renamed', async () => {
    const dir = await folder({ 'a.md': 'a' });
    const { ctx } = await started({ path: dir });
    ctx.clear();

    await writeFile(path.join(dir, 'new.md'), 'new');
    await waitFor('create', () => ctx.versions.has(`${dir}/new.md`));
    assert.deepEqual(upserts(ctx.changes), [`${dir}/new.md`]);

    ctx.clear();
    const before = ctx.versions.get(`${dir}/a.md`);
    await writeFile(path.join(dir, 'a.md'), 'a changed');
    await waitFor('modify', () => ctx.versions.get(`${dir}/a.md`) !== before);
    assert.deepEqual(upserts(ctx.changes), [`${dir}/a.md`]);
    assert.equal(new TextDecoder().decode(await ctx.docs.get(`${dir}/a.md`)!.read()), 'a changed');

    ctx.clear();
    await unlink(path.join(dir, 'new.md'));
    await waitFor('delete', () => !ctx.versions.has(`${dir}/new.md`));
    assert.deepEqual(deletes(ctx.changes), [`${dir}/new.md`]);
    assert.deepEqual(upserts(ctx.changes), []);

    ctx.clear();
    await rename(path.join(dir, 'a.md'), path.join(dir, 'b.md'));
    await waitFor('rename', () => ctx.versions.has(`${dir}/b.md`) && !ctx.versions.has(`${dir}/a.md`));
    assert.deepEqual(deletes(ctx.changes), [`${dir}/a.md`]);
    assert.deepEqual(upserts(ctx.changes), [`${dir}/b.md`]);

    ctx.clear();
    await writeFile(path.join(dir, 'b.md.swp'), 'swap');
    await writeFile(path.join(dir, '4913'), '');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(ctx.changes, []);
  });


  it('looks at a file written without a pause once debounce_max_ms has passed, not only when the writes stop', async () => {
    const dir = await folder({ 'log.md': 'line 0' });
    const { ctx } = await started({ path: dir, debounce_ms: 200, debounce_max_ms: 600 });
    ctx.clear();
    const file = path.join(dir, 'log.md');
    // A write every 20 ms: the file is never quiet for the 200 ms debounce.
    const until = Date.now() + 2400;
    let n = 0;
    while (Date.now() < until) {
      await writeFile(file, `line ${++n}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const whileWriting = upserts(ctx.changes).length;
    assert.ok(whileWriting >= 2, `the file was emitted while it was written (${whileWriting} times in 2.4 s)`);
    // And the last write is emitted once the file is quiet (a version is mtime and size).
    const last = await stat(file);
    await waitFor('the last write', () => ctx.versions.get(`${dir}/log.md`) === `${Math.trunc(last.mtimeMs)}:${last.size}`);
  });
  it('follows directories as they are created, renamed and deleted', async () => {
    const dir = await folder({ 'top.md': 't' });
    const { ctx } = await started({ path: dir });
    ctx.clear();

    await put(path.join(dir, 'd/x.md'), 'x');
    await put(path.join(dir, 'd/e/y.md'), 'y');
    await waitFor('new dir', () => ctx.versions.has(`${dir}/d/x.md`) && ctx.versions.has(`${dir}/d/e/y.md`));
    // and the new directories are watched, however fast they were created
    await new Promise((r) => setTimeout(r, 200));
    await writeFile(path.join(dir, 'd/e/z.md'), 'z');
    await waitFor('file in new dir', () => ctx.versions.has(`${dir}/d/e/z.md`));
    await unlink(path.join(dir, 'd/e/z.md'));
    await waitFor('file in new dir deleted', () => !ctx.versions.has(`${dir}/d/e/z.md`));

    ctx.clear();
    await rename(path.join(dir, 'd'), path.join(dir, 'moved'));
    const moved = [`${dir}/moved/e/y.md`, `${dir}/moved/x.md`];
    await waitFor('renamed dir', () => moved.every((k) => ctx.versions.has(k)) && !ctx.versions.has(`${dir}/d/x.md`) && !ctx.versions.has(`${dir}/d/e/y.md`));
    assert.deepEqual(deletes(ctx.changes), [`${dir}/d/e/y.md`, `${dir}/d/x.md`]);
    assert.deepEqual(upserts(ctx.changes), moved);

    ctx.clear();
    await rm(path.join(dir, 'moved'), { recursive: true });
    await waitFor('removed dir', () => moved.every((k) => !ctx.versions.has(k)));
    assert.deepEqual(deletes(ctx.changes), moved);
    assert.deepEqual([...ctx.versions.keys()], [`${dir}/top.md`]);
  });

  it('follows a folder given through a symlink, keyed by the path as given', async () => {
    const real = await folder({ 'r.md': 'r' });
    const given = path.join(root, `link-${n++}`);
    await symlink(real, given);
    const { ctx } = await started({ path: given });
    assert.deepEqual(upserts(ctx.changes), [`${given}/r.md`]);
    await put(path.join(real, 'sub/s.md'), 's');
    await waitFor('change under the real path', () => ctx.versions.has(`${given}/sub/s.md`));
    await unlink(path.join(given, 'r.md'));
    await waitFor('delete through the link', () => !ctx.versions.has(`${given}/r.md`));
  });

  it('reconciles what changed while it was stopped, and only that', async () => {
    const dir = await folder({ 'same.md': 's', 'edit.md': 'e', 'gone.md': 'g', 'sub/gone2.md': 'g' });
    const first = await started({ path: dir });
    await first.source.stop();
    const store = new Map(first.ctx.versions);

    await writeFile(path.join(dir, 'edit.md'), 'edited, longer');
    await unlink(path.join(dir, 'gone.md'));
    await rm(path.join(dir, 'sub'), { recursive: true });
    await writeFile(path.join(dir, 'added.md'), 'new');
    // A touched file with the same size still counts as changed.
    const later = new Date(Date.now() + 5000);
    await writeFile(path.join(dir, 'same2.md'), 's');
    store.set(`${dir}/same2.md`, 'stale:1');
    await utimes(path.join(dir, 'same.md'), later, later);

    // Keys of other sources in the store are not this source's business.
    store.set('/elsewhere/x.md', '1:1');
    const second = await started({ path: dir }, new Recorder(store));
    const changes = second.ctx.changes;
    assert.deepEqual(upserts(changes), [`${dir}/added.md`, `${dir}/edit.md`, `${dir}/same.md`, `${dir}/same2.md`]);
    assert.deepEqual(deletes(changes), [`${dir}/gone.md`, `${dir}/sub/gone2.md`]);

    // Nothing changed since: a reconcile emits nothing.
    second.ctx.clear();
    await second.source.reconcile();
    assert.deepEqual(second.ctx.changes, []);
  });

  it('emits in batches and waits for each (back-pressure)', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 600; i++) files[`f${i}.txt`] = String(i);
    const dir = await folder(files);
    const ctx = new Recorder();
    let inFlight = 0;
    let maxInFlight = 0;
    const record = ctx.emit.bind(ctx);
    ctx.emit = async (changes) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      await record(changes);
      inFlight--;
    };
    await started({ path: dir }, ctx);
    assert.equal(ctx.changes.length, 600);
    assert.deepEqual(ctx.batches.map((b) => b.length), [256, 256, 88]);
    assert.equal(maxInFlight, 1);
  });

  it('never runs two reconciles at once and survives files vanishing mid-listing', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 400; i++) files[`d${i % 20}/f${i}.txt`] = String(i);
    const dir = await folder(files);
    const { source, ctx } = await started({ path: dir });
    assert.equal(ctx.versions.size, 400);

    const removal = (async () => {
      for (let i = 0; i < 400; i += 2) await unlink(path.join(dir, `d${i % 20}/f${i}.txt`));
    })();
    await Promise.all([source.reconcile(), source.reconcile(), source.reconcile(), removal]);
    await source.reconcile();
    await waitFor('deletes settle', () => ctx.versions.size === 200);
    assert.ok([...ctx.versions.keys()].every((k) => Number(/f(\d+)\.txt$/.exec(k)![1]) % 2 === 1));
  });

  it('keeps the documents of a directory it cannot read', { skip: process.getuid?.() === 0 ? 'root reads everything' : false }, async () => {
    const dir = await folder({ 'open/a.md': 'a', 'locked/b.md': 'b' });
    const first = await started({ path: dir });
    await first.source.stop();
    await chmod(path.join(dir, 'locked'), 0o000);
    try {
      const second = await started({ path: dir }, new Recorder(first.ctx.versions));
      assert.deepEqual(second.ctx.changes, []);
      assert.ok(second.ctx.warnings.some((w) => /could not be read/.test(w)));
    } finally {
      await chmod(path.join(dir, 'locked'), 0o755);
    }
  });

  it('lists in its health the directories and files it cannot read, with "permission denied", and keeps their documents', { skip: process.getuid?.() === 0 ? 'root reads everything' : false }, async () => {
    const dir = await folder({ 'open/a.md': 'a', 'locked/b.md': 'b', 'private.md': 'p' });
    const { source, ctx } = await started({ path: dir });
    await chmod(path.join(dir, 'locked'), 0o000);
    await chmod(path.join(dir, 'private.md'), 0o200);
    try {
      await utimes(path.join(dir, 'private.md'), new Date(), new Date(Date.now() + 5000)); // a new version nobody may read
      ctx.clear();
      await source.reconcile();
      assert.deepEqual(ctx.changes, [], 'nothing unreadable is taken for deleted or changed');
      const health = ctx.health.at(-1)!;
      assert.equal(health.state, 'idle');
      assert.equal(health.skipped?.count, 2);
      assert.deepEqual([...health.skipped!.paths].sort((a, b) => a.path.localeCompare(b.path)), [
        { path: `${dir}/locked`, reason: 'permission denied' },
        { path: `${dir}/private.md`, reason: 'permission denied' },
      ]);
    } finally {
      await chmod(path.join(dir, 'locked'), 0o755);
      await chmod(path.join(dir, 'private.md'), 0o644);
    }
    await source.reconcile();
    assert.equal(ctx.health.at(-1)!.skipped, undefined);
    assert.deepEqual(upserts(ctx.changes), [`${dir}/private.md`]);
  });

  it('lists at most skipped_listed paths in its health, counts them all, and warns once per listed path', async () => {
    const dir = await folder({ 'fine.md': 'f' });
    for (let i = 0; i < 25; i++) await writeFile(Buffer.concat([Buffer.from(`${dir}/bad-${String(i).padStart(2, '0')}-`), Buffer.from([0xff, 0xfe]), Buffer.from('.md')]), 'x');
    const { source, ctx } = await started({ path: dir, skipped_listed: 10 });
    const skipped = ctx.health.at(-1)!.skipped!;
    assert.equal(skipped.count, 25);
    assert.equal(skipped.paths.length, 10);
    assert.ok(skipped.paths.every((p) => /\/bad-\d\d-\\xFF\\xFE\.md$/.test(p.path) && p.reason === 'file name is not valid UTF-8'), JSON.stringify(skipped.paths));
    assert.deepEqual(upserts(ctx.changes), [`${dir}/fine.md`]);
    const warned = (): number => ctx.warnings.filter((w) => w === 'skipped: file name is not valid UTF-8').length;
    assert.equal(warned(), 10);
    assert.equal(ctx.warnings.filter((w) => /more paths skipped/.test(w)).length, 1);
    await source.reconcile();
    await source.reconcile();
    assert.equal(warned(), 10, 'the same bad names are not warned about again');
    assert.equal(ctx.warnings.filter((w) => /more paths skipped/.test(w)).length, 1);
    assert.equal(ctx.health.at(-1)!.skipped!.count, 25);
  });

  it('a folder replaced by a file is an error in its health (never idle) and deletes nothing by listing', async () => {
    const dir = await folder({ 'kept.md': 'k' });
    const { source, ctx } = await started({ path: dir });
    await source.stop(); // no watcher: only what the reconcile decides
    const again = await started({ path: dir }, new Recorder(ctx.versions));
    await rm(dir, { recursive: true });
    await writeFile(dir, 'not a folder');
    again.ctx.clear();
    await again.source.reconcile();
    assert.equal(again.ctx.health.at(-1)!.state, 'error');
    assert.match(String(again.ctx.health.at(-1)!.error), /no longer a directory/);
    assert.deepEqual(deletes(again.ctx.changes), []);
    await rm(dir);
    await mkdir(dir);
    await writeFile(path.join(dir, 'kept.md'), 'k, back');
    await again.source.reconcile();
    assert.deepEqual(again.ctx.health.at(-1), { state: 'idle' });
  });

  it('treats a file that vanished after listing as gone: read() rejects, nothing crashes', async () => {
    const dir = await folder({ 'v.md': 'v' });
    const { ctx } = await started({ path: dir });
    const doc = ctx.docs.get(`${dir}/v.md`)!;
    await unlink(path.join(dir, 'v.md'));
    await assert.rejects(doc.read(), /ENOENT/);
    await waitFor('delete', () => !ctx.versions.has(`${dir}/v.md`));
  });

  it('follows symlinks inside the folder when asked, skips those leading out, and never loops', async () => {
    const outside = await folder({ 'secret.md': 's' });
    const dir = await folder({ 'real/a.md': 'a' });
    await symlink(path.join(dir, 'real'), path.join(dir, 'alias'));
    await symlink(path.join(dir, 'real/a.md'), path.join(dir, 'a-link.md'));
    await symlink(outside, path.join(dir, 'out'));
    await symlink(dir, path.join(dir, 'real/loop'));
    const { ctx } = await started({ path: dir, follow_symlinks: true });
    assert.deepEqual(upserts(ctx.changes), [`${dir}/a-link.md`, `${dir}/alias/a.md`, `${dir}/real/a.md`]);
    assert.ok(ctx.warnings.some((w) => /outside the folder/.test(w)));
  });

  it('reports a missing folder as a config error', async () => {
    const source = new FolderSource({ path: path.join(root, 'does-not-exist') });
    await assert.rejects(source.start(new Recorder()), (err: Error & { code?: string }) => err.code === 'config_error');
  });

  it('stops cleanly: no watcher, timer or reconcile left behind; abort stops it too', async () => {
    await Promise.all(sources.map((s) => s.stop())); // the other cases' watchers are not ours to count
    const dir = await folder({ 'a.md': 'a' });
    // Closed handles leave the list once libuv has run their close callbacks.
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));
    const watchers = (): number => process.getActiveResourcesInfo().filter((r) => r.startsWith('FSEvent')).length;
    await settle();
    const baseline = watchers();
    const { source } = await started({ path: dir, reconcile_interval_s: 1 });
    assert.ok(watchers() > baseline);
    const reconciling = source.reconcile();
    await source.stop();
    await reconciling;
    await settle();
    assert.equal(watchers(), baseline);
    await source.stop(); // twice is fine

    const ctx = new Recorder();
    const other = await started({ path: dir, reconcile_interval_s: 1 }, ctx);
    ctx.controller.abort();
    await other.source.stop();
    await settle();
    assert.equal(watchers(), baseline);
    await writeFile(path.join(dir, 'after.md'), 'x');
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(ctx.versions.has(`${dir}/after.md`), false);
  });
});
