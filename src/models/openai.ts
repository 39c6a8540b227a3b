/** @module models/openai — embeddings from OpenAI or any OpenAI-compatible server (vLLM, Ollama, LM Studio, TEI, Azure). */
import OpenAI, { APIError } from 'openai';
import { z } from 'zod';
import { callOptions, CallResponseError, permanent, QUERY_DEFAULTS, wrapEmbedder } from '../core/calls.js';
import { LivedexError } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import type { Embedder } from '../core/types.js';

export const DEFAULT_MODEL = 'text-embedding-3-small';
/** Native lengths of OpenAI's embedding models; any other model must state its `dimensions`. */
export const KNOWN_DIMENSIONS: Readonly<Record<string, number>> = {
  'text-embedding-3-small': 1536,
  'text-embedding-3-large': 3072,
  'text-embedding-ada-002': 1536,
};
const DEFAULT_BASE_URL = 'https://api.openai.com/v1';

export const openaiEmbedderOptions = z.strictObject({
  ...callOptions.shape,
  model: z.string().min(1).default(DEFAULT_MODEL).describe('embedding model name as the server knows it'),
  dimensions: z.number().int().min(1).max(65_536).optional().describe('vector length; sent to the server when set (text-embedding-3-* can shorten)'),
  base_url: z.string().url().optional().describe('OpenAI-compatible API root, e.g. http://localhost:11434/v1; default OPENAI_BASE_URL, else api.openai.com'),
  api_key: z.string().min(1).optional().describe('default OPENAI_API_KEY; "none" for a local server that needs no key'),
  // OpenAI takes up to 2048 inputs per request; a few hundred is a good trade of latency for throughput.
  max_batch_items: z.number().int().min(1).max(2048).default(128).describe('texts per request at most'),
  // A person waits for a query: fail over to BM25 in seconds rather than retry for minutes.
  query_timeout_ms: z.number().int().min(1).default(QUERY_DEFAULTS.timeout_ms).describe('per attempt, when embedding a query'),
  query_max_attempts: z.number().int().min(1).max(100).default(QUERY_DEFAULTS.max_attempts).describe('attempts when embedding a query'),
});
export type OpenAIEmbedderOptions = z.output<typeof openaiEmbedderOptions>;

/**
 * Calls `POST /embeddings` with the official client, retries off (the call machine retries).
 * Vectors come back as base64 float32 (or as numbers from servers that ignore the format),
 * are checked for length and L2-normalized.
 *
 * @example
 * const embedder = new OpenAIEmbedder({ model: 'nomic-embed-text', dimensions: 768, baseURL: 'http://localhost:11434/v1', apiKey: 'none' });
 */
export class OpenAIEmbedder implements Embedder {
  readonly name = 'openai';
  readonly modelKey: string;
  readonly dimensions: number;
  readonly model: string;
  readonly baseURL: string;
  readonly #client: OpenAI;
  readonly #sendDimensions: number | undefined;
  readonly #keySource: string;

  constructor(opts: { model: string; dimensions?: number; baseURL: string; apiKey: string; keySource?: string; timeoutMs?: number }) {
    this.model = opts.model;
    const dimensions = opts.dimensions ?? KNOWN_DIMENSIONS[opts.model];
    if (dimensions === undefined) {
      throw new LivedexError('config_error', `embedder.openai.dimensions: required for model "${opts.model}" (the length of its vectors, e.g. 768)`, {
        field: 'embedder.openai.dimensions',
      });
    }
    this.dimensions = dimensions;
    this.#sendDimensions = opts.dimensions;
    this.baseURL = opts.baseURL.replace(/\/+$/, '');
    this.#keySource = opts.keySource ?? 'embedder.openai.api_key';
    // Different servers may serve different weights under one model name: the host is part of the key.
    this.modelKey = `openai:${opts.model}:${dimensions}:${new URL(this.baseURL).host}`;
    this.#client = new OpenAI({ apiKey: opts.apiKey, baseURL: this.baseURL, maxRetries: 0, timeout: opts.timeoutMs ?? 10 * 60_000 });
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    let response: OpenAI.Embeddings.CreateEmbeddingResponse;
    try {
      response = await this.#client.embeddings.create(
        {
          model: this.model,
          // An empty string is rejected by OpenAI (400); a space embeds as "nothing" just as well.
          input: texts.map((t) => (t === '' ? ' ' : t)),
          encoding_format: 'base64',
          ...(this.#sendDimensions !== undefined ? { dimensions: this.#sendDimensions } : {}),
        },
        signal ? { signal } : {},
      );
    } catch (err) {
      throw this.#explain(err);
    }
    const data = response?.data;
    if (!Array.isArray(data) || data.length !== texts.length) {
      throw new CallResponseError(`${this.#where()} returned ${Array.isArray(data) ? data.length : 'no'} embeddings for ${texts.length} texts`, { kind: 'malformed', retryable: true });
    }
    const out = new Array<Float32Array>(texts.length);
    for (const [position, row] of data.entries()) {
      const index = typeof row?.index === 'number' ? row.index : position;
      if (index < 0 || index >= texts.length || out[index]) {
        throw new CallResponseError(`${this.#where()} returned embedding index ${index} for ${texts.length} texts`, { kind: 'malformed', retryable: true });
      }
      const vector = decode(row.embedding as unknown);
      if (!vector) throw new CallResponseError(`${this.#where()} returned an embedding that is neither base64 nor numbers`, { kind: 'malformed', retryable: true });
      if (vector.length !== this.dimensions) {
        throw permanent(
          `${this.#where()} returned vectors of ${vector.length} numbers for model "${this.model}", expected ${this.dimensions}: ` +
            `set embedder.openai.dimensions to the model's length (or pick the model that has ${this.dimensions})`,
        );
      }
      out[index] = normalize(vector);
    }
    return out;
  }

