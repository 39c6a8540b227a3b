/** @module core/config — the configuration schema (zod), one source for the CLI, YAML files and docs. */
import { z } from 'zod';
import { answerConfigSchema } from './answer.js';
import { sandboxConfigSchema } from './sandbox.js';

/** A plugin block: `{ name: { ...options } }`, or just the plugin's name for its defaults. */
export const PluginRef = z
  .union([z.string().min(1), z.record(z.string(), z.unknown())])
  .transform((v, ctx) => {
    if (typeof v === 'string') return { name: v, options: {} as Record<string, unknown> };
    const keys = Object.keys(v);
    if (keys.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `a plugin block has exactly one key, its name (found ${keys.length}: ${keys.join(', ') || 'none'})` });
      return z.NEVER;
    }
    const name = keys[0]!;
    const options = v[name] ?? {};
    if (typeof options !== 'object' || Array.isArray(options)) {
      ctx.addIssue({ code: 'custom', path: [name], message: 'plugin options must be a mapping' });
      return z.NEVER;
    }
    return { name, options: options as Record<string, unknown> };
  });
export type PluginRef = z.output<typeof PluginRef>;

export const RetrievalConfig = z.strictObject({
  default_k: z.number().int().min(1).default(3).describe('k when a request gives none'),
  max_k: z.number().int().min(1).default(1000).describe('largest k a request may ask for'),
  default_mode: z.enum(['hybrid', 'vector', 'bm25']).default('hybrid'),
  default_fusion: z
    .enum(['auto', 'rrf', 'convex'])
    .default('auto')
    .describe('hybrid fusion when a request names none; auto = rrf for a semantic embedder, convex with lexical_alpha for a lexical-only one'),
  // Each default below is measured on SciFact with `npm run eval` (README, "Why the defaults").
  // RRF k: 5…100 all within ±0.005 nDCG@10 of k=60 with MiniLM (no significant difference): the literature's 60.
  rrf_k: z.number().positive().default(60).describe('the k of reciprocal rank fusion'),
  // MiniLM: convex nDCG@10 peaks at α=0.7 (0.739; 0.5: 0.732, 0.9: 0.706).
  alpha: z.number().min(0).max(1).default(0.7).describe('vector weight in convex fusion with a semantic embedder'),
  // hashing: convex α=0.1…0.4 within 0.003 of each other and of BM25 alone (0.692); α=0.5 0.687, 0.9 0.492.
  lexical_alpha: z.number().min(0).max(1).default(0.2).describe('vector weight in convex fusion (and of auto fusion) with a lexical-only embedder'),
  // An exact scan of stored embeddings costs ~10 µs a chunk (bench:filter), ~3× less than getPoint; a filtered graph search walks ~ef·N/accepted nodes: they meet near a few thousand.
  exact_vector_max: z.number().int().min(0).default(5000).describe('a filter keeping at most this many chunks has its vector leg searched exactly in the engine (0: always the graph)'),
  candidates: z.number().int().min(1).default(50).describe('hits fetched from each leg before fusion (at least k)'),
});

/** Stemming languages of the text index (tantivy's Snowball stemmers); `none`: words as written, lower-cased. */
export const TEXT_LANGUAGES = ['arabic', 'danish', 'dutch', 'english', 'finnish', 'french', 'german', 'greek', 'hungarian', 'italian', 'norwegian', 'portuguese', 'romanian', 'russian', 'spanish', 'swedish', 'tamil', 'turkish', 'none'] as const;
/** Languages with a stop-word list in tantivy. */
const STOP_WORD_LANGUAGES = new Set(['danish', 'dutch', 'english', 'finnish', 'french', 'german', 'hungarian', 'italian', 'norwegian', 'portuguese', 'russian', 'spanish', 'swedish']);

/**
 * How the BM25 index turns text into terms. Changing it rebuilds the text index from the store
 * on the next start (nothing is parsed or embedded again). The defaults are measured: see the README's
 * "Why the defaults" (SciFact, `npm run eval -- --text-language … --stop-words --ascii-folding`).
 */
export const TextIndexConfig = z
  .strictObject({
    language: z.enum(TEXT_LANGUAGES).default('english').describe('stemming language of the BM25 index, or none'),
    stop_words: z.boolean().default(false).describe("drop the language's stop words from the BM25 index and queries"),
    ascii_folding: z.boolean().default(false).describe('fold accented letters to ASCII (café = cafe)'),
  })
  .refine((t) => !t.stop_words || STOP_WORD_LANGUAGES.has(t.language), { message: 'no stop-word list for this language', path: ['stop_words'] });

