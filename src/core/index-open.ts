/**
 * @module core/index-open — opening a data directory: the engine (and whether its store was
 * reset), the parse sandbox, the serving model (the previous one while a changed model builds),
 * its vector index, the catalog and the parsers and splitters.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { engineTokenSplitting, openEngine } from '../engine/index.js';
import type { Engine } from '../engine/types.js';
import { Catalog } from './catalog.js';
import type { LivedexConfig } from './config.js';
import { LivedexError } from './errors.js';
import { describeStoreReset, detectStoreReset, inspectDataDir, STORE_RESET_CURSOR } from './housekeeping.js';
import { ACTIVE_MODEL_CURSOR, openVectorIndex, parseModelRef, type ModelChoice } from './model-switch.js';
import type { PluginContext, Registry } from './registry.js';
import { ParseSandbox } from './sandbox.js';
import { chooseSplitters } from './splitter-choice.js';
import { describeStorageProblem, storageProblem } from './storage-error.js';
import type { Embedder, Logger, Parser, Splitter, VectorIndex } from './types.js';
import { VERSION } from './version.js';

/** What decided the last parses: a file that failed is tried again once this changes. */
const PARSING_CURSOR = 'livedex:parsing';

export interface OpenOptions {
  config: LivedexConfig;
  registry: Registry;
  logger: Logger;
  readOnly: boolean;
  /** The module the parse workers build their parsers from (see `LiveIndexOptions.registryModule`). */
  registryModule?: string | undefined;
}

/** The parts of an opened index, before anything is started. */
export interface OpenedParts {
  dataDir: string;
  engine: Engine;
  /** The store's last change-log sequence at the open. */
  lastSeq: number;
  sandbox: ParseSandbox | null;
  /** The model serving queries: the configured one, or the previous one while the configured one builds. */
  embedder: Embedder;
  vectors: VectorIndex;
  /** The configured model, when it is not the one serving: its vector index is built by `start()`. */
  next: ModelChoice | null;
  configured: ModelChoice;
  /** True when the store named no serving model, or another one than the configured one that could not be loaded. */
  recordConfigured: boolean;
  catalog: Catalog;
  parsers: Map<string, Parser>;
  fallback: Parser | null;
  splitter: Splitter;
  splitters: Map<string, Splitter>;
  /** Closes what was opened (when what follows the open fails). */
  close(): Promise<void>;
}

