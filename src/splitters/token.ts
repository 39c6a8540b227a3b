/** @module splitters/token — chunks of at most `max_tokens` cl100k tokens, cut between paragraphs, sentences, lines or words. */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Tiktoken } from 'js-tiktoken/lite';
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { ChunkDraft, Metadata, ParsedPart, Splitter, TokenSplitting } from '../core/types.js';

// ───────────────────────────── counting tokens ─────────────────────────────

/** Pieces up to this length are encoded whole (and cached); longer ones in slices this long. */
const MAX_EXACT_PIECE = 64;
const MAX_CACHE_ENTRIES = 200_000;
/** Parts longer than this (in characters, ~10 ms of work) are split in slices that yield to the event loop. */
export const SLICED_CHARS = 256 * 1024;
/** Work between two yields while splitting in slices. */
const SLICE_MS = 8;
/** Pieces (or boundaries) passed between two checks of the clock. */
const PIECES_PER_STEP = 256;
/** Texts up to this long are counted in one step (well under a millisecond). */
const STEP_CHARS = 4096;
/** A group of documents sent to the engine in one call holds at most about this many characters. */
const GROUP_CHARS = 4 * 1024 * 1024;

/**
 * Counts cl100k tokens fast. tiktoken first cuts text into pieces with a regex (words with
 * their leading space, digit groups, punctuation runs, whitespace) and then byte-pair-encodes
 * each piece on its own, so the count of a text is the sum of its pieces' counts. Natural text
 * repeats its pieces, so counts are cached per piece: this is ~10× faster than
 * `encoder.encode(text).length`, and equal to it.
 *
 * One exception keeps the worst case linear: js-tiktoken's merge is quadratic in the piece
 * length (a 256-character piece takes ~15 ms), so a piece longer than 64 characters — a run
 * of letters with no space or digit, a line of `=`, a row of emoji — is counted in
 * 64-character slices. That can differ from tiktoken's count by a token or so per slice,
 * practically always upwards (a cut can only prevent merges). Such pieces are rare in prose
 * and code. Special tokens such as `<|endoftext|>` are counted as plain text, never rejected.
 */
export class TokenCounter {
  readonly #encoder: Tiktoken;
  readonly #pattern: string;
  readonly #cache = new Map<string, number>();

  constructor(encoder: Tiktoken, pattern: string) {
    this.#encoder = encoder;
    this.#pattern = pattern;
  }

  /** Tokens in `text`. */
  count(text: string): number {
    let n = 0;
    for (const m of text.matchAll(this.pieces())) n += this.pieceTokens(m[0]);
    return n;
  }

  /** `count`, as steps for a splitter running in slices: yields every few hundred pieces. */
  *countSteps(text: string): Generator<void, number> {
    if (text.length <= STEP_CHARS) return this.count(text);
    let n = 0;
    let step = 0;
    for (const m of text.matchAll(this.pieces())) {
      if (++step === PIECES_PER_STEP) {
        step = 0;
        yield;
      }
      n += this.pieceTokens(m[0]);
    }
    return n;
  }

