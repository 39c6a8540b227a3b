/** @module parsers/pdf — PDF text layer per page with pdfjs-dist: reading order by position, page numbers in metadata. */
import { z } from 'zod';
import { LivedexError, describeError } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import type { ParsedPart, ParseInput, Parser } from '../core/types.js';

export const PDF_EXTENSIONS: readonly string[] = ['.pdf'];

export const pdfParserOptions = z.strictObject({
  extensions: z.array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".pdf"')).default([...PDF_EXTENSIONS]),
  /** A PDF with more pages is refused: parsing it would hold a worker for minutes. */
  max_pages: z.number().int().positive().default(2000),
  /** Join a word cut by a hyphen at the end of a line (`retrie-\nval` → `retrieval`). */
  dehyphenate: z.boolean().default(true),
});
export type PdfParserOptions = z.output<typeof pdfParserOptions>;

/** The part of pdfjs a text extraction needs; loaded on first use so other formats do not pay for it. */
type PdfJs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');
let pdfjsModule: Promise<PdfJs> | undefined;
const loadPdfJs = (): Promise<PdfJs> => (pdfjsModule ??= import('pdfjs-dist/legacy/build/pdf.mjs'));

/** Folders of data files pdfjs reads for the 14 standard fonts and CJK character maps. */
function pdfjsDataDirs(): { standardFontDataUrl: string; cMapUrl: string } {
  const build = import.meta.resolve('pdfjs-dist/legacy/build/pdf.mjs');
  return {
    standardFontDataUrl: new URL('../../standard_fonts/', build).pathname,
    cMapUrl: new URL('../../cmaps/', build).pathname,
  };
}

/** One text run as pdfjs reports it. */
interface TextRun {
  str: string;
  transform: number[];
  width: number;
  height: number;
  hasEOL: boolean;
}

/**
 * Parses the text layer of a PDF into one part per page, with metadata `page` (1-based) and
 * `pages` (the total). Runs are kept in content order (which follows columns in most
 * producers) and joined by position: a new line where the baseline moves, a space where there
 * is a horizontal gap.
 *
 * Pages without text (scans, figures) give no part; their numbers go to every part's
 * `pages_without_text`. A PDF where no page has text is refused: OCR is not configured. A PDF
 * that needs a password to open is refused; one with only an owner password (copy/print
 * restrictions) is parsed.
 *
 * @example
 * const parts = await new PdfParser().parse({ key: 'a.pdf', bytes, extension: '.pdf', metadata: {} });
 * parts[0]?.metadata.page; // 1
 */
export class PdfParser implements Parser {
  readonly name = 'pdf';
  /** Heading paths and page ranges kept, table rows never cut. */
  readonly splitter = 'structure';
  readonly extensions: readonly string[];
  readonly #opts: PdfParserOptions;

  constructor(options: Partial<PdfParserOptions> = {}) {
    this.#opts = pdfParserOptions.parse(options);
    this.extensions = [...this.#opts.extensions];
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    assertPdfHeader(input.bytes);
    const pdfjs = await loadPdfJs();
    const task = pdfjs.getDocument({
      // pdfjs may take ownership of the buffer; the caller keeps its bytes.
      data: new Uint8Array(input.bytes),
      ...pdfjsDataDirs(),
      cMapPacked: true,
      disableFontFace: true,
      useSystemFonts: false,
      isEvalSupported: false,
      stopAtErrors: false,
      verbosity: pdfjs.VerbosityLevel.ERRORS,
    });
    let doc: Awaited<typeof task.promise>;
    try {
      doc = await task.promise;
    } catch (err) {
      await task.destroy().catch(() => {});
      throw openError(err);
    }
    try {
      const pages = doc.numPages;
      if (pages > this.#opts.max_pages) {
        throw new LivedexError('parse_failed', `PDF has ${pages} pages, over the limit of ${this.#opts.max_pages} (parser option max_pages)`);
      }
      const parts: ParsedPart[] = [];
      const withoutText: number[] = [];
      for (let n = 1; n <= pages; n++) {
        input.signal?.throwIfAborted();
        const page = await doc.getPage(n);
        const content = await page.getTextContent();
        page.cleanup();
        const runs = content.items.filter((i) => 'str' in i) as TextRun[];
        let text = joinRuns(runs);
        if (this.#opts.dehyphenate) text = dehyphenate(text);
        if (/\S/.test(text)) parts.push({ text, metadata: { page: n, pages } });
        else withoutText.push(n);
      }
      if (parts.length === 0) {
        throw new LivedexError('parse_failed', 'no text layer (scanned PDF?): OCR is not configured');
      }
      if (withoutText.length > 0) for (const p of parts) p.metadata.pages_without_text = withoutText;
      return parts;
    } finally {
      await doc.destroy().catch(() => {});
    }
  }
}

function assertPdfHeader(bytes: Uint8Array): void {
  if (bytes.length === 0) throw new LivedexError('parse_failed', 'not a valid PDF (empty file)');
  // The header may follow some junk, within the first KiB (as readers tolerate).
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 1024)).toString('latin1');
  if (!head.includes('%PDF-')) throw new LivedexError('parse_failed', 'not a valid PDF (no %PDF- header in the first 1024 bytes)');
}

function openError(err: unknown): LivedexError {
  const name = err instanceof Error ? err.name : '';
  if (name === 'PasswordException') return new LivedexError('parse_failed', 'encrypted PDF: needs a password', { cause: err });
  if (name === 'InvalidPDFException') return new LivedexError('parse_failed', `not a valid PDF (${describeError(err)})`, { cause: err });
  return new LivedexError('parse_failed', `unreadable PDF (${describeError(err)})`, { cause: err });
}

/** Joins text runs by their positions: a new line when the baseline moves, a space at a gap. */
export function joinRuns(runs: readonly TextRun[]): string {
  let out = '';
  let prev: { x: number; y: number; end: number; size: number } | null = null;
  for (const run of runs) {
    const x = run.transform[4] ?? 0;
    const y = run.transform[5] ?? 0;
    const size = Math.abs(run.transform[3] ?? 0) || run.height || 10;
    if (run.str === '') {
      if (run.hasEOL && prev) out += '\n';
      if (run.hasEOL) prev = null;
      continue;
    }
    if (prev) {
      const last = out.charAt(out.length - 1);
      if (Math.abs(y - prev.y) > Math.min(size, prev.size) * 0.5) {
        if (last !== '\n') out += '\n';
      } else if (x - prev.end > Math.min(size, prev.size) * 0.15 && last !== ' ' && last !== '\n' && !run.str.startsWith(' ')) {
        out += ' ';
      }
    }
    out += run.str;
    prev = { x, y, end: x + run.width, size };
    if (run.hasEOL) {
      out += '\n';
      prev = null;
    }
  }
  return out.replace(/[ \t]+\n/g, '\n').replace(/\n{3,}/g, '\n\n').trim();
}

/** `retrie-\nval` → `retrieval\n`: a letter, a hyphen at the end of the line, a lower-case letter next. */
function dehyphenate(text: string): string {
  return text.replace(/(\p{L})-\n(\p{Ll}[\p{L}]*)([.,;:!?)]?) ?/gu, '$1$2$3\n');
}

export const pdfParser = definePlugin({
  kind: 'parser',
  name: 'pdf',
  module: import.meta.url,
  description: 'PDF text layer (pdfjs-dist), one part per page with `page` and `pages`; pages without text are listed in `pages_without_text`, encrypted PDFs that need a password are refused.',
  options: pdfParserOptions,
  create: (options) => new PdfParser(options),
});
