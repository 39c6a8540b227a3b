#!/usr/bin/env node
/** @module cli — `livedex serve | index | query | status | mcp | init | doctor`. */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import type { LivedexConfig } from './core/config.js';
import { describeError, LivedexError } from './core/errors.js';
import { LiveIndex } from './core/live-index.js';
import { createLogger, type LogLevel } from './core/log.js';
import type { Hit, IndexStatus, RetrievalMode } from './core/types.js';
import { loadConfigFile } from './config-file.js';
import { formatChecks, runDoctor } from './doctor.js';
import { initTemplate, listTemplates } from './init.js';
import { parseConfig, serve, SERVER_FILE } from './livedex.js';
import { openValidated } from './open.js';
import { relayStdio, serveStdio } from './mcp/index.js';
import { builtinRegistry } from './plugins.js';
import { parseSourceArgs } from './sources/uris.js';
import { VERSION } from './core/version.js';


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

/**
 * The config of an app file, with the flags given on the command line on top: a folder
 * argument replaces the file's sources; `--data-dir`, `--host`, `--port` and the embedder
 * flags replace their settings.
 */
async function configFromFile(
  file: string,
  opts: CommonOptions & FolderOptions & { host?: string; port?: number },
  cmd: Command,
  folder?: string,
): Promise<LivedexConfig> {
  const config = await loadConfigFile(file, { registry: builtinRegistry() });
  const given = (name: string) => cmd.getOptionValueSource(name) === 'cli';
  const flags = configFor(opts, folder);
  return {
    ...config,
    ...(given('dataDir') ? { data_dir: flags.data_dir } : {}),
    ...(given('host') ? { host: flags.host } : {}),
    ...(given('port') ? { port: flags.port } : {}),
    ...(['embedder', 'embeddingModel', 'embeddingDimensions'].some(given) ? { embedder: flags.embedder } : {}),
    ...(folder ? { sources: flags.sources } : {}),
  };
}

interface LlmOptions {
  llm?: string;
  llmModel?: string;
}

/** `--llm NAME --llm-model MODEL` over the config's `llm` (a model name alone keeps the configured plugin, else openai). */
function withLlmFlags(config: LivedexConfig, opts: LlmOptions): LivedexConfig {
  if (!opts.llm && !opts.llmModel) return config;
  const name = opts.llm ?? config.llm?.name ?? 'openai';
  const base = config.llm?.name === name ? config.llm.options : {};
  return { ...config, llm: { name, options: { ...base, ...(opts.llmModel ? { model: opts.llmModel } : {}) } } };
}

interface SecurityFlags {
  authToken?: string;
  tokensFile?: string;
  corsOrigin?: string[];
  allowedHost?: string[];
  allowRemoteWithoutAuth?: boolean;
}

/** `--auth-token` (or LIVEDEX_AUTH_TOKEN), `--tokens-file`, `--cors-origin`, `--allowed-host`, `--allow-remote-without-auth` over the config. */
function withSecurityFlags(config: LivedexConfig, opts: SecurityFlags): LivedexConfig {
  if (opts.authToken !== undefined && opts.authToken.length < 16) {
    throw new LivedexError('config_error', '--auth-token (LIVEDEX_AUTH_TOKEN) must have at least 16 characters', { field: 'auth.tokens' });
  }
  return {
    ...config,
    auth: {
      ...config.auth,
      tokens: opts.authToken ? [...config.auth.tokens, { token: opts.authToken, scope: 'admin', name: 'cli' }] : config.auth.tokens,
      ...(opts.tokensFile ? { tokens_file: opts.tokensFile } : {}),
      ...(opts.allowRemoteWithoutAuth ? { allow_remote_without_auth: true } : {}),
    },
    ...(opts.corsOrigin ? { cors_origins: opts.corsOrigin } : {}),
    ...(opts.allowedHost ? { allowed_hosts: [...config.allowed_hosts, ...opts.allowedHost] } : {}),
  };
}

interface SourceFlags {
  pollInterval?: number;
  push?: boolean;
}

