/**
 * Property-based fuzzing of every route: ≥ 10,000 generated requests (methods, paths, query
 * strings, JSON and non-JSON bodies, filters, headers) against a real server in its own
 * process. No answer may be a 5xx, the process stays alive, and its memory stays bounded.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { startFakeChat, type FakeChat } from '../helpers/fake-chat.js';
import { runCli, tempDir, waitFor, type ChildServer } from '../helpers/livedex.js';

const RUNS = 10_000;
const TOKEN = 'fuzz-token-0123456789abcdef';

/** The routes, with the fields each one reads. */
const ROUTES = [
  '/v1/retrieve',
  '/v1/statistics',
  '/v1/inputs',
  '/v2/list_documents',
  '/v1/pw_list_documents',
  '/v1/status',
  '/v1/documents/notes/a.md',
  '/v1/documents/',
  '/v2/answer',
  '/v1/pw_ai_answer',
  '/v2/summarize',
  '/v1/pw_ai_summary',
  '/v1/chat/completions',
  '/mcp',
  '/healthz',
  '/readyz',
  '/',
  '/nope',
];
const FIELDS = [
  'query', 'k', 'mode', 'fusion', 'alpha', 'metadata_filter', 'filepath_globpattern', 'return_status', 'prompt', 'filters', 'model',
  'return_context_docs', 'text_list', 'messages', 'stream', 'response_type', 'jsonrpc', 'method', 'params', 'id', 'text', 'metadata',
];

/** Values a careless or hostile client sends. */
const value = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('', ' ', '0', '-1', '1e309', 'NaN', 'true', 'hybrid', 'bm25', 'vector', 'rrf', 'convex', '*', '**/*.md', 'notes/**',
    "contains(path, 'a')", "modified_at > `0`", "globmatch('*.md', path)", '[?', '`', '\u0000', '../../etc/passwd', '%00', '{}', '[]'),
  fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.record({ role: fc.constantFrom('user', 'system', 'x'), content: fc.string({ maxLength: 20 }) })), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
);
const fields = fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 8 })), value, { maxKeys: 6 });

const body = fc.oneof(
  fields.map((f) => ({ text: JSON.stringify(f), type: 'application/json' })),
  fc.jsonValue({ maxDepth: 3 }).map((v) => ({ text: JSON.stringify(v), type: 'application/json' })),
  fc.string({ maxLength: 200 }).map((s) => ({ text: s, type: 'application/json' })),
  fc.tuple(fc.string({ maxLength: 200 }), fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/octet-stream')).map(([text, type]) => ({ text, type })),
  fc.constant(null),
);

const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
  path: fc.oneof(
    fc.constantFrom(...ROUTES),
    fc.tuple(fc.constantFrom(...ROUTES), fc.constantFrom('/', '//', '/x', '%2e%2e', '/..', '?', '#', '%')).map(([a, b]) => a + b),
    fc.string({ maxLength: 30 }).map((s) => `/v1/documents/${encodeURIComponent(s) || 'x'}`),
  ),
  query: fields.map((f) => new URLSearchParams(Object.entries(f).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v)])).toString()),
  body,
  accept: fc.constantFrom('application/json', 'text/event-stream', 'application/json, text/event-stream', '*/*', ''),
  auth: fc.constantFrom(`Bearer ${TOKEN}`, `Bearer ${TOKEN}`, `Bearer ${TOKEN}`, '', 'Bearer', 'Bearer x', 'Basic abc'),
});

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

describe('fuzzing every route', () => {
  let server: ChildServer;
  let url: string;
  let chat: FakeChat;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    chat = await startFakeChat({ respond: (req) => ({ text: `An answer to: ${req.user.slice(0, 40)} [1]` }) });
    const folder = await tempDir();
    const data = await tempDir();
    cleanups.push(folder.cleanup, data.cleanup);
    await mkdir(join(folder.path, 'notes'));
    await writeFile(join(folder.path, 'notes', 'a.md'), '# A\n\nThe heron stands still in the shallow water.');
    await writeFile(join(folder.path, 'b.txt'), 'Kingfishers dive from a perch above the stream.');
    server = runCli(['serve', folder.path, '--push', '--data-dir', data.path, '--port', '0', '--log-level', 'error', '--llm', 'openai', '--llm-model', 'fake-model'], {
      env: { LIVEDEX_AUTH_TOKEN: TOKEN, OPENAI_BASE_URL: chat.url, OPENAI_API_KEY: 'sk-fuzz' },
    });
    url = await server.url;
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200 || undefined, 60_000, 100);
  });

  after(async () => {
    server?.proc.kill('SIGKILL');
    await chat?.close();
    for (const c of cleanups) await c();
  });

  it(`answers ${RUNS} generated requests without a 5xx, stays alive, and keeps its memory bounded`, { timeout: 600_000 }, async () => {
    const pid = server.proc.pid!;
    // Warm up (parsers, MCP, answers), then measure the growth over the run.
    await fetch(`${url}/v1/retrieve`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{"query":"heron"}' });
    const startKb = rssKb(pid);
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        sent++;
        const headers: Record<string, string> = {};
        if (r.auth) headers.authorization = r.auth;
        if (r.accept) headers.accept = r.accept;
        const init: RequestInit = { method: r.method, headers, signal: AbortSignal.timeout(30_000) };
        if (r.body && r.method !== 'GET' && r.method !== 'HEAD') {
          init.body = r.body.text;
          headers['content-type'] = r.body.type;
        }
        const res = await fetch(`${url}${r.path}${r.query ? `?${r.query}` : ''}`, init);
        // Read (or drop) the whole answer: a stream must end, not hang.
        if (res.headers.get('content-type')?.includes('text/event-stream')) await res.body?.cancel();
        else await res.arrayBuffer();
        assert.ok(res.status < 500, `${r.method} ${r.path}?${r.query} → ${res.status}`);
      }),
      { numRuns: RUNS, seed: 20261123, endOnFailure: true },
    );
    assert.equal(sent >= RUNS, true);
    assert.equal(server.proc.exitCode, null, 'the server is alive');
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const grownMb = (rssKb(pid) - startKb) / 1024;
    assert.ok(grownMb < 256, `RSS grew by ${grownMb.toFixed(0)} MB over ${RUNS} requests`);
  });
});
