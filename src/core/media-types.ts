/** @module core/media-types — from a `Content-Type` to the extension whose parser reads it. */

/** Media types (without parameters, lower-case) and the extension their parser claims. */
const EXTENSION_BY_TYPE: Readonly<Record<string, string>> = {
  'text/plain': '.txt',
  'text/markdown': '.md',
  'text/x-markdown': '.md',
  'text/html': '.html',
  'application/xhtml+xml': '.xhtml',
  'text/csv': '.csv',
  'text/tab-separated-values': '.tsv',
  'application/json': '.json',
  'application/x-ndjson': '.ndjson',
  'application/jsonl': '.jsonl',
  'application/pdf': '.pdf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': '.docx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': '.pptx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': '.xlsx',
  'message/rfc822': '.eml',
  'application/vnd.ms-outlook': '.msg',
  'application/xml': '.xml',
  'text/xml': '.xml',
  'application/yaml': '.yaml',
  'text/yaml': '.yaml',
};

/** `text/markdown; charset=utf-8` → `text/markdown`; empty when absent. */
export function essence(contentType: string | null | undefined): string {
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

/**
 * The extension (with the dot) whose parser reads `contentType`, or null when the type says
 * nothing a parser can use (`application/octet-stream`, absent, unknown). Any other `text/*`
 * type reads as plain text.
 */
export function extensionForType(contentType: string | null | undefined): string | null {
  const type = essence(contentType);
  if (type === '') return null;
  const known = EXTENSION_BY_TYPE[type];
  if (known) return known;
  if (type.endsWith('+json')) return '.json';
  if (type.endsWith('+xml')) return '.xml';
  if (type.startsWith('text/')) return '.txt';
  return null;
}
