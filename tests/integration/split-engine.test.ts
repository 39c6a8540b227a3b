/** The engine's token splitter gives the token splitter's own chunks: the same texts at the same offsets with the same token counts, on SciFact, the shared documents, generated strings and a served folder. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import fc from 'fast-check';
import type { z } from 'zod';
import { definePlugin } from '../../src/core/registry.js';
import type { Splitter, TokenSplitting } from '../../src/core/types.js';
import { countSplitTokens, engineTokenSplitting } from '../../src/engine/index.js';
import { MarkdownParser, TextParser } from '../../src/parsers/index.js';
import { loadTokenCounter, resolveTokenSplitterOptions, TokenSplitter, tokenSplitter, type TokenCounter, type TokenSplitterOptions } from '../../src/splitters/token.js';
import { countingRegistry, get, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const SHARED = new URL('../../../shared/data/', import.meta.url).pathname;
const SCIFACT = join(SHARED, 'scifact', 'corpus.jsonl.gz');
const DOCS = join(SHARED, 'docs');

/** SciFact documents as the eval writes them (title, blank line, abstract), read from the shared copy; null when it is absent. */
async function scifactTexts(limit = Infinity): Promise<string[] | null> {
  if (!existsSync(SCIFACT)) return null;
  const texts: string[] = [];
  const lines = createInterface({ input: createReadStream(SCIFACT).pipe(createGunzip()), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const doc = JSON.parse(line) as { title?: string; text?: string };
    texts.push(`${doc.title ?? ''}\n\n${doc.text ?? ''}\n`);
    if (texts.length >= limit) {
      lines.close();
      break;
    }
  }
  return texts;
}

/** The plain-text and Markdown files of the shared documents (the ones MANIFEST.md lists as TXT or Markdown). */
async function sharedPlainDocuments(): Promise<{ name: string; parts: string[] }[] | null> {
  const manifest = join(DOCS, 'MANIFEST.md');
  if (!existsSync(manifest)) return null;
  const names = [...(await readFile(manifest, 'utf8')).matchAll(/^\| `([^`]+)` \| (TXT|Markdown) \|/gm)].map((m) => m[1]!);
  const out: { name: string; parts: string[] }[] = [];
  for (const name of names) {
    const path = join(DOCS, name);
    if (!existsSync(path)) continue;
    const extension = name.slice(name.lastIndexOf('.'));
    const parser = extension === '.md' ? new MarkdownParser() : new TextParser();
    const parts = await parser.parse({ key: path, bytes: await readFile(path), extension, metadata: {} });
    out.push({ name, parts: parts.map((p) => p.text) });
  }
  return out;
}

interface Compared {
  chunks: number;
}

/**
 * Splits `texts` in the engine (one call, as a group of documents is) and in JavaScript, and
 * asserts the same chunks: each engine chunk is `text.slice(start, end)` at increasing offsets,
 * equal to the JavaScript chunk, with the same token count on both sides, within `maxTokens`.
 */
async function assertSameChunks(engine: TokenSplitting, counter: TokenCounter, texts: string[], opts: TokenSplitterOptions, label: string): Promise<Compared> {
  const js = new TokenSplitter(counter, opts);
  const packed = await engine.splitTokenChunks(texts, opts);
  const engineTexts: string[] = [];
  const jsTexts: string[] = [];
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i]!;
    const n = packed[at]!;
    const got: string[] = [];
    let prevStart = -1;
    let prevEnd = -1;
    for (let k = 0; k < n; k++) {
      const start = packed[at + 1 + 2 * k]!;
      const end = packed[at + 2 + 2 * k]!;
      assert.ok(start < end && end <= text.length, `${label}, text ${i}: chunk ${k} at [${start}, ${end}) of ${text.length}`);
      assert.ok(start > prevStart && end > prevEnd, `${label}, text ${i}: chunk ${k} at [${start}, ${end}) after [${prevStart}, ${prevEnd})`);
      prevStart = start;
      prevEnd = end;
      got.push(text.slice(start, end));
    }
    at += 1 + 2 * n;
    const want = js.splitText(text);
    if (got.length !== want.length || got.some((c, k) => c !== want[k])) {
      const k = got.findIndex((c, j) => c !== want[j]);
      assert.deepEqual(got, want, `${label}, text ${i} (${text.length} chars, ${JSON.stringify(opts)}): first difference at chunk ${k}`);
    }
    engineTexts.push(...got);
    jsTexts.push(...want);
  }
  assert.equal(at, packed.length, `${label}: the packed answer holds exactly one entry per text`);
  const engineCounts = await countSplitTokens(engineTexts);
  assert.ok(engineCounts, 'the engine counts tokens');
  for (let k = 0; k < jsTexts.length; k++) {
    const jsCount = counter.count(jsTexts[k]!);
    assert.equal(engineCounts[k], jsCount, `${label}: chunk ${k} counted ${engineCounts[k]} tokens in the engine, ${jsCount} in JavaScript: ${JSON.stringify(jsTexts[k]!.slice(0, 80))}`);
    assert.ok(jsCount <= opts.maxTokens, `${label}: chunk ${k} holds ${jsCount} tokens, over ${opts.maxTokens}`);
  }
  return { chunks: jsTexts.length };
}

/** Chunk sizes, small-chunk guards and overlaps the token splitter accepts, from the smallest chunk up to the default. */
const SETTINGS: TokenSplitterOptions[] = [
  { maxTokens: 400, minTokens: 50, overlapTokens: 0 },
  { maxTokens: 400, minTokens: 50, overlapTokens: 60 },
  { maxTokens: 128, minTokens: 32, overlapTokens: 16 },
  { maxTokens: 33, minTokens: 8, overlapTokens: 5 },
  { maxTokens: 8, minTokens: 0, overlapTokens: 0 },
  { maxTokens: 9, minTokens: 2, overlapTokens: 8 },
];

describe('the engine token splitter, beside the JavaScript one', () => {
  let engine: TokenSplitting;
  let counter: TokenCounter;
  before(async () => {
    const found = engineTokenSplitting();
    assert.ok(found, 'the engine addon offers token splitting (npm run build:engine)');
    engine = found;
    counter = await loadTokenCounter();
  });

  it('gives the same chunks for every SciFact document at the default size, and for a sample at every other setting', async (t) => {
    const texts = await scifactTexts();
    if (!texts) return t.skip(`no SciFact corpus at ${SCIFACT}`);
    assert.ok(texts.length > 5000, `the whole corpus was read (${texts.length} documents)`);
    const { chunks } = await assertSameChunks(engine, counter, texts, SETTINGS[0]!, 'SciFact');
    assert.ok(chunks > texts.length, `some documents take more than one chunk (${chunks} chunks)`);
    // Every 7th document: a sample across the corpus, still ≈ 740 documents per setting.
    const sample = texts.filter((_, i) => i % 7 === 0);
    for (const opts of SETTINGS.slice(1)) await assertSameChunks(engine, counter, sample, opts, 'SciFact sample');
  });

  it('gives the same chunks for the extracted text of the shared plain-text and Markdown documents', async (t) => {
    const docs = await sharedPlainDocuments();
    if (!docs) return t.skip(`no shared documents at ${DOCS}`);
    assert.ok(docs.some((d) => d.name === 'UDHR_first_article_all.txt'), 'the many-scripts document is among them');
    for (const opts of [SETTINGS[0]!, SETTINGS[2]!, SETTINGS[4]!]) {
      for (const doc of docs) {
        // War and Peace (3 MB) at the smallest size is ≈ 400k chunks: the default and one middle size suffice.
        if (doc.parts.join('').length > 1_000_000 && opts.maxTokens < 100) continue;
        await assertSameChunks(engine, counter, doc.parts, opts, doc.name);
      }
    }
  });

  it('gives the same chunks for generated strings: any Unicode, emoji, CJK, long runs of whitespace, huge words, lone surrogates', async () => {
    const codePoint = (min: number, max: number) => fc.integer({ min, max }).map((c) => String.fromCodePoint(c));
    const space = fc.constantFrom(' ', '  ', '\n', '\n\n', '\r\n', '\t', '\u00a0', '\u3000', '\u2028', '\ufeff', '\u0085', '\u200b', '\u000b', ' \n \n');
    const fragment = fc.oneof(
      // Any code point of the BMP. Astral letters come from emoji and graphemes only: the engine's Unicode
      // tables and V8's disagree on some recent ones (U+18D80 Tangut, U+323B0 CJK Extension H): a known difference, outside this property.
      fc.string({ unit: codePoint(0, 0xffff), maxLength: 30 }),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.constantFrom('The cell', ' divides.', ' It grows!', " don't", " we'll", ' (see 3.2).', '"Yes," she said.', ' Done…', ' end.”', ' x?) ', 'ok.\n\n', '<|endoftext|>', ' 12345678', ' données', ' данные', ' 東京', '–', '—'),
      fc.constantFrom('😀', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷', '❤️', '🙂🙂🙂', 'e\u0301'),
      fc.string({ unit: codePoint(0x4e00, 0x9fff), minLength: 1, maxLength: 40 }).chain((s) => fc.constantFrom(s, `${s}。`, `${s}！`, `${s}？`)),
      fc.array(space, { minLength: 1, maxLength: 120 }).map((s) => s.join('')),
      fc.tuple(fc.constantFrom('a', 'xyz', '0', '=', '🙂', 'é', '字', 'ab1', '-_', 'Zz'), fc.integer({ min: 20, max: 1500 })).map(([w, n]) => w.repeat(n)),
      fc.base64String({ minLength: 60, maxLength: 900 }),
      codePoint(0xd800, 0xdfff),
      fc.integer({ min: 0, max: 1e9 }).map(String),
    );
    const text = fc.array(fragment, { maxLength: 40 }).map((f) => f.join(''));
    const options = fc
      .constantFrom(8, 9, 12, 33, 64, 128, 400)
      .chain((maxTokens) =>
        fc.record({
          maxTokens: fc.constant(maxTokens),
          minTokens: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: maxTokens - 1 })),
          overlapTokens: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: maxTokens - 1 })),
        }),
      );
    await fc.assert(
      fc.asyncProperty(fc.array(text, { minLength: 1, maxLength: 4 }), options, async (texts, opts) => {
        await assertSameChunks(engine, counter, texts, opts, 'generated');
      }),
      { numRuns: 300, seed: 20261203 },
    );
  });

  it('splits in the engine through the token splitter plugin and gives what it gives in JavaScript', async () => {
    const splitter = new TokenSplitter(counter, SETTINGS[3]!, engine);
    assert.equal(splitter.native, true);
    const parts = [
      { text: 'First part. It has two sentences, and a third one that runs on for a while longer.', metadata: { page: 1 } },
      { text: '   ', metadata: { page: 2 } },
      // `。😀`: a CJK full stop right before an emoji (the JavaScript splitter once looped on it).
      { text: '第三部分。它是中文的。😀 And English after it, with a word longer than a chunk: ' + 'z'.repeat(400), metadata: { page: 3 } },
    ];
    // Split at the same time, as documents of one batch are: one engine call for all of them.
    const [native, again] = await Promise.all([splitter.split(parts, { path: 'a.txt' }), splitter.split(parts.slice(2), { path: 'b.txt' })]);
    assert.deepEqual(native, await splitter.splitHere(parts, { path: 'a.txt' }));
    assert.deepEqual(again, await splitter.splitHere(parts.slice(2), { path: 'b.txt' }));
    assert.ok(native.some((c) => c.metadata.page === 3) && !native.some((c) => c.metadata.page === 2), 'chunks keep their part, and a blank part gives none');
  });
  it('builds its JavaScript counter only when a text needs it, and then splits as the counter-built one does', async () => {
    assert.throws(() => new TokenSplitter(null, SETTINGS[3]!), /needs a counter/);
    const lazy = new TokenSplitter(null, SETTINGS[3]!, engine);
    const eager = new TokenSplitter(counter, SETTINGS[3]!, engine);
    const text = 'A first sentence here. ' + 'Then words, words and words. '.repeat(40);
    assert.throws(() => lazy.splitText(text), /not loaded yet/);
    const parts = [{ text, metadata: { page: 1 } }];
    assert.deepEqual(await lazy.split(parts, { path: 'a.txt' }), await eager.split(parts, { path: 'a.txt' }));
    assert.deepEqual(await lazy.splitHere(parts, { path: 'a.txt' }), await eager.splitHere(parts, { path: 'a.txt' }));
    assert.deepEqual(lazy.splitText(text), eager.splitText(text), 'loaded by the first JavaScript split');
    assert.deepEqual(await new TokenSplitter(null, SETTINGS[3]!, engine).splitTextInSlices(text), eager.splitText(text));
  });
});

/** A splitter plugin that builds the `token` splitter as the registry does and records whether it runs in the engine. */
const built: { native: boolean[] } = { native: [] };
function observingRegistry() {
  const registry = countingRegistry();
  registry.register(
    definePlugin({
      kind: 'splitter',
      name: 'token-observed',
      description: 'the token splitter, recording where it splits (tests only)',
      options: tokenSplitter.options,
      async create(options, ctx) {
        const splitter = (await tokenSplitter.create(options as z.output<typeof tokenSplitter.options>, ctx)) as Splitter & { native: boolean };
        built.native.push(splitter.native);
        return splitter;
      },
    }),
  );
  return registry;
}

describe('a served folder split in the engine', () => {
  const tokenOptions = { max_tokens: 48, overlap_tokens: 6 };
  let folder: { path: string; cleanup(): Promise<void> } | undefined;
  let data: { path: string; cleanup(): Promise<void> } | undefined;
  let server: TestServer | undefined;
  const files = new Map<string, string>();

  before(async () => {
    folder = await tempDir('livedex-split-docs-');
    data = await tempDir('livedex-split-data-');
    const scifact = (await scifactTexts(40)) ?? [];
    scifact.forEach((text, i) => { files.set(`scifact-${i}.txt`, text); });
    files.set('cjk.txt', '東京は日本の首都です。人口は多い。\n\n' + '大阪も大きな都市である。'.repeat(30));
    files.set('emoji.txt', '👨‍👩‍👧‍👦 family 🇫🇷 flag '.repeat(60));
    files.set('spaces.txt', `start${' '.repeat(2000)}middle${'\n'.repeat(300)}\u3000\u00a0 end of it.`);
    files.set('huge-word.txt', `A word: ${'Lorem'.repeat(900)} and then prose. Short sentences follow. They fit.`);
    for (const [name, text] of files) await writeFile(join(folder.path, name), text);
    server = await startServer(folder.path, { dataDir: data.path, registry: observingRegistry(), config: { splitter: { 'token-observed': tokenOptions } } });
    await server.ready;
  });
  after(async () => {
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('indexes each file in as many chunks as the JavaScript token splitter makes of it, split in the engine', async () => {
    assert.ok(built.native.length > 0 && built.native.every(Boolean), `every token splitter the server built splits in the engine (${JSON.stringify(built.native)})`);
    const js = new TokenSplitter(await loadTokenCounter(), resolveTokenSplitterOptions(tokenSplitter.options.parse(tokenOptions)));
    let total = 0;
    for (const [name, text] of files) {
      const key = join(folder!.path, name);
      const parts = await new TextParser().parse({ key, bytes: Buffer.from(text), extension: '.txt', metadata: {} });
      const want = (await js.splitHere(parts, {})).length;
      const { value: info } = await waitFor(async () => {
        const res = await get<{ status: string; chunk_count: number }>(server!.url, `/v1/documents/${encodeURIComponent(key)}`);
        if (res.status !== 200 || res.body.status !== 'indexed') throw new Error(`${name}: ${res.status} ${JSON.stringify(res.body)}`);
        return res.body;
      }, 20_000, 50);
      assert.equal(info.chunk_count, want, `${name}: ${info.chunk_count} chunks served, ${want} from the JavaScript splitter`);
      total += want;
    }
    const status = await get<{ chunks: number }>(server!.url, '/v1/status');
    assert.equal(status.body.chunks, total, 'the index holds exactly those chunks');
    assert.ok(total > files.size, `files take several chunks each (${total} for ${files.size})`);
  });
});
