/** @module models/local — embeddings from a local transformers.js (ONNX) model directory, on the CPU, offline by default. */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { callOptions, QUERY_DEFAULTS, wrapEmbedder, type CallingEmbedder } from '../core/calls.js';
import { describeError, LivedexError, markTransient } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import { threadEntry } from '../core/threads.js';
import type { Embedder, Logger } from '../core/types.js';
import type { LocalWireError, LocalWorkerEvent, LocalWorkerRequest } from './local-wire.js';

/** Precisions a model directory may hold, and the file name each one loads (`onnx/model<suffix>.onnx`, transformers.js' convention). */
export const DTYPE_SUFFIXES = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;
export type LocalDtype = keyof typeof DTYPE_SUFFIXES;
const DTYPES = Object.keys(DTYPE_SUFFIXES) as [LocalDtype, ...LocalDtype[]];

export const localEmbedderOptions = z.strictObject({
  ...callOptions.shape,
  model: z
    .string()
    .min(1)
    .describe('model directory (config.json, tokenizer.json, onnx/model.onnx), relative to the working directory; a hub name such as Xenova/all-MiniLM-L6-v2 only with allow_remote'),
  allow_remote: z.boolean().default(false).describe('let `model` name a Hugging Face hub model and download it (the only time this plugin uses the network)'),
  cache_dir: z.string().min(1).optional().describe('where downloaded models are kept; default <data_dir>/models'),
  remote_host: z.string().url().optional().describe('the hub to download from with allow_remote (a mirror); default https://huggingface.co/'),
  pooling: z.enum(['mean', 'cls']).optional().describe("token vectors → one vector: the mean over real tokens, or the first ([CLS]) token; default from the model's 1_Pooling/config.json, else mean"),
  normalize: z.boolean().default(true).describe('L2-normalize vectors (the vector index compares by cosine either way)'),
  dtype: z
    .enum(['auto', ...DTYPES])
    .default('auto')
    .describe('which weights to load (onnx/model.onnx = fp32, model_quantized.onnx = q8, …); auto = the first present of fp32, q8, int8, uint8, fp16, q4'),
  query_prefix: z.string().default('').describe('prepended to queries, e.g. "query: " for e5 or "Represent this sentence for searching relevant passages: " for bge'),
  document_prefix: z.string().default('').describe('prepended to documents, e.g. "passage: " for e5'),
  max_tokens: z
    .number()
    .int()
    .min(2)
    .max(1_000_000)
    .optional()
    .describe("longer texts are truncated to this many tokens; default the model's max_seq_length (sentence_bert_config.json), else the tokenizer's limit"),
  batch_size: z.number().int().min(1).max(4096).default(16).describe('texts per ONNX run (a request of max_batch_items is run in slices of this size, sorted by length to pad less)'),
  threads: z.number().int().min(1).max(256).optional().describe('ONNX Runtime intra-op threads; default all cores'),
  max_heap_mb: z
    .number()
    .int()
    .min(64)
    .max(1_048_576)
    .optional()
    .describe("JavaScript heap limit of the model's worker thread, in MB (tokenizer and tensors; ONNX Runtime's own memory is outside it): a batch that needs more ends the thread, which is restarted; default Node's limit"),
  // One model on the CPU: runs in parallel only fight over the cores.
  max_concurrency: z.number().int().min(1).max(1024).default(1).describe('ONNX runs in flight at most'),
  query_timeout_ms: z.number().int().min(1).default(QUERY_DEFAULTS.timeout_ms).describe('per attempt, when embedding a query'),
  query_max_attempts: z.number().int().min(1).max(100).default(QUERY_DEFAULTS.max_attempts).describe('attempts when embedding a query'),
});
export type LocalEmbedderOptions = z.output<typeof localEmbedderOptions>;

/** What the embedder needs from transformers.js: a tokenizer and a model that maps its encoding to token vectors. */
interface LoadedModel {
  tokenizer: (
    texts: string[],
    opts: { padding: boolean; truncation: boolean; max_length: number },
  ) => { input_ids: unknown; attention_mask: { data: ArrayLike<number | bigint>; dims: number[] }; [name: string]: unknown };
  model: (inputs: Record<string, unknown>) => Promise<Record<string, { data: ArrayLike<number>; dims: number[] } | undefined>>;
  /** Put back in place of the last token when a text is truncated (see `restoreEndToken`). */
  endToken?: number;
  dispose(): Promise<void>;
}

