/**
 * @module mcp/http — MCP over streamable HTTP at `/mcp` on the REST app: stateful sessions
 * (one `Server` and transport each), ended by the client's DELETE or when the server stops.
 */
import { randomUUID } from 'node:crypto';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { Hono } from 'hono';
import type { LiveIndexApi } from '../core/types.js';
import { McpHub, type McpHubOptions } from './server.js';

export interface McpHttpOptions extends McpHubOptions {
  /** Ends every session when aborted (the server is stopping). */
  signal?: AbortSignal;
}

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
  readonly #sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  #closed = false;

  constructor(index: LiveIndexApi, opts: McpHubOptions = {}) {
    this.#hub = new McpHub(index, opts);
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
      if (!transport) return rpcError(404, -32001, `no MCP session ${sessionId} (it ended or the server restarted): initialize a new one`);
      return transport.handleRequest(req);
    }
    if (req.method !== 'POST') return rpcError(400, -32000, `${req.method} /mcp needs an mcp-session-id header: open a session with a POST initialize first`);

    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void this.#sessions.set(id, transport),
      onsessionclosed: (id) => void this.#sessions.delete(id),
    });
    transport.onclose = () => {
      if (transport.sessionId) this.#sessions.delete(transport.sessionId);
    };
    const server = this.#hub.createServer();
    await server.connect(transport);
    const res = await transport.handleRequest(req);
    // Anything but an initialize got an error from the transport: no session to keep.
    if (!transport.sessionId) await server.close();
    return res;
  }

  /** Ends every session (their streams close) and refuses new ones. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#hub.close();
    await Promise.all([...this.#sessions.values()].map((t) => t.close().catch(() => {})));
    this.#sessions.clear();
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
