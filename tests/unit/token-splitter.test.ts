import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Tiktoken } from 'js-tiktoken/lite';
import { silentLogger } from '../../src/core/log.js';
import { Registry } from '../../src/core/registry.js';
import type { Splitter } from '../../src/core/types.js';
import { splitterPlugins } from '../../src/splitters/index.js';
import { loadCl100k, loadTokenCounter, type TokenCounter, TokenSplitter, type TokenSplitterOptions } from '../../src/splitters/token.js';

let encoder: Tiktoken;
let counter: TokenCounter;
/** Tokens as tiktoken itself counts them (special tokens as plain text). */
const tokens = (s: string) => encoder.encode(s, [], []).length;

before(async () => {
  encoder = (await loadCl100k()).encoder;
  counter = await loadTokenCounter();
});

function splitter(opts: Partial<TokenSplitterOptions> = {}): TokenSplitter {
  return new TokenSplitter(counter, { maxTokens: 400, minTokens: 0, overlapTokens: 0, ...opts });
}

/** A small deterministic PRNG, so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    s ^= s + Math.imul(s ^ (s >>> 7), s | 61);
    return ((s ^ (s >>> 14)) >>> 0) / 4294967296;
  };
}

const VOCABULARY = [
  'the', 'index', 'follows', 'documents', 'within', 'seconds', 'retrieval', 'hybrid', 'vector', 'BM25', 'don\'t',
  'naïve', 'café', 'Straße', '東京', 'данные', '2024', '3.14159', 'x86_64', '<|endoftext|>', '(parenthetical)', '"quoted"',
  'e.g.', 'well-known', 'https://example.com/a?b=c', '—', '😀', 'Pneumonoultramicroscopicsilicovolcanoconiosis', 'a',
];

/** Random prose: words, sentences, lines, paragraphs, with irregular spacing; `numbered` makes every word unique. */
function randomText(random: () => number, words: number, numbered = false): string {
  let out = '';
  for (let i = 0; i < words; i++) {
    out += VOCABULARY[Math.floor(random() * VOCABULARY.length)] + (numbered ? `#${i}` : '');
    const r = random();
    out += r < 0.03 ? '.\n\n' : r < 0.05 ? '\n' : r < 0.12 ? '. ' : r < 0.14 ? '  ' : r < 0.15 ? '\t' : ' ';
  }
  return out;
}

const wordsOf = (s: string) => s.split(/\s+/).filter((w) => w !== '');

describe('token counting', () => {
  it('counts exactly what tiktoken counts, special tokens included', () => {
    const random = prng(1);
    for (let i = 0; i < 50; i++) {
      const text = randomText(random, Math.floor(random() * 300));
      assert.equal(counter.count(text), tokens(text));
    }
    assert.equal(counter.count('<|endoftext|> is text here'), tokens('<|endoftext|> is text here'));
  });
});

