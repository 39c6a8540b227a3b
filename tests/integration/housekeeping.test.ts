/** Housekeeping through a running server: the embedding cache and the change log stay bounded over edits, a revert within the grace period costs no embedding, and a reset store is said loudly. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openEngine } from '../../src/engine/index.js';
import type { HousekeepingCounts } from '../../src/engine/types.js';
import { createLogger } from '../../src/core/log.js';
import { embedCounter, retrieve, runCli, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

/** The store's counts, read through a read-only engine beside the server. */
async function counts(dataDir: string): Promise<HousekeepingCounts & { chunks: number; lastSeq: number }> {
  const engine = await openEngine(dataDir, { readOnly: true });
  try {
    const [c, s] = await Promise.all([engine.housekeepingCounts(), engine.stats()]);
    return { ...c, chunks: s.chunks, lastSeq: s.lastSeq };
  } finally {
    await engine.close();
  }
}

const FILES = 5;
const text = (file: number, cycle: number) => `File ${file} revision ${cycle}: the word tok${file}x${cycle} marks this edit.\n`;

/** Writes revision `cycle` of file `file` and waits until it is the one served. */
async function edit(server: TestServer, folder: string, file: number, cycle: number, body = text(file, cycle)): Promise<void> {
  const path = join(folder, `f${file}.md`);
  await writeFile(path, body);
  const token = /tok\d+x\d+/.exec(body)![0];
  await waitFor(async () => (await retrieve(server.url, { query: token, k: 1, mode: 'bm25', filepath_globpattern: path })).length === 1, 20_000);
}

/** A folder of `files` files served for the specs of one describe block: started before them, closed after. */
function servedFolder(files: number, config: Record<string, unknown>): { folder: string; data: string; server: TestServer } {
  const served = {} as { folder: string; data: string; server: TestServer };
  let folder: { path: string; cleanup(): Promise<void> } | undefined;
  let data: { path: string; cleanup(): Promise<void> } | undefined;
  before(async () => {
    folder = await tempDir('livedex-hk-docs-');
    data = await tempDir('livedex-hk-data-');
    served.folder = folder.path;
    served.data = data.path;
    for (let f = 0; f < files; f++) await writeFile(join(folder.path, `f${f}.md`), text(f, 0));
    served.server = await startServer(folder.path, { dataDir: data.path, config });
    await served.server.ready;
  });
  after(async () => {
    await served.server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });
  return served;
}

