/** Pathway's REST contract against the real stack: the glob and filter matrix in every mode, and bad input. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { get, post, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const MODES = ['hybrid', 'vector', 'bm25'] as const;

describe('the REST contract over a real index', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  let target: string;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    target = join(folder.path, 'pathway', 'test_vector_store.md');
    await mkdir(join(folder.path, 'pathway'));
    await mkdir(join(folder.path, 'bulk'));
    await mkdir(join(folder.path, 'special'));
    await writeFile(target, '# Vector store\n\nThe vector store answers retrieval queries about quarterly reports.\n');
    // 995 bulk chunks that talk about reports a lot, and 5 special ones that mention it once.
    for (let i = 0; i < 995; i++) {
      await writeFile(join(folder.path, 'bulk', `b${i}.txt`), `report report report summary ${i} report figures report\n`);
    }
    for (let i = 0; i < 5; i++) {
      await writeFile(join(folder.path, 'special', `s${i}.txt`), `A long note ${i} about gardening, tomatoes and a single report in passing.\n`);
    }
    await writeFile(join(folder.path, 'empty.txt'), '');
    await writeFile(join(folder.path, 'binary.md'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x01]));
    await writeFile(join(folder.path, 'latin1.txt'), Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' au lait, invalidutf sequence\n')]));
    const big = Buffer.alloc(50 * 1024 * 1024, 'lorem ipsum dolor sit amet ');
    await writeFile(join(folder.path, 'huge.txt'), big);
    server = await startServer(folder.path, { dataDir: data.path });
    await server.ready;
  });
  after(async () => {
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  describe('filepath_globpattern and metadata_filter (Pathway matrix)', () => {
    // The target's own sentence: an exact match in every mode, so only the filters decide.
    const query = 'The vector store answers retrieval queries about quarterly reports.';
    for (const mode of MODES) {
      it(`${mode}: positive globs find the file`, async () => {
        for (const glob of ['', '**/*.md', target, '**/pathway/*.md', '*.md']) {
          const hits = await retrieve(server.url, { query, k: 1, mode, filepath_globpattern: glob });
          assert.equal(hits[0]?.metadata.path, target, `glob ${JSON.stringify(glob)}`);
        }
        for (const filter of [`contains(path, \`test_vector\`)`, `path == '${target}'`, `path == \`${target}\``, `globmatch(\`**/*.md\`, path)`, `globmatch('**/pathway/*', path)`]) {
          const hits = await retrieve(server.url, { query, k: 1, mode, metadata_filter: filter });
          assert.equal(hits[0]?.metadata.path, target, `filter ${filter}`);
        }
      });
      it(`${mode}: negative globs and filters find nothing`, async () => {
        for (const glob of ['**/abc.md', '*.pdf', '**/*.py', 'pathway/test_vector_store.md.bak']) {
          assert.deepEqual(await retrieve(server.url, { query, k: 3, mode, filepath_globpattern: glob }), [], `glob ${glob}`);
        }
        for (const filter of ['path == `/nowhere/test_vector_store.md`', `contains(path, 'no-such-dir')`]) {
          assert.deepEqual(await retrieve(server.url, { query, k: 3, mode, metadata_filter: filter }), [], `filter ${filter}`);
        }
      });
      it(`${mode}: a filter matching 5 of 1,000 chunks with k = 5 returns those 5`, async () => {
        const hits = await retrieve(server.url, { query: 'report figures summary', k: 5, mode, metadata_filter: "globmatch('**/special/*', path)" });
        assert.equal(hits.length, 5);
        assert.deepEqual(hits.map((h) => h.metadata.path).sort(), Array.from({ length: 5 }, (_, i) => join(folder.path, 'special', `s${i}.txt`)));
      });
    }
    it('an exact match has dist 0 in vector and hybrid modes', async () => {
      const text = 'A long note 3 about gardening, tomatoes and a single report in passing.';
      const vector = await retrieve(server.url, { query: text, k: 1, mode: 'vector' });
      assert.ok(Math.abs(vector[0]!.dist) < 1e-6, `vector dist ${vector[0]!.dist}`);
      const hybrid = await retrieve(server.url, { query: text, k: 1 });
      assert.equal(hybrid[0]!.metadata.path, join(folder.path, 'special', 's3.txt'));
      assert.ok(Math.abs(hybrid[0]!.dist) < 1e-6, `hybrid dist ${hybrid[0]!.dist}`);
    });
    it('inputs honour the same filters', async () => {
      const md = await post<Record<string, unknown>[]>(server.url, '/v1/inputs', { filepath_globpattern: '**/*.md' });
      assert.deepEqual(md.body.map((d) => d.path).sort(), [join(folder.path, 'binary.md'), target].sort());
      const special = await post<Record<string, unknown>[]>(server.url, '/v2/list_documents', { metadata_filter: "contains(path, 'special')" });
      assert.equal(special.body.length, 5);
    });
  });

  describe('bad input', () => {
    const cases: Array<[string, string | Record<string, unknown>, string]> = [
      ['malformed JSON', '{"query": ', 'body'],
      ['missing query', { k: 3 }, 'query'],
      ['k < 1', { query: 'x', k: 0 }, 'k'],
      ['k not an integer', { query: 'x', k: 2.5 }, 'k'],
      ['k a word', { query: 'x', k: 'three' }, 'k'],
      ['unknown mode', { query: 'x', mode: 'semantic' }, 'mode'],
      ['invalid JMESPath', { query: 'x', metadata_filter: 'path ==' }, 'metadata_filter'],
    ];
    for (const [name, body, field] of cases) {
      it(`${name} → 400 naming ${field}`, async () => {
        const res = await post<{ error: { code: string; message: string; field?: string } }>(server.url, '/v1/retrieve', body);
        assert.equal(res.status, 400);
        assert.equal(res.body.error.field, field);
        assert.ok(res.body.error.message.length > 0);
      });
    }

    it('an empty file, a binary .md, invalid UTF-8 and a 50 MB file are indexed or failed with a reason, and the server keeps serving', async () => {
      const listed = await post<Array<Record<string, unknown>>>(server.url, '/v2/list_documents', { return_status: true });
      const byName = new Map(listed.body.map((d) => [String(d.path).split('/').pop(), d]));
      assert.equal(byName.get('empty.txt')?._indexing_status, 'INDEXED');
      assert.equal(byName.get('binary.md')?._indexing_status, 'FAILED');
      assert.match(String(byName.get('binary.md')?._indexing_error), /binary/i);
      assert.equal(byName.get('latin1.txt')?._indexing_status, 'INDEXED');
      assert.equal(byName.get('huge.txt')?._indexing_status, 'FAILED');
      assert.match(String(byName.get('huge.txt')?._indexing_error), /50\.0 MB/);
      assert.equal((await retrieve(server.url, { query: 'invalidutf', k: 1, mode: 'bm25' }))[0]?.metadata.path, join(folder.path, 'latin1.txt'));
      assert.equal((await get(server.url, '/healthz')).status, 200);
      // Fixing a failed file heals it.
      await writeFile(join(folder.path, 'binary.md'), '# Fixed\n\nNow it is text about kangaroos.\n');
      await waitFor(async () => (await retrieve(server.url, { query: 'kangaroos', k: 1, mode: 'bm25' })).length === 1);
    });
  });
});
