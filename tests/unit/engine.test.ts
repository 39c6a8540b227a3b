import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openEngine } from '../../src/engine/index.js';
import type { DocumentOp, Engine } from '../../src/engine/types.js';
import { LivedexError } from '../../src/core/errors.js';
import { fakeEmbedding, makeChunk, rng, sha256 } from '../helpers/engine-fixtures.js';

const MODEL = 'test-model';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WRITER = fileURLToPath(new URL('../helpers/engine-writer.ts', import.meta.url));

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'livedex-engine-'));
  dirs.push(d);
  return d;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function upsert(key: string, texts: string[], extra: Partial<Extract<DocumentOp, { op: 'upsert' }>> = {}): DocumentOp {
  return {
    op: 'upsert',
    key,
    version: extra.version ?? 'v1',
    contentHash: extra.contentHash ?? sha256(texts.join('\n')),
    metadata: extra.metadata ?? { path: key },
    chunks: extra.chunks ?? texts.map((t, i) => makeChunk(t, i)),
  };
}

async function withEngine<T>(fn: (engine: Engine, dir: string) => Promise<T>): Promise<T> {
  const dir = await tempDir();
  const engine = await openEngine(dir);
  try {
    return await fn(engine, dir);
  } finally {
    await engine.close();
  }
}

/** Every chunk id in the store, by paging listChunks. */
async function allChunkIds(engine: Engine): Promise<number[]> {
  const ids: number[] = [];
  let after = 0;
  for (;;) {
    const page = await engine.listChunks(after, 100);
    if (page.length === 0) return ids;
    ids.push(...page.map((c) => c.id));
    after = page[page.length - 1]!.id;
  }
}