  #where(): string {
    return `OpenAI-compatible server at ${this.baseURL}`;
  }

  /** Turns the statuses a user must act on into messages that say what to do; keeps the cause. */
  #explain(err: unknown): unknown {
    if (!(err instanceof APIError) || err.status === undefined) return err;
    const detail = err.message;
    if (err.status === 401) {
      return new CallResponseError(`${this.#where()} rejected the API key from ${this.#keySource} (401): set OPENAI_API_KEY or embedder.openai.api_key (${detail})`, {
        kind: 'auth',
        retryable: false,
        cause: err,
      });
    }
    if (err.status === 403) {
      return new CallResponseError(`${this.#where()} refused the API key from ${this.#keySource} access to model "${this.model}" (403): ${detail}`, { kind: 'auth', retryable: false, cause: err });
    }
    if (err.status === 404) {
      return new CallResponseError(`${this.#where()} has no model "${this.model}" or no /embeddings endpoint (404): check embedder.openai.model and base_url (${detail})`, {
        kind: 'client_error',
        retryable: false,
        cause: err,
      });
    }
    return err;
  }
}

/** A float32 vector from base64 (little-endian float32, as OpenAI sends it) or from an array of numbers. */
function decode(embedding: unknown): Float32Array | null {
  if (typeof embedding === 'string') {
    const bytes = Buffer.from(embedding, 'base64');
    if (bytes.byteLength % 4 !== 0) return null;
    // Copy: the Buffer may be a view into a shared pool.
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  if (Array.isArray(embedding) && embedding.every((x) => typeof x === 'number')) return Float32Array.from(embedding);
  return null;
}

function normalize(v: Float32Array): Float32Array {
  let norm = 0;
  for (let i = 0; i < v.length; i++) norm += v[i]! * v[i]!;
  if (!(norm > 0) || Math.abs(norm - 1) < 1e-6) return v;
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! * scale;
  return v;
}

/** Resolves the key and URL from options and environment; a missing key is a config error that says where to set it. */
export function resolveOpenAIConnection(options: Pick<OpenAIEmbedderOptions, 'api_key' | 'base_url'>, env: NodeJS.ProcessEnv = process.env): { apiKey: string; keySource: string; baseURL: string } {
  const baseURL = options.base_url ?? (env.OPENAI_BASE_URL?.trim() || DEFAULT_BASE_URL);
  const fromOption = options.api_key;
  const fromEnv = env.OPENAI_API_KEY?.trim();
  const apiKey = fromOption ?? fromEnv;
  if (!apiKey) {
    throw new LivedexError(
      'config_error',
      `embedder.openai.api_key: no API key for ${baseURL}; set OPENAI_API_KEY or embedder.openai.api_key (use "none" for a local server that needs no key)`,
      { field: 'embedder.openai.api_key' },
    );
  }
  return { apiKey, keySource: fromOption !== undefined ? 'embedder.openai.api_key' : 'OPENAI_API_KEY', baseURL };
}

export const openaiEmbedder = definePlugin({
  kind: 'embedder',
  name: 'openai',
  description: 'Embeddings from OpenAI or any OpenAI-compatible server (base_url), cached, batched, rate-limited and retried.',
  options: openaiEmbedderOptions,
  create: (options, ctx) => {
    const { model, dimensions, base_url, api_key, query_timeout_ms, query_max_attempts, ...machine } = options;
    const connection = resolveOpenAIConnection({ api_key, base_url });
    const embedder = new OpenAIEmbedder({
      model,
      ...(dimensions !== undefined ? { dimensions } : {}),
      baseURL: connection.baseURL,
      apiKey: connection.apiKey,
      keySource: connection.keySource,
      // Our per-attempt timeout rules; the client's is only a backstop.
      timeoutMs: Math.max(machine.timeout_ms, query_timeout_ms) + 1000,
    });
    ctx.logger.info('embedder "openai"', { modelKey: embedder.modelKey, baseURL: embedder.baseURL, keySource: connection.keySource });
    return wrapEmbedder(embedder, callOptions.parse(machine), {
      logger: ctx.logger,
      query: { timeout_ms: query_timeout_ms, max_attempts: query_max_attempts },
    });
  },
});
