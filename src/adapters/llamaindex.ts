/**
 * @module adapters/llamaindex — livedex as a LlamaIndex.TS retriever (`livedex/llamaindex`),
 * built on `@llamaindex/core` so that it works with `RetrieverQueryEngine` and friends
 * without the `llamaindex` umbrella. It talks HTTP to a running livedex; nothing here loads the engine.
 */
import type { QueryBundle } from '@llamaindex/core/query-engine';
import { BaseRetriever } from '@llamaindex/core/retriever';
import { TextNode, type NodeWithScore } from '@llamaindex/core/schema';
import { extractText } from '@llamaindex/core/utils';
import { LivedexClient, checkRetrieveOptions, chunkId, type LivedexConnection, type RetrieveOptions, type RetrievedHit } from './client.js';

export { LivedexClient, LivedexClientError, type LivedexConnection, type RetrieveOptions, type RetrievedHit } from './client.js';

/** Options of {@link LivedexRetriever}: where the server is, and what every query asks for. */
export interface LivedexRetrieverOptions extends LivedexConnection, RetrieveOptions {}

/** Metadata keys we add for ranking; kept out of what the LLM and embedders see. */
const RANKING_KEYS = ['dist', 'scores'];

/**
 * A hit as a LlamaIndex node: a `TextNode` (id from the chunk, metadata with `dist` and
 * `scores`) scored `1 − dist`, higher is better, as Pathway's `PathwayRetriever`.
 */
export function toNodeWithScore(hit: RetrievedHit): NodeWithScore {
  const node = new TextNode({
    id_: chunkId(hit),
    text: hit.text,
    metadata: { ...hit.metadata, dist: hit.dist, scores: hit.scores },
    excludedLlmMetadataKeys: [...RANKING_KEYS],
    excludedEmbedMetadataKeys: [...RANKING_KEYS],
  });
  return { node, score: 1 - hit.dist };
}

/**
 * A LlamaIndex retriever over a live livedex index: each query is a `POST /v1/retrieve`.
 *
 * @example
 * const retriever = new LivedexRetriever({ url: 'http://127.0.0.1:8000', k: 4 });
 * const engine = new RetrieverQueryEngine(retriever, getResponseSynthesizer('compact', { llm }));
 * const { message } = await engine.query({ query: 'How are deletions handled?' });
 */
export class LivedexRetriever extends BaseRetriever {
  /** The HTTP client (its `url` names the server). */
  readonly client: LivedexClient;
  /** What every query asks for: `k`, `mode`, filters, fusion. */
  readonly options: Readonly<RetrieveOptions>;

  constructor(options: LivedexRetrieverOptions) {
    super();
    this.client = new LivedexClient(options);
    const { k, mode, metadataFilter, filepathGlobpattern, alpha, fusion } = options;
    const chosen: RetrieveOptions = { k, mode, metadataFilter, filepathGlobpattern, alpha, fusion };
    for (const key of Object.keys(chosen) as Array<keyof RetrieveOptions>) if (chosen[key] === undefined) delete chosen[key];
    checkRetrieveOptions(chosen);
    this.options = Object.freeze(chosen);
  }

  async _retrieve(params: QueryBundle): Promise<NodeWithScore[]> {
    const hits = await this.client.retrieve(extractText(params.query), this.options);
    return hits.map(toNodeWithScore);
  }
}
