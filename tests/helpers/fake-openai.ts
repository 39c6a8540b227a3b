/** @module tests/helpers/fake-openai — a protocol-faithful fake of OpenAI's embeddings API on 127.0.0.1, with scripted faults. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the fake does with one request instead of answering it. */
export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string; retryAfterMs?: string; message?: string }
  | { kind: 'hang' }
  | { kind: 'reset' }
  | { kind: 'malformed' }
  | { kind: 'wrong_length'; length: number }
  | { kind: 'wrong_count' };

export interface RecordedRequest {
  n: number;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: unknown;
  /** The inputs of an embeddings request, as strings. */
  inputs: string[];
  at: number;
}

export interface FakeOpenAIOptions {
  /** Native vector length of every model (as if all were that model). */
  dimensions?: number;
  /** Models the server knows; others get 404 like OpenAI's model_not_found. */
  models?: string[];
  /** When set, requests without `Authorization: Bearer <apiKey>` get 401. */
  apiKey?: string;
  /** Latency added to every answer, in ms. */
  latencyMs?: number;
}

export interface FakeOpenAI {
  /** API root, e.g. http://127.0.0.1:PORT/v1. */
  url: string;
  requests: RecordedRequest[];
  /** Embeddings requests only. */
  readonly embeddingRequests: RecordedRequest[];
  /** Faults to apply to the next requests, in order (one per request). */
  faults: Fault[];
  /** Faults by 1-based embeddings request number. */
  faultAt: Map<number, Fault>;
  /** Most embeddings requests being answered at once. */
  maxConcurrent: number;
  /** Forgets recorded requests and scripted faults; request numbers start again at 1. */
  reset(): void;
  /** The vector the server gives `text` at length `dimensions` (before encoding). */
  vectorOf(text: string, dimensions?: number): Float32Array;
  close(): Promise<void>;
}

/** A deterministic unit vector from the text: xorshift seeded by FNV-1a. */
export function fakeVector(text: string, dimensions: number): Float32Array {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  let s = h >>> 0 || 1;
  const v = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    v[i] = s / 0xffffffff - 0.5;
    norm += v[i]! * v[i]!;
  }
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < dimensions; i++) v[i] = v[i]! * scale;
  return v;
}

function openaiError(res: ServerResponse, status: number, message: string, type: string, code: string | null, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ error: { message, type, param: null, code } }));
}

export async function startFakeOpenAI(opts: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const native = opts.dimensions ?? 1536;
  const models = new Set(opts.models ?? ['text-embedding-3-small', 'text-embedding-3-large', 'text-embedding-ada-002']);
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let embeddingsCount = 0;
  let concurrent = 0;

  const fake: FakeOpenAI = {
    url: '',
    requests: [],
    get embeddingRequests() {
      return fake.requests.filter((r) => r.path === '/v1/embeddings');
    },
    faults: [],
    faultAt: new Map(),
    maxConcurrent: 0,
    vectorOf: (text, dimensions = native) => fakeVector(text, dimensions),
    reset: () => {
      fake.requests.length = 0;
      fake.faults.length = 0;
      fake.faultAt.clear();
      fake.maxConcurrent = 0;
      embeddingsCount = 0;
    },
    close: async () => {
      for (const res of hanging) res.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '/').split('?')[0]!;
    let body: unknown = null;
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        return openaiError(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error', null);
      }
    }
    const record: RecordedRequest = { n: fake.requests.length + 1, method: req.method ?? '', path, headers: req.headers, body, inputs: [], at: Date.now() };
    fake.requests.push(record);

    if (opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      return openaiError(res, 401, 'Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key');
    }
    if (req.method === 'GET' && path === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [...models].map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'system' })) }));
      return;
    }
    if (path !== '/v1/embeddings') return openaiError(res, 404, `Invalid URL (${req.method} ${path})`, 'invalid_request_error', null);
    if (req.method !== 'POST') return openaiError(res, 405, `Method ${req.method} not allowed`, 'invalid_request_error', null);

    const n = ++embeddingsCount;
    const fault = fake.faultAt.get(n) ?? fake.faults.shift();
    concurrent++;
    fake.maxConcurrent = Math.max(fake.maxConcurrent, concurrent);
    res.on('close', () => concurrent--);
    if (opts.latencyMs) await new Promise((r) => setTimeout(r, opts.latencyMs));

    if (fault?.kind === 'hang') {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      const headers: Record<string, string> = {};
      if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
      if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = fault.retryAfterMs;
      const type = fault.status === 429 ? 'requests' : fault.status >= 500 ? 'server_error' : 'invalid_request_error';
      const code = fault.status === 401 ? 'invalid_api_key' : fault.status === 429 ? 'rate_limit_exceeded' : null;
      return openaiError(res, fault.status, fault.message ?? `fake fault ${fault.status}`, type, code, headers);
    }

    // Validate like OpenAI.
    const b = body as { model?: unknown; input?: unknown; dimensions?: unknown; encoding_format?: unknown; user?: unknown } | null;
    if (!b || typeof b !== 'object') return openaiError(res, 400, "you must provide a model parameter", 'invalid_request_error', null);
    if (typeof b.model !== 'string' || b.model === '') return openaiError(res, 400, 'you must provide a model parameter', 'invalid_request_error', null);
    if (!models.has(b.model)) {
      return openaiError(res, 404, `The model \`${b.model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found');
    }
    let inputs: string[];
    if (typeof b.input === 'string') inputs = [b.input];
    else if (Array.isArray(b.input) && b.input.length > 0 && b.input.every((x) => typeof x === 'string')) inputs = b.input as string[];
    else return openaiError(res, 400, "'input' must be a string or a non-empty array of strings", 'invalid_request_error', null);
    if (inputs.length > 2048) return openaiError(res, 400, "'$.input' is invalid: at most 2048 inputs", 'invalid_request_error', null);
    if (inputs.some((s) => s === '')) return openaiError(res, 400, "'$.input' is invalid: empty strings are not allowed", 'invalid_request_error', null);
    record.inputs = inputs;
    const format = b.encoding_format ?? 'float';
    if (format !== 'float' && format !== 'base64') {
      return openaiError(res, 400, `'${String(format)}' is not one of ['float', 'base64'] - 'encoding_format'`, 'invalid_request_error', null);
    }
    let dims = native;
    if (b.dimensions !== undefined) {
      if (typeof b.dimensions !== 'number' || !Number.isInteger(b.dimensions) || b.dimensions < 1) {
        return openaiError(res, 400, "'dimensions' must be a positive integer", 'invalid_request_error', null);
      }
      if (b.model === 'text-embedding-ada-002') return openaiError(res, 400, 'This model does not support specifying dimensions.', 'invalid_request_error', null);
      if (b.dimensions > native) return openaiError(res, 400, `'dimensions' must be at most ${native}`, 'invalid_request_error', null);
      dims = b.dimensions;
    }

    if (fault?.kind === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": ');
      return;
    }
    if (fault?.kind === 'wrong_length') dims = fault.length;
    const rows = fault?.kind === 'wrong_count' ? inputs.slice(1) : inputs;
    const data = rows.map((text, index) => {
      const v = fakeVector(text, dims);
      return { object: 'embedding', index, embedding: format === 'base64' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v) };
    });
    const tokens = inputs.reduce((s, t) => s + Math.max(1, Math.ceil(t.length / 4)), 0);
    res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': `req_fake_${n}` });
    res.end(JSON.stringify({ object: 'list', data, model: b.model, usage: { prompt_tokens: tokens, total_tokens: tokens } }));
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) openaiError(res, 500, String(err), 'server_error', null);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return fake;
}
