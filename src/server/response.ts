/**
 * @module server/response — JSON arrays held under `limits.max_response_bytes`: hits past the cap
 * are left out (the best kept, and a header says so), a listing past it is refused.
 */
import type { Context } from 'hono';
import { LivedexError } from '../core/errors.js';

/** Set when hits were left out for size: `<sent> of <found> hits fit limits.max_response_bytes (<bytes>)`. */
export const TRUNCATED_HEADER = 'X-Livedex-Truncated';

export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

/** The JSON text of each item while the whole array stays within `maxBytes`; `complete` false when items were left. */
function serializeWithin(items: readonly unknown[], maxBytes: number): { parts: string[]; bytes: number; complete: boolean } {
  const parts: string[] = [];
  let bytes = 2; // the brackets
  for (const item of items) {
    const text = JSON.stringify(item);
    const size = Buffer.byteLength(text) + (parts.length > 0 ? 1 : 0);
    if (bytes + size > maxBytes) return { parts, bytes, complete: false };
    parts.push(text);
    bytes += size;
  }
  return { parts, bytes, complete: true };
}

const jsonArray = (c: Context, parts: string[]) => c.body(`[${parts.join(',')}]`, 200, { 'Content-Type': 'application/json' });

/**
 * Answers `hits` (best first) as a JSON array of at most `maxBytes`. `k` is a most, not a promise
 * (an index with fewer chunks answers fewer too), so the hits past the cap are left out rather
 * than the whole answer refused, which Pathway's clients (they expect an array) would fail on.
 *
 * @throws LivedexError `invalid_request` (field `k`) when not even the best hit fits.
 */
export function respondWithHits(c: Context, hits: readonly unknown[], maxBytes: number): Response {
  const { parts, complete } = serializeWithin(hits, maxBytes);
  if (complete) return jsonArray(c, parts);
  if (parts.length === 0) {
    throw new LivedexError('invalid_request', `the best hit alone is larger than the ${maxBytes} bytes answer limit (limits.max_response_bytes): raise the limit to read it`, { field: 'k' });
  }
  c.header(TRUNCATED_HEADER, `${parts.length} of ${hits.length} hits fit limits.max_response_bytes (${maxBytes} bytes)`);
  return jsonArray(c, parts);
}

/**
 * Answers a document listing as a JSON array of at most `maxBytes`. A listing says what is
 * indexed, so a cut one would mislead: past the cap it is refused, with how to narrow it.
 *
 * @throws LivedexError `invalid_request` (field `filepath_globpattern`) past the cap.
 */
export function respondWithListing(c: Context, documents: readonly unknown[], maxBytes: number): Response {
  const { parts, complete } = serializeWithin(documents, maxBytes);
  if (complete) return jsonArray(c, parts);
  throw new LivedexError(
    'invalid_request',
    `the listing of ${documents.length} documents is larger than the ${maxBytes} bytes answer limit (limits.max_response_bytes; ${parts.length} documents fit): narrow it with filepath_globpattern or metadata_filter, or raise the limit`,
    { field: 'filepath_globpattern' },
  );
}