const positiveNumber = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number of seconds above 0`);
  return n;
};

/** The source arguments (folders, URIs) replace the config's sources; `--push` adds the push source. */
function withSourceArgs(config: LivedexConfig, args: string[], opts: FolderOptions & SourceFlags): LivedexConfig {
  const folder = { ...(opts.include ? { include: opts.include } : {}), ...(opts.exclude ? { exclude: opts.exclude } : {}) };
  const blocks = parseSourceArgs(args, { ...(opts.pollInterval !== undefined ? { pollIntervalS: opts.pollInterval } : {}), folder });
  for (const block of blocks) if (block.fs) checkFolder(String(block.fs.path));
  let sources = args.length > 0 ? blocks.map((block) => ({ name: Object.keys(block)[0]!, options: Object.values(block)[0]! })) : config.sources;
  if (opts.push && !sources.some((s) => s.name === 'push')) sources = [...sources, { name: 'push', options: {} }];
  return { ...config, sources };
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
      .option('--embedder <name>', 'embedding model plugin: hashing (offline default), openai (OPENAI_BASE_URL, OPENAI_API_KEY) or local (an ONNX model directory)')
      .option('--embedding-model <model>', 'the model for the embedder: a name for openai (e.g. text-embedding-3-small), a directory for local')
      .option('--embedding-dimensions <n>', 'vector length, where the model lets you choose', intArg('--embedding-dimensions', 1));

  common(folderOptions(
    program
      .command('serve')
      .description('index a folder and keep the index live, serving it over HTTP')
      .argument('[sources...]', 'folders and source URIs to index and follow: ./docs s3://<bucket>/<prefix> gdrive://<folder-id> sharepoint://<site>/<drive>/<path> (a "#name" suffix names a cloud source); default: the sources of --config')
      .option('--poll-interval <seconds>', 'seconds between polls of each cloud source (default 30)', positiveNumber('--poll-interval'))
      .option('--push', 'accept documents pushed over HTTP: PUT and DELETE /v1/documents/{key}')
      .addOption(new Option('--config <file>', 'a YAML app file (see `livedex init`); flags given here override it').env('APP_CONFIG'))
      .option('--host <host>', 'address to bind', '127.0.0.1')
      .option('--port <port>', 'port to listen on (0 picks a free one)', intArg('--port', 0), 8000)
      .option('--llm <name>', 'chat model plugin answering questions (/v2/answer, /v1/chat/completions): openai (OPENAI_BASE_URL, OPENAI_API_KEY)')
      .option('--llm-model <model>', 'the chat model name (e.g. gpt-4o-mini); implies --llm openai')
      .addOption(new Option('--auth-token <token>', 'a bearer token every request must carry (admin scope; /healthz and /readyz stay open)').env('LIVEDEX_AUTH_TOKEN'))
      .option('--tokens-file <file>', 'a YAML/JSON list of tokens with scopes: [{token, scope: read|admin, name}]')
      .option('--cors-origin <origin...>', 'origins a browser may call from (CORS is off without it)')
      .option('--allowed-host <name...>', 'Host names served besides localhost/127.0.0.1/[::1] (a proxy\'s or the machine\'s name; without a token other names are refused)')
      .option('--allow-remote-without-auth', 'bind beyond loopback without a token (the index is then open to the network)'),
  )).action(async (args: string[], opts: CommonOptions & FolderOptions & LlmOptions & SourceFlags & SecurityFlags & { host: string; port: number; config?: string }, cmd: Command) => {
    let config: LivedexConfig;
    if (opts.config) {
      config = await configFromFile(opts.config, opts, cmd);
    } else {
      if (args.length === 0 && !opts.push) {
        throw new LivedexError('config_error', 'give folders or source URIs to serve (./docs s3://bucket/prefix/ …), or an app file with --config (`livedex init` makes one)');
      }
      config = configFor(opts);
    }
    config = withSourceArgs(config, args, opts);
    config = withLlmFlags(config, opts);
    config = withSecurityFlags(config, opts);
    const running = await serve(config, { logger: createLogger({ level: opts.logLevel }) });
    console.log(`livedex serving ${args.join(' ') || opts.config || 'pushed documents'} at ${running.url}`);
    onShutdown(running.close);
    // The first sync shows its progress (a bar on a terminal, a line every few seconds otherwise).
    const stopProgress = opts.logLevel === 'silent' ? () => {} : trackProgress(running.index);
    running.synced.finally(stopProgress).catch(() => {});
    // A signal may close the index between the sync and its status: then there is no line to print.
    running.synced
      .then(async () => {
        const s = await running.index.status();
        console.log(`initial sync done: ${s.documents.indexed} documents indexed, ${s.documents.failed} failed, ${s.chunks} chunks`);
      })
      .catch(() => {});
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
      await index.synced();
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
    // Held back (an unreachable model, a full or read-only data dir): pending, with why.
    for (const d of docs) if (d._indexing_status === 'INGESTED' && d._indexing_error) console.log(`  pending ${String(d.path)}: ${String(d._indexing_error)}`);
  });

  common(folderOptions(
    program
      .command('mcp')
      .description('serve the index to an MCP client over stdio: relayed to the server running on the data dir, else live over <folder>, else read-only over the data dir')
      .argument('[folder]', 'a folder to index and watch while serving, when no server runs on the data dir')
      .requiredOption('--stdio', 'speak MCP over stdin/stdout (`livedex serve` serves MCP over HTTP at /mcp)')
      .option('--url <url>', 'relay to this server instead of the data dir')
      .option('--config <file>', 'an app file whose sources to index and watch while serving (see `livedex init mcp-agent`)')
      .addOption(new Option('--auth-token <token>', 'the bearer token the relayed server requires').env('LIVEDEX_AUTH_TOKEN')),
  )).action(async (folder: string | undefined, opts: CommonOptions & FolderOptions & { url?: string; authToken?: string; config?: string }, cmd: Command) => {
    // stdout carries the protocol: logs go to stderr.
    const logger = createLogger({ level: opts.logLevel });
    const config = opts.config ? await configFromFile(opts.config, opts, cmd, folder) : null;
    const url = opts.url ?? runningServer(config?.data_dir ?? opts.dataDir);
    const serveIndex = async (index: LiveIndex) => {
      const session = await serveStdio(index, { logger, defaultK: index.config.retrieval.default_k, maxK: index.config.retrieval.max_k, maxResponseBytes: index.config.limits.max_response_bytes });
      onShutdown(async () => {
        await session.close();
        await index.close();
      });
      await session.closed;
    };
    if (url) {
      const relay = await relayStdio(new URL('/mcp', url), { logger, ...(opts.authToken ? { token: opts.authToken } : {}) });
      onShutdown(relay.close);
      await relay.closed;
    } else if (folder || config) {
      if (folder) checkFolder(folder);
      const { index } = await openValidated(config ?? configFor(opts, folder), { logger, start: false });
      index.start().catch((err) => logger.error('source failed to start', { error: describeError(err) }));
      await serveIndex(index).finally(() => index.close());
    } else {
      await withReadOnlyIndex(opts, serveIndex);
    }
    process.exit(0);
  });

  common(
    program
      .command('doctor')
      .description('check the data dir, the config, the models and the sources; exits non-zero on any failure, saying what to do')
      .addOption(new Option('--config <file>', 'the YAML app file to check (and whose data dir, models and sources to check)').env('APP_CONFIG')),
  ).action(async (opts: CommonOptions & { config?: string }, cmd: Command) => {
    const level: LogLevel = cmd.getOptionValueSource('logLevel') === 'cli' ? opts.logLevel : 'error';
    const checks = await runDoctor({
      ...(opts.config ? { configFile: opts.config } : {}),
      config: configFor(opts),
      ...(cmd.getOptionValueSource('dataDir') === 'cli' ? { dataDir: opts.dataDir } : {}),
      registry: builtinRegistry(),
      logger: createLogger({ level }),
    });
    console.log(formatChecks(checks));
    const failed = checks.filter((c) => c.level === 'fail').length;
    console.log(failed > 0 ? `\n${failed} check${failed > 1 ? 's' : ''} failed` : '\nall checks passed');
    process.exitCode = failed > 0 ? 1 : 0;
  });

  program
    .command('init')
    .description('start an app from a template: copies it into a folder and prints the command to run')
    .argument('[template]', 'the template (omit to list them)')
    .argument('[dir]', 'where to put it (default: a folder named like the template)')
    .action(async (template: string | undefined, dir: string | undefined) => {
      if (!template) {
        console.log('templates:');
        for (const t of listTemplates()) console.log(`  ${t.name.padEnd(20)} ${t.summary}`);
        console.log('\nlivedex init <template> [dir]');
        return;
      }
      const made = await initTemplate(template, dir);
      console.log(`created ${made.dir} from the ${template} template (${made.files.length} files)\nnext:\n  ${made.next}`);
    });

  return program;
}

buildCli()
  .parseAsync(process.argv)
  .catch((err) => {
    process.stderr.write(`livedex: ${describeError(err)}\n`);
    process.exit(err instanceof LivedexError && err.code === 'config_error' ? 2 : 1);
  });
