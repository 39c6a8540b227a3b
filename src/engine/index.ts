/**
 * @module engine — the typed face of the Rust engine (build/livedex-engine.node).
 *
 * Every method runs on the libuv thread pool (napi AsyncTask) and returns a Promise; errors
 * thrown by the engine become `LivedexError('engine_error', …)` with the native error as cause.
 * Metadata crosses N-API as JSON strings, embeddings as Float32Array, chunk ids as numbers.
 * A document's metadata is stored once: each chunk carries only the keys it sets itself and
 * inherits the rest; reads put them together again, so callers see complete metadata per chunk.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { fileURLToPath } from 'node:url';
import { LivedexError } from '../core/errors.js';
import type { DocumentStatus, Metadata, TokenSplitting } from '../core/types.js';
import type {
  CatalogDump,
  ChunkMetaRow,
  ChunkRow,
  ChunkWrite,
  CommitResult,
  DocumentOp,
  DocumentRow,
  EmbeddingBatch,
  EmbeddingPass,
  Engine,
  EngineHit,
  EngineQuery,
  EngineStats,
  FusedScore,
  FusionPlan,
  HousekeepingCounts,
  LegScore,
  OpenOptions,
  TextAnalyzer,
  TextHit,
} from './types.js';

export type * from './types.js';

// ───────────────────────────── the native module ─────────────────────────────

interface NativeChunkWrite {
  ordinal: number;
  text: string;
  textHash: string;
  /** JSON: the chunk's own keys when `inherits`, else its complete metadata. */
  metadata: string;
  inherits?: boolean | undefined;
  embedding?: Float32Array | undefined;
}

interface NativeOp {
  op: string;
  key: string;
  version?: string | undefined;
  contentHash?: string | undefined;
  metadata?: string | undefined;
  status?: string | undefined;
  error?: string | undefined;
  chunks?: NativeChunkWrite[] | undefined;
  staged?: number | undefined;
}

interface NativeCommitResult {
  seq: number;
  documents: { key: string; removed: number[]; added: number[]; current: number[] }[];
  textIndexError?: string | null;
}

interface NativeVectors {
  data: Float32Array;
  lengths: number[];
}

interface NativeChunkRow {
  id: number;
  docKey: string;
  ordinal: number;
  text?: string | null;
  textHash: string;
  metadata: string;
  inherits: boolean;
}

interface NativeChunkPage {
  rows: NativeChunkRow[];
  /** The metadata of each document a row inherits from, once. */
  documents: { key: string; metadata: string }[];
}

interface NativeFusedHit {
  id: number;
  dist: number;
  fused: number;
  bm25?: number | null;
  vector?: number | null;
}

interface NativeRetrieved {
  hits: (NativeFusedHit & { docKey: string; ordinal: number; text: string; metadata: string; inherits: boolean; indexedAt?: number | null })[];
  documents: { key: string; metadata: string }[];
}

interface NativeDocumentRow {
  key: string;
  version: string;
  contentHash?: string | null;
  status: string;
  error?: string | null;
  metadata: string;
  chunkCount: number;
  seenAt?: number | null;
  indexedAt?: number | null;
}

interface NativeStats {
  documents: number;
  pending: number;
  indexed: number;
  failed: number;
  chunks: number;
  lastSeq: number;
  textIndexSeq: number;
  lastModified?: number | null;
  lastIndexed?: number | null;
}

interface NativeEmbeddingBatch {
  scanned: number;
  marked: number;
  revived: number;
  deleted: number;
  deferred: number;
  nextModel?: string | null;
  nextHash?: string | null;
}

