/**
 * @module server/schemas — the wire contract in zod: request and response bodies with their
 * snake_case names, the single source for REST validation, MCP tool inputs and OpenAPI.
 */
import { z } from 'zod';
import { LivedexError } from '../core/errors.js';
import type { AnswerRequest, ListDocumentsRequest, RetrievalMode, RetrieveRequest, SummarizeRequest } from '../core/types.js';

/** Pathway's clients default `k` to 3; so do we. */
export const DEFAULT_K = 3;
/** The mode of a retrieve that names none, unless `retrieval.default_mode` says otherwise. */
export const DEFAULT_MODE: RetrievalMode = 'hybrid';
/** The largest `k` accepted unless the server is configured otherwise. */
export const DEFAULT_MAX_K = 1000;

/** A value as it appears in an error message: JSON, cut short. */
function shown(value: unknown): string {
  let s: string;
  try {
    s = value === undefined ? 'nothing' : (JSON.stringify(value) ?? String(value));
  } catch {
    s = String(value);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const filterFields = {
  metadata_filter: z
    .string({ error: (iss) => `metadata_filter must be a string (a JMESPath expression) or null (got ${shown(iss.input)})` })
    .nullish()
    .describe(
      'JMESPath expression over chunk metadata that must be true for a hit, e.g. ' +
        "`globmatch('**/*.md', path) && modified_at > `1700000000``. Backtick literals that are " +
        'not JSON are strings, as in Pathway; single-quoted strings work too. Null or empty: no filter.',
    ),
  filepath_globpattern: z
    .string({ error: (iss) => `filepath_globpattern must be a string or null (got ${shown(iss.input)})` })
    .nullish()
    .describe(
      'Glob over metadata.path, ANDed with metadata_filter: `*` stays within a segment, `**` spans ' +
        'segments, a pattern without `/` matches the file name anywhere (`*.md`). Null or empty: no filter.',
    ),
};

export const RetrievalModeSchema = z
  .enum(['hybrid', 'vector', 'bm25'], {
    error: (iss) => `mode must be one of hybrid, vector, bm25 (got ${shown(iss.input)})`,
  })
  .describe('Which index answers: both fused (hybrid), embeddings only (vector) or keywords only (bm25).');

export const FusionSchema = z
  .enum(['rrf', 'convex'], { error: (iss) => `fusion must be rrf or convex (got ${shown(iss.input)})` })
  .describe('How hybrid mode fuses the two result lists: reciprocal rank fusion (rrf) or a weighted sum of normalized scores (convex).');

/** The `/v1/retrieve` body, with `k` bounded by `maxK`. */
export function retrieveRequestSchema(opts: { maxK?: number } = {}) {
  const maxK = opts.maxK ?? DEFAULT_MAX_K;
  const kMessage = (iss: { input?: unknown }) => `k must be an integer ≥ 1 (got ${shown(iss.input)})`;
  return z.object({
    query: z
      .string({
        error: (iss) =>
          iss.input === undefined || iss.input === null
            ? 'query is required: the text to search for'
            : `query must be a string (got ${shown(iss.input)})`,
      })
      .describe('The text to search for (required; an empty query matches nothing, as in Pathway).'),
    k: z
      .number({ error: kMessage })
      .int({ error: kMessage })
      .min(1, { error: kMessage })
      .max(maxK, { error: (iss) => `k must be at most ${maxK} (got ${shown(iss.input)})` })
      .nullish()
      .describe(`How many hits to return, 1 to ${maxK}; null or absent means ${DEFAULT_K}.`),
    ...filterFields,
    mode: RetrievalModeSchema.nullish().describe('hybrid, vector or bm25; null or absent means retrieval.default_mode (hybrid unless configured).'),
    fusion: FusionSchema.nullish().describe('rrf or convex (default: rrf with a semantic embedder, convex leaning on bm25 with the offline lexical one); giving alpha implies convex.'),
    alpha: z
      .number({ error: (iss) => `alpha must be a number from 0 to 1 (got ${shown(iss.input)})` })
      .min(0, { error: (iss) => `alpha must be a number from 0 to 1 (got ${shown(iss.input)})` })
      .max(1, { error: (iss) => `alpha must be a number from 0 to 1 (got ${shown(iss.input)})` })
      .nullish()
      .describe('Weight of the vector leg in convex fusion, 0 to 1 (bm25 gets 1 − alpha); implies fusion=convex.'),
  });
}

/** `/v1/retrieve` (and the MCP `retrieve` tool) with the default `k` limit. */
export const RetrieveRequestSchema = retrieveRequestSchema();
export type RetrieveRequestWire = z.output<typeof RetrieveRequestSchema>;

/** `/v1/inputs`, `/v2/list_documents`, `/v1/pw_list_documents` (and the MCP `list_documents` tool). */
export const ListDocumentsRequestSchema = z.object({
  ...filterFields,
  return_status: z
    .boolean({ error: (iss) => `return_status must be true or false (got ${shown(iss.input)})` })
    .nullish()
    .describe('Add `_indexing_status` ("INDEXED" or "INGESTED") to each document; default false.'),
});
export type ListDocumentsRequestWire = z.output<typeof ListDocumentsRequestSchema>;

/** `/v1/statistics` takes nothing (extra fields are ignored). */
export const StatisticsRequestSchema = z.object({});

/** `GET /v1/documents/{key}`: the key travels URL-encoded in the path. */
export const GetDocumentRequestSchema = z.object({
  key: z.string().min(1, { error: 'key must not be empty' }).describe('The document key (for the folder source, its path).'),
});

/** `/v2/answer`, `/v1/pw_ai_answer` (and the MCP `answer` tool): Pathway's fields plus ours. */
export const answerRequestSchema = z.object({
  prompt: z
    .string({
      error: (iss) =>
        iss.input === undefined || iss.input === null ? 'prompt is required: the question to answer' : `prompt must be a string (got ${shown(iss.input)})`,
    })
    .describe('The question to answer from the documents (required).'),
  filters: z
    .string({ error: (iss) => `filters must be a string (a JMESPath expression) or null (got ${shown(iss.input)})` })
    .nullish()
    .describe('JMESPath metadata filter applied inside retrieval (as metadata_filter of /v1/retrieve); Pathway\'s name.'),
  metadata_filter: filterFields.metadata_filter.describe('Same as filters (ANDed with it when both are given).'),
  filepath_globpattern: filterFields.filepath_globpattern,
  model: z
    .string({ error: (iss) => `model must be a string or null (got ${shown(iss.input)})` })
    .nullish()
    .describe('Chat model to use; the configured one when null. Only the configured model and those in answer.models are allowed.'),
  return_context_docs: z
    .boolean({ error: (iss) => `return_context_docs must be true or false (got ${shown(iss.input)})` })
    .nullish()
    .describe('Add `context_docs`: the documents the model saw, `[n]` in the answer citing `context_docs[n-1]`.'),
  stream: z
    .boolean({ error: (iss) => `stream must be true or false (got ${shown(iss.input)})` })
    .nullish()
    .describe('Stream the answer as server-sent events (also with `Accept: text/event-stream`).'),
});
export type AnswerRequestWire = z.output<typeof answerRequestSchema>;

/** `/v2/summarize`, `/v1/pw_ai_summary` (and the MCP `summarize` tool). */
export const summarizeRequestSchema = z.object({
  text_list: z
    .array(z.string({ error: (iss) => `text_list must hold strings only (got ${shown(iss.input)})` }), {
      error: (iss) =>
        iss.input === undefined || iss.input === null ? 'text_list is required: the texts to summarize' : `text_list must be an array of strings (got ${shown(iss.input)})`,
    })
    .min(1, { error: 'text_list must hold at least one text' })
    .describe('The texts to summarize (required).'),
  model: z
    .string({ error: (iss) => `model must be a string or null (got ${shown(iss.input)})` })
    .nullish()
    .describe('Chat model to use; the configured one when null.'),
});
export type SummarizeRequestWire = z.output<typeof summarizeRequestSchema>;

const chatContentPart = z.looseObject({ type: z.string(), text: z.string().optional() });

/** `POST /v1/chat/completions`: OpenAI's request; livedex reads the messages and answers from the documents. */
export const chatCompletionRequestSchema = z.looseObject({
  model: z.string({ error: (iss) => `model must be a string (got ${shown(iss.input)})` }).describe('"livedex" (or null) for the configured chat model, or one of answer.models.').nullish(),
  messages: z
    .array(
      z.looseObject({
        role: z.string({ error: 'each message needs a role' }),
        content: z.union([z.string(), z.array(chatContentPart), z.null()], { error: 'message content must be a string, an array of text parts or null' }).optional(),
      }),
      { error: (iss) => (iss.input === undefined ? 'messages is required: the conversation, ending with the user\'s question' : `messages must be an array (got ${shown(iss.input)})`) },
    )
    .min(1, { error: 'messages must hold at least one message' }),
  stream: z.boolean({ error: (iss) => `stream must be true or false (got ${shown(iss.input)})` }).nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  ...filterFields,
});
export type ChatCompletionRequestWire = z.output<typeof chatCompletionRequestSchema>;

// ───────────────────────────── responses ─────────────────────────────

export const ContextDocSchema = z.object({
  text: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  dist: z.number(),
  scores: z.object({ bm25: z.number().optional(), vector: z.number().optional(), fused: z.number().optional() }),
  ref: z.number().int().describe('The number [n] that cites this document in the answer.'),
});

/** `/v2/answer`: Pathway's `{response, context_docs?}` plus citations and usage. */
export const AnswerResponseSchema = z.object({
  response: z.string().describe('The answer, citing documents as [n].'),
  context_docs: z.array(ContextDocSchema).optional().describe('With return_context_docs: the documents the model saw.'),
  citations: z.array(z.number().int()).describe('The [n] the answer uses; n cites context_docs[n-1].'),
  answered: z.boolean().describe('False when the documents did not hold the answer.'),
  usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), calls: z.number().int() }),
});

