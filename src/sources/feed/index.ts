/** @module sources/feed — a source that follows a cloud service's change feed from a durable cursor (Drive, Graph). */
import { LivedexError, describeError } from '../../core/errors.js';
import type { Change, Logger, Source, SourceContext } from '../../core/types.js';
import { RetryLaterError } from './retry.js';

export { RetryLaterError, sleep, withRetry, type RetryPolicy } from './retry.js';

/** One page of changes from a service's change feed. */
export interface FeedPage {
  /** Upserts of documents in scope, deletes of keys that left it (the source drops deletes of keys it never had). */
  changes: Change[];
  /** Where the next page (or the next poll, when `more` is false) starts. */
  cursor: string;
  /** True while the service has more pages right now. */
  more: boolean;
  /** True when the page changed the folder structure in a way that only a full listing can settle. */
  resync?: boolean;
}

/** What a cloud service gives a `FeedSource`: a full listing and a change feed, both keyed by an opaque cursor. */
export interface Feed {
  /** The service, as named in messages (`Google Drive`). */
  readonly service: string;
  /**
   * Lists every document in scope. The cursor it returns must have been taken before the
   * listing began (or be the listing's own delta link), so nothing changed meanwhile is lost.
   */
  list(signal: AbortSignal): Promise<{ docs: import('../../core/types.js').SourceDocument[]; cursor: string }>;
  /** The next page of changes after `cursor`; throws `CursorLostError` when the service no longer knows it. */
  changes(cursor: string, signal: AbortSignal): Promise<FeedPage>;
}

/** The service no longer accepts the stored cursor (Graph `410 Gone`, an expired Drive page token): list everything again. */
export class CursorLostError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CursorLostError';
  }
}

/** How often a `FeedSource` polls and relists. */
export interface FeedSchedule {
  /** Seconds between polls of the change feed. */
  pollIntervalS: number;
  /** Seconds between full listings that heal anything the feed missed; 0 turns them off. */
  reconcileIntervalS: number;
}

/** Changes per `ctx.emit`: back-pressure applies per batch. */
const BATCH = 256;
/** The longest wait between polls after failures. */
const MAX_BACKOFF_MS = 5 * 60_000;

/**
 * Follows a `Feed`: the first start lists everything and emits the difference with the store;
 * later polls read the change feed from the cursor. The cursor is stored only once the store
 * reflects every change emitted before it, so a restart (or crash) replays rather than loses:
 * a replayed change whose version the store already has is dropped here.
 *
 * Failures never stop the source: it reports them through `ctx.reportHealth`, waits longer
 * (at least what `Retry-After` asked) and tries again.
 *
 * @example
 * const source = new FeedSource('gdrive', new DriveFeed(options), { pollIntervalS: 30, reconcileIntervalS: 0 });
 * await source.start(ctx);
 */
export class FeedSource implements Source {
  readonly id: string;
  readonly #name: string;
  readonly #feed: Feed;
  readonly #schedule: FeedSchedule;
  readonly #abort = new AbortController();
  #ctx: SourceContext | null = null;
  #log: Logger | null = null;
  #timer: NodeJS.Timeout | null = null;
  #chain: Promise<void> = Promise.resolve();
  #pendingReconcile: Promise<void> | null = null;
  #stopped = false;
  #onAbort: (() => void) | null = null;
  /** Where the next poll starts (may run ahead of the stored cursor). */
  #cursor: string | null = null;
  /** A cursor waiting until the store reflects `#expect`. */
  #staged: string | null = null;
  /** Key → the version the store should reach (null: the key should be gone). */
  readonly #expect = new Map<string, string | null>();
  /** What this source believes the store has: key → version. */
  readonly #known = new Map<string, string>();
  /** Keys whose download found them gone (the pipeline deletes those). */
  readonly #vanished = new Set<string>();
  #failures = 0;
  #retryAfterMs = 0;
  #lastFullAt = 0;

  constructor(name: string, feed: Feed, schedule: FeedSchedule) {
    this.id = name;
    this.#name = name;
    this.#feed = feed;
    this.#schedule = schedule;
  }

