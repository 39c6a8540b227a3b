/** `retrieval.default_mode`: the mode of a retrieve that names none, over REST and MCP alike. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { post, startServer, tempDir, type TestServer } from '../helpers/livedex.js';

interface Hit {
  text: string;
  scores: { bm25?: number; vector?: number; fused?: number };
}

/** Which legs scored a hit: a bm25 query has only `bm25`, a hybrid one `fused` too. */
const legs = (h: Hit) => Object.keys(h.scores).sort();

describe('retrieval.default_mode', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  let client: Client;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'harbor.md'), '# Harbor\n\nThe harbor master keeps a ledger of every ship.\n');
    server = await startServer(folder.path, { dataDir: data.path, config: { sandbox: { enabled: false }, retrieval: { default_mode: 'bm25' } } });
    await server.ready;
    client = new Client({ name: 'default-mode-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', server.url)));
  });

  after(async () => {
    await client?.close();
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('is the mode of a REST retrieve that names none; a request naming one gets it', async () => {
    const implicit = await post<Hit[]>(server.url, '/v1/retrieve', { query: 'harbor ledger', k: 1 });
    assert.equal(implicit.status, 200);
    assert.deepEqual(legs(implicit.body[0]!), ['bm25']);
    const empty = await post<Hit[]>(server.url, '/v1/retrieve', { query: 'harbor ledger', k: 1, mode: '' });
    assert.deepEqual(legs(empty.body[0]!), ['bm25'], 'an empty mode means the default');
    const hybrid = await post<Hit[]>(server.url, '/v1/retrieve', { query: 'harbor ledger', k: 1, mode: 'hybrid' });
    assert.ok(legs(hybrid.body[0]!).includes('fused'), `hybrid asked for: ${JSON.stringify(hybrid.body[0]!.scores)}`);
  });

  it('is the mode of the MCP retrieve tool too', async () => {
    const res = (await client.callTool({ name: 'retrieve', arguments: { query: 'harbor ledger', k: 1 } })) as { isError?: boolean; structuredContent?: { hits: Hit[] } };
    assert.ok(!res.isError);
    assert.deepEqual(legs(res.structuredContent!.hits[0]!), ['bm25']);
    const hybrid = (await client.callTool({ name: 'retrieve', arguments: { query: 'harbor ledger', k: 1, mode: 'hybrid' } })) as { structuredContent?: { hits: Hit[] } };
    assert.ok(legs(hybrid.structuredContent!.hits[0]!).includes('fused'));
  });
});
