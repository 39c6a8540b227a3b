/** @module parsers/docx — Word documents through mammoth's HTML: sections by heading, tables row by row. */
import mammoth from 'mammoth';
import { z } from 'zod';
import { LivedexError, describeError } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import type { ParsedPart, ParseInput, Parser } from '../core/types.js';
import { HtmlParser } from './html.js';
import { checkZip, zipLimitsSchema, type ZipLimits } from './zip-limits.js';

export const DOCX_EXTENSIONS: readonly string[] = ['.docx', '.docm'];

export const docxParserOptions = z.strictObject({
  extensions: z.array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".docx"')).default([...DOCX_EXTENSIONS]),
  /** Limits on the ZIP container, checked before anything is inflated. */
  zip: zipLimitsSchema.prefault({}),
});
export type DocxParserOptions = z.output<typeof docxParserOptions>;

/**
 * Parses a Word document (OOXML) into one part per heading section, with `headings`, the path
 * of Heading 1…6 titles above it (as for Markdown and HTML). Tables come out one row per line,
 * cells separated by ` | `; footnotes and endnotes follow the body. Images are dropped.
 *
 * Password-protected documents are OLE containers, not ZIPs, and are refused with that
 * reason, as are truncated archives and zip bombs.
 *
 * @example
 * const parts = await new DocxParser().parse({ key: 'a.docx', bytes, extension: '.docx', metadata: {} });
 * parts[1]?.metadata.headings; // ["Scope", "Definitions"]
 */
export class DocxParser implements Parser {
  readonly name = 'docx';
  /** Heading paths and page ranges kept, table rows never cut. */
  readonly splitter = 'structure';
  readonly extensions: readonly string[];
  readonly #zip: ZipLimits;
  readonly #html = new HtmlParser({ extensions: ['.html'] });

  constructor(options: Partial<DocxParserOptions> = {}) {
    const opts = docxParserOptions.parse(options);
    this.extensions = [...opts.extensions];
    this.#zip = opts.zip;
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    checkZip(input.bytes, 'DOCX', this.#zip);
    let html: string;
    try {
      const buffer = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);
      // Images would be inlined as data URIs only to be thrown away again.
      const ignoreImages = mammoth.images.imgElement(async () => ({ src: '' }));
      ({ value: html } = await mammoth.convertToHtml({ buffer }, { convertImage: ignoreImages, styleMap: STYLE_MAP }));
    } catch (err) {
      throw new LivedexError('parse_failed', `corrupt DOCX: ${describeError(err)}`, { cause: err });
    }
    input.signal?.throwIfAborted();
    const parts = await this.#html.parse({ ...input, bytes: new TextEncoder().encode(flattenCellParagraphs(html)), extension: '.html' });
    // The space that ends a cell's last paragraph meets the ` | ` of the next cell.
    return parts.map((p) => ({ text: p.text.replace(/[ \t]+\|[ \t]+/g, ' | '), metadata: { headings: p.metadata.headings ?? [] } }));
  }
}

/** Styles mammoth does not map to headings by default but that read as ones. */
const STYLE_MAP = ["p[style-name='Title'] => h1:fresh", "p[style-name='Subtitle'] => h2:fresh"];

/**
 * Mammoth wraps every cell's text in `<p>`; as blocks they would put each cell on its own
 * line, so inside cells paragraphs become spaces and a table row stays one line.
 */
export function flattenCellParagraphs(html: string): string {
  let depth = 0;
  return html.replace(/<(\/?)(td|th|p)\b[^>]*>/g, (tag, close: string, name: string) => {
    if (name !== 'p') {
      depth += close ? -1 : 1;
      return tag;
    }
    if (depth <= 0) return tag;
    return close ? ' ' : '';
  });
}

export const docxParser = definePlugin({
  kind: 'parser',
  name: 'docx',
  module: import.meta.url,
  description: 'Word documents (mammoth): one part per heading section with `headings`, tables one row per line; encrypted, truncated and zip-bomb files are refused.',
  options: docxParserOptions,
  create: (options) => new DocxParser(options),
});
