/**
 * @module mcp/tools — the MCP tools over a live index: each one validates its arguments with
 * the zod schema of the REST route it mirrors (one source), answers with the REST body as
 * structured content plus a readable text, and turns every failure into a tool error.
 */
import { z } from 'zod';
import { LivedexError } from '../core/errors.js';
import type { AnswerApi, DocumentInfo, Hit, IndexStatus, LiveIndexApi, Metadata, RetrievalMode, Statistics } from '../core/types.js';
import {
  AnswerResponseSchema,
  DEFAULT_K,
  DEFAULT_MODE,
  DEFAULT_MAX_K,
  DocumentInfoSchema,
  GetDocumentRequestSchema,
  ListDocumentsRequestSchema,
  ListDocumentsResponseSchema,
  RetrieveResponseSchema,
  StatisticsRequestSchema,
  StatisticsSchema,
  answerRequestSchema,
  coerceWireValues,
  parseWire,
  retrieveRequestSchema,
  summarizeRequestSchema,
  toAnswerRequest,
  toListDocumentsRequest,
  toRetrieveRequest,
  toSummarizeRequest,
} from '../server/schemas.js';

/** What a tool hands back: the structured result (an object) and its readable rendering. */
export interface ToolOutput {
  structured: Record<string, unknown>;
  text: string;
}

/** One MCP tool: its name (and Pathway's alias), its schemas and what it does. */
export interface ToolDefinition {
  name: string;
  /** Other names the tool answers to (Pathway's `retrieve_query`…); listed as their own tools. */
  aliases: readonly string[];
  title: string;
  description: string;
  /** The REST route's request schema: the single source of the tool's input schema. */
  input: z.ZodObject;
  output?: z.ZodObject;
  run(args: unknown, signal: AbortSignal): Promise<ToolOutput>;
}

export interface ToolOptions {
  /** `k` when a request gives none (as the REST server). */
  defaultK?: number;
  /** `mode` when a request gives none (as the REST server). */
  defaultMode?: RetrievalMode;
  /** The largest `k` accepted (as the REST server). */
  maxK?: number;
  /** Registers `answer` and `summarize` when given. */
  answer?: AnswerApi;
  /** The largest result a tool sends (`limits.max_response_bytes`, as the REST server). */
  maxResponseBytes?: number;
}

/** `limits.max_response_bytes` when none is given (as the REST server). */
const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

/**
 * A tool result carries its content twice (structured, and rendered as text), so each half
 * gets half the cap. The hits that fit it, best first; the rest are left out, as on REST.
 */
function hitsWithin(hits: Hit[], maxBytes: number): Hit[] {
  let bytes = 0;
  const out: Hit[] = [];
  for (const hit of hits) {
    bytes += Buffer.byteLength(JSON.stringify(hit)) + 1;
    if (bytes > maxBytes / 2) break;
    out.push(hit);
  }
  if (out.length === 0 && hits.length > 0) {
    throw new LivedexError('invalid_request', `the best hit alone is larger than the tool result limit (limits.max_response_bytes, ${maxBytes} bytes): raise the limit to read it`, { field: 'k' });
  }
  return out;
}

/** Refuses a result whose JSON is past half the cap (it is sent twice), saying how to narrow it. */
function checkWithin(value: unknown, maxBytes: number, what: string, narrow: string, field: string): void {
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > maxBytes / 2) {
    throw new LivedexError('invalid_request', `${what} is ${bytes} bytes, past the tool result limit (limits.max_response_bytes, ${maxBytes} bytes, half of it per copy): ${narrow}, or raise the limit`, { field });
  }
}

/** Failed documents listed by `index_status` at most. */
const MAX_FAILURES = 50;

/** A chunk of a document as `get_document` returns it. */
const DocumentChunkSchema = z.object({ ordinal: z.number().int(), text: z.string() });

