/**
 * @module mcp/stdio — `livedex mcp --stdio`: one MCP session over stdin/stdout, served from a
 * live index in this process, or relayed message by message to a running server's `/mcp`.
 */
import type { Readable, Writable } from 'node:stream';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { ErrorCode, isJSONRPCRequest, isJSONRPCResultResponse, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { describeError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import type { LiveIndexApi, Logger } from '../core/types.js';
import { McpHub, type McpHubOptions } from './server.js';

/** A running stdio session. */
export interface StdioSession {
  /** Resolves when the client goes away (stdin ends) or `close()` is called. */
  closed: Promise<void>;
  close(): Promise<void>;
}

export interface StdioOptions {
  logger?: Logger;
  /** Defaults to the process's stdin and stdout (logs must then go to stderr). */
  stdin?: Readable;
  stdout?: Writable;
}

/** Resolves once `stdin` ends or `close` is called; `close` runs `cleanup` once. */
function session(stdin: Readable, cleanup: () => Promise<void>): StdioSession {
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= cleanup().finally(resolveClosed));
  stdin.once('end', () => void close());
  stdin.once('close', () => void close());
  return { closed, close };
}

/**
 * Serves `index` over stdio (the MCP tools, resources and change notifications); the session
 * ends when the client closes stdin.
 *
 * @example
 * const s = await serveStdio(index, { logger });
 * await s.closed;
 */
export async function serveStdio(index: LiveIndexApi, opts: McpHubOptions & StdioOptions = {}): Promise<StdioSession> {
  const { stdin = process.stdin, stdout = process.stdout, ...hubOptions } = opts;
  const hub = new McpHub(index, hubOptions);
  const transport = new StdioServerTransport(stdin, stdout);
  const s = session(stdin, () => hub.close());
  transport.onclose = () => void s.close();
  await hub.createServer().connect(transport);
  return s;
}

/**
 * Relays a stdio MCP session to the streamable-HTTP endpoint `url` (a running `livedex serve`):
 * messages pass through unchanged both ways, so the client gets exactly the server's tools,
 * resources and notifications. The HTTP session ends (DELETE) when the client goes away.
 */
export async function relayStdio(url: URL, opts: StdioOptions & { token?: string } = {}): Promise<StdioSession> {
  const { stdin = process.stdin, stdout = process.stdout } = opts;
  const logger = opts.logger ?? silentLogger;
  const local = new StdioServerTransport(stdin, stdout);
  // The server's own bearer auth: the relay presents the token it was given.
  const remote = new StreamableHTTPClientTransport(url, opts.token ? { requestInit: { headers: { authorization: `Bearer ${opts.token}` } } } : undefined);
  const initializeIds = new Set<string | number>();

  const s = session(stdin, async () => {
    await remote.terminateSession().catch(() => {});
    await remote.close().catch(() => {});
    await local.close().catch(() => {});
  });

  local.onmessage = (message: JSONRPCMessage) => {
    if (isJSONRPCRequest(message) && message.method === 'initialize') initializeIds.add(message.id);
    remote.send(message).catch((err) => {
      logger.warn('MCP relay: the server did not take a message', { url: url.href, error: describeError(err) });
      // A request must get an answer, else the client waits forever.
      if (isJSONRPCRequest(message)) {
        const error = { code: ErrorCode.InternalError, message: `livedex server at ${url.href} failed: ${describeError(err)}` };
        local.send({ jsonrpc: '2.0', id: message.id, error }).catch(() => {});
      }
    });
  };
  remote.onmessage = (message: JSONRPCMessage) => {
    // The version the client and server agreed on goes on every later request, as the SDK's client does.
    if (isJSONRPCResultResponse(message) && message.id !== undefined && initializeIds.delete(message.id)) {
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') remote.setProtocolVersion(version);
    }
    local.send(message).catch(() => {});
  };
  remote.onerror = (err) => logger.warn('MCP relay: connection to the server failed', { url: url.href, error: describeError(err) });
  local.onerror = (err) => logger.warn('MCP relay: bad message from the client', { error: describeError(err) });

  await remote.start();
  await local.start();
  return s;
}
