/** The recursive and structure splitters through the Splitter contract and their registry plugins. */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Tiktoken } from 'js-tiktoken/lite';
import { parseConfigText } from '../../src/config-file.js';
import { LivedexError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { Registry } from '../../src/core/registry.js';
import type { ChunkDraft, ParsedPart, Splitter } from '../../src/core/types.js';
import { MarkdownParser } from '../../src/parsers/markdown.js';
import { recordParts } from '../../src/parsers/records.js';
import { builtinRegistry } from '../../src/plugins.js';
import { splitterPlugins } from '../../src/splitters/index.js';
import { RecursiveSplitter, DEFAULT_SEPARATORS } from '../../src/splitters/recursive.js';
import { isTableRow, StructureSplitter } from '../../src/splitters/structure.js';
import { loadCl100k, loadTokenCounter, type TokenCounter } from '../../src/splitters/token.js';

let encoder: Tiktoken;
let counter: TokenCounter;
/** Tokens as tiktoken itself counts them. */
const tokens = (s: string) => encoder.encode(s, [], []).length;
const words = (s: string) => s.split(/\s+/).filter((w) => w !== '');

before(async () => {
  encoder = (await loadCl100k()).encoder;
  counter = await loadTokenCounter();
});

const registry = () => new Registry().register(...splitterPlugins);
const create = (name: string, options: Record<string, unknown>) => registry().create('splitter', name, options, { logger: silentLogger, dataDir: '/nonexistent' });

/** Prose with sentences, lines and paragraphs; `tag` makes every word unique so order can be checked. */
const VOCABULARY = ['the', 'index', 'follows', 'documents', 'within', 'seconds', 'hybrid', 'vector', 'naïve', 'café', '東京', 'данные', '2024', 'e.g.', '😀', 'well-known'];
function prose(seed: number, n: number): string {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  let out = '';
  for (let i = 0; i < n; i++) {
    out += `${VOCABULARY[Math.floor(next() * VOCABULARY.length)]}${i}`;
    const r = next();
    out += r < 0.04 ? '.\n\n' : r < 0.07 ? '\n' : r < 0.15 ? '. ' : ' ';
  }
  return out;
}

function assertWellFormed(chunks: ChunkDraft[] | string[], max: number): void {
  for (const c of chunks) {
    const text = typeof c === 'string' ? c : c.text;
    assert.ok(text.trim() !== '', 'no empty chunk');
    assert.equal(text, text.trim(), 'chunks are trimmed');
    assert.ok(tokens(text) <= max, `chunk of ${tokens(text)} tokens over ${max}: ${JSON.stringify(text.slice(0, 80))}`);
  }
}

// ───────────────────────────── recursive ─────────────────────────────

describe('recursive splitter', () => {
  const recursive = (chunkSize: number, chunkOverlap = 0, separators: readonly string[] = DEFAULT_SEPARATORS) =>
    new RecursiveSplitter(counter, { chunkSize, chunkOverlap, separators });

  it('keeps every chunk within chunk_size tokens, none empty, every word once and in order (no overlap)', async () => {
    for (const [seed, size] of [[1, 20], [2, 57], [3, 128], [4, 400]] as const) {
      const text = prose(seed, 1500);
      const chunks = await recursive(size).splitText(text);
      assert.ok(chunks.length > 1);
      assertWellFormed(chunks, size);
      assert.deepEqual(chunks.flatMap(words), words(text), `size ${size}`);
    }
  });

  it('repeats the end of a chunk at the start of the next, up to chunk_overlap tokens', async () => {
    // One paragraph: LangChain overlaps the pieces of the level it merges (here words); whole
    // paragraphs longer than the overlap are not repeated.
    const text = prose(5, 2000).replace(/\s+/g, ' ');
    const chunks = await recursive(60, 15).splitText(text);
    assertWellFormed(chunks, 60);
    let overlapping = 0;
    for (let i = 1; i < chunks.length; i++) {
      const prev = words(chunks[i - 1]!);
      const next = words(chunks[i]!);
      // The longest suffix of prev that is a prefix of next (words are unique, so it is the overlap).
      let k = Math.min(prev.length - 1, next.length);
      while (k > 0 && prev.slice(prev.length - k).join(' ') !== next.slice(0, k).join(' ')) k--;
      if (k > 0) overlapping++;
      assert.ok(tokens(prev.slice(prev.length - k).join(' ')) <= 15 + 2, `overlap of chunk ${i} is at most chunk_overlap`);
      // Nothing is lost between chunks: the first new word follows the previous chunk's last.
      const all = words(text);
      assert.equal(all.indexOf(next[k] ?? next[0]!), all.indexOf(prev.at(-1)!) + (next[k] ? 1 : 0));
    }
    assert.ok(overlapping >= (chunks.length - 1) * 0.9, `${overlapping} of ${chunks.length - 1} chunks overlap`);
  });

  it('cuts at the separators given, and a word longer than a chunk between tokenizer pieces', async () => {
    const sections = ['alpha beta gamma', 'delta epsilon zeta', 'eta theta iota'];
    const chunks = await recursive(8, 0, ['\n===\n']).splitText(sections.join('\n===\n'));
    assert.deepEqual(chunks.map((c) => c.replace(/^===\n/, '')), sections);
    const blob = 'x'.repeat(3000);
    const cut = await recursive(50).splitText(`before ${blob} after`);
    assertWellFormed(cut, 50);
    assert.equal(cut.join('').replace(/\s/g, ''), `before${blob}after`);
  });

  it('splits each part on its own, keeps part metadata and gives nothing for blank parts (async contract)', async () => {
    const s: Splitter = await create('recursive', { chunk_size: 30 });
    const result = s.split(
      [
        { text: prose(6, 100), metadata: { page: 1 } },
        { text: ' \n\t ', metadata: { page: 2 } },
        { text: 'Short last page.', metadata: { page: 3 } },
      ],
      { path: 'a.txt', page: 0 },
    );
    assert.ok(result instanceof Promise, 'LangChain splits asynchronously');
    const chunks = await result;
    assertWellFormed(chunks, 30);
    assert.deepEqual(chunks.at(-1), { text: 'Short last page.', metadata: { path: 'a.txt', page: 3 } });
    assert.ok(chunks.slice(0, -1).every((c) => c.metadata.page === 1));
    assert.deepEqual(await s.split([], {}), []);
  });

  it('uses a language’s separators and rejects an overlap not smaller than the chunk, naming the option', async () => {
    const py = await create('recursive', { chunk_size: 30, language: 'python' });
    const code = Array.from({ length: 6 }, (_, i) => `def f${i}(x):\n    return x + ${i} * x - ${i}\n`).join('\n');
    const chunks = await py.split([{ text: code, metadata: {} }], {});
    assert.ok(chunks.every((c) => c.text.startsWith('def ')), 'functions are not cut');
    await assert.rejects(create('recursive', { chunk_size: 30, chunk_overlap: 30 }), (err: unknown) => {
      assert.ok(err instanceof LivedexError && err.code === 'config_error');
      assert.match(err.message, /splitter\.recursive\.chunk_overlap: must be smaller than chunk_size/);
      return true;
    });
    await assert.rejects(create('recursive', { chunk_size: 30, separatorz: [] }), /splitter\.recursive/);
  });
});

// ───────────────────────────── structure ─────────────────────────────

describe('structure splitter', () => {
  const structure = (maxTokens: number, minTokens = 0) => new StructureSplitter(counter, { maxTokens, minTokens });
  const markdown = async (text: string) => new MarkdownParser().parse({ key: 'a.md', bytes: new TextEncoder().encode(text), extension: '.md', metadata: {} });

  it('gives each chunk the heading path of its section, nested headings included', async () => {
    const doc = [
      '# Guide', 'Welcome to the guide.',
      '## Install', '### Linux', 'Use the package manager on Linux.', '### macOS', 'Use Homebrew on macOS.',
      '## Usage', prose(7, 400),
      '# Reference', 'Every flag explained.',
    ].join('\n\n');
    const chunks = structure(100).split(await markdown(doc), { path: 'guide.md' });
    assertWellFormed(chunks, 100);
    const headingsOf = (needle: string) => chunks.find((c) => c.text.includes(needle))?.metadata.headings;
    assert.deepEqual(headingsOf('Welcome to the guide'), ['Guide']);
    assert.deepEqual(headingsOf('package manager on Linux'), ['Guide', 'Install', 'Linux']);
    assert.deepEqual(headingsOf('Homebrew'), ['Guide', 'Install', 'macOS']);
    assert.deepEqual(headingsOf('Every flag'), ['Reference']);
    const usage = chunks.filter((c) => JSON.stringify(c.metadata.headings) === '["Guide","Usage"]');
    assert.ok(usage.length > 3, 'a big section is cut into several chunks, all under its heading path');
    assert.ok(chunks.every((c) => c.metadata.path === 'guide.md'));
    // Sections with different paths are never merged, however small.
    assert.ok(!chunks.some((c) => c.text.includes('Linux') && c.text.includes('Homebrew')));
  });

  it('merges small consecutive parts of one group and records the page range', () => {
    const page = (n: number, text: string): ParsedPart => ({ text, metadata: { page: n, pages: 5, pages_without_text: [6] } });
    const big = prose(8, 300);
    const chunks = structure(80).split([page(1, 'Cover page.'), page(2, 'Table of contents.'), page(3, big), page(4, 'Small four.'), page(5, 'Small five.')], { path: 'r.pdf' });
    assertWellFormed(chunks, 80);
    assert.deepEqual(chunks[0], { text: 'Cover page.\n\nTable of contents.', metadata: { path: 'r.pdf', page: 1, pages: 5, pages_without_text: [6], page_end: 2 } });
    const middle = chunks.slice(1, -1);
    assert.ok(middle.length > 1 && middle.every((c) => c.metadata.page === 3 && !('page_end' in c.metadata)), 'a big page is split alone');
    assert.deepEqual(middle.flatMap((c) => words(c.text)), words(big));
    assert.deepEqual(chunks.at(-1)!.metadata, { path: 'r.pdf', page: 4, pages: 5, pages_without_text: [6], page_end: 5 });
  });

  it('merges up to the budget only, and never across different heading paths or slides', () => {
    const parts: ParsedPart[] = Array.from({ length: 30 }, (_, i) => ({ text: `Note ${i}: ${prose(i, 12).trim()}`, metadata: { headings: ['Notes'] } }));
    const chunks = structure(200).split([...parts, { text: 'Other section.', metadata: { headings: ['Other'] } }], {});
    assertWellFormed(chunks, 200);
    assert.ok(chunks.length < 30 && chunks.length > 3);
    assert.deepEqual(chunks.at(-1), { text: 'Other section.', metadata: { headings: ['Other'] } });
    const slides = structure(200).split(
      [{ text: 'Title slide', metadata: { slide: 1, slides: 3 } }, { text: 'Agenda', metadata: { slide: 2, slides: 3, has_notes: true } }, { text: 'Thanks', metadata: { slide: 3, slides: 3 } }],
      {},
    );
    // A slide is a unit of its own, however small; its keys stay on its chunk.
    assert.deepEqual(slides.map((c) => c.metadata), [{ slide: 1, slides: 3 }, { slide: 2, slides: 3, has_notes: true }, { slide: 3, slides: 3 }]);
  });

  it('never cuts a Markdown table row, even when rows contain sentence ends', async () => {
    const rows = Array.from({ length: 80 }, (_, i) => `| item ${i} | Costs ${i}.5 dollars. See e.g. note ${i}! | ok |`);
    const doc = ['# Prices', 'Intro paragraph before the table.', ['| Item | Description | State |', '|---|---|---|', ...rows].join('\n'), 'Closing words.'].join('\n\n');
    const chunks = structure(60).split(await markdown(doc), {});
    assertWellFormed(chunks, 60);
    const seen = new Map<string, number>();
    for (const c of chunks) {
      for (const line of c.text.split('\n')) {
        if (!line.startsWith('|')) continue;
        assert.ok(line === '| Item | Description | State |' || line === '|---|---|---|' || rows.includes(line), `a whole row: ${line}`);
        seen.set(line, (seen.get(line) ?? 0) + 1);
      }
    }
    for (const r of rows) assert.equal(seen.get(r), 1, `row in exactly one chunk: ${r}`);
    assert.ok(chunks.every((c) => JSON.stringify(c.metadata.headings) === '["Prices"]'));
  });

  it('never cuts a row of a DOCX/HTML table or a CSV record; a row longer than the budget is a chunk of its own', () => {
    const cells = Array.from({ length: 40 }, (_, i) => `Row ${i} | First cell. Second sentence ${i}. | Last cell ${i}`);
    const huge = `Giant | ${prose(9, 200).replace(/\n/g, ' ')} | end`;
    const text = `${prose(10, 120)}\n\n${[...cells.slice(0, 20), huge, ...cells.slice(20)].join('\n')}\n\n${prose(11, 60)}`;
    const chunks = structure(50).split([{ text, metadata: { headings: ['Data'] } }], {});
    const lines = chunks.flatMap((c) => c.text.split('\n'));
    for (const r of cells) assert.ok(lines.includes(r), `whole: ${r}`);
    const giant = chunks.filter((c) => c.text.includes('Giant'));
    assert.deepEqual(giant.map((c) => c.text), [huge.trim()]);
    assertWellFormed(chunks.filter((c) => c !== giant[0]), 50);

    const records = recordParts(
      [{ row: 1, cells: ['Team', 'Note'] }, ...Array.from({ length: 60 }, (_, i) => ({ row: i + 2, cells: [`Team ${i}`, `Won in ${1990 + i}. Lost the next. Again`] }))],
      { sheet: 'Cups' },
      30,
    );
    const recordChunks = structure(40).split(records, {});
    assertWellFormed(recordChunks, 40);
    const recordLines = records.flatMap((p) => p.text.split('\n'));
    for (const c of recordChunks) {
      for (const line of c.text.split('\n')) assert.ok(recordLines.includes(line), `a whole record: ${line}`);
      assert.equal(c.metadata.sheet, 'Cups');
      assert.equal(typeof c.metadata.row, 'number');
    }
  });

  it('gives merged record parts the row range of all of them', () => {
    const records = recordParts([{ row: 1, cells: ['A', 'B'] }, ...Array.from({ length: 12 }, (_, i) => ({ row: i + 2, cells: [`a${i}`, `b${i}`] }))], { sheet: 'S' }, 4);
    const chunks = structure(400).split(records, { path: 'x.xlsx' });
    assert.deepEqual(chunks.map((c) => c.metadata), [{ path: 'x.xlsx', sheet: 'S', row: 2, row_end: 13 }]);
  });

  it('avoids a tiny last chunk in a big part when the chunk before can give', () => {
    const paragraphs = Array.from({ length: 7 }, (_, i) => `Paragraph ${i} ${prose(20 + i, 25).replace(/\n/g, ' ').trim()}`);
    const text = paragraphs.join('\n\n') + '\n\nTail.';
    const chunks = structure(100, 30).split([{ text, metadata: {} }], {});
    assertWellFormed(chunks, 100);
    assert.ok(tokens(chunks.at(-1)!.text) >= 30, `last chunk has ${tokens(chunks.at(-1)!.text)} tokens`);
  });

  it('holds its invariants on random documents with headings, prose and tables', async () => {
    const block = fc.oneof(
      fc.integer({ min: 1, max: 3 }).chain((level) => fc.constantFrom('Alpha', 'Beta', 'Gamma').map((t) => `${'#'.repeat(level)} ${t}`)),
      fc.tuple(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 300 })).map(([seed, n]) => prose(seed, n)),
      fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 1, maxLength: 40 }).map((ids) => ['| k | v |', '|---|---|', ...ids.map((i) => `| key ${i}. | value ${i}. Two sentences. |`)].join('\n')),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(block, { minLength: 1, maxLength: 12 }), fc.integer({ min: 20, max: 300 }), async (blocks, max) => {
        const parts = await markdown(blocks.join('\n\n'));
        const chunks = structure(max, Math.floor(max / 4)).split(parts, { path: 'p.md' });
        const source = new Set(parts.flatMap((p) => p.text.split('\n')).filter(isTableRow));
        for (const c of chunks) {
          assert.ok(c.text.trim() !== '' && c.text === c.text.trim());
          const rows = c.text.split('\n').filter(isTableRow);
          for (const r of rows) assert.ok(source.has(r), `row kept whole: ${r}`);
          if (tokens(c.text) > max) assert.ok(c.text.split('\n').length === 1 && isTableRow(c.text), 'only a single row may be over the budget');
          assert.ok(Array.isArray(c.metadata.headings) && c.metadata.path === 'p.md');
        }
        assert.deepEqual(chunks.flatMap((c) => words(c.text)), parts.flatMap((p) => words(p.text)), 'every word once, in order');
      }),
      { numRuns: 60, seed: 4242 },
    );
  });

  it('is registered with its options checked', async () => {
    const s = await create('structure', { max_tokens: 64 });
    assert.equal(s.name, 'structure');
    await assert.rejects(create('structure', { max_tokens: 64, min_tokens: 64 }), /splitter\.structure\.min_tokens: must be smaller than max_tokens/);
  });
});

describe('splitter settings in an app file', () => {
  it('reads `splitter` and per-parser `splitters`, and checks their options against the plugins', () => {
    const config = parseConfigText('splitter: recursive\nsplitters:\n  pdf:\n    structure: { max_tokens: 600 }\n', 'app.yaml', { registry: builtinRegistry() });
    assert.deepEqual(config.splitter, { name: 'recursive', options: {} });
    assert.deepEqual(config.splitters, { pdf: { name: 'structure', options: { max_tokens: 600 } } });
    assert.equal(parseConfigText('port: 1\n', 'app.yaml').splitter, undefined, 'no splitter: each parser its own');
    assert.throws(
      () => parseConfigText('splitters:\n  pdf:\n    structure: { max_tokens: 2 }\n', 'app.yaml', { registry: builtinRegistry() }),
      /^LivedexError: app\.yaml:3:\d+: splitters\.pdf\.structure\.max_tokens: /,
    );
  });
});
