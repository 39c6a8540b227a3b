/**
 * @module server/openapi — the OpenAPI 3.1 description of the REST API at `/openapi.json`,
 * built from the same zod schemas the routes validate with (`z.toJSONSchema`: OpenAPI 3.1
 * uses JSON Schema 2020-12), and a plain HTML reference of it at `/docs` (rendered here: the
 * server may be offline, so no CDN viewer).
 */
import type { Hono } from 'hono';
import { z } from 'zod';
import {
  AnswerResponseSchema,
  DocumentInfoSchema,
  ErrorResponseSchema,
  HealthSchema,
  ListDocumentsRequestSchema,
  ListDocumentsResponseSchema,
  ReadinessSchema,
  RetrieveResponseSchema,
  StatisticsRequestSchema,
  StatisticsSchema,
  SummarizeResponseSchema,
  answerRequestSchema,
  chatCompletionRequestSchema,
  retrieveRequestSchema,
  summarizeRequestSchema,
} from './schemas.js';

// ───────────────────────── responses the routes build without a schema of their own ─────────────────────────

/** `GET /v1/status`. */
export const StatusSchema = z.object({
  ready: z.boolean().describe('True once the index serves: the first sync of every source is indexed, or, on a restart, the stored index is open (its sources are then listed behind it).'),
  synced: z.boolean().describe('True once every source has been listed since the start and what the listing found is indexed.'),
  documents: z.object({ total: z.number().int(), pending: z.number().int(), indexed: z.number().int(), failed: z.number().int() }),
  chunks: z.number().int(),
  queue: z.object({ depth: z.number().int().describe('Changes waiting.'), inFlight: z.number().int().describe('Changes being processed.') }),
  lastSeq: z.number().int().describe('Sequence number of the last commit.'),
  model: z.object({
    active: z.string().describe('The embedding model serving queries.'),
    building: z.object({ model: z.string(), done: z.number().int(), total: z.number().int() }).nullable().describe('A model whose vectors are being built, if any.'),
  }),
  sources: z.array(
    z.looseObject({
      id: z.string(),
      state: z.enum(['syncing', 'idle', 'error']),
      error: z.string().nullable(),
      last_sync_at: z.number().nullable().describe('Unix seconds.'),
      failures: z.number().int().describe('Failures in a row.'),
      skipped: z
        .object({ count: z.number().int(), paths: z.array(z.object({ path: z.string(), reason: z.string() })) })
        .optional()
        .describe('Paths the source found but could not index, with why: the first few (`paths`) and how many in all (`count`).'),
    }),
  ),
});

/** `PUT /v1/documents/{key}` with `application/json`. */
export const PushEnvelopeSchema = z.strictObject({
  text: z.string().describe('The document text (parsed by the parser of the key\'s extension, else as plain text).'),
  metadata: z.record(z.string(), z.unknown()).optional().describe('Metadata stored with the document.'),
});
export const PushAcceptedSchema = z.object({
  key: z.string().describe('The full document key (prefixed with the push source name).'),
  version: z.string(),
  created: z.boolean().describe('False when a document with this key was replaced.'),
  status: z.literal('accepted'),
});
export const PushDeletedSchema = z.object({ key: z.string(), deleted: z.literal(true) });

/** `POST /v1/chat/completions`, not streamed: OpenAI's chat completion object plus citations. */
export const ChatCompletionSchema = z.looseObject({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(z.looseObject({ index: z.number().int(), message: z.looseObject({ role: z.literal('assistant'), content: z.string().nullable() }), finish_reason: z.string().nullable() })),
  usage: z.looseObject({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }).optional(),
});
export const ModelListSchema = z.object({
  object: z.literal('list'),
  data: z.array(z.object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string() })),
});
/** A JSON-RPC 2.0 message as MCP sends it back (result or error). */
export const JsonRpcResponseSchema = z.looseObject({
  jsonrpc: z.literal('2.0'),
  id: z.union([z.string(), z.number()]).nullable().optional(),
  result: z.unknown().optional(),
  error: z.looseObject({ code: z.number().int(), message: z.string() }).optional(),
});

// ───────────────────────── the operations ─────────────────────────

type Method = 'get' | 'post' | 'put' | 'delete';

/** One documented operation; `example` is what the contract test sends. */
export interface Operation {
  path: string;
  method: Method;
  summary: string;
  tags: string[];
  /** Input: JSON body (POST/PUT), query string (GET) or path. */
  input?: { schema: z.ZodType; in: 'body' | 'query'; example?: Record<string, unknown> };
  /** Path parameter `key`, with its example. */
  pathKey?: string;
  /** Responses by status; a zod schema (JSON) or a media type with a description (text, HTML). */
  responses: Record<number, { description: string; schema?: z.ZodType; mediaType?: string }>;
  /** Extra request headers the example needs. */
  headers?: Record<string, string>;
  /** Whether the bearer token is needed (all but the probes). */
  open?: boolean;
}

