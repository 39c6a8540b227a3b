/** @module core/fusion — combining the BM25 and vector legs into one ranking. */

export interface LegHit {
  id: number;
  /** Higher is better: BM25 score, or cosine similarity for vectors. */
  score: number;
}

export interface FusedHit {
  id: number;
  /** Lower is better; 0 is the best possible hit (first in every leg / identical). */
  dist: number;
  fused: number;
  bm25?: number;
  vector?: number;
}

const byFusedThenId = (a: FusedHit, b: FusedHit) => b.fused - a.fused || a.id - b.id;

/**
 * Reciprocal rank fusion: Σ 1/(k + rank) over the legs a chunk appears in. `dist` is
 * 1 − fused/best, where best is the score of a chunk ranked first in every leg, so a chunk
 * that tops both legs has dist 0.
 */
export function fuseRrf(bm25: LegHit[], vector: LegHit[], k: number, rrfK = 60): FusedHit[] {
  const hits = new Map<number, FusedHit>();
  const add = (leg: LegHit[], which: 'bm25' | 'vector') => {
    leg.forEach((h, rank) => {
      const entry = hits.get(h.id) ?? { id: h.id, dist: 0, fused: 0 };
      entry.fused += 1 / (rrfK + rank + 1);
      entry[which] = h.score;
      hits.set(h.id, entry);
    });
  };
  add(bm25, 'bm25');
  add(vector, 'vector');
  const best = 2 / (rrfK + 1);
  const out = [...hits.values()].sort(byFusedThenId).slice(0, k);
  for (const h of out) h.dist = Math.max(0, 1 - h.fused / best);
  return out;
}

/**
 * Convex combination: alpha · cosine + (1 − alpha) · BM25/max(BM25). Cosine is clamped to
 * [0, 1]; BM25 is scaled by the best BM25 score among the candidates, so both legs are on [0, 1].
 * A chunk missing from a leg scores 0 there.
 */
export function fuseConvex(bm25: LegHit[], vector: LegHit[], k: number, alpha: number): FusedHit[] {
  const maxBm25 = bm25.reduce((m, h) => Math.max(m, h.score), 0);
  const hits = new Map<number, FusedHit>();
  for (const h of bm25) {
    hits.set(h.id, { id: h.id, dist: 0, fused: (1 - alpha) * (maxBm25 > 0 ? h.score / maxBm25 : 0), bm25: h.score });
  }
  for (const h of vector) {
    const entry = hits.get(h.id) ?? { id: h.id, dist: 0, fused: 0 };
    entry.fused += alpha * Math.min(1, Math.max(0, h.score));
    entry.vector = h.score;
    hits.set(h.id, entry);
  }
  const out = [...hits.values()].sort(byFusedThenId).slice(0, k);
  for (const h of out) h.dist = Math.max(0, 1 - h.fused);
  return out;
}

/** A single leg as a ranking: BM25 keeps Pathway's `dist = −score`; vectors use cosine distance. */
export function singleLeg(leg: LegHit[], which: 'bm25' | 'vector', k: number): FusedHit[] {
  return leg.slice(0, k).map((h) => ({
    id: h.id,
    fused: h.score,
    dist: which === 'bm25' ? -h.score : Math.max(0, 1 - h.score),
    [which]: h.score,
  }));
}
