/** The MCP server over streamable HTTP at /mcp: the SDK's own client against a real livedex on 127.0.0.1. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import {
  McpError,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { definePlugin } from '../../src/core/registry.js';
import type { ChatModel, ChatRequest, ChatResult } from '../../src/core/types.js';
import { documentUri, McpHub } from '../../src/mcp/index.js';
import { retrieveRequestSchema } from '../../src/server/schemas.js';
import { countingRegistry, get, post, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';
import { createStubIndex } from '../helpers/stub-index.js';

const BASE_TOOLS = ['get_document', 'index_status', 'inputs_query', 'list_documents', 'retrieve', 'retrieve_query', 'statistics', 'statistics_query'];

async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'livedex-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', url)));
  return client;
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** The structured result of a tool call that must succeed. */
async function structured<T = Record<string, unknown>>(client: Client, name: string, args: Record<string, unknown> = {}): Promise<T> {
  const res = await call(client, name, args);
  assert.ok(!res.isError, `${name} failed: ${JSON.stringify(res.content)}`);
  const text = res.content.find((c) => c.type === 'text');
  assert.ok(text && text.type === 'text' && text.text.length > 0, `${name} has readable text`);
  return res.structuredContent as T;
}

/** The error of a tool call that must fail as a tool error (not a protocol error). */
async function toolError(client: Client, name: string, args: Record<string, unknown>): Promise<{ code: string; message: string; field?: string; text: string }> {
  const res = await call(client, name, args);
  assert.equal(res.isError, true, `${name}(${JSON.stringify(args)}) should be a tool error`);
  const text = res.content.find((c) => c.type === 'text');
  assert.ok(text && text.type === 'text');
  const error = res._meta?.['livedex/error'] as { code: string; message: string; field?: string };
  return { ...error, text: text.text };
}

function omit<T extends Record<string, unknown>>(obj: T, ...keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)));
}

