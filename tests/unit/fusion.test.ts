/** Fusion of the BM25 and vector legs. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fuseConvex, fuseRrf, singleLeg } from '../../src/core/fusion.js';

const bm25 = [{ id: 1, score: 12 }, { id: 2, score: 6 }, { id: 3, score: 3 }];
const vector = [{ id: 1, score: 0.9 }, { id: 4, score: 0.8 }, { id: 2, score: 0.1 }];

describe('fusion', () => {
  it('RRF sums 1/(k + rank) and gives dist 0 to a chunk first in both legs', () => {
    const fused = fuseRrf(bm25, vector, 10, 60);
    assert.deepEqual(fused.map((h) => h.id), [1, 2, 4, 3]);
    assert.equal(fused[0]!.dist, 0);
    assert.ok(Math.abs(fused[1]!.fused - (1 / 62 + 1 / 63)) < 1e-12);
    assert.deepEqual({ bm25: fused[0]!.bm25, vector: fused[0]!.vector }, { bm25: 12, vector: 0.9 });
    assert.ok(fused.every((h, i) => i === 0 || h.dist >= fused[i - 1]!.dist));
  });

  it('RRF cuts to k and breaks ties by id', () => {
    const tied = fuseRrf([{ id: 9, score: 1 }], [{ id: 5, score: 1 }], 1);
    assert.deepEqual(tied.map((h) => h.id), [5]);
  });

  it('convex weighs cosine by alpha and BM25 (scaled by its best score) by 1 − alpha', () => {
    const fused = fuseConvex(bm25, vector, 10, 0.5);
    const byId = new Map(fused.map((h) => [h.id, h]));
    assert.ok(Math.abs(byId.get(1)!.fused - (0.5 * 1 + 0.5 * 0.9)) < 1e-12);
    assert.ok(Math.abs(byId.get(4)!.fused - 0.5 * 0.8) < 1e-12);
    assert.ok(Math.abs(byId.get(3)!.fused - 0.5 * 0.25) < 1e-12);
    assert.ok(Math.abs(byId.get(1)!.dist - (1 - 0.95)) < 1e-12);
    assert.deepEqual(fuseConvex(bm25, vector, 10, 0).map((h) => h.id).slice(0, 3), [1, 2, 3]);
    assert.deepEqual(fuseConvex(bm25, vector, 10, 1).map((h) => h.id).slice(0, 3), [1, 4, 2]);
  });

  it('a single leg keeps Pathway distances: −score for BM25, 1 − cosine for vectors', () => {
    assert.deepEqual(singleLeg(bm25, 'bm25', 2).map((h) => h.dist), [-12, -6]);
    assert.deepEqual(singleLeg([{ id: 1, score: 1 }], 'vector', 5).map((h) => h.dist), [0]);
  });
});