interface NativeEngine {
  readonly dir: string;
  readonly markedLookupCount: number;
  pruneEmbeddings(pass: {
    keepModels: string[];
    graceMs: number;
    afterModel?: string | undefined;
    afterHash?: string | undefined;
    limit: number;
    quietLookups?: number | undefined;
  }): Promise<NativeEmbeddingBatch>;
  pruneChangeLog(upTo: number, limit: number): Promise<number>;
  housekeepingCounts(): Promise<HousekeepingCounts>;
  readonly readOnly: boolean;
  readonly rebuilt: string | null;
  commit(model: string, ops: NativeOp[], hold?: boolean | null): Promise<NativeCommitResult>;
  publish(): Promise<void>;
  releaseMemory(): Promise<boolean>;
  lookupEmbeddings(model: string, textHashes: string[]): Promise<NativeVectors>;
  chunkEmbeddings(model: string, ids: number[]): Promise<NativeVectors>;
  searchText(query: string, k: number, allowedIds: number[] | null): Promise<{ id: number; score: number }[]>;
  getChunks(ids: number[]): Promise<NativeChunkPage>;
  retrieve(req: { query: string; candidates: number; allowed?: Uint32Array | null; vectorIds: number[]; vectorScores: number[]; exactVector?: Float32Array; exactModel?: string; plan: FusionPlan }): Promise<NativeRetrieved>;
  listChunks(afterId: number, limit: number): Promise<NativeChunkPage>;
  loadCatalog(): Promise<{ keys: string[]; inherited: string[]; starts: Uint32Array; ids: Uint32Array; metaOf: Uint32Array; metas: string[]; metaInherits: boolean[] }>;
  stageChunks(token: number | null, chunks: NativeChunkWrite[]): number;
  dropStaged(token: number): void;
  getDocument(key: string): Promise<NativeDocumentRow | null>;
  listDocuments(): Promise<NativeDocumentRow[]>;
  getCursor(name: string): Promise<string | null>;
  setCursor(name: string, value: string): Promise<void>;
  putEmbeddings(model: string, textHashes: string[], vectors: Float32Array[]): Promise<void>;
  stats(): Promise<NativeStats>;
  close(): Promise<void>;
}

interface NativeModule {
  openEngine(dir: string, readOnly: boolean, analyzer?: TextAnalyzer | null): Promise<NativeEngine>;
  textIndexSeq(dir: string): Promise<number | null>;
  fuseLegs(bm25Ids: number[], bm25Scores: number[], vectorIds: number[], vectorScores: number[], plan: FusionPlan): NativeFusedHit[];
  /** Absent from addons built before the token splitter moved into the engine. */
  splitTokenChunks?(texts: Buffer, lengths: Uint32Array, maxTokens: number, minTokens: number, overlapTokens: number): Promise<Uint32Array>;
  countSplitTokens?(texts: Buffer, lengths: Uint32Array): Promise<Uint32Array>;
}

/**
 * Where the addon lives: `build/livedex-engine.node` at the package root, two levels above
 * this file both as `src/engine/index.ts` (tsx) and as `dist/engine/index.js` (tsc).
 * `LIVEDEX_ENGINE_PATH` overrides it (an absolute path to a `.node` file).
 */
export const ADDON_PATH: string =
  process.env.LIVEDEX_ENGINE_PATH || fileURLToPath(new URL('../../build/livedex-engine.node', import.meta.url));

let nativeModule: NativeModule | undefined;

function loadNative(): NativeModule {
  if (nativeModule) return nativeModule;
  const require = createRequire(import.meta.url);
  try {
    nativeModule = require(ADDON_PATH) as NativeModule;
  } catch (err) {
    throw new LivedexError(
      'engine_error',
      `cannot load the livedex engine addon at ${ADDON_PATH}: build it with \`npm run build:engine\` (needs a Rust toolchain)`,
      { cause: err },
    );
  }
  return nativeModule;
}

function engineError(err: unknown, what: string): LivedexError {
  if (err instanceof LivedexError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new LivedexError('engine_error', `engine ${what}: ${message}`, { cause: err });
}

async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw engineError(err, what);
  }
}

// ───────────────────────────── conversions ─────────────────────────────

function toJson(value: Metadata | undefined, what: string): string {
  if (value === undefined || value === null) return '{}';
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new LivedexError('engine_error', `engine commit: ${what} must be an object`);
  }
  return JSON.stringify(value);
}

function isObject(value: unknown): value is Metadata {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseJson(text: string): Metadata {
  const v: unknown = JSON.parse(text);
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Metadata) : {};
}

function toFloat32(v: Float32Array | ArrayLike<number>): Float32Array {
  return v instanceof Float32Array ? v : Float32Array.from(v);
}

/**
 * What a chunk's metadata adds to its document's: the keys it sets to another value. Null when
 * it lacks a key its document has (it is then stored complete).
 */
