/** @module models — the embedder (and later chat and rerank) plugins of this package, for the registry. */
import { hashingEmbedder } from './hashing.js';
import { localEmbedder } from './local.js';
import { openaiEmbedder } from './openai.js';
import { openaiChat } from './openai-chat.js';

export { hashingEmbedder, HashingEmbedder } from './hashing.js';
export { localEmbedder, LocalEmbedder, LocalWorkerEmbedder } from './local.js';
export { openaiEmbedder, OpenAIEmbedder } from './openai.js';
export { openaiChat, OpenAIChatModel } from './openai-chat.js';

export const embedderPlugins = [hashingEmbedder, openaiEmbedder, localEmbedder] as const;

/** Chat models (plugin kind `llm`), for answers and summaries. */
export const chatModelPlugins = [openaiChat] as const;