describe('token splitter', () => {
  it('never cuts a word, and keeps every chunk within max_tokens', () => {
    const random = prng(42);
    for (const maxTokens of [8, 9, 13, 16, 25, 32, 50, 64, 100, 128, 200, 256, 400, 512]) {
      const text = randomText(random, 1500);
      const chunks = splitter({ maxTokens }).splitText(text);
      for (const c of chunks) assert.ok(tokens(c) <= maxTokens, `a chunk of ${tokens(c)} tokens with max_tokens ${maxTokens}`);
      // The chunks' words, in order, are the text's words; only a word longer than a whole
      // chunk may come in several consecutive pieces.
      const got = chunks.flatMap(wordsOf);
      let g = 0;
      for (const word of wordsOf(text)) {
        if (got[g] === word) {
          g++;
          continue;
        }
        assert.ok(tokens(word) > maxTokens, `"${word}" (${tokens(word)} tokens) was cut with max_tokens ${maxTokens}`);
        let joined = '';
        while (joined.length < word.length && g < got.length) joined += got[g++];
        assert.equal(joined, word);
      }
      assert.equal(g, got.length);
    }
  });

  it('keeps the original spacing inside a chunk and trims its ends', () => {
    const text = randomText(prng(7), 2000);
    let from = 0;
    for (const c of splitter({ maxTokens: 60 }).splitText(text)) {
      assert.equal(c, c.trim());
      const at = text.indexOf(c, from);
      assert.ok(at >= 0, 'each chunk is a slice of the text');
      assert.ok(!/\S/.test(text.slice(from, at)), 'nothing but whitespace between chunks');
      from = at + c.length;
    }
    assert.ok(!/\S/.test(text.slice(from)));
  });

  it('fills chunks: consecutive chunks would not fit together', () => {
    const text = randomText(prng(3), 3000);
    const chunks = splitter({ maxTokens: 100 }).splitText(text);
    for (let i = 1; i < chunks.length; i++) assert.ok(tokens(`${chunks[i - 1]} ${chunks[i]}`) > 100);
  });

  it('cuts between paragraphs when paragraphs fit', () => {
    const paragraphs = Array.from({ length: 12 }, (_, i) => `Paragraph ${i} says something about live indexes and documents. It has two sentences.`);
    const chunks = splitter({ maxTokens: 60 }).splitText(paragraphs.join('\n\n'));
    assert.ok(chunks.length > 1);
    for (const c of chunks) for (const piece of c.split('\n\n')) assert.ok(paragraphs.includes(piece), `"${piece}" is a whole paragraph`);
  });

  it('cuts a long paragraph between sentences before cutting inside one', () => {
    const sentences = Array.from({ length: 30 }, (_, i) => `Sentence number ${i} talks about chunking text for retrieval!`);
    const chunks = splitter({ maxTokens: 40 }).splitText(sentences.join(' '));
    for (const c of chunks) assert.match(c, /^Sentence number \d+ .*retrieval!$/);
  });

  it('cuts a word longer than a chunk (a base64 blob) but nothing else', () => {
    const random = prng(9);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const blob = Array.from({ length: 20_000 }, () => alphabet[Math.floor(random() * 64)]).join('');
    const text = `before the blob ${blob} after the blob`;
    const chunks = splitter({ maxTokens: 100 }).splitText(text);
    for (const c of chunks) assert.ok(tokens(c) <= 100);
    const words = chunks.flatMap(wordsOf);
    assert.deepEqual(words.slice(0, 3), ['before', 'the', 'blob']);
    assert.deepEqual(words.slice(-3), ['after', 'the', 'blob']);
    assert.equal(words.slice(3, -3).join(''), blob, 'only the blob is cut, and nothing of it is lost');
  });

  it('cuts a run with no tokenizer boundary at all between characters', () => {
    const run = 'a'.repeat(5000);
    const chunks = splitter({ maxTokens: 50 }).splitText(`x ${run} y`);
    // Pieces over 256 characters are counted in slices (see TokenCounter): a token or two of slack.
    for (const c of chunks) assert.ok(tokens(c) <= 50 + 2, `${tokens(c)}`);
    const words = chunks.flatMap(wordsOf);
    assert.deepEqual([words[0], words.at(-1)], ['x', 'y']);
    assert.equal(words.slice(1, -1).join(''), run);
  });

  it('splits CJK text without spaces at full stops', () => {
    const sentence = '東京は日本の首都であり、多くの人々が住んでいます。';
    const text = sentence.repeat(40);
    const chunks = splitter({ maxTokens: 64 }).splitText(text);
    assert.ok(chunks.length > 1);
    for (const c of chunks) {
      assert.ok(tokens(c) <= 64);
      assert.ok(c.endsWith('。'), 'cut after a full stop');
    }
    assert.equal(chunks.join(''), text);
  });

  it('never splits a surrogate pair', () => {
    const text = '😀'.repeat(3000);
    const chunks = splitter({ maxTokens: 20 }).splitText(text);
    for (const c of chunks) assert.ok(!/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(c));
    assert.equal(chunks.join(''), text);
  });

  it('repeats the tail of the previous chunk when overlap_tokens is set', () => {
    const random = prng(11);
    for (const [maxTokens, overlapTokens] of [[50, 10], [100, 30], [200, 199], [400, 50]] as const) {
      // Unique words, so that a repeated tail cannot be a coincidence of the text.
      const text = randomText(random, 3000, true);
      const chunks = splitter({ maxTokens, overlapTokens }).splitText(text);
      let overlapped = 0;
      for (let i = 0; i < chunks.length; i++) {
        const c = chunks[i]!;
        assert.ok(tokens(c) <= maxTokens);
        if (i === 0) continue;
        const prev = chunks[i - 1]!;
        // The longest suffix of the previous chunk that starts this one, at a word start.
        let k = Math.min(prev.length, c.length);
        while (k > 0 && !(c.startsWith(prev.slice(prev.length - k)) && (k === prev.length || /\s/.test(prev[prev.length - k - 1]!)))) k--;
        if (k === 0) continue;
        overlapped++;
        assert.ok(k < prev.length, 'the whole previous chunk is never repeated');
        // The estimate can be a token off at the end of the repeated part (see SpanTokens).
        assert.ok(tokens(prev.slice(prev.length - k)) <= overlapTokens + 1, 'overlap stays near overlap_tokens');
      }
      assert.ok(overlapped >= chunks.length / 2, `most chunks overlap (${overlapped}/${chunks.length})`);
      // Without the repeated parts, the words are those of the text, in order.
      const noOverlap = splitter({ maxTokens }).splitText(text);
      assert.deepEqual(noOverlap.flatMap(wordsOf), wordsOf(text));
    }
  });

  it('does not leave a last chunk smaller than min_tokens when units allow', () => {
    const sentence = 'This sentence is about ten tokens long, roughly.';
    const perSentence = tokens(sentence + ' ');
    for (let n = 5; n < 60; n++) {
      const text = Array.from({ length: n }, () => sentence).join(' ');
      const chunks = splitter({ maxTokens: 100, minTokens: 30 }).splitText(text);
      const total = tokens(text);
      if (total <= 100) assert.equal(chunks.length, 1);
      else assert.ok(tokens(chunks.at(-1)!) >= 30 - perSentence / 2, `n=${n}: last chunk of ${tokens(chunks.at(-1)!)} tokens`);
      for (const c of chunks) assert.ok(tokens(c) <= 100);
    }
  });

  it('keeps chunks within one part and merges metadata, part keys winning', async () => {
    const s: Splitter = splitter({ maxTokens: 30 });
    const chunks = await s.split(
      [
        { text: 'Short first section.', metadata: { headings: ['Install'], page: 1 } },
        { text: '   ', metadata: { headings: ['Empty'] } },
        { text: randomText(prng(5), 120), metadata: { headings: ['Install', 'From source'], page: 2, title: 'part title' } },
      ],
      { path: 'docs/a.md', title: 'doc title', page: 0 },
    );
    assert.deepEqual(chunks[0], { text: 'Short first section.', metadata: { path: 'docs/a.md', title: 'doc title', page: 1, headings: ['Install'] } });
    assert.ok(chunks.length > 2);
    for (const c of chunks.slice(1)) {
      assert.deepEqual(c.metadata, { path: 'docs/a.md', title: 'part title', page: 2, headings: ['Install', 'From source'] });
      assert.ok(!c.text.includes('Short first section'));
    }
  });

  it('is deterministic', () => {
    const text = randomText(prng(13), 5000);
    const a = splitter({ maxTokens: 77, overlapTokens: 11, minTokens: 20 }).splitText(text);
    const b = new TokenSplitter(counter, { maxTokens: 77, overlapTokens: 11, minTokens: 20 }).splitText(text);
    assert.deepEqual(a, b);
  });

  it('gives no chunks for empty or blank text', () => {
    assert.deepEqual(splitter().split([], { path: 'x' }), []);
    assert.deepEqual(splitter().split([{ text: '', metadata: {} }, { text: ' \n\t ', metadata: {} }], {}), []);
  });

  it('splits megabytes per second', () => {
    const text = randomText(prng(17), 400_000);
    const s = splitter({ maxTokens: 400 });
    s.splitText(text.slice(0, 100_000)); // warm the piece cache and the JIT
    const t0 = performance.now();
    const chunks = s.splitText(text);
    const seconds = (performance.now() - t0) / 1000;
    const mbPerSecond = text.length / 1e6 / seconds;
    console.log(`# token splitter: ${(text.length / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${mbPerSecond.toFixed(1)} MB/s, ${chunks.length} chunks`);
    assert.ok(mbPerSecond > 0.5, `${mbPerSecond.toFixed(2)} MB/s`);
  });
});