/** How to load a local model (plain data: it is handed to the model's worker thread). */
export interface LocalLoadOptions {
  /** A model directory, or with `allowRemote` a hub name. */
  model: string;
  allowRemote?: boolean;
  cacheDir?: string;
  /** The hub to download from (default huggingface.co). */
  remoteHost?: string;
  dtype?: LocalDtype | 'auto';
  pooling?: 'mean' | 'cls';
  normalize?: boolean;
  queryPrefix?: string;
  documentPrefix?: string;
  maxTokens?: number;
  batchSize?: number;
  threads?: number;
  /**
   * Heap limit of the worker thread ({@link LocalWorkerEmbedder}), in MB: V8's old generation, where the
   * tokenizer's output and the tensors' JavaScript side live. Default Node's own limit.
   */
  maxHeapMb?: number;
  /** Option path named in errors (default `embedder.local`). */
  field?: string;
}

/** A model directory checked for the files the embedder loads. */
export interface ModelFiles {
  dir: string;
  dtype: LocalDtype;
  onnx: string;
}

/**
 * Embeds texts with a feature-extraction model in the ONNX format transformers.js reads
 * (`config.json`, `tokenizer.json`, `onnx/model*.onnx`). Token vectors from the model's
 * `last_hidden_state` are pooled (mean over real tokens, or [CLS]) and L2-normalized here,
 * so truncation (`maxTokens`) and prefixes are ours to control.
 *
 * Everything here runs on the calling thread, inference included: onnxruntime-node's `run()`
 * computes synchronously (its promise only defers the start), blocking that thread's event
 * loop for a whole slice. The plugin therefore runs it in a worker ({@link LocalWorkerEmbedder}).
 *
 * Build it with {@link LocalEmbedder.load}.
 *
 * @example
 * const embedder = await LocalEmbedder.load({ model: '/models/all-MiniLM-L6-v2' });
 * const [v] = await embedder.embed(['live document index']);
 */
export class LocalEmbedder implements Embedder {
  readonly name = 'local';
  readonly modelKey: string;
  readonly dimensions: number;
  /** The model directory the weights came from. */
  readonly dir: string;
  readonly dtype: LocalDtype;
  readonly pooling: 'mean' | 'cls';
  readonly maxTokens: number;
  readonly #loaded: LoadedModel;
  readonly #opts: { normalize: boolean; queryPrefix: string; documentPrefix: string; batchSize: number };

  private constructor(init: {
    loaded: LoadedModel;
    files: ModelFiles;
    identity: string;
    fingerprint: string;
    dimensions: number;
    pooling: 'mean' | 'cls';
    maxTokens: number;
    normalize: boolean;
    queryPrefix: string;
    documentPrefix: string;
    batchSize: number;
  }) {
    this.#loaded = init.loaded;
    this.dir = init.files.dir;
    this.dtype = init.files.dtype;
    this.dimensions = init.dimensions;
    this.pooling = init.pooling;
    this.maxTokens = init.maxTokens;
    this.#opts = { normalize: init.normalize, queryPrefix: init.queryPrefix, documentPrefix: init.documentPrefix, batchSize: init.batchSize };
    // Everything that moves a vector: the weights and tokenizer (by content), how tokens are pooled, prefixes, truncation.
    const prefixes = init.queryPrefix || init.documentPrefix ? `:p${sha256Hex(JSON.stringify([init.queryPrefix, init.documentPrefix])).slice(0, 12)}` : '';
    this.modelKey = `local:${init.identity}@${init.fingerprint}:${init.files.dtype}:${init.pooling}:${init.normalize ? 'norm' : 'raw'}:t${init.maxTokens}${prefixes}:${init.dimensions}`;
  }

