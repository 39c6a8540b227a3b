/** @module core/housekeeping — prunes the embedding cache and the change log on a timer, and tells a reset store from a new one. */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { textIndexSeq } from '../engine/index.js';
import type { EmbeddingBatch, Engine } from '../engine/types.js';
import type { HousekeepingConfig } from './config.js';
import { describeError } from './errors.js';
import type { Logger } from './types.js';

/** Where the store records that it was found reset, for `livedex doctor`. */
export const STORE_RESET_CURSOR = 'livedex:store-reset';
const STORE_FILE = 'store.sqlite';

// ───────────────────────────── a reset store ─────────────────────────────

/** What the files of a data dir claim before the store is opened. */
export interface DataDirClaims {
  /** Size of `store.sqlite` in bytes, null when it does not exist. */
  storeBytes: number | null;
  /** The change-log sequence the text index reflects, null when there is none usable. */
  textIndexSeq: number | null;
  /** The sequence each vector snapshot (`vectors/<model>/meta.json`) reflects. */
  vectorSeqs: { model: string; seq: number }[];
}

/** A store that is behind the indexes derived from it: it was emptied, deleted or replaced. */
export interface StoreReset {
  /** Unix seconds. */
  detected_at: number;
  store: 'missing' | 'empty' | 'older';
  /** The store's last change-log sequence when it was found. */
  store_seq: number;
  text_index_seq: number | null;
  vector_seq: number | null;
}

/** Reads what the indexes in `dataDir` claim, without opening (or creating) the store. */
export async function inspectDataDir(dataDir: string): Promise<DataDirClaims> {
  const storeBytes = await stat(join(dataDir, STORE_FILE)).then((s) => s.size, () => null);
  const text = await textIndexSeq(dataDir).catch(() => null);
  const vectorSeqs: DataDirClaims['vectorSeqs'] = [];
  const models = await readdir(join(dataDir, 'vectors')).catch(() => [] as string[]);
  for (const model of models) {
    try {
      const meta = JSON.parse(await readFile(join(dataDir, 'vectors', model, 'meta.json'), 'utf8')) as { seq?: unknown };
      if (typeof meta.seq === 'number' && Number.isSafeInteger(meta.seq)) vectorSeqs.push({ model, seq: meta.seq });
    } catch {
      // No snapshot, or an unreadable one (the vector index rebuilds it): it claims nothing.
    }
  }
  return { storeBytes, textIndexSeq: text, vectorSeqs };
}

/**
 * The store's last sequence never goes back (it survives pruning), and every index is written
 * after the store commit it reflects: an index claiming a later sequence than the store means
 * the store lost its history.
 */
export function detectStoreReset(claims: DataDirClaims, storeSeq: number, now = Date.now()): StoreReset | null {
  const vector = claims.vectorSeqs.length > 0 ? Math.max(...claims.vectorSeqs.map((v) => v.seq)) : null;
  const claimed = Math.max(claims.textIndexSeq ?? 0, vector ?? 0);
  if (claimed <= storeSeq) return null;
  const store = claims.storeBytes === null ? 'missing' : claims.storeBytes === 0 || storeSeq === 0 ? 'empty' : 'older';
  return { detected_at: Math.floor(now / 1000), store, store_seq: storeSeq, text_index_seq: claims.textIndexSeq, vector_seq: vector };
}

/** What happened, what it means and the likely cause, in words; `when` is when the indexes are rebuilt. */
export function describeStoreReset(r: StoreReset, dataDir: string, when: 'now' | 'next start' | 'past' = 'now'): string {
  const file = join(dataDir, STORE_FILE);
  const what = r.store === 'missing' ? `${file} was missing` : r.store === 'empty' ? `${file} was empty` : `${file} is older than its indexes (at change-log sequence ${r.store_seq})`;
  const claims = [r.text_index_seq !== null ? `the text index reflects sequence ${r.text_index_seq}` : null, r.vector_seq !== null ? `the vector snapshot ${r.vector_seq}` : null].filter(Boolean).join(' and ');
  const cause = r.store === 'older' ? 'it was restored from an older backup or copied from another data dir' : 'it was truncated, deleted or replaced (a cleanup script, a restore, a full disk during a copy)';
  const rebuilt = {
    now: 'The indexes are rebuilt from what the store has and every source is read again',
    'next start': 'At the next start the indexes are rebuilt from what the store has and every source is read again',
    past: 'The indexes were rebuilt from what the store had and every source was read again',
  }[when];
  return `the store was reset: ${what} while ${claims}; likely ${cause}. ${rebuilt}; documents pushed over HTTP are lost unless pushed again`;
}

// ───────────────────────────── pruning ─────────────────────────────

