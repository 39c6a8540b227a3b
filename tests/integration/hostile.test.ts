/** Hostile files are stopped by their limits and never hold back the rest: queries answer meanwhile. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makePdf } from '../helpers/pdf.js';
import { makeZipBomb } from '../helpers/zip-bomb.js';
import { post, retrieve, startServer, tempDir, type TestServer } from '../helpers/livedex.js';

describe('hostile documents', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  const answeredWhileIndexing: number[] = [];

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'normal.md'), '# Normal\n\nThe albatross glides for hours without flapping.\n');
    await writeFile(join(folder.path, 'random-20mb.pdf'), randomBytes(20 * 1024 * 1024));
    await writeFile(join(folder.path, 'bomb.docx'), await makeZipBomb('word/document.xml', 300));
    await writeFile(join(folder.path, 'pages-5000.pdf'), makePdf(Array.from({ length: 5000 }, (_, i) => `page ${i + 1}`)));
    await writeFile(join(folder.path, 'looping-pages.pdf'), makePdf(['a page tree that lists itself'], { loopingPageTree: true }));
    await writeFile(join(folder.path, 'fine.pdf'), makePdf(['Cormorants dry their wings in the sun.']));
    server = await startServer(folder.path, { dataDir: data.path, config: { sandbox: { timeout_ms: 20_000 } } });
    // Queries while the hostile files are being parsed: the index answers throughout.
    while (!server.index.isReady()) {
      answeredWhileIndexing.push((await post(server.url, '/v1/retrieve', { query: 'albatross', k: 1 })).status);
      await new Promise((r) => setTimeout(r, 20));
    }
    await server.ready;
  });
  after(async () => {
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('fails each hostile file for its own limit, with the reason, and indexes the others', async () => {
    const listed = (await post<Array<Record<string, unknown>>>(server.url, '/v2/list_documents', { return_status: true })).body;
    const byName = new Map(listed.map((d) => [String(d.path).split('/').pop(), d]));
    const reason = (name: string) => String(byName.get(name)?._indexing_error);
    assert.equal(byName.get('random-20mb.pdf')?._indexing_status, 'FAILED');
    assert.match(reason('random-20mb.pdf'), /PDF/);
    assert.equal(byName.get('bomb.docx')?._indexing_status, 'FAILED');
    assert.match(reason('bomb.docx'), /^zip bomb: /);
    assert.equal(byName.get('pages-5000.pdf')?._indexing_status, 'FAILED');
    assert.match(reason('pages-5000.pdf'), /5000 pages.*max_pages/);
    // The looping page tree is either read as far as it makes sense or refused; it never hangs.
    assert.match(String(byName.get('looping-pages.pdf')?._indexing_status), /^(INDEXED|FAILED)$/);
    for (const name of ['random-20mb.pdf', 'bomb.docx', 'pages-5000.pdf', 'looping-pages.pdf']) {
      assert.doesNotMatch(reason(name), /timed out|ran out of memory|crashed/, `${name} was stopped by its own limit, not the sandbox's last resort`);
    }
    assert.equal(byName.get('normal.md')?._indexing_status, 'INDEXED');
    assert.equal(byName.get('fine.pdf')?._indexing_status, 'INDEXED');
    const pdfHit = await retrieve(server.url, { query: 'cormorants wings', k: 1, mode: 'bm25' });
    assert.equal(pdfHit[0]?.metadata.page, 1);
  });

  it('answered every query issued while the hostile files were parsed', () => {
    assert.ok(answeredWhileIndexing.length > 0, 'queries ran during the initial sync');
    assert.deepEqual([...new Set(answeredWhileIndexing)], [200]);
  });
});
