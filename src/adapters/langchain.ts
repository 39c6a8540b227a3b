/**
 * @module adapters/langchain — livedex as a LangChain.js retriever (`livedex/langchain`): a
 * `BaseRetriever` for LCEL chains and ensembles, and a `VectorStore` face for code that wants
 * `similaritySearch`. Both talk HTTP to a running livedex; nothing here loads the engine.
 */
import type { CallbackManagerForRetrieverRun } from '@langchain/core/callbacks/manager';
import { Document, type DocumentInterface } from '@langchain/core/documents';
import type { EmbeddingsInterface } from '@langchain/core/embeddings';
import { BaseRetriever, type BaseRetrieverInput } from '@langchain/core/retrievers';
import { VectorStore } from '@langchain/core/vectorstores';
import {
  LivedexClient,
  LivedexClientError,
  checkRetrieveOptions,
  chunkId,
  type LivedexConnection,
  type RetrieveOptions,
  type RetrievedHit,
} from './client.js';

export { LivedexClient, LivedexClientError, type LivedexConnection, type RetrieveOptions, type RetrievedHit } from './client.js';

/** What a livedex `Document` carries: the chunk's metadata plus how it ranked. */
export type LivedexDocumentMetadata = Record<string, unknown> & {
  /** Lower is better (Pathway's `dist`): 0 is the best hybrid or vector match; bm25 mode gives −score. */
  dist: number;
  /** Per-leg scores, higher is better: `bm25`, `vector`, `fused` (hybrid mode). */
  scores: RetrievedHit['scores'];
};

/** A hit as a LangChain `Document`: the chunk text, its metadata with `dist` and `scores`, a stable chunk id. */
export function toDocument(hit: RetrievedHit): Document<LivedexDocumentMetadata> {
  return new Document<LivedexDocumentMetadata>({
    pageContent: hit.text,
    metadata: { ...hit.metadata, dist: hit.dist, scores: hit.scores },
    id: chunkId(hit),
  });
}

/** Options of {@link LivedexRetriever}: where the server is, and what every query asks for. */
export interface LivedexRetrieverInput extends BaseRetrieverInput, LivedexConnection, RetrieveOptions {}

/** The base fields LangChain keeps (and may serialize); connection details and secrets stay out. */
function baseFields(fields: BaseRetrieverInput): BaseRetrieverInput {
  const { callbacks, tags, metadata, verbose } = fields;
  return { callbacks, tags, metadata, verbose };
}

function retrieveOptions(fields: RetrieveOptions): RetrieveOptions {
  const { k, mode, metadataFilter, filepathGlobpattern, alpha, fusion } = fields;
  const opts: RetrieveOptions = { k, mode, metadataFilter, filepathGlobpattern, alpha, fusion };
  for (const key of Object.keys(opts) as Array<keyof RetrieveOptions>) if (opts[key] === undefined) delete opts[key];
  checkRetrieveOptions(opts);
  return opts;
}

/**
 * A LangChain retriever over a live livedex index: each query is a `POST /v1/retrieve`.
 *
 * @example
 * const retriever = new LivedexRetriever({ url: 'http://127.0.0.1:8000', k: 4, filepathGlobpattern: '**\/*.md' });
 * const chain = RunnableSequence.from([{ context: retriever.pipe(formatDocs), question: new RunnablePassthrough() }, prompt, model]);
 */
export class LivedexRetriever extends BaseRetriever<LivedexDocumentMetadata> {
  static override lc_name(): string {
    return 'LivedexRetriever';
  }

  override lc_namespace = ['livedex', 'retrievers'];

  /** The HTTP client (its `url` names the server). */
  readonly client: LivedexClient;
  /** What every query asks for: `k`, `mode`, filters, fusion. */
  readonly options: Readonly<RetrieveOptions>;

  constructor(fields: LivedexRetrieverInput) {
    super(baseFields(fields ?? ({} as LivedexRetrieverInput)));
    this.client = new LivedexClient(fields);
    this.options = Object.freeze(retrieveOptions(fields));
  }

  override async _getRelevantDocuments(query: string, _runManager?: CallbackManagerForRetrieverRun): Promise<Document<LivedexDocumentMetadata>[]> {
    const hits = await this.client.retrieve(query, this.options);
    return hits.map(toDocument);
  }
}