/** `get_document`: the REST document info plus the text, chunk by chunk. */
export const DocumentWithTextSchema = DocumentInfoSchema.extend({
  text: z.string().describe('The document text: its chunks in order, separated by blank lines.'),
  chunks: z.array(DocumentChunkSchema).describe('The chunks as indexed, in document order.'),
});

/** `index_status`: `/v1/status` plus the failures and how fresh the index is. */
export const IndexStatusResultSchema = z.looseObject({
  ready: z.boolean(),
  documents: z.object({ total: z.number(), pending: z.number(), indexed: z.number(), failed: z.number() }),
  chunks: z.number(),
  queue: z.object({ depth: z.number(), inFlight: z.number() }).describe('Changes waiting, and being processed.'),
  failures: z
    .array(z.object({ key: z.string(), path: z.string().nullable(), error: z.string().nullable() }))
    .describe(`Documents that failed to index and why (at most ${MAX_FAILURES}).`),
  freshness: z.object({
    up_to_date: z.boolean().describe('True when the first sync is done and nothing is queued, in flight or pending.'),
    last_indexed: z.number().nullable().describe('When a document was last indexed (Unix seconds).'),
    last_modified: z.number().nullable().describe('The latest modified_at of an indexed document (Unix seconds).'),
    checked_at: z.number().describe('When this status was taken (Unix seconds).'),
  }),
});

const iso = (seconds: unknown) => (typeof seconds === 'number' ? new Date(seconds * 1000).toISOString() : 'unknown');

function renderHits(query: string, hits: Hit[]): string {
  if (hits.length === 0) return `No hits for ${JSON.stringify(query)}.`;
  const lines = [`${hits.length} hit${hits.length === 1 ? '' : 's'} for ${JSON.stringify(query)}:`];
  hits.forEach((h, i) => {
    const m = h.metadata;
    lines.push(
      `\n[${i + 1}] ${String(m.path ?? '(no path)')} · dist ${h.dist.toFixed(4)} · modified ${iso(m.modified_at)} · indexed ${iso(m.indexed_at)}`,
      h.text,
    );
  });
  return lines.join('\n');
}

function renderDocuments(docs: Metadata[]): string {
  if (docs.length === 0) return 'No documents.';
  const lines = docs.map((m) => {
    const status = typeof m._indexing_status === 'string' ? ` [${m._indexing_status}]` : '';
    return `- ${String(m.path ?? '(no path)')}${status} · modified ${iso(m.modified_at)}`;
  });
  return `${docs.length} document${docs.length === 1 ? '' : 's'}:\n${lines.join('\n')}`;
}

function renderStatus(s: IndexStatus & { failures: { key: string; error: string | null }[] }): string {
  const d = s.documents;
  const lines = [
    `ready: ${s.ready}`,
    `documents: ${d.total} (${d.indexed} indexed, ${d.pending} pending, ${d.failed} failed), ${s.chunks} chunks`,
    `queue: ${s.queue.depth} waiting, ${s.queue.inFlight} in flight`,
    `model: ${s.model.active}${s.model.building ? ` (switching to ${s.model.building.model}: ${s.model.building.done}/${s.model.building.total})` : ''}`,
    ...s.sources.map((src) => `source ${src.id}: ${src.state}${src.error ? ` (${src.error})` : ''}`),
    ...s.failures.map((f) => `FAILED ${f.key}: ${f.error ?? 'unknown error'}`),
  ];
  return lines.join('\n');
}

/** Parses tool arguments exactly as the REST route parses a request body. */
function parseArgs<S extends z.ZodObject>(schema: S, args: unknown): z.output<S> {
  if (args !== undefined && args !== null && (typeof args !== 'object' || Array.isArray(args))) {
    throw new LivedexError('invalid_request', 'the tool arguments must be an object', { field: 'arguments' });
  }
  return parseWire(schema, coerceWireValues((args ?? {}) as Record<string, unknown>));
}