describe('MCP over streamable HTTP', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  let client: Client;
  let notesKey: string;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    notesKey = join(folder.path, 'notes.txt');
    await writeFile(notesKey, 'The quarterly report mentions the lighthouse budget.\n');
    await writeFile(join(folder.path, 'guide.md'), '# Guide\n\nThe harbor master keeps a ledger of every ship.\n');
    await writeFile(join(folder.path, 'broken.pdf'), 'this is not a pdf at all');
    server = await startServer(folder.path, { dataDir: data.path });
    await server.ready;
    client = await connect(server.url);
  });

  after(async () => {
    await client?.close();
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('lists the tools, Pathway aliases included, with input schemas from the REST schemas', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), BASE_TOOLS, 'no answer tools without a chat model');
    const retrieve = tools.find((t) => t.name === 'retrieve')!;
    assert.deepEqual(retrieve.inputSchema.required, ['query']);
    assert.deepEqual(Object.keys(retrieve.inputSchema.properties ?? {}).sort(), Object.keys(retrieveRequestSchema().shape).sort());
    const k = (retrieve.inputSchema.properties as Record<string, { description?: string }>).k!;
    assert.match(k.description ?? '', /How many hits/);
    assert.ok(retrieve.outputSchema, 'retrieve declares its output');
    const alias = tools.find((t) => t.name === 'retrieve_query')!;
    assert.deepEqual(alias.inputSchema, retrieve.inputSchema);
    for (const t of tools) {
      assert.equal(t.inputSchema.type, 'object', t.name);
      assert.ok(t.description, t.name);
      assert.equal(t.annotations?.readOnlyHint, true, t.name);
    }
  });

  it('retrieve: hits carry path, modified_at and indexed_at; the alias answers the same', async () => {
    const { hits } = await structured<{ hits: { text: string; metadata: Record<string, unknown> }[] }>(client, 'retrieve', { query: 'lighthouse budget', k: 2 });
    assert.ok(hits.length >= 1);
    assert.equal(hits[0]!.metadata.path, notesKey);
    for (const h of hits) {
      assert.equal(typeof h.metadata.path, 'string');
      assert.equal(typeof h.metadata.modified_at, 'number');
      assert.equal(typeof h.metadata.indexed_at, 'number');
    }
    const alias = await structured(client, 'retrieve_query', { query: 'lighthouse budget', k: 2 });
    assert.deepEqual(alias, { hits });
  });

  it('list_documents, statistics, get_document and index_status answer', async () => {
    const { documents } = await structured<{ documents: Record<string, unknown>[] }>(client, 'list_documents', { return_status: true });
    assert.deepEqual(documents.map((d) => d.path).sort(), ['broken.pdf', 'guide.md', 'notes.txt'].map((f) => join(folder.path, f)));
    assert.equal(documents.find((d) => d.path === notesKey)!._indexing_status, 'INDEXED');
    assert.deepEqual(await structured(client, 'inputs_query', { return_status: true }), { documents });

    const stats = await structured<{ file_count: number; last_indexed: number }>(client, 'statistics');
    assert.equal(stats.file_count, 2);
    assert.equal(typeof stats.last_indexed, 'number');
    assert.deepEqual(await structured(client, 'statistics_query'), stats);

    const doc = await structured<{ key: string; status: string; text: string; chunks: unknown[]; metadata: Record<string, unknown> }>(client, 'get_document', { key: notesKey });
    assert.equal(doc.key, notesKey);
    assert.equal(doc.status, 'indexed');
    assert.match(doc.text, /lighthouse budget/);
    assert.equal(doc.chunks.length, 1);
    assert.equal(doc.metadata.path, notesKey);

    const status = await structured<{ ready: boolean; queue: { depth: number }; failures: { key: string; error: string }[]; freshness: { up_to_date: boolean; last_indexed: number } }>(client, 'index_status');
    assert.equal(status.ready, true);
    assert.equal(status.queue.depth, 0);
    assert.equal(status.freshness.up_to_date, true);
    assert.equal(status.freshness.last_indexed, stats.last_indexed);
    assert.deepEqual(status.failures.map((f) => f.key), [join(folder.path, 'broken.pdf')]);
    assert.ok(status.failures[0]!.error.length > 0);
  });

  it('bad input is a tool error naming the field, and the session goes on', async () => {
    const missing = await toolError(client, 'retrieve', {});
    assert.equal(missing.field, 'query');
    assert.match(missing.text, /query is required/);
    const zero = await toolError(client, 'retrieve', { query: 'x', k: 0 });
    assert.equal(zero.field, 'k');
    assert.match(zero.text, /k must be an integer ≥ 1/);
    const filter = await toolError(client, 'retrieve', { query: 'x', metadata_filter: 'path ==== `a`' });
    assert.equal(filter.code, 'invalid_filter');
    assert.equal(filter.field, 'metadata_filter');
    assert.match(filter.text, /metadata_filter/);
    const glob = await toolError(client, 'list_documents', { return_status: 'maybe' });
    assert.equal(glob.field, 'return_status');
    const absent = await toolError(client, 'get_document', { key: join(folder.path, 'nope.txt') });
    assert.equal(absent.code, 'not_found');
    assert.equal(absent.field, 'key');
    await assert.rejects(call(client, 'no_such_tool'), (err: unknown) => err instanceof McpError && /no tool named/.test(err.message));
    // Same request, same message as REST.
    const rest = await post<{ error: { message: string; field: string } }>(server.url, '/v1/retrieve', { query: 'x', k: 0 });
    assert.equal(rest.status, 400);
    assert.deepEqual(rest.body.error, { code: 'invalid_request', message: zero.message, field: 'k' });
    assert.ok((await structured<{ hits: unknown[] }>(client, 'retrieve', { query: 'harbor ledger' })).hits.length > 0);
  });

  describe('each REST route and its tool answer the same request identically', () => {
    it('/v1/retrieve ↔ retrieve', async () => {
      for (const req of [{ query: 'harbor ledger ship', k: 3 }, { query: 'lighthouse', k: 1, mode: 'bm25' }, { query: 'report', filepath_globpattern: '*.txt' }]) {
        const rest = await post(server.url, '/v1/retrieve', req);
        assert.equal(rest.status, 200);
        assert.deepEqual((await structured(client, 'retrieve', req)).hits, rest.body, JSON.stringify(req));
      }
    });

    it('/v1/inputs ↔ list_documents', async () => {
      for (const req of [{}, { return_status: true }, { filepath_globpattern: '*.md' }]) {
        const rest = await post(server.url, '/v1/inputs', req);
        assert.deepEqual((await structured(client, 'list_documents', req)).documents, rest.body, JSON.stringify(req));
      }
    });

    it('/v1/statistics ↔ statistics', async () => {
      assert.deepEqual(await structured(client, 'statistics'), (await post(server.url, '/v1/statistics', {})).body);
    });

    it('GET /v1/documents/{key} ↔ get_document', async () => {
      const rest = await get<Record<string, unknown>>(server.url, `/v1/documents/${encodeURIComponent(notesKey)}`);
      assert.equal(rest.status, 200);
      assert.deepEqual(omit(await structured(client, 'get_document', { key: notesKey }), 'text', 'chunks'), rest.body);
    });

    it('GET /v1/status ↔ index_status', async () => {
      const rest = await get<Record<string, unknown>>(server.url, '/v1/status');
      assert.deepEqual(omit(await structured(client, 'index_status'), 'failures', 'freshness'), rest.body);
    });
  });

  it('documents are resources: listed, read as text and metadata; unknown ones are not found', async () => {
    const { resources } = await client.listResources();
    const notes = resources.find((r) => r.uri === documentUri(notesKey));
    assert.ok(notes, 'notes.txt is listed');
    assert.equal(notes.mimeType, 'text/plain');
    assert.equal(notes.name, notesKey);
    assert.equal(resources.length, 3);
    const { resourceTemplates } = await client.listResourceTemplates();
    assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate), ['livedex://documents/{key}']);

    const read = await client.readResource({ uri: notes.uri });
    const [text, meta] = read.contents as { uri: string; mimeType: string; text: string }[];
    assert.equal(text!.mimeType, 'text/plain');
    assert.match(text!.text, /lighthouse budget/);
    assert.equal(meta!.mimeType, 'application/json');
    const info = JSON.parse(meta!.text) as { key: string; status: string; indexed_at: number; metadata: { path: string } };
    assert.equal(info.key, notesKey);
    assert.equal(info.status, 'indexed');
    assert.equal(info.metadata.path, notesKey);
    assert.equal(typeof info.indexed_at, 'number');

    await assert.rejects(client.readResource({ uri: documentUri(join(folder.path, 'nope.txt')) }), (err: unknown) => err instanceof McpError && err.code === -32002);
  });

  it('tells subscribers when a document changes, and everyone when documents come or go', async () => {
    const listener = await connect(server.url);
    const updated: string[] = [];
    let listChanged = 0;
    listener.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updated.push(n.params.uri));
    listener.setNotificationHandler(ResourceListChangedNotificationSchema, () => void listChanged++);
    try {
      const uri = documentUri(notesKey);
      await listener.subscribeResource({ uri });
      await writeFile(notesKey, 'The quarterly report now mentions the windmill budget.\n');
      await waitFor(() => updated.includes(uri), 20_000);
      assert.equal(listChanged, 0, 'an edit does not change the list');
      const read = await listener.readResource({ uri });
      assert.match((read.contents[0] as { text: string }).text, /windmill/);

      const added = join(folder.path, 'added.txt');
      await writeFile(added, 'A new document about orchards.\n');
      await waitFor(() => listChanged >= 1, 20_000);
      assert.ok(!updated.includes(documentUri(added)), 'not subscribed to it');
      await listener.subscribeResource({ uri: documentUri(added) });
      await rm(added);
      await waitFor(() => listChanged >= 2 && updated.includes(documentUri(added)), 20_000);

      await listener.unsubscribeResource({ uri });
      const before = updated.length;
      await writeFile(notesKey, 'The quarterly report mentions the lighthouse budget.\n');
      await waitFor(async () => ((await structured<{ text: string }>(client, 'get_document', { key: notesKey })).text.includes('lighthouse')), 20_000);
      assert.equal(updated.length, before, 'no update after unsubscribing');
    } finally {
      await listener.close();
    }
  });

  it('a session ends with DELETE: its id is then unknown (404)', async () => {
    const transport = new StreamableHTTPClientTransport(new URL('/mcp', server.url));
    const c = new Client({ name: 'short-lived', version: '1.0.0' });
    await c.connect(transport);
    const id = transport.sessionId!;
    assert.ok(id);
    await transport.terminateSession();
    const res = await fetch(new URL('/mcp', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': id },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(res.status, 404);
    await c.close();
    const noSession = await fetch(new URL('/mcp/', server.url), { method: 'GET', headers: { accept: 'text/event-stream' } });
    assert.equal(noSession.status, 400);
  });
});