  /** A fresh global regex over the encoding's pieces (fresh: `lastIndex` is per caller). */
  pieces(): RegExp {
    return new RegExp(this.#pattern, 'gu');
  }

  /** Tokens in one piece as the pre-tokenizer cut it. */
  pieceTokens(piece: string): number {
    if (piece.length > MAX_EXACT_PIECE) {
      let n = 0;
      for (let i = 0; i < piece.length; ) {
        const j = sliceEnd(piece, i, piece.length);
        n += this.pieceTokens(piece.slice(i, j));
        i = j;
      }
      return n;
    }
    const cached = this.#cache.get(piece);
    if (cached !== undefined) return cached;
    const n = this.#encoder.encode(piece, [], []).length;
    // Bounded: a long-running server splits millions of documents.
    if (this.#cache.size >= MAX_CACHE_ENTRIES) this.#cache.clear();
    this.#cache.set(ownCopy(piece), n);
    return n;
  }
}

/**
 * `s` as a string of its own. A piece cut out of a document is a view into the whole text (V8
 * slices strings of 13 characters or more without copying), so a cached piece would keep a
 * 31 MB document in memory after it is indexed; concatenating and slicing again copies it.
 */
function ownCopy(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1);
}

/** End of the slice of `s` from `i` that long pieces are counted by: 64 code units, whole surrogate pairs. */
function sliceEnd(s: string, i: number, end: number): number {
  let j = Math.min(end, i + MAX_EXACT_PIECE);
  if (j < end && isHighSurrogate(s.charCodeAt(j - 1))) j--;
  return j;
}

let loadingCl100k: Promise<{ encoder: Tiktoken; pattern: string }> | undefined;

/**
 * The cl100k_base encoding (GPT-3.5/4 and OpenAI embeddings), loaded from the package on first
 * use and shared by the process: building it takes ~0.4 s and ~50 MB, and it never changes.
 * Nothing is fetched over the network.
 */
export function loadCl100k(): Promise<{ encoder: Tiktoken; pattern: string }> {
  loadingCl100k ??= (async () => {
    const [{ Tiktoken }, ranks] = await Promise.all([import('js-tiktoken/lite'), import('js-tiktoken/ranks/cl100k_base')]);
    return { encoder: new Tiktoken(ranks.default), pattern: ranks.default.pat_str };
  })().catch((err: unknown) => {
    loadingCl100k = undefined;
    throw err;
  });
  return loadingCl100k;
}

/** A token counter over cl100k_base (each counter has its own piece cache). */
export async function loadTokenCounter(): Promise<TokenCounter> {
  const { encoder, pattern } = await loadCl100k();
  return new TokenCounter(encoder, pattern);
}

// ───────────────────────────── span arithmetic ─────────────────────────────

/**
 * Token estimates for any span of one text in O(log n), from a single pass over its pieces.
 * A piece belongs to the position of its first non-space character (` word` belongs to `w`).
 * A span that starts at such a word is counted with the word's piece as it tokenizes at the
 * start of a text (`word`, not ` word`, which can differ: ` данные` is 2 tokens, `данные` 3).
 * Estimates can still be a token off at a span's end, where a piece may absorb what follows
 * (`.\n\n`); chunks are therefore always checked with an exact count.
 */
class SpanTokens {
  readonly #text: string;
  readonly #counter: TokenCounter;
  #starts: Int32Array;
  #anchors: Int32Array;
  /** `#cum[k]`: tokens of pieces 0..k-1. */
  #cum: Int32Array;
  #n = 0;
  /** Piece index → tokens of the piece without its leading whitespace, minus tokens with it. */
  readonly #leadDelta = new Map<number, number>();

  constructor(text: string, counter: TokenCounter) {
    this.#text = text;
    this.#counter = counter;
    // Prose has about one piece per 4–5 characters; the arrays grow if needed.
    const cap = Math.max(16, Math.ceil(text.length / 4));
    this.#starts = new Int32Array(cap);
    this.#anchors = new Int32Array(cap);
    this.#cum = new Int32Array(cap + 1);
  }