const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, { description: ERROR_TEXT[s] ?? 'error', schema: ErrorResponseSchema }]));
const ERROR_TEXT: Record<number, string> = {
  400: 'The request is not valid: the error names the field.',
  401: 'No valid bearer token.',
  403: 'Refused: the token may not do this, or the Host or Origin is not one this server answers (the error names which).',
  404: 'Not found.',
  413: 'The body is too large.',
  408: 'The headers or the body did not arrive in time (limits.header_timeout_ms, limits.body_timeout_ms).',
  415: 'The body is not application/json (or, on the push route, no parser reads its content type).',
  429: 'Too many requests; see Retry-After.',
  503: 'Not available now (no chat model configured, or the model cannot be reached).',
};

/** Both GET (query string) and POST (JSON body) of a Pathway-style route. */
function getAndPost(path: string, summary: string, tags: string[], schema: z.ZodType, example: Record<string, unknown>, responses: Operation['responses']): Operation[] {
  return [
    { path, method: 'post', summary, tags, input: { schema, in: 'body', example }, responses },
    // A query string carries scalars only: a GET gets the example when it has nothing else.
    { path, method: 'get', summary: `${summary} (fields in the query string)`, tags, input: { schema, in: 'query', ...(Object.values(example).every((v) => v === null || typeof v !== 'object') ? { example } : {}) }, responses },
  ];
}

const RETRIEVE = retrieveRequestSchema();

