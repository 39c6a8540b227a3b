/** @module livedex — the assembled application: a live index with its sources, served over HTTP. */
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Answerer } from './core/answer.js';
import { LivedexConfig } from './core/config.js';
import { LiveIndex } from './core/live-index.js';
import { createLogger } from './core/log.js';
import { isPushTarget } from './core/push.js';
import type { Registry } from './core/registry.js';
import type { Logger } from './core/types.js';
import { openValidated, type Livedex } from './open.js';
import { builtinRegistry } from './plugins.js';
import { createApp, startServer } from './server/index.js';
import type { PushRouteOptions } from './server/push.js';
import { securityFor } from './server/security.js';

export interface RunningServer {
  index: LiveIndex;
  url: string;
  port: number;
  /** Resolves once the index serves: the first sync of every source is indexed, or, on a restart, the stored index is open. */
  ready: Promise<void>;
  /** Resolves once every source has been listed since the start and what it found is indexed (with `ready` on a first run). */
  synced: Promise<void>;
  close(): Promise<void>;
}

/** Where a running server announces itself, so `livedex query` and `status` can find it. */
export const SERVER_FILE = 'server.json';

export { parseConfig } from './config-file.js';

/** Push ingestion reaches the push source once the sources start (after the server listens). */
function pushRoutes(index: LiveIndex, config: LivedexConfig): PushRouteOptions {
  return {
    target: () => index.sources().find(isPushTarget) ?? null,
    maxBytes: config.pipeline.max_file_bytes,
    maxMetadataBytes: config.pipeline.max_metadata_bytes,
    parses: (extension) => index.parses(extension),
  };
}

/** Opens the index, starts the HTTP server at once, then starts the sources in the background. */
export async function serve(
  config: LivedexConfig,
  opts: { logger?: Logger; registry?: Registry } = {},
): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger();
  const registry = opts.registry ?? builtinRegistry();
  // A chat model that cannot be built (no API key…) fails the start before anything is opened.
  const chat = config.llm
    ? await registry.create('llm', config.llm.name, config.llm.options, { logger, dataDir: resolve(config.data_dir) }, `llm.${config.llm.name}`)
    : null;
  let livedex: Livedex;
  try {
    livedex = await openValidated(config, { registry, logger, start: false });
  } catch (err) {
    await chat?.close?.();
    throw err;
  }
  const { index } = livedex;
  let server: Awaited<ReturnType<typeof startServer>>;
  // Ends the MCP sessions (their event streams) before the server waits for connections to close.
  const stopping = new AbortController();
  try {
    const answerer = chat ? new Answerer({ index, chat, config: config.answer, logger }) : undefined;
    const security = await securityFor(config, logger);
    const app = createApp(index, { logger, defaultK: config.retrieval.default_k, defaultMode: config.retrieval.default_mode, maxK: config.retrieval.max_k, ...(answerer ? { answerer } : {}), push: pushRoutes(index, config), signal: stopping.signal, security, mcpSessions: { maxSessions: config.limits.mcp_sessions, sessionIdleMs: config.limits.mcp_session_idle_s * 1000 }, maxResponseBytes: config.limits.max_response_bytes });
    server = await startServer(app, { host: config.host, port: config.port, headersTimeoutMs: config.limits.header_timeout_ms, requestTimeoutMs: config.limits.body_timeout_ms });
  } catch (err) {
    await chat?.close?.();
    await livedex.close();
    throw err;
  }
  const serverFile = join(resolve(config.data_dir), SERVER_FILE);
  await writeFile(serverFile, JSON.stringify({ url: server.url, pid: process.pid, started_at: new Date().toISOString() }));
  logger.info('listening', { url: server.url, data_dir: resolve(config.data_dir) });
  const ready = livedex.start();
  ready.catch((err) => logger.error('source failed to start', { error: String(err) }));
  const synced = ready.then(() => livedex.synced());
  synced.catch(() => {});
  let closing: Promise<void> | null = null;
  return {
    index,
    url: server.url,
    port: server.port,
    ready,
    synced,
    close: () =>
      (closing ??= (async () => {
        stopping.abort();
        await server.close();
        await chat?.close?.();
        await livedex.close();
        await rm(serverFile, { force: true });
      })()),
  };
}
