/** @module server/request — reads a request's fields the Pathway way: JSON body first, query string for what is missing. */
import type { Context } from 'hono';
import { LivedexError } from '../core/errors.js';
import { essence } from '../core/media-types.js';

/** The first value of each query-string key. */
function queryValues(url: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of new URL(url).searchParams) {
    if (!(key in out)) out[key] = value;
  }
  return out;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** `application/json` or a `+json` type, with or without parameters (`; charset=utf-8`). */
export function isJsonType(contentType: string | null | undefined): boolean {
  const type = essence(contentType);
  return type === 'application/json' || /^application\/[^/\s]+\+json$/.test(type);
}

/**
 * Refuses a body not declared as JSON. A page on any site may POST `text/plain`, a form or
 * no type at all without asking (no CORS preflight), so such a request must never be valid.
 *
 * @throws LivedexError `invalid_request` (415, field `content-type`).
 */
export function requireJsonType(c: Context): void {
  const given = c.req.header('content-type');
  if (isJsonType(given)) return;
  throw new LivedexError(
    'invalid_request',
    `a ${c.req.method} body must be sent as Content-Type: application/json (got ${given ? JSON.stringify(given) : 'none'}; with curl, add -H 'content-type: application/json'); to send the fields without a body, use GET with a query string`,
    { field: 'content-type', status: 415 },
  );
}

/**
 * The fields of a request: for GET, the query string; for POST, the JSON body (an empty
 * body is `{}`) with query-string values filling keys the body does not have. A POST must
 * say `Content-Type: application/json`, even with an empty body.
 *
 * @throws LivedexError `invalid_request` (field `body`) when the body is not JSON or not an object;
 * 415 (field `content-type`) when it is not declared as JSON.
 */
export async function readFields(c: Context): Promise<Record<string, unknown>> {
  const query = queryValues(c.req.url);
  if (c.req.method === 'GET' || c.req.method === 'HEAD') return query;
  requireJsonType(c);
  const text = await c.req.text();
  if (text.trim() === '') return query;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new LivedexError('invalid_request', `the request body is not valid JSON (${reason})`, { field: 'body', cause: err });
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new LivedexError('invalid_request', `the request body must be a JSON object (got ${kindOf(body)})`, { field: 'body' });
  }
  return { ...query, ...(body as Record<string, unknown>) };
}
