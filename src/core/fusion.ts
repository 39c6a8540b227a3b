/** @module core/fusion — combining the BM25 and vector legs into one ranking (computed by the engine, inside the query's one call). */
import { fuseLegs } from '../engine/index.js';
import type { FusedScore, LegScore } from '../engine/types.js';

export type LegHit = LegScore;
export type FusedHit = FusedScore;

/**
 * Reciprocal rank fusion: Σ 1/(k + rank) over the legs a chunk appears in. `dist` is
 * 1 − fused/best, where best is the score of a chunk ranked first in every leg, so a chunk
 * that tops both legs has dist 0.
 */
export function fuseRrf(bm25: LegHit[], vector: LegHit[], k: number, rrfK = 60): FusedHit[] {
  return fuseLegs(bm25, vector, { mode: 'hybrid', fusion: 'rrf', alpha: 0, rrfK, k });
}

/**
 * Convex combination: alpha · cosine + (1 − alpha) · BM25/max(BM25). Cosine is clamped to
 * [0, 1]; BM25 is scaled by the best BM25 score among the candidates, so both legs are on [0, 1].
 * A chunk missing from a leg scores 0 there.
 */
export function fuseConvex(bm25: LegHit[], vector: LegHit[], k: number, alpha: number): FusedHit[] {
  return fuseLegs(bm25, vector, { mode: 'hybrid', fusion: 'convex', alpha, rrfK: 60, k });
}

/** A single leg as a ranking: BM25 keeps Pathway's `dist = −score`; vectors use cosine distance. */
export function singleLeg(leg: LegHit[], which: 'bm25' | 'vector', k: number): FusedHit[] {
  return which === 'bm25' ? fuseLegs(leg, [], { mode: 'bm25', fusion: 'rrf', alpha: 0, rrfK: 60, k }) : fuseLegs([], leg, { mode: 'vector', fusion: 'rrf', alpha: 0, rrfK: 60, k });
}
