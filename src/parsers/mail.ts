/** @module parsers/mail — what the e-mail parsers (`eml`, `msg`) share: their options and the parsers their attachments go to. */
import { z } from 'zod';
import type { Parser } from '../core/types.js';
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