/** A `similaritySearch` filter: a JMESPath string, or livedex's two filters. */
export type LivedexFilter = string | Pick<RetrieveOptions, 'metadataFilter' | 'filepathGlobpattern'>;

/** Options of {@link LivedexVectorStore}: the server, and defaults for `mode` and fusion. */
export interface LivedexVectorStoreInput extends LivedexConnection, Pick<RetrieveOptions, 'mode' | 'alpha' | 'fusion'> {}

/** livedex embeds on the server; a client-side embedder would only be a way to be wrong. */
const serverSideEmbeddings: EmbeddingsInterface = {
  embedDocuments: () => Promise.reject(new LivedexClientError('unsupported', 'livedex embeds documents on the server; LivedexVectorStore has no client-side embeddings')),
  embedQuery: () => Promise.reject(new LivedexClientError('unsupported', 'livedex embeds queries on the server; use similaritySearch(query) rather than a vector')),
};

/**
 * livedex as a LangChain `VectorStore`, for code written against one: `similaritySearch`,
 * `similaritySearchWithScore` (score = `dist`, lower is better, as Pathway's
 * `PathwayVectorClient`) and `asRetriever()`. Read-only: livedex indexes its sources, so
 * adding documents or searching by a raw vector throws `unsupported`.
 *
 * @example
 * const store = new LivedexVectorStore({ url: 'http://127.0.0.1:8000' });
 * const docs = await store.similaritySearch('retention policy', 4, "contains(path, `policies`)");
 */
export class LivedexVectorStore extends VectorStore {
  declare FilterType: LivedexFilter;

  /** The HTTP client (its `url` names the server). */
  readonly client: LivedexClient;
  readonly #defaults: RetrieveOptions;

  constructor(fields: LivedexVectorStoreInput) {
    super(serverSideEmbeddings, {});
    this.client = new LivedexClient(fields);
    this.#defaults = retrieveOptions({ mode: fields.mode, alpha: fields.alpha, fusion: fields.fusion });
  }

  _vectorstoreType(): string {
    return 'livedex';
  }

  async addVectors(_vectors: number[][], _documents: DocumentInterface[]): Promise<void> {
    throw new LivedexClientError('unsupported', 'livedex indexes the documents of its sources; add files to a source instead of adding vectors');
  }

  async addDocuments(_documents: DocumentInterface[]): Promise<void> {
    throw new LivedexClientError('unsupported', 'livedex indexes the documents of its sources; add files to a source instead of adding documents');
  }

  async similaritySearchVectorWithScore(_query: number[], _k: number): Promise<[Document, number][]> {
    throw new LivedexClientError('unsupported', 'livedex embeds queries on the server: search with text (similaritySearch), not a vector');
  }

  override async similaritySearch(query: string, k = 4, filter?: LivedexFilter): Promise<Document<LivedexDocumentMetadata>[]> {
    return (await this.similaritySearchWithScore(query, k, filter)).map(([doc]) => doc);
  }

  /** Documents with their `dist` (lower is better), best first. */
  override async similaritySearchWithScore(query: string, k = 4, filter?: LivedexFilter): Promise<[Document<LivedexDocumentMetadata>, number][]> {
    const hits = await this.client.retrieve(query, { ...this.#defaults, k, ...filterOptions(filter) });
    return hits.map((hit) => [toDocument(hit), hit.dist]);
  }
}

function filterOptions(filter: LivedexFilter | undefined): RetrieveOptions {
  if (filter === undefined || filter === null) return {};
  if (typeof filter === 'string') return { metadataFilter: filter };
  if (typeof filter !== 'object') {
    throw new LivedexClientError('invalid_option', `filter must be a JMESPath string or { metadataFilter, filepathGlobpattern } (got ${typeof filter})`, {
      field: 'filter',
    });
  }
  const unknown = Object.keys(filter).filter((key) => key !== 'metadataFilter' && key !== 'filepathGlobpattern');
  if (unknown.length > 0) {
    throw new LivedexClientError(
      'invalid_option',
      `filter has unknown keys ${unknown.join(', ')}: give a JMESPath string, or { metadataFilter, filepathGlobpattern }`,
      { field: 'filter' },
    );
  }
  const out: RetrieveOptions = {};
  if (filter.metadataFilter != null) out.metadataFilter = filter.metadataFilter;
  if (filter.filepathGlobpattern != null) out.filepathGlobpattern = filter.filepathGlobpattern;
  return out;
}