/** `/v2/summarize`: a bare JSON string, as Pathway. */
export const SummarizeResponseSchema = z.string();


export const MetadataSchema = z.record(z.string(), z.unknown()).describe('Document and chunk metadata (path, modified_at, …).');

export const HitSchema = z.object({
  text: z.string().describe('The chunk text.'),
  metadata: MetadataSchema,
  dist: z.number().describe('Lower is better; 0 is an exact match in vector and hybrid modes.'),
  scores: z
    .object({ bm25: z.number().optional(), vector: z.number().optional(), fused: z.number().optional() })
    .describe('Per-leg scores (higher is better).'),
});
export const RetrieveResponseSchema = z.array(HitSchema).describe('Hits sorted by dist, ascending.');

export const StatisticsSchema = z.object({
  file_count: z.number().int().describe('Number of indexed documents.'),
  last_modified: z.number().nullable().describe('Latest metadata.modified_at (Unix seconds), null when empty.'),
  last_indexed: z.number().nullable().describe('Latest indexing time (Unix seconds), null when empty.'),
});

export const ListDocumentsResponseSchema = z.array(MetadataSchema).describe('One metadata object per document.');

export const DocumentInfoSchema = z.object({
  key: z.string(),
  status: z.enum(['pending', 'indexed', 'failed']),
  error: z.string().nullable(),
  metadata: MetadataSchema,
  chunk_count: z.number().int(),
  indexed_at: z.number().nullable().describe('Unix seconds.'),
  seen_at: z.number().nullable().describe('Unix seconds.'),
});

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadinessSchema = z.looseObject({ ready: z.boolean() });