/** A deterministic chat model: answers from the first context document, citing it. */
function scriptedChat(): ChatModel {
  const complete = async (req: ChatRequest): Promise<ChatResult> => {
    const user = req.messages[req.messages.length - 1]!.content;
    const summary = req.responseFormat !== 'json' && !req.tools;
    const text = summary ? `Summary of ${user.split('\n\n').length} texts.` : JSON.stringify({ answer: `It is in the report [1] (${user.length} characters of context).` });
    return { text, toolCalls: [], usage: { prompt_tokens: user.length, completion_tokens: 7 }, model: req.model ?? 'scripted-1', finishReason: 'stop' };
  };
  return {
    name: 'scripted',
    model: 'scripted-1',
    complete,
    async *stream(req) {
      const result = await complete(req);
      yield { type: 'text', text: result.text };
      yield { type: 'done', result };
    },
  };
}

describe('MCP answer and summarize (with a chat model)', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  let client: Client;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'notes.txt'), 'The quarterly report mentions the lighthouse budget.\n');
    const registry = countingRegistry();
    registry.register(definePlugin({ kind: 'llm', name: 'scripted', description: 'tests only', options: z.object({}), create: () => scriptedChat() }));
    server = await startServer(folder.path, { dataDir: data.path, registry, config: { llm: 'scripted' } });
    await server.ready;
    client = await connect(server.url);
  });

  after(async () => {
    await client?.close();
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('lists answer and summarize with their REST schemas', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), [...BASE_TOOLS, 'answer', 'summarize'].sort());
    assert.deepEqual(tools.find((t) => t.name === 'answer')!.inputSchema.required, ['prompt']);
    assert.deepEqual(tools.find((t) => t.name === 'summarize')!.inputSchema.required, ['text_list']);
  });

  it('/v2/answer ↔ answer', async () => {
    const req = { prompt: 'Where is the lighthouse budget?', return_context_docs: true };
    const rest = await post<{ response: string; context_docs: { metadata: Record<string, unknown> }[] }>(server.url, '/v2/answer', req);
    assert.equal(rest.status, 200);
    const mcp = await structured<typeof rest.body>(client, 'answer', req);
    assert.deepEqual(mcp, rest.body);
    assert.match(mcp.response, /\[1\]/);
    assert.equal(typeof mcp.context_docs[0]!.metadata.indexed_at, 'number');
  });

  it('/v2/summarize ↔ summarize', async () => {
    const req = { text_list: ['one text', 'another text'] };
    const rest = await post<string>(server.url, '/v2/summarize', req);
    assert.equal(rest.status, 200);
    assert.deepEqual(await structured(client, 'summarize', req), { summary: rest.body });
  });

  it('bad answer input is a tool error naming the field', async () => {
    assert.equal((await toolError(client, 'answer', {})).field, 'prompt');
    assert.equal((await toolError(client, 'summarize', { text_list: [] })).field, 'text_list');
    assert.equal((await toolError(client, 'answer', { prompt: 'x', model: 'gpt-unknown' })).field, 'model');
  });
});

