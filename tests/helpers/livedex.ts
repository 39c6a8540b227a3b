/** Test harness: temp folders, an in-process server, a CLI child process, a counting embedder. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { definePlugin, type Registry } from '../../src/core/registry.js';
import { appendFileSync } from 'node:fs';
import { createLogger, silentLogger } from '../../src/core/log.js';
import type { Embedder, Logger } from '../../src/core/types.js';
import { parseConfig, serve, type RunningServer } from '../../src/livedex.js';
import { builtinRegistry } from '../../src/plugins.js';

export const ROOT = new URL('../..', import.meta.url).pathname;

export async function tempDir(prefix = 'livedex-test-'): Promise<{ path: string; cleanup(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Makes every `counting` embedder fail to embed queries, as an unreachable model would. */
export const embedControl = { failQueries: false };

/** Document texts seen by every `counting` embedder in this process (reset it between tests). */
export const embedCounter = { texts: 0, calls: 0, seen: [] as string[], reset() { this.texts = 0; this.calls = 0; this.seen = []; } };

/** The built-in registry plus `counting`: the hashing embedder, counting what it is asked to embed. */
export function countingRegistry(): Registry {
  const registry = builtinRegistry();
  const hashing = registry.get('embedder', 'hashing');
  registry.register(
    definePlugin({
      kind: 'embedder',
      name: 'counting',
      description: 'hashing, counted (tests only)',
      options: z.object({}).passthrough(),
      async create(options, ctx) {
        const inner: Embedder = await hashing.create(hashing.options.parse(options), ctx);
        return {
          name: 'counting',
          modelKey: inner.modelKey,
          dimensions: inner.dimensions,
          async embed(texts: string[]) {
            embedCounter.texts += texts.length;
            embedCounter.calls++;
            embedCounter.seen.push(...texts);
            return inner.embed(texts);
          },
          // Queries are not counted: the tests count what indexing costs.
          async embedQuery(text: string) {
            if (embedControl.failQueries) throw new Error('connect ECONNREFUSED 127.0.0.1:9 (test)');
            return (await inner.embed([text]))[0]!;
          },
        };
      },
    }),
  );
  registry.register(
    definePlugin({
      kind: 'embedder',
      name: 'slow-hashing',
      description: 'hashing with a delay per call, counted (tests only)',
      // `gate`: while this file exists, embedding waits (a test holds a model build open).
      options: z.object({ dimensions: z.number().int().default(64), delay_ms: z.number().default(20), gate: z.string().optional() }),
      async create(options, ctx) {
        const inner: Embedder = await hashing.create(hashing.options.parse({ dimensions: options.dimensions }), ctx);
        return {
          name: 'slow-hashing',
          modelKey: `slow-${inner.modelKey}`,
          dimensions: inner.dimensions,
          async embed(texts: string[]) {
            await new Promise((r) => setTimeout(r, options.delay_ms));
            while (options.gate && existsSync(options.gate)) await new Promise((r) => setTimeout(r, 20));
            embedCounter.texts += texts.length;
            embedCounter.calls++;
            embedCounter.seen.push(...texts);
            return inner.embed(texts);
          },
          embedQuery: async (text: string) => (await inner.embed([text]))[0]!,
        };
      },
    }),
  );
  return registry;
}

export interface TestServer extends RunningServer {
  dataDir: string;
}

/** Silent, unless LIVEDEX_TEST_LOG names a file: then debug lines are appended to it (to study a failing spec). */
function testLogger(): Logger {
  const file = process.env.LIVEDEX_TEST_LOG;
  return file ? createLogger({ level: 'debug', write: (line) => appendFileSync(file, line + '\n') }) : silentLogger;
}

/** Starts livedex in this process over `folder` on 127.0.0.1 with a free port. */
export async function startServer(
  folder: string,
  opts: { dataDir: string; config?: Record<string, unknown>; registry?: Registry; logger?: Logger; fs?: Record<string, unknown> },
): Promise<TestServer> {
  const config = parseConfig({
    data_dir: opts.dataDir,
    host: '127.0.0.1',
    port: 0,
    embedder: 'counting',
    sources: [{ fs: { path: folder, reconcile_interval_s: 0, ...opts.fs } }],
    ...opts.config,
  });
  const running = await serve(config, { logger: opts.logger ?? testLogger(), registry: opts.registry ?? countingRegistry() });
  return { ...running, dataDir: opts.dataDir };
}

/** A server over a folder holding one note (heron.md), with the push route too: the specs of the HTTP layer use it. */
export interface HeronServer {
  server: TestServer;
  folder: string;
  /** Closes the server and removes its folder and data dir. */
  close(): Promise<void>;
}

/** Starts `startServer` over a fresh folder with heron.md, sources `fs` and `push`, and `config` on top. */
export async function serveHeron(config: Record<string, unknown> = {}): Promise<HeronServer> {
  const folder = await tempDir();
  const data = await tempDir();
  await writeFile(join(folder.path, 'heron.md'), '# Heron\n\nThe heron stands still in the shallow water.');
  const server = await startServer(folder.path, {
    dataDir: data.path,
    config: { sources: [{ fs: { path: folder.path, reconcile_interval_s: 0 } }, { push: {} }], ...config },
  });
  await server.ready;
  return {
    server,
    folder: folder.path,
    async close() {
      await server.close();
      await folder.cleanup();
      await data.cleanup();
    },
  };
}

export interface HttpResult<T = unknown> {
  status: number;
  body: T;
}

export async function post<T = unknown>(base: string, path: string, body: unknown): Promise<HttpResult<T>> {
  const res = await fetch(base.replace(/\/$/, '') + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

export async function get<T = unknown>(base: string, path: string): Promise<HttpResult<T>> {
  const res = await fetch(base.replace(/\/$/, '') + path);
  return { status: res.status, body: (await res.json()) as T };
}

export interface WireHit {
  text: string;
  metadata: Record<string, unknown> & { path?: string };
  dist: number;
  scores: Record<string, number>;
}

export const retrieve = async (base: string, body: Record<string, unknown>): Promise<WireHit[]> => {
  const res = await post<WireHit[]>(base, '/v1/retrieve', body);
  if (res.status !== 200) throw new Error(`retrieve → ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
};

/** Polls `check` until it returns a truthy value or `timeoutMs` passes; returns the value and the time it took. */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 5000, intervalMs = 20): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return { value, ms: performance.now() - started };
    } catch (err) {
      last = err;
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface ChildServer {
  proc: ChildProcess;
  url: Promise<string>;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
}

/** Runs the real CLI (`src/cli.ts` through tsx) as a child process. */
export function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): ChildServer {
  // tsx resolved from the repository, so the CLI also runs from a cwd outside it.
  const proc = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(ROOT, 'src/cli.ts'), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  let resolveUrl!: (url: string) => void;
  let rejectUrl!: (err: Error) => void;
  const url = new Promise<string>((res, rej) => {
    resolveUrl = res;
    rejectUrl = rej;
  });
  url.catch(() => {});
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout.push(chunk);
    const m = /serving .* at (http:\/\/\S+)/.exec(stdout.join(''));
    if (m) resolveUrl(m[1]!);
  });
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<number | null>((res) =>
    proc.on('exit', (code) => {
      rejectUrl(new Error(`livedex exited (${code}) before listening: ${stderr.join('')}`));
      res(code);
    }),
  );
  return { proc, url, stdout, stderr, exited };
}
