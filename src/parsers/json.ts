/** @module parsers/json — JSON and JSON Lines as readable `path.to.key: value` lines, one part per record. */
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { ParsedPart, ParseInput, Parser } from '../core/types.js';
import { decodeText, isBlank } from './decode.js';

export const JSON_EXTENSIONS: readonly string[] = ['.json', '.jsonl', '.ndjson'];
const LINES_EXTENSIONS = new Set(['.jsonl', '.ndjson']);

export const jsonParserOptions = z.strictObject({
  extensions: z.array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".json"')).default([...JSON_EXTENSIONS]),
});
export type JsonParserOptions = z.output<typeof jsonParserOptions>;

/**
 * Parses JSON into text a search engine and a reader can use: every leaf becomes a line
 * `path.to.key: value` (array positions as `[i]`). JSON Lines give one part per record with
 * `line` (1-based); a top-level array of objects gives one part per element with `index`
 * (0-based). Anything that is not valid JSON is kept as plain text rather than failed.
 *
 * @example
 * await new JsonParser().parse({ key: 'a.json', bytes: enc('{"a":{"b":1}}'), extension: '.json', metadata: {} });
 * // [{ text: 'a.b: 1', metadata: {} }]
 */
export class JsonParser implements Parser {
  readonly name = 'json';
  /** Record parts stay as they are (a part over the budget is cut between records). */
  readonly splitter = 'token';
  readonly extensions: readonly string[];

  constructor(options: Partial<JsonParserOptions> = {}) {
    this.extensions = [...jsonParserOptions.parse(options).extensions];
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    const { text } = decodeText(input.bytes);
    if (isBlank(text)) return [];
    if (LINES_EXTENSIONS.has(input.extension)) return parseLines(text);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // Maybe JSON Lines under a .json name; else not JSON at all: index it as it is.
      const lines = parseLines(text);
      return lines.every((p) => p.metadata.invalid !== true) && lines.length > 1 ? lines : [{ text, metadata: { json_invalid: true } }];
    }
    if (Array.isArray(value) && value.length > 0 && value.every((v) => v !== null && typeof v === 'object')) {
      return value.map((v, index) => ({ text: flatten(v).join('\n'), metadata: { index } })).filter((p) => p.text !== '');
    }
    const lines = flatten(value);
    return lines.length === 0 ? [] : [{ text: lines.join('\n'), metadata: {} }];
  }
}

function parseLines(text: string): ParsedPart[] {
  const parts: ParsedPart[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    try {
      const flat = flatten(JSON.parse(line)).join('\n');
      if (flat !== '') parts.push({ text: flat, metadata: { line: i + 1 } });
    } catch {
      parts.push({ text: line, metadata: { line: i + 1, invalid: true } });
    }
  });
  return parts;
}

/** `{"a":{"b":[1,{"c":2}]}}` → `a.b[0]: 1`, `a.b[1].c: 2`. */
export function flatten(value: unknown, path = '', out: string[] = []): string[] {
  if (Array.isArray(value)) {
    if (value.length === 0) return out;
    // A list of plain values reads best on one line.
    if (value.every((v) => v === null || typeof v !== 'object')) {
      out.push(`${path || '(root)'}: ${value.map(String).join(', ')}`);
      return out;
    }
    value.forEach((v, i) => { flatten(v, `${path}[${i}]`, out); });
    return out;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flatten(v, path ? `${path}.${k}` : k, out);
    return out;
  }
  if (value === null || value === '') return out;
  out.push(path ? `${path}: ${String(value)}` : String(value));
  return out;
}

export const jsonParser = definePlugin({
  kind: 'parser',
  name: 'json',
  module: import.meta.url,
  description: 'JSON and JSON Lines as `path.to.key: value` lines: one part per JSONL record (`line`) or per element of a top-level array of objects (`index`); invalid JSON is kept as text.',
  options: jsonParserOptions,
  create: (options) => new JsonParser(options),
});