  owns(key: string): boolean {
    return key.startsWith(this.#name + ':');
  }

  /** Tells the source that a document's bytes were gone when read (so its expected version is moot). */
  markVanished(key: string): void {
    this.#vanished.add(key);
  }

  /** Aborts with the source: pass it to every request. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  async start(ctx: SourceContext): Promise<void> {
    if (this.#ctx) throw new LivedexError('internal', `source ${this.id} was started twice`);
    this.#ctx = ctx;
    this.#log = ctx.logger;
    this.#onAbort = () => void this.stop();
    if (ctx.signal.aborted) return this.stop();
    ctx.signal.addEventListener('abort', this.#onAbort, { once: true });
    for (const [key, version] of await ctx.knownVersions()) if (this.owns(key)) this.#known.set(key, version);
    this.#cursor = await ctx.getCursor();
    // The periodic relisting counts from this start (a resumed cursor is not a reason to relist).
    this.#lastFullAt = Date.now();
    // A service that is down at start does not hold the server back: the failure is reported
    // and the next polls keep trying.
    await this.#enqueue(() => this.#sync(this.#cursor === null ? 'full' : 'follow'));
    this.#scheduleNext();
  }

  /** Lists everything now and emits the differences with the store (heals whatever the feed missed). */
  reconcile(): Promise<void> {
    if (!this.#ctx || this.#stopped) return Promise.resolve();
    if (this.#pendingReconcile) return this.#pendingReconcile;
    const run = this.#enqueue(async () => {
      this.#pendingReconcile = null;
      await this.#sync('full');
    });
    this.#pendingReconcile = run;
    return run;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return this.#chain;
    this.#stopped = true;
    if (this.#onAbort) this.#ctx?.signal.removeEventListener('abort', this.#onAbort);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort.abort(new LivedexError('internal', `source ${this.id} stopped`));
    await this.#chain;
    // The store is still open while sources stop: store the cursor if it caught up meanwhile.
    await this.#confirm().catch(() => undefined);
  }

  // ───────────── the loop ─────────────

  #enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(() => (this.#stopped ? undefined : job()));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  #scheduleNext(): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    const poll = this.#schedule.pollIntervalS * 1000;
    const delay = this.#failures === 0 ? poll : Math.max(this.#retryAfterMs, Math.min(MAX_BACKOFF_MS, Math.max(poll, 1000) * 2 ** (this.#failures - 1)));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#enqueue(() => this.#tick()).finally(() => this.#scheduleNext());
    }, delay);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    const reconcileMs = this.#schedule.reconcileIntervalS * 1000;
    const due = this.#cursor === null || (reconcileMs > 0 && Date.now() - this.#lastFullAt >= reconcileMs);
    await this.#sync(due ? 'full' : 'follow');
  }

  /** One sync; failures are reported, never thrown (the schedule retries). */
  async #sync(mode: 'full' | 'follow'): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx || this.#stopped) return;
    try {
      try {
        if (mode === 'full') await this.#full();
        else await this.#follow();
      } catch (err) {
        if (!(err instanceof CursorLostError) || this.#stopped) throw err;
        ctx.logger.warn(`${this.#feed.service} no longer knows the stored cursor; listing everything again`, { source: this.id, reason: err.message });
        await this.#full();
      }
      this.#failures = 0;
      this.#retryAfterMs = 0;
      ctx.reportHealth({ state: 'idle' });
      await this.#confirm();
    } catch (err) {
      if (this.#stopped) return;
      this.#failures++;
      this.#retryAfterMs = err instanceof RetryLaterError ? err.retryAfterMs : 0;
      const message = `${this.#feed.service}: ${describeError(err)}`;
      ctx.reportHealth({ state: 'error', error: message });
      ctx.logger.debug('cloud source sync failed', { source: this.id, error: message, failures: this.#failures });
    }
  }

  /** Lists everything and emits the difference with what the store has. */
  async #full(): Promise<void> {
    const ctx = this.#ctx!;
    ctx.reportHealth({ state: 'syncing' });
    const { docs, cursor } = await this.#feed.list(this.#abort.signal);
    if (this.#stopped) return;
    const known = new Map<string, string>();
    for (const [key, version] of await ctx.knownVersions()) if (this.owns(key)) known.set(key, version);
    this.#known.clear();
    for (const [key, version] of known) this.#known.set(key, version);
    const changes: Change[] = [];
    const listed = new Set<string>();
    for (const doc of docs) {
      listed.add(doc.key);
      if (known.get(doc.key) !== doc.version) changes.push({ kind: 'upsert', doc });
    }
    for (const key of known.keys()) if (!listed.has(key)) changes.push({ kind: 'delete', key });
    await this.#emit(changes);
    if (this.#stopped) return;
    this.#stage(cursor);
    this.#lastFullAt = Date.now();
    this.#log?.debug('cloud source listed', { source: this.id, documents: docs.length, changes: changes.length });
  }

  /** Reads the change feed from the cursor until the service has no more pages. */
  async #follow(): Promise<void> {
    let cursor = this.#cursor;
    if (cursor === null) return this.#full();
    for (;;) {
      const page = await this.#feed.changes(cursor, this.#abort.signal);
      if (this.#stopped) return;
      const changes = page.changes.filter((c) =>
        c.kind === 'upsert' ? this.#known.get(c.doc.key) !== c.doc.version : this.#known.has(c.key) || this.#expect.has(c.key),
      );
      await this.#emit(changes);
      if (this.#stopped) return;
      cursor = page.cursor;
      this.#stage(cursor);
      if (page.resync) {
        this.#log?.debug('folder structure changed; listing everything again', { source: this.id });
        return this.#full();
      }
      if (!page.more) return;
    }
  }

  async #emit(changes: Change[]): Promise<void> {
    const ctx = this.#ctx!;
    for (let i = 0; i < changes.length && !this.#stopped; i += BATCH) {
      const batch = changes.slice(i, i + BATCH);
      for (const c of batch) {
        if (c.kind === 'upsert') {
          this.#expect.set(c.doc.key, c.doc.version);
          this.#vanished.delete(c.doc.key);
        } else {
          this.#expect.set(c.key, null);
        }
      }
      await ctx.emit(batch);
      for (const c of batch) {
        if (c.kind === 'upsert') this.#known.set(c.doc.key, c.doc.version);
        else this.#known.delete(c.key);
      }
    }
  }

  #stage(cursor: string): void {
    this.#cursor = cursor;
    this.#staged = cursor;
  }

  /** Stores the staged cursor once the store reflects every change emitted before it. */
  async #confirm(): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx || this.#staged === null) return;
    if (this.#expect.size > 0) {
      const store = new Map<string, string>();
      for (const [key, version] of await ctx.knownVersions()) if (this.owns(key)) store.set(key, version);
      for (const [key, want] of this.#expect) {
        const has = store.get(key);
        const reached = want === null ? has === undefined : has === want || (has === undefined && this.#vanished.has(key));
        if (reached) this.#expect.delete(key);
      }
    }
    if (this.#expect.size > 0) return;
    const staged = this.#staged;
    await ctx.setCursor(staged);
    if (this.#staged === staged) this.#staged = null;
  }
}
