/**
 * @module core/model-switch — the embedding model that serves queries and its vector index:
 * kept in line with the store at open, and swapped for a changed model once that model's
 * vector index is built in the background.
 */
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Engine } from '../engine/types.js';
import { closeEmbedder } from './calls.js';
import type { Catalog } from './catalog.js';
import type { LivedexConfig } from './config.js';
import type { Pipeline } from './pipeline.js';
import type { PluginContext, Registry } from './registry.js';
import type { RwLock } from './rwlock.js';
import type { Embedder, Logger, VectorIndex } from './types.js';

/** Where the store records the embedder whose vectors serve queries, so a model change is seen. */
export const ACTIVE_MODEL_CURSOR = 'livedex:embedder';

/** An embedder as configured: enough to build it again after a restart. */
export interface ModelRef {
  name: string;
  options: Record<string, unknown>;
  modelKey: string;
}

/** A model and how to build it again. */
export interface ModelChoice {
  embedder: Embedder;
  ref: ModelRef;
}

/** The model serving queries and its vectors: replaced together, under the write lock. */
export interface ServingModel {
  embedder: Embedder;
  vectors: VectorIndex;
}

/** A vector index being built for a new model while the current one serves. */
interface ModelBuild extends ModelChoice {
  done: number;
  total: number;
}

export function parseModelRef(value: string | null): ModelRef | null {
  if (!value) return null;
  try {
    const ref = JSON.parse(value) as ModelRef;
    return typeof ref.name === 'string' && typeof ref.modelKey === 'string' ? { name: ref.name, options: ref.options ?? {}, modelKey: ref.modelKey } : null;
  } catch {
    return null;
  }
}

/** A file-system-safe directory name for a model key. */
const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');

/** Where a model's vector snapshot lives. */
export function vectorDir(dataDir: string, modelKey: string): string {
  return join(dataDir, 'vectors', safeName(modelKey));
}

/** The configured vector index for `embedder`, opened from its snapshot when there is one. */
export async function openVectorIndex(registry: Registry, config: LivedexConfig, ctx: PluginContext, embedder: Embedder): Promise<VectorIndex> {
  return registry.create('vectorIndex', config.vector_index.name, config.vector_index.options, {
    ...ctx,
    dimensions: embedder.dimensions,
    modelKey: embedder.modelKey,
    dir: vectorDir(ctx.dataDir, embedder.modelKey),
  }, `vector_index.${config.vector_index.name}`);
}

export interface ModelSwitchDeps {
  engine: Engine;
  catalog: Catalog;
  pipeline: Pipeline;
  lock: RwLock;
  config: LivedexConfig;
  registry: Registry;
  logger: Logger;
  readOnly: boolean;
  /** Aborted when the index closes: a fill or a build stops at its next page. */
  signal: AbortSignal;
  /** The vector snapshot being written (settles, never rejects): a switch waits for it before removing the old folder. */
  saving(): Promise<void>;
}

/**
 * Holds the serving model; `begin(next)` builds the next model's vector index while the
 * serving one answers, then switches atomically (under the write lock): a query uses one
 * model or the other, never both. Progress is snapshotted, so a restart resumes the build.
 */
export class ModelSwitch {
  readonly #deps: ModelSwitchDeps;
  #serving: ServingModel;
  #building: ModelBuild | null = null;
  #switched: Promise<void> = Promise.resolve();

  constructor(deps: ModelSwitchDeps, serving: ServingModel) {
    this.#deps = deps;
    this.#serving = serving;
  }

  get embedder(): Embedder {
    return this.#serving.embedder;
  }

  get vectors(): VectorIndex {
    return this.#serving.vectors;
  }

