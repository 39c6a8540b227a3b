/** @module core/live-index — the live index: engine + vectors + catalog + pipeline + sources, behind `LiveIndexApi`. */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { engineTokenSplitting, openEngine } from '../engine/index.js';
import type { DocumentRow, Engine, LegScore } from '../engine/types.js';
import { closeEmbedder, type CallingEmbedder } from './calls.js';
import { Catalog, type ChunkIdSet } from './catalog.js';
import type { LivedexConfig } from './config.js';
import { describeError, LivedexError } from './errors.js';
import { compileFilter, filterBudget } from './filter.js';
import { filterLimits } from './filter-budget.js';
import { describeStoreReset, detectStoreReset, Housekeeper, inspectDataDir, STORE_RESET_CURSOR } from './housekeeping.js';
import { Pipeline } from './pipeline.js';
import { describeStorageProblem, storageProblem } from './storage-error.js';
import { chooseSplitters } from './splitter-choice.js';
import type { PluginContext, Registry } from './registry.js';
import { RwLock } from './rwlock.js';
import type { DocumentSettled, ObservableIndex, TelemetrySnapshot } from './telemetry.js';
import { ParseSandbox } from './sandbox.js';
import { VERSION } from './version.js';
import type {
  DocumentChunk,
  DocumentInfo,
  Embedder,
  Hit,
  IndexChange,
  IndexStatus,
  ListDocumentsRequest,
  LiveIndexApi,
  Logger,
  Metadata,
  Parser,
  RetrieveRequest,
  Source,
  SourceContext,
  SourceHealth,
  SourceStatus,
  Splitter,
  Statistics,
  VectorIndex,
} from './types.js';

export interface LiveIndexOptions {
  config: LivedexConfig;
  registry: Registry;
  logger: Logger;
  /** Open beside a running writer: query only, no sources, no commits. */
  readOnly?: boolean;
  /**
   * The module whose `builtinRegistry()` the parse workers build their parsers from (a worker
   * cannot receive a Registry instance); defaults to the built-in plugins.
   */
  registryModule?: string;
}

/** Progress of the current sync, for progress bars and `status`. */
export interface SyncProgress {
  /** Changes accepted from sources so far. */
  seen: number;
  /** Changes fully processed (indexed, failed or deleted). */
  done: number;
  queued: number;
  ready: boolean;
}

const INDEXING_STATUS = { indexed: 'INDEXED', pending: 'INGESTED', failed: 'FAILED' } as const;

/** Where the store records the embedder whose vectors serve queries, so a model change is seen. */
const ACTIVE_MODEL_CURSOR = 'livedex:embedder';
/** What decided the last parses: a file that failed is tried again once this changes. */
const PARSING_CURSOR = 'livedex:parsing';

/**
 * A failed file stays failed until its source reports another version — or until what parses it
 * changes (the parsers, splitters, sandbox limits, size limits, or livedex itself after an upgrade):
 * then each failed document gets a version its source will not match, so the next listing reads it again.
 */
