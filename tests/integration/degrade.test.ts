/** When the embedding model cannot be reached, BM25 keeps serving. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { embedControl, post, retrieve, startServer, tempDir, type TestServer } from '../helpers/livedex.js';

describe('an unreachable embedding model', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'a.txt'), 'Otters hold hands while they sleep.\n');
    await writeFile(join(folder.path, 'b.txt'), 'Penguins propose with pebbles.\n');
    server = await startServer(folder.path, { dataDir: data.path });
    await server.ready;
  });
  after(async () => {
    embedControl.failQueries = false;
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('answers hybrid queries from BM25 alone, fails vector queries with 503 naming the model, and bm25 is untouched', async () => {
    embedControl.failQueries = true;
    const hybrid = await retrieve(server.url, { query: 'otters sleep', k: 2 });
    assert.equal(hybrid[0]?.metadata.path, join(folder.path, 'a.txt'));
    assert.equal(hybrid[0]?.scores.vector, undefined, 'no vector leg');
    const vector = await post<{ error: { code: string; message: string } }>(server.url, '/v1/retrieve', { query: 'otters sleep', mode: 'vector' });
    assert.equal(vector.status, 503);
    assert.equal(vector.body.error.code, 'model_unavailable');
    assert.match(vector.body.error.message, /hashing:v2:384 cannot embed the query: connect ECONNREFUSED/);
    assert.equal((await retrieve(server.url, { query: 'penguins', k: 1, mode: 'bm25' }))[0]?.metadata.path, join(folder.path, 'b.txt'));
    embedControl.failQueries = false;
    assert.notEqual((await retrieve(server.url, { query: 'otters sleep', k: 2 }))[0]?.scores.vector, undefined, 'the vector leg is back');
  });
});
