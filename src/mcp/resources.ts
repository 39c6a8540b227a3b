/** @module mcp/resources — documents as MCP resources: `livedex://documents/{key}`, listed by page, read as text + metadata. */
import { ErrorCode, McpError, type ReadResourceResult, type Resource } from '@modelcontextprotocol/sdk/types.js';
import type { DocumentInfo, LiveIndexApi } from '../core/types.js';
import { documentWithText } from './tools.js';

/** Every document resource URI starts with this; the rest is the URI-encoded document key. */
export const DOCUMENT_URI_PREFIX = 'livedex://documents/';

/** The URI template of document resources (RFC 6570: `{key}` is percent-encoded, `/` included). */
export const DOCUMENT_URI_TEMPLATE = `${DOCUMENT_URI_PREFIX}{key}`;

/** The JSON-RPC code the MCP spec gives an unknown resource. */
export const RESOURCE_NOT_FOUND = -32002;

/** The resource URI of the document `key`. */
export function documentUri(key: string): string {
  return DOCUMENT_URI_PREFIX + encodeURIComponent(key);
}

/** The document key a resource URI names, or null when it names none. */
export function documentKeyOf(uri: string): string | null {
  if (!uri.startsWith(DOCUMENT_URI_PREFIX) || uri.length === DOCUMENT_URI_PREFIX.length) return null;
  try {
    return decodeURIComponent(uri.slice(DOCUMENT_URI_PREFIX.length));
  } catch {
    return null;
  }
}

function describeResource(info: DocumentInfo): Resource {
  const path = typeof info.metadata.path === 'string' ? info.metadata.path : info.key;
  const modified = typeof info.metadata.modified_at === 'number' ? new Date(info.metadata.modified_at * 1000).toISOString() : undefined;
  return {
    uri: documentUri(info.key),
    name: info.key,
    ...(path !== info.key ? { title: path } : {}),
    mimeType: 'text/plain',
    description: `${info.status}${info.error ? `: ${info.error}` : ''}; ${info.chunk_count} chunk${info.chunk_count === 1 ? '' : 's'}`,
    ...(modified ? { annotations: { lastModified: modified } } : {}),
  };
}

const encodeCursor = (key: string) => Buffer.from(key, 'utf8').toString('base64url');

function decodeCursor(cursor: string): string {
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  if (key === '' || encodeCursor(key) !== cursor) throw new McpError(ErrorCode.InvalidParams, `cursor ${JSON.stringify(cursor)} is not one this server gave`);
  return key;
}

/**
 * One page of document resources in key order: the documents after `cursor` (the last key of
 * the previous page), so a page stays correct while documents come and go.
 */
export async function listDocumentResources(index: LiveIndexApi, cursor: string | undefined, pageSize: number): Promise<{ resources: Resource[]; nextCursor?: string }> {
  const after = cursor === undefined ? null : decodeCursor(cursor);
  const infos = await index.listDocumentInfos();
  const start = after === null ? 0 : infos.findIndex((d) => d.key > after);
  const page = start < 0 ? [] : infos.slice(start, start + pageSize);
  const more = start >= 0 && start + pageSize < infos.length;
  return { resources: page.map(describeResource), ...(more ? { nextCursor: encodeCursor(page[page.length - 1]!.key) } : {}) };
}

/** A document resource: its text (`text/plain`) and its info — status, metadata, times — (`application/json`). */
export async function readDocumentResource(index: LiveIndexApi, uri: string): Promise<ReadResourceResult> {
  const key = documentKeyOf(uri);
  if (key === null) throw new McpError(RESOURCE_NOT_FOUND, `resource ${uri} is not a document: use ${DOCUMENT_URI_TEMPLATE}`, { uri });
  const [info, chunks] = await Promise.all([index.getDocument(key), index.getDocumentChunks(key)]);
  if (!info || !chunks) throw new McpError(RESOURCE_NOT_FOUND, `no document with key ${JSON.stringify(key)}`, { uri });
  const { text, chunks: _chunks, ...meta } = documentWithText(info, chunks);
  return {
    contents: [
      { uri, mimeType: 'text/plain', text },
      { uri, mimeType: 'application/json', text: JSON.stringify(meta) },
    ],
  };
}
