/**
 * @module adapters/client — a small HTTP client of livedex's `/v1/retrieve`, shared by the
 * LangChain and LlamaIndex adapters. It imports nothing but types from the server code, so
 * importing an adapter never loads the native engine.
 */
import { createHash } from 'node:crypto';
import type { Fusion, Hit, Metadata, RetrievalMode } from '../core/types.js';

/** How to reach a livedex server. */
export interface LivedexConnection {
  /** Base URL of the server, e.g. `http://127.0.0.1:8000` (a path prefix is kept). */
  url: string;
  /** Sent as `Authorization: Bearer <apiKey>`; never logged nor put in error messages. */
  apiKey?: string;
  /**
   * Extra request headers (a proxy's auth, tracing). `apiKey` wins over an `authorization`
   * here, which wins over credentials in the URL (`http://user:pass@host`, sent as Basic auth).
   */
  headers?: Record<string, string>;
  /** How long one request may take, in milliseconds (default 15 000, as Pathway's `DocumentStoreClient`). */
  timeoutMs?: number;
  /** The fetch to use (default: the global one); for proxies and instrumentation. */
  fetch?: typeof fetch;
}

/** What to ask `/v1/retrieve` for besides the query (camel case; sent in the server's snake case). */
export interface RetrieveOptions {
  /** How many hits (default: the server's, 3). */
  k?: number;
  /** `hybrid` (default), `vector` or `bm25`. */
  mode?: RetrievalMode;
  /** JMESPath over chunk metadata, e.g. ``contains(path, `guide`)``. */
  metadataFilter?: string | null;
  /** Glob over `metadata.path`, e.g. `**\/*.md`. */
  filepathGlobpattern?: string | null;
  /** Weight of the vector leg in convex fusion, 0 to 1 (implies `fusion: 'convex'`). */
  alpha?: number;
  /** How hybrid mode fuses: `rrf` or `convex`. */
  fusion?: Fusion;
}

/** One hit as it comes from the server (`scores` is empty when the server is Pathway's). */
export type RetrievedHit = Hit;

/** Why a call failed: `unreachable`, `timeout`, `bad_response`, `invalid_option`, or the server's own code (e.g. `invalid_filter`). */
export class LivedexClientError extends Error {
  /** A stable code; for an HTTP error, the server's `error.code` (or `http_<status>` when it sent none). */
  readonly code: string;
  /** The HTTP status the server answered, when it answered. */
  readonly status: number | undefined;
  /** The option or request field at fault, when known. */
  readonly field: string | undefined;

  constructor(code: string, message: string, opts: { status?: number; field?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LivedexClientError';
    this.code = code;
    this.status = opts.status;
    this.field = opts.field;
  }
}

const MODES: ReadonlySet<string> = new Set<RetrievalMode>(['hybrid', 'vector', 'bm25']);
const FUSIONS: ReadonlySet<string> = new Set<Fusion>(['rrf', 'convex']);
const DEFAULT_TIMEOUT_MS = 15_000;

function invalid(field: string, message: string): LivedexClientError {
  return new LivedexClientError('invalid_option', `${field} ${message}`, { field });
}

/** Checks retrieve options before any request, so a typo fails where it was made. */
export function checkRetrieveOptions(opts: RetrieveOptions): void {
  const { k, mode, alpha, fusion, metadataFilter, filepathGlobpattern } = opts;
  if (k !== undefined && (!Number.isInteger(k) || k < 1)) throw invalid('k', `must be an integer ≥ 1 (got ${String(k)})`);
  if (mode !== undefined && !MODES.has(mode)) throw invalid('mode', `must be one of hybrid, vector, bm25 (got ${String(mode)})`);
  if (fusion !== undefined && !FUSIONS.has(fusion)) throw invalid('fusion', `must be rrf or convex (got ${String(fusion)})`);
  if (alpha !== undefined && !(typeof alpha === 'number' && alpha >= 0 && alpha <= 1)) {
    throw invalid('alpha', `must be a number from 0 to 1 (got ${String(alpha)})`);
  }
  if (alpha !== undefined && fusion === 'rrf') throw invalid('alpha', 'applies to convex fusion only: drop fusion or set it to convex');
  for (const [field, value] of [['metadataFilter', metadataFilter], ['filepathGlobpattern', filepathGlobpattern]] as const) {
    if (value != null && typeof value !== 'string') throw invalid(field, `must be a string (got ${typeof value})`);
  }
}


/** The innermost cause's message (`fetch failed` hides `connect ECONNREFUSED …`). */
function rootCause(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause !== undefined; depth++) current = current.cause;
  if (current instanceof AggregateError && current.errors.length > 0) current = current.errors[0];
  return current instanceof Error ? current.message : String(current);
}

/**
 * A client of one livedex server's retrieval route.
 *
 * @example
 * const client = new LivedexClient({ url: 'http://127.0.0.1:8000' });
 * const hits = await client.retrieve('how are deletions handled?', { k: 4, mode: 'hybrid' });
 */