function ownMetadata(chunk: Metadata, doc: Metadata): Metadata | null {
  if (chunk === doc) return {};
  for (const key of Object.keys(doc)) {
    if (doc[key] !== undefined && chunk[key] === undefined) return null;
  }
  const own: Metadata = {};
  for (const [key, value] of Object.entries(chunk)) {
    const inherited = doc[key];
    if (value !== inherited && !(typeof value === 'object' && value !== null && isDeepStrictEqual(value, inherited))) own[key] = value;
  }
  return own;
}

/** Converts chunks of one document; chunks sharing one metadata object share its conversion. */
function chunkWriter(op: Extract<DocumentOp, { op: 'upsert' }>): (c: ChunkWrite) => NativeChunkWrite {
  let last: { metadata: Metadata; json: string; inherits: boolean } | null = null;
  return (c) => {
    if (last?.metadata !== c.metadata) {
      const what = `metadata of chunk ${c.ordinal} of ${op.key}`;
      const own = isObject(c.metadata) && isObject(op.metadata) ? ownMetadata(c.metadata, op.metadata) : null;
      last = { metadata: c.metadata, json: toJson(own ?? c.metadata, what), inherits: own !== null };
    }
    return {
      ordinal: c.ordinal,
      text: c.text,
      textHash: c.textHash,
      metadata: last.json,
      inherits: last.inherits,
      ...(c.embedding ? { embedding: toFloat32(c.embedding) } : {}),
    };
  };
}

/** Chunks of one upsert handed to the engine per call beyond which they are staged in slices. */
const STAGE_SLICE = 512;

function toNativeOp(op: DocumentOp): NativeOp {
  switch (op.op) {
    case 'upsert':
      return {
        op: 'upsert',
        key: op.key,
        version: op.version,
        contentHash: op.contentHash,
        metadata: toJson(op.metadata, `metadata of ${op.key}`),
        chunks: op.chunks.map(chunkWriter(op)),
      };
    case 'delete':
      return { op: 'delete', key: op.key };
    case 'mark':
      return {
        op: 'mark',
        key: op.key,
        version: op.version,
        status: op.status,
        ...(op.error != null ? { error: op.error } : {}),
        metadata: toJson(op.metadata, `metadata of ${op.key}`),
      };
    default: {
      const bad = op as { op?: unknown; key?: unknown };
      throw new LivedexError('engine_error', `engine commit: unknown operation ${String(bad.op)} for ${String(bad.key)}`);
    }
  }
}

function unpackVectors(v: NativeVectors): (Float32Array | null)[] {
  const out: (Float32Array | null)[] = new Array(v.lengths.length);
  let offset = 0;
  for (let i = 0; i < v.lengths.length; i++) {
    const len = v.lengths[i]!;
    if (len < 0) {
      out[i] = null;
    } else {
      // A copy, so each vector owns its buffer (offset 0, no shared backing store).
      out[i] = v.data.slice(offset, offset + len);
      offset += len;
    }
  }
  return out;
}

/** Rows with complete metadata: a chunk's own keys over its document's (parsed once per page). */
function fromPage(page: NativeChunkPage): (ChunkMetaRow & { text?: string | null })[] {
  const inherited = new Map(page.documents.map((d) => [d.key, parseJson(d.metadata)]));
  return page.rows.map((r) => {
    const own = parseJson(r.metadata);
    const metadata = r.inherits ? { ...inherited.get(r.docKey), ...own } : own;
    return { id: r.id, docKey: r.docKey, ordinal: r.ordinal, textHash: r.textHash, metadata, text: r.text };
  });
}

function fusedScore(h: NativeFusedHit): FusedScore {
  const out: FusedScore = { id: h.id, dist: h.dist, fused: h.fused };
  if (h.bm25 != null) out.bm25 = h.bm25;
  if (h.vector != null) out.vector = h.vector;
  return out;
}

/** A finite count for the native side (u32). */
function count(n: number): number {
  return Number.isFinite(n) ? Math.max(0, Math.min(Math.floor(n), 0xffffffff)) : 0;
}

function nativePlan(plan: FusionPlan): FusionPlan {
  return { mode: plan.mode, fusion: plan.fusion, alpha: plan.alpha, rrfK: plan.rrfK, k: count(plan.k) };
}

