/**
 * The embedder contract, run against every embedder in `builtinRegistry()`: the local model on a
 * tiny model written by the test, OpenAI's through its official client against a loopback fake.
 * One unit vector of `dimensions` per text, in order, the same every time; a query vector of the
 * same length; a model key that names what the vectors depend on.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { silentLogger } from '../../src/core/log.js';
import type { Embedder } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';
import { startFakeOpenAI, type FakeOpenAI } from '../helpers/fake-openai.js';
import { tempDir } from '../helpers/livedex.js';
import { makeTinyModel } from '../helpers/tiny-model.js';

interface Harness {
  /** Options for the plugin, and the same options with one that changes the vectors. */
  options(): Record<string, unknown>;
  changed(): Record<string, unknown>;
}

let openai: FakeOpenAI;
let modelDir: string;
let otherModelDir: string;

const HARNESS: Record<string, Harness> = {
  hashing: { options: () => ({}), changed: () => ({ dimensions: 128 }) },
  local: { options: () => ({ model: modelDir }), changed: () => ({ model: otherModelDir }) },
  openai: {
    options: () => ({ base_url: openai.url, api_key: 'contract-key', model: 'text-embedding-3-small', dimensions: 64 }),
    changed: () => ({ base_url: openai.url, api_key: 'contract-key', model: 'text-embedding-3-small', dimensions: 32 }),
  },
};

// Words the tiny model knows, so its vectors mean something.
const TEXTS = ['the red car parked outside', 'a sweet yellow banana', 'the river flows fast', 'my doctor visited yesterday'];

const registry = builtinRegistry();
const definitions = registry.list('embedder');
const norm = (v: Float32Array): number => Math.hypot(...v);
const close = async (e: Embedder): Promise<void> => (e as Embedder & { close?(): Promise<void> }).close?.();

describe('the embedder contract', () => {
  let tmp: { path: string; cleanup(): Promise<void> };
  before(async () => {
    tmp = await tempDir();
    openai = await startFakeOpenAI({ apiKey: 'contract-key', dimensions: 256 });
    modelDir = (await makeTinyModel(join(tmp.path, 'tiny'))).dir;
    otherModelDir = (await makeTinyModel(join(tmp.path, 'tiny-variant'), { variant: 1 })).dir;
  });
  after(async () => {
    await openai.close();
    await tmp.cleanup();
  });

  it('has a harness for every registered embedder', () => {
    assert.deepEqual(definitions.map((d) => d.name).filter((name) => !HARNESS[name]), []);
  });

  for (const def of definitions) {
    const harness = HARNESS[def.name];
    describe(`embedder "${def.name}"`, { skip: harness ? false : 'no harness' }, () => {
      let embedder: Embedder;
      const open = (options: Record<string, unknown>) => registry.create('embedder', def.name, options, { logger: silentLogger, dataDir: tmp.path });
      before(async () => {
        embedder = await open(harness!.options());
      });
      after(() => close(embedder));

      it('is named as registered, with a model key and a length', () => {
        assert.equal(embedder.name, def.name);
        assert.equal(typeof embedder.modelKey, 'string');
        assert.notEqual(embedder.modelKey, '');
        assert.ok(Number.isInteger(embedder.dimensions) && embedder.dimensions > 0);
      });

      it('gives one unit vector of its length per text, nothing for no text', async () => {
        const vectors = await embedder.embed(TEXTS);
        assert.equal(vectors.length, TEXTS.length);
        for (const v of vectors) {
          assert.ok(v instanceof Float32Array);
          assert.equal(v.length, embedder.dimensions);
          assert.ok(Math.abs(norm(v) - 1) < 1e-3, `norm ${norm(v)}`);
        }
        assert.deepEqual(await embedder.embed([]), []);
      });

      it('gives each text the vector it gets alone, in order, every time', async () => {
        const together = await embedder.embed(TEXTS);
        const alone = await Promise.all(TEXTS.map(async (t) => (await embedder.embed([t]))[0]!));
        for (const [i, v] of together.entries()) {
          const cos = v.reduce((s, x, j) => s + x * alone[i]![j]!, 0);
          assert.ok(cos > 0.999, `text ${i}: cosine ${cos} to itself embedded alone`);
        }
      });

      it('embeds a query to a unit vector of the same length', async () => {
        const q = embedder.embedQuery ? await embedder.embedQuery(TEXTS[0]!) : (await embedder.embed([TEXTS[0]!]))[0]!;
        assert.equal(q.length, embedder.dimensions);
        assert.ok(Math.abs(norm(q) - 1) < 1e-3);
      });

      it('changes its model key when an option that changes the vectors changes', async () => {
        const other = await open(harness!.changed());
        try {
          assert.notEqual(other.modelKey, embedder.modelKey);
          const again = await open(harness!.options());
          assert.equal(again.modelKey, embedder.modelKey);
          await close(again);
        } finally {
          await close(other);
        }
      });
    });
  }
});
