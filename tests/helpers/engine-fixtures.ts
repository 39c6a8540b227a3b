/** Fixtures shared by the engine tests and their child processes. */
import { createHash } from 'node:crypto';
import type { ChunkWrite } from '../../src/engine/types.js';

export const DIMS = 4;

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A deterministic embedding of a text (the first bytes of its hash, scaled). */
export function fakeEmbedding(text: string): Float32Array {
  const h = createHash('sha256').update(text).digest();
  return Float32Array.from({ length: DIMS }, (_, i) => h[i]! / 255);
}

export function makeChunk(text: string, ordinal: number, opts: { embed?: boolean; metadata?: Record<string, unknown> } = {}): ChunkWrite {
  return {
    ordinal,
    text,
    textHash: sha256(text),
    metadata: opts.metadata ?? { ordinal },
    ...(opts.embed === false ? {} : { embedding: fakeEmbedding(text) }),
  };
}

/** A small seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
