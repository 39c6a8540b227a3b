/** @module models — the embedder (and later chat and rerank) plugins of this package, for the registry. */
import { hashingEmbedder } from './hashing.js';
import { openaiEmbedder } from './openai.js';

export { hashingEmbedder, HashingEmbedder } from './hashing.js';
export { openaiEmbedder, OpenAIEmbedder } from './openai.js';

export const embedderPlugins = [hashingEmbedder, openaiEmbedder] as const;