/** Every operation of the REST API (the app's routes test checks none is missing). */
export function operations(): Operation[] {
  const list: Operation[] = [];
  const retrieveOk = { 200: { description: 'Hits, best first.', schema: RetrieveResponseSchema }, ...errors(400, 401, 429, 503) };
  list.push(...getAndPost('/v1/retrieve', 'Search the index (hybrid, vector or BM25)', ['search'], RETRIEVE, { query: 'harbor lantern', k: 2, mode: 'hybrid' }, retrieveOk));
  list.push(...getAndPost('/v1/statistics', 'Counts and freshness of the index', ['documents'], StatisticsRequestSchema, {}, { 200: { description: 'Statistics.', schema: StatisticsSchema }, ...errors(401) }));
  for (const path of ['/v1/inputs', '/v2/list_documents', '/v1/pw_list_documents']) {
    list.push(...getAndPost(path, 'List documents with their metadata (and indexing status)', ['documents'], ListDocumentsRequestSchema, { return_status: true }, { 200: { description: 'One metadata object per document.', schema: ListDocumentsResponseSchema }, ...errors(400, 401) }));
  }
  list.push(
    { path: '/v1/documents/{key}', method: 'put', summary: 'Push a document (raw bytes, or JSON {text, metadata})', tags: ['push'], pathKey: 'notes/example.md', input: { schema: PushEnvelopeSchema, in: 'body', example: { text: '# Example\n\nThe lighthouse keeper logs the tides.', metadata: { team: 'docs' } } }, responses: { 202: { description: 'Accepted: it will be indexed.', schema: PushAcceptedSchema }, ...errors(400, 401, 403, 404, 413, 415) } },
    { path: '/v1/documents/{key}', method: 'get', summary: 'A document with its status and error', tags: ['documents'], pathKey: 'push:notes/example.md', responses: { 200: { description: 'The document.', schema: DocumentInfoSchema }, ...errors(401, 404) } },
    { path: '/v1/documents/{key}', method: 'delete', summary: 'Delete a pushed document', tags: ['push'], pathKey: 'notes/example.md', responses: { 200: { description: 'Deleted.', schema: PushDeletedSchema }, ...errors(401, 403, 404) } },
    { path: '/v1/status', method: 'get', summary: 'Readiness, counts by status, queue, model and sources', tags: ['operations'], responses: { 200: { description: 'Status.', schema: StatusSchema }, ...errors(401) } },
    { path: '/healthz', method: 'get', summary: 'Liveness probe (no token needed)', tags: ['operations'], open: true, responses: { 200: { description: 'Alive.', schema: HealthSchema } } },
    { path: '/readyz', method: 'get', summary: 'Readiness probe (no token needed)', tags: ['operations'], open: true, responses: { 200: { description: 'Ready.', schema: ReadinessSchema }, 503: { description: 'The first sync is not finished.', schema: ReadinessSchema } } },
    { path: '/metrics', method: 'get', summary: 'Prometheus metrics', tags: ['operations'], responses: { 200: { description: 'Prometheus text format 0.0.4.', mediaType: 'text/plain' }, ...errors(401) } },
    { path: '/openapi.json', method: 'get', summary: 'This description', tags: ['operations'], responses: { 200: { description: 'OpenAPI 3.1 document.', mediaType: 'application/json' }, ...errors(401) } },
    { path: '/docs', method: 'get', summary: 'API reference (HTML)', tags: ['operations'], responses: { 200: { description: 'HTML page.', mediaType: 'text/html' }, ...errors(401) } },
    { path: '/', method: 'get', summary: 'Status page (HTML; no token needed: it holds no data, its API calls carry the token)', tags: ['operations'], open: true, responses: { 200: { description: 'HTML page.', mediaType: 'text/html' } } },
  );
  // MCP answers its own errors as JSON-RPC (a missing session, a bad message); the token check is ours.
  const mcpErrors = { 400: { description: 'Not a valid MCP request (e.g. no session).', schema: JsonRpcResponseSchema }, ...errors(401) };
  const answerOk = { 200: { description: 'The answer with its citations (server-sent events with stream=true).', schema: AnswerResponseSchema }, ...errors(400, 401, 503) };
  for (const path of ['/v2/answer', '/v1/pw_ai_answer']) list.push(...getAndPost(path, 'Answer a question from the documents', ['answers'], answerRequestSchema, { prompt: 'What does the harbor lantern do?', return_context_docs: true }, answerOk));
  const summaryOk = { 200: { description: 'The summary, a bare JSON string.', schema: SummarizeResponseSchema }, ...errors(400, 401, 503) };
  for (const path of ['/v2/summarize', '/v1/pw_ai_summary']) list.push(...getAndPost(path, 'Summarize texts', ['answers'], summarizeRequestSchema, { text_list: ['The harbor lantern burns all night.', 'The meadow orchard grows quinces.'] }, summaryOk));
  list.push(
    { path: '/v1/chat/completions', method: 'post', summary: 'OpenAI-compatible chat, answered from the documents', tags: ['answers'], input: { schema: chatCompletionRequestSchema, in: 'body', example: { model: 'livedex', messages: [{ role: 'user', content: 'What does the harbor lantern do?' }] } }, responses: { 200: { description: 'A chat completion (server-sent chunks with stream=true).', schema: ChatCompletionSchema }, ...errors(400, 401, 503) } },
    { path: '/v1/models', method: 'get', summary: 'Models of the OpenAI-compatible endpoint', tags: ['answers'], responses: { 200: { description: 'Model list.', schema: ModelListSchema }, ...errors(401, 503) } },
    {
      path: '/mcp',
      method: 'post',
      summary: 'Model Context Protocol (streamable HTTP): JSON-RPC requests',
      tags: ['mcp'],
      headers: { accept: 'application/json, text/event-stream' },
      input: { schema: z.looseObject({ jsonrpc: z.literal('2.0'), id: z.union([z.string(), z.number()]).optional(), method: z.string(), params: z.unknown().optional() }), in: 'body', example: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'contract-test', version: '1.0.0' } } } },
      responses: { 200: { description: 'A JSON-RPC response (as JSON or as one server-sent event).', schema: JsonRpcResponseSchema }, ...mcpErrors },
    },
    { path: '/mcp', method: 'get', summary: 'MCP server-to-client event stream of a session', tags: ['mcp'], responses: { 200: { description: 'Server-sent events.', mediaType: 'text/event-stream' }, ...mcpErrors } },
    { path: '/mcp', method: 'delete', summary: 'End an MCP session', tags: ['mcp'], responses: { 200: { description: 'Session ended.', mediaType: 'application/json' }, ...mcpErrors, 404: { description: 'No such session.', schema: JsonRpcResponseSchema } } },
  );
  // What every route may answer before it runs: a foreign Host or Origin, a slow request, a body that is not JSON.
  for (const op of list) {
    const common = op.open ? errors(403, 408) : errors(403, 408, ...(op.input?.in === 'body' ? [415] : []));
    op.responses = { ...common, ...op.responses };
  }
  return list;
}

// ───────────────────────── the document ─────────────────────────

