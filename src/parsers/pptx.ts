/** @module parsers/pptx — PowerPoint decks with jszip + fast-xml-parser: one part per slide, speaker notes included. */
import { XMLParser } from 'fast-xml-parser';
import JSZip from 'jszip';
import { posix } from 'node:path';
import { z } from 'zod';
import { LivedexError, describeError } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import type { ParsedPart, ParseInput, Parser } from '../core/types.js';
import { checkZip, zipLimitsSchema } from './zip-limits.js';

export const PPTX_EXTENSIONS: readonly string[] = ['.pptx', '.pptm'];

export const pptxParserOptions = z.strictObject({
  extensions: z.array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".pptx"')).default([...PPTX_EXTENSIONS]),
  /** Append each slide's speaker notes under a `Notes:` line. */
  notes: z.boolean().default(true),
  /** Limits on the ZIP container, checked before anything is inflated. */
  zip: zipLimitsSchema.prefault({}),
});
export type PptxParserOptions = z.output<typeof pptxParserOptions>;

/** A node of fast-xml-parser's order-preserving output: `{ tag: children, ':@': attributes }` or `{ '#text': … }`. */
type XmlNode = Record<string, unknown>;

const xml = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  // Runs are split mid-sentence (`Hello ` + `world`): their spaces matter.
  trimValues: false,
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: true,
  htmlEntities: false,
});

/** Placeholders of a notes page that only repeat the slide: its picture, number, header, footer, date. */
const NOTES_CHROME = new Set(['sldImg', 'sldNum', 'hdr', 'ftr', 'dt']);

/**
 * Parses a PowerPoint deck into one part per slide, in presentation order, with `slide`
 * (1-based) and `slides` (the total). A slide's text is every text run grouped by paragraph,
 * tables one row per line with ` | ` between cells; its speaker notes follow a `Notes:` line
 * and the part gets `has_notes: true`.
 *
 * A slide whose XML cannot be read is skipped and named in `skipped_slides`; the rest of the
 * deck is still indexed. Encrypted decks (OLE containers) and zip bombs are refused.
 *
 * @example
 * const parts = await new PptxParser().parse({ key: 'deck.pptx', bytes, extension: '.pptx', metadata: {} });
 * parts[0]?.metadata; // { slide: 1, slides: 4 }
 */
export class PptxParser implements Parser {
  readonly name = 'pptx';
  /** Heading paths and page ranges kept, table rows never cut. */
  readonly splitter = 'structure';
  readonly extensions: readonly string[];
  readonly #opts: PptxParserOptions;

