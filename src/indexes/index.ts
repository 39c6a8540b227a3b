/** @module indexes — the vector index plugins this build registers. */
import { hnswIndexPlugin } from './hnsw.js';

export { HnswIndex, hnswIndexPlugin, hnswOptionsSchema, type HnswOptions } from './hnsw.js';

export const vectorIndexPlugins = [hnswIndexPlugin];
