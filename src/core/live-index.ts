/**
 * @module core/live-index — the live index behind `LiveIndexApi`: opens a data directory
 * (`index-open`), starts its sources (`source-host`) and the pipeline that indexes what they
 * hand on, answers queries (`query-planner`, `document-list`), switches models
 * (`model-switch`), and snapshots and prunes in the background.
 */
import { join, resolve } from 'node:path';
import type { Engine } from '../engine/types.js';
import type { CallingEmbedder } from './calls.js';
import type { Catalog } from './catalog.js';
import type { LivedexConfig } from './config.js';
import { documentInfo, listDocuments } from './document-list.js';
import { Housekeeper } from './housekeeping.js';
import { openParts, retryFailedIfParsingChanged, type OpenedParts } from './index-open.js';
import { ACTIVE_MODEL_CURSOR, ModelSwitch, type ModelChoice } from './model-switch.js';
import { Pipeline } from './pipeline.js';
import { QueryPlanner } from './query-planner.js';
import type { Registry } from './registry.js';
import { RwLock } from './rwlock.js';
import { SourceHost } from './source-host.js';
import type { DocumentSettled, ObservableIndex, TelemetrySnapshot } from './telemetry.js';
import type { ParseSandbox } from './sandbox.js';
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
  RetrieveRequest,
  Source,
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

export class LiveIndex implements LiveIndexApi, ObservableIndex {
  readonly engine: Engine;
  readonly catalog: Catalog;
  readonly pipeline: Pipeline;
  readonly config: LivedexConfig;
  readonly #opts: LiveIndexOptions;
  readonly #lock = new RwLock();
  readonly #abort = new AbortController();
  readonly #models: ModelSwitch;
  readonly #planner: QueryPlanner;
  readonly #sources: SourceHost;
  readonly #sandbox: ParseSandbox | null;
  /** The configured model: its cache entries are kept even while a build of it is not running. */
  readonly #configuredModel: string;
  /** Extensions some configured parser claims (the text fallback aside). */
  readonly #parserExtensions: ReadonlySet<string>;
  #ready = false;
  #readyPromise: Promise<void> | null = null;
  #synced: Promise<void> = Promise.resolve();
  #syncedDone = false;
  #snapshotTimer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Set at open when the configured model differs from the one serving: built by `start()`. */
  #nextModel: ModelChoice | null;
  /** The vector snapshot being written (settles, never rejects): a model switch waits for it before removing the old folder. */
  #saving: Promise<void> = Promise.resolve();
  #housekeeper: Housekeeper | null = null;

  private constructor(opts: LiveIndexOptions, parts: OpenedParts) {
    this.#opts = opts;
    this.config = opts.config;
    this.engine = parts.engine;
    this.catalog = parts.catalog;
    this.#sandbox = parts.sandbox;
    this.#configuredModel = parts.configured.embedder.modelKey;
    this.#parserExtensions = new Set(parts.parsers.keys());
    this.#nextModel = parts.next;
    const { engine, catalog } = parts;
    const { config, registry, logger } = opts;
    const lock = this.#lock;
    this.pipeline = new Pipeline({
      engine,
      embedder: parts.embedder,
      vectors: parts.vectors,
      catalog,
      lock,
      parsers: parts.parsers,
      fallbackParser: parts.fallback,
      splitter: parts.splitter,
      splitters: parts.splitters,
      logger,
      config: config.pipeline,
      lastSeq: parts.lastSeq,
    });
    const pipeline = this.pipeline;
    const signal = this.#abort.signal;
    this.#models = new ModelSwitch(
      { engine, catalog, pipeline, lock, config, registry, logger, readOnly: opts.readOnly ?? false, signal, saving: () => this.#saving },
      { embedder: parts.embedder, vectors: parts.vectors },
    );
    this.#planner = new QueryPlanner({ config, engine, catalog, lock, logger, serving: () => this.#models, unpublishedVectors: () => pipeline.unpublishedVectors });
    this.#sources = new SourceHost({ engine, pipeline, registry, config, logger, dataDir: parts.dataDir, signal });
  }

  /** Opens the data directory, loads (or rebuilds) the indexes; sources start with `start()`. */
  static async open(opts: LiveIndexOptions): Promise<LiveIndex> {
    const { config, registry, logger } = opts;
    const readOnly = opts.readOnly ?? false;
    const parts = await openParts({ config, registry, logger, readOnly, registryModule: opts.registryModule });
    try {
      const { engine, embedder, vectors, next, configured } = parts;
      const index = new LiveIndex(opts, parts);
      const filled = await index.#models.fill(embedder, vectors);
      if (filled.changed) index.pipeline.markVectorsDirty();
      if (!readOnly) {
        await retryFailedIfParsingChanged(engine, config, embedder.modelKey, logger);
        if (next) {
          logger.info('embedding model changed: the new vector index builds while the previous model serves', { from: embedder.modelKey, to: next.embedder.modelKey });
        } else if (parts.recordConfigured) {
          await engine.setCursor(ACTIVE_MODEL_CURSOR, JSON.stringify(configured.ref));
        }
      }
      return index;
    } catch (err) {
      await parts.close();
      throw err;
    }
  }

