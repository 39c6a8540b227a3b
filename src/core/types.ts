/** @module core/types — the contracts every plugin implements and every room codes against. */

/** JSON-like metadata carried by documents and chunks; filters (JMESPath) run over it. */
export type Metadata = Record<string, unknown>;

/** Where a document stands in the pipeline, as stored by the engine. */
export type DocumentStatus = 'pending' | 'indexed' | 'failed';

/** Minimal structured logger; every context passes one explicitly (no global logger). */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

// ───────────────────────────── sources ─────────────────────────────

/** A document as a source sees it: identity, version, metadata and a way to read its bytes. */
export interface SourceDocument {
  /** Stable identity of the document; for the folder source, its path. */
  key: string;
  /** Changes whenever the source says the content may have changed (mtime+size, ETag, cTag…). */
  version: string;
  /** Source metadata: `path`, `modified_at` and `created_at` (Unix seconds), `size`, `url`… */
  metadata: Metadata;
  /**
   * Lower-case extension with the dot (`.docx`) that picks the parser, for keys that carry
   * none (a Drive file id, a Graph item id); absent: the key's own extension.
   */
  extension?: string;
  /** Reads the current bytes; may throw if the document vanished meanwhile. */
  read(signal?: AbortSignal): Promise<Uint8Array>;
}

/**
 * One thing that happened at a source. `live`: someone just made this change (a watcher event,
 * a push); it goes ahead of a sync backlog and is committed at once. Absent for what a listing,
 * a reconcile or a catch-up finds: committed in full batches.
 */
export type Change =
  | { kind: 'upsert'; doc: SourceDocument; live?: boolean }
  | { kind: 'delete'; key: string; live?: boolean };

/** What the pipeline gives a source. */
export interface SourceContext {
  /** Versions of the documents this source owns, as last recorded by the store (for reconciling). */
  knownVersions(): Promise<Map<string, string>>;
  /** Queues changes; resolves once they are accepted (this is where back-pressure applies). */
  emit(changes: Change[]): Promise<void>;
  getCursor(): Promise<string | null>;
  setCursor(value: string): Promise<void>;
  /** Resolves once every change emitted so far is committed (or failed): write a cursor that claims them only then. */
  settled(): Promise<void>;
  /**
   * Tells operators how the source is doing (shown in `status().sources`): call it with
   * `state: 'error'` and the reason when the service fails (the source keeps retrying), and
   * with `'idle'` once a sync succeeds. Never put credentials in `error`.
   */
  reportHealth(health: SourceHealth): void;
  logger: Logger;
  signal: AbortSignal;
}

/** How a source is doing, as its plugin reports it. */
export interface SourceHealth {
  /** `syncing`: listing or following changes; `idle`: caught up; `error`: the last try failed. */
  state: 'syncing' | 'idle' | 'error';
  /** The reason of the last failure (no credentials), null once a try succeeds. */
  error?: string | null;
  /** Unix seconds of the last sync that succeeded. */
  last_sync_at?: number | null;
  /** Paths the source found but could not index, with why: the first few, and how many in all. Absent when none. */
  skipped?: SkippedPaths;
}

/** A bounded report of the paths a source skipped: `paths` lists at most a configured number, `count` counts them all. */
export interface SkippedPaths {
  count: number;
  paths: SkippedPath[];
}

/** A path a source found but could not index (unreadable, a name that is not valid UTF-8, leading outside the source). */
export interface SkippedPath {
  /** The path as a document key would spell it (bytes that are not valid UTF-8 written `\xFF`). */
  path: string;
  reason: string;
}

/** A source in `status()`: its id, its reported health and its stored cursor. */
export interface SourceStatus extends SourceHealth {
  id: string;
  /** Consecutive failures since the last success. */
  failures: number;
}

