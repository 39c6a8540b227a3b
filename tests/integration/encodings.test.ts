/** @module tests/encodings — text files in UTF-32 with a byte-order mark are indexed and found through the server. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

function utf32(text: string, littleEndian: boolean): Uint8Array {
  const cps = [0xfeff, ...[...text].map((c) => c.codePointAt(0)!)];
  const out = new Uint8Array(cps.length * 4);
  const view = new DataView(out.buffer);
  cps.forEach((cp, i) => { view.setUint32(i * 4, cp, littleEndian); });
  return out;
}

describe('UTF-32 text files', () => {
  let folder: Awaited<ReturnType<typeof tempDir>>;
  let data: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'le.txt'), utf32('The quarterly walrus census counted 412 walruses on the floe.', true));
    await writeFile(join(folder.path, 'be.txt'), utf32('Glacier café notes: the heron colony nests beside the fjord.', false));
    server = await startServer(folder.path, { dataDir: data.path });
  });
  after(async () => {
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('finds a phrase from a UTF-32 LE file and from a UTF-32 BE file', async () => {
    const top = async (query: string) => (await retrieve(server.url, { query, k: 1, mode: 'bm25' }))[0];
    const le = await waitFor(async () => top('walrus census'), 20000);
    assert.equal(le.value?.metadata.path, join(folder.path, 'le.txt'));
    assert.match(le.value!.text, /412 walruses/);
    const be = await waitFor(async () => top('heron colony fjord'), 20000);
    assert.equal(be.value?.metadata.path, join(folder.path, 'be.txt'));
    assert.match(be.value!.text, /Glacier café/);
  });
});