/**
 * The tools over `index`: `retrieve`, `list_documents`, `statistics`, `get_document`,
 * `index_status`, and `answer`/`summarize` when an `AnswerApi` is given.
 */
export function buildTools(index: LiveIndexApi, opts: ToolOptions = {}): ToolDefinition[] {
  const defaultK = opts.defaultK ?? DEFAULT_K;
  const defaultMode = opts.defaultMode ?? DEFAULT_MODE;
  const retrieveSchema = retrieveRequestSchema({ maxK: opts.maxK ?? DEFAULT_MAX_K });
  const maxBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const tools: ToolDefinition[] = [
    {
      name: 'retrieve',
      aliases: ['retrieve_query'],
      title: 'Search the documents',
      description:
        'Hybrid (BM25 + vector) search over the live index, as POST /v1/retrieve. Returns the k best chunks, ' +
        'best first; each hit carries metadata.path, modified_at and indexed_at (Unix seconds) so you can judge freshness.',
      input: retrieveSchema,
      output: z.object({ hits: RetrieveResponseSchema }),
      async run(args) {
        const wire = parseArgs(retrieveSchema, args);
        const found = await index.retrieve(toRetrieveRequest(wire, { k: defaultK, mode: defaultMode }));
        const hits = hitsWithin(found, maxBytes);
        const left = hits.length < found.length ? `\n\n(${found.length - hits.length} more hits left out: ${hits.length} of ${found.length} fit limits.max_response_bytes)` : '';
        return { structured: { hits }, text: renderHits(wire.query, hits) + left };
      },
    },
    {
      name: 'list_documents',
      aliases: ['inputs_query'],
      title: 'List the documents',
      description:
        'The metadata of every indexed document, as POST /v1/inputs; filter with metadata_filter (JMESPath) or ' +
        'filepath_globpattern; return_status adds _indexing_status (INDEXED, INGESTED or FAILED).',
      input: ListDocumentsRequestSchema,
      output: z.object({ documents: ListDocumentsResponseSchema }),
      async run(args) {
        const documents = await index.listDocuments(toListDocumentsRequest(parseArgs(ListDocumentsRequestSchema, args)));
        checkWithin(documents, maxBytes, `the listing of ${documents.length} documents`, 'narrow it with filepath_globpattern or metadata_filter', 'filepath_globpattern');
        return { structured: { documents }, text: renderDocuments(documents) };
      },
    },
    {
      name: 'statistics',
      aliases: ['statistics_query'],
      title: 'Index statistics',
      description: 'How many documents are indexed and when the index last changed, as POST /v1/statistics.',
      input: StatisticsRequestSchema,
      output: StatisticsSchema,
      async run(args) {
        parseArgs(StatisticsRequestSchema, args);
        const stats: Statistics = await index.statistics();
        const text = `${stats.file_count} documents indexed; last modified ${iso(stats.last_modified)}; last indexed ${iso(stats.last_indexed)}.`;
        return { structured: { ...stats }, text };
      },
    },
    {
      name: 'get_document',
      aliases: [],
      title: 'Read one document',
      description:
        'The full text (its chunks in order) and the metadata of one document, by key (for the folder source, ' +
        'the path as list_documents and hits show it). Its status says whether it is indexed, pending or failed.',
      input: GetDocumentRequestSchema,
      output: DocumentWithTextSchema,
      async run(args) {
        const { key } = parseArgs(GetDocumentRequestSchema, args);
        const [info, chunks] = await Promise.all([index.getDocument(key), index.getDocumentChunks(key)]);
        if (!info || !chunks) throw new LivedexError('not_found', `no document with key ${JSON.stringify(key)}`, { field: 'key' });
        const doc = documentWithText(info, chunks);
        checkWithin(doc, maxBytes, `document ${JSON.stringify(key)}`, 'search it with retrieve instead', 'key');
        const header = `${info.key} · ${info.status}${info.error ? ` (${info.error})` : ''} · modified ${iso(info.metadata.modified_at)} · indexed ${iso(info.indexed_at)}`;
        return { structured: doc, text: `${header}\n\n${doc.text}` };
      },
    },
    {
      name: 'index_status',
      aliases: [],
      title: 'Index status and freshness',
      description:
        'Whether the index is up to date: documents by status, the queue of changes waiting and in flight, ' +
        'each source and its health, the failed documents with their reasons, and when the index last changed.',
      input: StatisticsRequestSchema,
      output: IndexStatusResultSchema,
      async run(args) {
        parseArgs(StatisticsRequestSchema, args);
        const [status, stats, infos] = await Promise.all([index.status(), index.statistics(), index.listDocumentInfos()]);
        const failures = infos
          .filter((d) => d.status === 'failed')
          .slice(0, MAX_FAILURES)
          .map((d) => ({ key: d.key, path: typeof d.metadata.path === 'string' ? d.metadata.path : null, error: d.error }));
        const upToDate = status.ready && status.queue.depth === 0 && status.queue.inFlight === 0 && status.documents.pending === 0;
        const freshness = {
          up_to_date: upToDate,
          last_indexed: stats.last_indexed,
          last_modified: stats.last_modified,
          checked_at: Math.floor(Date.now() / 1000),
        };
        const result = { ...status, failures, freshness };
        return { structured: result, text: `${renderStatus(result)}\nup to date: ${upToDate}; last indexed ${iso(stats.last_indexed)}` };
      },
    },
  ];
  if (opts.answer) tools.push(...answerTools(opts.answer));
  return tools;
}