  get embedder(): Embedder {
    return this.#models.embedder;
  }

  get vectors(): VectorIndex {
    return this.#models.vectors;
  }

  /** The model serving queries and, during a model change, the one being built. */
  get model(): { active: string; building: { model: string; done: number; total: number } | null } {
    return this.#models.status;
  }

  /** Resolves once a pending model change has switched (at once when there is none). */
  modelSwitched(): Promise<void> {
    return this.#models.switched();
  }

  /** Starts every configured source; resolves once their first reconcile is indexed. */
  start(): Promise<void> {
    if (this.#readyPromise) return this.#readyPromise;
    this.#readyPromise = this.#start();
    return this.#readyPromise;
  }

  async #start(): Promise<void> {
    const { config, logger, readOnly } = this.#opts;
    if (readOnly) throw new Error('a read-only index has no sources to start');
    if (this.#nextModel) {
      this.#models.begin(this.#nextModel);
      this.#nextModel = null;
    }
    const interval = config.pipeline.snapshot_interval_s;
    if (interval > 0) {
      this.#snapshotTimer = setInterval(() => void this.snapshot().catch((err) => logger.warn('vector snapshot failed', { error: String(err) })), interval * 1000);
      this.#snapshotTimer.unref();
    }
    await this.#sources.start();
    await this.pipeline.idle();
    this.#ready = true;
    await this.snapshot();
    this.#startHousekeeping();
    this.#synced = this.#sync();
    this.#synced.catch(() => {});
  }

  /** After `ready`: the sources that served from the store first finish their first listing, and what it found is committed. */
  async #sync(): Promise<void> {
    await this.#sources.synced();
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

  #startHousekeeping(): void {
    if (this.#closed) return;
    const models = this.#models;
    this.#housekeeper = new Housekeeper({
      engine: this.engine,
      config: this.config.housekeeping,
      logger: this.#opts.logger,
      storePath: join(resolve(this.config.data_dir), 'store.sqlite'),
      keepModels: () => [models.embedder.modelKey, this.#configuredModel, ...(models.buildingKey ? [models.buildingKey] : [])],
      // The vector index heals from the store itself (set difference), but its snapshot
      // sequence bounds the log too, so an index that does replay it never misses an entry.
      appliedSeq: async () => Math.min((await this.engine.stats()).textIndexSeq, models.vectors.snapshotSeq),
    });
    this.#housekeeper.start();
  }

  /** The store pruner (null before the first sync is done, and in a read-only index). */
  get housekeeper(): Housekeeper | null {
    return this.#housekeeper;
  }

  /** Asks every source to reconcile now and waits until the changes it found are indexed. */
  async sync(): Promise<void> {
    await this.#sources.reconcile();
    await this.pipeline.idle();
  }

  /** Writes the vector snapshot if anything changed since the last one. */
  async snapshot(): Promise<void> {
    if (this.#opts.readOnly || !this.pipeline.vectorsDirty) return;
    // The lock covers only the start, where the index captures its state: writing the files
    // takes seconds for a large index, and queries go on meanwhile.
    let saved: Promise<void> = Promise.resolve();
    await this.#lock.write(async () => {
      if (this.pipeline.takeVectorsDirty()) saved = this.#models.vectors.save(this.pipeline.lastSeq);
    });
    this.#saving = saved.catch(() => {});
    try {
      await saved;
    } catch (err) {
      // Still unsaved (a full or read-only data dir): the next timer tick tries again.
      this.pipeline.markVectorsDirty();
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
    return this.#sources.list();
  }

  progress(): SyncProgress {
    const queued = this.pipeline.depth + this.pipeline.inFlight;
    const seen = this.#sources.seen;
    return { seen, done: Math.max(0, seen - queued), queued, ready: this.#ready };
  }

  retrieve(req: RetrieveRequest): Promise<Hit[]> {
    return this.#planner.retrieve(req);
  }

  listDocuments(req: ListDocumentsRequest): Promise<Metadata[]> {
    return listDocuments(this, req);
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
      sources: this.#sources.health(),
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
    const embedder = this.#models.embedder;
    const calling = embedder as Partial<CallingEmbedder>;
    return {
      pipeline: { ...this.pipeline.counters },
      changesSeen: this.#sources.seen,
      model: { key: embedder.modelKey, documents: calling.counters ?? null, queries: calling.queryCounters ?? null },
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
    await this.#sources.stop();
    // The pipeline aborts its work at once; closing the models cancels their calls in flight.
    const pipelineClosed = this.pipeline.close();
    await this.#models.close();
    await pipelineClosed;
    await this.#sandbox?.close().catch(() => {});
    if (!this.#opts.readOnly) await this.snapshot().catch((err) => this.#opts.logger.warn('vector snapshot failed', { error: String(err) }));
    // A timer's snapshot may still be writing its files (outside the lock): wait for it.
    await this.#lock.write(async () => {});
    await this.#saving;
    await this.#models.vectors.close?.();
    await this.engine.close();
  }
}
