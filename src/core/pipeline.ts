/** @module core/pipeline — change → parse → split → diff → embed → commit, with a bounded, coalescing queue and a lane for live edits. */
import { setMaxListeners } from 'node:events';
import { extname } from 'node:path';
import type { CommitResult, DocumentOp, Engine } from '../engine/types.js';
import { sha256 } from './hash.js';
import type { Catalog } from './catalog.js';
import type { PipelineConfig } from './config.js';
import { describeError, isTransientError, LivedexError } from './errors.js';
import type { RwLock } from './rwlock.js';
import { mapInSlices, Slicer } from './slices.js';
import { describeStorageProblem, storageProblem } from './storage-error.js';
import type { DocumentSettled, PipelineCounters } from './telemetry.js';
import type { AttachmentParsers, Change, Embedder, IndexChange, Logger, Metadata, Parser, SourceDocument, Splitter, VectorIndex } from './types.js';

export interface PipelineDeps {
  engine: Engine;
  embedder: Embedder;
  vectors: VectorIndex;
  catalog: Catalog;
  lock: RwLock;
  /** Parsers by extension (`.md`). */
  parsers: ReadonlyMap<string, Parser>;
  /** Tried for extensions no parser claims; it rejects what is not text. */
  fallbackParser: Parser | null;
  /** Splits the parts of parsers that `splitters` does not name. */
  splitter: Splitter;
  /** Splitters by parser name (each parser's preference or the config's choice). */
  splitters?: ReadonlyMap<string, Splitter>;
  logger: Logger;
  config: PipelineConfig;
  /** The store's last change-log sequence when the pipeline starts. */
  lastSeq: number;
}

/** Vectors of committed chunks still to go into a vector index (after the switch, in slices). */
interface VectorBacklog {
  vectors: VectorIndex;
  modelKey: string;
  ids: number[];
  /** `vecs[i]` is the vector of `ids[i]`; null where the store has it. */
  vecs: (Float32Array | null)[];
}

interface PendingCommit {
  op: DocumentOp;
  /** Vectors of the chunk texts of an upsert, by text hash. */
  vectors: Map<string, Float32Array> | null;
  /** The model an upsert was embedded with; if the model switched since, the document is processed again. */
  modelKey: string | null;
  /** Processes the change again (its embeddings belong to a model that no longer serves). */
  redo: (() => void) | null;
  /** When the change behind this operation was first seen (ms), for the ingest latency. */
  seenAt: number | null;
  /** Chunks and bytes of chunk text it writes (the bounds of a commit). */
  chunks: number;
  bytes: number;
  resolve(): void;
  reject(err: unknown): void;
}

/** Chunks added or removed by one commit beyond which freed memory is given back (a document of ~1.5 MB of text). */
const RELEASE_MEMORY_AFTER_CHUNKS = 2000;
/** Wait before giving it back: the last steps' garbage is collected meanwhile. */
const RELEASE_MEMORY_DELAY_MS = 2000;
/**
 * Documents queued behind a sync commit from which on the sync is a bulk one: its documents are
 * logged at debug with a progress line at info (a line per document was a quarter of the
 * ingest time) until the pipeline is idle again. A smaller sync logs each at info.
 */
const BULK_DOCUMENTS = 100;
/** Chunks of the first sync commit, before any commit's pace is known. */
const FIRST_SYNC_CHUNKS = 256;
/** A sync commit takes at least this many chunks however slow commits are: a bulk load still moves. */
const MIN_SYNC_CHUNKS = 32;
/** How much one commit moves the pace (an exponential moving average). */
const PACE_WEIGHT = 0.3;
/**
 * Vectors sent ahead to an index on another thread before waiting for it to take them: a
 * snapshot asked for meanwhile is queued behind at most these, so a long document's vectors
 * are saved as they go in, and the messages in flight stay a few megabytes.
 */
const VECTORS_AHEAD = 2048;

/** What an operation weighs in a commit's size: its chunks, and a delete or a mark counts as one. */
function commitWeight(p: { chunks: number }): number {
  return Math.max(1, p.chunks);
}

function changeKey(change: Change): string {
  return change.kind === 'upsert' ? change.doc.key : change.key;
}

