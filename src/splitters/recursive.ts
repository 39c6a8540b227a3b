/** @module splitters/recursive — LangChain's recursive character splitter, with length measured in cl100k tokens. */
import { RecursiveCharacterTextSplitter, SupportedTextSplitterLanguages } from '@langchain/textsplitters';
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { ChunkDraft, Metadata, ParsedPart, Splitter } from '../core/types.js';
import { loadTokenCounter, TokenSplitter, type TokenCounter } from './token.js';

/**
 * The default separators: LangChain's, without its last resort `""` (cutting between UTF-16
 * code units, which can split an emoji in two). A "word" longer than a chunk is cut by the
 * token splitter instead, between tokenizer pieces (see `WholeWordSplitter`).
 */
export const DEFAULT_SEPARATORS: readonly string[] = ['\n\n', '\n', ' '];

/** Tokens LangChain's budget is kept under `chunkSize` (see the constructor). */
const SLACK_TOKENS = 2;

export interface RecursiveSplitterOptions {
  /** Largest chunk, in cl100k tokens. */
  chunkSize: number;
  /** Tokens of the previous chunk repeated at the start of the next one (whole separator-delimited pieces). */
  chunkOverlap: number;
  /** Tried in order: the text is cut at the first separator it contains, pieces too long are cut at the next. */
  separators: readonly string[];
}

/**
 * Splits each part with LangChain's `RecursiveCharacterTextSplitter`: the text is cut at the
 * first separator it contains (blank lines by default), pieces still longer than `chunkSize`
 * tokens at the next one (lines, then spaces), and the pieces are merged back greedily up to
 * `chunkSize` tokens, the last ones repeated up to `chunkOverlap` tokens.
 *
 * Guarantees on top of LangChain: no chunk is over `chunkSize` tokens (one that is — a piece with
 * no separator left — is cut by the token splitter), no chunk is empty, and chunks never span
 * two parts. LangChain keeps each separator at the start of the piece that follows it and trims
 * chunks, so chunk texts are slices of the part text.
 *
 * @example
 * const splitter = new RecursiveSplitter(await loadTokenCounter(), { chunkSize: 400, chunkOverlap: 40, separators: DEFAULT_SEPARATORS });
 * const chunks = await splitter.split(parts, { path: 'notes.txt' });
 */
export class RecursiveSplitter implements Splitter {
  readonly name = 'recursive';
  readonly #counter: TokenCounter;
  readonly #size: number;
  readonly #langchain: RecursiveCharacterTextSplitter;
  readonly #fallback: TokenSplitter;

  constructor(counter: TokenCounter, opts: RecursiveSplitterOptions) {
    if (!(opts.chunkSize >= 8)) throw new RangeError('chunkSize must be at least 8');
    if (!(opts.chunkOverlap >= 0 && opts.chunkOverlap < opts.chunkSize)) throw new RangeError('chunkOverlap must be at least 0 and smaller than chunkSize');
    this.#counter = counter;
    this.#size = opts.chunkSize;
    // LangChain adds up the tokens of pieces counted one by one (` word`); a chunk is trimmed, and
    // its first word can take a token or two more without its space (`данные` 3, ` данные` 2). The
    // slack keeps such chunks within the budget rather than leaving the guard below a one-word tail.
    const slack = Math.min(SLACK_TOKENS, opts.chunkSize - 1 - opts.chunkOverlap);
    this.#langchain = new WholeWordSplitter({
      chunkSize: opts.chunkSize - slack,
      chunkOverlap: opts.chunkOverlap,
      separators: [...opts.separators],
      keepSeparator: true,
      lengthFunction: (text: string) => counter.count(text),
    });
    this.#fallback = new TokenSplitter(counter, { maxTokens: opts.chunkSize, minTokens: 0, overlapTokens: 0 });
  }

  async split(parts: ParsedPart[], documentMetadata: Metadata): Promise<ChunkDraft[]> {
    const chunks: ChunkDraft[] = [];
    for (const part of parts) {
      for (const text of await this.splitText(part.text)) chunks.push({ text, metadata: { ...documentMetadata, ...part.metadata } });
    }
    return chunks;
  }

  /** The chunk texts of one text, in order. */
  async splitText(text: string): Promise<string[]> {
    if (!/\S/.test(text)) return [];
    const out: string[] = [];
    for (const untrimmed of await this.#langchain.splitText(text)) {
      // A piece no separator could cut comes back as it was, untrimmed.
      const chunk = untrimmed.trim();
      if (chunk === '') continue;
      if (this.#counter.count(chunk) <= this.#size) out.push(chunk);
      else out.push(...this.#fallback.splitText(chunk));
    }
    return out;
  }
}

/**
 * LangChain's splitter, except that when the separators run out (or one is `""`) a piece is
 * left whole instead of cut between UTF-16 code units (which splits emoji and costs a length
 * call per character); `RecursiveSplitter` then cuts it between tokenizer pieces.
 */
class WholeWordSplitter extends RecursiveCharacterTextSplitter {
  protected override splitOnSeparator(text: string, separator: string | undefined): string[] {
    if (!separator) return text === '' ? [] : [text];
    return super.splitOnSeparator(text, separator);
  }
}

export const recursiveSplitterOptions = z
  .strictObject({
    /** Largest chunk, in cl100k tokens. */
    chunk_size: z.number().int().min(8).max(1_000_000).default(400),
    /** Tokens repeated from the end of one chunk at the start of the next. */
    chunk_overlap: z.number().int().min(0).default(0),
    /** Separators tried in order (default: blank line, line, space); replaces the language's. */
    separators: z.array(z.string()).min(1).optional(),
    /** LangChain's separators for a programming or markup language (`python`, `markdown`, `html`…). */
    language: z.enum(SupportedTextSplitterLanguages).optional(),
  })
  .refine((o) => o.chunk_overlap < o.chunk_size, { message: 'must be smaller than chunk_size', path: ['chunk_overlap'] });

/** The splitter options in code form, defaults applied. */
export function resolveRecursiveSplitterOptions(options: z.output<typeof recursiveSplitterOptions>): RecursiveSplitterOptions {
  const separators = options.separators ?? (options.language ? RecursiveCharacterTextSplitter.getSeparatorsForLanguage(options.language) : DEFAULT_SEPARATORS);
  return { chunkSize: options.chunk_size, chunkOverlap: options.chunk_overlap, separators };
}

export const recursiveSplitter = definePlugin({
  kind: 'splitter',
  name: 'recursive',
  description: 'LangChain RecursiveCharacterTextSplitter measured in cl100k tokens: chunk_size, chunk_overlap, separators (or a language); never across parts.',
  options: recursiveSplitterOptions,
  create: async (options) => new RecursiveSplitter(await loadTokenCounter(), resolveRecursiveSplitterOptions(options)),
});