export interface HousekeepingCounters {
  passes: number;
  embeddingsDeleted: number;
  changeLogDeleted: number;
  /** Unused embeddings past their grace period kept because documents were being indexed. */
  embeddingsDeferred: number;
  /** Unix seconds of the last finished pass, null before the first. */
  lastPassAt: number | null;
}

export interface PassResult {
  embeddings: Omit<EmbeddingBatch, 'next'>;
  changeLogDeleted: number;
}

export interface HousekeeperDeps {
  engine: Engine;
  config: HousekeepingConfig;
  logger: Logger;
  /** The store file, checked on each pass (a store emptied under a running server). */
  storePath: string;
  /** Models whose cache entries are in use: the serving one and one being built. */
  keepModels(): string[];
  /** The lowest change-log sequence every index has durably applied. */
  appliedSeq(): Promise<number>;
}

/**
 * Prunes in short batches: change-log entries every index has applied, then the embedding
 * cache (entries no live chunk uses, once unused for `cache_grace_s`). One pass at a time;
 * the JS thread is free between batches and each batch is one short store transaction.
 */
export class Housekeeper {
  readonly counters: HousekeepingCounters = { passes: 0, embeddingsDeleted: 0, changeLogDeleted: 0, embeddingsDeferred: 0, lastPassAt: null };
  readonly #deps: HousekeeperDeps;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<PassResult> | null = null;
  #stopped = false;
  #storeWarned = false;

  constructor(deps: HousekeeperDeps) {
    this.#deps = deps;
  }

  /** Runs a pass now, then every `interval_s` (never when it is 0). */
  start(): void {
    const { interval_s } = this.#deps.config;
    if (interval_s <= 0 || this.#stopped) return;
    const tick = () => void this.run().catch((err) => this.#deps.logger.warn('housekeeping failed', { error: describeError(err) }));
    tick();
    this.#timer = setInterval(tick, interval_s * 1000);
    this.#timer.unref();
  }

  /** One pass (or the one already running). */
  run(): Promise<PassResult> {
    this.#running ??= this.#pass().finally(() => (this.#running = null));
    return this.#running;
  }

  /** Stops the timer and waits for a running pass to end (it stops at its next batch). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => {});
  }

  async #pass(): Promise<PassResult> {
    const { engine, config, logger } = this.#deps;
    const result: PassResult = { embeddings: { scanned: 0, marked: 0, revived: 0, deleted: 0, deferred: 0 }, changeLogDeleted: 0 };
    await this.#checkStoreFile();
    const upTo = await this.#deps.appliedSeq();
    while (!this.#stopped) {
      const n = await engine.pruneChangeLog(upTo, config.batch);
      result.changeLogDeleted += n;
      if (n < config.batch) break;
    }
    const graceMs = config.cache_grace_s * 1000;
    let after: EmbeddingBatch['next'] = null;
    while (!this.#stopped) {
      // The engine deletes only if no lookup finds a marked entry during the batch; a document
      // whose lookup came earlier and whose entry goes meanwhile is committed again with its vectors.
      const quietLookups = engine.markedLookupCount;
      const b = await engine.pruneEmbeddings({ keepModels: this.#deps.keepModels(), graceMs, after, limit: config.batch, quietLookups });
      for (const k of ['scanned', 'marked', 'revived', 'deleted', 'deferred'] as const) result.embeddings[k] += b[k];
      if (!b.next) break;
      after = b.next;
    }
    this.counters.passes++;
    this.counters.changeLogDeleted += result.changeLogDeleted;
    this.counters.embeddingsDeleted += result.embeddings.deleted;
    this.counters.embeddingsDeferred += result.embeddings.deferred;
    this.counters.lastPassAt = Math.floor(Date.now() / 1000);
    if (result.changeLogDeleted > 0 || result.embeddings.deleted > 0) {
      logger.debug('store pruned', { changeLog: result.changeLogDeleted, embeddings: result.embeddings.deleted, unusedMarked: result.embeddings.marked, deferred: result.embeddings.deferred });
    }
    return result;
  }

  /** A store file emptied or removed while the server holds it open: said once, loudly. */
  async #checkStoreFile(): Promise<void> {
    if (this.#storeWarned) return;
    const size = await stat(this.#deps.storePath).then((s) => s.size, () => null);
    if (size !== null && size > 0) return;
    this.#storeWarned = true;
    this.#deps.logger.error(
      `the store file ${this.#deps.storePath} was ${size === null ? 'removed' : 'truncated to 0 bytes'} while this server runs: what is indexed now lives only in this process; stop the server and restore the file from a backup, or restart it to re-index every source (pushed documents are lost unless pushed again)`,
      { store: this.#deps.storePath },
    );
  }
}