export class LivedexClient {
  readonly #base: URL;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(conn: LivedexConnection) {
    if (!conn || typeof conn.url !== 'string' || conn.url.trim() === '') {
      throw invalid('url', 'is required: the base URL of a livedex server, e.g. http://127.0.0.1:8000');
    }
    let base: URL;
    try {
      base = new URL(conn.url.trim());
    } catch {
      throw invalid('url', `is not a URL (got ${JSON.stringify(conn.url)})`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw invalid('url', `must be http or https (got ${base.protocol})`);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    // fetch refuses URLs with credentials: `http://user:pass@host` becomes a Basic header.
    const basic = base.username || base.password ? `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}` : null;
    base.username = '';
    base.password = '';
    this.#base = base;
    const timeoutMs = conn.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs))) {
      throw invalid('timeoutMs', `must be a positive number of milliseconds (got ${String(conn.timeoutMs)})`);
    }
    this.#timeoutMs = timeoutMs;
    this.#headers = { accept: 'application/json', 'content-type': 'application/json' };
    if (basic !== null) this.#headers.authorization = `Basic ${Buffer.from(basic, 'utf8').toString('base64')}`;
    for (const [name, value] of Object.entries(conn.headers ?? {})) this.#headers[name.toLowerCase()] = String(value);
    if (conn.apiKey !== undefined) {
      if (typeof conn.apiKey !== 'string' || conn.apiKey === '') throw invalid('apiKey', 'must be a non-empty string');
      this.#headers.authorization = `Bearer ${conn.apiKey}`;
    }
    this.#fetch = conn.fetch ?? globalThis.fetch;
  }

  /** The server's base URL, without credentials. */
  get url(): string {
    return this.#base.href.replace(/\/$/, '');
  }

  /**
   * Asks `/v1/retrieve` for the chunks that best answer `query`.
   * Throws `LivedexClientError`: `unreachable` (the URL is named), `timeout`, the server's
   * code with its message for a 4xx/5xx, `bad_response` when the answer is not a hit list.
   */
  async retrieve(query: string, opts: RetrieveOptions = {}, signal?: AbortSignal): Promise<RetrievedHit[]> {
    if (typeof query !== 'string') throw invalid('query', `must be a string (got ${typeof query})`);
    checkRetrieveOptions(opts);
    const body: Record<string, unknown> = { query };
    if (opts.k !== undefined) body.k = opts.k;
    if (opts.mode !== undefined) body.mode = opts.mode;
    if (opts.metadataFilter != null && opts.metadataFilter !== '') body.metadata_filter = opts.metadataFilter;
    if (opts.filepathGlobpattern != null && opts.filepathGlobpattern !== '') body.filepath_globpattern = opts.filepathGlobpattern;
    if (opts.alpha !== undefined) body.alpha = opts.alpha;
    if (opts.fusion !== undefined) body.fusion = opts.fusion;
    const answer = await this.#post('v1/retrieve', body, signal);
    if (!Array.isArray(answer)) throw this.#badResponse('v1/retrieve', 'expected a list of hits');
    return answer.map((raw, i) => this.#toHit(raw, i));
  }

  #toHit(raw: unknown, i: number): RetrievedHit {
    const hit = raw as Partial<Hit> | null;
    if (!hit || typeof hit !== 'object' || typeof hit.text !== 'string') throw this.#badResponse('v1/retrieve', `hit ${i} has no text`);
    const metadata: Metadata = hit.metadata && typeof hit.metadata === 'object' ? hit.metadata : {};
    const dist = typeof hit.dist === 'number' ? hit.dist : Number.NaN;
    const scores = hit.scores && typeof hit.scores === 'object' ? hit.scores : {};
    return { text: hit.text, metadata, dist, scores };
  }

  #badResponse(route: string, what: string): LivedexClientError {
    return new LivedexClientError('bad_response', `livedex at ${this.url} answered /${route} with an unexpected body: ${what} (is this a livedex or Pathway server?)`);
  }

  async #post(route: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const target = new URL(route, this.#base);
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(target, { method: 'POST', headers: this.#headers, body: JSON.stringify(body), signal: combined });
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) {
        throw new LivedexClientError('timeout', `livedex at ${this.url} did not answer /${route} within ${this.#timeoutMs} ms (raise timeoutMs?)`, {
          cause: err,
        });
      }
      throw new LivedexClientError(
        'unreachable',
        `livedex at ${this.url} is unreachable (${rootCause(err)}); is \`livedex serve\` running there?`,
        { cause: err },
      );
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)?.error;
      const message = typeof error?.message === 'string' ? error.message : text.trim().slice(0, 300) || res.statusText || 'no message';
      const code = typeof error?.code === 'string' ? error.code : `http_${res.status}`;
      const field = typeof error?.field === 'string' ? error.field : undefined;
      throw new LivedexClientError(code, `livedex at ${this.url} answered ${res.status} to /${route}: ${message}`, {
        status: res.status,
        ...(field ? { field } : {}),
      });
    }
    if (parsed === undefined) throw this.#badResponse(route, 'the body is not JSON');
    return parsed;
  }
}

/**
 * A stable id for a hit's chunk: `metadata.chunk_id` when the server sends one, else a hash
 * of its document path and text, so the same chunk keeps its id across queries.
 */
export function chunkId(hit: Pick<Hit, 'text' | 'metadata'>): string {
  const own = hit.metadata.chunk_id;
  if (typeof own === 'string' && own !== '') return own;
  const path = typeof hit.metadata.path === 'string' ? hit.metadata.path : '';
  return createHash('sha256').update(path).update('\u0000').update(hit.text).digest('hex').slice(0, 32);
}