  /**
   * Loads a model: from a directory (never the network), or with `allowRemote` from the hub into
   * `cacheDir`. A missing or unreadable model is a `config_error` naming `field`.
   */
  static async load(opts: LocalLoadOptions & { logger?: Logger }): Promise<LocalEmbedder> {
    const field = opts.field ?? 'embedder.local';
    const transformers = await import('@huggingface/transformers');
    const dir = resolve(opts.model);
    let files: ModelFiles;
    let modelId: string;
    if (existsSync(dir)) {
      files = checkModelDir(dir, opts.dtype ?? 'auto', field);
      // An absolute path is never a valid hub id, so transformers.js reads it from disk and never fetches.
      modelId = files.dir;
    } else if (opts.allowRemote && !isAbsolute(opts.model) && /^[\w.-]+(\/[\w.-]+)?$/.test(opts.model)) {
      if (!opts.cacheDir) throw new LivedexError('config_error', `${field}.cache_dir: required to download "${opts.model}"`, { field: `${field}.cache_dir` });
      // transformers.js reads the cache directory from its process-wide settings in one place (the config
      // lookup), so it is set there as well as per call; downloads of other instances land beside ours.
      transformers.env.cacheDir = opts.cacheDir;
      transformers.env.allowRemoteModels = true;
      if (opts.remoteHost) transformers.env.remoteHost = opts.remoteHost.endsWith('/') ? opts.remoteHost : `${opts.remoteHost}/`;
      modelId = opts.model;
      files = { dir: join(opts.cacheDir, opts.model), dtype: opts.dtype === 'auto' || !opts.dtype ? 'fp32' : opts.dtype, onnx: '' };
    } else {
      throw new LivedexError(
        'config_error',
        `${field}.model: "${opts.model}" is not a model directory (${dir} does not exist)` +
          (opts.allowRemote ? '' : `; to download a hub model by name set ${field}.allow_remote: true`),
        { field: `${field}.model` },
      );
    }

    const sessionOptions = opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {};
    let extractor: {
      tokenizer: LoadedModel['tokenizer'] & { model_max_length?: number; sep_token_id?: number | null };
      model: LoadedModel['model'];
      dispose(): Promise<void>;
    };
    try {
      extractor = (await transformers.pipeline('feature-extraction', modelId, {
        local_files_only: !opts.allowRemote,
        ...(opts.cacheDir ? { cache_dir: opts.cacheDir } : {}),
        dtype: files.dtype,
        device: 'cpu',
        session_options: sessionOptions,
      })) as unknown as typeof extractor;
    } catch (err) {
      throw new LivedexError('config_error', `${field}.model: cannot load the model from "${opts.model}": ${describeError(err)}`, { field: `${field}.model`, cause: err });
    }
    try {
      if (!files.onnx) files = checkModelDir(files.dir, files.dtype, field);
      const config = await readJson(join(files.dir, 'config.json'));
      const sentenceConfig = await readJson(join(files.dir, 'sentence_bert_config.json')).catch((): Record<string, unknown> => ({}));
      const poolingConfig = await readJson(join(files.dir, '1_Pooling', 'config.json')).catch((): Record<string, unknown> => ({}));
      const pooling = opts.pooling ?? (poolingConfig.pooling_mode_cls_token === true && poolingConfig.pooling_mode_mean_tokens !== true ? 'cls' : 'mean');
      const maxTokens =
        opts.maxTokens ??
        positive(sentenceConfig.max_seq_length) ??
        Math.min(positive(extractor.tokenizer.model_max_length) ?? Infinity, positive(config.max_position_embeddings) ?? Infinity, 100_000);
      const endToken = endTokenOf(extractor.tokenizer);
      const loaded: LoadedModel = {
        tokenizer: (texts, o) => extractor.tokenizer(texts, o),
        model: (inputs) => extractor.model(inputs),
        ...(endToken !== undefined ? { endToken } : {}),
        dispose: () => extractor.dispose(),
      };
      // The vector length is what the model gives (a config may not tell, or tell the size of another layer).
      const probe = await runModel(loaded, ['dimensions probe'], { maxTokens: Math.max(2, Math.min(maxTokens, 16)), pooling, normalize: false });
      const dimensions = probe[0]!.length;
      const hidden = positive(config.hidden_size) ?? positive(config.d_model) ?? positive(config.dim);
      if (hidden !== undefined && hidden !== dimensions) {
        // Not fatal (a projection head changes the length), but worth knowing.
        opts.logger?.warn(`${field}: config.json says hidden_size ${hidden}, the model gives vectors of ${dimensions}`);
      }
      return new LocalEmbedder({
        loaded,
        files,
        identity: opts.allowRemote && modelId === opts.model ? opts.model : basename(files.dir),
        fingerprint: await fingerprint(files),
        dimensions,
        pooling,
        maxTokens,
        normalize: opts.normalize ?? true,
        queryPrefix: opts.queryPrefix ?? '',
        documentPrefix: opts.documentPrefix ?? '',
        batchSize: opts.batchSize ?? 16,
      });
    } catch (err) {
      await extractor.dispose().catch(() => {});
      if (err instanceof LivedexError) throw err;
      throw new LivedexError('config_error', `${field}.model: the model in "${files.dir}" does not run: ${describeError(err)}`, { field: `${field}.model`, cause: err });
    }
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const prefix = this.#opts.documentPrefix;
    return this.#embedAll(prefix ? texts.map((t) => prefix + t) : texts, signal);
  }

