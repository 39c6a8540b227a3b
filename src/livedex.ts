/** @module livedex — the assembled application: a live index with its sources, served over HTTP. */
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LivedexConfig } from './core/config.js';
import { LivedexError } from './core/errors.js';
import { LiveIndex } from './core/live-index.js';
import { createLogger } from './core/log.js';
import type { Registry } from './core/registry.js';
import type { Logger } from './core/types.js';
import { builtinRegistry } from './plugins.js';
import { createApp, startServer } from './server/index.js';

export interface RunningServer {
  index: LiveIndex;
  url: string;
  port: number;
  /** Resolves once the first sync of every source is indexed. */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** Where a running server announces itself, so `livedex query` and `status` can find it. */
export const SERVER_FILE = 'server.json';

/** Validates a config object; errors name the path at fault. */
export function parseConfig(input: unknown, origin = 'config'): LivedexConfig {
  const parsed = LivedexConfig.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
  throw new LivedexError('config_error', `${origin}: ${path || '(root)'}: ${issue.message}`, { field: path });
}

/** Opens the index, starts the HTTP server at once, then starts the sources in the background. */
export async function serve(
  config: LivedexConfig,
  opts: { logger?: Logger; registry?: Registry } = {},
): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger();
  const registry = opts.registry ?? builtinRegistry();
  const index = await LiveIndex.open({ config, registry, logger });
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    const app = createApp(index, { logger, defaultK: config.retrieval.default_k, maxK: config.retrieval.max_k });
    server = await startServer(app, { host: config.host, port: config.port });
  } catch (err) {
    await index.close();
    throw err;
  }
  const serverFile = join(resolve(config.data_dir), SERVER_FILE);
  await writeFile(serverFile, JSON.stringify({ url: server.url, pid: process.pid, started_at: new Date().toISOString() }));
  logger.info('listening', { url: server.url, data_dir: resolve(config.data_dir) });
  const ready = index.start();
  ready.catch((err) => logger.error('source failed to start', { error: String(err) }));
  let closing: Promise<void> | null = null;
  return {
    index,
    url: server.url,
    port: server.port,
    ready,
    close: () =>
      (closing ??= (async () => {
        await server.close();
        await index.close();
        await rm(serverFile, { force: true });
      })()),
  };
}