  /** Counts the pieces of the text (before any estimate is asked); yields now and then. */
  *scan(): Generator<void, void> {
    const text = this.#text;
    const counter = this.#counter;
    let cap = this.#starts.length;
    let total = 0;
    let step = 0;
    for (const m of text.matchAll(counter.pieces())) {
      if (++step === PIECES_PER_STEP) {
        step = 0;
        yield;
      }
      const piece = m[0];
      let lead = 0;
      while (lead < piece.length && isSpace(piece.charCodeAt(lead))) lead++;
      const anchor = m.index + (lead < piece.length ? lead : 0);
      if (piece.length <= MAX_EXACT_PIECE) {
        if (this.#n === cap) this.#grow((cap *= 2));
        this.#starts[this.#n] = m.index;
        this.#anchors[this.#n] = anchor;
        total += counter.pieceTokens(piece);
        this.#cum[++this.#n] = total;
        continue;
      }
      // A long piece is counted by slices (see TokenCounter): each slice is a piece here, so
      // spans inside the piece are estimated too.
      for (let i = 0; i < piece.length; ) {
        const j = sliceEnd(piece, i, piece.length);
        if (this.#n === cap) this.#grow((cap *= 2));
        this.#starts[this.#n] = m.index + i;
        this.#anchors[this.#n] = i === 0 ? anchor : m.index + i;
        total += counter.pieceTokens(piece.slice(i, j));
        this.#cum[++this.#n] = total;
        i = j;
      }
    }
  }

  /** Estimated tokens of `text.slice(a, b)`. */
  tokens(a: number, b: number): number {
    if (b <= a) return 0;
    const first = this.#firstAtOrAfter(a);
    let n = this.#cum[this.#firstAtOrAfter(b)]! - this.#cum[first]!;
    if (first < this.#n && this.#anchors[first] === a && this.#starts[first]! < a) n += this.#startDelta(first);
    return n;
  }

  /** Positions where a piece begins (its anchor) within `(a, b)`, in order. */
  anchorsWithin(a: number, b: number): number[] {
    const out: number[] = [];
    for (let k = this.#firstAtOrAfter(a + 1); k < this.#n && this.#anchors[k]! < b; k++) out.push(this.#anchors[k]!);
    return out;
  }

  #startDelta(k: number): number {
    let delta = this.#leadDelta.get(k);
    if (delta === undefined) {
      const end = k + 1 < this.#n ? this.#starts[k + 1]! : this.#text.length;
      const whole = this.#cum[k + 1]! - this.#cum[k]!;
      // The piece without its leading space is a piece on its own: `pieceTokens` counts it (cached).
      delta = this.#counter.pieceTokens(this.#text.slice(this.#anchors[k]!, end)) - whole;
      this.#leadDelta.set(k, delta);
    }
    return delta;
  }

  #grow(cap: number): void {
    const starts = new Int32Array(cap);
    starts.set(this.#starts);
    const anchors = new Int32Array(cap);
    anchors.set(this.#anchors);
    const cum = new Int32Array(cap + 1);
    cum.set(this.#cum);
    this.#starts = starts;
    this.#anchors = anchors;
    this.#cum = cum;
  }

  #firstAtOrAfter(pos: number): number {
    let lo = 0;
    let hi = this.#n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#anchors[mid]! < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

// ───────────────────────────── the splitter ─────────────────────────────

/**
 * Where a unit may be cut, coarsest first: a blank line, a sentence end, a line end, any
 * space. Every boundary is whitespace — except after a CJK full stop, since those scripts put
 * no space between sentences — so a word is never cut. (The last resort, below these, is to
 * cut inside a "word" longer than a chunk.)
 */
const BOUNDARIES: readonly RegExp[] = [
  /\n[^\S\n]*\n/g,
  /(?<=[.!?…]["'”’)\]]*)\s+|(?<=[。！？])/gu,
  /\n/g,
  /\s+/g,
];
/** A word: if it must be cut, cut it between tokenizer pieces. */
const PIECE_LEVEL = BOUNDARIES.length;
/** Part of a word: if it must be cut, cut it between characters (by exact counts). */
const CHAR_LEVEL = BOUNDARIES.length + 1;

/** A span of the text that is never cut, and the boundary kind to use if it must be after all. */
interface Unit {
  start: number;
  end: number;
  level: number;
}

export interface TokenSplitterOptions {
  maxTokens: number;
  /** A chunk smaller than this at the end of a part is avoided by moving units into it. */
  minTokens: number;
  overlapTokens: number;
}

/**
 * Packs each part's text greedily into chunks of at most `maxTokens` tokens. Units are
 * paragraphs; a paragraph longer than a chunk is cut into sentences, a sentence into lines, a
 * line into words — so a word is never cut, with one exception: a single "word" longer than a
 * chunk (a base64 blob, a minified line) is cut between tokenizer pieces, or between
 * characters if one piece is that long.
 *
 * Chunks never span two parts (pages, sections), keep the original spacing inside and are
 * trimmed at the ends. With `overlapTokens`, each chunk starts by repeating the last words (at
 * most that many tokens) of the previous chunk of the same part. When the last chunk of a part
 * would be smaller than `minTokens`, the chunk before it ends earlier so both are reasonable;
 * a part that is small altogether stays one small chunk.
 *
 * Deterministic, and linear in the text: every piece is counted once (cached), chunk
 * candidates are measured by prefix sums, and only final chunks are re-counted exactly.
 *
 * @example
 * const splitter = new TokenSplitter(await loadTokenCounter(), { maxTokens: 400, minTokens: 50, overlapTokens: 0 });
 * const chunks = splitter.split(parts, { path: 'docs/a.md' });
 */
export class TokenSplitter implements Splitter {
  readonly name = 'token';
  #loaded: TokenCounter | null;
  readonly #opts: TokenSplitterOptions;

  readonly #groups: SplitGroups | null;

  /**
   * With `engine`, `split` runs in the engine, documents split at the same time in one call.
   * `counter` may then be null: the JavaScript counter (about 0.7 s to build) loads on the first
   * text the engine refuses, so a server whose splits all run in the engine never builds it.
   */
  constructor(counter: TokenCounter | null, opts: TokenSplitterOptions, engine?: TokenSplitting | null) {
    // A chunk must hold any single character (up to 4 byte tokens) with room to spare.
    if (!(opts.maxTokens >= 8)) throw new RangeError('maxTokens must be at least 8');
    if (!(opts.overlapTokens >= 0 && opts.overlapTokens < opts.maxTokens)) throw new RangeError('overlapTokens must be at least 0 and smaller than maxTokens');
    if (!counter && !engine) throw new RangeError('a token splitter without the engine needs a counter');
    this.#loaded = counter;
    this.#opts = opts;
    this.#groups = engine ? new SplitGroups(engine, opts) : null;
  }

  /** True when `split` runs in the engine. */
  get native(): boolean {
    return this.#groups !== null;
  }

  /** Chunks of `parts`; a Promise when they are split in the engine or long enough to be split in slices that yield to the event loop. */
  split(parts: ParsedPart[], documentMetadata: Metadata): ChunkDraft[] | Promise<ChunkDraft[]> {
    if (this.#groups) return this.#splitInEngine(this.#groups, parts, documentMetadata);
    return this.splitHere(parts, documentMetadata);
  }

  /** `split` in JavaScript, never in the engine (the reference the engine's boundaries are checked against). */
  splitHere(parts: ParsedPart[], documentMetadata: Metadata): ChunkDraft[] | Promise<ChunkDraft[]> {
    if (!this.#loaded) return this.#load().then(() => this.splitHere(parts, documentMetadata));
    const steps = this.#splitParts(parts, documentMetadata);
    return totalLength(parts) > SLICED_CHARS ? inSlices(steps) : drain(steps);
  }

  async #splitInEngine(groups: SplitGroups, parts: ParsedPart[], documentMetadata: Metadata): Promise<ChunkDraft[]> {
    let bounds: Uint32Array[];
    try {
      bounds = await groups.split(parts.map((p) => p.text));
    } catch {
      // The engine refused this text (a pathological pattern): the same boundaries, here.
      return this.splitHere(parts, documentMetadata);
    }
    const chunks: ChunkDraft[] = [];
    for (let k = 0; k < parts.length; k++) {
      const part = parts[k]!;
      const b = bounds[k]!;
      if (b.length === 0) continue;
      const metadata = { ...documentMetadata, ...part.metadata };
      for (let i = 0; i < b.length; i += 2) chunks.push({ text: part.text.slice(b[i]!, b[i + 1]!), metadata });
    }
    return chunks;
  }

  /** The chunk texts of one text, in order (a splitter made without a counter needs one `split` or `splitTextInSlices` first). */
  splitText(text: string): string[] {
    return drain(this.#splitText(text));
  }

  /** `splitText`, in slices that yield to the event loop (for texts of megabytes). */
  async splitTextInSlices(text: string): Promise<string[]> {
    if (!this.#loaded) await this.#load();
    return inSlices(this.#splitText(text));
  }

  /** `splitText` as steps, for a splitter built on this one that runs its own slices. */
  splitTextSteps(text: string): Generator<void, string[]> {
    return this.#splitText(text);
  }

  *#splitParts(parts: ParsedPart[], documentMetadata: Metadata): Generator<void, ChunkDraft[]> {
    const chunks: ChunkDraft[] = [];
    for (const part of parts) {
      // One metadata object per part: its chunks share it (equal metadata is not copied per chunk).
      const metadata = { ...documentMetadata, ...part.metadata };
      for (const text of yield* this.#splitText(part.text)) chunks.push({ text, metadata });
    }
    return chunks;
  }

  async #load(): Promise<void> {
    this.#loaded ??= await loadTokenCounter();
  }

  get #counter(): TokenCounter {
    if (!this.#loaded) throw new Error('the token counter is not loaded yet: call split or splitTextInSlices first');
    return this.#loaded;
  }

  *#splitText(text: string): Generator<void, string[]> {
    const [start, end] = trim(text, 0, text.length);
    if (start >= end) return [];
    const { maxTokens: max } = this.#opts;
    const spans = new SpanTokens(text, this.#counter);
    yield* spans.scan();
    const units: Unit[] = [];
    yield* this.#collect(text, spans, start, end, 0, max, units);

    const chunks: string[] = [];
    let i = 0;
    let s = units[0]!.start;
    while (i < units.length) {
      yield;
      let j = i;
      while (j + 1 < units.length && !cutGreedily(units[j]!, units[j + 1]!) && spans.tokens(s, units[j + 1]!.end) <= max) j++;
      j = this.#balanceTail(spans, units, i, j);
      // The estimate can be a token or two off at the ends: measure exactly, shrink if needed.
      for (;;) {
        const exact = this.#counter.count(text.slice(s, units[j]!.end));
        if (exact <= max) break;
        if (j > i) j--;
        else if (s < units[i]!.start) s = units[i]!.start;
        else {
          const unit = units[i]!;
          let finer: Unit[] = [];
          yield* this.#cut(text, spans, unit, max - (exact - max), finer);
          if (unit.level >= CHAR_LEVEL && finer.length === 1 && finer[0]!.start === unit.start && finer[0]!.end === unit.end) {
            // Counting made no progress inside this word: halve it (one character always fits, max ≥ 8).
            let mid = (unit.start + unit.end) >>> 1;
            if (isHighSurrogate(text.charCodeAt(mid - 1))) mid++;
            finer = [
              { start: unit.start, end: mid, level: CHAR_LEVEL },
              { start: mid, end: unit.end, level: CHAR_LEVEL },
            ];
          }
          units.splice(i, 1, ...finer);
          j = i;
        }
      }
      chunks.push(text.slice(s, units[j]!.end));
      const prevStart = s;
      i = j + 1;
      if (i < units.length) s = this.#overlapStart(text, spans, units, prevStart, units[j]!.end, i);
    }
    return chunks;
  }

  /** Adds the units of `text[start, end)` to `out`: the span itself if it fits, else its pieces at `level`. */
  *#collect(text: string, spans: SpanTokens, start: number, end: number, level: number, budget: number, out: Unit[]): Generator<void, void> {
    [start, end] = trim(text, start, end);
    if (start >= end) return;
    if (spans.tokens(start, end) <= budget) out.push({ start, end, level });
    else yield* this.#cut(text, spans, { start, end, level }, budget, out);
  }

  /** Cuts a unit at its own boundary level (or finer, inside a word) into units of at most `budget` tokens. */
  *#cut(text: string, spans: SpanTokens, unit: Unit, budget: number, out: Unit[]): Generator<void, void> {
    const { start, end, level } = unit;
    budget = Math.max(1, budget);
    if (level === PIECE_LEVEL) return this.#cutAtPieces(text, spans, start, end, budget, out);
    if (level > PIECE_LEVEL) return this.#cutAtChars(text, start, end, budget, out);
    const boundary = new RegExp(BOUNDARIES[level]!);
    boundary.lastIndex = start;
    let from = start;
    let step = 0;
    // Matched in place (no copy of the unit): the first unit is the whole text.
    for (let m = boundary.exec(text); m !== null && m.index < end; m = boundary.exec(text)) {
      if (m.index + m[0].length > end) break;
      if (++step === PIECES_PER_STEP) {
        step = 0;
        yield;
      }
      yield* this.#collect(text, spans, from, m.index, level + 1, budget, out);
      from = m.index + m[0].length;
      // Past a whole character: a /u regex put back inside a surrogate pair matches at its start again (after `。😀` it looped forever).
      if (m[0].length === 0) boundary.lastIndex += isHighSurrogate(text.charCodeAt(m.index)) && isLowSurrogate(text.charCodeAt(m.index + 1)) ? 2 : 1;
    }
    yield* this.#collect(text, spans, from, end, level + 1, budget, out);
  }

  /** A word longer than a chunk: cut between tokenizer pieces, greedily. */
  #cutAtPieces(text: string, spans: SpanTokens, start: number, end: number, budget: number, out: Unit[]): void {
    const cuts = [...spans.anchorsWithin(start, end), end];
    let s = start;
    let k = 0;
    while (s < end) {
      let best = -1;
      while (k < cuts.length && spans.tokens(s, cuts[k]!) <= budget) best = k++;
      if (best < 0) {
        // One piece alone is longer than a chunk: cut it at characters.
        const pieceEnd = cuts[k] ?? end;
        this.#cutAtChars(text, s, pieceEnd, budget, out);
        s = pieceEnd;
        k++;
      } else {
        out.push({ start: s, end: cuts[best]!, level: CHAR_LEVEL });
        s = cuts[best]!;
      }
    }
  }

  /**
   * Cuts `text[start, end)` between characters into spans of at most `budget` tokens, counted
   * as the counter counts a long piece: slice by slice from the span's start, then by
   * bisection inside the slice that does not fit.
   */
  #cutAtChars(text: string, start: number, end: number, budget: number, out: Unit[]): void {
    let s = start;
    while (s < end) {
      let e = s;
      let used = 0;
      while (e < end) {
        const next = sliceEnd(text, e, end);
        const t = this.#counter.count(text.slice(e, next));
        if (used + t <= budget) {
          used += t;
          e = next;
          continue;
        }
        let lo = 0;
        let hi = next - e - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >>> 1;
          if (used + this.#counter.count(text.slice(e, e + mid)) <= budget) lo = mid;
          else hi = mid - 1;
        }
        e += lo;
        break;
      }
      // At least one character; never half of a surrogate pair.
      if (e === s) e = s + 1;
      if (e < end && isHighSurrogate(text.charCodeAt(e - 1))) e += e - 1 > s ? -1 : 1;
      out.push({ start: s, end: e, level: CHAR_LEVEL });
      s = e;
    }
  }

  /**
   * When what follows units[i..j] is a sliver smaller than `minTokens`, ends this chunk earlier
   * (at the latest unit that leaves at least `minTokens`, and at most a chunk, for the next).
   */
  #balanceTail(spans: SpanTokens, units: Unit[], i: number, j: number): number {
    const min = this.#opts.minTokens;
    if (min <= 0 || j + 1 >= units.length) return j;
    const end = units[units.length - 1]!.end;
    if (spans.tokens(units[j + 1]!.start, end) >= min) return j;
    for (let k = j - 1; k >= i; k--) {
      const rest = spans.tokens(units[k + 1]!.start, end);
      if (rest > this.#opts.maxTokens) break;
      if (rest >= min) return k;
    }
    return j;
  }

  /**
   * Where the chunk after `text[prevStart, prevEnd)` starts: at the next unit, or earlier, at a
   * word start inside the previous chunk, so that at most `overlapTokens` tokens are repeated
   * and the chunk (with its first unit — or all the rest, if that fits) stays within bounds.
   */
  #overlapStart(text: string, spans: SpanTokens, units: Unit[], prevStart: number, prevEnd: number, next: number): number {
    const { overlapTokens, maxTokens } = this.#opts;
    const nextUnit = units[next]!;
    if (overlapTokens <= 0) return nextUnit.start;
    const last = units[units.length - 1]!.end;
    const target = spans.tokens(nextUnit.start, last) <= maxTokens ? last : nextUnit.end;
    let best = nextUnit.start;
    let p = prevEnd;
    for (;;) {
      let w = p;
      while (w > prevStart && !isSpace(text.charCodeAt(w - 1))) w--;
      // The whole previous chunk is never repeated.
      if (w <= prevStart) break;
      if (spans.tokens(w, prevEnd) > overlapTokens || spans.tokens(w, target) > maxTokens) break;
      best = w;
      p = w;
      while (p > prevStart && isSpace(text.charCodeAt(p - 1))) p--;
    }
    return best;
  }
}

/**
 * Gathers the texts of the documents split in one turn of the event loop and sends them to the
 * engine in one call (a group stops at about 4 M characters): one N-API round trip for many
 * small documents instead of one each.
 */
class SplitGroups {
  readonly #engine: TokenSplitting;
  readonly #opts: TokenSplitterOptions;
  #texts: string[] = [];
  #waiting: { from: number; to: number; resolve: (b: Uint32Array[]) => void; reject: (e: unknown) => void }[] = [];
  #chars = 0;
  #scheduled = false;

  constructor(engine: TokenSplitting, opts: TokenSplitterOptions) {
    this.#engine = engine;
    this.#opts = opts;
  }

  /** Per text, its chunks' start and end offsets, packed (`[s0, e0, s1, e1, …]`). */
  split(texts: string[]): Promise<Uint32Array[]> {
    return new Promise((resolve, reject) => {
      const from = this.#texts.length;
      for (const t of texts) {
        this.#texts.push(t);
        this.#chars += t.length;
      }
      this.#waiting.push({ from, to: this.#texts.length, resolve, reject });
      if (this.#chars >= GROUP_CHARS) this.#send();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#send());
      }
    });
  }

  #send(): void {
    const texts = this.#texts;
    const waiting = this.#waiting;
    this.#texts = [];
    this.#waiting = [];
    this.#chars = 0;
    this.#scheduled = false;
    if (waiting.length === 0) return;
    this.#engine.splitTokenChunks(texts, this.#opts).then(
      (packed) => {
        const perText: Uint32Array[] = [];
        let at = 0;
        for (let i = 0; i < texts.length; i++) {
          const n = packed[at]!;
          perText.push(packed.subarray(at + 1, at + 1 + 2 * n));
          at += 1 + 2 * n;
        }
        for (const w of waiting) w.resolve(perText.slice(w.from, w.to));
      },
      (err: unknown) => {
        for (const w of waiting) w.reject(err);
      },
    );
  }
}

/**
 * True for two adjacent parts of one word cut by `#cutAtPieces`/`#cutAtChars`: each part was
 * made as long as the budget allows, so they never fit together — and spans inside a piece
 * cannot be estimated, so they must not be tried.
 */
function cutGreedily(a: Unit, b: Unit): boolean {
  return a.level === CHAR_LEVEL && b.level === CHAR_LEVEL && a.end === b.start;
}

/** Same set as the regex `\s`. */
function isSpace(c: number): boolean {
  return (
    c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff
  );
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** Characters in all of `parts`: many small parts take as long to split as one big one. */
export function totalLength(parts: readonly ParsedPart[]): number {
  let n = 0;
  for (const p of parts) n += p.text.length;
  return n;
}

/** Runs a splitting generator to the end at once. */
export function drain<T>(steps: Generator<void, T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs a splitting generator to the end, yielding to the event loop every few milliseconds. */
export async function inSlices<T>(steps: Generator<void, T>): Promise<T> {
  let since = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - since >= SLICE_MS) {
      await nextTurn();
      since = performance.now();
    }
  }
}

function trim(text: string, start: number, end: number): [number, number] {
  while (start < end && isSpace(text.charCodeAt(start))) start++;
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
  return [start, end];
}

// ───────────────────────────── the plugin ─────────────────────────────

export const DEFAULT_MAX_TOKENS = 400;
export const DEFAULT_MIN_TOKENS = 50;

export const tokenSplitterOptions = z
  .strictObject({
    /** Largest chunk, in cl100k tokens. */
    max_tokens: z.number().int().min(8).max(1_000_000).default(DEFAULT_MAX_TOKENS),
    /** A part's last chunk smaller than this is avoided when possible; default 50 (or max_tokens/4 if smaller). */
    min_tokens: z.number().int().min(0).optional(),
    /** Tokens of the previous chunk's end repeated at the start of the next one. */
    overlap_tokens: z.number().int().min(0).default(0),
  })
  .refine((o) => o.overlap_tokens < o.max_tokens, { message: 'must be smaller than max_tokens', path: ['overlap_tokens'] })
  .refine((o) => o.min_tokens === undefined || o.min_tokens < o.max_tokens, { message: 'must be smaller than max_tokens', path: ['min_tokens'] });

/** The splitter options in code form, defaults applied. */
export function resolveTokenSplitterOptions(options: z.output<typeof tokenSplitterOptions>): TokenSplitterOptions {
  return {
    maxTokens: options.max_tokens,
    minTokens: options.min_tokens ?? Math.min(DEFAULT_MIN_TOKENS, Math.floor(options.max_tokens / 4)),
    overlapTokens: options.overlap_tokens,
  };
}

export const tokenSplitter = definePlugin({
  kind: 'splitter',
  name: 'token',
  description: 'Chunks of at most max_tokens cl100k tokens, cut between paragraphs, then sentences, lines, words; never across parts.',
  options: tokenSplitterOptions,
  create: async (options, ctx) => new TokenSplitter(ctx.tokenSplitting ? null : await loadTokenCounter(), resolveTokenSplitterOptions(options), ctx.tokenSplitting),
});