/** The JSON Schema of `schema`, as OpenAPI 3.1 embeds it. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function operationId(op: Operation): string {
  const name = op.path.replace(/[{}]/g, '').split(/[^A-Za-z0-9]+/).filter(Boolean).map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('');
  return `${op.method}${name ? name[0]!.toUpperCase() + name.slice(1) : 'Root'}`;
}

/** The OpenAPI 3.1 document of the API. */
export function openApiDocument(opts: { version?: string; serverUrl?: string } = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations()) {
    const parameters: unknown[] = [];
    if (op.pathKey !== undefined) {
      parameters.push({ name: 'key', in: 'path', required: true, description: 'The document key (URL-encoded; may contain /).', schema: { type: 'string' }, example: op.pathKey });
    }
    let requestBody: unknown;
    if (op.input?.in === 'query') {
      const schema = jsonSchema(op.input.schema, 'input') as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
      for (const [name, prop] of Object.entries(schema.properties ?? {})) {
        const { description, ...propSchema } = prop;
        const example = op.input.example?.[name];
        parameters.push({
          name,
          in: 'query',
          required: schema.required?.includes(name) ?? false,
          ...(typeof description === 'string' ? { description } : {}),
          schema: propSchema,
          ...(example !== undefined ? { example } : {}),
        });
      }
    } else if (op.input) {
      requestBody = { required: true, content: { 'application/json': { schema: jsonSchema(op.input.schema, 'input'), ...(op.input.example ? { example: op.input.example } : {}) } } };
    }
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(op.responses)) {
      responses[status] = {
        description: r.description,
        content: r.schema ? { 'application/json': { schema: jsonSchema(r.schema, 'output') } } : { [r.mediaType ?? 'application/json']: {} },
      };
    }
    (paths[op.path] ??= {})[op.method] = {
      operationId: operationId(op),
      summary: op.summary,
      tags: op.tags,
      ...(op.open ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'livedex',
      version: opts.version ?? '0.0.0',
      description: 'A live hybrid (BM25 + vector) index over documents, wire-compatible with Pathway\'s document store and question answerer.',
    },
    ...(opts.serverUrl ? { servers: [{ url: opts.serverUrl }] } : {}),
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token of auth.tokens; read scope for queries, admin to push and delete.' } } },
    security: [{ bearer: [] }],
    paths,
  };
}

// ───────────────────────── /docs ─────────────────────────

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** The API reference as one plain HTML page rendered from the OpenAPI document. */
export function docsPage(doc: Record<string, unknown>): string {
  const info = doc.info as { title: string; version: string; description: string };
  const paths = doc.paths as Record<string, Record<string, { summary: string; parameters?: Array<{ name: string; in: string; required: boolean; description?: string }>; requestBody?: { content: Record<string, { schema: unknown; example: unknown }> }; responses: Record<string, { description: string; content: Record<string, { schema?: unknown }> }> }>>;
  const sections: string[] = [];
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const params = (op.parameters ?? []).map((p) => `<li><code>${escapeHtml(p.name)}</code> (${p.in}${p.required ? ', required' : ''})${p.description ? ` — ${escapeHtml(p.description)}` : ''}</li>`).join('');
      const body = op.requestBody?.content['application/json'];
      const responses = Object.entries(op.responses)
        .map(([status, r]) => {
          const schema = r.content['application/json']?.schema;
          return `<li><b>${status}</b> ${escapeHtml(r.description)}${schema ? `<details><summary>schema</summary><pre>${escapeHtml(JSON.stringify(schema, null, 2))}</pre></details>` : ''}</li>`;
        })
        .join('');
      sections.push(
        `<section class="op" id="${escapeHtml(`${method}-${path}`)}"><h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h3><p>${escapeHtml(op.summary)}</p>` +
          (params ? `<h4>Parameters</h4><ul>${params}</ul>` : '') +
          (body ? `<h4>Request body</h4><pre class="example">${escapeHtml(JSON.stringify(body.example, null, 2))}</pre><details><summary>schema</summary><pre>${escapeHtml(JSON.stringify(body.schema, null, 2))}</pre></details>` : '') +
          `<h4>Responses</h4><ul>${responses}</ul></section>`,
      );
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(info.title)} API reference</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}code,pre{font-family:ui-monospace,monospace}pre{background:#f5f5f5;padding:.6em;overflow:auto;font-size:13px}.op{border-top:1px solid #ddd;padding:.5em 0}.m{display:inline-block;min-width:4.5em;padding:0 .4em;border-radius:3px;color:#fff;font-size:13px;text-align:center}.get{background:#2b7}.post{background:#37c}.put{background:#c83}.delete{background:#c33}</style></head>
<body><h1>${escapeHtml(info.title)} API reference <small>${escapeHtml(info.version)}</small></h1><p>${escapeHtml(info.description)}</p><p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI 3.1). Every route but <code>/healthz</code>, <code>/readyz</code> and <code>/</code> needs <code>Authorization: Bearer &lt;token&gt;</code> when the server has tokens.</p>
${sections.join('\n')}</body></html>`;
}

/** Mounts `GET /openapi.json` and `GET /docs` (built once, on first request). */
export function mountOpenApi(app: Hono, opts: { version?: string } = {}): void {
  let doc: Record<string, unknown> | null = null;
  let html: string | null = null;
  const document = () => (doc ??= openApiDocument(opts));
  app.get('/openapi.json', (c) => c.json(document()));
  app.get('/docs', (c) => c.html((html ??= docsPage(document()))));
}
