/** @module parsers/text — plain text and source code: decoded as is, one part per document. */
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { ParsedPart, ParseInput, Parser } from '../core/types.js';
import { decodeText, isBlank } from './decode.js';

/**
 * What the text parser claims by default: prose formats whose markup reads fine as is, config
 * and data formats, and source code. Left out on purpose: `.csv`/`.tsv` and `.json`/`.jsonl`/
 * `.ndjson` (their own parsers do better), `.env` (secrets), `.svg` (path data is noise), files without an extension
 * (too often executables; add `''` to `extensions` to take them).
 */
export const TEXT_EXTENSIONS: readonly string[] = [
  // prose
  '.txt', '.text', '.log', '.rst', '.adoc', '.asciidoc', '.org', '.tex', '.bib', '.srt', '.vtt',
  // config and data
  '.json5', '.yaml', '.yml', '.toml', '.ini', '.cfg', '.conf', '.properties', '.xml', '.graphql', '.proto',
  // source code
  '.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs', '.py', '.pyi', '.rb', '.php', '.pl', '.lua', '.r', '.jl',
  '.rs', '.go', '.java', '.kt', '.kts', '.scala', '.groovy', '.gradle', '.cs', '.fs', '.swift', '.m', '.mm', '.dart',
  '.c', '.h', '.cc', '.cpp', '.cxx', '.hpp', '.hh', '.zig', '.nim', '.hs', '.ml', '.mli', '.ex', '.exs', '.erl', '.clj',
  '.sh', '.bash', '.zsh', '.fish', '.ps1', '.bat', '.cmd', '.sql', '.css', '.scss', '.sass', '.less', '.vue', '.svelte',
  '.tf', '.hcl', '.nix', '.cmake', '.mk', '.dockerfile',
];

const extensionSchema = z
  .string()
  .regex(/^(\.[a-z0-9][a-z0-9._+-]*)?$/, 'an extension is lower-case and starts with a dot, like ".txt" (or "" for files without one)');

export const textParserOptions = z.strictObject({
  /** Extensions to claim, lower-case with the dot; replaces the default list. */
  extensions: z.array(extensionSchema).default([...TEXT_EXTENSIONS]),
});

/** Decodes a text file into a single part; blank files give no parts (indexed with 0 chunks). */
export class TextParser implements Parser {
  readonly name = 'text';
  readonly extensions: readonly string[];

  constructor(extensions: readonly string[] = TEXT_EXTENSIONS) {
    this.extensions = [...extensions];
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    const { text } = decodeText(input.bytes);
    if (isBlank(text)) return [];
    return [{ text, metadata: {} }];
  }
}

export const textParser = definePlugin({
  kind: 'parser',
  name: 'text',
  module: import.meta.url,
  description: 'Plain text, config files and source code, decoded as UTF-8 (or UTF-16 with a BOM); binary files are rejected.',
  options: textParserOptions,
  create: (options) => new TextParser(options.extensions),
});