export const ErrorResponseSchema = z.object({
  error: z.object({
    code: z.string().describe('Stable machine-readable code, e.g. invalid_request, invalid_filter, not_found.'),
    message: z.string().describe('What went wrong and how to fix it.'),
    field: z.string().optional().describe('The request field at fault, when there is one.'),
  }),
});

// ───────────────────────────── from the wire ─────────────────────────────

type Coercion = 'integer' | 'number' | 'boolean' | 'enum';
/** Fields whose values may arrive as strings (query strings, loose clients) and what they become. */
const COERCIONS: Record<string, Coercion> = {
  k: 'integer',
  alpha: 'number',
  return_status: 'boolean',
  return_context_docs: 'boolean',
  stream: 'boolean',
  mode: 'enum',
  fusion: 'enum',
};
const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/**
 * Turns loosely typed values into what the schemas expect, as Pathway's server does
 * (`int("3")`): numeric strings for `k` and `alpha`, `"true"`/`"false"`/`"1"`/`"0"` for
 * `return_status`; an empty string for any of these (and `mode`, `fusion`) means "default".
 * Anything that does not convert is left alone, for the schema to report.
 */
export function coerceWireValues(input: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...input };
  for (const [key, kind] of Object.entries(COERCIONS)) {
    const value = out[key];
    if (typeof value === 'string') {
      const s = value.trim();
      if (s === '') {
        out[key] = null;
      } else if (kind === 'integer' || kind === 'number') {
        const n = Number(s);
        if (Number.isFinite(n)) out[key] = n;
      } else if (kind === 'boolean') {
        if (TRUE.has(s.toLowerCase())) out[key] = true;
        else if (FALSE.has(s.toLowerCase())) out[key] = false;
      }
    } else if (kind === 'boolean' && (value === 0 || value === 1)) {
      out[key] = value === 1;
    }
  }
  return out;
}