function toDocument(r: NativeDocumentRow): DocumentRow {
  return {
    key: r.key,
    version: r.version,
    contentHash: r.contentHash ?? null,
    status: r.status as DocumentStatus,
    error: r.error ?? null,
    metadata: parseJson(r.metadata),
    chunkCount: r.chunkCount,
    seenAt: r.seenAt ?? null,
    indexedAt: r.indexedAt ?? null,
  };
}

function checkIds(ids: number[], what: string): number[] {
  for (const id of ids) {
    if (!Number.isSafeInteger(id)) throw new LivedexError('engine_error', `engine ${what}: chunk id ${id} is not an integer`);
  }
  return ids;
}

// ───────────────────────────── the engine ─────────────────────────────

class NativeBackedEngine implements Engine {
  readonly dir: string;
  /** Why the text index was rebuilt when this engine opened (null when it was reused). */
  readonly textIndexRebuilt: string | null;

  constructor(private readonly native: NativeEngine) {
    this.dir = native.dir;
    this.textIndexRebuilt = native.rebuilt ?? null;
  }

  commit(model: string, ops: DocumentOp[], options: { hold?: boolean } = {}): Promise<CommitResult> {
    return call('commit', async () => {
      const staged: number[] = [];
      let res: NativeCommitResult;
      try {
        const native: NativeOp[] = [];
        for (const op of ops) native.push(op.op === 'upsert' && op.chunks.length > STAGE_SLICE ? await this.#stage(op, staged) : toNativeOp(op));
        res = await this.native.commit(model, native, options.hold === true);
      } catch (err) {
        for (const token of staged) this.native.dropStaged(token);
        throw err;
      }
      return {
        seq: res.seq,
        documents: res.documents.map((d) => ({ key: d.key, removed: d.removed, added: d.added, current: d.current })),
        ...(res.textIndexError ? { textIndexError: res.textIndexError } : {}),
      };
    });
  }

  publish(): Promise<void> {
    return call('publish', () => this.native.publish());
  }

  releaseMemory(): Promise<boolean> {
    return call('releaseMemory', () => this.native.releaseMemory());
  }

  /**
   * Hands a large upsert's chunks to the engine in slices, yielding to the event loop between
   * them (converting 40,000 chunks at once would hold the JS thread for a quarter second).
   */
  async #stage(op: Extract<DocumentOp, { op: 'upsert' }>, staged: number[]): Promise<NativeOp> {
    const write = chunkWriter(op);
    let token: number | null = null;
    for (let i = 0; i < op.chunks.length; i += STAGE_SLICE) {
      token = this.native.stageChunks(token, op.chunks.slice(i, i + STAGE_SLICE).map(write));
      if (i === 0) staged.push(token);
      await nextTurn();
    }
    return { ...toNativeOp({ ...op, chunks: [] }), staged: token! };
  }

  lookupEmbeddings(model: string, textHashes: string[]): Promise<(Float32Array | null)[]> {
    return call('lookupEmbeddings', async () => unpackVectors(await this.native.lookupEmbeddings(model, textHashes)));
  }

  chunkEmbeddings(model: string, ids: number[]): Promise<(Float32Array | null)[]> {
    return call('chunkEmbeddings', async () =>
      unpackVectors(await this.native.chunkEmbeddings(model, checkIds(ids, 'chunkEmbeddings'))),
    );
  }

  searchText(query: string, k: number, allowedIds?: number[] | null): Promise<TextHit[]> {
    return call('searchText', async () => {
      const limit = Number.isFinite(k) ? Math.max(0, Math.min(Math.floor(k), 0xffffffff)) : 0;
      if (limit === 0) return [];
      if (allowedIds && allowedIds.length === 0) return [];
      const allowed = allowedIds ? checkIds(allowedIds, 'searchText') : null;
      const hits = await this.native.searchText(String(query), limit, allowed);
      return hits.map((h) => ({ id: h.id, score: h.score }));
    });
  }

  getChunks(ids: number[]): Promise<ChunkRow[]> {
    return call('getChunks', async () => {
      const rows = fromPage(await this.native.getChunks(checkIds(ids, 'getChunks')));
      return rows.map((r) => ({ ...r, text: r.text ?? '' }));
    });
  }