describe('MCP over HTTP behind the REST auth', () => {
  const token = 'mcp-http-token-0123456789';
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'notes.txt'), 'The quarterly report mentions the lighthouse budget.\n');
    server = await startServer(folder.path, { dataDir: data.path, config: { auth: { tokens: [token] } } });
    await server.ready;
  });

  after(async () => {
    await server?.close();
    await folder.cleanup();
    await data.cleanup();
  });

  it('refuses a client without the token and serves one with it', async () => {
    const anonymous = new Client({ name: 'anonymous', version: '1.0.0' });
    await assert.rejects(anonymous.connect(new StreamableHTTPClientTransport(new URL('/mcp', server.url))), /401|unauthori[sz]ed|token/i);
    const client = new Client({ name: 'authorized', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', server.url), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    try {
      const hits = (await structured<{ hits: { metadata: { path: string } }[] }>(client, 'retrieve', { query: 'lighthouse' })).hits;
      assert.equal(hits[0]!.metadata.path, join(folder.path, 'notes.txt'));
    } finally {
      await client.close();
    }
  });
});

describe('MCP resources listing', () => {
  it('pages through the documents with a cursor', async () => {
    const hub = new McpHub(createStubIndex(), { pageSize: 2 });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await hub.createServer().connect(serverSide);
    const client = new Client({ name: 'pager', version: '1.0.0' });
    await client.connect(clientSide);
    try {
      const first = await client.listResources();
      assert.equal(first.resources.length, 2);
      assert.ok(first.nextCursor);
      const second = await client.listResources({ cursor: first.nextCursor });
      assert.equal(second.resources.length, 1);
      assert.equal(second.nextCursor, undefined);
      const keys = [...first.resources, ...second.resources].map((r) => r.name);
      assert.deepEqual(keys, [...keys].sort());
      assert.equal(new Set(keys).size, 3);
      await assert.rejects(client.listResources({ cursor: 'not-a-cursor' }), (err: unknown) => err instanceof McpError && /cursor/.test(err.message));
    } finally {
      await client.close();
      await hub.close();
    }
  });
});