  /** The model serving queries and, during a change, the one being built. */
  get status(): { active: string; building: { model: string; done: number; total: number } | null } {
    const b = this.#building;
    return { active: this.#serving.embedder.modelKey, building: b ? { model: b.embedder.modelKey, done: b.done, total: b.total } : null };
  }

  /** The model key being built, if any (its cache entries are in use). */
  get buildingKey(): string | null {
    return this.#building?.embedder.modelKey ?? null;
  }

  /** Resolves once a change begun has switched (at once when there is none); rejects when its build failed. */
  switched(): Promise<void> {
    return this.#switched;
  }

  /** Starts building `next`; a failure is logged and the serving model goes on. */
  begin(next: ModelChoice): void {
    this.#switched = this.#switchTo(next);
    this.#switched.catch((err: unknown) => {
      this.#building = null;
      this.#deps.logger.error('building the vector index of the new model failed; the previous model keeps serving', { error: String(err) });
    });
  }

  /**
   * Brings `vectors` in line with the store under `embedder`: chunk ids are immutable (a new
   * text gets a new id), so the set difference is the whole replay — stale ids out, missing
   * ids in, from stored embeddings where the store has them, else embedded now (and stored).
   */
  async fill(embedder: Embedder, vectors: VectorIndex, onPage?: (added: number) => void): Promise<{ changed: boolean; missing: number }> {
    const { catalog, engine, pipeline, signal } = this.#deps;
    let removed = 0;
    for (const id of vectors.ids()) {
      if (!catalog.has(id)) {
        vectors.remove(id);
        removed++;
      }
    }
    const missing = [...catalog.ids()].filter((id) => !vectors.has(id));
    let embedded = 0;
    const page = this.#deps.config.pipeline.embed_batch;
    for (let i = 0; i < missing.length; i += page) {
      if (signal.aborted) break;
      const ids = missing.slice(i, i + page);
      const stored = await engine.chunkEmbeddings(embedder.modelKey, ids);
      const absent: number[] = [];
      ids.forEach((id, j) => {
        if (stored[j]) vectors.add(id, stored[j]!);
        else absent.push(id);
      });
      if (absent.length > 0) {
        // Chunks with no embedding under this model (the model changed): embed their texts now.
        const rows = await engine.getChunks(absent);
        const vecs = await embedder.embed(rows.map((r) => r.text), signal);
        rows.forEach((r, j) => {
          if (catalog.has(r.id)) vectors.add(r.id, vecs[j]!);
        });
        if (!this.#deps.readOnly) await engine.putEmbeddings(embedder.modelKey, rows.map((r, j) => ({ textHash: r.textHash, embedding: vecs[j]! })));
        embedded += rows.length;
        pipeline.countEmbedded(rows.length);
      }
      // An index on another thread takes the page before the next one is read: memory stays one page.
      await vectors.flush?.();
      onPage?.(ids.length);
    }
    await vectors.flush?.();
    if (removed > 0 || missing.length > 0) {
      this.#deps.logger.info('vector index synced with the store', { model: embedder.modelKey, removed, added: missing.length, embedded });
    }
    return { changed: removed > 0 || missing.length > 0, missing: missing.length };
  }

  /** Closes the models (their calls in flight are cancelled) and waits for a build to stop. */
  async close(): Promise<void> {
    await closeEmbedder(this.#serving.embedder);
    if (this.#building) await closeEmbedder(this.#building.embedder);
    // A build stops at its next page and snapshots what it has, so a restart resumes it.
    await this.#switched.catch(() => {});
  }

  async #switchTo(next: ModelChoice): Promise<void> {
    const { config, registry, logger, catalog, pipeline, lock, engine, signal } = this.#deps;
    const dataDir = resolve(config.data_dir);
    // The build is reported from the start: an index on its own thread takes a moment to open.
    const build: ModelBuild = { ...next, done: 0, total: catalog.size };
    this.#building = build;
    const vectors = await openVectorIndex(registry, config, { logger, dataDir }, next.embedder);
    const previous = this.#serving;
    let switched = false;
    while (!switched) {
      build.total = catalog.size;
      build.done = [...catalog.ids()].filter((id) => vectors.has(id)).length;
      const pass = await this.fill(next.embedder, vectors, (n) => (build.done += n));
      if (signal.aborted) {
        await vectors.save(pipeline.lastSeq).catch(() => {});
        await vectors.close?.().catch(() => {});
        return;
      }
      if (pass.missing > 64) {
        await vectors.save(pipeline.lastSeq);
        continue;
      }
      // Few left: finish under the write lock, where nothing moves, and swap.
      switched = await lock.write(async () => {
        await this.fill(next.embedder, vectors);
        if ([...catalog.ids()].some((id) => !vectors.has(id))) return false;
        await engine.setCursor(ACTIVE_MODEL_CURSOR, JSON.stringify(next.ref));
        this.#serving = { embedder: next.embedder, vectors };
        pipeline.useModel(next.embedder, vectors);
        await vectors.save(pipeline.lastSeq);
        return true;
      });
    }
    this.#building = null;
    await closeEmbedder(previous.embedder);
    await this.#deps.saving();
    await previous.vectors.close?.().catch(() => {});
    await rm(vectorDir(dataDir, previous.embedder.modelKey), { recursive: true, force: true });
    logger.info('embedding model switched', { model: next.embedder.modelKey, chunks: catalog.size });
  }
}
