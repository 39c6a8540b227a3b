/**
 * @module core/query-planner — answers a retrieve request: embeds the query, evaluates the
 * metadata filter against the catalog, searches the vector leg and hands BM25, the fusion and
 * the hits' rows to the engine in one call.
 */
import type { Engine, LegScore } from '../engine/types.js';
import type { Catalog, ChunkIdSet } from './catalog.js';
import type { LivedexConfig } from './config.js';
import { describeError, LivedexError } from './errors.js';
import { compileFilter, filterBudget } from './filter.js';
import { filterLimits } from './filter-budget.js';
import type { ServingModel } from './model-switch.js';
import type { RwLock } from './rwlock.js';
import type { Embedder, Hit, Logger, RetrieveRequest } from './types.js';

export interface QueryPlannerDeps {
  config: LivedexConfig;
  engine: Engine;
  catalog: Catalog;
  lock: RwLock;
  logger: Logger;
  /** The model serving now (a model switch replaces it under the write lock). */
  serving(): ServingModel;
  /** Chunks whose vectors are in but whose commit is not switched to yet: the vector leg skips them. */
  unpublishedVectors(): ReadonlySet<number>;
}

export class QueryPlanner {
  readonly #deps: QueryPlannerDeps;

  constructor(deps: QueryPlannerDeps) {
    this.#deps = deps;
  }

  async retrieve(req: RetrieveRequest): Promise<Hit[]> {
    const { config, catalog, engine, lock } = this.#deps;
    const rc = config.retrieval;
    const filter = { metadataFilter: req.metadataFilter, filepathGlobpattern: req.filepathGlobpattern, limits: filterLimits(config.limits) };
    const predicate = compileFilter(filter);
    if (req.query.trim() === '') return [];
    const candidates = Math.max(req.k, rc.candidates);
    // Embedding a query may be slow (a remote model): do it before taking the lock.
    const embedder = this.#deps.serving().embedder;
    let queryVector = req.mode === 'bm25' ? null : await this.#embedQueryOrDegrade(embedder, req);
    // The filter runs before the lock, in slices within its budget; under the lock only what
    // changed meanwhile is evaluated (the budget remembers each metadata object's answer).
    const filterKey = `${req.metadataFilter ?? ''}\u0000${req.filepathGlobpattern ?? ''}`;
    const budget = predicate ? filterBudget(filter) : null;
    let matched = predicate && budget ? await catalog.matching(filterKey, predicate, budget) : null;
    budget?.pause();

    return lock.read(async () => {
      const serving = this.#deps.serving();
      // The model switched meanwhile: embed again, so the query meets vectors of its own model.
      if (queryVector && serving.embedder !== embedder) queryVector = await this.#embedQueryOrDegrade(serving.embedder, req);
      const { fusion, alpha } = this.#fusionFor(req, serving.embedder);
      let allowed: ChunkIdSet | null = null;
      if (predicate && budget && matched) {
        // The catalog changed since: evaluate again, now that no commit can land mid-way.
        if (matched.generation !== catalog.generation) {
          budget.resume();
          matched = await catalog.matching(filterKey, predicate, budget);
        }
        allowed = matched.ids;
        if (allowed.size === 0) return [];
        if (allowed.size === catalog.size) allowed = null;
      }
      // A filter that keeps few chunks: the engine scans their stored vectors exactly, in the same call.
      const exact = queryVector && req.mode !== 'bm25' && allowed && allowed.size <= rc.exact_vector_max ? { vector: queryVector, model: serving.embedder.modelKey } : null;
      // The vector leg is searched here; BM25, the fusion and the hits' rows are one engine call.
      const vector = queryVector && req.mode !== 'bm25' && !exact ? await this.#searchVectors(serving.vectors, queryVector, candidates, allowed) : [];
      const found = await engine.retrieve({
        query: req.query,
        candidates,
        allowed: allowed ? allowed.bits : null,
        vector,
        exact,
        plan: { mode: req.mode, fusion, alpha, rrfK: rc.rrf_k, k: req.k },
      });
      return found.map((h) => {
        const scores: Hit['scores'] = {};
        if (h.bm25 !== undefined) scores.bm25 = h.bm25;
        if (h.vector !== undefined) scores.vector = h.vector;
        if (req.mode === 'hybrid') scores.fused = h.fused;
        // Every hit says how fresh it is: `indexed_at` comes from its document when chunks lack it.
        const metadata = h.metadata.indexed_at === undefined ? { ...h.metadata, indexed_at: h.indexedAt } : h.metadata;
        return { text: h.text, metadata, dist: h.dist, scores };
      });
    });
  }

  /** The fusion a request gets: its own choice, else the configured default (see `default_fusion`). */
  #fusionFor(req: RetrieveRequest, embedder: Embedder): { fusion: 'rrf' | 'convex'; alpha: number } {
    const rc = this.#deps.config.retrieval;
    if (req.alpha !== undefined) return { fusion: 'convex', alpha: req.alpha };
    // The vector leg of a lexical-only embedder is weak: convex fusion leans on BM25 with it.
    const alpha = embedder.lexical ? rc.lexical_alpha : rc.alpha;
    if (req.fusion) return { fusion: req.fusion, alpha };
    if (rc.default_fusion !== 'auto') return { fusion: rc.default_fusion, alpha };
    return { fusion: embedder.lexical ? 'convex' : 'rrf', alpha };
  }

  async #searchVectors(vectors: ServingModel['vectors'], query: Float32Array, k: number, allowed: ChunkIdSet | null): Promise<LegScore[]> {
    // `allowed` comes from the catalog, which has no chunk of a commit not switched to yet.
    const pending = this.#deps.unpublishedVectors();
    const hits = await (allowed ? vectors.search(query, k, allowed) : pending.size > 0 ? vectors.search(query, k, { exclude: pending }) : vectors.search(query, k));
    return hits.map((h) => ({ id: h.id, score: 1 - h.distance }));
  }

  /**
   * The query's vector; when the model cannot be reached, a hybrid query goes on with BM25
   * alone (logged) and a vector query fails with 503 and the reason.
   */
  async #embedQueryOrDegrade(embedder: Embedder, req: RetrieveRequest): Promise<Float32Array | null> {
    try {
      // A model that calls out caches its query vectors in its call machine (see `wrapEmbedder`);
      // an in-process one embeds a query in microseconds.
      return embedder.embedQuery ? await embedder.embedQuery(req.query) : (await embedder.embed([req.query]))[0]!;
    } catch (err) {
      if (req.mode === 'vector') {
        throw new LivedexError('model_unavailable', `the embedding model ${embedder.modelKey} cannot embed the query: ${describeError(err)}`, { cause: err });
      }
      this.#deps.logger.warn('query embedding failed: answering with BM25 alone', { model: embedder.modelKey, error: describeError(err) });
      return null;
    }
  }
}
