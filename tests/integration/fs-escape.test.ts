/**
 * The folder source never reads outside its folder: a directory on a file's path swapped for a
 * link out of the folder (before, during or between reads, by the watcher's reads and the
 * reconcile's alike) never brings a byte of what lies outside into the index or a read.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger, silentLogger } from '../../src/core/log.js';
import type { Change, SourceContext, SourceDocument } from '../../src/core/types.js';
import { FolderSource } from '../../src/sources/fs/index.js';
import { readInside } from '../../src/sources/fs/open-inside.js';
import { embedCounter, get, post, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

/** The word only the files outside the folder hold. */
const SECRET = 'zyxsecretqvw';
/** How long each race runs: long enough for thousands of swaps, short enough for a loaded machine. */
const RACE_MS = 3000;

type Listed = Array<Record<string, unknown> & { path?: string }>;
type Status = { queue: { depth: number; inFlight: number }; sources: Array<Record<string, unknown>> };

const pause = (): Promise<void> => new Promise((r) => setImmediate(r));
/** A few milliseconds, so that reads meet either state of the swap. */
const jitter = (): Promise<void> => new Promise((r) => setTimeout(r, Math.floor(Math.random() * 6)));

/** Makes `<docs>/sub` a real directory again (it is a link out, or a directory parked as `held`). */
async function restore(docs: string): Promise<void> {
  await rm(join(docs, 'sub'), { force: true });
  await rename(join(docs, 'held'), join(docs, 'sub')).catch(() => undefined);
}

/** One swap as in the report: the directory moved aside, a link to the outside put in its place, and back. */
async function swapOnce(docs: string, outside: string, hold: () => Promise<void> = pause): Promise<void> {
  await rename(join(docs, 'sub'), join(docs, 'held'));
  await symlink(outside, join(docs, 'sub'));
  await hold();
  await restore(docs);
}

/** True when a text from outside the folder reached the embedder (a chunk of it was made, even for a moment). */
const secretEmbedded = (): boolean => embedCounter.seen.some((t) => t.includes(SECRET));

async function layout(base: string): Promise<{ docs: string; outside: string }> {
  const docs = join(base, 'docs');
  const outside = join(base, 'outside');
  await mkdir(join(docs, 'sub'), { recursive: true });
  await mkdir(outside);
  // The same names inside and out: whichever a read reaches, the path looks the same.
  for (const name of ['passwd', 'notes.md']) {
    await writeFile(join(docs, 'sub', name), `insideword ${name}`);
    await writeFile(join(outside, name), `${SECRET} outside ${name}`);
  }
  await writeFile(join(docs, 'top.md'), 'topword stays put');
  return { docs, outside };
}