describe('housekeeping over edit cycles', () => {
  const served = servedFolder(FILES, {
    embedder: 'counting',
    sandbox: { enabled: false },
    pipeline: { snapshot_interval_s: 0.2 },
    // Batches of 3 rows: every pass takes several, as a large store's would.
    housekeeping: { interval_s: 0.2, cache_grace_s: 0.5, batch: 3 },
  });

  it('keeps one cache entry per live chunk and an empty change log once the grace period has passed', async () => {
    const cycles = 20;
    let peak = 0;
    for (let c = 1; c <= cycles; c++) {
      for (let f = 0; f < FILES; f++) await edit(served.server, served.folder, f, c);
      peak = Math.max(peak, (await counts(served.data)).embeddings);
    }
    const before = await counts(served.data);
    assert.ok(before.lastSeq >= FILES * (cycles + 1), `every edit was committed (change log at ${before.lastSeq})`);
    // Settled: every index has applied everything, and every replaced text is past its grace period.
    const { value: settled } = await waitFor(async () => {
      const c = await counts(served.data);
      if (c.embeddings !== c.chunks || c.changeLog !== 0) throw new Error(`not settled: ${JSON.stringify(c)}`);
      return c;
    }, 20_000, 100);
    assert.equal(settled!.chunks, FILES, 'one chunk per file');
    assert.equal(settled!.embeddingsUnused, 0);
    assert.ok(peak < FILES * cycles, `the cache never held every revision at once (peak ${peak} entries for ${FILES * (cycles + 1)} revisions)`);
    const metrics = await (await fetch(`${served.server.url}/metrics`)).text();
    const pruned = (kind: string) => Number(new RegExp(`^livedex_store_pruned_total\\{kind="${kind}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
    assert.ok(pruned('embeddings') >= FILES * cycles - FILES, `/metrics counts the pruned embeddings (${pruned('embeddings')})`);
    assert.ok(pruned('change_log') >= FILES * cycles, `/metrics counts the pruned change-log entries (${pruned('change_log')})`);
    // The live chunks still answer, from their own embeddings.
    const hits = await retrieve(served.server.url, { query: `tok0x${cycles}`, k: 1, mode: 'vector' });
    assert.match(hits[0]!.text, new RegExp(`tok0x${cycles}`));
  });

  it('prunes while documents are edited without a pause, and every live chunk keeps its vector', async () => {
    const metricsPruned = async () => Number(/^livedex_store_pruned_total\{kind="embeddings"\} (\d+)/m.exec(await (await fetch(`${served.server.url}/metrics`)).text())?.[1] ?? 0);
    const before = await metricsPruned();
    let prunedWhileBusy = 0;
    let written = 0;
    const started = Date.now();
    // Each file is rewritten every few tens of ms, never quiet for the source's debounce: the source hands
    // it on every debounce_max_ms, and the pipeline looks up and commits all the while.
    for (let c = 200; Date.now() - started < 4000; c++) {
      await Promise.all(Array.from({ length: FILES }, (_, f) => writeFile(join(served.folder, `f${f}.md`), text(f, c))));
      written += FILES;
      await new Promise((r) => setTimeout(r, 30));
      prunedWhileBusy = (await metricsPruned()) - before;
    }
    assert.ok(prunedWhileBusy > 0, `entries were pruned while edits went on (${prunedWhileBusy} of ${written} revisions)`);
    const last = 200 + written / FILES - 1;
    for (let f = 0; f < FILES; f++) await edit(served.server, served.folder, f, last + 1);
    for (let f = 0; f < FILES; f++) {
      // Restricted to the file: a vector query returns its chunk only if the chunk has a vector
      // (across files, the hashing model's buckets can tie one file's token with another's).
      const hits = await retrieve(served.server.url, { query: `tok${f}x${last + 1}`, k: 1, mode: 'vector', filepath_globpattern: join(served.folder, `f${f}.md`) });
      assert.match(hits[0]?.text ?? '', new RegExp(`tok${f}x${last + 1}`), `file ${f} is found by its vector`);
    }
    // And the store has each live chunk's vector (a restart rebuilds from it).
    const { value: settled } = await waitFor(async () => {
      const c = await counts(served.data);
      return c.embeddingsUnused === 0 && c.embeddings === c.chunks ? c : null;
    }, 20_000, 100);
    assert.equal(settled!.chunks, FILES);
  });

  it('embeds a reverted text again once its grace period has passed', async () => {
    await edit(served.server, served.folder, 0, 100);
    await edit(served.server, served.folder, 0, 101);
    // Revision 100 goes once a pass has seen it unused for longer than the grace period.
    await waitFor(async () => (await counts(served.data)).embeddings === FILES, 20_000, 100);
    embedCounter.reset();
    await edit(served.server, served.folder, 0, 100);
    assert.equal(embedCounter.texts, 1, 'the old text was embedded again');
  });
});

describe('a vector snapshot asked for while a commit holds the write lock', () => {
  // No timer: the spec asks for every snapshot itself.
  const served = servedFolder(1, { sandbox: { enabled: false }, pipeline: { snapshot_interval_s: 0 }, housekeeping: { interval_s: 0 } });

  it('records the sequence of the commit it follows, so the change log can be pruned up to the last commit', async () => {
    const { index } = served.server;
    for (let c = 1; c <= 5; c++) {
      // Asks for a snapshot on every turn of the event loop while the edit is committed:
      // some ask while the commit holds the lock and get it the moment the commit lets go.
      let asking = true;
      const ask = (async () => {
        while (asking) {
          await index.snapshot();
          await new Promise((r) => setImmediate(r));
        }
      })();
      await edit(served.server, served.folder, 0, c);
      await index.pipeline.idle();
      asking = false;
      await ask;
      await index.snapshot();
      assert.equal(index.vectors.snapshotSeq, index.pipeline.lastSeq, `after edit ${c}, the snapshot is at the last commit`);
    }
  });
});

describe('a revert within the grace period', () => {
  const served = servedFolder(FILES, { embedder: 'counting', sandbox: { enabled: false }, housekeeping: { interval_s: 0.2, cache_grace_s: 3600 } });

  it('is served from the cache: the replaced text was kept, only marked unused', async () => {
    await edit(served.server, served.folder, 0, 1);
    await edit(served.server, served.folder, 0, 2);
    // Passes run meanwhile: revision 1 is seen unused (revision 0 too), and kept.
    await waitFor(async () => (await counts(served.data)).embeddingsUnused === 2, 20_000, 100);
    embedCounter.reset();
    await edit(served.server, served.folder, 0, 1);
    assert.equal(embedCounter.texts, 0, 'the revert was not embedded again');
    const { value } = await waitFor(async () => {
      const c = await counts(served.data);
      return c.embeddingsUnused === 2 ? c : null;
    }, 20_000, 100);
    assert.equal(value!.embeddings, FILES + 2, 'revisions 0 and 2 of f0 wait out their grace period');
  });
});

describe('housekeeping through a model change', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };

  before(async () => {
    folder = await tempDir('livedex-hk-docs-');
    data = await tempDir('livedex-hk-data-');
    for (let f = 0; f < 12; f++) await writeFile(join(folder.path, `f${f}.md`), text(f, 0));
  });

  after(async () => {
    await folder.cleanup();
    await data.cleanup();
  });

  it("keeps the serving and the building model's entries, and lets the previous model's go once the switch is done", async () => {
    const first = await startServer(folder.path, { dataDir: data.path, config: { sandbox: { enabled: false } } });
    await first.ready;
    await first.close();

    // No grace at all: an entry goes at the first pass that finds it unused.
    const second = await startServer(folder.path, {
      dataDir: data.path,
      config: {
        sandbox: { enabled: false },
        embedder: { 'slow-hashing': { dimensions: 256, delay_ms: 60 } },
        pipeline: { embed_batch: 2 },
        housekeeping: { interval_s: 0.05, cache_grace_s: 0 },
      },
    });
    try {
      await second.ready;
      const samples: number[] = [];
      while (second.index.model.building) {
        const c = await counts(data.path);
        // The serving model's 12 entries, plus what the build has embedded so far.
        samples.push(c.embeddings - c.chunks);
        await new Promise((r) => setTimeout(r, 30));
      }
      await second.index.modelSwitched();
      assert.ok(samples.length > 2 && samples.every((n) => n >= 0), `the serving model kept its entries during the build: ${samples.join(' ')}`);
      assert.ok(samples.some((n) => n > 0), 'the build stored entries of its own while passes ran');
      const { value } = await waitFor(async () => {
        const c = await counts(data.path);
        return c.embeddings === c.chunks ? c : null;
      }, 20_000, 50);
      assert.equal(value!.chunks, 12);
      // The entries left are the new model's: an edit reuses them, embedding only its new text.
      embedCounter.reset();
      await edit(second, folder.path, 3, 1);
      assert.equal(embedCounter.texts, 1);
    } finally {
      await second.close();
    }
  });
});

describe('a reset store', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };

  before(async () => {
    folder = await tempDir('livedex-reset-docs-');
    data = await tempDir('livedex-reset-data-');
    for (let f = 0; f < 3; f++) await writeFile(join(folder.path, `f${f}.md`), text(f, 0));
    const first = await startServer(folder.path, { dataDir: data.path, config: { sandbox: { enabled: false } } });
    await first.ready;
    await first.close();
  });

  after(async () => {
    await folder.cleanup();
    await data.cleanup();
  });

  const doctor = async () => {
    const cli = runCli(['doctor', '--data-dir', data.path]);
    const code = await cli.exited;
    return { code, out: cli.stdout.join('') + cli.stderr.join('') };
  };

  it('is a doctor failure before the next start, and a loud error and a doctor warning after it', async () => {
    await truncate(join(data.path, 'store.sqlite'), 0);
    await rm(join(data.path, 'store.sqlite-wal'), { force: true });

    const before = await doctor();
    assert.equal(before.code, 1, before.out);
    assert.match(before.out, /FAIL {2}store: the store was reset: .*store\.sqlite was empty while the text index reflects sequence \d+/);
    assert.match(before.out, /At the next start the indexes are rebuilt/);
    assert.match(before.out, /→ restore .*store\.sqlite from a backup/);

    const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
    const logger = createLogger({ level: 'info', write: (line) => lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const server = await startServer(folder.path, { dataDir: data.path, logger, config: { sandbox: { enabled: false } } });
    try {
      await server.ready;
      const reset = lines.find((l) => /the store was reset/.test(l.msg));
      assert.ok(reset, `a reset line among ${JSON.stringify(lines.map((l) => l.msg))}`);
      assert.equal(reset.level, 'error');
      assert.match(reset.msg, /store\.sqlite was empty while the text index reflects sequence \d+ and the vector snapshot \d+; likely it was truncated, deleted or replaced/);
      assert.match(reset.msg, /documents pushed over HTTP are lost unless pushed again/);
      assert.equal(reset.store, 'empty');
      // Re-indexed all the same.
      assert.equal((await retrieve(server.url, { query: 'tok2x0', k: 1, mode: 'bm25' })).length, 1);
    } finally {
      await server.close();
    }

    const afterStart = await doctor();
    assert.equal(afterStart.code, 0, afterStart.out);
    assert.match(afterStart.out, /warn {2}store reset: found at the start on \d{4}-\d\d-\d\dT.*: the store was reset: .*The indexes were rebuilt/);
  });

  it('is not reported for a new data dir or a plain restart', async () => {
    const fresh = await tempDir('livedex-fresh-data-');
    try {
      const lines: string[] = [];
      const logger = createLogger({ level: 'info', write: (line) => lines.push(line) });
      for (let i = 0; i < 2; i++) {
        const server = await startServer(folder.path, { dataDir: fresh.path, logger, config: { sandbox: { enabled: false } } });
        await server.ready;
        await server.close();
      }
      assert.ok(!lines.some((l) => /store was reset/.test(l)), lines.join('\n'));
      const cli = runCli(['doctor', '--data-dir', fresh.path]);
      await cli.exited;
      assert.doesNotMatch(cli.stdout.join(''), /store reset/);
    } finally {
      await fresh.cleanup();
    }
  });
});
