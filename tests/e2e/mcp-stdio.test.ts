/** `livedex mcp --stdio`: the SDK's client spawning the real CLI — live over a folder, relayed to a running server, read-only over a data dir. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ResourceUpdatedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { documentUri } from '../../src/mcp/index.js';
import { ROOT, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const TOOLS = ['get_document', 'index_status', 'inputs_query', 'list_documents', 'retrieve', 'retrieve_query', 'statistics', 'statistics_query'];

interface StdioClient {
  client: Client;
  transport: StdioClientTransport;
  stderr: string[];
}

/** Spawns `livedex mcp --stdio …args` and connects the SDK client to it. */
async function spawnMcp(args: string[], env: Record<string, string> = {}): Promise<StdioClient> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['--import', 'tsx', join(ROOT, 'src/cli.ts'), 'mcp', '--stdio', '--log-level', 'warn', ...args],
    cwd: ROOT,
    env: { ...process.env, ...env } as Record<string, string>,
    stderr: 'pipe',
  });
  const stderr: string[] = [];
  transport.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const client = new Client({ name: 'livedex-stdio-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, stderr };
}

/** Closes the client and waits for the CLI process to be gone. */
async function shutdown(c: StdioClient | undefined): Promise<void> {
  if (!c) return;
  const pid = c.transport.pid;
  await c.client.close();
  if (pid !== null) {
    await waitFor(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 20_000);
  }
}

async function hitsOf(client: Client, args: Record<string, unknown>): Promise<{ metadata: Record<string, unknown> }[]> {
  const res = (await client.callTool({ name: 'retrieve', arguments: args })) as CallToolResult;
  assert.ok(!res.isError, JSON.stringify(res.content));
  return (res.structuredContent as { hits: { metadata: Record<string, unknown> }[] }).hits;
}

describe('livedex mcp --stdio over a folder (live, in the process)', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let mcp: StdioClient;
  let notes: string;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    notes = join(folder.path, 'notes.txt');
    await writeFile(notes, 'The quarterly report mentions the lighthouse budget.\n');
    mcp = await spawnMcp([folder.path, '--data-dir', data.path]);
  });

  after(async () => {
    await shutdown(mcp);
    await folder.cleanup();
    await data.cleanup();
  });

  it('lists the tools and answers retrieve once the folder is indexed', async () => {
    const { tools } = await mcp.client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
    const { value: hits } = await waitFor(async () => {
      const found = await hitsOf(mcp.client, { query: 'lighthouse budget', k: 1 });
      return found.length > 0 ? found : undefined;
    }, 60_000, 100);
    assert.ok(hits);
    assert.equal(hits[0]!.metadata.path, notes);
    assert.equal(typeof hits[0]!.metadata.indexed_at, 'number');
  });

  it('reads a document resource and hears when it changes', async () => {
    const uri = documentUri(notes);
    const read = await mcp.client.readResource({ uri });
    assert.match((read.contents[0] as { text: string }).text, /lighthouse budget/);
    const updated: string[] = [];
    mcp.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updated.push(n.params.uri));
    await mcp.client.subscribeResource({ uri });
    await writeFile(notes, 'The quarterly report now mentions the windmill budget.\n');
    await waitFor(() => updated.includes(uri), 20_000);
    assert.match(((await mcp.client.readResource({ uri })).contents[0] as { text: string }).text, /windmill/);
  });

  it('bad input is a tool error naming the field', async () => {
    const res = (await mcp.client.callTool({ name: 'retrieve', arguments: { query: 'x', k: 0 } })) as CallToolResult;
    assert.equal(res.isError, true);
    assert.match((res.content[0] as { text: string }).text, /field: k/);
    assert.ok((await mcp.client.listTools()).tools.length > 0, 'the session goes on');
  });
});

describe('livedex mcp --stdio beside a running server (with a token), then alone on its data dir', () => {
  const token = 'stdio-relay-token-0123456789';
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer | undefined;
  let relayed: { metadata: Record<string, unknown> }[];
  let notes: string;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    notes = join(folder.path, 'notes.txt');
    await writeFile(notes, 'The quarterly report mentions the lighthouse budget.\n');
    await writeFile(join(folder.path, 'guide.md'), '# Guide\n\nThe harbor master keeps a ledger of every ship.\n');
    server = await startServer(folder.path, { dataDir: data.path, config: { auth: { tokens: [token] } } });
    await server.ready;
  });

  after(async () => {
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('relays to the server found through server.json: same answers, same notifications', async () => {
    const mcp = await spawnMcp(['--data-dir', data.path], { LIVEDEX_AUTH_TOKEN: token });
    try {
      assert.deepEqual((await mcp.client.listTools()).tools.map((t) => t.name).sort(), TOOLS);
      const req = { query: 'harbor ledger', k: 2 };
      relayed = await hitsOf(mcp.client, req);
      const rest = await fetch(`${server!.url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(req) });
      assert.equal(rest.status, 200);
      assert.deepEqual(relayed, await rest.json());

      const uri = documentUri(notes);
      const updated: string[] = [];
      mcp.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updated.push(n.params.uri));
      await mcp.client.subscribeResource({ uri });
      await writeFile(notes, 'The quarterly report now mentions the windmill budget.\n');
      await waitFor(() => updated.includes(uri), 20_000);
    } finally {
      await shutdown(mcp);
    }
  });

  it('serves the data dir read-only once no server runs', async () => {
    await server!.close();
    server = undefined;
    const mcp = await spawnMcp(['--data-dir', data.path]);
    try {
      const hits = await hitsOf(mcp.client, { query: 'harbor ledger', k: 2 });
      assert.deepEqual(hits.map((h) => h.metadata.path), relayed.map((h) => h.metadata.path));
      const doc = (await mcp.client.callTool({ name: 'get_document', arguments: { key: notes } })) as CallToolResult;
      assert.match((doc.structuredContent as { text: string }).text, /windmill/);
    } finally {
      await shutdown(mcp);
    }
  });
});
