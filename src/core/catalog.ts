/** @module core/catalog — the map of live chunks (id → document, metadata) that filters run over, in typed arrays: no object per chunk. */
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
  ids: ChunkIdSet;
}

/**
 * How many distinct metadata objects of one document are remembered for sharing: chunks
 * carry the document's metadata, sometimes with a field of their own (`page`), so equal
 * neighbours are the common case and a short list finds them without hashing whole objects.
 */
const SHARED_PER_DOCUMENT = 4;

/** Filter results kept until the next change (each is a bitmap of max-id bits). */
const CACHED_FILTERS = 64;

/**
 * A set of chunk ids as a bitmap (bit `id % 32` of word `id / 32`): a filter's answer costs
 * max-id bits however many chunks it keeps, the vector index tests membership in O(1), and
 * the engine takes the words as they are.
 */
export class ChunkIdSet implements ReadonlySet<number> {
  readonly bits: Uint32Array;
  readonly size: number;

  constructor(bits: Uint32Array, size: number) {
    this.bits = bits;
    this.size = size;
  }

  /** A set of `ids` (for tests and callers that have a list). */
  static of(ids: Iterable<number>): ChunkIdSet {
    const list = [...ids];
    const bits = new Uint32Array((list.reduce((m, id) => Math.max(m, id), -1) >>> 5) + 1);
    let size = 0;
    for (const id of list) {
      const w = id >>> 5;
      const bit = 1 << (id & 31);
      if ((bits[w]! & bit) === 0) size++;
      bits[w]! |= bit;
    }
    return new ChunkIdSet(bits, size);
  }

  has(id: number): boolean {
    const w = id >>> 5;
    return id >= 0 && w < this.bits.length && (this.bits[w]! & (1 << (id & 31))) !== 0;
  }

  *[Symbol.iterator](): SetIterator<number> {
    const bits = this.bits;
    for (let w = 0; w < bits.length; w++) {
      let word = bits[w]!;
      while (word !== 0) {
        const low = word & -word;
        yield w * 32 + (31 - Math.clz32(low));
        word ^= low;
      }
    }
  }

  keys(): SetIterator<number> {
    return this[Symbol.iterator]();
  }

  values(): SetIterator<number> {
    return this[Symbol.iterator]();
  }

  *entries(): SetIterator<[number, number]> {
    for (const id of this) yield [id, id];
  }

  forEach(fn: (value: number, key: number, set: ReadonlySet<number>) => void, thisArg?: unknown): void {
    for (const id of this) fn.call(thisArg, id, id, this);
  }
}

/** A Uint32Array at least `length` long holding `from`'s words (grown by half again, so growth is amortized). */
function grown(from: Uint32Array<ArrayBuffer>, length: number): Uint32Array<ArrayBuffer> {
  if (length <= from.length) return from;
  const next = new Uint32Array(Math.max(length, Math.ceil(from.length * 1.5), 1024));
  next.set(from);
  return next;
}

/**
 * Mirrors the store's chunk set. Filters are evaluated here once per (filter, generation) and
 * the matching ids are handed to both searches, so the filter applies inside each search.
 * Chunks of a document with equal metadata share one object, so a filter runs once for them
 * and the catalog holds one copy.
 *
 * Per chunk it holds numbers only: a document has a slot (its key, its distinct metadata
 * objects) and a range in one arena of chunk ids; the arena is compacted when removed ranges
 * make up half of it, and a slot freed by a removal is reused.
 */
export class Catalog {
  /** Slot → document key (undefined: a free slot). */
  #keys: (string | undefined)[] = [];
  readonly #slotOf = new Map<string, number>();
  readonly #freeSlots: number[] = [];
  /** Slot → where its chunk ids start in the arena, and how many. */
  #start = new Uint32Array(0);
  #count = new Uint32Array(0);
  /** Slot → the metadata all its chunks share, or its distinct ones (then `#metaOf` says which). */
  #metas: (Metadata | Metadata[] | undefined)[] = [];
  /** The arena: each document's chunk ids in ordinal order, and which of its metadata each carries. */
  #ids = new Uint32Array(0);
  #metaOf = new Uint32Array(0);
  #end = 0;
  #removed = 0;
  /** Chunk id → its document's slot + 1 (0: no such chunk). */
  #docOf = new Uint32Array(0);
  #size = 0;
  #generation = 0;
  readonly #filterCache = new Map<string, Matched>();