  async embedQuery(text: string, signal?: AbortSignal): Promise<Float32Array> {
    return (await this.#embedAll([this.#opts.queryPrefix + text], signal))[0]!;
  }

  /** Releases the ONNX session. */
  async dispose(): Promise<void> {
    await this.#loaded.dispose();
  }

  async #embedAll(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    // Slices of similar length pad less: sort by length, run, put back in order.
    const order = texts.map((_, i) => i).sort((a, b) => texts[a]!.length - texts[b]!.length);
    const out = new Array<Float32Array>(texts.length);
    const size = this.#opts.batchSize;
    for (let start = 0; start < order.length; start += size) {
      signal?.throwIfAborted();
      const slice = order.slice(start, start + size);
      const vectors = await runModel(
        this.#loaded,
        slice.map((i) => texts[i]!),
        { maxTokens: this.maxTokens, pooling: this.pooling, normalize: this.#opts.normalize },
      );
      slice.forEach((i, j) => { out[i] = vectors[j]!; });
    }
    return out;
  }
}

/** Tokenizes, runs the model and pools its token vectors: one vector per text. */
async function runModel(
  loaded: LoadedModel,
  texts: string[],
  opts: { maxTokens: number; pooling: 'mean' | 'cls'; normalize: boolean },
): Promise<Float32Array[]> {
  const inputs = loaded.tokenizer(texts, { padding: true, truncation: true, max_length: opts.maxTokens });
  if (loaded.endToken !== undefined) restoreEndToken(inputs.input_ids as IdTensor, inputs.attention_mask, loaded.endToken);
  const outputs = await loaded.model(inputs);
  const tokens = outputs.last_hidden_state ?? outputs.token_embeddings ?? outputs.logits;
  if (tokens?.dims.length !== 3) {
    throw new Error(`the model has no token vectors output (last_hidden_state [batch, tokens, dims]); it gave: ${Object.keys(outputs).join(', ')}`);
  }
  const [batch, length, dims] = tokens.dims as [number, number, number];
  const data = tokens.data;
  const mask = inputs.attention_mask.data;
  const vectors: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const v = new Float32Array(dims);
    if (opts.pooling === 'cls') {
      const at = b * length * dims;
      for (let d = 0; d < dims; d++) v[d] = data[at + d]!;
    } else {
      let count = 0;
      for (let t = 0; t < length; t++) {
        if (Number(mask[b * length + t]) === 0) continue;
        count++;
        const at = (b * length + t) * dims;
        for (let d = 0; d < dims; d++) v[d] = v[d]! + data[at + d]!;
      }
      if (count > 0) for (let d = 0; d < dims; d++) v[d] = v[d]! / count;
    }
    if (opts.normalize) normalizeInPlace(v);
    vectors.push(v);
  }
  return vectors;
}

type IdTensor = { data: BigInt64Array | Int32Array | number[]; dims: number[] };

/**
 * transformers.js cuts a long text after its special tokens are added, so a truncated text
 * loses its closing token ([SEP]); the model was trained with it there. Puts it back in the
 * last place of every row that was cut.
 */
function restoreEndToken(ids: IdTensor, mask: { data: ArrayLike<number | bigint> }, endToken: number): void {
  const [batch, length] = ids.dims as [number, number];
  for (let b = 0; b < batch; b++) {
    const last = (b + 1) * length - 1;
    if (Number(mask.data[last]) === 0 || Number(ids.data[last]) === endToken) continue;
    if (ids.data instanceof BigInt64Array) ids.data[last] = BigInt(endToken);
    else ids.data[last] = endToken;
  }
}

