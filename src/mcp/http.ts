/**
 * @module mcp/http — MCP over streamable HTTP at `/mcp` on the REST app: stateful sessions
 * (one `Server` and transport each), ended by the client's DELETE, after `sessionIdleMs` unused,
 * to make room beyond `maxSessions` (the least recently used goes), or when the server stops.
 * A client whose session ended gets 404 and, as the MCP spec asks of it, initializes a new one.
 */
import { randomUUID } from 'node:crypto';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { Hono } from 'hono';
import type { LiveIndexApi } from '../core/types.js';
import { McpHub, type McpHubOptions } from './server.js';

export interface McpSessionLimits {
  /** Open sessions at most (default 1000); a new one ends the least recently used. */
  maxSessions?: number;
  /** A session no request has used for this long ends (default 30 minutes). */
  sessionIdleMs?: number;
}

export interface McpHttpOptions extends McpHubOptions, McpSessionLimits {
  /** Ends every session when aborted (the server is stopping). */
  signal?: AbortSignal;
}

const DEFAULT_MAX_SESSIONS = 1000;
const DEFAULT_SESSION_IDLE_MS = 30 * 60_000;

/** A JSON-RPC error as the transport itself would answer it (no request id: it was never read). */
function rpcError(status: number, code: number, message: string): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

/**
 * Routes streamable-HTTP requests to their session: a POST without `mcp-session-id` may open
 * one (an `initialize`), any other request must name a live session.
 *
 * @example
 * const mcp = new McpHttpHandler(index, { logger });
 * app.all('/mcp', (c) => mcp.handle(c.req.raw));
 * // on shutdown
 * await mcp.close();
 */
export class McpHttpHandler {
  readonly #hub: McpHub;
  /** Live sessions, least recently used first (a use moves a session to the end). */
  readonly #sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  readonly #lastUsed = new Map<string, number>();
  /** Open GET streams per session: a session listening for notifications is not idle. */
  readonly #listening = new Map<string, number>();
  readonly #maxSessions: number;
  readonly #idleMs: number;
  readonly #sweeper: NodeJS.Timeout;
  #closed = false;

  constructor(index: LiveIndexApi, opts: McpHubOptions & McpSessionLimits = {}) {
    const { maxSessions = DEFAULT_MAX_SESSIONS, sessionIdleMs = DEFAULT_SESSION_IDLE_MS, ...hub } = opts;
    this.#hub = new McpHub(index, hub);
    this.#maxSessions = maxSessions;
    this.#idleMs = sessionIdleMs;
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(50, Math.min(60_000, sessionIdleMs / 2)));
    this.#sweeper.unref();
  }

  /** Open sessions. */
  get sessions(): number {
    return this.#sessions.size;
  }

  async handle(req: Request): Promise<Response> {
    if (this.#closed) return rpcError(503, -32000, 'the server is shutting down');
    const sessionId = req.headers.get('mcp-session-id');
    if (sessionId) {
      const transport = this.#sessions.get(sessionId);
      if (!transport) return rpcError(404, -32001, `no MCP session ${sessionId} (it ended, sat unused, or the server restarted): initialize a new one`);
      this.#touch(sessionId, transport);
      const res = await transport.handleRequest(req);
      return req.method === 'GET' && res.body ? this.#whileOpen(sessionId, res) : res;
    }
    if (req.method !== 'POST') return rpcError(400, -32000, `${req.method} /mcp needs an mcp-session-id header: open a session with a POST initialize first`);

    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        this.#touch(id, transport);
        this.#evictBeyondLimit();
      },
      onsessionclosed: (id) => this.#forget(id),
    });
    transport.onclose = () => {
      if (transport.sessionId) this.#forget(transport.sessionId);
    };
    const server = this.#hub.createServer();
    await server.connect(transport);
    const res = await transport.handleRequest(req);
    // Anything but an initialize got an error from the transport: no session to keep.
    if (!transport.sessionId) await server.close();
    return res;
  }

  #touch(id: string, transport: WebStandardStreamableHTTPServerTransport): void {
    this.#sessions.delete(id);
    this.#sessions.set(id, transport);
    this.#lastUsed.set(id, Date.now());
  }

  #forget(id: string): void {
    this.#sessions.delete(id);
    this.#lastUsed.delete(id);
    this.#listening.delete(id);
  }

  /** Counts the session as listening until the stream of `res` ends (either side). */
  #whileOpen(id: string, res: Response): Response {
    this.#listening.set(id, (this.#listening.get(id) ?? 0) + 1);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const n = (this.#listening.get(id) ?? 1) - 1;
      if (n > 0) this.#listening.set(id, n);
      else this.#listening.delete(id);
      if (this.#sessions.has(id)) this.#lastUsed.set(id, Date.now());
    };
    const reader = res.body!.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { value, done: end } = await reader.read();
          if (end) {
            finish();
            controller.close();
          } else controller.enqueue(value);
        } catch (err) {
          finish();
          controller.error(err);
        }
      },
      cancel(reason) {
        finish();
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  }

  #end(id: string): void {
    const transport = this.#sessions.get(id);
    this.#forget(id);
    void transport?.close().catch(() => {});
  }

  #evictBeyondLimit(): void {
    while (this.#sessions.size > this.#maxSessions) {
      const oldest = this.#sessions.keys().next().value as string;
      this.#end(oldest);
    }
  }

  /** Ends the sessions unused for longer than the idle limit. */
  #sweep(): void {
    const cutoff = Date.now() - this.#idleMs;
    // Least recently used first: stop at the first one used since the cutoff.
    for (const id of [...this.#sessions.keys()]) {
      if ((this.#lastUsed.get(id) ?? 0) > cutoff) break;
      if (!this.#listening.has(id)) this.#end(id);
    }
  }

  /** Ends every session (their streams close) and refuses new ones. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    await this.#hub.close();
    await Promise.all([...this.#sessions.values()].map((t) => t.close().catch(() => {})));
    this.#sessions.clear();
    this.#lastUsed.clear();
    this.#listening.clear();
  }
}

/**
 * Serves MCP at `/mcp` (and `/mcp/`, which the app normalizes) on `app`; the sessions end
 * when `opts.signal` aborts.
 */
export function mountMcp(app: Hono, index: LiveIndexApi, opts: McpHttpOptions = {}): McpHttpHandler {
  const { signal, ...hubOptions } = opts;
  const handler = new McpHttpHandler(index, hubOptions);
  app.all('/mcp', (c) => handler.handle(c.req.raw));
  if (signal?.aborted) void handler.close();
  else signal?.addEventListener('abort', () => void handler.close(), { once: true });
  return handler;
}