function runChild(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawn(process.execPath, ['--import', 'tsx', WRITER, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

function collect(child: ReturnType<typeof runChild>): { out: () => string; err: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { out: () => out, err: () => err, exit };
}

/** Asserts that BM25 over the common word finds every stored chunk exactly once, and nothing else. */
async function assertTextIndexMatchesStore(engine: Engine, word = 'common'): Promise<void> {
  const stats = await engine.stats();
  assert.equal(stats.textIndexSeq, stats.lastSeq, 'text index caught up with the change log');
  const stored = (await allChunkIds(engine)).sort((a, b) => a - b);
  const hits = await engine.searchText(word, 1_000_000);
  const found = hits.map((h) => h.id).sort((a, b) => a - b);
  assert.equal(new Set(found).size, found.length, 'no chunk is found twice');
  assert.deepEqual(found, stored, 'BM25 finds exactly the stored chunks');
}

describe('engine: BM25 over committed chunks', () => {
  it('finds an upserted chunk, with English stemming', async () => {
    await withEngine(async (engine) => {
      const res = await engine.commit(MODEL, [
        upsert('a.md', ['The dog runs in the park every morning.', 'Cats sleep all day long.']),
        upsert('b.md', ['A recipe for tomato soup.']),
      ]);
      assert.equal(res.documents.length, 2);
      const [a] = res.documents;
      assert.equal(a!.key, 'a.md');
      assert.equal(a!.added.length, 2);
      assert.deepEqual(a!.current, a!.added);
      assert.deepEqual(a!.removed, []);
      assert.ok(res.seq >= 2);

      const hits = await engine.searchText('running', 10);
      assert.equal(hits.length, 1);
      assert.equal(hits[0]!.id, a!.current[0]);
      assert.ok(hits[0]!.score > 0);

      const cats = await engine.searchText('CAT sleeping', 10);
      assert.deepEqual(cats.map((h) => h.id), [a!.current[1]]);

      // Descending scores; a chunk matching more terms ranks first.
      const both = await engine.searchText('dog soup tomato', 10);
      assert.equal(both.length, 2);
      assert.ok(both[0]!.score >= both[1]!.score);
      assert.equal(both[0]!.id, res.documents[1]!.current[0]);
    });
  });

  it('never fails to parse a query: syntax characters are just words', async () => {
    await withEngine(async (engine) => {
      const res = await engine.commit(MODEL, [upsert('hosts', ['Edit /etc/hosts to map a name: title AND body (or not).'])]);
      const id = res.documents[0]!.current[0];
      const queries = [
        'foo:bar', 'title:', '"unbalanced', '(a AND b', 'AND', 'OR NOT', '/etc/hosts', '/regex.*/', '+-()[]{}^~*!',
        'IN [a b', 'x^2', 'a~', 'field:"x', '\\', '{ } [ ]', '', '   ', '🙂', '**', 'a'.repeat(500),
      ];
      for (const q of queries) {
        const hits = await engine.searchText(q, 5);
        assert.ok(Array.isArray(hits), `query ${JSON.stringify(q)}`);
      }
      assert.deepEqual((await engine.searchText('/etc/hosts', 5)).map((h) => h.id), [id]);
      assert.deepEqual((await engine.searchText('title:', 5)).map((h) => h.id), [id]);
      assert.deepEqual((await engine.searchText('"map', 5)).map((h) => h.id), [id]);
      assert.deepEqual(await engine.searchText('', 5), []);
      assert.deepEqual(await engine.searchText('?!.,', 5), []);
      assert.deepEqual(await engine.searchText('hosts', 0), []);
    });
  });

  it('restricts the search to allowedIds inside it: k low-ranked allowed chunks come back', async () => {
    await withEngine(async (engine) => {
      const ops: DocumentOp[] = [];
      for (let d = 0; d < 100; d++) {
        const texts = Array.from({ length: 10 }, (_, i) => `apple apple apple apple orchard number ${d}-${i}`);
        ops.push(upsert(`doc-${d}`, texts));
      }
      // Five weak matches: one "apple" buried in a long text.
      const filler = Array.from({ length: 60 }, (_, i) => `filler${i}`).join(' ');
      ops.push(upsert('weak', Array.from({ length: 5 }, (_, i) => `${filler} apple weak${i}`)));
      const res = await engine.commit(MODEL, ops);
      const weakIds = res.documents.at(-1)!.current;
      assert.equal((await engine.stats()).chunks, 1005);

      const top = await engine.searchText('apple', 5);
      assert.equal(top.length, 5);
      assert.ok(top.every((h) => !weakIds.includes(h.id)), 'the weak chunks rank low');

      const filtered = await engine.searchText('apple', 5, weakIds);
      assert.deepEqual(filtered.map((h) => h.id).sort((a, b) => a - b), [...weakIds].sort((a, b) => a - b));

      // Allowed ids that do not match the text are not returned; unknown ids are ignored.
      const strong = res.documents[0]!.current[0]!;
      const mixed = await engine.searchText('weak0 orchard', 10, [weakIds[0]!, strong, 999_999]);
      assert.deepEqual(mixed.map((h) => h.id).sort((a, b) => a - b), [weakIds[0]!, strong].sort((a, b) => a - b));
      assert.deepEqual(await engine.searchText('apple', 5, []), []);
      assert.deepEqual(await engine.searchText('apple', 5, [999_999]), []);
      assert.equal((await engine.searchText('apple', 5000, null)).length, 1005);
    });
  });
});

describe('engine: commits and the chunk diff', () => {
  it('re-upsert with one changed chunk keeps the other ids', async () => {
    await withEngine(async (engine) => {
      const first = await engine.commit(MODEL, [upsert('doc', ['one fish', 'two fish', 'red fish', 'blue fish'])]);
      const ids = first.documents[0]!.current;
      const second = await engine.commit(MODEL, [upsert('doc', ['one fish', 'two fish', 'green fish', 'blue fish'], { version: 'v2' })]);
      const d = second.documents[0]!;
      assert.deepEqual(d.removed, [ids[2]]);
      assert.equal(d.added.length, 1);
      assert.ok(!ids.includes(d.added[0]!), 'ids are never reused');
      assert.deepEqual(d.current, [ids[0], ids[1], d.added[0], ids[3]]);
      assert.ok(second.seq > first.seq);

      assert.deepEqual(await engine.searchText('red', 10), []);
      assert.deepEqual((await engine.searchText('green', 10)).map((h) => h.id), d.added);
      const doc = await engine.getDocument('doc');
      assert.equal(doc!.version, 'v2');
      assert.equal(doc!.chunkCount, 4);

      // Reordering keeps every id and updates ordinals; duplicates match as a multiset.
      const third = await engine.commit(MODEL, [upsert('doc', ['blue fish', 'one fish', 'one fish'], { version: 'v3' })]);
      const t = third.documents[0]!;
      assert.deepEqual(t.current.slice(0, 2), [ids[3], ids[0]]);
      assert.equal(t.added.length, 1);
      assert.deepEqual(t.removed.sort((a, b) => a - b), [ids[1], d.added[0]].sort((a, b) => a! - b!));
      const rows = await engine.getChunks(t.current);
      assert.deepEqual(rows.find((r) => r.id === ids[3])!.ordinal, 0);
      assert.equal((await engine.searchText('fish', 10)).length, 3);
    });
  });

  it('delete removes the document from BM25 and from the store', async () => {
    await withEngine(async (engine) => {
      const res = await engine.commit(MODEL, [upsert('gone', ['ephemeral words here']), upsert('kept', ['permanent words here'])]);
      const goneIds = res.documents[0]!.current;
      const del = await engine.commit(MODEL, [{ op: 'delete', key: 'gone' }]);
      assert.deepEqual(del.documents, [{ key: 'gone', removed: goneIds, added: [], current: [] }]);
      assert.ok(del.seq > res.seq);
      assert.deepEqual(await engine.searchText('ephemeral', 10), []);
      assert.equal((await engine.searchText('words', 10)).length, 1);
      assert.equal(await engine.getDocument('gone'), null);
      assert.deepEqual(await engine.getChunks(goneIds), []);
      // Deleting an unknown key writes nothing: seq stays the current last one.
      const none = await engine.commit(MODEL, [{ op: 'delete', key: 'never-was' }]);
      assert.equal(none.seq, del.seq);
      assert.deepEqual(none.documents[0]!.removed, []);
    });
  });

  it('rejects a whole batch when a chunk has no embedding and none is cached', async () => {
    await withEngine(async (engine) => {
      await engine.commit(MODEL, [upsert('cached', ['known text'])]);
      const before = await engine.stats();
      await assert.rejects(
        engine.commit(MODEL, [
          upsert('ok', ['fine text']),
          upsert('bad', [], { chunks: [makeChunk('never embedded text', 0, { embed: false })] }),
        ]),
        (err: unknown) => {
          assert.ok(err instanceof LivedexError);
          assert.equal(err.code, 'engine_error');
          assert.match(err.message, /no embedding/);
          assert.match(err.message, /"bad"/);
          assert.ok(err.cause instanceof Error);
          return true;
        },
      );
      assert.deepEqual(await engine.stats(), before);
      assert.equal(await engine.getDocument('ok'), null);
      assert.deepEqual(await engine.lookupEmbeddings(MODEL, [sha256('fine text')]), [null], 'no embedding written either');

      // Without an embedding but cached for this model: accepted. Under another model: rejected.
      const reuse = await engine.commit(MODEL, [upsert('again', [], { chunks: [makeChunk('known text', 0, { embed: false })] })]);
      assert.equal(reuse.documents[0]!.added.length, 1);
      await assert.rejects(engine.commit('other-model', [upsert('x', [], { chunks: [makeChunk('known text', 0, { embed: false })] })]), /no embedding/);
      // An embedding provided elsewhere in the same batch counts.
      const same = await engine.commit(MODEL, [
        upsert('p', ['shared new text']),
        upsert('q', [], { chunks: [makeChunk('shared new text', 0, { embed: false })] }),
      ]);
      assert.equal(same.documents.length, 2);
    });
  });

  it('mark records pending and failed without touching chunks', async () => {
    await withEngine(async (engine) => {
      // A new key gets a row either way.
      await engine.commit(MODEL, [
        { op: 'mark', key: 'new-pending', version: 'v9', status: 'pending', metadata: { path: 'new-pending' } },
        { op: 'mark', key: 'new-failed', version: 'v3', status: 'failed', error: 'parse error: bad pdf', metadata: { path: 'new-failed' } },
      ]);
      const np = await engine.getDocument('new-pending');
      assert.deepEqual(
        { ...np, seenAt: typeof np!.seenAt },
        { key: 'new-pending', version: '', contentHash: null, status: 'pending', error: null, metadata: { path: 'new-pending' }, chunkCount: 0, seenAt: 'number', indexedAt: null },
      );
      const nf = await engine.getDocument('new-failed');
      assert.equal(nf!.status, 'failed');
      assert.equal(nf!.version, 'v3');
      assert.equal(nf!.error, 'parse error: bad pdf');

      // An indexed document marked pending keeps its version and keeps serving.
      const res = await engine.commit(MODEL, [upsert('live', ['still searchable content'], { version: 'v1' })]);
      const seqBefore = res.seq;
      const marked = await engine.commit(MODEL, [{ op: 'mark', key: 'live', version: 'v2', status: 'pending', metadata: { path: 'live' } }]);
      assert.equal(marked.seq, seqBefore, 'mark writes no change-log entry');
      assert.deepEqual(marked.documents[0]!.current, res.documents[0]!.current);
      let live = await engine.getDocument('live');
      assert.equal(live!.status, 'pending');
      assert.equal(live!.version, 'v1');
      assert.equal(live!.chunkCount, 1);
      assert.equal(live!.contentHash, sha256('still searchable content'));
      assert.equal((await engine.searchText('searchable', 5)).length, 1);

      // Failed stores the version and the reason; chunks still serve.
      await engine.commit(MODEL, [{ op: 'mark', key: 'live', version: 'v2', status: 'failed', error: 'timeout', metadata: { path: 'live' } }]);
      live = await engine.getDocument('live');
      assert.equal(live!.status, 'failed');
      assert.equal(live!.version, 'v2');
      assert.equal(live!.error, 'timeout');
      assert.equal(live!.chunkCount, 1);
      assert.equal((await engine.searchText('searchable', 5)).length, 1);

      // A later successful upsert clears the error.
      await engine.commit(MODEL, [upsert('live', ['fresh content'], { version: 'v3' })]);
      live = await engine.getDocument('live');
      assert.equal(live!.status, 'indexed');
      assert.equal(live!.error, null);
      assert.equal(live!.version, 'v3');

      const stats = await engine.stats();
      assert.equal(stats.documents, 3);
      assert.equal(stats.pending, 1);
      assert.equal(stats.failed, 1);
      assert.equal(stats.indexed, 1);
      assert.deepEqual((await engine.listDocuments()).map((d) => d.key), ['live', 'new-failed', 'new-pending']);

      await assert.rejects(engine.commit(MODEL, [{ op: 'mark', key: 'x', version: 'v', status: 'indexed' as 'pending', metadata: {} }]), /pending' or 'failed/);
    });
  });

  it('serves the embedding cache and chunk embeddings', async () => {
    await withEngine(async (engine) => {
      const res = await engine.commit(MODEL, [upsert('e', ['first text', 'second text'])]);
      const [id1, id2] = res.documents[0]!.current;
      const found = await engine.lookupEmbeddings(MODEL, [sha256('second text'), sha256('unknown'), sha256('first text')]);
      assert.deepEqual(found[0], fakeEmbedding('second text'));
      assert.equal(found[1], null);
      assert.deepEqual(found[2], fakeEmbedding('first text'));
      assert.equal(found[0]!.byteOffset, 0);
      assert.deepEqual(await engine.lookupEmbeddings('other-model', [sha256('first text')]), [null]);
      assert.deepEqual(await engine.lookupEmbeddings(MODEL, []), []);

      const byId = await engine.chunkEmbeddings(MODEL, [id2!, 424242, id1!]);
      assert.deepEqual(byId, [fakeEmbedding('second text'), null, fakeEmbedding('first text')]);
      assert.deepEqual(await engine.chunkEmbeddings('other-model', [id1!]), [null]);

      // Cache entries outlive the chunks that brought them.
      await engine.commit(MODEL, [{ op: 'delete', key: 'e' }]);
      assert.deepEqual((await engine.lookupEmbeddings(MODEL, [sha256('first text')]))[0], fakeEmbedding('first text'));
    });
  });

  it('defers a cache deletion only for a lookup that found an entry marked unused, not for every lookup', async () => {
    await withEngine(async (engine) => {
      await engine.commit(MODEL, [upsert('live', ['kept text']), upsert('gone', ['old text'])]);
      await engine.commit(MODEL, [{ op: 'delete', key: 'gone' }]);
      const pass = (quietLookups: number | null) => engine.pruneEmbeddings({ keepModels: [MODEL], graceMs: 0, limit: 100, quietLookups });
      // The first pass marks "old text" unused; nothing is past a grace period yet.
      assert.equal((await pass(null)).marked, 1);

      // Lookups that miss or find entries in use (what a busy pipeline does all the time) do not hold deletion back.
      const before = engine.markedLookupCount;
      await engine.lookupEmbeddings(MODEL, [sha256('kept text'), sha256('never seen')]);
      assert.equal(engine.markedLookupCount, before);
      // A lookup that finds the marked entry after the caller read the count does.
      await engine.lookupEmbeddings(MODEL, [sha256('old text')]);
      assert.equal(engine.markedLookupCount, before + 1);
      const held = await pass(before);
      assert.deepEqual([held.deleted, held.deferred], [0, 1], 'deferred: its document may be between lookup and commit');
      assert.notEqual((await engine.lookupEmbeddings(MODEL, [sha256('old text')]))[0], null);

      const quiet = engine.markedLookupCount;
      await engine.lookupEmbeddings(MODEL, [sha256('kept text')]);
      const done = await pass(quiet);
      assert.deepEqual([done.deleted, done.deferred], [1, 0]);
      assert.deepEqual(await engine.lookupEmbeddings(MODEL, [sha256('old text'), sha256('kept text')]).then((v) => v.map((x) => x !== null)), [false, true]);
    });
  });

  it('stores embeddings computed outside a commit (putEmbeddings) in the cache', async () => {
    await withEngine(async (engine) => {
      const v = new Float32Array([0.6, 0.8, 0]);
      await engine.putEmbeddings('other-model:v1', [{ textHash: 'h1', embedding: v }]);
      const [hit, miss] = await engine.lookupEmbeddings('other-model:v1', ['h1', 'h2']);
      assert.deepEqual([...hit!], [...v]);
      assert.equal(miss, null);
      assert.deepEqual(await engine.lookupEmbeddings('another-model', ['h1']), [null]);
      await assert.rejects(engine.putEmbeddings('m', [{ textHash: 'h3', embedding: new Float32Array(0) }]), /empty embedding/);
    });
  });

  it('loads the catalog in one call: every document whole in ordinal order, each chunk with the metadata listChunks gives it', async () => {
    await withEngine(async (engine) => {
      await engine.commit(MODEL, [
        upsert('b', ['alpha text', 'beta text', 'gamma text'], { chunks: [makeChunk('alpha text', 0, { metadata: { page: 1, path: 'b' } }), makeChunk('beta text', 1), makeChunk('gamma text', 2)] }),
        upsert('a', ['delta text', 'epsilon text']),
      ]);
      await engine.commit(MODEL, [upsert('a', ['zeta text', 'delta text'], { version: 'v2' })]);
      const listed = new Map<string, { id: number; ordinal: number; metadata: unknown }[]>();
      for (const c of await engine.listChunks(0, 100)) listed.set(c.docKey, [...(listed.get(c.docKey) ?? []), c]);
      const dump = await engine.loadCatalog();
      assert.deepEqual(dump.keys, ['a', 'b']);
      for (let d = 0; d < dump.keys.length; d++) {
        const want = listed.get(dump.keys[d]!)!.sort((x, y) => x.ordinal - y.ordinal);
        const ids = [...dump.ids.subarray(dump.starts[d], dump.starts[d + 1])];
        assert.deepEqual(ids, want.map((c) => c.id));
        assert.deepEqual(ids.map((_, i) => dump.metadata[dump.metaOf[dump.starts[d]! + i]!]), want.map((c) => c.metadata));
      }
      assert.equal(dump.starts.length, dump.keys.length + 1);
      assert.equal(dump.ids.length, 5);
    });
  });

  it('reads chunks by id in any order and pages through them', async () => {
    await withEngine(async (engine) => {
      const res = await engine.commit(MODEL, [
        upsert('p1', ['alpha text', 'beta text'], { chunks: [makeChunk('alpha text', 0, { metadata: { page: 1, path: 'p1' } }), makeChunk('beta text', 1)] }),
        upsert('p2', ['gamma text', 'delta text', 'epsilon text']),
      ]);
      const all = res.documents.flatMap((d) => d.current);
      const rows = await engine.getChunks([all[3]!, 999, all[0]!, all[3]!]);
      assert.deepEqual(rows.map((r) => r.id).sort((a, b) => a - b), [all[0], all[3]].sort((a, b) => a! - b!));
      const alpha = rows.find((r) => r.id === all[0])!;
      assert.deepEqual(alpha, { id: all[0], docKey: 'p1', ordinal: 0, text: 'alpha text', textHash: sha256('alpha text'), metadata: { page: 1, path: 'p1' } });

      const page1 = await engine.listChunks(0, 2);
      assert.deepEqual(page1.map((c) => c.id), all.slice(0, 2));
      assert.ok(!('text' in page1[0]!));
      const page2 = await engine.listChunks(page1[1]!.id, 10);
      assert.deepEqual(page2.map((c) => c.id), all.slice(2));
      assert.deepEqual(await engine.listChunks(all.at(-1)!, 10), []);
      assert.deepEqual(await engine.listChunks(0, 0), []);
    });
  });

  it('keeps cursors and reports stats', async () => {
    await withEngine(async (engine) => {
      assert.deepEqual(await engine.stats(), {
        documents: 0, pending: 0, indexed: 0, failed: 0, chunks: 0, lastSeq: 0, textIndexSeq: 0, lastModified: null, lastIndexed: null,
      });
      assert.equal(await engine.getCursor('fs:docs'), null);
      await engine.setCursor('fs:docs', 'token-1');
      await engine.setCursor('fs:docs', 'token-2');
      assert.equal(await engine.getCursor('fs:docs'), 'token-2');

      const t0 = Math.floor(Date.now() / 1000);
      await engine.commit(MODEL, [
        upsert('m1', ['x one'], { metadata: { modified_at: 1_700_000_000 } }),
        upsert('m2', ['x two'], { metadata: { modified_at: 1_700_000_500.5 } }),
        upsert('m3', ['x three'], { metadata: { modified_at: 'not a number' } }),
      ]);
      await engine.commit(MODEL, [{ op: 'mark', key: 'm4', version: 'v', status: 'pending', metadata: { modified_at: 1_800_000_000 } }]);
      const s = await engine.stats();
      assert.equal(s.lastModified, 1_700_000_500.5, 'max modified_at over indexed documents');
      assert.ok(s.lastIndexed! >= t0 && s.lastIndexed! <= t0 + 5);
      assert.equal(s.chunks, 3);
      assert.equal(s.lastSeq, 3);
      assert.equal(s.textIndexSeq, 3);
    });
  });
});

describe('engine: durability, locking and recovery', () => {
  it('keeps everything across a restart without rebuilding', async () => {
    const dir = await tempDir();
    let engine = await openEngine(dir);
    const res = await engine.commit(MODEL, [upsert('r1', ['persistent memory text']), upsert('r2', ['another stored text'])]);
    await engine.commit(MODEL, [{ op: 'mark', key: 'r3', version: 'v', status: 'failed', error: 'boom', metadata: {} }]);
    await engine.setCursor('c', 'v');
    const stats = await engine.stats();
    const docs = await engine.listDocuments();
    await engine.close();

    engine = await openEngine(dir);
    try {
      assert.equal((engine as unknown as { textIndexRebuilt: string | null }).textIndexRebuilt, null);
      assert.deepEqual(await engine.stats(), stats);
      assert.deepEqual(await engine.listDocuments(), docs);
      assert.equal(await engine.getCursor('c'), 'v');
      assert.deepEqual((await engine.searchText('memory', 5)).map((h) => h.id), res.documents[0]!.current);
      // New ids continue after the old ones.
      const more = await engine.commit(MODEL, [upsert('r4', ['later text'])]);
      assert.ok(more.documents[0]!.added[0]! > Math.max(...res.documents.flatMap((d) => d.current)));
      await assertTextIndexMatchesStore(engine, 'text');
    } finally {
      await engine.close();
    }
  });

  it('rebuilds a missing or damaged text index from the store', async () => {
    const dir = await tempDir();
    let engine = await openEngine(dir);
    await engine.commit(MODEL, [upsert('a', ['common rebuild one', 'common rebuild two']), upsert('b', ['common three'])]);
    await engine.commit(MODEL, [upsert('a', ['common rebuild one', 'common changed']), { op: 'delete', key: 'b' }]);
    await engine.close();

    await rm(join(dir, 'text-index'), { recursive: true, force: true });
    engine = await openEngine(dir);
    assert.match(String((engine as unknown as { textIndexRebuilt: string | null }).textIndexRebuilt), /does not exist/);
    await assertTextIndexMatchesStore(engine);
    assert.equal((await engine.searchText('changed', 5)).length, 1);
    await engine.close();

    await writeFile(join(dir, 'text-index', 'meta.json'), '{ not json');
    engine = await openEngine(dir);
    assert.ok((engine as unknown as { textIndexRebuilt: string | null }).textIndexRebuilt);
    await assertTextIndexMatchesStore(engine);
    await engine.close();

    // Missing or garbage segment files. (Tantivy panics on some garbage; the engine catches the
    // panic and rebuilds, so a "panicked at …file_slice.rs" line on stderr is expected here.)
    for (const damage of ['.term', '.store'] as const) {
      for (const f of await readdir(join(dir, 'text-index'))) {
        if (!f.endsWith(damage)) continue;
        if (damage === '.term') await rm(join(dir, 'text-index', f));
        else await writeFile(join(dir, 'text-index', f), 'garbage');
      }
      engine = await openEngine(dir);
      assert.ok((engine as unknown as { textIndexRebuilt: string | null }).textIndexRebuilt, `rebuilt after damaging ${damage}`);
      await assertTextIndexMatchesStore(engine);
      await engine.close();
    }

    // An index from another schema/analyzer version (payload tag) is rebuilt too.
    const metaPath = join(dir, 'text-index', 'meta.json');
    const { readFile } = await import('node:fs/promises');
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as { payload?: string };
    meta.payload = (meta.payload ?? '').replace(/^v1:/, 'v0:');
    await writeFile(metaPath, JSON.stringify(meta));
    engine = await openEngine(dir);
    assert.match(String((engine as unknown as { textIndexRebuilt: string | null }).textIndexRebuilt), /payload/);
    await assertTextIndexMatchesStore(engine);
    await engine.close();

    // A text index ahead of the store (a store restored from a backup) is rebuilt, not trusted.
    const { copyFile } = await import('node:fs/promises');
    await copyFile(join(dir, 'store.sqlite'), join(dir, 'store.backup'));
    engine = await openEngine(dir);
    await engine.commit(MODEL, [upsert('c', ['common newer text'])]);
    await engine.close();
    await copyFile(join(dir, 'store.backup'), join(dir, 'store.sqlite'));
    engine = await openEngine(dir);
    assert.match(String((engine as unknown as { textIndexRebuilt: string | null }).textIndexRebuilt), /beyond the store/);
    await assertTextIndexMatchesStore(engine);
    assert.deepEqual(await engine.searchText('newer', 5), []);
    await engine.close();
  });

  it('rejects a second writer on the same dir, in this process and in another', async () => {
    const dir = await tempDir();
    const engine = await openEngine(dir);
    try {
      await assert.rejects(openEngine(dir), (err: unknown) => {
        assert.ok(err instanceof LivedexError);
        assert.match(err.message, /data dir .* is in use by another livedex process/);
        return true;
      });
      const child = runChild(['open', dir]);
      const c = collect(child);
      await c.exit;
      assert.match(c.out(), /^error: .*data dir .* is in use by another livedex process/m, c.err());
    } finally {
      await engine.close();
    }
    // Closing releases the lock: another process can now open it, and then we cannot.
    const child = runChild(['open', dir]);
    const c = collect(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', () => (c.out().includes('opened') ? resolve() : undefined));
      void c.exit.then(() => reject(new Error(`child exited: ${c.out()} ${c.err()}`)));
    });
    await assert.rejects(openEngine(dir), /in use by another livedex process \(pid \d+\)/);
    child.stdin!.end();
    await c.exit;
    const again = await openEngine(dir);
    await again.close();
  });

  it('opens readOnly beside a writer and searches what is committed', async () => {
    const dir = await tempDir();
    await assert.rejects(openEngine(join(dir, 'nothing-here'), { readOnly: true }), /no livedex data/);
    const writer = await openEngine(dir);
    try {
      const res = await writer.commit(MODEL, [upsert('w1', ['shared reader text'])]);
      const reader = await openEngine(dir, { readOnly: true });
      try {
        assert.deepEqual((await reader.searchText('reader', 5)).map((h) => h.id), res.documents[0]!.current);
        assert.equal((await reader.getDocument('w1'))!.status, 'indexed');
        await assert.rejects(reader.commit(MODEL, [upsert('no', ['no'])]), /readOnly/);
        await assert.rejects(reader.setCursor('a', 'b'), /readOnly/);
        // Later commits of the writer become visible.
        const more = await writer.commit(MODEL, [upsert('w2', ['another reader text'])]);
        assert.equal((await reader.searchText('reader', 5)).length, 2);
        assert.deepEqual((await reader.getChunks(more.documents[0]!.current)).map((c) => c.text), ['another reader text']);
        assert.equal((await reader.stats()).textIndexSeq, more.seq);
      } finally {
        await reader.close();
      }
      // The writer is unaffected.
      assert.equal((await writer.searchText('reader', 5)).length, 2);
    } finally {
      await writer.close();
    }
  });

  it('errors clearly after close; a second close is a no-op', async () => {
    const dir = await tempDir();
    const engine = await openEngine(dir);
    await engine.close();
    await engine.close();
    await assert.rejects(engine.stats(), /closed/);
    await assert.rejects(engine.searchText('x', 5), /closed/);
    await assert.rejects(engine.commit(MODEL, []), /closed/);
  });

  it('heals a crash between the store commit and the text index commit', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = await tempDir();
      const child = runChild(['crash', dir, String(100 + round)]);
      const c = collect(child);
      const { code, signal } = await c.exit;
      assert.ok(c.out().includes('crashing') && !c.out().includes('not crashed'), `${c.out()}\n${c.err()}`);
      assert.ok(signal === 'SIGABRT' || (code !== 0 && code !== null), `child exit ${code} ${signal}`);

      // Read-only (no replay): the store has the last batch, the text index does not yet.
      const ro = await openEngine(dir, { readOnly: true });
      const s = await ro.stats();
      assert.ok(s.textIndexSeq < s.lastSeq, `text index behind the store (${s.textIndexSeq} < ${s.lastSeq})`);
      assert.equal((await ro.getDocument('last-doc'))!.status, 'indexed');
      assert.deepEqual(await ro.searchText('lastword', 5), []);
      await ro.close();

      const engine = await openEngine(dir);
      try {
        assert.equal((engine as unknown as { textIndexRebuilt: string | null }).textIndexRebuilt, null, 'replayed, not rebuilt');
        assert.equal((await engine.searchText('lastword', 5)).length, 1);
        await assertTextIndexMatchesStore(engine);
      } finally {
        await engine.close();
      }
    }
  });

  it('survives SIGKILL at random moments while committing', async (t) => {
    const random = rng(7);
    const dir = await tempDir();
    let caughtBehind = 0;
    for (let round = 0; round < 6; round++) {
      const child = runChild(['loop', dir, String(round + 1)]);
      const c = collect(child);
      // Wait for the child to be committing, then kill it at a random moment.
      await new Promise<void>((resolve, reject) => {
        const onData = () => {
          if (c.out().includes('committed')) {
            child.stdout!.off('data', onData);
            resolve();
          }
        };
        child.stdout!.on('data', onData);
        void c.exit.then(() => reject(new Error(`child exited early: ${c.out()}\n${c.err()}`)));
      });
      await new Promise((r) => setTimeout(r, 20 + Math.floor(random() * 300)));
      child.kill('SIGKILL');
      await c.exit;

      const ro = await openEngine(dir, { readOnly: true });
      const before = await ro.stats();
      await ro.close();
      if (before.textIndexSeq < before.lastSeq) caughtBehind++;

      const engine = await openEngine(dir);
      try {
        await assertTextIndexMatchesStore(engine);
        const docs = await engine.listDocuments();
        const chunks = await allChunkIds(engine);
        assert.equal(docs.reduce((n, d) => n + d.chunkCount, 0), chunks.length, 'chunk counts agree with chunks');
      } finally {
        await engine.close();
      }
    }
    assert.ok((await readdir(dir)).includes('store.sqlite'));
    t.diagnostic(`${caughtBehind} of 6 kills left the text index behind the store`);
  });

  it('runs reads beside commits and serializes concurrent commits', async () => {
    await withEngine(async (engine) => {
      await engine.commit(MODEL, [upsert('base', ['common base text'])]);
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        work.push(engine.commit(MODEL, [upsert(`c${i % 5}`, [`common text ${i}`, `common shared`])]));
        work.push(engine.searchText('common', 50));
        work.push(engine.stats());
        work.push(engine.listDocuments());
      }
      await Promise.all(work);
      await assertTextIndexMatchesStore(engine);
      assert.equal((await engine.stats()).documents, 6);
    });
  });
});
