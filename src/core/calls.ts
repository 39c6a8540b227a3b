/** @module core/calls — every model call goes through one machine: cache → batch → limit → retry → timeout → call. */
import { z } from 'zod';
import { describeError, isTransientError, LivedexError } from './errors.js';
import { sha256 } from './hash.js';
import type { Embedder, Logger } from './types.js';

// ───────────────────────────── options ─────────────────────────────

/** Options of the call machine; plugins that call models embed them in their own options. */
export const callOptions = z.strictObject({
  max_batch_items: z.number().int().min(1).max(100_000).default(64).describe('items per request at most'),
  max_batch_tokens: z.number().int().min(1).default(100_000).describe('approximate tokens per request at most (chars/4 unless the plugin counts)'),
  flush_ms: z.number().min(0).max(10_000).default(5).describe('how long a partial batch waits for more items'),
  max_concurrency: z.number().int().min(1).max(1024).default(4).describe('requests in flight at most'),
  requests_per_minute: z.number().int().min(0).default(0).describe('request budget per minute; 0 = unlimited'),
  tokens_per_minute: z.number().int().min(0).default(0).describe('token budget per minute; 0 = unlimited'),
  timeout_ms: z.number().int().min(1).default(60_000).describe('per attempt'),
  max_attempts: z.number().int().min(1).max(100).default(6).describe('attempts per request, the first included'),
  retry_base_ms: z.number().min(0).default(500).describe('backoff: the first retry waits up to this long'),
  retry_max_ms: z.number().min(0).default(30_000).describe('backoff: no wait is drawn above this'),
});
export type CallOptions = z.output<typeof callOptions>;
export type CallOptionsInput = z.input<typeof callOptions>;

/** Time, for tests: backoff and rate-limit waits go through `sleep`; `random` draws the jitter. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`; rejects with `signal.reason` when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  random(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
  random: Math.random,
};

// ───────────────────────────── cache ─────────────────────────────

/** A per-item result cache; keys are item hashes scoped to one machine (plugin, model, options). */
export interface CallCache<O> {
  /** One entry per key, null where none. */
  get(keys: string[]): Promise<(O | null)[]>;
  put(entries: Array<{ key: string; value: O }>): Promise<void>;
}

/** The default cache: the most recently used `capacity` results, in memory. */
export class LruCache<O> implements CallCache<O> {
  readonly #map = new Map<string, O>();
  constructor(readonly capacity = 1024) {}

  get size(): number {
    return this.#map.size;
  }

  async get(keys: string[]): Promise<(O | null)[]> {
    return keys.map((key) => {
      const value = this.#map.get(key);
      if (value === undefined) return null;
      // Refresh recency: a Map iterates in insertion order, so the first key is the oldest.
      this.#map.delete(key);
      this.#map.set(key, value);
      return value;
    });
  }

