/** Commits during a bulk sync: grouped in batches, while a live edit goes ahead and is queryable within a second. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../src/core/log.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { get, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const FILES = 10_000;

interface Line {
  level: string;
  msg: string;
  [field: string]: unknown;
}

async function commits(base: string): Promise<{ edit: number; sync: number }> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  const m = parsePrometheus(await res.text());
  return { edit: m.value('livedex_commits_total', { lane: 'edit' }), sync: m.value('livedex_commits_total', { lane: 'sync' }) };
}

interface Status {
  ready: boolean;
  documents: { indexed: number };
}

/** `FILES` notes in directories of 100 (`d<d>/n<i>.txt`), each a sentence of its own. */
async function writeNotes(root: string): Promise<void> {
  for (let d = 0; d < FILES / 100; d++) {
    const dir = join(root, `d${d}`);
    await mkdir(dir);
    await Promise.all(Array.from({ length: 100 }, (_, i) => writeFile(join(dir, `n${i}.txt`), `Note ${d * 100 + i} of the bulk: a small file about item${d * 100 + i}.\n`)));
  }
}

describe('commits during a bulk sync of 10,000 files', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  const lines: Line[] = [];
  /** What the edit made during the sync measured: write → first hit, and the sync's state then. */
  let edit: { ms: number; indexedThen: number; readyThen: boolean; indexedAtWrite: number };

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeNotes(folder.path);
    const logger = createLogger({ level: 'debug', write: (line) => lines.push(JSON.parse(line) as Line) });
    server = await startServer(folder.path, { dataDir: data.path, logger });

    // Once the sync is under way (some documents queryable, most not), one other file is written.
    const started = await waitFor(async () => {
      const s = (await get<Status>(server.url, '/v1/status')).body;
      return s.documents.indexed >= 200 ? s : null;
    }, 120_000, 10);
    const t0 = performance.now();
    await writeFile(join(folder.path, 'edited.txt'), 'The quokka ledger was edited while the bulk sync ran.\n');
    await waitFor(async () => (await retrieve(server.url, { query: 'quokka ledger', k: 1, mode: 'bm25' })).some((h) => String(h.metadata.path).endsWith('edited.txt')), 30_000, 10);
    const ms = performance.now() - t0;
    const then = (await get<Status>(server.url, '/v1/status')).body;
    edit = { ms, indexedThen: then.documents.indexed, readyThen: then.ready, indexedAtWrite: started.value!.documents.indexed };
    await server.ready;
  });

  after(async () => {
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('makes an edit seen by the watcher queryable within 1 s, ahead of the thousands of files still queued', () => {
    assert.ok(edit.ms <= 1000, `the edit took ${Math.round(edit.ms)} ms from write to a query hit`);
    // The sync had not finished when the edit answered: it went ahead of the backlog.
    assert.equal(edit.readyThen, false, 'the bulk sync was still running when the edit became queryable');
    assert.ok(edit.indexedThen < FILES, `${edit.indexedThen} of ${FILES} files were indexed when the edit answered`);
  });

  it('commits the bulk in far fewer commits than files, and the edit in a commit of its own', async () => {
    const c = await commits(server.url);
    assert.ok(c.sync >= 1 && c.sync <= FILES / 25, `${c.sync} sync commits for ${FILES} files`);
    assert.ok(c.edit >= 1, 'the edit was committed in the edit lane');
    const indexed = (await get<Status>(server.url, '/v1/status')).body.documents.indexed;
    assert.equal(indexed, FILES + 1);
  });

  it('logs each bulk document at debug with progress lines at info, and the edit at info', () => {
    const indexed = lines.filter((l) => l.msg === 'document indexed');
    assert.equal(indexed.length, FILES + 1, 'one line per document');
    const loud = indexed.filter((l) => l.level === 'info');
    assert.ok(loud.some((l) => String(l.key).endsWith('edited.txt')), 'the edit is logged at info');
    assert.ok(loud.length <= 10, `${loud.length} bulk documents logged at info`);
    const progress = lines.filter((l) => l.msg === 'ingest progress' && l.level === 'info');
    assert.ok(progress.length >= 1, 'a progress line at info');
    const summed = progress.reduce((n, l) => n + (l.documents as number), 0);
    assert.ok(summed >= FILES - 10 && summed <= FILES, `the progress lines count ${summed} documents`);
    assert.ok(progress.every((l) => typeof l.chunks_per_s === 'number' && typeof l.documents_per_s === 'number'));
  });

  it('commits a lone edit after the sync at once, logged at info', async () => {
    const before = await commits(server.url);
    const t0 = performance.now();
    await writeFile(join(folder.path, 'lone.txt'), 'A lone wombat edit after the sync.\n');
    await waitFor(async () => (await retrieve(server.url, { query: 'wombat', k: 1, mode: 'bm25' })).length > 0, 10_000, 10);
    const ms = performance.now() - t0;
    const afterEdit = await commits(server.url);
    assert.equal(afterEdit.edit + afterEdit.sync - before.edit - before.sync, 1, 'one commit for the edit');
    assert.ok(ms <= 1000, `the lone edit took ${Math.round(ms)} ms`);
    const line = lines.find((l) => l.msg === 'document indexed' && String(l.key).endsWith('lone.txt'));
    assert.equal(line?.level, 'info');
  });
});