describe('token splitter plugin', () => {
  const registry = new Registry().register(...splitterPlugins);
  const ctx = { logger: silentLogger, dataDir: '/tmp/unused' };

  it('is created with defaults: 400 tokens, no overlap', async () => {
    const s = (await registry.create('splitter', 'token', {}, ctx)) as TokenSplitter;
    assert.equal(s.name, 'token');
    const chunks = s.splitText(randomText(prng(19), 2000));
    assert.ok(chunks.every((c) => tokens(c) <= 400));
    assert.ok(chunks.some((c) => tokens(c) > 300));
  });

  it('rejects overlap_tokens ≥ max_tokens, min_tokens ≥ max_tokens and unknown options, naming the option', async () => {
    await assert.rejects(registry.create('splitter', 'token', { max_tokens: 100, overlap_tokens: 100 }, ctx), /splitter\.token\.overlap_tokens: must be smaller than max_tokens/);
    await assert.rejects(registry.create('splitter', 'token', { max_tokens: 100, min_tokens: 100 }, ctx), /splitter\.token\.min_tokens/);
    await assert.rejects(registry.create('splitter', 'token', { max_token: 100 }, ctx), /splitter\.token/);
    await assert.rejects(registry.create('splitter', 'token', { max_tokens: 2 }, ctx), /splitter\.token\.max_tokens/);
  });

  it('accepts a small max_tokens without a min_tokens (the default shrinks)', async () => {
    const s = (await registry.create('splitter', 'token', { max_tokens: 32 }, ctx)) as TokenSplitter;
    assert.ok(s.splitText(randomText(prng(23), 500)).every((c) => tokens(c) <= 32));
  });
});