/** Turns the outside world into a stream of `Change`s. */
export interface Source {
  /** Unique within a deployment; also the namespace of the source's cursor. */
  readonly id: string;
  /** True when `key` belongs to this source (used to reconcile deletions per source). */
  owns(key: string): boolean;
  /**
   * Starts following the source; resolves once the first full reconcile has been emitted, or,
   * for a source that can serve from what the store already knows (a restart), once it follows
   * changes, with `synced` telling when that first reconcile is emitted.
   */
  start(ctx: SourceContext): Promise<void>;
  /** Resolves once the first reconcile after `start` has been emitted; absent: `start` waits for it. */
  synced?(): Promise<void>;
  /** Forces a reconcile now (the periodic one calls the same thing). */
  reconcile(): Promise<void>;
  stop(): Promise<void>;
}

// ───────────────────────────── parse / split ─────────────────────────────

export interface ParseInput {
  key: string;
  bytes: Uint8Array;
  /** Lower-case extension with the dot, e.g. `.md`; empty when none. */
  extension: string;
  metadata: Metadata;
  signal?: AbortSignal;
  /** How deep this input is attached inside other documents (absent or 0: a document of its own). */
  depth?: number;
  /**
   * The configured parser of an attachment's type, handed in by the host (the pipeline, or the
   * parse worker): undefined when no configured parser claims `extension`. Parsers of containers
   * (e-mail) send their attachments here, so they are read with the configured options.
   */
  parseAttachment?: AttachmentParsers;
}

/** The host's parsers by extension, for the attachments a parser finds. */
export type AttachmentParsers = (extension: string) => ((input: ParseInput) => Promise<ParsedPart[]>) | undefined;

/** One unit of parsed text (a page, a slide, a section) with what the parser knew about it. */
export interface ParsedPart {
  text: string;
  metadata: Metadata;
}

export interface Parser {
  readonly name: string;
  /** Extensions this parser claims, lower-case with the dot (`.md`). */
  readonly extensions: readonly string[];
  /**
   * The splitter plugin this parser's parts are best split by (`structure` for formats with
   * headings or pages), used unless the config names one (`splitter`, `splitters`); absent:
   * the default splitter.
   */
  readonly splitter?: string;
  parse(input: ParseInput): Promise<ParsedPart[]>;
}

/** A chunk before it is stored: text plus metadata (document metadata merged with part metadata). */
export interface ChunkDraft {
  text: string;
  metadata: Metadata;
}

/**
 * Token splitting done in the engine: chunk boundaries of many texts in one asynchronous call,
 * the same boundaries as the token splitter's own (cl100k, paragraphs, sentences, lines, words).
 */
export interface TokenSplitting {
  /**
   * Per text, in order: its chunk count, then each chunk's start and end offset (UTF-16 code
   * units, `text.slice(start, end)`), packed in one array.
   */
  splitTokenChunks(texts: readonly string[], options: { maxTokens: number; minTokens: number; overlapTokens: number }): Promise<Uint32Array>;
}

export interface Splitter {
  readonly name: string;
  /** Chunks of `parts` in order; may be async (LangChain's splitters are). */
  split(parts: ParsedPart[], documentMetadata: Metadata): ChunkDraft[] | Promise<ChunkDraft[]>;
}

// ───────────────────────────── models ─────────────────────────────

export interface Embedder {
  readonly name: string;
  /** Identifies the vectors this embedder produces: plugin, model and every option that changes them. */
  readonly modelKey: string;
  readonly dimensions: number;
  /**
   * True when the vectors carry word overlap only, no meaning (the offline `hashing` model):
   * such a vector leg mostly repeats BM25, so hybrid search leans on BM25 by default.
   */
  readonly lexical?: boolean;
  /** Embeds document texts; returns one L2-normalized vector per text, in order. */
  embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]>;
  /** Embeds a query (some models prefix queries differently); defaults to `embed`. */
  embedQuery?(text: string, signal?: AbortSignal): Promise<Float32Array>;
}