  static async load(engine: Engine): Promise<Catalog> {
    const catalog = new Catalog();
    // One engine call: documents come whole, their chunks in ordinal order, each distinct
    // metadata value once, so nothing is gathered or sorted here.
    const dump = await engine.loadCatalog();
    const metaCache = new Map<number, Metadata>();
    for (let d = 0; d < dump.keys.length; d++) {
      const from = dump.starts[d]!;
      const to = dump.starts[d + 1]!;
      const seen: Metadata[] = [];
      metaCache.clear();
      const metadata = new Array<Metadata>(to - from);
      for (let i = from; i < to; i++) {
        const m = dump.metaOf[i]!;
        let value = metaCache.get(m);
        if (value === undefined) metaCache.set(m, (value = intern(dump.metadata[m]!, seen)));
        metadata[i - from] = value;
      }
      catalog.#place(dump.keys[d]!, Array.from(dump.ids.subarray(from, to)), metadata);
    }
    return catalog;
  }

  get size(): number {
    return this.#size;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Documents with at least one chunk. */
  get documents(): number {
    return this.#slotOf.size;
  }

  has(id: number): boolean {
    return id >= 0 && id < this.#docOf.length && this.#docOf[id]! !== 0;
  }

  get(id: number): CatalogEntry | undefined {
    if (!this.has(id)) return undefined;
    const slot = this.#docOf[id]! - 1;
    const metas = this.#metas[slot]!;
    if (!Array.isArray(metas)) return { docKey: this.#keys[slot]!, metadata: metas };
    const start = this.#start[slot]!;
    const end = start + this.#count[slot]!;
    for (let i = start; i < end; i++) if (this.#ids[i] === id) return { docKey: this.#keys[slot]!, metadata: metas[this.#metaOf[i]!]! };
    return undefined;
  }

  *ids(): IterableIterator<number> {
    for (let slot = 0; slot < this.#keys.length; slot++) {
      if (this.#keys[slot] === undefined) continue;
      // Read each time: a change between two steps of the caller may move the arena.
      for (let i = 0; i < this.#count[slot]!; i++) yield this.#ids[this.#start[slot]! + i]!;
    }
  }

  chunkIdsOf(docKey: string): readonly number[] {
    const slot = this.#slotOf.get(docKey);
    if (slot === undefined) return [];
    return Array.from(this.#ids.subarray(this.#start[slot]!, this.#start[slot]! + this.#count[slot]!));
  }

  /** Replaces a document's chunks: `ids[i]` carries `metadata[i]`. */
  setDocument(docKey: string, ids: readonly number[], metadata: readonly Metadata[]): void {
    this.removeDocument(docKey);
    const seen: Metadata[] = [];
    this.#place(docKey, ids, ids.map((_, i) => intern(metadata[i] ?? {}, seen)));
    this.#generation++;
  }

  removeDocument(docKey: string): void {
    const slot = this.#slotOf.get(docKey);
    if (slot === undefined) return;
    const start = this.#start[slot]!;
    const count = this.#count[slot]!;
    for (let i = start; i < start + count; i++) {
      const id = this.#ids[i]!;
      if (this.#docOf[id] === slot + 1) this.#docOf[id] = 0;
    }
    this.#size -= count;
    this.#removed += count;
    this.#count[slot] = 0;
    this.#keys[slot] = undefined;
    this.#metas[slot] = undefined;
    this.#slotOf.delete(docKey);
    this.#freeSlots.push(slot);
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
    let bits = new Uint32Array((this.#docOf.length >>> 5) + 1);
    let size = 0;
    const accept = (id: number) => {
      const w = id >>> 5;
      if (w >= bits.length) bits = grown(bits, w + 1);
      bits[w]! |= 1 << (id & 31);
      size++;
    };
    for (let slot = 0; slot < this.#keys.length; slot++) {
      const metas = this.#metas[slot];
      if (metas === undefined) continue;
      const from = this.#start[slot]!;
      const to = from + this.#count[slot]!;
      if (!Array.isArray(metas)) {
        if (budget.test(predicate, metas)) for (let i = from; i < to; i++) accept(this.#ids[i]!);
      } else {
        for (let i = from; i < to; i++) if (budget.test(predicate, metas[this.#metaOf[i]!]!)) accept(this.#ids[i]!);
      }
      // After every document: one evaluation of a hostile filter may take milliseconds.
      const pause = budget.breathe();
      if (pause) await pause;
    }
    budget.check();
    const ids = new ChunkIdSet(bits, size);
    if (this.#generation !== start) return { generation: -1, ids };
    if (this.#filterCache.size >= CACHED_FILTERS) this.#filterCache.delete(this.#filterCache.keys().next().value!);
    const matched = { generation: start, ids };
    this.#filterCache.set(cacheKey, matched);
    return matched;
  }

  /** Gives `docKey` (absent) a slot and an arena range holding `ids`, `metadata[i]` already interned. */
  #place(docKey: string, ids: readonly number[], metadata: readonly Metadata[]): void {
    if (ids.length === 0) return;
    const slot = this.#freeSlots.pop() ?? this.#keys.length;
    if (slot >= this.#start.length) {
      this.#start = grown(this.#start, slot + 1);
      this.#count = grown(this.#count, slot + 1);
    }
    this.#reserve(ids.length);
    const distinct: Metadata[] = [];
    const indexOf = new Map<Metadata, number>();
    const from = this.#end;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) throw new RangeError(`catalog: chunk id ${id} is not a 32-bit unsigned integer`);
      let which = indexOf.get(metadata[i]!);
      if (which === undefined) indexOf.set(metadata[i]!, (which = distinct.push(metadata[i]!) - 1));
      this.#ids[from + i] = id;
      this.#metaOf[from + i] = which;
      if (id >= this.#docOf.length) this.#docOf = grown(this.#docOf, id + 1);
      this.#docOf[id] = slot + 1;
    }
    this.#end += ids.length;
    this.#keys[slot] = docKey;
    this.#metas[slot] = distinct.length === 1 ? distinct[0]! : distinct;
    this.#start[slot] = from;
    this.#count[slot] = ids.length;
    this.#slotOf.set(docKey, slot);
    this.#size += ids.length;
  }

  /** Room for `n` more ids at the arena's end: compacts when removed ranges are half of it, else grows. */
  #reserve(n: number): void {
    if (this.#end + n <= this.#ids.length) return;
    if (this.#removed > 0 && this.#removed * 2 >= this.#end) {
      const ids = new Uint32Array(Math.max(this.#size + n, Math.ceil(this.#size * 1.5), 1024));
      const metaOf = new Uint32Array(ids.length);
      let at = 0;
      for (let slot = 0; slot < this.#keys.length; slot++) {
        if (this.#keys[slot] === undefined) continue;
        const from = this.#start[slot]!;
        const count = this.#count[slot]!;
        ids.set(this.#ids.subarray(from, from + count), at);
        metaOf.set(this.#metaOf.subarray(from, from + count), at);
        this.#start[slot] = at;
        at += count;
      }
      this.#ids = ids;
      this.#metaOf = metaOf;
      this.#end = at;
      this.#removed = 0;
      return;
    }
    this.#ids = grown(this.#ids, this.#end + n);
    this.#metaOf = grown(this.#metaOf, this.#ids.length);
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
    if (!Object.hasOwn(b, k)) return false;
    if (!jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
