/**
 * @module parsers/unstructured — any format through the Unstructured partition API (hosted or
 * self-hosted), with the official `unstructured-client` SDK; elements become parts with `page`,
 * `category` and `headings`.
 */
import { basename } from 'node:path';
import { UnstructuredClient } from 'unstructured-client';
import { SDKHooks } from 'unstructured-client/hooks/hooks.js';
import { LoggerHook } from 'unstructured-client/hooks/custom/LoggerHook.js';
import { SplitPdfHook } from 'unstructured-client/hooks/custom/SplitPdfHook.js';
import { z } from 'zod';
import { CallMachine, callOptions, CallResponseError, malformed } from '../core/calls.js';
import { definePlugin } from '../core/registry.js';
import type { Logger, Metadata, ParsedPart, ParseInput, Parser } from '../core/types.js';

/** The hosted API, used when neither `url` nor `UNSTRUCTURED_API_URL` names another. */
export const UNSTRUCTURED_HOSTED_URL = 'https://api.unstructuredapp.io';

/** What the parser claims unless `extensions` says otherwise: documents the local parsers read less well. */
export const UNSTRUCTURED_EXTENSIONS: readonly string[] = [
  '.pdf', '.docx', '.doc', '.odt', '.rtf', '.epub', '.pptx', '.ppt', '.xlsx', '.xls',
  '.png', '.jpg', '.jpeg', '.tiff', '.tif', '.bmp', '.heic',
];

export const unstructuredParserOptions = z.strictObject({
  /** Base URL of the API (self-hosted: `http://host:8000`); else `UNSTRUCTURED_API_URL`, else the hosted API. */
  url: z.url({ protocol: /^https?$/, error: 'an http(s) URL, like "http://localhost:8000"' }).optional(),
  /** API key (the `unstructured-api-key` header); else `UNSTRUCTURED_API_KEY`. Never logged. */
  api_key: z.string().min(1).optional(),
  /** Extensions sent to the API, lower-case with the dot. */
  extensions: z
    .array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".pdf"'))
    .min(1)
    .default([...UNSTRUCTURED_EXTENSIONS]),
  /** Partition strategy: `auto` lets the API choose; `fast` reads text layers; `hi_res` and `ocr_only` run layout models/OCR. */
  strategy: z.enum(['auto', 'fast', 'hi_res', 'ocr_only', 'vlm']).default('auto'),
  /** Document languages for OCR (Tesseract codes like `eng`, `deu`); the API detects them when absent. */
  languages: z.array(z.string().min(1)).optional(),
  /**
   * Per attempt; keep `timeout_ms × max_attempts` below `sandbox.timeout_ms` (60 s by default),
   * or the sandbox stops the parse first and the file is marked failed instead of pending.
   */
  timeout_ms: callOptions.shape.timeout_ms.default(25_000),
  max_attempts: callOptions.shape.max_attempts.default(2),
  retry_base_ms: callOptions.shape.retry_base_ms.default(1_000),
  retry_max_ms: callOptions.shape.retry_max_ms.default(8_000),
});
export type UnstructuredParserOptions = z.output<typeof unstructuredParserOptions>;

/** One element of a partition response (the fields we read; the API sends more). */
export interface UnstructuredElement {
  type?: string;
  element_id?: string;
  text?: string;
  metadata?: {
    page_number?: number;
    category_depth?: number;
    parent_id?: string;
    filename?: string;
    languages?: string[];
    [key: string]: unknown;
  };
}

/** Where the key comes from, for messages (never the key itself). */
const KEY_HELP = 'set parsers.unstructured.api_key (or UNSTRUCTURED_API_KEY)';

/**
 * Sends each file to the Unstructured partition endpoint (`POST /general/v0/general`) and turns
 * the elements it returns into parts. Consecutive elements of the same page, section and type
 * make one part, carrying `page` (the element's `page_number`), `category` (its type:
 * `NarrativeText`, `ListItem`, `Table`…), `headings` (the path of `Title` elements above it,
 * from `parent_id` or `category_depth`) and `languages`.
 *
 * Opt-in: it sends documents to a service, so it is built only when the config lists it under
 * `parsers`. A refused key (401/403) fails the document with a message naming the option; a
 * rate limit, a server error or a timeout that outlasts the retries is transient: the document
 * stays pending and the pipeline tries again later.
 *
 * @example
 * // livedex.yaml
 * // parsers:
 * //   - unstructured: { url: http://localhost:8000, extensions: [.pdf], strategy: fast }
 * //   - markdown
 */
