/** The live index through its public surface: real files, a real server on 127.0.0.1, real HTTP. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { embedCounter, get, post, retrieve, startServer, tempDir, waitFor, type TestServer, type WireHit } from '../helpers/livedex.js';

const WORDS = 'alpha beta gamma delta epsilon zeta theta iota kappa lambda sigma omega river stone cloud field harbor lantern meadow orchard quarry'.split(' ');

/** A paragraph of ~60 words, unique to (section, paragraph) through its tag words. */
function paragraph(s: number, p: number): string {
  const words: string[] = [];
  for (let i = 0; i < 58; i++) words.push(WORDS[(s * 7 + p * 13 + i * 5) % WORDS.length]!);
  return `Section${s}para${p} ${words.join(' ')} tag${s}x${p}.`;
}

/** 40 paragraphs under 8 headings. */
function fortyParagraphs(edit?: { s: number; p: number; word: string }): string {
  const out: string[] = ['# Handbook'];
  for (let s = 0; s < 8; s++) {
    out.push(`## Chapter ${s}`);
    for (let p = 0; p < 5; p++) {
      let text = paragraph(s, p);
      if (edit && edit.s === s && edit.p === p) text = text.replace('river', edit.word);
      out.push(text);
    }
  }
  return out.join('\n\n') + '\n';
}

