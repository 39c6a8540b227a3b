/** @module splitters/structure — chunks that follow the document's structure: heading paths and page ranges kept, small parts merged, table rows never cut. */
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { ChunkDraft, Metadata, ParsedPart, Splitter } from '../core/types.js';
import { drain, inSlices, loadTokenCounter, SLICED_CHARS, TokenSplitter, totalLength, type TokenCounter } from './token.js';

/**
 * Position keys a chunk may span, with the key that names the last position: merging parts of
 * pages 3 and 4 gives `page: 3, page_end: 4`. Parts that differ only in these keys belong
 * together (the same heading path, sheet, message…) and may be merged. Slides are not among
 * them: a slide is a unit a reader looks for (`slide: 2`), so slides are never merged.
 */
export const RANGE_KEYS: Readonly<Record<string, string>> = { page: 'page_end', row: 'row_end' };
const END_KEYS = new Set(Object.values(RANGE_KEYS));

export interface StructureSplitterOptions {
  /** Largest chunk, in cl100k tokens (a single table row longer than this is the one exception). */
  maxTokens: number;
  /** A part's last chunk smaller than this takes units from the chunk before it when possible. */
  minTokens: number;
}

/** A span of a part's text that is packed as a whole. */
interface Unit {
  start: number;
  end: number;
  tokens: number;
}

/** A blank line: where paragraphs (and tables) end. */
const BLANK_LINE = /\n[^\S\n]*\n/g;
/** Lines (or spans) passed between two checks of the clock while splitting in slices. */
const LINES_PER_STEP = 256;

/**
 * True for a line of a table: a Markdown row (`| a | b |`, or `a | b` with its `--|--`
 * delimiter row), or a row as the DOCX, HTML and PPTX parsers write them (cells joined by ` | `).
 */
export function isTableRow(line: string): boolean {
  return /^\s*\|/.test(line) || /\S[^\S\n]\|[^\S\n]*\S/.test(line) || /^\s*:?-+:?\s*\|/.test(line);
}

/**
 * Splits parts along the structure the parser found.
 *
 * - **Merges** consecutive parts that belong together — their metadata equal except for the
 *   positions in {@link RANGE_KEYS} — while they fit in `maxTokens` together: small pages of a
 *   PDF, record groups of one sheet, sections with the same heading path. The chunk keeps the
 *   first part's metadata and says where it ends: `page` is the first page and `page_end` the
 *   last when it spans pages (likewise `row`/`row_end` for records). Parts with
 *   different heading paths are never merged, so every chunk's `headings` is exact.
 * - **Splits** a part larger than `maxTokens` on its own. Prose alone is cut as the token
 *   splitter cuts it (paragraphs, then sentences, lines, words; no tiny last chunk). A part with
 *   tables is cut at blank lines (paragraphs and tables), a paragraph at sentences, lines,
 *   words, a table between rows. A table row — a Markdown `|…|` line, a ` | ` line of the DOCX/HTML/PPTX
 *   parsers, a CSV/XLSX record (every line of a part with `row`) — is never cut: one longer than
 *   `maxTokens` is a chunk of its own, the only chunks over the budget.
 * - Keeps every metadata key of the parts; chunks are trimmed and never empty.
 *
 * @example
 * const splitter = new StructureSplitter(await loadTokenCounter(), { maxTokens: 400, minTokens: 50 });
 * const chunks = splitter.split(parts, { path: 'guide.md' });
 * chunks[0]?.metadata.headings; // ["Guide", "Install"]
 */
export class StructureSplitter implements Splitter {
  readonly name = 'structure';
  readonly #counter: TokenCounter;
  readonly #opts: StructureSplitterOptions;
  readonly #prose: TokenSplitter;
  /** Splits big parts without tables: the token splitter with this splitter's budget and tail rule. */
  readonly #plain: TokenSplitter;

  constructor(counter: TokenCounter, opts: StructureSplitterOptions) {
    if (!(opts.maxTokens >= 8)) throw new RangeError('maxTokens must be at least 8');
    if (!(opts.minTokens >= 0 && opts.minTokens < opts.maxTokens)) throw new RangeError('minTokens must be at least 0 and smaller than maxTokens');
    this.#counter = counter;
    this.#opts = opts;
    this.#prose = new TokenSplitter(counter, { maxTokens: opts.maxTokens, minTokens: 0, overlapTokens: 0 });
    this.#plain = new TokenSplitter(counter, { maxTokens: opts.maxTokens, minTokens: opts.minTokens, overlapTokens: 0 });
  }