export class UnstructuredParser implements Parser {
  readonly name = 'unstructured';
  // Its parts carry pages and heading paths: the structure splitter keeps them on the chunks.
  readonly splitter = 'structure';
  readonly extensions: readonly string[];
  readonly #opts: UnstructuredParserOptions;
  readonly #url: string;
  readonly #key: string | undefined;
  readonly #logger: Logger;
  #client: UnstructuredClient | undefined;
  #machine: CallMachine<ParseInput, UnstructuredElement[]> | undefined;

  constructor(options: UnstructuredParserOptions, deps: { logger: Logger; env?: NodeJS.ProcessEnv }) {
    const env = deps.env ?? process.env;
    this.#opts = options;
    this.extensions = [...options.extensions];
    this.#url = options.url ?? env.UNSTRUCTURED_API_URL ?? UNSTRUCTURED_HOSTED_URL;
    this.#key = options.api_key ?? (env.UNSTRUCTURED_API_KEY || undefined);
    this.#logger = deps.logger;
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    const [elements] = await this.#calls().run([input], input.signal);
    return toParts(elements ?? [], basename(input.key));
  }

  /** The call machine: retries, timeouts and error classification of `core/calls`, one file per request. */
  #calls(): CallMachine<ParseInput, UnstructuredElement[]> {
    const { timeout_ms, max_attempts, retry_base_ms, retry_max_ms } = this.#opts;
    this.#machine ??= new CallMachine<ParseInput, UnstructuredElement[]>(
      {
        what: `unstructured partition at ${this.#url}`,
        call: async ([input], signal) => [await this.#partition(input!, signal)],
        key: (input) => input.key,
        failureNote: 'the document stays pending and is tried again later',
      },
      callOptions.parse({ timeout_ms, max_attempts, retry_base_ms, retry_max_ms, max_batch_items: 1, flush_ms: 0, max_concurrency: 64 }),
      { logger: this.#logger, cache: null },
    );
    return this.#machine;
  }

  async #partition(input: ParseInput, signal: AbortSignal): Promise<UnstructuredElement[]> {
    this.#client ??= new UnstructuredClient({
      serverURL: this.#url,
      security: this.#key === undefined ? {} : { apiKeyAuth: this.#key },
      // Retries are ours (core/calls), so that they end in an error the pipeline understands.
      retryConfig: { strategy: 'none' },
      hooks: quietHooks(),
    } as ConstructorParameters<typeof UnstructuredClient>[0]);
    let response: unknown;
    try {
      response = await this.#client.general.partition(
        {
          partitionParameters: {
            files: { content: input.bytes, fileName: basename(input.key) },
            strategy: this.#opts.strategy as never,
            ...(this.#opts.languages ? { languages: this.#opts.languages } : {}),
            // The SDK would split PDFs into page ranges sent in parallel; one request per file
            // keeps retries and limits whole.
            splitPdfPage: false,
          },
        },
        { signal },
      );
    } catch (err) {
      throw this.#explain(err);
    }
    if (!Array.isArray(response)) throw malformed('the partition response is not a JSON array of elements');
    return response as UnstructuredElement[];
  }

  /** An SDK error as the call machine classifies it, with a message that never holds the key. */
  #explain(err: unknown): unknown {
    const status = (err as { statusCode?: unknown } | null)?.statusCode;
    if (typeof status !== 'number') return err; // connection errors, aborts, timeouts: classified as they are
    if (status === 401 || status === 403) {
      return new CallResponseError(`the API refused the key (HTTP ${status}): ${this.#key === undefined ? 'no key was given; ' : ''}${KEY_HELP}`, { kind: 'auth', retryable: false });
    }
    const detail = this.#redact(detailOf(err));
    // Status and headers are kept for the classifier: 429/5xx are retried, Retry-After honoured.
    return Object.assign(new Error(`HTTP ${status}${detail ? `: ${detail}` : ''}`), { status, headers: (err as { headers?: unknown }).headers });
  }

  #redact(text: string): string {
    return this.#key ? text.split(this.#key).join('***') : text;
  }
}

/**
 * The SDK's hooks without the two that write to the console on every failed request (the
 * logger hook, and the PDF splitting hook, which we never use): our logger reports failures.
 */
