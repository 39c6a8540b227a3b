/** @module server/push — push ingestion: `PUT` and `DELETE /v1/documents/{key}` into a push source. */
import { extname } from 'node:path';
import type { Context, Hono } from 'hono';
import { PipelineConfig } from '../core/config.js';
import { LivedexError } from '../core/errors.js';
import { essence, extensionForType } from '../core/media-types.js';
import type { PushTarget } from '../core/push.js';
import type { Metadata } from '../core/types.js';

export interface PushRouteOptions {
  /** The push source, once started (sources start after the server listens); null when none is configured. */
  target(): PushTarget | null;
  /** The largest document accepted (`pipeline.max_file_bytes`); larger bodies get a 413. */
  maxBytes: number;
  /** The largest metadata accepted, as JSON (`pipeline.max_metadata_bytes`, its default when absent); more gets a 413. */
  maxMetadataBytes?: number;
  /** True when a configured parser reads `extension` (with the dot). */
  parses(extension: string): boolean;
}

const DEFAULT_MAX_METADATA_BYTES = PipelineConfig.parse({}).max_metadata_bytes;

/** Content types that say nothing about the bytes (curl's default for `--data-binary`, among others). */
const GENERIC_TYPES = new Set(['', 'application/octet-stream', 'application/x-www-form-urlencoded', 'binary/octet-stream']);

/** Reads the body, refusing it (413) as soon as it passes `max` bytes. */
async function readBody(c: Context, max: number): Promise<Uint8Array> {
  const tooLarge = (size: string) =>
    new LivedexError('invalid_request', `the document is ${size}, above the ${max} bytes limit (pipeline.max_file_bytes)`, { field: 'body', status: 413 });
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) throw tooLarge(`${declared} bytes`);
  const body = c.req.raw.body;
  if (!body) return new Uint8Array();
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(`more than ${max} bytes`);
    }
    parts.push(value);
  }
  return Buffer.concat(parts);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Client metadata from the `X-Livedex-Metadata` header (a JSON object), for raw pushes. */
function headerMetadata(c: Context): Metadata {
  const raw = c.req.header('x-livedex-metadata');
  if (raw === undefined || raw.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new LivedexError('invalid_request', 'the X-Livedex-Metadata header is not valid JSON', { field: 'metadata' });
  }
  if (!isPlainObject(parsed)) throw new LivedexError('invalid_request', 'the X-Livedex-Metadata header must be a JSON object', { field: 'metadata' });
  return parsed;
}

/** `{text, metadata}` from a JSON body, validated. */
function envelope(bytes: Uint8Array): { text: string; metadata: Metadata } {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new LivedexError('invalid_request', `the body is not valid JSON (${err instanceof Error ? err.message : String(err)}); to push a JSON file as it is, send it as application/octet-stream`, { field: 'body' });
  }
  if (!isPlainObject(body)) throw new LivedexError('invalid_request', 'an application/json body is {"text": "...", "metadata": {...}}', { field: 'body' });
  const extra = Object.keys(body).filter((k) => k !== 'text' && k !== 'metadata');
  if (extra.length > 0) {
    throw new LivedexError('invalid_request', `unknown field ${JSON.stringify(extra[0])}: an application/json body is {"text": "...", "metadata": {...}} (to push a JSON file as it is, send it as application/octet-stream)`, { field: extra[0]! });
  }
  if (typeof body.text !== 'string') throw new LivedexError('invalid_request', '"text" must be a string', { field: 'text' });
  if (body.metadata !== undefined && !isPlainObject(body.metadata)) throw new LivedexError('invalid_request', '"metadata" must be an object', { field: 'metadata' });
  return { text: body.text, metadata: (body.metadata as Metadata | undefined) ?? {} };
}