describe('edits of existing files during a bulk first sync of 10,000 files', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  /** For each edit: write → first query hit, whether the sync still ran then, and the note it rewrote. */
  const edits: Record<'passed' | 'ahead', { ms: number; readyThen: boolean; note: number; token: string }> = {} as never;

  const notePath = (n: number) => join(folder.path, `d${Math.floor(n / 100)}`, `n${n % 100}.txt`);
  const findsNote = async (query: string, n: number) =>
    (await retrieve(server.url, { query, k: 3, mode: 'bm25' })).some((h) => String(h.metadata.path).endsWith(`d${Math.floor(n / 100)}/n${n % 100}.txt`));

  /** Rewrites note `n` with `token` and waits until a query finds it there; measured from the write. */
  async function edit(which: 'passed' | 'ahead', n: number, token: string): Promise<void> {
    const t0 = performance.now();
    await writeFile(notePath(n), `The ${token} ledger replaced this note while the bulk sync ran.\n`);
    await waitFor(() => findsNote(token, n), 60_000, 10);
    const ms = performance.now() - t0;
    edits[which] = { ms, readyThen: (await get<Status>(server.url, '/v1/status')).body.ready, note: n, token };
  }

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeNotes(folder.path);
    server = await startServer(folder.path, { dataDir: data.path });
    await waitFor(async () => ((await get<Status>(server.url, '/v1/status')).body.documents.indexed >= 200 ? true : null), 120_000, 10);
    // A note the sync already committed, and one of a directory none of whose notes is queryable yet.
    const first = (await retrieve(server.url, { query: 'bulk', k: 1, mode: 'bm25' }))[0];
    const at = /\/d(\d+)\/n(\d+)\.txt$/.exec(String(first?.metadata.path));
    const passed = 100 * Number(at?.[1]) + Number(at?.[2]);
    let ahead = -1;
    for (let d = FILES / 100 - 1; d >= 0 && ahead < 0; d--) {
      const hits = await retrieve(server.url, { query: `item${d * 100} item${d * 100 + 50} item${d * 100 + 99}`, k: 3, mode: 'bm25' });
      if (hits.length === 0) ahead = d * 100 + 50;
    }
    assert.ok(Number.isInteger(passed) && ahead >= 0, 'found a note already indexed and a directory not reached yet');
    await Promise.all([edit('ahead', ahead, 'narwhal'), edit('passed', passed, 'aardvark')]);
    await server.ready;
  });

  after(async () => {
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('makes an edit of a file the listing has not reached queryable ahead of the backlog', (t) => {
    const e = edits.ahead;
    t.diagnostic(`write → queryable ${Math.round(e.ms)} ms (note ${e.note})`);
    assert.equal(e.readyThen, false, 'the edit answered while the bulk sync still ran');
    // The 1 s goal is measured by bench:freshness; here a bound a loaded machine keeps, far below the backlog's wait.
    assert.ok(e.ms <= 3000, `the edit took ${Math.round(e.ms)} ms from write to a query hit`);
  });

  it('makes an edit of a file the listing already handed over queryable ahead of the backlog', (t) => {
    const e = edits.passed;
    t.diagnostic(`write → queryable ${Math.round(e.ms)} ms (note ${e.note})`);
    assert.equal(e.readyThen, false, 'the edit answered while the bulk sync still ran');
    assert.ok(e.ms <= 3000, `the edit took ${Math.round(e.ms)} ms from write to a query hit`);
  });

  it('keeps the edited content after the sync: no listed version is committed over an edit', async () => {
    for (const e of Object.values(edits)) {
      assert.ok(await findsNote(e.token, e.note), `note ${e.note} still answers with its edit`);
      assert.equal(await findsNote(`item${e.note}`, e.note), false, `note ${e.note} no longer answers with its listed text`);
    }
    const status = (await get<Status>(server.url, '/v1/status')).body;
    assert.equal(status.documents.indexed, FILES);
  });
});
