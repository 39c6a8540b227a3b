/** @module server/start — serves a Hono app over Node's HTTP server and stops it cleanly. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import type { Hono } from 'hono';

export interface StartServerOptions {
  /** Interface to listen on, e.g. `127.0.0.1` or `0.0.0.0`. */
  host: string;
  /** Port to listen on; 0 picks a free one (see the returned `port`). */
  port: number;
  /** How long `close()` lets requests in flight finish before cutting them (default 1000 ms). */
  closeGraceMs?: number;
  /** A request whose headers have not all arrived by then is cut off with 408 (default 10 s, `limits.header_timeout_ms`). */
  headersTimeoutMs?: number;
  /** A request (headers and body) not all arrived by then is cut off with 408 (default 60 s, `limits.body_timeout_ms`). */
  requestTimeoutMs?: number;
}

const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

export interface RunningServer {
  /** Base URL to reach the server (a wildcard host is reported as loopback). */
  url: string;
  port: number;
  /** Stops accepting, ends idle keep-alive connections now and busy ones after the grace period. */
  close(): Promise<void>;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Listens on `host:port` with `app` and resolves once the server accepts connections.
 *
 * @example
 * const server = await startServer(createApp(index), { host: '127.0.0.1', port: 0 });
 * await fetch(`${server.url}/healthz`);
 * await server.close();
 */
export async function startServer(app: Hono, opts: StartServerOptions): Promise<RunningServer> {
  const requestTimeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Node refuses a headers timeout longer than the request timeout; the request one bounds both anyway.
  const headersTimeout = Math.min(opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS, requestTimeout);
  const server = createAdaptorServer({
    fetch: app.fetch,
    hostname: opts.host,
    overrideGlobalObjects: false,
    // Node looks for late requests every `connectionsCheckingInterval` (30 s by default, which
    // would let a slow body live up to 30 s past its timeout): a few times per timeout instead.
    serverOptions: { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))) },
  }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const graceMs = opts.closeGraceMs ?? 1000;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost(opts.host)}:${port}`,
    port,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        // Connections whose response ends during the grace period (streams being closed) go as soon as they are idle.
        const sweep = setInterval(() => server.closeIdleConnections(), 25);
        sweep.unref();
        server.close((err) => {
          clearTimeout(timer);
          clearInterval(sweep);
          if (err) reject(err);
          else resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
