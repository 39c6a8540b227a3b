/** @module core/catalog — the in-memory map of live chunks (id → document, metadata) that filters run over. */
import type { Engine } from '../engine/types.js';
import type { FilterBudget } from './filter-budget.js';
import type { Metadata } from './types.js';

export interface CatalogEntry {
  docKey: string;
  /** Shared by the chunks of a document whose metadata are equal (do not mutate). */
  metadata: Metadata;
}

/** The ids a filter accepted, and the catalog generation they were computed at. */
export interface Matched {
  generation: number;
  ids: Set<number>;
}

/**
 * How many distinct metadata objects of one document are remembered for sharing: chunks
 * carry the document's metadata, sometimes with a field of their own (`page`), so equal
 * neighbours are the common case and a short list finds them without hashing whole objects.
 */
const SHARED_PER_DOCUMENT = 4;

/**
 * Mirrors the store's chunk set. Filters are evaluated here once per (filter, generation) and
 * the matching ids are handed to both searches, so the filter applies inside each search.
 * Chunks of a document with equal metadata share one object, so a filter runs once for them
 * and the catalog holds one copy.
 */
export class Catalog {
  readonly #chunks = new Map<number, CatalogEntry>();
  readonly #byDoc = new Map<string, number[]>();
  #generation = 0;
  readonly #filterCache = new Map<string, Matched>();

  static async load(engine: Engine, pageSize = 5000): Promise<Catalog> {
    const catalog = new Catalog();
    // Only while loading: the last distinct metadata objects of each document.
    const shared = new Map<string, Metadata[]>();
    let after = 0;
    for (;;) {
      const rows = await engine.listChunks(after, pageSize);
      for (const row of rows) {
        let seen = shared.get(row.docKey);
        if (!seen) shared.set(row.docKey, (seen = []));
        catalog.#put(row.id, row.docKey, intern(row.metadata, seen));
      }
      if (rows.length < pageSize) break;
      after = rows[rows.length - 1]!.id;
    }
    return catalog;
  }

  get size(): number {
    return this.#chunks.size;
  }

  get generation(): number {
    return this.#generation;
  }

  has(id: number): boolean {
    return this.#chunks.has(id);
  }

  get(id: number): CatalogEntry | undefined {
    return this.#chunks.get(id);
  }

  ids(): IterableIterator<number> {
    return this.#chunks.keys();
  }

  chunkIdsOf(docKey: string): readonly number[] {
    return this.#byDoc.get(docKey) ?? [];
  }

  /** Replaces a document's chunks: `ids[i]` carries `metadata[i]`. */
  setDocument(docKey: string, ids: number[], metadata: Metadata[]): void {
    this.removeDocument(docKey);
    const seen: Metadata[] = [];
    ids.forEach((id, i) => this.#put(id, docKey, intern(metadata[i] ?? {}, seen)));
    this.#generation++;
  }

  removeDocument(docKey: string): void {
    const old = this.#byDoc.get(docKey);
    if (!old) return;
    for (const id of old) this.#chunks.delete(id);
    this.#byDoc.delete(docKey);
    this.#generation++;
  }

  /** The cached result of a filter, when nothing changed since it was computed. */
  cached(cacheKey: string): Matched | undefined {
    const hit = this.#filterCache.get(cacheKey);
    return hit && hit.generation === this.#generation ? hit : undefined;
  }

  /**
   * Ids of the chunks whose metadata `predicate` accepts, evaluated once per distinct metadata
   * object, in slices that yield to the event loop (`budget` bounds the total and remembers
   * what it evaluated, so a second pass after a change only evaluates the new documents).
   * Memoized per `cacheKey` until the next change. When the catalog changed during the pass
   * the result is a mix of versions: `generation` then differs from `this.generation`, and
   * only a pass with no change in between (under the read lock) is a consistent view.
   */
  async matching(cacheKey: string, predicate: (m: Metadata, budget: FilterBudget) => boolean, budget: FilterBudget): Promise<Matched> {
    const hit = this.cached(cacheKey);
    if (hit) return hit;
    const start = this.#generation;
    const ids = new Set<number>();
    for (const [id, entry] of this.#chunks) {
      if (budget.test(predicate, entry.metadata)) ids.add(id);
      const pause = budget.breathe();
      if (pause) await pause;
    }
    budget.check();
    if (this.#generation !== start) return { generation: -1, ids };
    if (this.#filterCache.size >= 64) this.#filterCache.delete(this.#filterCache.keys().next().value!);
    const matched = { generation: start, ids };
    this.#filterCache.set(cacheKey, matched);
    return matched;
  }

  #put(id: number, docKey: string, metadata: Metadata): void {
    this.#chunks.set(id, { docKey, metadata });
    const list = this.#byDoc.get(docKey);
    if (list) list.push(id);
    else this.#byDoc.set(docKey, [id]);
  }
}

/** `metadata`, or an equal object among `seen` (the document's latest distinct ones), which it then joins. */
function intern(metadata: Metadata, seen: Metadata[]): Metadata {
  for (let i = seen.length - 1; i >= 0; i--) if (jsonEqual(seen[i], metadata)) return seen[i]!;
  seen.push(metadata);
  if (seen.length > SHARED_PER_DOCUMENT) seen.shift();
  return metadata;
}

/** Deep equality of JSON values (key order aside). */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