/**
 * Mounts `PUT /v1/documents/{key}` (raw bytes read by the parser of their `Content-Type`, else of
 * the key's extension, with optional `X-Livedex-Metadata: {json}`; or `application/json`
 * `{"text", "metadata"}`) and `DELETE /v1/documents/{key}`. Keys without the push source's
 * prefix get it (`notes.md` → `push:notes.md`); `GET /v1/documents/{full key}` shows the result.
 * A PUT answers 202 once the document is stored and queued; 413 above the size limit or the
 * metadata limit, 415 for a type no parser reads.
 *
 * @example
 * mountPush(app, { target: () => pushSource, maxBytes: 32 << 20, maxMetadataBytes: 64 << 10, parses: (ext) => index.parses(ext) });
 * // curl -X PUT --data-binary @a.pdf -H 'content-type: application/pdf' :8000/v1/documents/a.pdf
 */
export function mountPush(app: Hono, opts: PushRouteOptions | undefined): void {
  const target = (): PushTarget => {
    const t = opts?.target() ?? null;
    if (!t) {
      throw new LivedexError('not_found', 'push ingestion is off: add a `push` source to the config (or pass --push to `livedex serve`)', { status: 404 });
    }
    return t;
  };

  app.put('/v1/documents/:key{.+}', async (c) => {
    const push = target();
    const key = push.resolveKey(c.req.param('key'));
    const type = essence(c.req.header('content-type'));
    const bytes = await readBody(c, opts!.maxBytes);
    let body = bytes;
    let metadata: Metadata;
    let extension: string | null = null;
    const keyExtension = extname(key).toLowerCase();
    const keyParsed = keyExtension !== '' && opts!.parses(keyExtension);
    if (type === 'application/json') {
      const doc = envelope(bytes);
      body = Buffer.from(doc.text, 'utf8');
      if (body.byteLength > opts!.maxBytes) {
        throw new LivedexError('invalid_request', `the text is ${body.byteLength} bytes, above the ${opts!.maxBytes} bytes limit (pipeline.max_file_bytes)`, { field: 'text', status: 413 });
      }
      metadata = doc.metadata;
      // Text goes to the key's parser when one claims it (`.md`), else it is plain text.
      if (!keyParsed) extension = '.txt';
    } else {
      metadata = headerMetadata(c);
      const typeExtension = GENERIC_TYPES.has(type) ? null : extensionForType(type);
      // An explicit type wins over the key's extension; a generic one leaves it to the key.
      if (typeExtension && opts!.parses(typeExtension)) extension = typeExtension === keyExtension ? null : typeExtension;
      else if (!keyParsed) {
        const what = GENERIC_TYPES.has(type) ? `files ending in "${keyExtension || '(no extension)'}"` : `"${type}"`;
        throw new LivedexError('invalid_request', `no parser reads ${what}; send a Content-Type livedex parses (text/*, application/pdf, Office documents, message/rfc822…) or a key with a known extension`, { field: 'content-type', status: 415 });
      }
    }
    const metadataBytes = Buffer.byteLength(JSON.stringify(metadata), 'utf8');
    const maxMetadata = opts!.maxMetadataBytes ?? DEFAULT_MAX_METADATA_BYTES;
    if (metadataBytes > maxMetadata) {
      throw new LivedexError('invalid_request', `the metadata is ${metadataBytes} bytes of JSON, above the ${maxMetadata} bytes limit (pipeline.max_metadata_bytes)`, { field: 'metadata', status: 413 });
    }
    if (extension !== null && !opts!.parses(extension)) {
      throw new LivedexError('invalid_request', `no parser reads "${extension}" files in this configuration`, { field: 'content-type', status: 415 });
    }
    const result = await push.put({ key, bytes: body, contentType: type === 'application/json' ? 'text/plain; charset=utf-8' : c.req.header('content-type') ?? null, extension, metadata });
    c.header('Location', `/v1/documents/${result.key.split('/').map(encodeURIComponent).join('/')}`);
    return c.json({ key: result.key, version: result.version, created: result.created, status: 'accepted' }, 202);
  });

  app.delete('/v1/documents/:key{.+}', async (c) => {
    const push = target();
    const key = push.resolveKey(c.req.param('key'));
    if (!(await push.remove(key))) throw new LivedexError('not_found', `no pushed document with key ${JSON.stringify(key)}`, { field: 'key' });
    return c.json({ key, deleted: true });
  });
}