describe('a live index over a folder', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'handbook.md'), fortyParagraphs());
    await writeFile(join(folder.path, 'notes.txt'), 'The quarterly report mentions the lighthouse budget.\n');
    await mkdir(join(folder.path, 'sub'));
    await writeFile(join(folder.path, 'sub', 'page.html'), '<html><head><title>Page</title><script>var hidden = "scriptword";</script></head><body><h1>Harbor page</h1><p>The harbor master keeps a ledger.</p></body></html>');
    embedCounter.reset();
    server = await startServer(folder.path, { dataDir: data.path });
    await server.ready;
  });

  after(async () => {
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('indexes every file and answers /v1/retrieve in all three modes', async () => {
    for (const mode of ['hybrid', 'vector', 'bm25']) {
      const hits = await retrieve(server.url, { query: 'lighthouse budget', k: 2, mode });
      assert.ok(hits.length >= 1, mode);
      assert.equal(hits[0]!.metadata.path, join(folder.path, 'notes.txt'), mode);
      assert.ok(hits.every((h, i) => i === 0 || h.dist >= hits[i - 1]!.dist), `${mode}: dist ascending`);
    }
    const html = await retrieve(server.url, { query: 'harbor master ledger', k: 1, mode: 'bm25' });
    assert.equal(html[0]!.metadata.path, join(folder.path, 'sub', 'page.html'));
    const script = await retrieve(server.url, { query: 'scriptword', k: 5, mode: 'bm25' });
    assert.deepEqual(script, [], 'script text is not indexed');
    assert.deepEqual(await retrieve(server.url, { query: '  ', k: 5 }), [], 'an empty query matches nothing');
  });

  it('reports statistics and lists documents with their status', async () => {
    const stats = await get<{ file_count: number; last_modified: number; last_indexed: number }>(server.url, '/v1/statistics');
    assert.equal(stats.body.file_count, 3);
    assert.ok(stats.body.last_indexed >= stats.body.last_modified - 5);
    const listed = await post<Record<string, unknown>[]>(server.url, '/v2/list_documents', { return_status: true });
    assert.equal(listed.body.length, 3);
    assert.ok(listed.body.every((d) => d._indexing_status === 'INDEXED'));
  });

  it('re-embeds only the chunks whose text changed when one paragraph is edited, and answers within 2 s', async () => {
    const path = join(folder.path, 'handbook.md');
    const oldTexts = new Set(
      (await post<WireHit[]>(server.url, '/v1/retrieve', { query: 'Section0para0 Section7para4 alpha', k: 1000, mode: 'bm25', filepath_globpattern: path })).body.map((h) => h.text),
    );
    assert.ok(oldTexts.size >= 6, `the handbook has several chunks (got ${oldTexts.size})`);
    embedCounter.reset();
    await writeFile(path, fortyParagraphs({ s: 3, p: 2, word: 'zanzibar' }));
    const { ms } = await waitFor(async () => (await retrieve(server.url, { query: 'zanzibar', k: 1, mode: 'bm25' })).length === 1, 5000, 10);
    assert.ok(ms < 2000, `queryable after ${ms.toFixed(0)} ms`);
    const newTexts = (await post<WireHit[]>(server.url, '/v1/retrieve', { query: 'Section0para0 Section7para4 alpha', k: 1000, mode: 'bm25', filepath_globpattern: path })).body.map((h) => h.text);
    const changed = newTexts.filter((t) => !oldTexts.has(t));
    assert.equal(changed.length, 1, 'exactly one chunk text changed');
    assert.equal(embedCounter.texts, changed.length, 'the embedder saw only the changed chunk');
    assert.match(embedCounter.seen[0]!, /zanzibar/);
  });

  it('never answers with a deleted file again', async () => {
    const path = join(folder.path, 'doomed.txt');
    await writeFile(path, 'The doomed file talks about pelicans.\n');
    await waitFor(async () => (await retrieve(server.url, { query: 'pelicans', k: 1, mode: 'bm25' })).length === 1);
    await rm(path);
    await waitFor(async () => (await retrieve(server.url, { query: 'pelicans', k: 5, mode: 'bm25' })).length === 0);
    for (const mode of ['hybrid', 'vector', 'bm25']) {
      const hits = await retrieve(server.url, { query: 'doomed file pelicans', k: 50, mode });
      assert.ok(hits.every((h) => h.metadata.path !== path), mode);
    }
    const listed = await post<Record<string, unknown>[]>(server.url, '/v1/inputs', {});
    assert.ok(listed.body.every((d) => d.path !== path));
  });

  it('answers a renamed file under its new path only', async () => {
    const from = join(folder.path, 'before-name.txt');
    const to = join(folder.path, 'sub', 'after-name.txt');
    await writeFile(from, 'Flamingos gather at the saltwater lagoon.\n');
    await waitFor(async () => (await retrieve(server.url, { query: 'flamingos', k: 1, mode: 'bm25' }))[0]?.metadata.path === from);
    embedCounter.reset();
    await rename(from, to);
    await waitFor(async () => {
      const hits = await retrieve(server.url, { query: 'flamingos lagoon', k: 10, mode: 'bm25' });
      return hits.length === 1 && hits[0]!.metadata.path === to;
    });
    for (const mode of ['hybrid', 'vector']) {
      const hits = await retrieve(server.url, { query: 'flamingos lagoon', k: 50, mode });
      assert.ok(hits.every((h) => h.metadata.path !== from), mode);
    }
    assert.equal(embedCounter.texts, 0, `a rename re-embeds nothing: the text is in the embedding cache (embedded: ${JSON.stringify(embedCounter.seen)})`);
  });

  it('never shows a mix of two versions of a document that is rewritten in a loop, nor any chunk after it is deleted', async () => {
    const path = join(folder.path, 'churn.md');
    const version = (v: number) =>
      Array.from({ length: 6 }, (_, i) => `## Part ${i}\n\nchurnmarker version${v} ${'filler words about the churning document '.repeat(40)} end${i}`).join('\n\n');
    await writeFile(path, version(0));
    await waitFor(async () => (await retrieve(server.url, { query: 'churnmarker', k: 1, mode: 'bm25' })).length === 1);
    const chunksPerVersion = (await retrieve(server.url, { query: 'churnmarker', k: 100, mode: 'bm25' })).length;
    assert.ok(chunksPerVersion >= 2, `several chunks per version (got ${chunksPerVersion})`);

    let writing = true;
    const writer = (async () => {
      for (let v = 1; v <= 25; v++) {
        await writeFile(path, version(v));
        await new Promise((r) => setTimeout(r, 40));
      }
      writing = false;
    })();
    let queries = 0;
    const modes = ['bm25', 'vector', 'hybrid'];
    while (writing) {
      const mode = modes[queries % 3]!;
      const hits = await retrieve(server.url, { query: 'churnmarker churning document', k: 100, mode, filepath_globpattern: path });
      const versions = new Set(hits.map((h) => /version(\d+)/.exec(h.text)?.[1]));
      assert.ok(versions.size <= 1, `${mode} saw versions ${[...versions].join(', ')}`);
      if (hits.length > 0) assert.equal(hits.length, chunksPerVersion, `${mode} saw a whole version`);
      queries++;
    }
    await writer;
    assert.ok(queries > 20, `ran ${queries} queries during the rewrites`);

    await rm(path);
    await waitFor(async () => (await post<unknown[]>(server.url, '/v1/inputs', { filepath_globpattern: path })).body.length === 0);
    for (let i = 0; i < 30; i++) {
      const hits = await retrieve(server.url, { query: 'churnmarker churning document', k: 100, mode: modes[i % 3] });
      assert.ok(hits.every((h) => h.metadata.path !== path), 'no chunk of a deleted document');
    }
  });
});