export async function openParts(opts: OpenOptions): Promise<OpenedParts> {
  const { config, registry, logger, readOnly } = opts;
  const dataDir = resolve(config.data_dir);
  await mkdir(dataDir, { recursive: true });
  const ctx: PluginContext = { logger, dataDir, tokenSplitting: engineTokenSplitting() ?? undefined };
  const { language, stop_words: stopWords, ascii_folding: asciiFolding } = config.text_index;
  // Read before the engine opens: it rebuilds an index that is ahead of the store.
  const claims = readOnly ? null : await inspectDataDir(dataDir);
  const engine = await openEngine(dataDir, { readOnly, analyzer: { language, stopWords, asciiFolding } }).catch((err: unknown) => {
    const problem = storageProblem(err);
    throw problem ? new LivedexError('engine_error', describeStorageProblem(problem, dataDir, err), { cause: err }) : err;
  });
  if (engine.textIndexRebuilt && engine.textIndexRebuilt !== 'it does not exist') logger.info('text index rebuilt from the store', { reason: engine.textIndexRebuilt });
  const { lastSeq } = await engine.stats();
  const reset = claims && detectStoreReset(claims, lastSeq);
  if (reset) {
    logger.error(describeStoreReset(reset, dataDir), { ...reset });
    await engine.setCursor(STORE_RESET_CURSOR, JSON.stringify(reset));
  }
  const { enabled: sandboxed, ...limits } = config.sandbox;
  const sandbox = sandboxed && !readOnly
    ? new ParseSandbox({ ...limits, logger, dataDir, ...(opts.registryModule === undefined ? {} : { registryModule: opts.registryModule }) })
    : null;
  let opened: Promise<VectorIndex> | undefined;
  const close = async () => {
    // A vector index on its own thread is ended, whichever part failed.
    await opened?.then((v) => v.close?.()).catch(() => {});
    await sandbox?.close().catch(() => {});
    await engine.close().catch(() => {});
  };
  try {
    const built = await registry.create('embedder', config.embedder.name, config.embedder.options, ctx, `embedder.${config.embedder.name}`);
    const configured: ModelChoice = { embedder: built, ref: { name: config.embedder.name, options: config.embedder.options, modelKey: built.modelKey } };
    // A changed model is built in the background while the previous one keeps serving.
    const active = parseModelRef(await engine.getCursor(ACTIVE_MODEL_CURSOR));
    let embedder = built;
    let next: ModelChoice | null = null;
    if (active && active.modelKey !== built.modelKey) {
      const previous = await registry.create('embedder', active.name, active.options, ctx, `embedder.${active.name}`).catch((err: unknown) => {
        logger.warn('the previous embedding model cannot be loaded: switching at once', { model: active.modelKey, error: String(err) });
        return null;
      });
      if (previous?.modelKey === active.modelKey) {
        embedder = previous;
        next = configured;
      }
    }
    // The three are independent: the graph's file read and the catalog's engine read leave
    // this thread idle for the plugins' set-up.
    opened = openVectorIndex(registry, config, ctx, embedder);
    const [vectors, catalog, plugins] = await Promise.all([opened, Catalog.load(engine), openPlugins(registry, config, ctx, sandbox)]);
    return { dataDir, engine, lastSeq, sandbox, embedder, vectors, next, configured, recordConfigured: next === null && active?.modelKey !== built.modelKey, catalog, ...plugins, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The parsers by extension (each behind the sandbox when there is one) and a splitter for each. */
async function openPlugins(registry: Registry, config: LivedexConfig, ctx: PluginContext, sandbox: ParseSandbox | null) {
  const parsers = new Map<string, Parser>();
  const parserRefs = config.parsers.length > 0 ? config.parsers : registry.list('parser').filter((d) => !d.optIn).map((d) => ({ name: d.name, options: {} }));
  let fallback: Parser | null = null;
  for (const ref of parserRefs) {
    const local = await registry.create('parser', ref.name, ref.options, ctx, `parsers.${ref.name}`);
    // The worker builds the same parser from (name, options); this one validates them.
    const module = registry.get('parser', ref.name).module;
    const parser = sandbox ? sandbox.wrap(local, module === undefined ? ref : { ...ref, module }) : local;
    for (const ext of parser.extensions) if (!parsers.has(ext)) parsers.set(ext, parser);
    if (parser.name === 'text') fallback = parser;
  }
  // Splitting stays on this thread; each parser's parts go to its own splitter.
  const { byParser: splitters, fallback: splitter } = await chooseSplitters(registry, config, [...parsers.values()], ctx);
  return { parsers, fallback, splitters, splitter };
}

/**
 * A failed file stays failed until its source reports another version — or until what parses it
 * changes (the parsers, splitters, sandbox limits, size limits, or livedex itself after an upgrade):
 * then each failed document gets a version its source will not match, so the next listing reads it again.
 */
export async function retryFailedIfParsingChanged(engine: Engine, config: LivedexConfig, modelKey: string, logger: Logger): Promise<void> {
  const parsing = JSON.stringify({
    livedex: VERSION,
    parsers: config.parsers,
    splitter: config.splitter ?? null,
    splitters: config.splitters,
    sandbox: config.sandbox,
    max_file_bytes: config.pipeline.max_file_bytes,
    max_metadata_bytes: config.pipeline.max_metadata_bytes,
    max_chunks_per_document: config.pipeline.max_chunks_per_document,
  });
  const before = await engine.getCursor(PARSING_CURSOR);
  if (before === parsing) return;
  if (before !== null) {
    const failed = (await engine.listDocuments()).filter((d) => d.status === 'failed');
    if (failed.length > 0) {
      await engine.commit(
        modelKey,
        failed.map((d) => ({ op: 'mark' as const, key: d.key, version: `${d.version}|parsing changed`, status: 'failed' as const, error: d.error ?? 'failed', metadata: d.metadata })),
      );
      logger.info('parsing changed since these documents failed: they are read again', { documents: failed.length });
    }
  }
  await engine.setCursor(PARSING_CURSOR, parsing);
}
