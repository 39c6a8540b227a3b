/** @module models — the embedder (and later chat and rerank) plugins of this package, for the registry. */
import { hashingEmbedder } from './hashing.js';

export { hashingEmbedder, HashingEmbedder } from './hashing.js';

export const embedderPlugins = [hashingEmbedder] as const;