export const PipelineConfig = z.strictObject({
  concurrency: z.number().int().min(1).default(4).describe('documents processed at once'),
  queue_size: z.number().int().min(16).default(2048).describe('changes held before sources are slowed down'),
  max_file_bytes: z.number().int().min(1).default(32 * 1024 * 1024).describe('larger files are marked failed'),
  // Paths, titles, tags and ACLs take a few KB; 64 KB leaves room for long ACLs and descriptions
  // while a document's metadata stays small beside its text (it is held per document in memory).
  max_metadata_bytes: z.number().int().min(1024).default(64 * 1024).describe("largest metadata of a document (its JSON); a push over it gets 413, a source's document is marked failed"),
  // 32 MB of prose at 400 tokens a chunk is about 40,000 chunks; 100,000 leaves room for smaller
  // chunks and wide tables, and bounds one document's vectors and catalog entries (~3 KB a chunk).
  max_chunks_per_document: z.number().int().min(1).default(100_000).describe('a document split into more chunks is marked failed'),
  // A commit costs a few fsyncs and a text-index commit whatever its size: a bulk load commits in
  // full batches, bounded so that a live edit waits at most one batch's commit behind it.
  commit_batch: z.number().int().min(1).default(256).describe('documents per store commit at most'),
  commit_max_chunks: z.number().int().min(1).default(4096).describe('chunks per store commit at most (a larger document commits alone)'),
  commit_max_bytes: z.number().int().min(1024).default(16 * 1024 * 1024).describe('bytes of chunk text per store commit at most (a larger document commits alone)'),
  commit_max_ms: z.number().int().min(1).default(250).describe('a sync commit is sized by the recent commits\' pace to take about this long: the longest a live edit waits for the commit under way'),
  commit_delay_ms: z.number().int().min(0).default(250).describe('longest wait for a fuller commit while more documents are being processed; with nothing else under way a change is committed at once'),
  edit_queue_size: z.number().int().min(1).default(64).describe('live edits (watcher events, pushes) queued ahead of a sync backlog; more wait in the queue with the rest'),
  log_progress_s: z.number().min(0).default(10).describe('how often a sync backlog logs one progress line at info (its documents are logged one by one at debug); 0 = only when it ends'),
  embed_batch: z.number().int().min(1).default(64).describe('texts per embedder call'),
  snapshot_interval_s: z.number().min(0).default(30).describe('how often the vector index is snapshotted'),
  retry_base_ms: z.number().int().min(1).default(30_000).describe('first wait before a document held back by an unreachable model is tried again'),
  retry_max_ms: z.number().int().min(1).default(600_000).describe('longest wait between such tries (the wait doubles up to it)'),
});

/** Pruning of what the store keeps only for a while: unused embeddings, applied change-log entries. */
export const HousekeepingConfig = z.strictObject({
  interval_s: z.number().min(0).default(300).describe('how often the store is pruned (also once after the first sync); 0 = never'),
  cache_grace_s: z
    .number()
    .min(0)
    .default(3600)
    .describe('how long an embedding no chunk uses stays cached (a revert within it is not embedded again); entries of models no longer configured go the same way'),
  batch: z.number().int().min(1).default(2000).describe('rows pruned per store transaction (commits wait at most one batch)'),
});

/** Who may call the server. */
export const AuthConfig = z.strictObject({
  tokens: z
    .array(
      z.union([
        z.string().min(16, 'an auth token has at least 16 characters'),
        z.strictObject({
          token: z.string().min(16, 'an auth token has at least 16 characters'),
          scope: z.enum(['read', 'admin']).default('admin'),
          name: z.string().min(1).optional(),
        }),
      ]),
    )
    .default([])
    .describe('bearer tokens; a bare string is an admin token; read tokens cannot push or delete'),
  tokens_file: z.string().optional().describe('a YAML/JSON file with more tokens in the same shape'),
  allow_remote_without_auth: z.boolean().default(false).describe('bind to a non-loopback address with no token (the index is then open to the network)'),
});