for (const follow of [false, true]) {
  describe(`a directory swapped for a link out of the folder, served (follow_symlinks: ${follow})`, () => {
    let base: { path: string; cleanup(): Promise<void> };
    let docs: string;
    let outside: string;
    let server: TestServer;
    const warnings: string[] = [];

    before(async () => {
      base = await tempDir('livedex-fs-escape-');
      ({ docs, outside } = await layout(base.path));
      const logger = createLogger({ level: 'warn', write: (line) => warnings.push((JSON.parse(line) as { msg: string }).msg) });
      server = await startServer(docs, {
        dataDir: join(base.path, 'data'),
        logger,
        // Reconciles four times a second and a short debounce: both paths read while the swaps go on.
        fs: { follow_symlinks: follow, reconcile_interval_s: 0.25, debounce_ms: 5 },
        config: { sandbox: { enabled: false } },
      });
      await server.ready;
      embedCounter.reset();
    });
    after(async () => {
      await server?.close();
      await base.cleanup();
    });

    it('the reproduction from the report: mkdir, echo, mv, ln -s — outside/passwd is never indexed nor served', async () => {
      // In one go, as in the report: the new file's event is read after the swap.
      await mkdir(join(docs, 'fresh'));
      await writeFile(join(docs, 'fresh', 'passwd'), 'x freshword');
      await rename(join(docs, 'fresh'), join(docs, 'fresh.old'));
      await symlink(outside, join(docs, 'fresh'));
      await waitFor(async () => (await retrieve(server.url, { query: 'freshword', k: 5, mode: 'bm25' })).length === 1, 20_000, 50);
      await new Promise((r) => setTimeout(r, 600)); // two more reconciles over the link
      assert.equal(secretEmbedded(), false, 'a chunk of outside/passwd was made');
      assert.equal((await retrieve(server.url, { query: SECRET, k: 10, mode: 'bm25' })).length, 0);
      const paths = (await post<Listed>(server.url, '/v1/inputs', {})).body.map((d) => String(d.path));
      assert.ok(paths.includes(join(docs, 'fresh.old/passwd')), paths.join(', '));
      assert.ok(!paths.some((p) => p.startsWith(join(docs, 'fresh') + '/')), paths.join(', '));
    });

    it('loops the swap while edits and reconciles read: no byte from outside is ever indexed', async () => {
      let swaps = 0;
      let edits = 0;
      const until = Date.now() + RACE_MS;
      while (Date.now() < until) {
        // An edit makes the watcher read the path; the swap right after races that read.
        await writeFile(join(docs, 'sub', edits % 2 === 0 ? 'passwd' : 'notes.md'), `insideword edit ${edits++}`);
        await jitter();
        await swapOnce(docs, outside, jitter);
        swaps++;
      }
      // Settle with the link in place, as an attacker would leave it, then with the directory back.
      await rename(join(docs, 'sub'), join(docs, 'held'));
      await symlink(outside, join(docs, 'sub'));
      await writeFile(join(docs, 'held', 'passwd'), 'insideword final edit');
      await new Promise((r) => setTimeout(r, 800));
      const idle = async () => {
        const s = (await get<Status>(server.url, '/v1/status')).body;
        return s.queue.depth === 0 && s.queue.inFlight === 0;
      };
      await waitFor(idle, 30_000, 50);

      assert.equal(secretEmbedded(), false, 'a chunk of a file outside the folder was made');
      assert.equal((await retrieve(server.url, { query: SECRET, k: 50, mode: 'bm25' })).length, 0, 'the secret word is searchable');
      assert.equal((await retrieve(server.url, { query: 'outside', k: 50, mode: 'bm25' })).length, 0);
      const listed = (await post<Listed>(server.url, '/v2/list_documents', {})).body;
      for (const doc of listed) {
        assert.ok(String(doc.path).startsWith(docs + '/'), String(doc.path));
        assert.doesNotMatch(JSON.stringify(doc), new RegExp(`${SECRET}|${outside}`));
        const info = await get(server.url, `/v1/documents/${encodeURIComponent(String(doc.path))}`);
        assert.doesNotMatch(JSON.stringify(info.body), new RegExp(`${SECRET}|${outside}`));
      }
      // Every hit for the words inside comes from inside.
      for (const hit of await retrieve(server.url, { query: 'insideword', k: 50, mode: 'bm25' })) {
        assert.ok(!hit.text.includes(SECRET) && String(hit.metadata.path).startsWith(docs + '/'));
      }
      assert.ok(swaps >= 20, `only ${swaps} swaps`);
      const refused = warnings.filter((w) => w.startsWith('read refused')).length;
      console.log(`# ${swaps} swaps, ${edits} edits; ${refused} reads refused for opening a file outside the folder`);

      await restore(docs);
      await writeFile(join(docs, 'sub', 'passwd'), 'insideword back home');
      await waitFor(async () => (await retrieve(server.url, { query: 'home', k: 5, mode: 'bm25' })).length === 1, 20_000, 50);
    });
  });
}

for (const follow of [false, true]) {
  it(`without /proc (the path resolved again, inodes compared), a link on the way is refused and the file inside is read (follow_symlinks: ${follow})`, async () => {
    const base = await tempDir('livedex-fs-escape-noproc-');
    const { docs, outside } = await layout(base.path);
    try {
      const rootReal = await realpath(docs);
      const file = join(docs, 'sub/passwd');
      const boundary = { rootReal, followLinks: follow, excluded: [], procFd: false };
      const read = async () => new TextDecoder().decode(await readInside(file, join(rootReal, 'sub/passwd'), boundary));
      assert.equal(await read(), 'insideword passwd');
      await rename(join(docs, 'sub'), join(docs, 'held'));
      await symlink(outside, join(docs, 'sub'));
      await assert.rejects(read(), (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && !String(err.message).includes(SECRET));
      await restore(docs);
      assert.equal(await read(), 'insideword passwd');
    } finally {
      await base.cleanup();
    }
  });

  it(`a read racing the swap in a tight loop never returns a byte from outside (follow_symlinks: ${follow})`, async () => {
    const base = await tempDir('livedex-fs-escape-read-');
    const { docs, outside } = await layout(base.path);
    const docsByKey = new Map<string, SourceDocument>();
    const controller = new AbortController();
    const ctx: SourceContext = {
      knownVersions: async () => new Map(),
      emit: async (changes: Change[]) => {
        for (const c of changes) if (c.kind === 'upsert') docsByKey.set(c.doc.key, c.doc);
      },
      getCursor: async () => null,
      setCursor: async () => {},
      settled: async () => {},
      reportHealth: () => {},
      logger: silentLogger,
      signal: controller.signal,
    };
    const source = new FolderSource({ path: docs, follow_symlinks: follow, reconcile_interval_s: 0 });
    await source.start(ctx);
    try {
      const doc = docsByKey.get(join(docs, 'sub/passwd'))!;
      let leaked = 0;
      let refused = 0;
      let stop = false;
      const reader = (async () => {
        while (!stop) {
          try {
            if (new TextDecoder().decode(await doc.read()).includes(SECRET)) leaked++;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') refused++;
          }
        }
      })();
      const until = Date.now() + RACE_MS;
      while (Date.now() < until) await swapOnce(docs, outside);
      stop = true;
      await reader;
      assert.equal(leaked, 0);
      assert.ok(refused > 0, 'the race was never met');
      assert.equal(new TextDecoder().decode(await doc.read()), 'insideword passwd');
    } finally {
      controller.abort();
      await source.stop();
      await base.cleanup();
    }
  });
}