  retrieve(q: EngineQuery): Promise<EngineHit[]> {
    return call('retrieve', async () => {
      const plan = nativePlan(q.plan);
      if (plan.k === 0 || (q.allowed && q.allowed.length === 0)) return [];
      const res = await this.native.retrieve({
        query: String(q.query),
        candidates: count(q.candidates),
        // A null typed array is refused by napi: leave the field out for "every chunk".
        ...(q.allowed ? { allowed: q.allowed } : {}),
        vectorIds: checkIds(q.vector.map((h) => h.id), 'retrieve'),
        vectorScores: q.vector.map((h) => h.score),
        ...(q.exact && q.allowed ? { exactVector: q.exact.vector, exactModel: String(q.exact.model) } : {}),
        plan,
      });
      const inherited = new Map(res.documents.map((d) => [d.key, parseJson(d.metadata)]));
      return res.hits.map((h) => {
        const own = parseJson(h.metadata);
        const metadata = h.inherits ? { ...inherited.get(h.docKey), ...own } : own;
        return { ...fusedScore(h), docKey: h.docKey, ordinal: h.ordinal, text: h.text, metadata, indexedAt: h.indexedAt ?? null };
      });
    });
  }

  listChunks(afterId: number, limit: number): Promise<ChunkMetaRow[]> {
    return call('listChunks', async () => {
      const n = Math.max(0, Math.min(Math.floor(limit), 0xffffffff));
      if (n === 0) return [];
      return fromPage(await this.native.listChunks(Math.floor(afterId), n)).map(({ text: _text, ...r }) => r);
    });
  }

  loadCatalog(): Promise<CatalogDump> {
    return call('loadCatalog', async () => {
      const d = await this.native.loadCatalog();
      // Documents in key order and each distinct value once: one parse per document and value.
      const metadata: Metadata[] = new Array<Metadata>(d.metas.length);
      for (let doc = 0; doc < d.keys.length; doc++) {
        let inherited: Metadata | undefined;
        for (let i = d.starts[doc]!; i < d.starts[doc + 1]!; i++) {
          const m = d.metaOf[i]!;
          if (metadata[m] !== undefined) continue;
          const own = parseJson(d.metas[m]!);
          metadata[m] = d.metaInherits[m] ? { ...(inherited ??= parseJson(d.inherited[doc]!)), ...own } : own;
        }
      }
      return { keys: d.keys, starts: d.starts, ids: d.ids, metaOf: d.metaOf, metadata };
    });
  }

  getDocument(key: string): Promise<DocumentRow | null> {
    return call('getDocument', async () => {
      const row = await this.native.getDocument(key);
      return row ? toDocument(row) : null;
    });
  }

  listDocuments(): Promise<DocumentRow[]> {
    return call('listDocuments', async () => (await this.native.listDocuments()).map(toDocument));
  }

  getCursor(name: string): Promise<string | null> {
    return call('getCursor', async () => (await this.native.getCursor(name)) ?? null);
  }

  putEmbeddings(model: string, entries: { textHash: string; embedding: Float32Array }[]): Promise<void> {
    return call('putEmbeddings', () => this.native.putEmbeddings(model, entries.map((e) => e.textHash), entries.map((e) => e.embedding)));
  }

  setCursor(name: string, value: string): Promise<void> {
    return call('setCursor', () => this.native.setCursor(name, value));
  }

  stats(): Promise<EngineStats> {
    return call('stats', async () => {
      const s = await this.native.stats();
      return {
        documents: s.documents,
        pending: s.pending,
        indexed: s.indexed,
        failed: s.failed,
        chunks: s.chunks,
        lastSeq: s.lastSeq,
        textIndexSeq: s.textIndexSeq,
        lastModified: s.lastModified ?? null,
        lastIndexed: s.lastIndexed ?? null,
      };
    });
  }

  get markedLookupCount(): number {
    return this.native.markedLookupCount;
  }

