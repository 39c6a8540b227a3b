/** @module server/errors — every error leaves the server as JSON `{error: {code, message, field?}}`. */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { LivedexError, describeError } from '../core/errors.js';
import type { Logger } from '../core/types.js';

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export function errorBody(code: string, message: string, field?: string): ErrorBody {
  return { error: { code, message, ...(field ? { field } : {}) } };
}

/** Answers a thrown error: `LivedexError` keeps its status and body; anything unknown is a logged 500. */
export function respondToError(err: unknown, c: Context, logger: Logger): Response {
  if (err instanceof LivedexError) {
    if (err.status >= 500) {
      logger.error('request failed', { method: c.req.method, path: c.req.path, code: err.code, error: describeError(err) });
    }
    return c.json(err.toJSON(), err.status as ContentfulStatusCode);
  }
  if (err instanceof HTTPException && err.status < 500) {
    return c.json(errorBody('invalid_request', err.message || 'bad request'), err.status);
  }
  logger.error('request failed', {
    method: c.req.method,
    path: c.req.path,
    error: describeError(err),
    stack: err instanceof Error ? err.stack : undefined,
  });
  return c.json(errorBody('internal', 'internal server error; the server log has the details'), 500);
}