async function retryFailedIfParsingChanged(engine: Engine, config: LivedexConfig, modelKey: string, logger: Logger): Promise<void> {
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

/** An embedder as configured: enough to build it again after a restart. */
interface ModelRef {
  name: string;
  options: Record<string, unknown>;
  modelKey: string;
}

/** A vector index being built for a new model while the current one serves. */
interface ModelBuild {
  embedder: Embedder;
  ref: ModelRef;
  done: number;
  total: number;
}

/** A file-system-safe directory name for a model key. */
const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');

export class LiveIndex implements LiveIndexApi, ObservableIndex {
  readonly engine: Engine;
  readonly catalog: Catalog;
  readonly pipeline: Pipeline;
  readonly config: LivedexConfig;
  readonly #opts: LiveIndexOptions;
  readonly #lock = new RwLock();
  readonly #sources: Source[] = [];
  readonly #health = new Map<string, SourceStatus>();
  readonly #queryVectors = new Map<string, Float32Array>();
  readonly #abort = new AbortController();
  #ready = false;
  #readyPromise: Promise<void> | null = null;
  #synced: Promise<void> = Promise.resolve();
  #syncedDone = false;
  #snapshotTimer: NodeJS.Timeout | null = null;
  #seen = 0;
  #closed = false;
  #embedder: Embedder;
  #vectors: VectorIndex;
  /** Set at open when the configured model differs from the one serving: built by `start()`. */
  #nextModel: { embedder: Embedder; ref: ModelRef } | null = null;
  #building: ModelBuild | null = null;
  #modelSwitch: Promise<void> = Promise.resolve();
  /** The vector snapshot being written (settles, never rejects): a model switch waits for it before removing the old folder. */
  #saving: Promise<void> = Promise.resolve();
  #sandbox: ParseSandbox | null = null;
  #housekeeper: Housekeeper | null = null;
  /** The configured model: its cache entries are kept even while a build of it is not running. */
  #configuredModel = '';
  /** Extensions some configured parser claims (the text fallback aside). */
  #parserExtensions: ReadonlySet<string> = new Set();

  private constructor(
    opts: LiveIndexOptions,
    parts: { engine: Engine; embedder: Embedder; vectors: VectorIndex; catalog: Catalog; parsers: Map<string, Parser>; fallback: Parser | null; splitter: Splitter; splitters: Map<string, Splitter> },
  ) {
    this.#opts = opts;
    this.config = opts.config;
    this.engine = parts.engine;
    this.#embedder = parts.embedder;
    this.#vectors = parts.vectors;
    this.catalog = parts.catalog;
    this.pipeline = new Pipeline({
      engine: parts.engine,
      embedder: parts.embedder,
      vectors: parts.vectors,
      catalog: parts.catalog,
      lock: this.#lock,
      parsers: parts.parsers,
      fallbackParser: parts.fallback,
      splitter: parts.splitter,
      splitters: parts.splitters,
      logger: opts.logger,
      config: opts.config.pipeline,
    });
  }

  /** Opens the data directory, loads (or rebuilds) the indexes; sources start with `start()`. */
  static async open(opts: LiveIndexOptions): Promise<LiveIndex> {
    const { config, registry, logger } = opts;
    const dataDir = resolve(config.data_dir);
    await mkdir(dataDir, { recursive: true });
    const ctx: PluginContext = { logger, dataDir, tokenSplitting: engineTokenSplitting() ?? undefined };
    const { language, stop_words: stopWords, ascii_folding: asciiFolding } = config.text_index;
    // Read before the engine opens: it rebuilds an index that is ahead of the store.
    const claims = opts.readOnly ? null : await inspectDataDir(dataDir);
    const engine = await openEngine(dataDir, { readOnly: opts.readOnly ?? false, analyzer: { language, stopWords, asciiFolding } }).catch((err: unknown) => {
      const problem = storageProblem(err);
      throw problem ? new LivedexError('engine_error', describeStorageProblem(problem, dataDir, err), { cause: err }) : err;
    });
    if (engine.textIndexRebuilt && engine.textIndexRebuilt !== 'it does not exist') logger.info('text index rebuilt from the store', { reason: engine.textIndexRebuilt });
    const reset = claims && detectStoreReset(claims, (await engine.stats()).lastSeq);
    if (reset) {
      logger.error(describeStoreReset(reset, dataDir), { ...reset });
      await engine.setCursor(STORE_RESET_CURSOR, JSON.stringify(reset));
    }
    const { enabled: sandboxed, ...limits } = config.sandbox;
    const sandbox = sandboxed && !opts.readOnly
      ? new ParseSandbox({ ...limits, logger, dataDir, ...(opts.registryModule === undefined ? {} : { registryModule: opts.registryModule }) })
      : null;
    let opened: Promise<VectorIndex> | undefined;
    try {
      const configured = await registry.create('embedder', config.embedder.name, config.embedder.options, ctx, `embedder.${config.embedder.name}`);
      const configuredRef: ModelRef = { name: config.embedder.name, options: config.embedder.options, modelKey: configured.modelKey };
      // A changed model is built in the background while the previous one keeps serving.
      const active = parseModelRef(await engine.getCursor(ACTIVE_MODEL_CURSOR));
      let embedder = configured;
      let nextModel: { embedder: Embedder; ref: ModelRef } | null = null;
      if (active && active.modelKey !== configured.modelKey) {
        const previous = await registry.create('embedder', active.name, active.options, ctx, `embedder.${active.name}`).catch((err: unknown) => {
          logger.warn('the previous embedding model cannot be loaded: switching at once', { model: active.modelKey, error: String(err) });
          return null;
        });
        if (previous?.modelKey === active.modelKey) {
          embedder = previous;
          nextModel = { embedder: configured, ref: configuredRef };
        }
      }
      // The three are independent: the graph's file read and the catalog's engine read leave
      // this thread idle for the plugins' set-up.
      opened = openVectorIndex(registry, config, ctx, embedder);
      const [vectors, catalog, { parsers, fallback, splitters, splitter }] = await Promise.all([opened, Catalog.load(engine), openPlugins(registry, config, ctx, sandbox)]);

      const index = new LiveIndex(opts, { engine, embedder, vectors, catalog, parsers, fallback, splitter, splitters });
      index.#sandbox = sandbox;
      index.#configuredModel = configured.modelKey;
      index.#parserExtensions = new Set(parsers.keys());
      index.pipeline.lastSeq = (await engine.stats()).lastSeq;
      const synced = await index.#fillVectors(embedder, vectors);
      if (synced.changed) index.pipeline.vectorsDirty = true;
      if (!opts.readOnly) {
        await retryFailedIfParsingChanged(engine, config, embedder.modelKey, logger);
        if (nextModel) {
          index.#nextModel = nextModel;
          logger.info('embedding model changed: the new vector index builds while the previous model serves', { from: embedder.modelKey, to: configured.modelKey });
        } else if (active?.modelKey !== configured.modelKey) {
          await engine.setCursor(ACTIVE_MODEL_CURSOR, JSON.stringify(configuredRef));
        }
      }
      return index;
    } catch (err) {
      // A vector index on its own thread is ended, whichever part failed.
      await opened?.then((v) => v.close?.()).catch(() => {});
      await sandbox?.close().catch(() => {});
      await engine.close().catch(() => {});
      throw err;
    }
  }

  get embedder(): Embedder {
    return this.#embedder;
  }

  get vectors(): VectorIndex {
    return this.#vectors;
  }

  /** The model serving queries and, during a model change, the one being built. */
  get model(): { active: string; building: { model: string; done: number; total: number } | null } {
    const b = this.#building;
    return { active: this.#embedder.modelKey, building: b ? { model: b.embedder.modelKey, done: b.done, total: b.total } : null };
  }

  /** Resolves once a pending model change has switched (at once when there is none). */
  modelSwitched(): Promise<void> {
    return this.#modelSwitch;
  }

  /**
   * Brings `vectors` in line with the store under `embedder`: chunk ids are immutable (a new
   * text gets a new id), so the set difference is the whole replay — stale ids out, missing
   * ids in, from stored embeddings where the store has them, else embedded now (and stored).
   */
  async #fillVectors(embedder: Embedder, vectors: VectorIndex, onPage?: (added: number) => void): Promise<{ changed: boolean; missing: number }> {
    const { catalog, engine } = this;
    const readOnly = this.#opts.readOnly ?? false;
    let removed = 0;
    for (const id of vectors.ids()) {
      if (!catalog.has(id)) {
        vectors.remove(id);
        removed++;
      }
    }
    const missing = [...catalog.ids()].filter((id) => !vectors.has(id));
    let embedded = 0;
    const page = this.config.pipeline.embed_batch;
    for (let i = 0; i < missing.length; i += page) {
      if (this.#abort.signal.aborted) break;
      const ids = missing.slice(i, i + page);
      const stored = await engine.chunkEmbeddings(embedder.modelKey, ids);
      const absent = ids.filter((id, j) => (stored[j] ? (vectors.add(id, stored[j]!), false) : true));
      if (absent.length > 0) {
        // Chunks with no embedding under this model (the model changed): embed their texts now.
        const rows = await engine.getChunks(absent);
        const vecs = await embedder.embed(rows.map((r) => r.text), this.#abort.signal);
        rows.forEach((r, j) => catalog.has(r.id) && vectors.add(r.id, vecs[j]!));
        if (!readOnly) await engine.putEmbeddings(embedder.modelKey, rows.map((r, j) => ({ textHash: r.textHash, embedding: vecs[j]! })));
        embedded += rows.length;
        this.pipeline.counters.embedded += rows.length;
      }
      // An index on another thread takes the page before the next one is read: memory stays one page.
      await vectors.flush?.();
      onPage?.(ids.length);
    }
    await vectors.flush?.();
    if (removed > 0 || missing.length > 0) {
      this.#opts.logger.info('vector index synced with the store', { model: embedder.modelKey, removed, added: missing.length, embedded });
    }
    return { changed: removed > 0 || missing.length > 0, missing: missing.length };
  }

  /**
   * Builds the vector index of the configured model while the previous model serves, then
   * switches atomically (under the write lock): a query uses one model or the other, never both.
   * Progress is snapshotted, so a restart resumes where it stopped.
   */
  async #switchModel(next: { embedder: Embedder; ref: ModelRef }): Promise<void> {
    const { config, registry, logger } = this.#opts;
    const dataDir = resolve(config.data_dir);
    // The build is reported from the start: an index on its own thread takes a moment to open.
    const build: ModelBuild = { embedder: next.embedder, ref: next.ref, done: 0, total: this.catalog.size };
    this.#building = build;
    const vectors = await openVectorIndex(registry, config, { logger, dataDir }, next.embedder);
    build.done = vectors.size;
    const previous = this.#embedder;
    const previousDir = vectorDir(dataDir, previous.modelKey);
    let replaced = null as VectorIndex | null;
    for (;;) {
      build.total = this.catalog.size;
      build.done = [...this.catalog.ids()].filter((id) => vectors.has(id)).length;
      const pass = await this.#fillVectors(next.embedder, vectors, (n) => (build.done += n));
      if (this.#abort.signal.aborted) {
        await vectors.save(this.pipeline.lastSeq).catch(() => {});
        await vectors.close?.().catch(() => {});
        return;
      }
      if (pass.missing > 64) {
        await vectors.save(this.pipeline.lastSeq);
        continue;
      }
      // Few left: finish under the write lock, where nothing moves, and swap.
      const switched = await this.#lock.write(async () => {
        await this.#fillVectors(next.embedder, vectors);
        if ([...this.catalog.ids()].some((id) => !vectors.has(id))) return false;
        await this.engine.setCursor(ACTIVE_MODEL_CURSOR, JSON.stringify(next.ref));
        this.#embedder = next.embedder;
        replaced = this.#vectors;
        this.#vectors = vectors;
        this.#queryVectors.clear();
        this.pipeline.useModel(next.embedder, vectors);
        await vectors.save(this.pipeline.lastSeq);
        return true;
      });
      if (switched) break;
    }
    this.#building = null;
    await closeEmbedder(previous);
    await this.#saving;
    await replaced?.close?.().catch(() => {});
    await rm(previousDir, { recursive: true, force: true });
    logger.info('embedding model switched', { model: next.embedder.modelKey, chunks: this.catalog.size });
  }

  /** Starts every configured source; resolves once their first reconcile is indexed. */
  start(): Promise<void> {
    if (this.#readyPromise) return this.#readyPromise;
    this.#readyPromise = this.#start();
    return this.#readyPromise;
  }

  async #start(): Promise<void> {
    const { config, registry, logger, readOnly } = this.#opts;
    if (readOnly) throw new Error('a read-only index has no sources to start');
    const dataDir = resolve(config.data_dir);
    if (this.#nextModel) {
      const next = this.#nextModel;
      this.#nextModel = null;
      this.#modelSwitch = this.#switchModel(next);
      this.#modelSwitch.catch((err) => {
        this.#building = null;
        logger.error('building the vector index of the new model failed; the previous model keeps serving', { error: String(err) });
      });
    }
    const interval = config.pipeline.snapshot_interval_s;
    if (interval > 0) {
      this.#snapshotTimer = setInterval(() => void this.snapshot().catch((err) => logger.warn('vector snapshot failed', { error: String(err) })), interval * 1000);
      this.#snapshotTimer.unref();
    }
    for (const [i, ref] of config.sources.entries()) {
      // Sources get the data dir in their context (the folder source never indexes it).
      const source = await registry.create('source', ref.name, ref.options, { logger, dataDir }, `sources[${i}].${ref.name}`);
      if (this.#sources.some((s) => s.id === source.id)) {
        throw new LivedexError('config_error', `sources[${i}].${ref.name}: another source already has the id ${JSON.stringify(source.id)}; give one of them a different name`);
      }
      this.#sources.push(source);
      this.#health.set(source.id, { id: source.id, state: 'syncing', error: null, last_sync_at: null, failures: 0 });
    }
    await Promise.all(this.#sources.map((s) => s.start(this.#sourceContext(s))));
    await this.pipeline.idle();
    this.#ready = true;
    await this.snapshot();
    this.#startHousekeeping(dataDir);
    this.#synced = this.#sync();
    this.#synced.catch(() => {});
  }

  /** After `ready`: the sources that served from the store first finish their first listing, and what it found is committed. */
  async #sync(): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.synced?.()));
    await this.pipeline.idle();
    this.#syncedDone = true;
    this.#opts.logger.info('initial sync done', { documents: (await this.engine.stats()).documents, chunks: this.catalog.size });
  }

  /**
   * Resolves once every source's first listing since `start` is indexed: after `ready` on a
   * restart (which serves the stored index at once), together with it on a first run.
   */
  async synced(): Promise<void> {
    await this.start();
    await this.#synced;
  }

  #startHousekeeping(dataDir: string): void {
    if (this.#closed) return;
    this.#housekeeper = new Housekeeper({
      engine: this.engine,
      config: this.config.housekeeping,
      logger: this.#opts.logger,
      storePath: join(dataDir, 'store.sqlite'),
      keepModels: () => [this.#embedder.modelKey, this.#configuredModel, ...(this.#building ? [this.#building.embedder.modelKey] : [])],
      // The vector index heals from the store itself (set difference), but its snapshot
      // sequence bounds the log too, so an index that does replay it never misses an entry.
      appliedSeq: async () => Math.min((await this.engine.stats()).textIndexSeq, this.#vectors.snapshotSeq),
    });
    this.#housekeeper.start();
  }

  /** The store pruner (null before the first sync is done, and in a read-only index). */
  get housekeeper(): Housekeeper | null {
    return this.#housekeeper;
  }

  #sourceContext(source: Source): SourceContext {
    const engine = this.engine;
    return {
      knownVersions: async () => {
        const versions = new Map<string, string>();
        for (const row of await engine.listDocuments()) if (source.owns(row.key)) versions.set(row.key, row.version);
        return versions;
      },
      emit: async (changes) => {
        this.#seen += changes.length;
        await this.pipeline.enqueue(changes);
      },
      getCursor: () => engine.getCursor(source.id),
      setCursor: (value) => engine.setCursor(source.id, value),
      settled: () => this.pipeline.idle(),
      reportHealth: (health) => this.#reportHealth(source.id, health),
      logger: this.#opts.logger,
      signal: this.#abort.signal,
    };
  }

  #reportHealth(id: string, health: SourceHealth): void {
    const prev = this.#health.get(id) ?? { id, state: 'syncing' as const, error: null, last_sync_at: null, failures: 0 };
    const failed = health.state === 'error';
    if (failed && prev.state !== 'error') this.#opts.logger.warn('source failing', { source: id, error: health.error ?? null });
    if (!failed && prev.state === 'error') this.#opts.logger.info('source recovered', { source: id });
    this.#health.set(id, {
      id,
      state: health.state,
      error: failed ? (health.error ?? 'unknown error') : null,
      last_sync_at: health.last_sync_at ?? (health.state === 'idle' ? Math.floor(Date.now() / 1000) : prev.last_sync_at),
      failures: failed ? prev.failures + 1 : 0,
      // Each report carries the whole list of skipped paths: one without it means there are none.
      ...(health.skipped && health.skipped.count > 0 ? { skipped: health.skipped } : {}),
    });
  }

  /** Asks every source to reconcile now and waits until the changes it found are indexed. */
  async sync(): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.reconcile()));
    await this.pipeline.idle();
  }

  /** Writes the vector snapshot if anything changed since the last one. */
  async snapshot(): Promise<void> {
    if (this.#opts.readOnly || !this.pipeline.vectorsDirty) return;
    // The lock covers only the start, where the index captures its state: writing the files
    // takes seconds for a large index, and queries go on meanwhile.
    let saved: Promise<void> = Promise.resolve();
    await this.#lock.write(async () => {
      this.pipeline.vectorsDirty = false;
      saved = this.#vectors.save(this.pipeline.lastSeq);
    });
    this.#saving = saved.catch(() => {});
    try {
      await saved;
    } catch (err) {
      // Still unsaved (a full or read-only data dir): the next timer tick tries again.
      this.pipeline.vectorsDirty = true;
      throw err;
    }
  }

  isReady(): boolean {
    return this.#ready;
  }

  /** True when a configured parser claims `extension` (lower-case, with the dot). */
  parses(extension: string): boolean {
    return this.#parserExtensions.has(extension.toLowerCase());
  }

  /** The sources started so far (e.g. the push source, which a route feeds). */
  sources(): readonly Source[] {
    return [...this.#sources];
  }

  progress(): SyncProgress {
    const queued = this.pipeline.depth + this.pipeline.inFlight;
    return { seen: this.#seen, done: Math.max(0, this.#seen - queued), queued, ready: this.#ready };
  }

  async retrieve(req: RetrieveRequest): Promise<Hit[]> {
    const rc = this.config.retrieval;
    const filter = { metadataFilter: req.metadataFilter, filepathGlobpattern: req.filepathGlobpattern, limits: filterLimits(this.config.limits) };
    const predicate = compileFilter(filter);
    if (req.query.trim() === '') return [];
    const candidates = Math.max(req.k, rc.candidates);
    // Embedding a query may be slow (a remote model): do it before taking the lock.
    const embedder = this.#embedder;
    let queryVector = req.mode === 'bm25' ? null : await this.#embedQueryOrDegrade(embedder, req);
    // The filter runs before the lock, in slices within its budget; under the lock only what
    // changed meanwhile is evaluated (the budget remembers each metadata object's answer).
    const filterKey = `${req.metadataFilter ?? ''}\u0000${req.filepathGlobpattern ?? ''}`;
    const budget = predicate ? filterBudget(filter) : null;
    let matched = predicate && budget ? await this.catalog.matching(filterKey, predicate, budget) : null;
    budget?.pause();

    return this.#lock.read(async () => {
      // The model switched meanwhile: embed again, so the query meets vectors of its own model.
      if (queryVector && this.#embedder !== embedder) queryVector = await this.#embedQueryOrDegrade(this.#embedder, req);
      const { fusion, alpha } = this.#fusionFor(req);
      let allowed: ChunkIdSet | null = null;
      if (predicate && budget && matched) {
        // The catalog changed since: evaluate again, now that no commit can land mid-way.
        if (matched.generation !== this.catalog.generation) {
          budget.resume();
          matched = await this.catalog.matching(filterKey, predicate, budget);
        }
        allowed = matched.ids;
        if (allowed.size === 0) return [];
        if (allowed.size === this.catalog.size) allowed = null;
      }
      // The vector leg is searched here (hnswlib lives on this thread); BM25, the fusion and the
      // hits' rows are one engine call.
      // A filter that keeps few chunks: the engine scans their stored vectors exactly, in the same call.
      const exact = queryVector && req.mode !== 'bm25' && allowed && allowed.size <= rc.exact_vector_max ? { vector: queryVector, model: this.#embedder.modelKey } : null;
      const vector = queryVector && req.mode !== 'bm25' && !exact ? await this.#searchVectors(queryVector, candidates, allowed) : [];
      const found = await this.engine.retrieve({
        query: req.query,
        candidates,
        allowed: allowed ? allowed.bits : null,
        vector,
        exact,
        plan: { mode: req.mode, fusion, alpha, rrfK: rc.rrf_k, k: req.k },
      });
      return found.map((h) => {
        const scores: Hit['scores'] = {};
        if (h.bm25 !== undefined) scores.bm25 = h.bm25;
        if (h.vector !== undefined) scores.vector = h.vector;
        if (req.mode === 'hybrid') scores.fused = h.fused;
        // Every hit says how fresh it is: `indexed_at` comes from its document when chunks lack it.
        const metadata = h.metadata.indexed_at === undefined ? { ...h.metadata, indexed_at: h.indexedAt } : h.metadata;
        return { text: h.text, metadata, dist: h.dist, scores };
      });
    });
  }

  /** The fusion a request gets: its own choice, else the configured default (see `default_fusion`). */
  #fusionFor(req: RetrieveRequest): { fusion: 'rrf' | 'convex'; alpha: number } {
    const rc = this.config.retrieval;
    if (req.alpha !== undefined) return { fusion: 'convex', alpha: req.alpha };
    // The vector leg of a lexical-only embedder is weak: convex fusion leans on BM25 with it.
    const alpha = this.embedder.lexical ? rc.lexical_alpha : rc.alpha;
    if (req.fusion) return { fusion: req.fusion, alpha };
    if (rc.default_fusion !== 'auto') return { fusion: rc.default_fusion, alpha };
    return { fusion: this.embedder.lexical ? 'convex' : 'rrf', alpha };
  }

  async #searchVectors(query: Float32Array, k: number, allowed: ChunkIdSet | null): Promise<LegScore[]> {
    // `allowed` comes from the catalog, which has no chunk of a commit not switched to yet.
    const pending = this.pipeline.unpublishedVectors;
    const hits = await (allowed ? this.#vectors.search(query, k, allowed) : pending.size > 0 ? this.#vectors.search(query, k, { exclude: pending }) : this.#vectors.search(query, k));
    return hits.map((h) => ({ id: h.id, score: 1 - h.distance }));
  }

  /**
   * The query's vector; when the model cannot be reached, a hybrid query goes on with BM25
   * alone (logged) and a vector query fails with 503 and the reason.
   */
  async #embedQueryOrDegrade(embedder: Embedder, req: RetrieveRequest): Promise<Float32Array | null> {
    try {
      return await this.#embedQuery(embedder, req.query);
    } catch (err) {
      if (req.mode === 'vector') {
        throw new LivedexError('model_unavailable', `the embedding model ${embedder.modelKey} cannot embed the query: ${describeError(err)}`, { cause: err });
      }
      this.#opts.logger.warn('query embedding failed: answering with BM25 alone', { model: embedder.modelKey, error: describeError(err) });
      return null;
    }
  }

  async #embedQuery(embedder: Embedder, text: string): Promise<Float32Array> {
    const key = `${embedder.modelKey}\u0000${text}`;
    const cached = this.#queryVectors.get(key);
    if (cached) return cached;
    const vec = embedder.embedQuery ? await embedder.embedQuery(text) : (await embedder.embed([text]))[0]!;
    if (this.#queryVectors.size >= 512) this.#queryVectors.delete(this.#queryVectors.keys().next().value!);
    this.#queryVectors.set(key, vec);
    return vec;
  }

  async listDocuments(req: ListDocumentsRequest): Promise<Metadata[]> {
    const filter = { metadataFilter: req.metadataFilter, filepathGlobpattern: req.filepathGlobpattern, limits: filterLimits(this.config.limits) };
    const predicate = compileFilter(filter);
    const budget = predicate ? filterBudget(filter) : null;
    const accepts = (m: Metadata) => !predicate || !budget || budget.test(predicate, m);
    const rows = await this.engine.listDocuments();
    const out: Metadata[] = [];
    const known = new Set<string>();
    for (const row of rows) {
      known.add(row.key);
      // A document only seen so far (no version processed yet) is still being ingested.
      const status = row.status === 'pending' || row.version === '' ? 'pending' : row.status;
      // In slices: a long listing under an expensive filter lets other requests in between.
      const pause = budget?.breathe();
      if (pause) await pause;
      if (!accepts(row.metadata)) continue;
      // A change the data directory refused (full, read-only) is pending, with why.
      const held = this.pipeline.heldError(row.key);
      out.push(req.returnStatus ? (held ? withStatus(row.metadata, 'pending', held) : withStatus(row.metadata, status, row.error)) : row.metadata);
    }
    for (const doc of this.pipeline.pendingDocuments()) {
      if (known.has(doc.key) || !accepts(doc.metadata)) continue;
      out.push(req.returnStatus ? withStatus(doc.metadata, 'pending', this.pipeline.heldError(doc.key)) : doc.metadata);
    }
    return out;
  }

  async statistics(): Promise<Statistics> {
    const s = await this.engine.stats();
    return { file_count: s.indexed, last_modified: s.lastModified, last_indexed: s.lastIndexed };
  }

  async status(): Promise<IndexStatus> {
    const s = await this.engine.stats();
    return {
      ready: this.#ready,
      synced: this.#syncedDone,
      documents: { total: s.documents, pending: s.pending, indexed: s.indexed, failed: s.failed },
      chunks: s.chunks,
      queue: { depth: this.pipeline.depth, inFlight: this.pipeline.inFlight },
      lastSeq: s.lastSeq,
      model: this.model,
      sources: [...this.#health.values()].map((h) => ({ ...h })),
    };
  }

  async getDocument(key: string): Promise<DocumentInfo | null> {
    const row = await this.engine.getDocument(key);
    return row ? documentInfo(row) : null;
  }

  async listDocumentInfos(): Promise<DocumentInfo[]> {
    const rows = await this.engine.listDocuments();
    return rows.map(documentInfo).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async getDocumentChunks(key: string): Promise<DocumentChunk[] | null> {
    return this.#lock.read(async () => {
      if (!(await this.engine.getDocument(key))) return null;
      const rows = await this.engine.getChunks([...this.catalog.chunkIdsOf(key)]);
      return rows.sort((a, b) => a.ordinal - b.ordinal).map((r) => ({ ordinal: r.ordinal, text: r.text, metadata: r.metadata }));
    });
  }

  onChange(listener: (change: IndexChange) => void): () => void {
    return this.pipeline.onChange(listener);
  }

  onSettle(listener: (event: DocumentSettled) => void): () => void {
    return this.pipeline.onSettle(listener);
  }

  /** The counters of the pipeline and of the serving model's calls (read by `/metrics`). */
  telemetry(): TelemetrySnapshot {
    const calling = this.#embedder as Partial<CallingEmbedder>;
    return {
      pipeline: { ...this.pipeline.counters },
      changesSeen: this.#seen,
      model: { key: this.#embedder.modelKey, documents: calling.counters ?? null, queries: calling.queryCounters ?? null },
      ...(this.#housekeeper ? { housekeeping: { ...this.#housekeeper.counters } } : {}),
      ...(this.#sandbox ? { parsing: this.#sandbox.counters() } : {}),
    };
  }

  /** Stops the sources, finishes what is in flight, snapshots the vectors and closes the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    if (this.#snapshotTimer) clearInterval(this.#snapshotTimer);
    await this.#housekeeper?.stop();
    await Promise.all(this.#sources.map((s) => s.stop().catch(() => {})));
    // The pipeline aborts its work at once; closing the models cancels their calls in flight.
    const pipelineClosed = this.pipeline.close();
    await closeEmbedder(this.#embedder);
    if (this.#building) await closeEmbedder(this.#building.embedder);
    // A model build stops at its next page and snapshots what it has, so a restart resumes it.
    await this.#modelSwitch.catch(() => {});
    await pipelineClosed;
    await this.#sandbox?.close().catch(() => {});
    if (!this.#opts.readOnly) await this.snapshot().catch((err) => this.#opts.logger.warn('vector snapshot failed', { error: String(err) }));
    // A timer's snapshot may still be writing its files (outside the lock): wait for it.
    await this.#lock.write(async () => {});
    await this.#saving;
    await this.#vectors.close?.();
    await this.engine.close();
  }
}

function vectorDir(dataDir: string, modelKey: string): string {
  return join(dataDir, 'vectors', safeName(modelKey));
}

async function openVectorIndex(registry: Registry, config: LivedexConfig, ctx: PluginContext, embedder: Embedder): Promise<VectorIndex> {
  return registry.create('vectorIndex', config.vector_index.name, config.vector_index.options, {
    ...ctx,
    dimensions: embedder.dimensions,
    modelKey: embedder.modelKey,
    dir: vectorDir(ctx.dataDir, embedder.modelKey),
  }, `vector_index.${config.vector_index.name}`);
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

function parseModelRef(value: string | null): ModelRef | null {
  if (!value) return null;
  try {
    const ref = JSON.parse(value) as ModelRef;
    return typeof ref.name === 'string' && typeof ref.modelKey === 'string' ? { name: ref.name, options: ref.options ?? {}, modelKey: ref.modelKey } : null;
  } catch {
    return null;
  }
}

function withStatus(metadata: Metadata, status: keyof typeof INDEXING_STATUS, error: string | null): Metadata {
  // A pending document may carry why it is held back (an unreachable model, retried later).
  const showError = status === 'failed' || (status === 'pending' && error);
  return { ...metadata, _indexing_status: INDEXING_STATUS[status], ...(showError ? { _indexing_error: error } : {}) };
}

function documentInfo(row: DocumentRow): DocumentInfo {
  return {
    key: row.key,
    status: row.status,
    error: row.error,
    metadata: row.metadata,
    chunk_count: row.chunkCount,
    indexed_at: row.indexedAt,
    seen_at: row.seenAt,
  };
}
