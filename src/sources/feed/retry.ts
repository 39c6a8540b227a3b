/** @module sources/feed/retry — retries of cloud-service requests: backoff with full jitter, `Retry-After` honoured, cancellable. */
import { backoffDelay, classifyError, type Classified } from '../../core/calls.js';

/** How a cloud source retries one request. */
export interface RetryPolicy {
  /** Tries after the first one. */
  retries: number;
  /** First backoff ceiling; doubles with each retry (full jitter). */
  baseMs: number;
  /** Longest backoff, and the longest `Retry-After` waited in place (a longer one fails the try). */
  maxMs: number;
}

/** Thrown when the service asks for a wait longer than we wait in place; the caller retries later. */
export class RetryLaterError extends Error {
  readonly retryAfterMs: number;
  readonly status: number | undefined;
  constructor(message: string, retryAfterMs: number, status?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'RetryLaterError';
    this.retryAfterMs = retryAfterMs;
    this.status = status;
  }
}

/** Waits `ms`, or less if `signal` aborts (then rejects with the abort reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, a permanent error, or the retries run out. Retries 429, 5xx,
 * timeouts and connection errors (as `classifyError` sorts them, or `classify` when given);
 * waits what `Retry-After` asks, when it asks.
 *
 * @example
 * const page = await withRetry(() => drive.files.list(params), { retries: 3, baseMs: 500, maxMs: 30_000 }, signal);
 */
export async function withRetry<T>(
  fn: () => Promise<T>,
  policy: RetryPolicy,
  signal: AbortSignal,
  classify: (err: unknown) => Classified = (err) => classifyError(err),
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (signal.aborted) throw err;
      const c = classify(err);
      if (!c.retryable || attempt >= policy.retries) {
        if (c.retryable && c.retryAfterMs !== undefined) {
          throw new RetryLaterError(messageOf(err), c.retryAfterMs, c.status, err);
        }
        throw err;
      }
      if (c.retryAfterMs !== undefined && c.retryAfterMs > policy.maxMs) {
        throw new RetryLaterError(messageOf(err), c.retryAfterMs, c.status, err);
      }
      await sleep(c.retryAfterMs ?? backoffDelay(attempt + 1, { retry_base_ms: policy.baseMs, retry_max_ms: policy.maxMs }), signal);
    }
  }
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