function isMissingFile(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class Pipeline {
  readonly counters: PipelineCounters = { parsed: 0, embedded: 0, embeddingsReused: 0, committed: 0, failed: 0, deleted: 0, editCommits: 0, syncCommits: 0 };
  #lastSeq: number;
  /** Set when the vector index changed since the last snapshot. */
  #vectorsDirty = false;
  /** Chunks of a commit not yet switched to whose vectors are already in: vector queries skip them. */
  readonly #unpublishedVectors = new Set<number>();

  #deps: PipelineDeps;
  /** The configured parsers, for the attachments a parser finds (an e-mail's PDF, an attached message). */
  readonly #parseAttachment: AttachmentParsers = (extension) => {
    const parser = this.#deps.parsers.get(extension);
    return parser && ((input) => parser.parse(input));
  };
  // Latest change per key, in arrival order; a newer change for a queued key replaces it.
  readonly #queue = new Map<string, Change>();
  /** Live edits, taken before `#queue`; a key is in one of the two at most. */
  readonly #edits = new Map<string, Change>();
  readonly #inFlight = new Map<string, Change>();
  /** Keys in flight whose latest change is a live edit: their commit does not wait for a batch. */
  readonly #liveKeys = new Set<string>();
  #working = 0;
  readonly #spaceWaiters: Array<() => void> = [];
  readonly #idleWaiters: Array<() => void> = [];
  #buffer: PendingCommit[] = [];
  #flushTimer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  readonly #abort = new AbortController();
  #closed = false;
  /** Documents held back by an unreachable model: tries so far, the timer of the next, and the version it will try. */
  readonly #retries = new Map<string, { attempts: number; timer: NodeJS.Timeout | null; version: string }>();
  readonly #changeListeners = new Set<(change: IndexChange) => void>();
  /** Operations the data directory refused (full, read-only): committed again after a growing wait. */
  #held: PendingCommit[] = [];
  #heldTimer: NodeJS.Timeout | null = null;
  #heldAttempts = 0;
  #storageError: string | null = null;
  /** Set while the text index lags the store (its apply failed): an empty commit replays the log. */
  #catchUpTimer: NodeJS.Timeout | null = null;
  readonly #settleListeners = new Set<(event: DocumentSettled) => void>();
  /** When each change was first seen; a change replacing a queued one inherits its time. */
  readonly #seenAt = new WeakMap<Change, number>();
  /** The seen time of the change in flight for each key (keys in flight are unique). */
  readonly #inFlightSeenAt = new Map<string, number>();
  #releaseTimer: NodeJS.Timeout | null = null;
  /** What quiet (debug-logged) sync commits settled since the last progress line. */
  #progress = { documents: 0, chunks: 0, deleted: 0, failed: 0, since: 0 };
  /** Set while a bulk sync runs (see `BULK_DOCUMENTS`). */
  #bulk = false;
  /** Milliseconds a chunk of the recent sync commits took, their fixed cost included (null before the first). */
  #msPerChunk: number | null = null;

  constructor(deps: PipelineDeps) {
    this.#deps = deps;
    this.#lastSeq = deps.lastSeq;
    // Every parse and embed in flight listens on the one shutdown signal.
    setMaxListeners(0, this.#abort.signal);
  }

  /** The last change-log sequence committed (the store's at the start, then this pipeline's). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Chunks of a commit not yet switched to whose vectors are already in: vector queries skip them. */
  get unpublishedVectors(): ReadonlySet<number> {
    return this.#unpublishedVectors;
  }

  /** True when the vector index changed since the last snapshot began. */
  get vectorsDirty(): boolean {
    return this.#vectorsDirty;
  }

  /** Says the vector index changed outside a commit (filled from the store, a save that failed). */
  markVectorsDirty(): void {
    this.#vectorsDirty = true;
  }

  /** A snapshot begins (under the write lock): what changes from here on needs the next one. */
  takeVectorsDirty(): boolean {
    const dirty = this.#vectorsDirty;
    this.#vectorsDirty = false;
    return dirty;
  }

  /** Counts texts embedded outside the pipeline (a vector index filled from the store). */
  countEmbedded(texts: number): void {
    this.counters.embedded += texts;
  }

  /** Switches the model new chunks are embedded with and the vector index they go to (under the write lock). */
  useModel(embedder: Embedder, vectors: VectorIndex): void {
    this.#deps = { ...this.#deps, embedder, vectors };
  }

  /** Calls `listener` after each commit with the keys it touched; returns the unsubscribe. */
  onChange(listener: (change: IndexChange) => void): () => void {
    this.#changeListeners.add(listener);
    return () => void this.#changeListeners.delete(listener);
  }

  /** Calls `listener` for each document a commit settled (indexed, failed, held back, deleted); returns the unsubscribe. */
  onSettle(listener: (event: DocumentSettled) => void): () => void {
    this.#settleListeners.add(listener);
    return () => void this.#settleListeners.delete(listener);
  }

  /** Changes waiting to be processed. */
  get depth(): number {
    return this.#queue.size + this.#edits.size;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Why commits fail right now (the data directory is full or read-only), null when they succeed. */
  get storageError(): string | null {
    return this.#storageError;
  }

  /** The reason `key`'s change waits for the data directory to take it again, null when it does not. */
  heldError(key: string): string | null {
    return this.#storageError !== null && this.#held.some((p) => p.op.key === key) ? this.#storageError : null;
  }

  /** Source documents seen but not yet committed (for `INGESTED` listings). */
  pendingDocuments(): SourceDocument[] {
    const docs: SourceDocument[] = [];
    for (const c of [...this.#inFlight.values(), ...this.#edits.values(), ...this.#queue.values()]) if (c.kind === 'upsert') docs.push(c.doc);
    return docs;
  }

  /**
   * Queues changes; waits while the queue is full (back-pressure on the sources). A live edit
   * goes to the edit lane, which holds `edit_queue_size` changes and never waits behind a sync
   * backlog; past that, edits queue with the rest.
   */
  async enqueue(changes: Change[]): Promise<void> {
    for (const change of changes) {
      if (this.#closed) return;
      const key = changeKey(change);
      // A listed version of a key whose live edit is queued or under way is older than the
      // edit (the watcher looks at the disk when it emits): it must not replace it nor follow it.
      if (change.live !== true && (this.#edits.has(key) || this.#liveKeys.has(key))) continue;
      const lane = this.#edits.has(key) || (change.live === true && this.#edits.size < this.#deps.config.edit_queue_size) ? this.#edits : this.#queue;
      while (lane === this.#queue && this.#queue.size >= this.#deps.config.queue_size && !this.#queue.has(key) && !this.#closed) {
        this.#pump();
        await new Promise<void>((resolve) => this.#spaceWaiters.push(resolve));
      }
      if (this.#closed) return;
      const replaced = this.#edits.get(key) ?? this.#queue.get(key);
      if (!this.#seenAt.has(change)) this.#seenAt.set(change, (replaced && this.#seenAt.get(replaced)) || Date.now());
      this.#queue.delete(key);
      this.#edits.delete(key);
      lane.set(key, change);
      // The version in flight is overtaken by an edit: its commit need not wait for a batch either.
      if (lane === this.#edits && this.#inFlight.has(key)) this.#liveKeys.add(key);
    }
    this.#pump();
  }

  /** Resolves when nothing is queued, processing or waiting to be committed. */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops taking work, lets in-flight documents finish (or abort) and commits what is buffered. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.clear();
    this.#edits.clear();
    this.#abort.abort();
    for (const r of this.#retries.values()) if (r.timer) clearTimeout(r.timer);
    this.#retries.clear();
    if (this.#heldTimer) clearTimeout(this.#heldTimer);
    if (this.#catchUpTimer) clearTimeout(this.#catchUpTimer);
    if (this.#releaseTimer) clearTimeout(this.#releaseTimer);
    // One last try for what the data directory refused; if it still does, the store never saw
    // these versions, so the sources send them again after a restart.
    this.#buffer.unshift(...this.#held.splice(0));
    for (const w of this.#spaceWaiters.splice(0)) w();
    while (this.#inFlight.size > 0 || this.#buffer.length > 0 || this.#flushing) {
      await this.#flush();
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  #isIdle(): boolean {
    return this.depth === 0 && this.#inFlight.size === 0 && this.#buffer.length === 0 && this.#held.length === 0 && !this.#flushing;
  }

  #checkIdle(): void {
    if (!this.#isIdle()) return;
    this.#logProgress();
    this.#bulk = false;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** More documents are being processed or could start: a commit now would be a small one. */
  #backlog(): boolean {
    return this.#working > 0 || this.#nextOf(this.#edits) !== undefined || this.#nextOf(this.#queue) !== undefined;
  }

  #pump(): void {
    const { concurrency, commit_batch } = this.#deps.config;
    // `#working` bounds CPU work (parse, split, embed); a document waiting for its commit only
    // holds its key, so commits fill up to `commit_batch` while the next documents are parsed.
    // Edits go first, and have one more slot: they need not wait for a sync document to finish.
    while (!this.#closed) {
      const lane = this.#working < concurrency + 1 && this.#nextOf(this.#edits)
        ? this.#edits
        : this.#working < concurrency && this.#inFlight.size < concurrency + 2 * commit_batch
          ? this.#queue
          : null;
      const next = lane && this.#nextOf(lane);
      if (!lane || !next) break;
      const [key, change] = next;
      lane.delete(key);
      if (lane === this.#edits) this.#liveKeys.add(key);
      else this.#liveKeys.delete(key);
      this.#inFlight.set(key, change);
      this.#inFlightSeenAt.set(key, this.#seenAt.get(change) ?? Date.now());
      this.#working++;
      this.#spaceWaiters.shift()?.();
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.#working--;
        this.#pump();
        // The last document under way decides whether the buffered ones wait for more.
        this.#scheduleCommit();
      };
      void this.#process(change, release)
        .catch((err) => this.#deps.logger.error('pipeline error', { key, error: describeError(err) }))
        .finally(() => {
          release();
          this.#inFlight.delete(key);
          this.#inFlightSeenAt.delete(key);
          // An edit that arrived meanwhile is queued again and marks the key anew.
          if (!this.#edits.has(key)) this.#liveKeys.delete(key);
          this.#pump();
          this.#checkIdle();
        });
    }
    this.#checkIdle();
  }

  /** The first change of `lane` whose key is not in flight. */
  #nextOf(lane: Map<string, Change>): [string, Change] | undefined {
    for (const entry of lane) if (!this.#inFlight.has(entry[0])) return entry;
    return undefined;
  }

  /** Processes one change; calls `release` once its CPU work is done and only the commit is awaited. */
  async #process(change: Change, release: () => void): Promise<void> {
    const redo = () => void this.enqueue([change]);
    if (change.kind === 'delete') {
      this.#clearRetry(change.key);
      await this.#commit({ op: 'delete', key: change.key }, null, release);
      return;
    }
    const doc = change.doc;
    // Held back and waiting for its next try: the same version waits its turn (a reconcile
    // must not cut the growing delay short); a new version goes ahead.
    const waiting = this.#retries.get(doc.key);
    if (waiting?.timer && waiting.version === doc.version) return;
    // Oversized metadata is refused whole, and kept only as far as it fits, to say what failed.
    const oversized = metadataTooLarge(doc.metadata, this.#deps.config.max_metadata_bytes);
    const metadata: Metadata = { ...(oversized ? trimMetadata(doc.metadata, this.#deps.config.max_metadata_bytes) : doc.metadata), seen_at: Math.floor(Date.now() / 1000) };
    try {
      if (oversized) throw oversized;
      await this.#index(doc, metadata, release, redo);
      this.#clearRetry(doc.key);
    } catch (err) {
      if (this.#abort.signal.aborted) return;
      if (isTransientError(err)) {
        // The model (or a remote parser, or the parse workers) may answer later: keep serving the indexed version, say why, try again.
        const delay = this.#scheduleRetry(change);
        const reason = `${describeError(err)} (trying again in ${Math.round(delay / 1000)} s)`;
        this.#deps.logger.warn('document held back', { key: doc.key, error: reason });
        await this.#commit({ op: 'mark', key: doc.key, version: doc.version, status: 'pending', error: reason, metadata }, null, release);
        return;
      }
      this.#clearRetry(doc.key);
      if (isMissingFile(err)) {
        // Vanished between the event and the read: the source will report the delete; make it so now.
        await this.#commit({ op: 'delete', key: doc.key }, null, release);
        return;
      }
      const reason = describeError(err);
      this.#deps.logger.warn('document failed', { key: doc.key, error: reason });
      this.counters.failed++;
      await this.#commit({ op: 'mark', key: doc.key, version: doc.version, status: 'failed', error: reason, metadata }, null, release);
    }
  }

  /** Queues `change` again after a wait that doubles with each try; returns the wait. */
  #scheduleRetry(change: Change): number {
    const key = changeKey(change);
    const { retry_base_ms, retry_max_ms } = this.#deps.config;
    const entry = this.#retries.get(key) ?? { attempts: 0, timer: null, version: '' };
    entry.version = change.kind === 'upsert' ? change.doc.version : '';
    if (entry.timer) clearTimeout(entry.timer);
    const delay = Math.min(retry_max_ms, retry_base_ms * 2 ** entry.attempts);
    entry.attempts++;
    entry.timer = setTimeout(() => {
      entry.timer = null;
      void this.enqueue([change]);
    }, delay);
    entry.timer.unref();
    this.#retries.set(key, entry);
    return delay;
  }

  #clearRetry(key: string): void {
    const entry = this.#retries.get(key);
    if (!entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    this.#retries.delete(key);
  }

  async #index(doc: SourceDocument, metadata: Metadata, release: () => void, redo: () => void): Promise<void> {
    const { engine, embedder, catalog, config, splitter } = this.#deps;
    const existing = await engine.getDocument(doc.key);
    // A version that failed stays failed until its source reports another: not read, not parsed
    // again (a reconcile, a restart or a repeated event changes nothing about the file).
    if (existing?.status === 'failed' && existing.version === doc.version) return;
    const model = { modelKey: embedder.modelKey, redo };
    const declaredSize = typeof metadata.size === 'number' ? metadata.size : 0;
    if (declaredSize > config.max_file_bytes) throw tooLarge(declaredSize, config.max_file_bytes);
    const bytes = await doc.read(this.#abort.signal);
    if (bytes.byteLength > config.max_file_bytes) throw tooLarge(bytes.byteLength, config.max_file_bytes);
    const contentHash = sha256(bytes);

    if (existing?.status === 'indexed' && existing.contentHash === contentHash) {
      // Same bytes under a new version (touch, copy back): refresh metadata, parse and embed nothing.
      const rows = (await engine.getChunks([...catalog.chunkIdsOf(doc.key)])).sort((a, b) => a.ordinal - b.ordinal);
      const chunks = rows.map((r) => ({ ordinal: r.ordinal, text: r.text, textHash: r.textHash, metadata: { ...r.metadata, ...metadata } }));
      await this.#commit({ op: 'upsert', key: doc.key, version: doc.version, contentHash, metadata, chunks }, new Map(), release, model);
      return;
    }

    const extension = (doc.extension ?? extname(doc.key)).toLowerCase();
    const parser = this.#deps.parsers.get(extension) ?? this.#deps.fallbackParser;
    if (!parser) throw new LivedexError('parse_failed', `no parser for "${extension || '(no extension)'}" files`);
    const parts = await parser.parse({ key: doc.key, bytes, extension, metadata, signal: this.#abort.signal, parseAttachment: this.#parseAttachment });
    this.counters.parsed++;
    const drafts = await (this.#deps.splitters?.get(parser.name) ?? splitter).split(parts, metadata);
    if (drafts.length > config.max_chunks_per_document) {
      throw new LivedexError('parse_failed', `the document splits into ${drafts.length} chunks, above the ${config.max_chunks_per_document} limit (pipeline.max_chunks_per_document)`);
    }
    const hashes = await mapInSlices(drafts, (d) => sha256(d.text), this.#abort.signal);

    // Chunk diff: texts with a stored embedding under this model are not embedded again.
    const unique = [...new Set(hashes)];
    const cached = unique.length > 0 ? await engine.lookupEmbeddings(embedder.modelKey, unique) : [];
    const vectors = new Map<string, Float32Array>();
    const fresh = new Set<string>();
    const missing: string[] = [];
    unique.forEach((h, i) => {
      const v = cached[i];
      if (v) vectors.set(h, v);
      else missing.push(h);
    });
    this.counters.embeddingsReused += unique.length - missing.length;
    if (missing.length > 0) {
      const textByHash = new Map(hashes.map((h, i) => [h, drafts[i]!.text]));
      // An in-process embedder answers without a macrotask: yield between its batches.
      const slicer = new Slicer(this.#abort.signal);
      for (let i = 0; i < missing.length; i += config.embed_batch) {
        await slicer.pause();
        const batch = missing.slice(i, i + config.embed_batch);
        const embedded = await embedder.embed(batch.map((h) => textByHash.get(h)!), this.#abort.signal);
        if (embedded.length !== batch.length) {
          throw new LivedexError('internal', `embedder ${embedder.name} returned ${embedded.length} vectors for ${batch.length} texts`);
        }
        batch.forEach((h, j) => {
          vectors.set(h, embedded[j]!);
          fresh.add(h);
        });
        this.counters.embedded += batch.length;
      }
    }
    const chunks = await mapInSlices(drafts, (d, i) => {
      const textHash = hashes[i]!;
      return { ordinal: i, text: d.text, textHash, metadata: d.metadata, ...(fresh.has(textHash) ? { embedding: vectors.get(textHash)! } : {}) };
    }, this.#abort.signal);
    await this.#commit({ op: 'upsert', key: doc.key, version: doc.version, contentHash, metadata, chunks }, vectors, release, model);
  }

  #commit(
    op: DocumentOp,
    vectors: Map<string, Float32Array> | null,
    release: () => void,
    model: { modelKey: string; redo: () => void } | null = null,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let bytes = 0;
      if (op.op === 'upsert') for (const c of op.chunks) bytes += Buffer.byteLength(c.text, 'utf8');
      const chunks = op.op === 'upsert' ? op.chunks.length : 0;
      this.#buffer.push({ op, vectors, modelKey: model?.modelKey ?? null, redo: model?.redo ?? null, seenAt: this.#inFlightSeenAt.get(op.key) ?? null, chunks, bytes, resolve, reject });
      // Releasing starts the next document (and says whether more are under way) before the
      // commit is scheduled.
      release();
      this.#scheduleCommit();
    });
  }

  /**
   * Group commit: a live edit, a full batch, or a buffer with nothing else under way commits
   * now; otherwise the buffer waits up to `commit_delay_ms` to fill. One commit runs at a
   * time; what buffers meanwhile is looked at again when it ends.
   */
  #scheduleCommit(): void {
    if (this.#flushing || this.#buffer.length === 0) return;
    if (this.#buffer.some((p) => this.#liveKeys.has(p.op.key)) || this.#batchFull() || !this.#backlog() || this.#closed) {
      void this.#flush();
      return;
    }
    this.#flushTimer ??= setTimeout(() => void this.#flush(), this.#deps.config.commit_delay_ms);
  }

  #batchFull(): boolean {
    const { commit_batch, commit_max_bytes } = this.#deps.config;
    if (this.#buffer.length >= commit_batch) return true;
    const maxChunks = this.#syncChunkBudget();
    let chunks = 0;
    let bytes = 0;
    for (const p of this.#buffer) {
      chunks += commitWeight(p);
      bytes += p.bytes;
    }
    return chunks >= maxChunks || bytes >= commit_max_bytes;
  }

  /**
   * Chunks a sync commit may take: `commit_max_chunks`, and no more than the recent commits'
   * pace fits into `commit_max_ms` (an edit waits for the commit that runs when it arrives).
   * The pace includes each commit's fixed cost, so the size settles where the fixed cost plus
   * the chunks fill the target; under load commits shrink instead of growing long.
   */
  #syncChunkBudget(): number {
    const { commit_max_chunks, commit_max_ms } = this.#deps.config;
    if (this.#msPerChunk === null) return Math.min(commit_max_chunks, FIRST_SYNC_CHUNKS);
    return Math.max(MIN_SYNC_CHUNKS, Math.min(commit_max_chunks, Math.floor(commit_max_ms / this.#msPerChunk)));
  }

  /** Folds a sync commit's time into the pace the next ones are sized by. */
  #notePace(batch: PendingCommit[], ms: number): void {
    let chunks = 0;
    for (const p of batch) chunks += commitWeight(p);
    const pace = ms / Math.max(1, chunks);
    this.#msPerChunk = this.#msPerChunk === null ? pace : this.#msPerChunk + PACE_WEIGHT * (pace - this.#msPerChunk);
  }

  /** The next commit: the buffered live edits if any, else the sync operations, within the batch bounds. */
  #takeBatch(): { batch: PendingCommit[]; live: boolean } {
    const { commit_batch, commit_max_chunks, commit_max_bytes } = this.#deps.config;
    const edits = this.#buffer.filter((p) => this.#liveKeys.has(p.op.key));
    const from = edits.length > 0 ? edits : this.#buffer;
    const maxChunks = edits.length > 0 ? commit_max_chunks : this.#syncChunkBudget();
    const batch: PendingCommit[] = [];
    let chunks = 0;
    let bytes = 0;
    for (const p of from) {
      const weight = commitWeight(p);
      if (batch.length > 0 && (batch.length >= commit_batch || chunks + weight > maxChunks || bytes + p.bytes > commit_max_bytes)) break;
      batch.push(p);
      chunks += weight;
      bytes += p.bytes;
    }
    const taken = new Set(batch);
    this.#buffer = this.#buffer.filter((p) => !taken.has(p));
    return { batch, live: edits.length > 0 };
  }

  /** Commits the next batch of buffered operations (after the one running, if any). */
  async #flush(): Promise<void> {
    if (this.#flushTimer) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = null;
    }
    while (this.#flushing) await this.#flushing;
    if (this.#buffer.length === 0) return;
    const { batch, live } = this.#takeBatch();
    if (!live && batch.length + this.#buffer.length + this.depth >= BULK_DOCUMENTS) this.#bulk = true;
    const quiet = !live && this.#bulk;
    if (live) this.counters.editCommits++;
    else this.counters.syncCommits++;
    const started = performance.now();
    this.#flushing = this.#commitBatch(batch, quiet).finally(() => {
      this.#flushing = null;
      if (!live) this.#notePace(batch, performance.now() - started);
      this.#scheduleCommit();
      this.#checkIdle();
    });
    await this.#flushing;
  }

  async #commitBatch(batch: PendingCommit[], quiet = false): Promise<void> {
    const { engine, lock, logger } = this.#deps;
    let committed: PendingCommit[] = [];
    let backlog: VectorBacklog[] = [];
    try {
      // The model may have switched since these were embedded: redo those.
      const model = this.#deps.embedder.modelKey;
      const stale = batch.filter((p) => p.modelKey !== null && p.modelKey !== model);
      for (const p of stale) p.redo?.();
      const fresh = stale.length === 0 ? batch : batch.filter((p) => !stale.includes(p));
      // Held: queries keep the previous state while the store and the text index take the
      // batch (seconds for a huge document), then switch with the catalog in one short step.
      const result = await engine.commit(model, fresh.map((p) => p.op), { hold: true });
      // The new chunks' vectors go in before the switch, in slices: a vector query skips them
      // until the catalog has them, so it sees the previous version whole, then the new one.
      backlog = this.#vectorBacklog(result, fresh);
      for (const b of backlog) for (const id of b.ids) this.#unpublishedVectors.add(id);
      try {
        await this.#addVectors(backlog);
        await lock.write(async () => {
          await engine.publish().catch((err: unknown) => logger.warn('text index not reloaded after a commit', { error: describeError(err) }));
          this.#apply(result, fresh);
          // In the same step: a snapshot waiting for this lock records this commit's sequence.
          this.#lastSeq = Math.max(this.#lastSeq, result.seq);
          this.#unpublishedVectors.clear();
          if (this.#deps.embedder.modelKey === model) return;
          // The model switched during the commit: the catalog follows the store, and the new
          // model's vectors come from processing these documents again.
          for (const p of fresh) if (p.op.op === 'upsert') p.redo?.();
        });
      } finally {
        this.#unpublishedVectors.clear();
      }
      committed = fresh;
      this.#releaseMemoryAfter(result);
      this.#emitChange(result.seq, committed);
      this.#emitSettled(committed, quiet);
      this.#storageRecovered();
      if (result.textIndexError) {
        // The store commit is durable; the text index replays it on the next commit or open.
        logger.warn('text index lags the store', { error: result.textIndexError, seq: result.seq });
        this.#scheduleCatchUp();
      }
      for (const p of batch) p.resolve();
    } catch (err) {
      const problem = storageProblem(err);
      if (problem) {
        // The store rolled the transaction back: nothing of this batch is committed. Splitting
        // it would not help; hold it whole and try again later (reads keep serving meanwhile).
        this.#holdForStorage(batch, describeStorageProblem(problem, engine.dir, err), err);
        return;
      }
      if (/has no embedding and none is cached/.test(describeError(err)) && withCachedVectors(batch)) {
        // The store pruned a cache entry between this batch's lookup and its commit (nothing
        // was committed): send the vectors the lookup gave, which puts the entries back.
        await this.#commitBatch(batch, quiet);
        return;
      }
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // One bad operation must not hold back the others: retry each on its own.
      logger.warn('batch commit failed, retrying one by one', { size: batch.length, error: describeError(err) });
      for (const p of batch) await this.#commitBatch([p], quiet);
    }
  }

  /** Keeps `batch` pending with `reason` and commits it again after a wait that doubles with each try. */
  #holdForStorage(batch: PendingCommit[], reason: string, err: unknown): void {
    if (this.#closed) {
      for (const p of batch) p.reject(err);
      return;
    }
    const { retry_base_ms, retry_max_ms } = this.#deps.config;
    const delay = Math.min(retry_max_ms, retry_base_ms * 2 ** this.#heldAttempts);
    this.#heldAttempts++;
    this.#storageError = `${reason}; commits are retried (next in ${Math.max(1, Math.round(delay / 1000))} s)`;
    this.#held.push(...batch);
    this.#deps.logger.error('commit refused by the data directory: documents stay pending', { documents: this.#held.length, error: this.#storageError });
    if (this.#heldTimer) return;
    this.#heldTimer = setTimeout(() => {
      this.#heldTimer = null;
      this.#buffer.unshift(...this.#held.splice(0));
      void this.#flush();
    }, delay);
    this.#heldTimer.unref();
  }

  #storageRecovered(): void {
    if (this.#storageError === null) return;
    this.#deps.logger.info('the data directory takes commits again', { waiting: this.#held.length });
    this.#storageError = null;
    this.#heldAttempts = 0;
    // Whatever still waits goes now rather than after its full wait.
    if (this.#held.length > 0) {
      if (this.#heldTimer) clearTimeout(this.#heldTimer);
      this.#heldTimer = null;
      this.#buffer.unshift(...this.#held.splice(0));
      queueMicrotask(() => void this.#flush());
    }
  }

  /** Replays the change log into a text index that failed to apply a commit: an empty commit does. */
  #scheduleCatchUp(attempt = 0): void {
    if (this.#catchUpTimer || this.#closed) return;
    const { retry_base_ms, retry_max_ms } = this.#deps.config;
    this.#catchUpTimer = setTimeout(() => {
      this.#catchUpTimer = null;
      if (this.#closed) return;
      void this.#deps.lock
        .write(() => this.#deps.engine.commit(this.#deps.embedder.modelKey, []))
        .then(
          (res) => (res.textIndexError ? this.#scheduleCatchUp(attempt + 1) : this.#deps.logger.info('text index caught up with the store', { seq: res.seq })),
          () => this.#scheduleCatchUp(attempt + 1),
        );
    }, Math.min(retry_max_ms, retry_base_ms * 2 ** attempt));
    this.#catchUpTimer.unref();
  }

  #emitChange(seq: number, committed: PendingCommit[]): void {
    if (this.#changeListeners.size === 0 || committed.length === 0) return;
    const change: IndexChange = { seq, updated: [], deleted: [] };
    for (const { op } of committed) (op.op === 'delete' ? change.deleted : change.updated).push(op.key);
    for (const listener of this.#changeListeners) {
      try {
        listener(change);
      } catch (err) {
        this.#deps.logger.warn('change listener failed', { error: describeError(err) });
      }
    }
  }

  /**
   * Tells each committed document's new state: one log line per state change (at debug when
   * `quiet`, counted in the next progress line), and the settle listeners.
   */
  #emitSettled(committed: PendingCommit[], quiet: boolean): void {
    const settledAt = Date.now();
    const { logger } = this.#deps;
    const log = (msg: string, fields: Record<string, unknown>) => (quiet ? logger.debug(msg, fields) : logger.info(msg, fields));
    for (const { op, seenAt } of committed) {
      const event: DocumentSettled =
        op.op === 'delete'
          ? { key: op.key, state: 'deleted', error: null, chunks: 0, seenAt, settledAt }
          : op.op === 'upsert'
            ? { key: op.key, state: 'indexed', error: null, chunks: op.chunks.length, seenAt, settledAt }
            : { key: op.key, state: op.status === 'failed' ? 'failed' : 'pending', error: op.error ?? null, chunks: 0, seenAt, settledAt };
      // Failed and held-back documents are logged (as warnings, with the reason) where that is decided.
      if (event.state === 'indexed') log('document indexed', { key: event.key, chunks: event.chunks, ...(seenAt ? { lag_ms: settledAt - seenAt } : {}) });
      else if (event.state === 'deleted') log('document deleted', { key: event.key });
      if (quiet) this.#countProgress(event);
      for (const listener of this.#settleListeners) {
        try {
          listener(event);
        } catch (err) {
          this.#deps.logger.warn('settle listener failed', { error: describeError(err) });
        }
      }
    }
  }

  #countProgress(event: DocumentSettled): void {
    const p = this.#progress;
    if (p.documents + p.deleted + p.failed === 0) p.since = event.settledAt;
    if (event.state === 'indexed') {
      p.documents++;
      p.chunks += event.chunks;
    } else if (event.state === 'deleted') p.deleted++;
    else p.failed++;
    const every = this.#deps.config.log_progress_s * 1000;
    if (every > 0 && event.settledAt - p.since >= every) this.#logProgress();
  }

  /** One info line for the documents a sync backlog committed quietly since the last one. */
  #logProgress(): void {
    const p = this.#progress;
    if (p.documents + p.deleted + p.failed === 0) return;
    const seconds = Math.max(0.001, (Date.now() - p.since) / 1000);
    this.#deps.logger.info('ingest progress', {
      documents: p.documents,
      chunks: p.chunks,
      deleted: p.deleted,
      not_indexed: p.failed,
      seconds: Math.round(seconds * 10) / 10,
      documents_per_s: Math.round(p.documents / seconds),
      chunks_per_s: Math.round(p.chunks / seconds),
      queued: this.depth,
    });
    this.#progress = { documents: 0, chunks: 0, deleted: 0, failed: 0, since: 0 };
  }

  /**
   * The vectors a held store commit brings: new chunks, and kept ones the index lacks
   * (committed while the model switched). Adding them takes up to ~1 ms a vector (hnswlib is
   * synchronous), so they go in before the switch, in slices.
   */
  #vectorBacklog(result: CommitResult, batch: PendingCommit[]): VectorBacklog[] {
    const { vectors, embedder } = this.#deps;
    const byKey = new Map(batch.map((p) => [p.op.key, p]));
    const backlog: VectorBacklog[] = [];
    for (const doc of result.documents) {
      const pending = byKey.get(doc.key);
      if (pending?.op.op !== 'upsert') continue;
      const { op } = pending;
      const added = new Set(doc.added);
      const ids: number[] = [];
      const vecs: (Float32Array | null)[] = [];
      doc.current.forEach((id, ordinal) => {
        if (!added.has(id) && vectors.has(id)) return;
        ids.push(id);
        vecs.push(pending.vectors?.get(op.chunks[ordinal]?.textHash ?? '') ?? null);
      });
      if (ids.length > 0) backlog.push({ vectors, modelKey: embedder.modelKey, ids, vecs });
    }
    return backlog;
  }

  /** Mirrors a store commit into the catalog and removes the vectors of removed chunks (under the write lock, one short step). */
  #apply(result: CommitResult, batch: PendingCommit[]): void {
    const { vectors, catalog } = this.#deps;
    const byKey = new Map(batch.map((p) => [p.op.key, p]));
    for (const doc of result.documents) {
      const pending = byKey.get(doc.key);
      if (!pending) continue;
      const { op } = pending;
      for (const id of doc.removed) vectors.remove(id);
      if (op.op === 'delete') {
        catalog.removeDocument(doc.key);
        this.counters.deleted++;
      } else if (op.op === 'upsert') {
        catalog.setDocument(doc.key, doc.current, op.chunks.map((c) => c.metadata));
        this.counters.committed++;
      }
      if (doc.removed.length > 0 || doc.added.length > 0) this.#vectorsDirty = true;
    }
  }

  /**
   * Adds a held commit's vectors, yielding between slices (commits are one at a time, so no
   * later one can remove these chunks meanwhile). Stopped by shutdown, the rest is filled from
   * the store on the next open.
   */
  async #addVectors(backlog: VectorBacklog[]): Promise<void> {
    const { engine } = this.#deps;
    const slicer = new Slicer();
    for (const { vectors, modelKey, ids, vecs } of backlog) {
      const needing: number[] = [];
      let ahead = 0;
      const add = async (id: number, vec: Float32Array) => {
        this.#addVector(vectors, id, vec);
        if (vectors.flush && ++ahead >= VECTORS_AHEAD) {
          ahead = 0;
          await vectors.flush();
        }
        await slicer.pause();
      };
      for (let i = 0; i < ids.length; i++) {
        if (this.#abort.signal.aborted) return;
        const vec = vecs[i];
        if (!vec) needing.push(ids[i]!);
        else await add(ids[i]!, vec);
      }
      for (let i = 0; i < needing.length && !this.#abort.signal.aborted; i += this.#deps.config.embed_batch) {
        const page = needing.slice(i, i + this.#deps.config.embed_batch);
        const stored = await engine.chunkEmbeddings(modelKey, page);
        for (let j = 0; j < page.length; j++) if (stored[j]) await add(page[j]!, stored[j]!);
      }
      // An index on another thread: the batch is searchable before the catalog switches to it.
      await vectors.flush?.();
    }
  }

  /**
   * After a commit that added or removed many chunks (a large document), gives the memory its
   * text, chunks and buffers took back to the system once they are freed: a moment later, so
   * the garbage of the last steps is collected first.
   */
  #releaseMemoryAfter(result: CommitResult): void {
    let changed = 0;
    for (const d of result.documents) changed += d.added.length + d.removed.length;
    if (changed < RELEASE_MEMORY_AFTER_CHUNKS || this.#releaseTimer || this.#closed) return;
    this.#releaseTimer = setTimeout(() => {
      this.#releaseTimer = null;
      this.#deps.engine.releaseMemory().catch((err: unknown) => this.#deps.logger.debug('memory not released', { error: describeError(err) }));
    }, RELEASE_MEMORY_DELAY_MS);
    this.#releaseTimer.unref();
  }

  /** Adds one vector; a snapshot begun meanwhile has not got it, so the next one must be written. */
  #addVector(vectors: VectorIndex, id: number, vec: Float32Array): void {
    vectors.add(id, vec);
    this.#vectorsDirty = true;
  }
}

/**
 * Gives every chunk of the batch's upserts its vector from the lookup (`pending.vectors`) where
 * it was left to the cache; false when there was nothing to add, so a retry would fail the same.
 */
function withCachedVectors(batch: PendingCommit[]): boolean {
  let added = false;
  for (const p of batch) {
    if (p.op.op !== 'upsert' || !p.vectors) continue;
    const vectors = p.vectors;
    p.op = {
      ...p.op,
      chunks: p.op.chunks.map((c) => {
        if (c.embedding) return c;
        const embedding = vectors.get(c.textHash);
        if (!embedding) return c;
        added = true;
        return { ...c, embedding };
      }),
    };
  }
  return added;
}

/** The reason `metadata` is refused (its JSON is larger than `max` bytes), or null. */
function metadataTooLarge(metadata: Metadata, max: number): LivedexError | null {
  const size = jsonBytes(metadata);
  if (size <= max) return null;
  return new LivedexError('parse_failed', `the metadata is ${size} bytes of JSON, above the ${max} bytes limit (pipeline.max_metadata_bytes)`, { field: 'metadata' });
}

/** `metadata` without its largest values, until its JSON fits in `max` bytes. */
function trimMetadata(metadata: Metadata, max: number): Metadata {
  const sizes = Object.entries(metadata).map(([k, v]) => [k, jsonBytes({ [k]: v })] as const);
  sizes.sort((a, b) => b[1] - a[1]);
  const kept = { ...metadata };
  let size = jsonBytes(kept);
  for (const [k, n] of sizes) {
    if (size <= max) break;
    delete kept[k];
    size -= n - 1;
  }
  return kept;
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}

function tooLarge(size: number, max: number): LivedexError {
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
  return new LivedexError('parse_failed', `file is ${mb(size)}, above the ${mb(max)} limit (pipeline.max_file_bytes)`);
}