/** `answer` and `summarize` over the answerer, as `/v2/answer` and `/v2/summarize` (never streamed here). */
function answerTools(answerer: AnswerApi): ToolDefinition[] {
  return [
    {
      name: 'answer',
      aliases: [],
      title: 'Answer a question from the documents',
      description:
        'Answers `prompt` from the indexed documents, as POST /v2/answer: the answer cites documents as [n]; ' +
        'return_context_docs adds the documents it saw (context_docs[n-1] for [n]), each with path, modified_at and indexed_at.',
      input: answerRequestSchema,
      output: AnswerResponseSchema,
      async run(args, signal) {
        const result = await answerer.answer(toAnswerRequest(parseArgs(answerRequestSchema, args)), signal);
        const body = {
          response: result.response,
          ...(result.context_docs ? { context_docs: result.context_docs } : {}),
          citations: result.citations,
          answered: result.answered ?? true,
          usage: result.usage,
        };
        const sources = (result.context_docs ?? [])
          .filter((d) => result.citations.includes(d.ref))
          .map((d) => `[${d.ref}] ${String(d.metadata.path ?? '(no path)')} · modified ${iso(d.metadata.modified_at)} · indexed ${iso(d.metadata.indexed_at)}`);
        return { structured: body, text: sources.length > 0 ? `${result.response}\n\n${sources.join('\n')}` : result.response };
      },
    },
    {
      name: 'summarize',
      aliases: [],
      title: 'Summarize texts',
      description: 'Summarizes the texts of text_list with the chat model, as POST /v2/summarize (which answers the bare summary string).',
      input: summarizeRequestSchema,
      output: z.object({ summary: z.string().describe('The summary: the body of /v2/summarize.') }),
      async run(args, signal) {
        const summary = await answerer.summarize(toSummarizeRequest(parseArgs(summarizeRequestSchema, args)), signal);
        return { structured: { summary }, text: summary };
      },
    },
  ];
}

/** A document's info with its text: the chunks in order, separated by blank lines. */
export function documentWithText(info: DocumentInfo, chunks: { ordinal: number; text: string }[]): z.output<typeof DocumentWithTextSchema> {
  return {
    ...info,
    text: chunks.map((c) => c.text).join('\n\n'),
    chunks: chunks.map((c) => ({ ordinal: c.ordinal, text: c.text })),
  };
}