  async put(entries: Array<{ key: string; value: O }>): Promise<void> {
    for (const { key, value } of entries) {
      this.#map.delete(key);
      this.#map.set(key, value);
      if (this.#map.size > this.capacity) this.#map.delete(this.#map.keys().next().value!);
    }
  }
}

/** One shared cache seen by several machines: keys are prefixed with `namespace`. */
export function scopedCache<O>(shared: CallCache<O>, namespace: string): CallCache<O> {
  const scope = (key: string) => `${namespace}\u0000${key}`;
  return {
    get: (keys) => shared.get(keys.map(scope)),
    put: (entries) => shared.put(entries.map((e) => ({ key: scope(e.key), value: e.value }))),
  };
}

// ───────────────────────────── errors ─────────────────────────────

export type FailureKind =
  | 'rate_limited'
  | 'server_error'
  | 'timeout'
  | 'connection'
  | 'malformed'
  | 'auth'
  | 'client_error'
  | 'shutdown'
  | 'unknown';

/**
 * What a `call` throws when it knows better than the classifier: a malformed response
 * (`retryable`: the next attempt may be fine) or a permanent one (a vector of the wrong length).
 */
export class CallResponseError extends Error {
  readonly kind: FailureKind;
  readonly retryable: boolean;
  constructor(message: string, opts: { kind: FailureKind; retryable: boolean; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CallResponseError';
    this.kind = opts.kind;
    this.retryable = opts.retryable;
  }
}

/** A response that does not have the expected shape; retried. */
export const malformed = (message: string, cause?: unknown) => new CallResponseError(message, { kind: 'malformed', retryable: true, cause });
/** A response that will not get better by asking again; not retried. */
export const permanent = (message: string, cause?: unknown) => new CallResponseError(message, { kind: 'client_error', retryable: false, cause });

/**
 * The final error of a call: what failed, after how many attempts, and whether waiting could help.
 * `transient` is true when the provider may recover (retries exhausted on 429/5xx/timeouts/
 * resets) or we are shutting down: the items it holds back should stay pending, not fail.
 */
export class CallError extends LivedexError {
  readonly kind: FailureKind;
  readonly attempts: number;
  readonly transient: boolean;
  /** HTTP status of the last response, when there was one. */
  readonly httpStatus: number | undefined;
  constructor(message: string, opts: { kind: FailureKind; attempts: number; transient: boolean; httpStatus?: number; cause?: unknown }) {
    super('model_unavailable', message, { cause: opts.cause });
    this.name = 'CallError';
    this.kind = opts.kind;
    this.attempts = opts.attempts;
    this.transient = opts.transient;
    this.httpStatus = opts.httpStatus;
  }
}

export interface Classified {
  kind: FailureKind;
  retryable: boolean;
  status?: number;
  /** How long the server asked us to wait (Retry-After / retry-after-ms), when it did. */
  retryAfterMs?: number;
}

const CONNECTION_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const CONNECTION_MESSAGE = /socket hang up|fetch failed|ECONNRESET|ECONNREFUSED|other side closed|network error|connection (error|reset|refused)/i;

/** Sorts an error thrown by a call into retryable and permanent, by status, code, message and type. */
export function classifyError(err: unknown, now = Date.now()): Classified {
  if (err instanceof CallResponseError) return { kind: err.kind, retryable: err.retryable };
  // Our own errors say whether a later try may help: their `status` is what livedex would answer,
  // not a service's, so only a transient one is sorted by it.
  if (err instanceof LivedexError && !isTransientError(err)) return { kind: 'unknown', retryable: false };
  const status = statusOf(err);
  if (status !== undefined) {
    const retryAfterMs = retryAfterOf(err, now);
    const extra = retryAfterMs === undefined ? {} : { retryAfterMs };
    if (status === 429) return { kind: 'rate_limited', retryable: true, status, ...extra };
    if (status === 408 || status === 409) return { kind: 'timeout', retryable: true, status, ...extra };
    if (status >= 500) return { kind: 'server_error', retryable: true, status, ...extra };
    if (status === 401 || status === 403) return { kind: 'auth', retryable: false, status };
    if (status >= 400) return { kind: 'client_error', retryable: false, status };
  }
  for (let e: unknown = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const name = (e as { name?: string }).name;
    const code = (e as { code?: unknown }).code;
    if (name === 'APIConnectionTimeoutError' || name === 'TimeoutError') return { kind: 'timeout', retryable: true };
    if (name === 'SyntaxError') return { kind: 'malformed', retryable: true };
    if (typeof code === 'string' && CONNECTION_CODES.has(code)) return { kind: 'connection', retryable: true };
    if (name === 'APIConnectionError') return { kind: 'connection', retryable: true };
    if (e instanceof Error && CONNECTION_MESSAGE.test(e.message)) return { kind: 'connection', retryable: true };
  }
  return { kind: 'unknown', retryable: false };
}

function statusOf(err: unknown): number | undefined {
  const e = err as { status?: unknown; statusCode?: unknown; response?: { status?: unknown } } | null;
  for (const s of [e?.status, e?.statusCode, e?.response?.status]) if (typeof s === 'number' && s >= 100 && s < 600) return s;
  return undefined;
}

function headerOf(err: unknown, name: string): string | undefined {
  const headers = (err as { headers?: unknown; response?: { headers?: unknown } } | null)?.headers ?? (err as { response?: { headers?: unknown } } | null)?.response?.headers;
  if (!headers || typeof headers !== 'object') return undefined;
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const value = (headers as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : Array.isArray(value) ? String(value[0]) : undefined;
}

/** `retry-after-ms` (OpenAI's), else `Retry-After` in seconds or as an HTTP date; undefined when absent or nonsense. */
export function retryAfterOf(err: unknown, now = Date.now()): number | undefined {
  const ms = headerOf(err, 'retry-after-ms');
  if (ms !== undefined && ms.trim() !== '' && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const value = headerOf(err, 'retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Full jitter: a uniform draw in [0, min(max, base·2^(retry−1))] (AWS Architecture Blog, 2015). */
export function backoffDelay(retry: number, opts: Pick<CallOptions, 'retry_base_ms' | 'retry_max_ms'>, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.retry_max_ms, opts.retry_base_ms * 2 ** Math.max(0, retry - 1));
  return random() * ceiling;
}

// ───────────────────────────── limits ─────────────────────────────

/** A token bucket holding one minute's budget, refilled continuously; `take` waits its turn (FIFO). */
class Bucket {
  #level: number;
  #at: number;
  #queue: Promise<void> = Promise.resolve();
  constructor(
    readonly perMinute: number,
    readonly clock: Clock,
  ) {
    this.#level = perMinute;
    this.#at = clock.now();
  }

  take(amount: number, signal: AbortSignal, onWait: (ms: number) => void): Promise<void> {
    const cost = Math.min(amount, this.perMinute);
    const turn = this.#queue.then(async () => {
      for (;;) {
        const now = this.clock.now();
        this.#level = Math.min(this.perMinute, this.#level + ((now - this.#at) * this.perMinute) / 60_000);
        this.#at = now;
        if (this.#level >= cost) {
          this.#level -= cost;
          return;
        }
        const wait = Math.ceil(((cost - this.#level) * 60_000) / this.perMinute);
        onWait(wait);
        await this.clock.sleep(wait, signal);
      }
    });
    this.#queue = turn.catch(() => {});
    return turn;
  }
}

// ───────────────────────────── the machine ─────────────────────────────

/** What a machine calls: a batch of items in, one output per item out, in order. */
export interface CallSpec<I, O> {
  /** Named in errors and logs, e.g. `embedder openai:text-embedding-3-small`. */
  what: string;
  call(items: I[], signal: AbortSignal): Promise<O[]>;
  /** Identity of an item for the cache and for sending duplicates once (default: sha256 of the string form). */
  key?(item: I): string;
  /** Approximate tokens of an item (default: characters / 4 of the string form). */
  tokens?(item: I): number;
  /** Checks one output; throw a `CallResponseError` to fail (or retry) the batch. */
  check?(output: O, item: I): void;
  /** Appended to the final error message (e.g. what the failure holds back). */
  failureNote?: string;
}

export interface CallDeps<O> {
  logger: Logger;
  /** Per-item cache; default: an in-memory LRU of 1024 results. `null` turns caching off. */
  cache?: CallCache<O> | null;
  clock?: Clock;
}

/** Counters for metrics and tests. */
export interface CallCounters {
  /** Items asked for by callers (duplicates included). */
  items: number;
  cacheHits: number;
  /** Items sent in requests (each unique item once per attempt that succeeded or not). */
  itemsSent: number;
  /** Attempts made (first tries and retries). */
  requests: number;
  retries: number;
  /** Requests whose every attempt failed, by the kind of the last failure. */
  failures: Partial<Record<FailureKind, number>>;
  /** Attempts that failed, by kind (retried or not). */
  attemptFailures: Partial<Record<FailureKind, number>>;
  /** Requests in flight now, and the most seen at once. */
  inFlight: number;
  maxInFlight: number;
  /** Total time spent waiting for rate limits and backoff, in (clock) ms. */
  waitedMs: number;
}

interface Entry<I, O> {
  key: string;
  item: I;
  tokens: number;
  promise: Promise<O>;
  resolve(value: O): void;
  reject(err: unknown): void;
}

const defaultKey = (item: unknown) => sha256(typeof item === 'string' ? item : JSON.stringify(item));
const defaultTokens = (item: unknown) => Math.ceil((typeof item === 'string' ? item : JSON.stringify(item)).length / 4);

/**
 * Calls a model for items with caching, batching, limits, retries and timeouts. Callers ask
 * for their items with `run`; concurrent callers are coalesced into requests and each gets its
 * own results back, in order. Flush and per-attempt timers use real time; rate-limit and
 * backoff waits use `clock`.
 *
 * @example
 * const machine = new CallMachine({ what: 'embedder x', call: (texts, signal) => api.embed(texts, signal) }, callOptions.parse({ max_concurrency: 8 }), { logger });
 * const [a, b] = await machine.run(['first text', 'second text']);
 */
export class CallMachine<I, O> {
  readonly counters: CallCounters = {
    items: 0,
    cacheHits: 0,
    itemsSent: 0,
    requests: 0,
    retries: 0,
    failures: {},
    attemptFailures: {},
    inFlight: 0,
    maxInFlight: 0,
    waitedMs: 0,
  };

  readonly #spec: CallSpec<I, O>;
  readonly #opts: CallOptions;
  readonly #logger: Logger;
  readonly #cache: CallCache<O> | null;
  readonly #clock: Clock;
  readonly #key: (item: I) => string;
  readonly #tokens: (item: I) => number;
  /** Items asked for and not settled yet, by key: a second caller joins the first. */
  readonly #pending = new Map<string, Entry<I, O>>();
  #open: Entry<I, O>[] = [];
  #openTokens = 0;
  #flushTimer: NodeJS.Timeout | null = null;
  readonly #ready: Entry<I, O>[][] = [];
  readonly #close = new AbortController();
  readonly #requests: Bucket | null;
  readonly #tokenBucket: Bucket | null;
  /** When a 429 said how long to wait, no request starts before this (clock) time. */
  #pausedUntil = 0;

  constructor(spec: CallSpec<I, O>, options: CallOptions, deps: CallDeps<O>) {
    this.#spec = spec;
    this.#opts = options;
    this.#logger = deps.logger;
    this.#cache = deps.cache === undefined ? new LruCache<O>() : deps.cache;
    this.#clock = deps.clock ?? systemClock;
    this.#key = spec.key ?? defaultKey;
    this.#tokens = spec.tokens ?? defaultTokens;
    this.#requests = options.requests_per_minute > 0 ? new Bucket(options.requests_per_minute, this.#clock) : null;
    this.#tokenBucket = options.tokens_per_minute > 0 ? new Bucket(options.tokens_per_minute, this.#clock) : null;
  }

  get closed(): boolean {
    return this.#close.signal.aborted;
  }

  /** The outputs of `items`, in order; rejects with a `CallError` (or the caller's abort reason). */
  async run(items: I[], signal?: AbortSignal): Promise<O[]> {
    signal?.throwIfAborted();
    if (this.closed) throw this.#shutdownError();
    this.counters.items += items.length;
    if (items.length === 0) return [];
    const keys = items.map((item) => this.#key(item));
    const outputs = new Array<O | undefined>(items.length);

    const unique = [...new Set(keys)];
    let hits: (O | null)[] = [];
    if (this.#cache) {
      try {
        hits = await this.#cache.get(unique);
      } catch (err) {
        this.#logger.warn('call cache read failed; calling the model', { what: this.#spec.what, error: describeError(err) });
      }
    }
    const byKey = new Map<string, O | Promise<O>>();
    unique.forEach((key, i) => {
      const hit = hits[i];
      if (hit !== null && hit !== undefined) byKey.set(key, hit);
    });
    if (byKey.size > 0) for (const key of keys) if (byKey.has(key)) this.counters.cacheHits++;
    signal?.throwIfAborted();
    if (this.closed) throw this.#shutdownError();
    keys.forEach((key, i) => {
      if (!byKey.has(key)) byKey.set(key, this.#enqueue(key, items[i]!));
    });
    const settled = Promise.all(keys.map((key) => byKey.get(key)!));
    const results = await (signal ? raceAbort(settled, signal) : settled);
    results.forEach((value, i) => { outputs[i] = value; });
    return outputs as O[];
  }

  /** Aborts requests in flight and rejects every queued item with a 'shutting down' error. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.#close.abort(this.#shutdownError());
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    const queued = [...this.#open, ...this.#ready.flat()];
    this.#open = [];
    this.#ready.length = 0;
    for (const entry of queued) this.#settle(entry, null, this.#shutdownError());
  }

  #shutdownError(): CallError {
    return new CallError(`${this.#spec.what}: shutting down, the call was cancelled`, { kind: 'shutdown', attempts: 0, transient: true });
  }

  #enqueue(key: string, item: I): Promise<O> {
    const existing = this.#pending.get(key);
    if (existing) return existing.promise;
    let resolve!: (v: O) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<O>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Every caller awaits it through Promise.all; a late one may never look, so never unhandled.
    promise.catch(() => {});
    const entry: Entry<I, O> = { key, item, tokens: Math.max(1, this.#tokens(item)), promise, resolve, reject };
    this.#pending.set(key, entry);

    const { max_batch_items, max_batch_tokens } = this.#opts;
    if (this.#open.length > 0 && this.#openTokens + entry.tokens > max_batch_tokens) this.#flush();
    this.#open.push(entry);
    this.#openTokens += entry.tokens;
    if (this.#open.length >= max_batch_items || this.#openTokens >= max_batch_tokens) this.#flush();
    else if (this.#opts.flush_ms <= 0) queueMicrotask(() => this.#flush());
    else this.#flushTimer ??= setTimeout(() => this.#flush(), this.#opts.flush_ms);
    return promise;
  }

  #flush(): void {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    if (this.#open.length === 0) return;
    this.#ready.push(this.#open);
    this.#open = [];
    this.#openTokens = 0;
    this.#dispatch();
  }

  #dispatch(): void {
    while (this.counters.inFlight < this.#opts.max_concurrency && this.#ready.length > 0 && !this.closed) {
      const batch = this.#ready.shift()!;
      this.counters.inFlight++;
      this.counters.maxInFlight = Math.max(this.counters.maxInFlight, this.counters.inFlight);
      void this.#send(batch).finally(() => {
        this.counters.inFlight--;
        this.#dispatch();
      });
    }
  }

  /** Sends one batch until it succeeds, fails for good, or the machine closes. */
  async #send(batch: Entry<I, O>[]): Promise<void> {
    const items = batch.map((e) => e.item);
    const tokens = batch.reduce((s, e) => s + e.tokens, 0);
    const closing = this.#close.signal;
    for (let attempt = 1; ; attempt++) {
      let outputs: O[];
      try {
        await this.#waitForBudget(tokens, closing);
        this.counters.requests++;
        this.counters.itemsSent += batch.length;
        outputs = await this.#attempt(items, closing);
      } catch (err) {
        if (closing.aborted) {
          for (const e of batch) this.#settle(e, null, this.#shutdownError());
          return;
        }
        const c = classifyError(err, this.#clock.now());
        this.counters.attemptFailures[c.kind] = (this.counters.attemptFailures[c.kind] ?? 0) + 1;
        if (!c.retryable || attempt >= this.#opts.max_attempts) {
          this.counters.failures[c.kind] = (this.counters.failures[c.kind] ?? 0) + 1;
          const error = this.#finalError(err, c, attempt);
          this.#logger.warn('model call failed', { what: this.#spec.what, kind: c.kind, attempts: attempt, items: batch.length, error: describeError(err) });
          for (const e of batch) this.#settle(e, null, error);
          return;
        }
        const cap = Math.max(this.#opts.retry_max_ms, 60_000);
        const delay = c.retryAfterMs !== undefined ? Math.min(c.retryAfterMs, cap) : backoffDelay(attempt, this.#opts, this.#clock.random);
        if (c.retryAfterMs !== undefined) this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.now() + delay);
        this.counters.retries++;
        this.#logger.debug('model call failed, retrying', { what: this.#spec.what, kind: c.kind, attempt, delayMs: Math.round(delay), error: describeError(err) });
        try {
          this.counters.waitedMs += delay;
          await this.#clock.sleep(delay, closing);
        } catch {
          for (const e of batch) this.#settle(e, null, this.#shutdownError());
          return;
        }
        continue;
      }
      // Written before the callers hear back (an in-memory cache is then current), never awaited: a slow store must not hold the slot.
      if (this.#cache) {
        const values = batch.map((e, i) => ({ key: e.key, value: outputs[i]! }));
        this.#cache.put(values).catch((err) => this.#logger.warn('call cache write failed', { what: this.#spec.what, error: describeError(err) }));
      }
      batch.forEach((e, i) => { this.#settle(e, outputs[i]!, null); });
      return;
    }
  }

  /** Waits out a server-requested pause, then the request and token budgets. */
  async #waitForBudget(tokens: number, signal: AbortSignal): Promise<void> {
    const pause = this.#pausedUntil - this.#clock.now();
    if (pause > 0) {
      this.counters.waitedMs += pause;
      await this.#clock.sleep(pause, signal);
    }
    const onWait = (ms: number) => (this.counters.waitedMs += ms);
    if (this.#requests) await this.#requests.take(1, signal, onWait);
    if (this.#tokenBucket) await this.#tokenBucket.take(tokens, signal, onWait);
  }

  /** One attempt with its own timeout; checks the shape of the answer. */
  async #attempt(items: I[], closing: AbortSignal): Promise<O[]> {
    const controller = new AbortController();
    const onClose = () => controller.abort(closing.reason);
    closing.addEventListener('abort', onClose, { once: true });
    if (closing.aborted) controller.abort(closing.reason);
    const timeoutMs = this.#opts.timeout_ms;
    const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${timeoutMs} ms (timeout_ms)`, 'TimeoutError')), timeoutMs);
    // The race makes a timeout or a close hold even for a call that ignores its signal.
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(controller.signal.reason);
      controller.signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => {});
    try {
      const outputs = await Promise.race([this.#spec.call(items, controller.signal), aborted]);
      if (!Array.isArray(outputs) || outputs.length !== items.length) {
        throw malformed(`${this.#spec.what} returned ${Array.isArray(outputs) ? outputs.length : 'no'} results for ${items.length} items`);
      }
      if (this.#spec.check) outputs.forEach((o, i) => { this.#spec.check!(o, items[i]!); });
      return outputs;
    } catch (err) {
      // A call that noticed the abort throws an AbortError; report the timeout instead.
      if (controller.signal.aborted && !closing.aborted) throw controller.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
      closing.removeEventListener('abort', onClose);
      controller.signal.removeEventListener('abort', onAbort);
    }
  }

  #finalError(err: unknown, c: Classified, attempts: number): CallError {
    const transient = c.retryable;
    const how = transient ? `gave up after ${attempts} attempt${attempts === 1 ? '' : 's'}` : `failed (${c.kind.replace('_', ' ')}, not retried)`;
    const note = transient && this.#spec.failureNote && c.kind !== 'shutdown' ? `; ${this.#spec.failureNote}` : '';
    return new CallError(`${this.#spec.what} ${how}: ${describeError(err)}${note}`, {
      kind: c.kind,
      attempts,
      transient,
      ...(c.status === undefined ? {} : { httpStatus: c.status }),
      cause: err,
    });
  }

  #settle(entry: Entry<I, O>, value: O | null, err: unknown): void {
    if (this.#pending.get(entry.key) !== entry) return;
    this.#pending.delete(entry.key);
    if (err) entry.reject(err);
    else entry.resolve(value as O);
  }
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

// ───────────────────────────── embedders ─────────────────────────────

/** An embedder whose calls go through the machine; `close()` cancels them. */
export interface CallingEmbedder extends Embedder {
  /** Counters of document embedding. */
  readonly counters: CallCounters;
  readonly queryCounters: CallCounters;
  close(): Promise<void>;
}

/** Text hashes as the pipeline computes them, so a store-backed cache can use its own keys. */
const textKey = (text: string) => sha256(text);

/** How queries differ from documents: a person waits for them, so they fail over to BM25 fast. */
export const QUERY_DEFAULTS = { max_attempts: 2, timeout_ms: 15_000, retry_max_ms: 1000 } as const;

/**
 * Wraps an embedder so that its calls are cached per text, batched across callers, limited,
 * retried and timed out. Vectors of the wrong length fail for good (a configuration mismatch);
 * a wrong number of vectors is retried. Queries go through a machine of their own — no flush
 * delay, `query` overrides (default: 2 attempts, at most 15 s each) — so that a model that is
 * down fails a query in seconds, not after the minutes of retries a document may wait.
 *
 * @example
 * const embedder = wrapEmbedder(new OpenAIEmbedder({ … }), callOptions.parse({ max_concurrency: 8 }), { logger });
 * const vectors = await embedder.embed(texts);
 */
export function wrapEmbedder(
  embedder: Embedder,
  options: CallOptions,
  deps: {
    logger: Logger;
    cache?: CallCache<Float32Array> | null;
    clock?: Clock;
    countTokens?: (text: string) => number;
    /** Options of the query machine, over `options` and `QUERY_DEFAULTS`. */
    query?: Partial<CallOptions>;
  },
): CallingEmbedder {
  const what = `embedder ${embedder.modelKey}`;
  const check = (v: Float32Array) => {
    if (v?.length !== embedder.dimensions) {
      throw permanent(`${what} returned a vector of ${v?.length ?? 'no'} numbers, expected ${embedder.dimensions} (check the model and its dimensions option)`);
    }
  };
  const common = {
    key: textKey,
    check,
    failureNote: 'the documents of these texts are held back until it answers',
    ...(deps.countTokens ? { tokens: deps.countTokens } : {}),
  };
  const machineDeps = { logger: deps.logger, ...(deps.cache !== undefined ? { cache: deps.cache } : {}), ...(deps.clock ? { clock: deps.clock } : {}) };
  const docs = new CallMachine<string, Float32Array>({ what, call: (texts, signal) => embedder.embed(texts, signal), ...common }, options, machineDeps);
  const queryOptions: CallOptions = {
    ...options,
    ...QUERY_DEFAULTS,
    timeout_ms: Math.min(options.timeout_ms, QUERY_DEFAULTS.timeout_ms),
    flush_ms: 0,
    ...deps.query,
  };
  const queryCall = embedder.embedQuery
    ? (texts: string[], signal: AbortSignal) => Promise.all(texts.map((t) => embedder.embedQuery!(t, signal)))
    : (texts: string[], signal: AbortSignal) => embedder.embed(texts, signal);
  const queries = new CallMachine<string, Float32Array>(
    { what: `${what} (query)`, call: queryCall, ...common, failureNote: '' },
    queryOptions,
    // A model that embeds queries differently must not share their cache entries with documents.
    { ...machineDeps, cache: deps.cache ? scopedCache(deps.cache, 'query') : deps.cache === null ? null : new LruCache<Float32Array>(512) },
  );

  return {
    name: embedder.name,
    modelKey: embedder.modelKey,
    dimensions: embedder.dimensions,
    ...(embedder.lexical !== undefined ? { lexical: embedder.lexical } : {}),
    counters: docs.counters,
    queryCounters: queries.counters,
    embed: (texts, signal) => docs.run(texts, signal),
    embedQuery: async (text, signal) => (await queries.run([text], signal))[0]!,
    close: async () => {
      await Promise.all([docs.close(), queries.close()]);
    },
  };
}

/** Closes an embedder that holds calls (a `wrapEmbedder` result); a no-op for any other. */
export async function closeEmbedder(embedder: Embedder): Promise<void> {
  const close = (embedder as Partial<CallingEmbedder>).close;
  if (typeof close === 'function') await close.call(embedder);
}

/**
 * True when `err` says the model may answer later (retries exhausted on 429/5xx/timeouts/
 * resets, or shutting down): the document should stay `pending` and be tried again, not `failed`.
 */
export function isTransientCallError(err: unknown): err is CallError {
  return err instanceof CallError && err.transient;
}
