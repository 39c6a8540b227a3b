/** @module core/catalog — the in-memory map of live chunks (id → document, metadata) that filters run over. */
import type { Engine } from '../engine/types.js';
import type { Metadata } from './types.js';

export interface CatalogEntry {
  docKey: string;
  metadata: Metadata;
}

/**
 * Mirrors the store's chunk set. Filters are evaluated here once per (filter, generation) and
 * the matching ids are handed to both searches, so the filter applies inside each search.
 */
export class Catalog {
  readonly #chunks = new Map<number, CatalogEntry>();
  readonly #byDoc = new Map<string, number[]>();
  #generation = 0;
  readonly #filterCache = new Map<string, { generation: number; ids: Set<number> }>();

  static async load(engine: Engine, pageSize = 5000): Promise<Catalog> {
    const catalog = new Catalog();
    let after = 0;
    for (;;) {
      const rows = await engine.listChunks(after, pageSize);
      for (const row of rows) catalog.#put(row.id, row.docKey, row.metadata);
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
    ids.forEach((id, i) => this.#put(id, docKey, metadata[i] ?? {}));
    this.#generation++;
  }

  removeDocument(docKey: string): void {
    const old = this.#byDoc.get(docKey);
    if (!old) return;
    for (const id of old) this.#chunks.delete(id);
    this.#byDoc.delete(docKey);
    this.#generation++;
  }

  /** Ids of the chunks whose metadata `predicate` accepts; memoized per `cacheKey` until the next change. */
  matching(cacheKey: string, predicate: (m: Metadata) => boolean): Set<number> {
    const hit = this.#filterCache.get(cacheKey);
    if (hit && hit.generation === this.#generation) return hit.ids;
    const ids = new Set<number>();
    for (const [id, entry] of this.#chunks) if (predicate(entry.metadata)) ids.add(id);
    if (this.#filterCache.size >= 64) this.#filterCache.delete(this.#filterCache.keys().next().value!);
    this.#filterCache.set(cacheKey, { generation: this.#generation, ids });
    return ids;
  }

  #put(id: number, docKey: string, metadata: Metadata): void {
    this.#chunks.set(id, { docKey, metadata });
    const list = this.#byDoc.get(docKey);
    if (list) list.push(id);
    else this.#byDoc.set(docKey, [id]);
  }
}
