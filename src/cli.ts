#!/usr/bin/env node
/** @module cli — `livedex serve | index | query | status`. */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import type { LivedexConfig } from './core/config.js';
import { describeError, LivedexError } from './core/errors.js';
import { LiveIndex } from './core/live-index.js';
import { createLogger, type LogLevel } from './core/log.js';
import type { Hit, IndexStatus, RetrievalMode } from './core/types.js';
import { parseConfig, serve, SERVER_FILE } from './livedex.js';
import { builtinRegistry } from './plugins.js';

const VERSION = '0.1.0';

interface CommonOptions {
  dataDir: string;
  logLevel: LogLevel;
  embedder?: string;
  embeddingModel?: string;
  embeddingDimensions?: number;
}

const intArg = (name: string, min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
  return n;
};

interface FolderOptions {
  include?: string[];
  exclude?: string[];
}

function configFor(opts: CommonOptions & FolderOptions & { host?: string; port?: number }, folder?: string): LivedexConfig {
  const fs = { path: folder, ...(opts.include ? { include: opts.include } : {}), ...(opts.exclude ? { exclude: opts.exclude } : {}) };
  const embedderOptions = {
    ...(opts.embeddingModel ? { model: opts.embeddingModel } : {}),
    ...(opts.embeddingDimensions ? { dimensions: opts.embeddingDimensions } : {}),
  };
  return parseConfig({
    data_dir: opts.dataDir,
    ...(opts.embedder || Object.keys(embedderOptions).length > 0 ? { embedder: { [opts.embedder ?? 'hashing']: embedderOptions } } : {}),
    ...(opts.host ? { host: opts.host } : {}),
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    sources: folder ? [{ fs }] : [],
  }, 'command line');
}

/** Options of the commands that read a folder. */
const folderOptions = (cmd: Command) =>
  cmd
    .option('--include <glob...>', 'only files matching these globs (a glob without / matches the file name anywhere)')
    .option('--exclude <glob...>', 'skip files matching these globs');

function checkFolder(folder: string): void {
  if (!existsSync(folder)) throw new LivedexError('config_error', `folder "${folder}" does not exist`);
}

/** The URL of a server running on `dataDir`, if one is alive. */
function runningServer(dataDir: string): string | null {
  const file = join(resolve(dataDir), SERVER_FILE);
  if (!existsSync(file)) return null;
  try {
    const { url, pid } = JSON.parse(readFileSync(file, 'utf8')) as { url: string; pid: number };
    process.kill(pid, 0);
    return url;
  } catch {
    return null;
  }
}

async function httpJson<T>(url: string, body: unknown): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as T & { error?: { message: string } };
  if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
  return json;
}

/** Opens a data dir read-only, for `query` and `status` when no server runs on it. */
async function withReadOnlyIndex<T>(opts: CommonOptions, fn: (index: LiveIndex) => Promise<T>): Promise<T> {
  if (!existsSync(join(resolve(opts.dataDir), 'store.sqlite'))) {
    throw new LivedexError('not_found', `no index in ${resolve(opts.dataDir)} — run \`livedex index <folder>\` or \`livedex serve <folder>\` first`);
  }
  const index = await LiveIndex.open({
    config: configFor(opts),
    registry: builtinRegistry(),
    logger: createLogger({ level: opts.logLevel }),
    readOnly: true,
  });
  try {
    return await fn(index);
  } finally {
    await index.close();
  }
}