/** One message of a chat conversation. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A function the model may call instead of (or besides) writing text; `parameters` is a JSON Schema. */
export interface ChatTool {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

/** A tool call the model made; `arguments` is the JSON text the model wrote. */
export interface ChatToolCall {
  name: string;
  arguments: string;
}

export interface ChatRequest {
  messages: ChatMessage[];
  /** Model name; the plugin's configured model when absent. */
  model?: string | null;
  /** `json`: the model must answer with one JSON object (OpenAI's JSON mode). */
  responseFormat?: 'text' | 'json';
  tools?: ChatTool[];
  temperature?: number;
  maxTokens?: number;
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

export interface ChatResult {
  text: string;
  toolCalls: ChatToolCall[];
  usage: ChatUsage;
  /** The model that answered, as the server named it. */
  model: string;
  finishReason: string | null;
}

/** Streaming pieces of a chat answer: text as it comes, a tool call once it is complete, then the result. */
export type ChatChunk =
  | { type: 'text'; text: string }
  | { type: 'tool_call'; call: ChatToolCall }
  | { type: 'done'; result: ChatResult };

/** A chat model (plugin kind `llm`): messages in, text (or tool calls) and usage out. */
export interface ChatModel {
  readonly name: string;
  /** The model used when a request names none. */
  readonly model: string;
  complete(req: ChatRequest, signal?: AbortSignal): Promise<ChatResult>;
  /**
   * Streams the answer; the iterable ends with one `done` chunk. Errors before the first chunk
   * are retried like `complete`; later ones end the stream with the error.
   */
  stream(req: ChatRequest, signal?: AbortSignal): AsyncIterable<ChatChunk>;
  /** Cancels calls in flight (shutdown). */
  close?(): Promise<void>;
}

// ───────────────────────────── indexes ─────────────────────────────

export interface VectorHit {
  id: number;
  /** Cosine distance (1 − cosine similarity): 0 is identical. */
  distance: number;
}

/**
 * Which ids a vector search may return: a predicate, the set of accepted ids, or the set of
 * refused ones (`{ exclude }`, every other id accepted). Prefer a set when it is at hand: the
 * index can then count the accepted ids for free and search a small set exactly instead of
 * walking the graph past every rejected node, and a set can cross to an index on another thread.
 */
export type VectorFilter = ((id: number) => boolean) | ReadonlySet<number> | { readonly exclude: ReadonlySet<number> };

/** An approximate-nearest-neighbour index over chunk ids (labels). */
export interface VectorIndex {
  readonly dimensions: number;
  /** The change-log sequence the loaded snapshot reflected (0 for a new index). */
  readonly snapshotSeq: number;
  /** Number of live (not deleted) vectors. */
  readonly size: number;
  has(id: number): boolean;
  /** Adds or replaces the vector of `id`. */
  add(id: number, vector: Float32Array): void;
  /** Removes `id`; a no-op when absent. */
  remove(id: number): void;
  /** Ids of every live vector. */
  ids(): number[];
  /**
   * The `k` nearest live vectors; with `filter`, only ids it accepts, applied inside the
   * search so that `k` hits come back whenever `k` accepted ids exist.
   */
  search(query: Float32Array, k: number, filter?: VectorFilter): VectorHit[] | Promise<VectorHit[]>;
  /** Writes a crash-safe snapshot (temp file + rename) recording `seq`. */
  save(seq: number): Promise<void>;
  /**
   * For an index that applies changes elsewhere (another thread): resolves once every change
   * made before the call is searchable. Without it, a change is searchable when `add` returns.
   */
  flush?(): Promise<void>;
  /** Releases what the index holds (a thread); it is not used afterwards. */
  close?(): Promise<void>;
}

// ───────────────────────────── query ─────────────────────────────

export type RetrievalMode = 'hybrid' | 'vector' | 'bm25';
export type Fusion = 'rrf' | 'convex';

export interface RetrieveRequest {
  query: string;
  k: number;
  mode: RetrievalMode;
  fusion?: Fusion;
  /** Weight of the vector leg in convex fusion (0..1); choosing it implies convex fusion. */
  alpha?: number;
  metadataFilter?: string | null;
  filepathGlobpattern?: string | null;
}

/** One hit on the wire (Pathway's shape plus our per-leg scores). */
export interface Hit {
  text: string;
  metadata: Metadata;
  /** Lower is better; 0 is an exact match in `vector` and `hybrid`. */
  dist: number;
  scores: { bm25?: number; vector?: number; fused?: number };
}

export interface ListDocumentsRequest {
  metadataFilter?: string | null;
  filepathGlobpattern?: string | null;
  returnStatus?: boolean;
}

export interface Statistics {
  file_count: number;
  last_modified: number | null;
  last_indexed: number | null;
}

/** Per-document state as reported to operators. */
export interface DocumentInfo {
  key: string;
  status: DocumentStatus;
  error: string | null;
  metadata: Metadata;
  chunk_count: number;
  /** Unix seconds. */
  indexed_at: number | null;
  seen_at: number | null;
}

export interface IndexStatus {
  /** The index serves: the first sync is indexed, or on a restart the stored index is open. */
  ready: boolean;
  /** Every source's first listing since start is indexed (a restart serves before it is). */
  synced: boolean;
  documents: { total: number; pending: number; indexed: number; failed: number };
  chunks: number;
  queue: { depth: number; inFlight: number };
  lastSeq: number;
  /** The embedding model serving queries and, during a model change, the one being built. */
  model: { active: string; building: { model: string; done: number; total: number } | null };
  /** Every configured source with its health. */
  sources: SourceStatus[];
}

/** What the REST server, MCP and CLI see of a live index. */
export interface LiveIndexApi {
  retrieve(req: RetrieveRequest): Promise<Hit[]>;
  listDocuments(req: ListDocumentsRequest): Promise<Metadata[]>;
  statistics(): Promise<Statistics>;
  status(): Promise<IndexStatus>;
  getDocument(key: string): Promise<DocumentInfo | null>;
  /** Every stored document (indexed, pending or failed), sorted by key. */
  listDocumentInfos(): Promise<DocumentInfo[]>;
  /** A document's chunks in order (together: its text); null when there is no such document. */
  getDocumentChunks(key: string): Promise<DocumentChunk[] | null>;
  /** Calls `listener` after each commit with the documents it touched; returns the unsubscribe. */
  onChange(listener: (change: IndexChange) => void): () => void;
  /** True once the first reconcile of every source has been indexed. */
  isReady(): boolean;
}

/** One chunk of a document, in document order. */
export interface DocumentChunk {
  ordinal: number;
  text: string;
  metadata: Metadata;
}

/** What one commit changed: documents (re)indexed or marked pending/failed, and documents removed. */
export interface IndexChange {
  /** The change-log sequence of the commit. */
  seq: number;
  updated: string[];
  deleted: string[];
}

// ───────────────────────────── answers ─────────────────────────────

/** A question to answer from the index (Pathway's `/v2/answer` fields, in camel case). */
export interface AnswerRequest {
  prompt: string;
  /** JMESPath metadata filter applied inside retrieval. */
  metadataFilter?: string | null;
  filepathGlobpattern?: string | null;
  /** Chat model name; the configured default when absent. */
  model?: string | null;
  returnContextDocs?: boolean;
  /** Earlier turns of a conversation (the OpenAI-compatible endpoint), sent before the question. */
  history?: ChatMessage[];
}

/** A context document the answer may cite as `[n]` (n = position + 1). */
export interface ContextDoc extends Hit {
  /** The citation number used in the answer text. */
  ref: number;
}

export interface AnswerResult {
  response: string;
  /** Citation numbers the answer used, each mapping to `context_docs[ref - 1]`. */
  citations: number[];
  /** Only when `returnContextDocs`; always computed. */
  context_docs?: ContextDoc[];
  usage: { prompt_tokens: number; completion_tokens: number; calls: number };
  /** False when the model found no answer in the documents (even at the widest context). */
  answered?: boolean;
}

/** Streaming pieces of an answer: tokens as they come, then the citations and usage. */
export type AnswerEvent =
  | { type: 'token'; text: string }
  | { type: 'done'; result: AnswerResult };

export interface SummarizeRequest {
  textList: string[];
  model?: string | null;
}

/** Question answering over a live index; absent when no chat model is configured. */
export interface AnswerApi {
  /** Model names a request may ask for, the default first (listed by `GET /v1/models`). */
  readonly models?: readonly string[];
  answer(req: AnswerRequest, signal?: AbortSignal): Promise<AnswerResult>;
  answerStream(req: AnswerRequest, signal?: AbortSignal): AsyncIterable<AnswerEvent>;
  summarize(req: SummarizeRequest, signal?: AbortSignal): Promise<string>;
}