/** The token the tokenizer closes every text with ([SEP], </s>), when it does. */
function endTokenOf(tokenizer: LoadedModel['tokenizer'] & { sep_token_id?: number | null }): number | undefined {
  const sep = tokenizer.sep_token_id;
  if (typeof sep !== 'number') return undefined;
  const { input_ids: ids } = tokenizer(['a'], { padding: false, truncation: false, max_length: 1_000_000 }) as unknown as { input_ids: IdTensor };
  return Number(ids.data[ids.data.length - 1]) === sep ? sep : undefined;
}

function normalizeInPlace(v: Float32Array): void {
  let norm = 0;
  for (let i = 0; i < v.length; i++) norm += v[i]! * v[i]!;
  if (!(norm > 0)) return;
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! * scale;
}

/** Checks that `dir` holds a model transformers.js can load; picks the weights file for `dtype`. */
export function checkModelDir(dir: string, dtype: LocalDtype | 'auto', field = 'embedder.local'): ModelFiles {
  const where = `${field}.model`;
  if (!statSync(dir).isDirectory()) throw new LivedexError('config_error', `${where}: "${dir}" is a file, not a model directory`, { field: where });
  for (const file of ['config.json', 'tokenizer.json']) {
    if (!existsSync(join(dir, file))) {
      throw new LivedexError('config_error', `${where}: "${dir}" has no ${file} (a transformers.js model directory holds config.json, tokenizer.json and onnx/model.onnx)`, { field: where });
    }
  }
  const candidates: LocalDtype[] = dtype === 'auto' ? ['fp32', 'q8', 'int8', 'uint8', 'fp16', 'q4'] : [dtype];
  for (const candidate of candidates) {
    const onnx = join(dir, 'onnx', `model${DTYPE_SUFFIXES[candidate]}.onnx`);
    if (existsSync(onnx)) return { dir, dtype: candidate, onnx };
  }
  const wanted = candidates.map((c) => `onnx/model${DTYPE_SUFFIXES[c]}.onnx`).join(' or ');
  throw new LivedexError('config_error', `${where}: "${dir}" has no ${wanted}` + (dtype === 'auto' ? '' : ` (embedder.local.dtype is ${dtype})`), { field: where });
}

/**
 * The identity of a model's content: sha256 over the tokenizer and config files and the weights.
 * A model replaced in place gets a new key (so its vectors are rebuilt); a copy elsewhere keeps it.
 */
async function fingerprint(files: ModelFiles): Promise<string> {
  const hash = createHash('sha256');
  for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    const path = join(files.dir, name);
    if (!existsSync(path)) continue;
    hash.update(`${name}\u0000`);
    hash.update(await readFile(path));
  }
  hash.update('onnx\u0000');
  for await (const chunk of createReadStream(files.onnx)) hash.update(chunk as Buffer);
  // External weights (models over 2 GB) sit beside the graph; their size and time stand in for their content.
  const external = `${files.onnx}_data`;
  if (existsSync(external)) {
    const s = statSync(external);
    hash.update(`data\u0000${s.size}:${s.mtimeMs}`);
  }
  return hash.digest('hex').slice(0, 16);
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

