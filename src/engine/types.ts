/** @module engine/types — the typed face of the Rust engine (store + change log + tantivy BM25). */
import type { DocumentStatus, Metadata } from '../core/types.js';

export interface ChunkWrite {
  ordinal: number;
  text: string;
  /** Hex SHA-256 of `text`; the identity used by the chunk diff and the embedding cache. */
  textHash: string;
  metadata: Metadata;
  /** The chunk's embedding under the commit's model. Omit only if the store already has one for (model, textHash). */
  embedding?: Float32Array;
}

export type DocumentOp =
  /** Replaces the document's chunk set atomically and marks it `indexed`. */
  | { op: 'upsert'; key: string; version: string; contentHash: string; metadata: Metadata; chunks: ChunkWrite[] }
  /** Removes the document and its chunks. */
  | { op: 'delete'; key: string }
  /**
   * Records a document's state without touching its chunks: `pending` when seen but not yet
   * indexed, `failed` with the reason. A previously indexed version keeps serving.
   * `pending` never overwrites the stored `version` (so a crash before indexing makes the
   * source see a mismatch and re-send it); `failed` stores `version` (a failed version is
   * not retried on restart; a new version is). A new document gets a row either way.
   */
  | { op: 'mark'; key: string; version: string; status: Exclude<DocumentStatus, 'indexed'>; error?: string | null; metadata: Metadata };

export interface CommittedDocument {
  key: string;
  /** Chunk ids that no longer exist after this commit. */
  removed: number[];
  /** Chunk ids created by this commit (texts the document did not have before). */
  added: number[];
  /** Every chunk id of the document after the commit, in ordinal order (kept ids included). */
  current: number[];
}

export interface CommitResult {
  /**
   * Change-log sequence of this commit (the last one when it wrote several entries); when the
   * commit wrote none (only `mark`s, deletes of unknown keys), the store's current last sequence.
   */
  seq: number;
  documents: CommittedDocument[];
  /**
   * Set when the store commit succeeded but applying it to the text index failed (disk full…).
   * The batch is durable; the text index catches up on the next commit or the next open.
   */
  textIndexError?: string;
}

export interface ChunkRow {
  id: number;
  docKey: string;
  ordinal: number;
  text: string;
  textHash: string;
  metadata: Metadata;
}

/** Chunk identity and metadata without its text (for the in-memory catalog). */
export type ChunkMetaRow = Omit<ChunkRow, 'text'>;

/**
 * Every chunk by document, as typed arrays: documents in key order, chunks in ordinal order.
 * Document `d` holds `ids[starts[d]..starts[d + 1]]`; chunk `i`'s complete metadata is
 * `metadata[metaOf[i]]`, one object per distinct value within its document.
 */
export interface CatalogDump {
  keys: string[];
  starts: Uint32Array;
  ids: Uint32Array;
  metaOf: Uint32Array;
  metadata: Metadata[];
}

export interface DocumentRow {
  key: string;
  /** The last version processed (indexed or failed); empty for a document only seen so far. */
  version: string;
  contentHash: string | null;
  status: DocumentStatus;
  error: string | null;
  metadata: Metadata;
  chunkCount: number;
  /** Unix seconds. */
  seenAt: number | null;
  indexedAt: number | null;
}

export interface TextHit {
  id: number;
  score: number;
}

/** How a query's legs combine (see `fuseLegs`). */
export interface FusionPlan {
  mode: 'hybrid' | 'bm25' | 'vector';
  fusion: 'rrf' | 'convex';
  /** Vector weight of convex fusion. */
  alpha: number;
  /** The k of reciprocal rank fusion. */
  rrfK: number;
  /** Hits wanted after fusion. */
  k: number;
}

/** One leg of a query, best first. */
export interface LegScore {
  id: number;
  /** Higher is better: BM25 score, or cosine similarity for vectors. */
  score: number;
}

export interface FusedScore {
  id: number;
  /** Lower is better; 0 is the best possible hit (first in every leg / identical). */
  dist: number;
  fused: number;
  bm25?: number;
  vector?: number;
}

/** A query for `Engine.retrieve`: BM25 under the filter, fused with a vector leg searched before. */
export interface EngineQuery {
  query: string;
  /** Hits taken from the BM25 leg before fusion. */
  candidates: number;
  /** The chunks the filter accepts, as bits (bit `id % 32` of word `id / 32`); null: every chunk. */
  allowed: Uint32Array | null;
  vector: LegScore[];
  /**
   * Search the vector leg in the engine instead, exactly over the allowed chunks' stored
   * embeddings of `model` (`vector` is then ignored): for a filter that keeps few chunks.
   */
  exact?: { vector: Float32Array; model: string } | null;
  plan: FusionPlan;
}

/** A fused hit with its row: complete metadata and its document's `indexed_at`. */
export interface EngineHit extends FusedScore {
  docKey: string;
  ordinal: number;
  text: string;
  metadata: Metadata;
  /** Unix seconds. */
  indexedAt: number | null;
}

export interface EngineStats {
  documents: number;
  pending: number;
  indexed: number;
  failed: number;
  chunks: number;
  lastSeq: number;
  /** The change-log sequence tantivy's last commit reflects. */
  textIndexSeq: number;
  /** Unix seconds, null when nothing is indexed. */
  lastModified: number | null;
  lastIndexed: number | null;
}

