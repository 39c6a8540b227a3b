/** @module server/request — reads a request's fields the Pathway way: JSON body first, query string for what is missing. */
import type { Context } from 'hono';
import { LivedexError } from '../core/errors.js';

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

/**
 * The fields of a request: for GET, the query string; for POST, the JSON body (an empty
 * body is `{}`) with query-string values filling keys the body does not have.
 *
 * @throws LivedexError `invalid_request` (field `body`) when the body is not JSON or not an object.
 */
export async function readFields(c: Context): Promise<Record<string, unknown>> {
  const query = queryValues(c.req.url);
  if (c.req.method === 'GET' || c.req.method === 'HEAD') return query;
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
