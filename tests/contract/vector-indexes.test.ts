/**
 * The vector index contract, run against every vector index in `builtinRegistry()` and each
 * variant it has (hnsw on the main thread and on a thread of its own): exact enough nearest
 * neighbours, filters inside the search (k hits whenever k ids are accepted), removal, and a
 * snapshot that reopens with the sequence it recorded.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { silentLogger } from '../../src/core/log.js';
import type { VectorFilter, VectorIndex } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';
import { rng } from '../helpers/engine-fixtures.js';
import { tempDir } from '../helpers/livedex.js';

/** Each index's variants: a name and its options. */
const VARIANTS: Record<string, Record<string, Record<string, unknown>>> = {
  hnsw: { 'in thread': {}, 'own thread': { thread: true } },
};

const DIMS = 16;
const N = 300;
const registry = builtinRegistry();
const definitions = registry.list('vectorIndex');

function unit(random: () => number): Float32Array {
  const v = Float32Array.from({ length: DIMS }, () => random() - 0.5);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}
const distance = (a: Float32Array, b: Float32Array): number => 1 - a.reduce((s, x, i) => s + x * b[i]!, 0);

describe('the vector index contract', () => {
  let tmp: { path: string; cleanup(): Promise<void> };
  before(async () => {
    tmp = await tempDir();
  });
  after(() => tmp.cleanup());

  it('has variants for every registered vector index', () => {
    assert.deepEqual(definitions.map((d) => d.name).filter((name) => !VARIANTS[name]), []);
  });

  for (const def of definitions) {
    for (const [variant, options] of Object.entries(VARIANTS[def.name] ?? {})) {
      describe(`vector index "${def.name}" (${variant})`, () => {
        const random = rng(7);
        const vectors = new Map(Array.from({ length: N }, (_, i) => [i + 1, unit(random)] as const));
        const query = unit(random);
        let dir: string;
        let index: VectorIndex;
        const open = () => registry.create('vectorIndex', def.name, options, { logger: silentLogger, dataDir: tmp.path, dimensions: DIMS, modelKey: 'contract-model', dir });
        const settle = async () => index.flush?.();
        /** The ids nearest `query` by brute force among those `accept` takes. */
        const exact = (k: number, accept: (id: number) => boolean = () => true) =>
          [...vectors].filter(([id]) => accept(id)).sort((a, b) => distance(query, a[1]) - distance(query, b[1])).slice(0, k).map(([id]) => id);

        before(async () => {
          dir = join(tmp.path, `${def.name}-${variant.replace(/\W/g, '-')}`);
          index = await open();
          for (const [id, v] of vectors) index.add(id, v);
          await settle();
        });
        after(async () => index.close?.());

        it('starts at sequence 0 with its length, and holds what was added', () => {
          assert.equal(index.dimensions, DIMS);
          assert.equal(index.size, N);
          assert.deepEqual(index.ids().sort((a, b) => a - b), [...vectors.keys()]);
          assert.ok(index.has(1) && !index.has(N + 1));
        });

        it('finds the nearest vectors, nearest first, with cosine distances', async () => {
          const hits = await index.search(query, 10);
          assert.equal(hits.length, 10);
          const found = hits.map((h) => h.id);
          const overlap = exact(10).filter((id) => found.includes(id)).length;
          assert.ok(overlap >= 9, `recall@10 ${overlap}/10`);
          for (const [i, h] of hits.entries()) {
            assert.ok(Math.abs(h.distance - distance(query, vectors.get(h.id)!)) < 1e-4);
            if (i > 0) assert.ok(h.distance >= hits[i - 1]!.distance - 1e-6);
          }
          const self = await index.search(vectors.get(42)!, 1);
          assert.equal(self[0]?.id, 42);
          assert.ok(self[0]!.distance < 1e-4);
        });

        it('applies each kind of filter inside the search: k hits whenever k ids are accepted', async () => {
          const allowed = new Set([3, 50, 77, 120, 199, 250, 251, 299]);
          const filters: [string, VectorFilter, (id: number) => boolean][] = [
            ['predicate', (id: number) => id % 7 === 0, (id) => id % 7 === 0],
            ['set', allowed, (id) => allowed.has(id)],
            ['exclude', { exclude: new Set(exact(20)) }, (id) => !exact(20).includes(id)],
          ];
          for (const [kind, filter, accept] of filters) {
            const hits = await index.search(query, 5, filter);
            assert.equal(hits.length, 5, kind);
            for (const h of hits) assert.ok(accept(h.id), `${kind}: ${h.id} is not accepted`);
          }
          const few = await index.search(query, 20, new Set([5, 6]));
          assert.deepEqual(few.map((h) => h.id).sort(), [5, 6]);
        });

        it('forgets removed ids and replaces a vector added again', async () => {
          const nearest = exact(1)[0]!;
          index.remove(nearest);
          index.remove(N + 1000);
          await settle();
          assert.ok(!index.has(nearest));
          assert.equal(index.size, N - 1);
          assert.ok(!(await index.search(query, 10)).some((h) => h.id === nearest));
          index.add(nearest, query);
          await settle();
          const top = await index.search(query, 1);
          assert.equal(top[0]?.id, nearest);
          assert.ok(top[0]!.distance < 1e-4);
          vectors.set(nearest, query);
        });

        it('reopens from its snapshot with the sequence it recorded', async () => {
          await index.save(1234);
          await index.close?.();
          index = await open();
          await settle();
          assert.equal(index.snapshotSeq, 1234);
          assert.equal(index.size, N);
          const top = await index.search(query, 1);
          assert.ok(top[0]!.distance < 1e-4);
        });
      });
    }
  }
});
