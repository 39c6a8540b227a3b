/** @module parsers/mail — what the e-mail parsers (`eml`, `msg`) share: their options and the parsers their attachments go to. */
import { z } from 'zod';
import { describeError, LivedexError } from '../core/errors.js';
import type { AttachmentParsers, Metadata, ParsedPart, ParseInput, Parser } from '../core/types.js';
import { CsvParser } from './csv.js';
import { DocxParser } from './docx.js';
import { HtmlParser } from './html.js';
import { JsonParser } from './json.js';
import { MarkdownParser } from './markdown.js';
import { PdfParser } from './pdf.js';
import { PptxParser } from './pptx.js';
import { TextParser } from './text.js';
import { XlsxParser } from './xlsx.js';

/** The options of a mail parser claiming `defaults` (e.g. `['.eml']`). */
export function mailParserOptions(defaults: readonly string[]) {
  return z.strictObject({
    extensions: z
      .array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, `an extension is lower-case and starts with a dot, like "${defaults[0]}"`))
      .default([...defaults]),
    /** Parse attachments with the parser of their file type (PDF, Office, text, messages…). */
    attachments: z.boolean().default(true),
    /** How deep messages attached to messages are followed. */
    max_depth: z.number().int().min(0).max(10).default(3),
  });
}

/** The document parsers attachments go to, by extension (the first claim of an extension wins). */
export function documentParsersByExtension(): Map<string, Parser> {
  const parsers: Parser[] = [
    new PdfParser(), new DocxParser(), new PptxParser(), new XlsxParser(), new CsvParser(), new JsonParser(),
    new HtmlParser(), new MarkdownParser(), new TextParser(),
  ];
  const byExtension = new Map<string, Parser>();
  for (const p of parsers) for (const ext of p.extensions) if (!byExtension.has(ext)) byExtension.set(ext, p);
  return byExtension;
}

/** The extensions of attached messages (an `.eml` may carry a `.msg`, and the other way round). */
const MESSAGE_EXTENSIONS: readonly string[] = ['.eml', '.msg'];

/**
 * Where an attachment of `extension` goes, for a mail parser reading a message `depth` levels
 * down. An attached message is read one level down, within `maxDepth`: one of the parser's own
 * kind by `self` (so its `max_depth` holds all the way down), the other kind by the host's
 * parser (`input.parseAttachment`: the configured parsers). Other files go to the host's parser
 * of their type. Without a host (a parser used on its own) they go to the default document
 * parsers, and a message of the other kind is not read.
 */
export function attachmentParser(
  extension: string,
  at: { depth: number; maxDepth: number; host: AttachmentParsers | undefined; own: string; self: (input: ParseInput) => Promise<ParsedPart[]>; defaults: () => Map<string, Parser> },
): MailAttachment['parse'] {
  const { depth, maxDepth, host } = at;
  const down = (parse: ((input: ParseInput) => Promise<ParsedPart[]>) | undefined, level: number): MailAttachment['parse'] =>
    parse && ((input) => parse({ ...input, depth: level, ...(host ? { parseAttachment: host } : {}) }));
  if (MESSAGE_EXTENSIONS.includes(extension)) {
    const parse = down(extension === at.own ? at.self : host?.(extension), depth + 1);
    return (
      parse &&
      ((input) => {
        if (depth + 1 > maxDepth) throw new LivedexError('parse_failed', `attached messages nested deeper than ${maxDepth}`);
        return parse(input);
      })
    );
  }
  const parser = host ? host(extension) : at.defaults().get(extension);
  return down(parser && (typeof parser === 'function' ? parser : (input) => parser.parse(input)), depth + 1);
}

/** One attachment of a message, as a mail parser finds it. */
export interface MailAttachment {
  filename: string;
  /** The type it is parsed as (an attached message's own, whatever its name). */
  extension: string;
  bytes: () => Uint8Array;
  /**
   * Parses it (an attached message one level down, another file by its type), or undefined when
   * there is nothing to read in it (images, archives, executables: not an error).
   */
  parse: ((input: ParseInput) => Promise<ParsedPart[]>) | undefined;
}

/**
 * Parses the attachments of a message and completes its parts: each attachment part carries the
 * message's `headers` and `attachment` (its file name); one that fails is skipped and named in
 * `attachment_errors` on every part; a message with no part at all gets an `(empty message)` one.
 */
export async function withAttachments(input: ParseInput, headers: Metadata, parts: ParsedPart[], attachments: Iterable<MailAttachment>): Promise<ParsedPart[]> {
  const errors: string[] = [];
  for (const att of attachments) {
    input.signal?.throwIfAborted();
    if (!att.parse) continue;
    try {
      const attParts = await att.parse({ key: `${input.key}#${att.filename}`, bytes: att.bytes(), extension: att.extension, metadata: {}, ...(input.signal ? { signal: input.signal } : {}) });
      for (const p of attParts) parts.push({ text: p.text, metadata: { ...p.metadata, ...headers, attachment: att.filename } });
    } catch (err) {
      if (err instanceof Error && err.name === 'AbortError') throw err;
      errors.push(`${att.filename}: ${describeError(err)}`);
    }
  }
  if (parts.length === 0) parts.push({ text: '(empty message)', metadata: { ...headers } });
  if (errors.length > 0) for (const p of parts) p.metadata.attachment_errors = errors;
  return parts;
}