  constructor(options: Partial<PptxParserOptions> = {}) {
    this.#opts = pptxParserOptions.parse(options);
    this.extensions = [...this.#opts.extensions];
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    checkZip(input.bytes, 'PPTX', this.#opts.zip);
    let zip: JSZip;
    try {
      zip = await JSZip.loadAsync(input.bytes, { checkCRC32: false });
    } catch (err) {
      throw new LivedexError('parse_failed', `corrupt PPTX: ${describeError(err)}`, { cause: err });
    }
    const slidePaths = await slideOrder(zip);
    if (slidePaths.length === 0) throw new LivedexError('parse_failed', 'corrupt PPTX: no slides found (ppt/slides/*.xml)');
    const slides = slidePaths.length;
    const parts: ParsedPart[] = [];
    const skipped: number[] = [];
    for (const [i, path] of slidePaths.entries()) {
      input.signal?.throwIfAborted();
      try {
        const body = paragraphs(await readXml(zip, path), false).join('\n');
        const notesPath = this.#opts.notes ? (await relationships(zip, path)).find((r) => r.type.endsWith('/notesSlide'))?.target : undefined;
        const notes = notesPath && zip.file(notesPath) ? paragraphs(await readXml(zip, notesPath), true).join('\n') : '';
        const text = notes.trim() !== '' ? `${body}\n\nNotes:\n${notes}` : body;
        if (text.trim() === '') continue;
        parts.push({ text: text.trim(), metadata: { slide: i + 1, slides, ...(notes.trim() !== '' ? { has_notes: true } : {}) } });
      } catch (err) {
        if (err instanceof Error && err.name === 'AbortError') throw err;
        skipped.push(i + 1);
      }
    }
    if (skipped.length > 0) for (const p of parts) p.metadata.skipped_slides = skipped;
    if (parts.length === 0 && skipped.length > 0) throw new LivedexError('parse_failed', `corrupt PPTX: no slide could be read (${skipped.length} skipped)`);
    return parts;
  }
}

async function readXml(zip: JSZip, path: string): Promise<XmlNode[]> {
  const file = zip.file(path);
  if (!file) throw new LivedexError('parse_failed', `corrupt PPTX: missing part ${path}`);
  return xml.parse(await file.async('string')) as XmlNode[];
}

interface Relationship {
  id: string;
  type: string;
  /** Resolved to a path inside the zip. */
  target: string;
}

async function relationships(zip: JSZip, part: string): Promise<Relationship[]> {
  const relsPath = posix.join(posix.dirname(part), '_rels', `${posix.basename(part)}.rels`);
  if (!zip.file(relsPath)) return [];
  const out: Relationship[] = [];
  walk(await readXml(zip, relsPath), (name, attrs) => {
    if (name !== 'Relationship' || attrs.TargetMode === 'External') return;
    const target = String(attrs.Target ?? '');
    out.push({
      id: String(attrs.Id ?? ''),
      type: String(attrs.Type ?? ''),
      target: target.startsWith('/') ? target.slice(1) : posix.normalize(posix.join(posix.dirname(part), target)),
    });
  });
  return out;
}

/** Slide parts in presentation order (`p:sldIdLst`), else by their number in the file name. */
async function slideOrder(zip: JSZip): Promise<string[]> {
  try {
    const rels = new Map((await relationships(zip, 'ppt/presentation.xml')).map((r) => [r.id, r.target]));
    const ordered: string[] = [];
    walk(await readXml(zip, 'ppt/presentation.xml'), (name, attrs) => {
      const target = name === 'p:sldId' ? rels.get(String(attrs['r:id'] ?? '')) : undefined;
      if (target && zip.file(target)) ordered.push(target);
    });
    if (ordered.length > 0) return ordered;
  } catch {
    // A damaged presentation.xml: fall back to the file names.
  }
  const num = (p: string) => Number(/(\d+)\.xml$/.exec(p)?.[1] ?? 0);
  return Object.keys(zip.files)
    .filter((p) => /^ppt\/slides\/slide\d+\.xml$/.test(p))
    .sort((a, b) => num(a) - num(b));
}

/** Calls `visit` for every element, depth first, in document order. */
// biome-ignore lint/suspicious/noConfusingVoidType: a visitor that never skips returns nothing
function walk(nodes: XmlNode[], visit: (name: string, attrs: Record<string, unknown>, children: XmlNode[]) => void | 'skip'): void {
  for (const node of nodes) {
    for (const [name, value] of Object.entries(node)) {
      if (name === ':@' || name === '#text' || !Array.isArray(value)) continue;
      const attrs = (node[':@'] as Record<string, unknown> | undefined) ?? {};
      if (visit(name, attrs, value as XmlNode[]) === 'skip') continue;
      walk(value as XmlNode[], visit);
    }
  }
}

/** The text of a paragraph `a:p`: its `a:t` runs in order, `a:br` as a line break. */
function paragraphText(children: XmlNode[]): string {
  let text = '';
  walk(children, (name, _attrs, kids) => {
    if (name === 'a:t') {
      for (const k of kids) if (typeof k['#text'] === 'string' || typeof k['#text'] === 'number') text += String(k['#text']);
      return 'skip';
    }
    if (name === 'a:br') text += '\n';
  });
  return text;
}

/** Paragraph texts of a slide (or notes page) in order; tables one row per line. */
function paragraphs(doc: XmlNode[], notesPage: boolean): string[] {
  const lines: string[] = [];
  walk(doc, (name, _attrs, children) => {
    if (notesPage && name === 'p:sp' && NOTES_CHROME.has(placeholderType(children) ?? '')) return 'skip';
    if (name === 'a:tr') {
      const cells: string[] = [];
      walk(children, (n, _a, kids) => {
        if (n !== 'a:tc') return;
        const cell: string[] = [];
        walk(kids, (m, _b, ps) => {
          if (m !== 'a:p') return;
          cell.push(paragraphText(ps));
          return 'skip';
        });
        cells.push(cell.join(' ').replace(/\s+/g, ' ').trim());
        return 'skip';
      });
      if (cells.some((c) => c !== '')) lines.push(cells.join(' | '));
      return 'skip';
    }
    if (name === 'a:p') {
      const text = paragraphText(children);
      if (text.trim() !== '') lines.push(text.trim());
      return 'skip';
    }
  });
  return lines;
}

/** The `type` of a shape's placeholder (`p:nvSpPr/p:nvPr/p:ph`), if it is one. */
function placeholderType(shape: XmlNode[]): string | undefined {
  let type: string | undefined;
  walk(shape, (name, attrs) => {
    if (name === 'p:txBody') return 'skip';
    if (name === 'p:ph') type = String(attrs.type ?? 'body');
  });
  return type;
}

export const pptxParser = definePlugin({
  kind: 'parser',
  name: 'pptx',
  module: import.meta.url,
  description: 'PowerPoint decks: one part per slide with `slide` and `slides`, paragraphs and table rows in order, speaker notes after a `Notes:` line (`has_notes`); unreadable slides are skipped.',
  options: pptxParserOptions,
  create: (options) => new PptxParser(options),
});