  pruneEmbeddings(pass: EmbeddingPass): Promise<EmbeddingBatch> {
    return call('pruneEmbeddings', async () => {
      const b = await this.native.pruneEmbeddings({
        keepModels: pass.keepModels,
        graceMs: Math.max(0, Math.floor(pass.graceMs)),
        ...(pass.after ? { afterModel: pass.after.model, afterHash: pass.after.textHash } : {}),
        limit: Math.max(1, Math.min(Math.floor(pass.limit), 0xffffffff)),
        ...(pass.quietLookups != null ? { quietLookups: pass.quietLookups } : {}),
      });
      return {
        scanned: b.scanned,
        marked: b.marked,
        revived: b.revived,
        deleted: b.deleted,
        deferred: b.deferred,
        next: b.nextModel != null && b.nextHash != null ? { model: b.nextModel, textHash: b.nextHash } : null,
      };
    });
  }

  pruneChangeLog(upTo: number, limit: number): Promise<number> {
    return call('pruneChangeLog', () => this.native.pruneChangeLog(Math.floor(upTo), Math.max(1, Math.min(Math.floor(limit), 0xffffffff))));
  }

  housekeepingCounts(): Promise<HousekeepingCounts> {
    return call('housekeepingCounts', () => this.native.housekeepingCounts());
  }

  close(): Promise<void> {
    return call('close', () => this.native.close());
  }
}

/** Fuses a BM25 and a vector leg (each best first) the way `Engine.retrieve` does: the one fusion livedex has. */
export function fuseLegs(bm25: LegScore[], vector: LegScore[], plan: FusionPlan): FusedScore[] {
  const native = loadNative();
  try {
    return native
      .fuseLegs(bm25.map((h) => h.id), bm25.map((h) => h.score), vector.map((h) => h.id), vector.map((h) => h.score), nativePlan(plan))
      .map(fusedScore);
  } catch (err) {
    throw engineError(err, 'fuseLegs');
  }
}

/**
 * The change-log sequence the text index in data dir `dir` claims (null when it has none
 * usable). Reads only, without opening the store: it tells a store that was reset (empty,
 * deleted, replaced by an older copy) from a new one.
 */
export async function textIndexSeq(dir: string): Promise<number | null> {
  const native = loadNative();
  return call('textIndexSeq', async () => (await native.textIndexSeq(resolve(dir))) ?? null);
}

/**
 * Opens (creating if needed) the data dir `dir`: `store.sqlite` and `text-index/`.
 * Read-write takes the dir's lock (a second writer fails with "data dir … is in use by another
 * livedex process"), replays the change log into the text index or rebuilds it.
 * `readOnly` opens beside a running writer: no lock, no commits, searches what is committed.
 */
export async function openEngine(dir: string, opts: OpenOptions = {}): Promise<Engine> {
  const native = loadNative();
  return call('open', async () => new NativeBackedEngine(await native.openEngine(resolve(dir), opts.readOnly === true, opts.analyzer ?? null)));
}

// ───────────────────────────── token splitting ─────────────────────────────

/** Texts as they cross N-API: one UTF-16 buffer (lone surrogates kept) and each text's length. */
function packTexts(texts: readonly string[]): { buffer: Buffer; lengths: Uint32Array } {
  const lengths = new Uint32Array(texts.length);
  for (let i = 0; i < texts.length; i++) lengths[i] = texts[i]!.length;
  return { buffer: Buffer.from(texts.join(''), 'utf16le'), lengths };
}

/**
 * The engine's token splitter (the boundaries of `TokenSplitter`, computed on the thread pool),
 * or null when the addon cannot be loaded or predates it.
 */
export function engineTokenSplitting(): TokenSplitting | null {
  let native: NativeModule;
  try {
    native = loadNative();
  } catch {
    return null;
  }
  const split = native.splitTokenChunks;
  if (typeof split !== 'function') return null;
  return {
    splitTokenChunks(texts, { maxTokens, minTokens, overlapTokens }) {
      const { buffer, lengths } = packTexts(texts);
      return call('splitTokenChunks', () => split.call(native, buffer, lengths, maxTokens, minTokens, overlapTokens));
    },
  };
}

/** cl100k tokens of each text, counted as the engine's token splitter counts them (null: no such engine). */
export async function countSplitTokens(texts: readonly string[]): Promise<Uint32Array | null> {
  const native = loadNative();
  const count = native.countSplitTokens;
  if (typeof count !== 'function') return null;
  const { buffer, lengths } = packTexts(texts);
  return call('countSplitTokens', () => count.call(native, buffer, lengths));
}