describe('MCP session limits', () => {
  let server: TestServer;
  let folder: Awaited<ReturnType<typeof tempDir>>;
  let data: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'a.md'), '# A\n\nAardvarks dig burrows.\n');
    server = await startServer(folder.path, { dataDir: data.path, config: { limits: { mcp_sessions: 2, mcp_session_idle_s: 1 } } });
    await server.ready;
  });
  after(async () => {
    await server.close();
    await folder.cleanup();
    await data.cleanup();
  });

  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  /** A bare session: initialized over POST, never listening on a GET stream. */
  async function bareSession(): Promise<string> {
    const res = await fetch(new URL('/mcp', server.url), {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bare', version: '1' } } }),
    });
    assert.equal(res.status, 200);
    await res.text();
    return res.headers.get('mcp-session-id')!;
  }
  const statusOf = async (id: string) => {
    const res = await fetch(new URL('/mcp', server.url), { method: 'POST', headers: { ...headers, 'mcp-session-id': id }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
    await res.text();
    return res.status;
  };

  it('ends a session unused past the idle limit, but not one listening on its stream', async () => {
    const listening = await connect(server.url);
    try {
      const bare = await bareSession();
      assert.equal(await statusOf(bare), 200);
      // Untouched (a request would count as use) for twice the limit; the sweep runs every half limit.
      await new Promise((r) => setTimeout(r, 2_600));
      assert.equal(await statusOf(bare), 404);
      assert.ok((await listening.listTools()).tools.length > 0, 'the client listening on its GET stream kept its session');
    } finally {
      await listening.close();
    }
  });

  it('ends the least recently used session to make room beyond the limit', async () => {
    const first = await bareSession();
    const second = await bareSession();
    assert.equal(await statusOf(first), 200, 'using the first makes the second the least recently used');
    const third = await bareSession();
    assert.equal(await statusOf(second), 404);
    assert.equal(await statusOf(first), 200);
    assert.equal(await statusOf(third), 200);
  });
});