  split(parts: ParsedPart[], documentMetadata: Metadata): ChunkDraft[] {
    return drain(this.#splitParts(parts, documentMetadata));
  }

  /** `split`, in slices that yield to the event loop: a document of megabytes takes seconds to split. */
  splitInSlices(parts: ParsedPart[], documentMetadata: Metadata): Promise<ChunkDraft[]> {
    return inSlices(this.#splitParts(parts, documentMetadata));
  }

  *#splitParts(parts: ParsedPart[], documentMetadata: Metadata): Generator<void, ChunkDraft[]> {
    const chunks: ChunkDraft[] = [];
    const max = this.#opts.maxTokens;
    /** Small parts waiting to be merged, trimmed, with the exact tokens of their joined text. */
    let pending: { texts: string[]; parts: ParsedPart[]; group: string; tokens: number } | null = null;
    const flush = () => {
      if (!pending) return;
      chunks.push({ text: pending.texts.join('\n\n'), metadata: mergedMetadata(documentMetadata, pending.parts) });
      pending = null;
    };
    for (const part of parts) {
      yield;
      const text = part.text.trim();
      if (text === '') continue;
      const tokens = yield* this.#counter.countSteps(text);
      if (tokens > max) {
        flush();
        const metadata = { ...documentMetadata, ...part.metadata };
        for (const t of yield* this.#splitPart(text, isRecordPart(part))) chunks.push({ text: t, metadata });
        continue;
      }
      const group = groupOf(part.metadata);
      if (pending && pending.group === group) {
        // Estimate first (a blank line is one token); measure exactly only when it may fit.
        if (pending.tokens + 1 + tokens <= max + 2) {
          const joined = [...pending.texts, text].join('\n\n');
          const exact = this.#counter.count(joined);
          if (exact <= max) {
            pending.texts.push(text);
            pending.parts.push(part);
            pending.tokens = exact;
            continue;
          }
        }
      }
      flush();
      pending = { texts: [text], parts: [part], group, tokens };
    }
    flush();
    return chunks;
  }

  /** The chunk texts of one part's (trimmed) text that is over the budget. */
  *#splitPart(text: string, records: boolean): Generator<void, string[]> {
    // Prose alone is cut exactly as the token splitter cuts it (paragraphs, sentences, lines, words).
    if (!records && !(yield* hasTableRow(text))) return yield* this.#plain.splitTextSteps(text);
    const units = yield* this.#units(text, records);
    const max = this.#opts.maxTokens;
    // Greedy packing by estimate (units plus one token per gap), then exact checks.
    const groups: [number, number][] = [];
    for (let i = 0; i < units.length; ) {
      yield;
      let j = i;
      let estimate = units[i]!.tokens;
      while (j + 1 < units.length && estimate + 1 + units[j + 1]!.tokens <= max) estimate += 1 + units[++j]!.tokens;
      while (j > i && this.#count(text, units, i, j) > max) j--;
      groups.push([i, j]);
      i = j + 1;
    }
    this.#balanceTail(text, units, groups);
    return groups.map(([i, j]) => text.slice(units[i]!.start, units[j]!.end));
  }

  /** Moves units from the second-to-last chunk into a last chunk smaller than `minTokens`, while both stay within bounds. */
  #balanceTail(text: string, units: Unit[], groups: [number, number][]): void {
    const { minTokens: min, maxTokens: max } = this.#opts;
    if (min <= 0 || groups.length < 2) return;
    const last = groups[groups.length - 1]!;
    const prev = groups[groups.length - 2]!;
    while (prev[1] > prev[0] && this.#count(text, units, last[0], last[1]) < min) {
      if (this.#count(text, units, last[0] - 1, last[1]) > max) break;
      prev[1]--;
      last[0]--;
    }
  }

  #count(text: string, units: Unit[], i: number, j: number): number {
    return this.#counter.count(text.slice(units[i]!.start, units[j]!.end));
  }

  /**
   * The units of a text: its blocks (between blank lines) where they fit; a block that does not
   * is cut into runs of table rows and of other lines — rows one unit each, other runs whole if
   * they fit, else cut by the token splitter (sentences, lines, words).
   */
  *#units(text: string, records: boolean): Generator<void, Unit[]> {
    const max = this.#opts.maxTokens;
    const units: Unit[] = [];
    const push = (start: number, end: number, tokens?: number) => {
      while (start < end && /\s/.test(text[start]!)) start++;
      while (end > start && /\s/.test(text[end - 1]!)) end--;
      if (start < end) units.push({ start, end, tokens: tokens ?? this.#counter.count(text.slice(start, end)) });
    };
    for (const [bs, be] of yield* spans(text, BLANK_LINE)) {
      yield;
      const block = text.slice(bs, be);
      if (!/\S/.test(block)) continue;
      const tokens = yield* this.#counter.countSteps(block);
      if (tokens <= max) {
        push(bs, be, undefined);
        continue;
      }
      // Runs of lines of one kind: [start, end, isRow].
      const runs: [number, number, boolean][] = [];
      for (const [ls, le] of yield* spans(block, /\n/g)) {
        const row = records || isTableRow(block.slice(ls, le));
        const lastRun = runs[runs.length - 1];
        if (lastRun && lastRun[2] === row && !row) lastRun[1] = le;
        else runs.push([ls, le, row]);
      }
      for (const [rs, re, row] of runs) {
        yield;
        if (row) {
          push(bs + rs, bs + re);
          continue;
        }
        const run = block.slice(rs, re);
        if ((yield* this.#counter.countSteps(run)) <= max) {
          push(bs + rs, bs + re);
          continue;
        }
        let from = 0;
        for (const piece of yield* this.#prose.splitTextSteps(run)) {
          const at = run.indexOf(piece, from);
          push(bs + rs + at, bs + rs + at + piece.length);
          from = at + piece.length;
        }
      }
    }
    return units;
  }
}

/** True when a line of `text` is a table row; yields every few hundred lines. */
function* hasTableRow(text: string): Generator<void, boolean> {
  let from = 0;
  let step = 0;
  while (from <= text.length) {
    let to = text.indexOf('\n', from);
    if (to < 0) to = text.length;
    if (isTableRow(text.slice(from, to))) return true;
    from = to + 1;
    if (++step === LINES_PER_STEP) {
      step = 0;
      yield;
    }
  }
  return false;
}

/** The spans of `text` between matches of `separator` (a global regex); yields every few hundred. */
function* spans(text: string, separator: RegExp): Generator<void, [number, number][]> {
  const out: [number, number][] = [];
  let from = 0;
  for (const m of text.matchAll(separator)) {
    out.push([from, m.index]);
    from = m.index + m[0].length;
    if (out.length % LINES_PER_STEP === 0) yield;
  }
  out.push([from, text.length]);
  return out;
}

/** A part of table records (CSV, XLSX): each of its lines is a record. */
function isRecordPart(part: ParsedPart): boolean {
  return typeof part.metadata.row === 'number';
}

/** What parts must share to be merged: their metadata without positions, in a canonical form. */
function groupOf(metadata: Metadata): string {
  const rest = Object.entries(metadata).filter(([k]) => !(k in RANGE_KEYS) && !END_KEYS.has(k));
  rest.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(rest);
}

/** The metadata of a chunk made of `parts`: the first part's, with each position's range. */
function mergedMetadata(documentMetadata: Metadata, parts: ParsedPart[]): Metadata {
  const first = parts[0]!.metadata;
  const metadata: Metadata = { ...documentMetadata, ...first };
  if (parts.length === 1) return metadata;
  const last = parts[parts.length - 1]!.metadata;
  for (const [key, endKey] of Object.entries(RANGE_KEYS)) {
    if (!(key in first)) continue;
    const end = last[endKey] ?? last[key];
    if (end !== undefined && (end !== first[key] || endKey in first)) metadata[endKey] = end;
  }
  return metadata;
}

// ───────────────────────────── the plugin ─────────────────────────────

export const structureSplitterOptions = z
  .strictObject({
    /** Largest chunk, in cl100k tokens. */
    max_tokens: z.number().int().min(8).max(1_000_000).default(400),
    /** A big part's last chunk smaller than this is avoided when possible; default 50 (or max_tokens/4 if smaller). */
    min_tokens: z.number().int().min(0).optional(),
  })
  .refine((o) => o.min_tokens === undefined || o.min_tokens < o.max_tokens, { message: 'must be smaller than max_tokens', path: ['min_tokens'] });

/** The splitter options in code form, defaults applied. */
export function resolveStructureSplitterOptions(options: z.output<typeof structureSplitterOptions>): StructureSplitterOptions {
  return { maxTokens: options.max_tokens, minTokens: options.min_tokens ?? Math.min(50, Math.floor(options.max_tokens / 4)) };
}

export const structureSplitter = definePlugin({
  kind: 'splitter',
  name: 'structure',
  description:
    'Structure-aware chunks of at most max_tokens cl100k tokens: heading paths and page ranges (page, page_end) kept, small parts of one section merged, big ones cut at paragraphs and sentences, table rows never cut.',
  options: structureSplitterOptions,
  create: async (options): Promise<Splitter> => {
    const splitter = new StructureSplitter(await loadTokenCounter(), resolveStructureSplitterOptions(options));
    // A large document is split in slices, so queries are answered meanwhile.
    return {
      name: splitter.name,
      split: (parts, metadata) => (totalLength(parts) > SLICED_CHARS ? splitter.splitInSlices(parts, metadata) : splitter.split(parts, metadata)),
    };
  },
});