function positive(x: unknown): number | undefined {
  return typeof x === 'number' && Number.isFinite(x) && x > 0 ? Math.floor(x) : undefined;
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Unexpected exits of the worker thread within `windowMs` after which it is not restarted again. */
const RESTART_LIMIT = { exits: 5, windowMs: 10 * 60_000 };
/** Texts in flight at this many exits are not sent again: they are what ends the thread (e.g. out of memory). */
const SUSPECT_EXITS = 2;
/** Fingerprints of texts in flight at an exit that are remembered. */
const SUSPECTS_KEPT = 64;

type ReadyEvent = Extract<LocalWorkerEvent, { kind: 'ready' }>;

/** A request sent to the worker thread, until it answers. */
interface InFlight {
  kind: LocalWorkerRequest['kind'];
  texts: string[];
  resolve(v: Float32Array[]): void;
  reject(e: unknown): void;
}

/**
 * The local model in a worker thread of its own: ONNX Runtime computes on the thread that calls
 * `run()`, which would stop every query and timer of the server for the length of a batch.
 * Same contract as {@link LocalEmbedder}; `close()` ends the thread. The thread holds the
 * process open only while a request is in flight (or while it loads).
 *
 * When the thread exits unexpectedly (out of memory, see `maxHeapMb`; an uncaught exception),
 * the calls in flight reject with a transient `not_ready` error (documents are held back and
 * tried again, not failed) and a new thread loads the same model; calls made meanwhile wait for
 * it. Texts that were in flight at two exits are refused from then on (`invalid_request`), so
 * that one batch cannot use up the restarts. After 5 exits within 10 minutes (`RESTART_LIMIT`),
 * or when a new thread does not load the model or loads another one (changed on disk), every
 * call rejects for good with a `model_unavailable` error saying what to check.
 *
 * @example
 * const embedder = await LocalWorkerEmbedder.start({ model: '/models/all-MiniLM-L6-v2' });
 * const [v] = await embedder.embed(['live document index']);
 * await embedder.close();
 */
export class LocalWorkerEmbedder implements Embedder {
  readonly name = 'local';
  readonly modelKey: string;
  readonly dimensions: number;
  readonly dir: string;
  readonly dtype: string;
  readonly maxTokens: number;
  readonly #opts: LocalLoadOptions;
  readonly #logger: Logger | undefined;
  /** The thread that answers; null while a new one loads (`#restarting`), and once closed. */
  #worker: Worker | null = null;
  /** The thread being started after an exit, until it is ready. */
  #loading: Worker | null = null;
  /** Settles (never rejects) when the restart under way has succeeded or given up. */
  #restarting: Promise<void> | null = null;
  readonly #pending = new Map<number, InFlight>();
  /** When the thread exited unexpectedly, within `RESTART_LIMIT.windowMs` (ms since the epoch). */
  #exits: number[] = [];
  /** Fingerprint of texts in flight at an exit → how many exits. */
  readonly #suspects = new Map<string, number>();
  #nextId = 1;
  #closed: Error | null = null;

  private constructor(opts: LocalLoadOptions, logger: Logger | undefined, worker: Worker, ready: ReadyEvent) {
    this.#opts = opts;
    this.#logger = logger;
    this.modelKey = ready.modelKey;
    this.dimensions = ready.dimensions;
    this.dir = ready.dir;
    this.dtype = ready.dtype;
    this.maxTokens = ready.maxTokens;
    this.#adopt(worker);
  }

  /** Starts the worker and loads the model there; rejects with the loader's `config_error`. */
  static async start(opts: LocalLoadOptions, logger?: Logger): Promise<LocalWorkerEmbedder> {
    const { worker, ready } = spawnWorker(opts, logger);
    return new LocalWorkerEmbedder(opts, logger, worker, await ready);
  }

  embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    if (texts.length === 0) return Promise.resolve([]);
    return this.#request('document', texts, signal);
  }

  async embedQuery(text: string, signal?: AbortSignal): Promise<Float32Array> {
    return (await this.#request('query', [text], signal))[0]!;
  }

  /** Ends the worker thread (and one being restarted); calls in flight or waiting reject. */
  async close(): Promise<void> {
    this.#rejectPending((this.#closed ??= new Error('the local embedder is closed')));
    const threads = [this.#worker, this.#loading].filter((w): w is Worker => w !== null);
    this.#worker = null;
    this.#loading = null;
    await Promise.all(threads.map((w) => w.terminate()));
    await this.#restarting;
  }

  /** Makes `worker` the thread that answers. */
  #adopt(worker: Worker): void {
    this.#worker = worker;
    let error: Error | undefined;
    worker.on('message', (event: LocalWorkerEvent) => {
      if (event.kind !== 'result' && event.kind !== 'error') return;
      const call = this.#pending.get(event.id);
      if (!call) return;
      this.#settled(event.id);
      if (event.kind === 'result') call.resolve(event.vectors);
      else call.reject(fromWire(event.error));
    });
    // An uncaught exception or ERR_WORKER_OUT_OF_MEMORY is emitted just before the exit.
    worker.on('error', (err) => (error = err));
    worker.on('exit', (code) => this.#exited(worker, code, error));
    // Idle: requests wait for a thread before they are sent, so none is in flight yet.
    worker.unref();
  }

  async #request(kind: LocalWorkerRequest['kind'], texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    if (this.#closed) throw this.#closed;
    const refused = this.#refusal(kind, texts);
    if (refused) throw refused;
    for (;;) {
      signal?.throwIfAborted();
      if (this.#closed) throw this.#closed;
      if (this.#worker) return this.#send(this.#worker, kind, texts, signal);
      if (!this.#restarting) throw new LivedexError('internal', "the local model's worker thread is gone and not being restarted");
      await untilAborted(this.#restarting, signal);
    }
  }

  #send(worker: Worker, kind: LocalWorkerRequest['kind'], texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const id = this.#nextId++;
    return new Promise<Float32Array[]>((resolve, reject) => {
      // An aborted call stops waiting; the worker finishes the slice it is on and the result is dropped.
      const onAbort = () => {
        this.#settled(id);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      this.#pending.set(id, {
        kind,
        texts,
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ id, kind, texts } satisfies LocalWorkerRequest);
    });
  }

  #settled(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker?.unref();
  }

  #rejectPending(err: Error): void {
    for (const [id, call] of this.#pending) {
      this.#settled(id);
      call.reject(err);
    }
  }

  /** The thread ended: unexpectedly unless it is no longer ours (closed, replaced). */
  #exited(worker: Worker, code: number, error: Error | undefined): void {
    if (worker !== this.#worker) return;
    this.#worker = null;
    const now = Date.now();
    this.#exits = [...this.#exits.filter((t) => now - t < RESTART_LIMIT.windowMs), now];
    const why = `code ${code}${error ? `: ${describeError(error)}` : ''}`;
    const field = this.#opts.field ?? 'embedder.local';
    if (this.#exits.length >= RESTART_LIMIT.exits) {
      this.#giveUp(
        new LivedexError(
          'model_unavailable',
          `the local model's worker thread keeps exiting (${this.#exits.length} times within ${RESTART_LIMIT.windowMs / 60_000} minutes, last ${why}); ` +
            `it is not restarted again until livedex restarts: check the memory livedex may use (free memory, ${field}.max_heap_mb, ` +
            `${field}.batch_size) and that the model in "${this.dir}" runs`,
          { cause: error },
        ),
      );
      return;
    }
    const transient = markTransient(new LivedexError('not_ready', `the local model's worker thread exited (${why}); it is restarting`, { cause: error }));
    this.#logger?.warn("the local model's worker thread exited; restarting it", { code, error: error ? describeError(error) : undefined, exits: this.#exits.length });
    for (const [id, call] of this.#pending) {
      this.#settled(id);
      const exits = this.#suspect(call);
      call.reject(exits >= SUSPECT_EXITS ? this.#refusal(call.kind, call.texts)! : transient);
    }
    this.#restarting = this.#restart();
  }

  /** Loads the model in a new thread; gives up when it does not load or is not the same model. */
  async #restart(): Promise<void> {
    const { worker, ready } = spawnWorker(this.#opts, this.#logger);
    this.#loading = worker;
    try {
      const event = await ready;
      if (this.#closed) {
        await worker.terminate();
        return;
      }
      if (event.modelKey !== this.modelKey || event.dimensions !== this.dimensions) {
        await worker.terminate();
        this.#giveUp(
          new LivedexError(
            'model_unavailable',
            `the local model's worker thread exited and the model in "${this.dir}" has changed since livedex started (${this.modelKey} → ${event.modelKey}); restart livedex to use the new model`,
          ),
        );
        return;
      }
      this.#adopt(worker);
      this.#logger?.info("the local model's worker thread is back", { modelKey: this.modelKey });
    } catch (err) {
      if (this.#closed) return;
      this.#giveUp(
        new LivedexError('model_unavailable', `the local model's worker thread exited and a new one could not load the model: ${describeError(err)}`, { cause: err }),
      );
    } finally {
      if (this.#loading === worker) this.#loading = null;
      this.#restarting = null;
    }
  }

  /** Stops for good: every call from now on rejects with `err`. */
  #giveUp(err: LivedexError): void {
    if (this.#closed) return;
    this.#closed = err;
    this.#logger?.error("the local model's worker thread is not restarted again", { error: err.message });
    this.#rejectPending(err);
  }

  /** Counts an exit against the texts of `call`; returns how many exits they were in flight at. */
  #suspect(call: InFlight): number {
    const key = requestKey(call.kind, call.texts);
    const exits = (this.#suspects.get(key) ?? 0) + 1;
    this.#suspects.delete(key);
    this.#suspects.set(key, exits);
    if (this.#suspects.size > SUSPECTS_KEPT) this.#suspects.delete(this.#suspects.keys().next().value!);
    return exits;
  }

  /** The error for texts that ended the thread too often, or undefined. */
  #refusal(kind: LocalWorkerRequest['kind'], texts: string[]): LivedexError | undefined {
    if (this.#suspects.size === 0) return undefined;
    const exits = this.#suspects.get(requestKey(kind, texts)) ?? 0;
    if (exits < SUSPECT_EXITS) return undefined;
    const chars = texts.reduce((n, t) => n + t.length, 0);
    return new LivedexError(
      'invalid_request',
      `the local model's worker thread exited ${exits} times while embedding these ${texts.length} text(s) (${chars} characters); ` +
        `they are not sent to it again (too large for its memory? see ${this.#opts.field ?? 'embedder.local'}.max_heap_mb)`,
    );
  }
}

/** Starts a worker thread that loads the model; `ready` rejects (and ends the thread) when it does not load. */
function spawnWorker(opts: LocalLoadOptions, logger: Logger | undefined): { worker: Worker; ready: Promise<ReadyEvent> } {
  const thread = threadEntry(import.meta.url, 'local-worker');
  const worker = new Worker(thread.entry, {
    workerData: { ...opts, ...thread.workerData },
    ...(opts.maxHeapMb ? { resourceLimits: { maxOldGenerationSizeMb: opts.maxHeapMb } } : {}),
  });
  worker.on('message', (event: LocalWorkerEvent) => {
    if (event.kind === 'log') logger?.[event.level](event.msg);
  });
  const ready = new Promise<ReadyEvent>((resolve, reject) => {
    worker.on('message', (event: LocalWorkerEvent) => {
      if (event.kind === 'ready') resolve(event);
      else if (event.kind === 'failed') reject(fromWire(event.error));
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the local model's worker thread exited (code ${code}) while loading`)));
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });
  return { worker, ready };
}

/** Identifies the texts of a request (for `SUSPECT_EXITS`). */
function requestKey(kind: LocalWorkerRequest['kind'], texts: string[]): string {
  const hash = createHash('sha256').update(kind);
  for (const t of texts) hash.update(`\u0000${t}`);
  return hash.digest('hex');
}

/** Waits for `promise` (which never rejects), or until `signal` aborts (rejects with its reason). */
function untilAborted(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return promise;
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

function fromWire(error: LocalWireError): Error {
  if (error.code === 'config_error') return new LivedexError('config_error', error.message, error.field ? { field: error.field } : {});
  return new Error(error.message);
}

export const localEmbedder = definePlugin({
  kind: 'embedder',
  name: 'local',
  description: 'Embeddings from a local ONNX model directory (transformers.js, CPU), cached and batched; offline unless allow_remote.',
  options: localEmbedderOptions,
  create: async (options, ctx): Promise<CallingEmbedder> => {
    const {
      model,
      allow_remote,
      cache_dir,
      remote_host,
      pooling,
      normalize,
      dtype,
      query_prefix,
      document_prefix,
      max_tokens,
      batch_size,
      threads,
      max_heap_mb,
      query_timeout_ms,
      query_max_attempts,
      ...machine
    } = options;
    const embedder = await LocalWorkerEmbedder.start({
      model,
      allowRemote: allow_remote,
      cacheDir: resolve(cache_dir ?? join(ctx.dataDir, 'models')),
      ...(remote_host ? { remoteHost: remote_host } : {}),
      dtype,
      ...(pooling ? { pooling } : {}),
      normalize,
      queryPrefix: query_prefix,
      documentPrefix: document_prefix,
      ...(max_tokens !== undefined ? { maxTokens: max_tokens } : {}),
      batchSize: batch_size,
      ...(threads !== undefined ? { threads } : {}),
      ...(max_heap_mb !== undefined ? { maxHeapMb: max_heap_mb } : {}),
    }, ctx.logger);
    ctx.logger.info('embedder "local" (in a worker thread)', { modelKey: embedder.modelKey, dir: embedder.dir, dtype: embedder.dtype, maxTokens: embedder.maxTokens });
    const wrapped = wrapEmbedder(embedder, callOptions.parse(machine), {
      logger: ctx.logger,
      query: { timeout_ms: query_timeout_ms, max_attempts: query_max_attempts },
    });
    return {
      ...wrapped,
      close: async () => {
        await wrapped.close();
        await embedder.close();
      },
    };
  },
});
