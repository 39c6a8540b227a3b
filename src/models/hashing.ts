/** @module models/hashing — the offline default embedder: signed feature hashing of words and word pairs. */
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { Embedder } from '../core/types.js';

/**
 * Version of the algorithm, part of `modelKey`: bump it whenever a change would move any
 * vector (tokenizing, stemming, hashing, weighting), so stored vectors are recomputed.
 */
const ALGORITHM_VERSION = 2;
export const DEFAULT_DIMENSIONS = 384;
/** Characters embedded between two yields to the event loop (about 10–20 ms of work). */
const YIELD_EVERY_CHARS = 512 * 1024;

export const hashingEmbedderOptions = z.strictObject({
  /** Length of the vectors; more dimensions mean fewer collisions between features. */
  dimensions: z.number().int().min(16).max(8192).default(DEFAULT_DIMENSIONS),
});

/**
 * Turns text into vectors with no model and no network: every word (unigram) and every pair of
 * adjacent words (bigram, so word order matters) is hashed to one of `dimensions` buckets and
 * added with a hashed sign, weighted `1 + ln(tf)`, then the vector is L2-normalized.
 *
 * Texts that share words (and phrases) get close vectors; synonyms do not — this is lexical
 * similarity only, a complement to BM25 rather than a semantic model.
 *
 * - Words are runs of Unicode letters, digits and marks, lower-cased. Han and kana characters
 *   (scripts written without spaces) are single-character words, so their pairs are character
 *   bigrams, the usual lexical unit for CJK.
 * - English plurals are folded with the "S-stemmer" (Harman, 1991: `-ies` → `-y`, `-es` → `-e`,
 *   `-s` → ``, with its exceptions), on ASCII words only. It is conservative (never merges
 *   unrelated words) and language-safe, unlike a full Porter stemmer, and it makes
 *   `documents` meet `document`, which matters most for short queries.
 * - English stop words (`the`, `of`, `is`…) add no feature and do not break a pair: in a
 *   vector with no IDF they would otherwise outweigh the words that matter (SciFact
 *   nDCG@10 of the vector leg: 0.21 with them, 0.30 without, at 384 dimensions).
 * - A text with no word at all gets a fixed unit vector (a reserved feature), never a zero
 *   vector: cosine with a zero vector is undefined (NaN). The same fallback covers the
 *   vanishingly rare case where all features cancel out.
 *
 * Hashing is FNV-1a (32-bit, over UTF-16 code units) finished with murmur3's avalanche step.
 *
 * @example
 * const embedder = new HashingEmbedder({ dimensions: 384 });
 * const [v] = await embedder.embed(['live document index']);
 */
export class HashingEmbedder implements Embedder {
  readonly name = 'hashing';
  readonly lexical = true;
  readonly dimensions: number;
  readonly modelKey: string;
  /** Scratch space for the features of the text being embedded (grows as needed). */
  #features = new Uint32Array(1024);

