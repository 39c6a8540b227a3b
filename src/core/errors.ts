/** @module core/errors — errors as values: a code, a message a user can act on, the field at fault, the cause. */

export type ErrorCode =
  | 'invalid_request'
  | 'invalid_filter'
  | 'not_found'
  | 'not_ready'
  | 'config_error'
  | 'parse_failed'
  | 'engine_error'
  | 'model_unavailable'
  | 'unauthorized'
  | 'forbidden'
  | 'rate_limited'
  | 'internal';

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_filter: 400,
  not_found: 404,
  not_ready: 503,
  config_error: 500,
  parse_failed: 422,
  engine_error: 500,
  model_unavailable: 503,
  unauthorized: 401,
  forbidden: 403,
  rate_limited: 429,
  internal: 500,
};

/** True when `code` is one of our error codes (e.g. for an error that crossed a thread). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(STATUS_BY_CODE, code);
}

export class LivedexError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly status: number;

  constructor(code: ErrorCode, message: string, opts: { field?: string; cause?: unknown; status?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LivedexError';
    this.code = code;
    this.field = opts.field;
    this.status = opts.status ?? STATUS_BY_CODE[code];
  }

  toJSON(): { error: { code: ErrorCode; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}

/** The message of anything thrown, for logs and per-document error reasons. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/**
 * True when trying again later may succeed: the error carries `transient: true` (a `CallError`
 * after 429/5xx/timeouts, a remote parser that did not answer, parse workers that cannot start).
 * The pipeline keeps such a document pending and tries it again with a growing delay.
 */
export function isTransientError(err: unknown): boolean {
  return err instanceof LivedexError && (err as { transient?: unknown }).transient === true;
}

/** Flags `err` as transient (see `isTransientError`) and returns it. */
export function markTransient<E extends LivedexError>(err: E): E {
  Object.defineProperty(err, 'transient', { value: true, enumerable: true });
  return err;
}