/** How much any caller may ask. */
export const LimitsConfig = z.strictObject({
  max_body_bytes: z.number().int().min(1024).default(1024 * 1024).describe('largest request body (pushed documents: pipeline.max_file_bytes)'),
  max_query_chars: z.number().int().min(256).default(8192).describe('longest query string'),
  rate_per_minute: z.number().int().min(0).default(0).describe('requests a minute per token (per client address without auth); 0 = no limit'),
  max_concurrent: z.number().int().min(1).default(256).describe('requests handled at once; more get 429'),
  mcp_sessions: z.number().int().min(1).default(1000).describe('open MCP sessions at most; a new one ends the least recently used'),
  mcp_session_idle_s: z.number().min(1).default(1800).describe('an MCP session unused this long ends (its client opens a new one)'),
  // Headers fit in one packet (Node caps them at 16 KB): 10 s is ample on any link, and ends a Slowloris connection 6× sooner than Node's 60 s.
  header_timeout_ms: z.number().int().min(100).default(10_000).describe('a request whose headers have not all arrived by then is cut off (408)'),
  // A body waiting to arrive holds no slot of max_concurrent, only a socket: 60 s lets a 32 MB push arrive at 4.5 Mbit/s.
  body_timeout_ms: z.number().int().min(100).default(60_000).describe('a request (headers and body) not all arrived by then is cut off (408); it bounds header_timeout_ms too'),
  max_response_bytes: z
    .number()
    .int()
    .min(1024)
    .default(32 * 1024 * 1024)
    .describe('largest JSON answer of /v1/retrieve (hits past it are left out, best kept) and of the document listings (refused past it)'),
  filter_max_chars: z.number().int().min(64).max(65_536).default(4096).describe('longest metadata_filter, in characters (400 beyond)'),
  filter_max_depth: z.number().int().min(4).max(256).default(64).describe('deepest nesting of calls, brackets and ||/&& chains in a metadata_filter'),
  glob_max_chars: z.number().int().min(16).max(65_536).default(1024).describe('longest glob (filepath_globpattern or a globmatch() pattern), in characters'),
  filter_max_string_chars: z.number().int().min(256).default(65_536).describe('longest string a filter function may build (pad_left/pad_right width, join, replace)'),
  filter_max_array_items: z.number().int().min(16).default(10_000).describe('largest array a filter may build (split, flattening, replace count)'),
  filter_max_cost: z.number().int().min(10_000).default(2_000_000).describe('work units one document\'s filter evaluation may take (at most about 6 ns each)'),
  filter_max_request_cost: z.number().int().min(10_000).default(100_000_000).describe('work units one request\'s filter may take over all documents (400 beyond)'),
  filter_budget_ms: z.number().min(1).default(500).describe('CPU time a request\'s filter may take over all documents, a backstop for the work units (400 beyond)'),
});

/** The splitter of parsers that name none (plain text, source code) when the config names none either. */
export const DEFAULT_SPLITTER = 'token';

export const LivedexConfig = z.strictObject({
  /**
   * Modules holding third-party plugins (`definePlugin`): npm package names, or `./…` paths
   * beside the app file. Each module's exports that are plugin definitions (or lists of them)
   * are registered before the rest of the config is read, so the config can name them.
   */
  plugins: z.array(z.string().min(1)).default([]),
  data_dir: z.string().default('./.livedex'),
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8000),
  sources: z.array(PluginRef).default([]),
  /** Parsers by name; an empty list means every registered parser. */
  parsers: z.array(PluginRef).default([]),
  /**
   * The splitter of every parser; absent: each parser's own preference (`structure` for
   * Markdown, DOCX, HTML, PDF, PPTX, e-mail; `token` for CSV, XLSX, JSON records), else
   * `DEFAULT_SPLITTER`.
   */
  splitter: PluginRef.optional(),
  /** Splitters by parser name (`{ pdf: { structure: { max_tokens: 600 } } }`); wins over `splitter`. */
  splitters: z.record(z.string(), PluginRef).default({}),
  embedder: PluginRef.default({ name: 'hashing', options: {} }),
  vector_index: PluginRef.default({ name: 'hnsw', options: {} }),
  /** The chat model answering questions (`{ openai: { model } }`); absent: the answer routes say 503. */
  llm: PluginRef.optional(),
  /** How questions are answered: prompt, adaptive or fixed context, the no-answer signal. */
  answer: answerConfigSchema.prefault({}),
  auth: AuthConfig.prefault({}),
  /** Origins allowed to call from a browser; empty: CORS off. */
  cors_origins: z.array(z.string().min(1)).default([]),
  /**
   * Host names (`docs.internal`, or `docs.internal:8000` for one port) a server without a token
   * answers besides loopback names; with a token, when given, only these and loopback names.
   */
  allowed_hosts: z
    .array(z.string().min(1))
    .default([])
    .describe('Host header names served besides localhost, 127.0.0.1 and [::1] (needed without a token: it stops DNS rebinding)'),
  limits: LimitsConfig.prefault({}),
  retrieval: RetrievalConfig.default(RetrievalConfig.parse({})),
  text_index: TextIndexConfig.prefault({}),
  pipeline: PipelineConfig.default(PipelineConfig.parse({})),
  housekeeping: HousekeepingConfig.prefault({}),
  /** Parsing in worker threads with time, heap and size limits; a hostile file never hurts the server. */
  sandbox: sandboxConfigSchema.extend({ enabled: z.boolean().default(true) }).prefault({}),
});
export type LivedexConfig = z.output<typeof LivedexConfig>;
/** A config as written (an app file's keys, defaults left out). */
export type LivedexConfigInput = z.input<typeof LivedexConfig>;
export type RetrievalConfig = z.output<typeof RetrievalConfig>;
export type PipelineConfig = z.output<typeof PipelineConfig>;
export type TextIndexConfig = z.output<typeof TextIndexConfig>;
export type HousekeepingConfig = z.output<typeof HousekeepingConfig>;