function quietHooks(): SDKHooks {
  const hooks = new SDKHooks();
  const keep = (hook: unknown) => !(hook instanceof LoggerHook || hook instanceof SplitPdfHook);
  hooks.sdkInitHooks = hooks.sdkInitHooks.filter(keep);
  hooks.beforeCreateRequestHooks = hooks.beforeCreateRequestHooks.filter(keep);
  hooks.beforeRequestHooks = hooks.beforeRequestHooks.filter(keep);
  hooks.afterSuccessHooks = hooks.afterSuccessHooks.filter(keep);
  hooks.afterErrorHooks = hooks.afterErrorHooks.filter(keep);
  return hooks;
}

/** The API's own explanation (`{"detail": …}`), short. */
function detailOf(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body !== 'string' || body === '') return '';
  try {
    const detail = (JSON.parse(body) as { detail?: unknown }).detail;
    if (typeof detail === 'string') return detail.slice(0, 300);
    if (detail !== undefined) return JSON.stringify(detail).slice(0, 300);
  } catch {
    // not JSON: the body as text
  }
  return body.slice(0, 300);
}

/** Elements that carry no text worth indexing. */
const SKIPPED = new Set(['PageBreak', 'Image']);

/**
 * Groups elements into parts: a `Title` opens a section (its path is `headings`); consecutive
 * elements of one page, section and type are joined. A title with nothing under it before the
 * next title of its level or above is kept as a part of its own, so no text is lost.
 */
export function toParts(elements: readonly UnstructuredElement[], uploadedName: string): ParsedPart[] {
  const parts: ParsedPart[] = [];
  const titlePaths = new Map<string, string[]>();
  let stack: string[] = [];
  let pendingTitle: { text: string; path: string[]; element: UnstructuredElement } | null = null;
  let open: { key: string; texts: string[]; metadata: Metadata } | null = null;

  const flush = () => {
    if (open) parts.push({ text: open.texts.join('\n\n'), metadata: open.metadata });
    open = null;
  };
  const add = (element: UnstructuredElement, text: string, category: string, headings: string[]) => {
    const metadata = metadataOf(element, category, headings, uploadedName);
    const key = JSON.stringify([metadata.page ?? null, headings, category]);
    if (open?.key !== key) {
      flush();
      open = { key, texts: [], metadata };
    }
    open!.texts.push(text);
  };
  const emitPendingTitle = () => {
    if (!pendingTitle) return;
    add(pendingTitle.element, pendingTitle.text, 'Title', pendingTitle.path.slice(0, -1));
    pendingTitle = null;
  };

  for (const element of elements) {
    const text = typeof element.text === 'string' ? element.text.trim() : '';
    const category = typeof element.type === 'string' && element.type !== '' ? element.type : 'UncategorizedText';
    if (text === '' || SKIPPED.has(category)) continue;
    const parentId = element.metadata?.parent_id;
    const parentPath = typeof parentId === 'string' ? titlePaths.get(parentId) : undefined;
    if (category === 'Title') {
      const depth = element.metadata?.category_depth;
      const path = parentPath ? [...parentPath, text] : typeof depth === 'number' && depth >= 0 ? [...stack.slice(0, depth), text] : [text];
      // A title directly followed by a deeper one is its heading, not an empty section.
      if (pendingTitle && path.length <= pendingTitle.path.length) emitPendingTitle();
      pendingTitle = { text, path, element };
      if (typeof element.element_id === 'string') titlePaths.set(element.element_id, path);
      stack = path;
      continue;
    }
    pendingTitle = null;
    add(element, text, category, parentPath ?? stack);
  }
  emitPendingTitle();
  flush();
  return parts;
}

function metadataOf(element: UnstructuredElement, category: string, headings: string[], uploadedName: string): Metadata {
  const m = element.metadata ?? {};
  const metadata: Metadata = {};
  if (typeof m.page_number === 'number') metadata.page = m.page_number;
  metadata.category = category;
  if (headings.length > 0) metadata.headings = [...headings];
  if (Array.isArray(m.languages) && m.languages.length > 0) metadata.languages = [...m.languages];
  // The name of what was partitioned, when it is not the file itself (an attachment inside it).
  if (typeof m.filename === 'string' && m.filename !== uploadedName) metadata.filename = m.filename;
  return metadata;
}

export const unstructuredParser = definePlugin({
  kind: 'parser',
  name: 'unstructured',
  module: import.meta.url,
  description:
    'Any format through the Unstructured partition API (unstructured-client): `url`/`api_key` (or UNSTRUCTURED_API_URL/UNSTRUCTURED_API_KEY), `strategy`, `extensions`; parts carry `page`, `category`, `headings`. Opt-in: list it under `parsers`.',
  options: unstructuredParserOptions,
  optIn: true,
  create: (options, ctx) => new UnstructuredParser(options, { logger: ctx.logger }),
});