  constructor(opts: { dimensions?: number } = {}) {
    const dimensions = opts.dimensions ?? DEFAULT_DIMENSIONS;
    if (!Number.isInteger(dimensions) || dimensions < 1) throw new RangeError('dimensions must be a positive integer');
    this.dimensions = dimensions;
    this.modelKey = `hashing:v${ALGORITHM_VERSION}:${dimensions}`;
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    signal?.throwIfAborted();
    const out: Float32Array[] = [];
    let sinceYield = 0;
    for (const text of texts) {
      out.push(this.embedText(text));
      sinceYield += text.length;
      // CPU work on the event loop: let queries and timers through now and then.
      if (sinceYield >= YIELD_EVERY_CHARS) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
        signal?.throwIfAborted();
      }
    }
    return out;
  }

  async embedQuery(text: string, signal?: AbortSignal): Promise<Float32Array> {
    signal?.throwIfAborted();
    return this.embedText(text);
  }

  /** The vector of one text, synchronously. */
  embedText(text: string): Float32Array {
    // Features (unigram and bigram hashes) are collected, sorted and counted in runs: much
    // faster than a Map, and the buffer is reused from text to text.
    let features = this.#features;
    let k = 0;
    let prev = -1;
    scanWords(text.toLowerCase(), (s, start, end, suffix) => {
      const h = hashWord(s, start, end, suffix);
      // A stop word adds no feature, and the pair around it joins its neighbours.
      if (STOP_WORD_HASHES.has(h)) return;
      if (k + 2 > features.length) {
        const grown = new Uint32Array(features.length * 2);
        grown.set(features);
        features = this.#features = grown;
      }
      features[k++] = fmix32(h);
      if (prev !== -1) features[k++] = bigramFeature(prev, h);
      prev = h;
    });

    if (k === 0) return this.#emptyVector();
    const vector = new Float32Array(this.dimensions);
    const sorted = features.subarray(0, k).sort();
    for (let i = 0; i < k; ) {
      const feature = sorted[i]!;
      let j = i + 1;
      while (j < k && sorted[j] === feature) j++;
      const weight = j - i === 1 ? 1 : 1 + Math.log(j - i);
      const bucket = feature % this.dimensions;
      vector[bucket] = vector[bucket]! + signOf(feature) * weight;
      i = j;
    }
    let norm = 0;
    for (let i = 0; i < vector.length; i++) norm += vector[i]! * vector[i]!;
    if (!(norm > 0)) return this.#emptyVector();
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < vector.length; i++) vector[i] = vector[i]! * scale;
    return vector;
  }

  #emptyVector(): Float32Array {
    const vector = new Float32Array(this.dimensions);
    vector[EMPTY_FEATURE % this.dimensions] = signOf(EMPTY_FEATURE);
    return vector;
  }
}

/** The feature of a text without words: a hash no word can produce (words have no NUL). */
const EMPTY_FEATURE = fmix32(fnv1a('\u0000empty'));

/** Character classes for the scanner. */
const OTHER = 1;
const WORD = 2;
const CJK = 3;
/** Class of each BMP code unit, filled on first sight (a memo of the regexes below). */
const classes = new Uint8Array(0x10000);
const WORD_CHAR = /^[\p{L}\p{N}\p{M}]$/u;
/**
 * Han (with the compatibility and extension blocks), hiragana, katakana — scripts written
 * without spaces — by script extension, so that the shared `ー` and `々` count too.
 */
const CJK_CHAR = /^[\p{Script_Extensions=Han}\p{Script_Extensions=Hiragana}\p{Script_Extensions=Katakana}]$/u;

function classify(ch: string): number {
  return !WORD_CHAR.test(ch) ? OTHER : CJK_CHAR.test(ch) ? CJK : WORD;
}

for (let c = 0; c < 128; c++) classes[c] = (c >= 48 && c <= 57) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) ? WORD : OTHER;

/**
 * Calls `onWord(s, start, end, suffix)` for each word of the lower-cased text `s`, in order:
 * the word is `s.slice(start, end) + suffix` (the suffix is the `y` of a stemmed `-ies`).
 * Words are runs of letters, digits and marks; each Han or kana character is a word of its
 * own; ASCII words have their plural folded.
 */
function scanWords(s: string, onWord: (s: string, start: number, end: number, suffix: string) => void): void {
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    let cls = c < 0x80 ? classes[c]! : classOfAt(s, i);
    let width = 1;
    if (cls < 0) {
      cls = -cls;
      width = 2;
    }
    if (cls === OTHER) {
      i += width;
      continue;
    }
    if (cls === CJK) {
      onWord(s, i, i + width, '');
      i += width;
      continue;
    }
    const start = i;
    let ascii = true;
    i += width;
    while (i < n) {
      const d = s.charCodeAt(i);
      if (d < 0x80) {
        if (classes[d] !== WORD) break;
        i++;
        continue;
      }
      let dc = classOfAt(s, i);
      let w = 1;
      if (dc < 0) {
        dc = -dc;
        w = 2;
      }
      if (dc !== WORD) break;
      ascii = false;
      i += w;
    }
    if (c >= 0x80) ascii = false;
    if (ascii && i - start > 3 && s.charCodeAt(i - 1) === 115 /* s */) stemPlural(s, start, i, onWord);
    else onWord(s, start, i, '');
  }
}