export interface OpenOptions {
  /** Opens without a writer: no commits, no tantivy lock (for `livedex query` beside a running server). */
  readOnly?: boolean;
  /** How the BM25 index analyzes text (default: English stemming). A read-only open uses the index's own. */
  analyzer?: TextAnalyzer;
}

/** The BM25 analyzer: lower-cased words, then optionally stop words dropped, accents folded, and stemming. */
export interface TextAnalyzer {
  /** A Snowball stemming language (`english`…), or `none`. */
  language?: string;
  stopWords?: boolean;
  asciiFolding?: boolean;
}

/** One batch of a pass over the embedding cache (`pruneEmbeddings`). */
export interface EmbeddingPass {
  /** Models whose entries may be in use (the serving one, one being built); other models' entries count as unused. */
  keepModels: string[];
  /** How long an entry stays after a pass first saw no chunk using it (a revert within it still hits the cache). */
  graceMs: number;
  /** Resume after this entry (the previous batch's `next`); absent starts a pass. */
  after?: { model: string; textHash: string } | null;
  /** Entries per batch (one short write transaction). */
  limit: number;
  /**
   * `markedLookupCount` as read before the batch. Entries are deleted only if no lookup found a
   * marked entry since (a commit that relied on a deleted one is sent again with its vectors);
   * absent: mark and revive, delete nothing.
   */
  quietLookups?: number | null;
}

export interface EmbeddingBatch {
  scanned: number;
  /** Entries newly seen with no chunk using them. */
  marked: number;
  /** Entries seen unused before that a chunk uses again. */
  revived: number;
  deleted: number;
  /** Entries past their grace period kept because lookups were under way (deleted by a later pass). */
  deferred: number;
  /** Where the next batch starts; null when the pass is complete. */
  next: { model: string; textHash: string } | null;
}

export interface HousekeepingCounts {
  embeddings: number;
  /** Cache entries no live chunk uses (waiting out their grace period). */
  embeddingsUnused: number;
  changeLog: number;
  /** SQLite pages in the store file, and how many of them are free (reused by later writes). */
  pageCount: number;
  freelistCount: number;
  pageSize: number;
}

/** What `openEngine` returns. Every method that does I/O runs off the JS thread. */
export interface Engine {
  readonly dir: string;
  /** Why the text index was rebuilt from the store when this engine opened (null when it was reused). */
  readonly textIndexRebuilt: string | null;
  /**
   * Commits `ops` in one store transaction, then applies them to the text index. With `hold`,
   * reads and searches keep the previous state until `publish()` (queries go on during a long
   * commit, then switch at once); when the commit fails, nothing is held.
   */
  commit(model: string, ops: DocumentOp[], options?: { hold?: boolean }): Promise<CommitResult>;
  /** Makes what held commits wrote visible to reads and searches (a no-op when nothing is held). */
  publish(): Promise<void>;
  /**
   * Gives memory the process freed back to the system (glibc keeps it in its arenas, so RSS
   * would stay at its peak after a large document); false where the allocator has no way.
   */
  releaseMemory(): Promise<boolean>;
  /** Cached embeddings for (model, textHash), null where none: the chunk diff. */
  lookupEmbeddings(model: string, textHashes: string[]): Promise<(Float32Array | null)[]>;
  /** Stores embeddings in the cache under `model` (vectors computed outside a document commit). */
  putEmbeddings(model: string, entries: { textHash: string; embedding: Float32Array }[]): Promise<void>;
  /** Embeddings of chunks by id under `model`, null where none (rebuilding the vector index). */
  chunkEmbeddings(model: string, ids: number[]): Promise<(Float32Array | null)[]>;
  /** BM25 over chunk text. `allowedIds` restricts the search (filter applied inside it). */
  searchText(query: string, k: number, allowedIds?: number[] | null): Promise<TextHit[]>;
  getChunks(ids: number[]): Promise<ChunkRow[]>;
  /**
   * A whole query in one call: BM25 (restricted to `allowed`), fusion with the vector leg, and
   * the fused hits' rows with their documents' `indexed_at`, read in one transaction. A hit
   * whose chunk is gone by then is left out.
   */
  retrieve(query: EngineQuery): Promise<EngineHit[]>;
  /** Pages through all chunks by ascending id: ids > `afterId`, at most `limit`. */
  listChunks(afterId: number, limit: number): Promise<ChunkMetaRow[]>;
  /** Every chunk's document and metadata in one read, for the catalog (see `CatalogDump`). */
  loadCatalog(): Promise<CatalogDump>;
  getDocument(key: string): Promise<DocumentRow | null>;
  listDocuments(): Promise<DocumentRow[]>;
  getCursor(name: string): Promise<string | null>;
  setCursor(name: string, value: string): Promise<void>;
  stats(): Promise<EngineStats>;
  /** Embedding lookups so far that found an entry a pass had marked unused; see `EmbeddingPass.quietLookups`. */
  readonly markedLookupCount: number;
  pruneEmbeddings(pass: EmbeddingPass): Promise<EmbeddingBatch>;
  /** Deletes at most `limit` change-log entries at or below `upTo`, never beyond the text index's committed sequence; resolves with how many. */
  pruneChangeLog(upTo: number, limit: number): Promise<number>;
  housekeepingCounts(): Promise<HousekeepingCounts>;
  close(): Promise<void>;
}
