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

/** A small seeded PRNG (mulberry32): the one the benchmarks use. */
export { prng as rng } from '../../bench/synth.js';