/** The class of the character at `i`; negative when it is a surrogate pair (two code units). */
function classOfAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return -classify(s.slice(i, i + 2));
  }
  let cls = classes[c]!;
  if (cls === 0) cls = classes[c] = classify(String.fromCharCode(c));
  return cls;
}

/**
 * Harman's S-stemmer on an ASCII word ending in `s` of more than three letters: `-ies` → `-y`
 * (not `-eies`, `-aies`), `-es` → `-e` (not `-aes`, `-ees`, `-oes`), `-s` → `` (not `-us`, `-ss`).
 */
function stemPlural(s: string, start: number, end: number, onWord: (s: string, start: number, end: number, suffix: string) => void): void {
  const c2 = s.charCodeAt(end - 2);
  const c3 = s.charCodeAt(end - 3);
  const c4 = end - start >= 4 ? s.charCodeAt(end - 4) : 0;
  const E = 101;
  if (c2 === E && c3 === 105 /* i */ && c4 !== E && c4 !== 97 /* a */) {
    onWord(s, start, end - 3, 'y');
    return;
  }
  if (c2 === E && c3 !== 97 && c3 !== E && c3 !== 111 /* o */) {
    onWord(s, start, end - 1, '');
    return;
  }
  if (c2 === 117 /* u */ || c2 === 115 /* s */) {
    onWord(s, start, end, '');
    return;
  }
  onWord(s, start, end - 1, '');
}

/** The words of a text as the embedder sees them (for tests and debugging). */
export function words(text: string): string[] {
  const out: string[] = [];
  scanWords(text.toLowerCase(), (s, start, end, suffix) => out.push(s.slice(start, end) + suffix));
  return out;
}

/** FNV-1a of `s.slice(start, end) + suffix`, without building that string. */
function hashWord(s: string, start: number, end: number, suffix: string): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  for (let i = 0; i < suffix.length; i++) h = Math.imul(h ^ suffix.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** FNV-1a, 32 bits, over UTF-16 code units. */
/**
 * Common English function words, hashed as the scanner sees them (after the plural fold),
 * so the check per word is one set lookup.
 */
const STOP_WORD_HASHES = new Set<number>();
for (const word of (
  'a about above after again all also an and any are as at be been before below between both but by can could ' +
  'did do does down during each for from further had has have he her here his how i if in into is it its just ' +
  'may might more most no nor not now of off on once only or other our out over own same she should so some ' +
  'such than that the their them then there these they this those through to too under until up very was we ' +
  'were what when where which while who whom why will with would you your'
).split(' ')) {
  scanWords(word, (s, start, end, suffix) => STOP_WORD_HASHES.add(hashWord(s, start, end, suffix)));
}

export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's finalizer: spreads every input bit over the output (FNV's low bits are weak). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A pair of word hashes, order-sensitive (`a b` ≠ `b a`), distinct from unigram features. */
function bigramFeature(first: number, second: number): number {
  return fmix32((Math.imul(first, 0x9e3779b1) ^ second) + 0x7f4a7c15);
}

/** The sign of a feature, from a second hash so it is independent of the bucket. */
function signOf(feature: number): number {
  return fmix32(feature ^ 0x5bd1e995) & 1 ? -1 : 1;
}

/** Whether this process has logged the "lexical only" notice: worth saying once, not per instance or restart of the index. */
let lexicalNoticeLogged = false;

export const hashingEmbedder = definePlugin({
  kind: 'embedder',
  name: 'hashing',
  description: 'Offline, deterministic lexical vectors (feature hashing of words and word pairs); no semantic similarity.',
  options: hashingEmbedderOptions,
  create: (options, ctx) => {
    const embedder = new HashingEmbedder({ dimensions: options.dimensions });
    if (!lexicalNoticeLogged) {
      lexicalNoticeLogged = true;
      ctx.logger.info(
        'embedder "hashing" gives lexical vectors only (shared words, not shared meaning); for semantic search use ' +
          '`--embedder openai` (an OpenAI-compatible API: OPENAI_BASE_URL, OPENAI_API_KEY) or `--embedder local --embedding-model <dir>` (an ONNX model directory, offline)',
        { modelKey: embedder.modelKey },
      );
    }
    return embedder;
  },
});