/**
 * Validates `input` against `schema`; the first issue becomes a `LivedexError` naming the
 * field at fault (`body` when the issue is about the whole body).
 */
export function parseWire<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = typeof issue?.path[0] === 'string' ? issue.path[0] : 'body';
  throw new LivedexError('invalid_request', issue?.message ?? 'invalid request', { field });
}

/** Turns a validated `/v1/retrieve` body into the index's request, applying defaults. */
export function toRetrieveRequest(wire: RetrieveRequestWire, defaults: { k?: number; mode?: RetrievalMode } = {}): RetrieveRequest {
  if (wire.alpha != null && wire.fusion === 'rrf') {
    throw new LivedexError('invalid_request', 'alpha applies to convex fusion only: drop fusion or set it to convex', {
      field: 'alpha',
    });
  }
  const req: RetrieveRequest = {
    query: wire.query,
    k: wire.k ?? defaults.k ?? DEFAULT_K,
    mode: wire.mode ?? defaults.mode ?? DEFAULT_MODE,
    metadataFilter: wire.metadata_filter || null,
    filepathGlobpattern: wire.filepath_globpattern || null,
  };
  if (wire.alpha != null) {
    req.fusion = 'convex';
    req.alpha = wire.alpha;
  } else if (wire.fusion != null) {
    req.fusion = wire.fusion;
  }
  return req;
}

/** Turns a validated `/v2/answer` body into the answerer's request (`filters` and `metadata_filter` are ANDed). */
export function toAnswerRequest(wire: AnswerRequestWire): AnswerRequest {
  const filters = [wire.filters, wire.metadata_filter].filter((f): f is string => typeof f === 'string' && f.trim() !== '');
  return {
    prompt: wire.prompt,
    metadataFilter: filters.length === 0 ? null : filters.length === 1 ? filters[0]! : filters.map((f) => `(${f})`).join(' && '),
    filepathGlobpattern: wire.filepath_globpattern || null,
    model: wire.model || null,
    returnContextDocs: wire.return_context_docs ?? false,
  };
}

/** Turns a validated `/v2/summarize` body into the answerer's request. */
export function toSummarizeRequest(wire: SummarizeRequestWire): SummarizeRequest {
  return { textList: wire.text_list, model: wire.model || null };
}

/** Turns a validated list-documents body into the index's request, applying defaults. */
export function toListDocumentsRequest(wire: ListDocumentsRequestWire): ListDocumentsRequest {
  return {
    metadataFilter: wire.metadata_filter || null,
    filepathGlobpattern: wire.filepath_globpattern || null,
    returnStatus: wire.return_status ?? false,
  };
}