function onShutdown(close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`\n${signal}: shutting down (again to force)\n`);
    close().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`shutdown failed: ${describeError(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

function printHits(hits: Hit[]): void {
  if (hits.length === 0) console.log('no hits');
  hits.forEach((h, i) => {
    const where = String(h.metadata.path ?? '');
    const text = h.text.replace(/\s+/g, ' ').slice(0, 240);
    console.log(`${i + 1}. ${where}  (dist ${h.dist.toFixed(4)})\n   ${text}${h.text.length > 240 ? '…' : ''}`);
  });
}

function printStatus(s: IndexStatus, where: string): void {
  const d = s.documents;
  const building = s.model.building ? ` (switching to ${s.model.building.model}: ${s.model.building.done}/${s.model.building.total} chunks)` : '';
  console.log(`${where}\n  ready: ${s.ready}\n  model: ${s.model.active}${building}\n  documents: ${d.total} (${d.indexed} indexed, ${d.pending} pending, ${d.failed} failed)\n  chunks: ${s.chunks}\n  queue: ${s.queue.depth} waiting, ${s.queue.inFlight} in flight\n  change-log sequence: ${s.lastSeq}`);
}

/** Shows sync progress: a bar on a TTY, a line every few seconds otherwise. */
function trackProgress(index: LiveIndex): () => void {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: 'indexing |{bar}| {value}/{total} documents · {chunks} chunks · ETA {eta_formatted}', stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(0, 0, { chunks: 0 });
    const timer = setInterval(() => {
      const p = index.progress();
      bar.setTotal(p.seen);
      bar.update(p.done, { chunks: index.catalog.size });
    }, 200);
    return () => {
      clearInterval(timer);
      const p = index.progress();
      bar.setTotal(p.seen);
      bar.update(p.done, { chunks: index.catalog.size });
      bar.stop();
    };
  }
  const timer = setInterval(() => {
    const p = index.progress();
    process.stderr.write(`indexing: ${p.done}/${p.seen} documents, ${index.catalog.size} chunks\n`);
  }, 5000);
  return () => clearInterval(timer);
}

export function buildCli(): Command {
  const program = new Command('livedex')
    .description('A live hybrid (vector + BM25) search index over your documents, served over REST.')
    .version(VERSION)
    .showHelpAfterError();
  const common = (cmd: Command) =>
    cmd
      .option('--data-dir <dir>', 'where the index lives', './.livedex')
      .addOption(new Option('--log-level <level>', 'log verbosity').choices(['debug', 'info', 'warn', 'error', 'silent']).default('info'))
      .option('--embedder <name>', 'embedding model plugin: hashing (offline default) or openai (OPENAI_BASE_URL, OPENAI_API_KEY)')
      .option('--embedding-model <model>', 'the model name for the embedder (e.g. text-embedding-3-small)')
      .option('--embedding-dimensions <n>', 'vector length, where the model lets you choose', intArg('--embedding-dimensions', 1));

  common(folderOptions(
    program
      .command('serve')
      .description('index a folder and keep the index live, serving it over HTTP')
      .argument('<folder>', 'the folder to index and watch')
      .option('--host <host>', 'address to bind', '127.0.0.1')
      .option('--port <port>', 'port to listen on (0 picks a free one)', intArg('--port', 0), 8000),
  )).action(async (folder: string, opts: CommonOptions & FolderOptions & { host: string; port: number }) => {
    checkFolder(folder);
    const running = await serve(configFor(opts, folder), { logger: createLogger({ level: opts.logLevel }) });
    console.log(`livedex serving ${folder} at ${running.url}`);
    onShutdown(running.close);
    running.ready.then(async () => {
      const s = await running.index.status();
      console.log(`initial sync done: ${s.documents.indexed} documents indexed, ${s.documents.failed} failed, ${s.chunks} chunks`);
    }, () => {});
  });

  common(folderOptions(
    program.command('index').description('index a folder once and exit when it is done').argument('<folder>', 'the folder to index'),
  )).action(async (folder: string, opts: CommonOptions & FolderOptions) => {
    checkFolder(folder);
    const started = Date.now();
    const level: LogLevel = process.stderr.isTTY && opts.logLevel === 'info' ? 'warn' : opts.logLevel;
    const index = await LiveIndex.open({ config: configFor(opts, folder), registry: builtinRegistry(), logger: createLogger({ level }) });
    onShutdown(() => index.close());
    const stopProgress = trackProgress(index);
    try {
      await index.start();
      await index.modelSwitched();
    } finally {
      stopProgress();
    }
    const s = await index.status();
    const c = index.pipeline.counters;
    await index.close();
    console.log(
      `indexed ${folder} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${s.documents.indexed} documents, ${s.documents.failed} failed, ${s.chunks} chunks (${c.parsed} parsed, ${c.embedded} embedded)`,
    );
    if (s.documents.failed > 0) console.log('failed documents: `livedex status` lists them with their reasons');
  });

  common(
    program
      .command('query')
      .description('search the index (through a running server when there is one)')
      .argument('<text>', 'the query')
      .option('-k, --k <k>', 'how many hits', intArg('-k', 1), 3)
      .addOption(new Option('--mode <mode>', 'retrieval mode').choices(['hybrid', 'vector', 'bm25']).default('hybrid'))
      .option('--filter <jmespath>', 'metadata filter (JMESPath)')
      .option('--glob <pattern>', 'file path glob')
      .option('--url <url>', 'query this server instead of the data dir')
      .option('--json', 'print the raw JSON hits'),
  ).action(async (text: string, opts: CommonOptions & { k: number; mode: RetrievalMode; filter?: string; glob?: string; url?: string; json?: boolean }) => {
    const url = opts.url ?? runningServer(opts.dataDir);
    const request = { query: text, k: opts.k, mode: opts.mode, metadata_filter: opts.filter ?? null, filepath_globpattern: opts.glob ?? null };
    const hits = url
      ? await httpJson<Hit[]>(new URL('/v1/retrieve', url).toString(), request)
      : await withReadOnlyIndex(opts, (index) =>
          index.retrieve({ query: text, k: opts.k, mode: opts.mode, metadataFilter: opts.filter ?? null, filepathGlobpattern: opts.glob ?? null }),
        );
    if (opts.json) console.log(JSON.stringify(hits, null, 2));
    else printHits(hits);
  });

  common(
    program
      .command('status')
      .description('what is indexed, pending and failed (and why)')
      .option('--url <url>', 'ask this server instead of the data dir')
      .option('--json', 'print JSON'),
  ).action(async (opts: CommonOptions & { url?: string; json?: boolean }) => {
    const url = opts.url ?? runningServer(opts.dataDir);
    const [status, docs] = url
      ? await Promise.all([
          fetch(new URL('/v1/status', url)).then((r) => r.json() as Promise<IndexStatus>),
          httpJson<Record<string, unknown>[]>(new URL('/v2/list_documents', url).toString(), { return_status: true }),
        ])
      : await withReadOnlyIndex(opts, async (index) => [await index.status(), await index.listDocuments({ returnStatus: true })] as const);
    const failed = docs.filter((d) => d._indexing_status === 'FAILED');
    if (opts.json) {
      console.log(JSON.stringify({ status, documents: docs }, null, 2));
      return;
    }
    printStatus(status, url ?? resolve(opts.dataDir));
    for (const d of failed) console.log(`  FAILED ${String(d.path)}: ${String(d._indexing_error)}`);
  });

  return program;
}

buildCli()
  .parseAsync(process.argv)
  .catch((err) => {
    process.stderr.write(`livedex: ${describeError(err)}\n`);
    process.exit(err instanceof LivedexError && err.code === 'config_error' ? 2 : 1);
  });
