/**
 * The splitter contract, run against every splitter in `builtinRegistry()`: chunks within the
 * size asked for, no word lost or invented, never across parts, metadata carried.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Tiktoken } from 'js-tiktoken/lite';
import { silentLogger } from '../../src/core/log.js';
import type { ChunkDraft, ParsedPart, Splitter } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';
import { loadCl100k } from '../../src/splitters/token.js';

const MAX = 40;
/** Each splitter's options for chunks of at most MAX tokens. */
const SIZED: Record<string, Record<string, unknown>> = {
  token: { max_tokens: MAX },
  recursive: { chunk_size: MAX },
  structure: { max_tokens: MAX },
};

const registry = builtinRegistry();
const definitions = registry.list('splitter');
const words = (s: string): string[] => s.split(/[\s#|:;,.]+/).filter((w) => w !== '');

/** Prose whose every word is unique (`w<part>x<i>`), in sentences, lines and paragraphs. */
function prose(part: number, n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) {
    out += `w${part}x${i}`;
    out += i % 97 === 96 ? '\n\n' : i % 31 === 30 ? '\n' : i % 9 === 8 ? '. ' : ' ';
  }
  return out.trim();
}

describe('the splitter contract', () => {
  let encoder: Tiktoken;
  before(async () => {
    encoder = (await loadCl100k()).encoder;
  });

  it('has options for every registered splitter', () => {
    assert.deepEqual(definitions.map((d) => d.name).filter((name) => !SIZED[name]), []);
  });

  for (const def of definitions) {
    describe(`splitter "${def.name}"`, { skip: SIZED[def.name] ? false : 'no options' }, () => {
      let splitter: Splitter;
      const parts: ParsedPart[] = [
        { text: `# Heading one\n\n${prose(1, 400)}`, metadata: { page: 1 } },
        { text: prose(2, 250), metadata: { page: 2 } },
      ];
      const documentMetadata = { team: 'night', path: 'notes/log.md' };
      let chunks: ChunkDraft[];

      before(async () => {
        splitter = await registry.create('splitter', def.name, SIZED[def.name], { logger: silentLogger, dataDir: '/nonexistent' });
        chunks = await splitter.split(structuredClone(parts), { ...documentMetadata });
      });

      it('is named as registered, and splits nothing into nothing', async () => {
        assert.equal(splitter.name, def.name);
        assert.deepEqual(await splitter.split([], documentMetadata), []);
      });

      it('cuts long parts into several chunks, none empty and none over the size asked for', () => {
        assert.ok(chunks.length > 2, `${chunks.length} chunks`);
        for (const chunk of chunks) {
          assert.notEqual(chunk.text.trim(), '');
          const n = encoder.encode(chunk.text, [], []).length;
          assert.ok(n <= MAX, `a chunk of ${n} tokens: ${JSON.stringify(chunk.text.slice(0, 80))}`);
        }
      });

      it('loses no word, invents none, and keeps their order within a part', () => {
        const input = parts.flatMap((p) => words(p.text));
        const seen = chunks.flatMap((c) => words(c.text));
        assert.deepEqual([...new Set(seen)].sort(), [...new Set(input)].sort());
        for (const tag of ['w1x', 'w2x']) {
          const order = [...new Set(seen.filter((w) => w.startsWith(tag)))].map((w) => Number(w.slice(tag.length)));
          assert.deepEqual(order, [...order].sort((a, b) => a - b), `${tag} words in order`);
        }
      });

      it('never puts two parts into one chunk, and each chunk carries its part and document metadata', () => {
        for (const chunk of chunks) {
          const from = new Set(words(chunk.text).flatMap((w) => (/^w(\d)x/.exec(w)?.[1] ? [Number(/^w(\d)x/.exec(w)![1])] : [])));
          assert.ok(from.size <= 1, `a chunk from parts ${[...from].join(', ')}`);
          assert.equal(chunk.metadata.team, 'night');
          assert.equal(chunk.metadata.path, 'notes/log.md');
          if (from.size === 1) assert.equal(chunk.metadata.page, [...from][0]);
          assert.deepEqual(JSON.parse(JSON.stringify(chunk.metadata)), chunk.metadata);
        }
      });

      it('gives the same chunks twice and leaves its input alone', async () => {
        const input = structuredClone(parts);
        const meta = { ...documentMetadata };
        assert.deepEqual(await splitter.split(input, meta), chunks);
        assert.deepEqual(input, parts);
        assert.deepEqual(meta, documentMetadata);
      });
    });
  }
});
