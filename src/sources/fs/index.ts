/** @module sources/fs — the folder source: a reconciled listing of a directory tree, kept live by a watcher. */
import { isUtf8 } from 'node:buffer';
import { constants as fsConstants, promises as fsp, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import { z } from 'zod';
import { LivedexError, describeError } from '../../core/errors.js';
import { definePlugin } from '../../core/registry.js';
import type { Change, Logger, Source, SourceContext, SourceDocument } from '../../core/types.js';
import { mapLimited } from '../../core/concurrency.js';
import { isNamedKey } from '../naming.js';
import { DirWatcher } from './dir-watcher.js';
import { RefusedPathError, isInside, readInside, type Boundary } from './open-inside.js';
import { SKIP_REASONS, SkipList, printableName, skipReasonOf } from './skipped.js';

const globs = z.union([z.string().min(1).transform((s) => [s]), z.array(z.string().min(1))]);

export const fsSourceOptionsSchema = z.strictObject({
  /** The folder to index; keys are this path joined with each file's relative path. */
  path: z.string().min(1),
  /** Globs over the relative path (a pattern without `/` matches the file name); default: every file. */
  include: globs.default([]),
  /** Globs over the relative path that are never indexed. */
  exclude: globs.default([]),
  /** Seconds between full reconciles that heal anything the watcher missed; 0 disables them. */
  reconcile_interval_s: z.number().min(0).default(30),
  /** Quiet time per path before a watcher event is turned into a change. */
  debounce_ms: z.number().int().min(0).default(50),
  /** Longest a path written without a pause waits: after this long it is looked at even though events keep coming. */
  debounce_max_ms: z.number().int().min(0).default(500),
  /** Follows symbolic links that stay inside the folder. */
  follow_symlinks: z.boolean().default(false),
  /** Directories never entered (the pipeline passes its data directory when it lies inside the folder). */
  exclude_dirs: z.array(z.string().min(1)).default([]),
  /** How many skipped or unreadable paths the source's status lists with their reasons (all of them are counted). */
  skipped_listed: z.number().int().min(0).max(10_000).default(100),
});

/** Options as written in a config file (defaults not yet applied). */
export type FsSourceOptions = z.input<typeof fsSourceOptionsSchema>;
type ResolvedOptions = z.output<typeof fsSourceOptionsSchema>;

/** Files editors and operating systems create next to real ones; never documents. */
const TEMP_FILE =
  /(?:\.sw[pox]|~|\.tmp|\.crdownload|\.part)$|^(?:\.#.*|#.*#|4913|\.DS_Store|Thumbs\.db|desktop\.ini|\.~lock\..*#)$/i;

/** Changes per `ctx.emit`: large enough to amortise, small enough that back-pressure bites early. */
const BATCH = 256;
/** Parallel `stat` calls while listing or checking paths. */
const STAT_CONCURRENCY = 32;
/** Files a walk looks at between two yields to the event loop, so that a reconcile of a large folder never holds queries up. */
const WALK_SLICE = 512;
/** Known documents compared per slice when a listing looks for deletions. */
const COMPARE_SLICE = 5_000;
/**
 * How often the folder itself is looked at (one `stat`): a folder removed and created again, or
 * replaced by a file, leaves the watcher on a directory that is gone, and this finds it within
 * a second instead of at the next reconcile.
 */
const ROOT_CHECK_MS = 500;

interface Listed {
  abs: string;
  stats: Stats;
}

/** What a walk found, and where it could not look (so that nothing there is taken for deleted). */
interface Listing {
  /** Each file found, as it is found (nothing of it need be kept once looked at). */
  file: (key: string, item: Listed) => void;
  /** Called after each directory: where a walk hands on what it found and yields. */
  afterDir?: () => Promise<void>;
  /** Absolute paths (directories or files) that failed with something other than "not found". */
  unsure: string[];
  /** Where a path that will not be indexed goes, with why (keyed like a document). */
  skip: (key: string, reason: string) => void;
  /** Why the folder itself could not be listed. */
  rootError?: string;
}

/** What is at the folder's path: a directory (its identity and real path), or why not. */
type RootState = { id: string; real: string } | { problem: string };

/** A candidate file as it is now: its stats, a directory, gone (or not a document), or unknown (it could not be looked at). */
type FileState = Stats | 'dir' | 'gone' | 'unsure';

type GlobMatcher = (rel: string) => boolean;

/** `*.md` matches the file name, `docs/**` the whole relative path (POSIX). */
function compileGlobs(patterns: readonly string[]): GlobMatcher | null {
  if (patterns.length === 0) return null;
  const full = patterns.filter((p) => p.includes('/'));
  const base = patterns.filter((p) => !p.includes('/'));
  const matchFull = full.length > 0 ? picomatch(full, { dot: true }) : null;
  const matchBase = base.length > 0 ? picomatch(base, { dot: true }) : null;
  return (rel) => (matchFull?.(rel) ?? false) || (matchBase?.(path.posix.basename(rel)) ?? false);
}

const toPosix = (p: string): string => (path.sep === '/' ? p : p.split(path.sep).join('/'));
const isMissing = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/** Only a file whose mode bits deny someone reading is asked about (most files cost no extra call). */
async function unreadable(abs: string, stats: Stats): Promise<boolean> {
  if ((stats.mode & 0o444) === 0o444) return false;
  return fsp.access(abs, fsConstants.R_OK).then(
    () => false,
    () => true,
  );
}

/** Who the folder is: an inode number comes back at once for a directory removed and made again, its birth time does not. */
const rootId = (st: Stats): string => `${st.dev}:${st.ino}:${st.birthtimeMs}`;
const rootSignature = (state: RootState): string => ('problem' in state ? state.problem : `${state.id}@${state.real}`);

function versionOf(stats: Stats): string {
  return `${Math.trunc(stats.mtimeMs)}:${stats.size}`;
}

/**
 * Indexes a folder: the first reconcile lists it and emits what changed since the store last
 * saw it; one watch per directory (armed by the walk, before the directory is read) then
 * follows it (debounced per path, stat at emit time) and a periodic reconcile heals whatever
 * the watches missed. A restart (the store recorded a full listing before) serves at once:
 * its reconcile runs after `start` resolves and still finds what changed while it was down.
 * A reconcile keeps nothing per file but the version the store knows (`mtime:size`), walks in
 * slices and yields between them. A file is read only if the file opened
 * lies inside the folder (see `readInside`); the folder itself is looked at twice a second, and
 * a folder removed and created again is watched again. What could not be indexed (unreadable,
 * a name that is not UTF-8, a path leading out) is reported in the source's health.
 *
 * @example
 * const source = new FolderSource({ path: './docs', include: ['*.md', '*.pdf'] });
 * await source.start(ctx); // emits upserts/deletes through ctx.emit
 * await source.stop();
 */
export class FolderSource implements Source {
  readonly id: string;
  readonly #opts: ResolvedOptions;
  /** The folder as given, normalized, POSIX, without a trailing slash: the prefix of every key. */
  readonly #prefix: string;
  readonly #root: string;
  #rootReal = '';
  /** The folder as given resolved through a link: it then goes wherever that link points later. */
  #rootThroughLink = false;
  /** Real paths of the excluded directories: a followed link must not lead into them. */
  #excludedReal: string[] = [];
  readonly #excludeDirs: string[];
  readonly #include: GlobMatcher | null;
  readonly #exclude: GlobMatcher | null;
  /** Directories matched whole by an exclude pattern such as `build/**`: never entered. */
  readonly #excludeDir: GlobMatcher | null;
  /** Dot-directories named by an include pattern (`.github/**`) may be entered. */
  readonly #dotDirs: ((name: string) => boolean) | null;

  #ctx: SourceContext | null = null;
  #log: Logger | null = null;
  #watcher: DirWatcher | null = null;
  /** Identity (`rootId`) of the directory the watcher follows; null while there is none. */
  #watchedId: string | null = null;
  /** What the last look at the folder itself saw: a check reconciles only when it changed. */
  #rootSeen = '';
  #rootTimer: NodeJS.Timeout | null = null;
  #checkingRoot = false;
  #interval: NodeJS.Timeout | null = null;
  /** Each debounced path's timer, and when its first event since it was last looked at came (ms). */
  readonly #debounced = new Map<string, { timer: NodeJS.Timeout; since: number }>();
  readonly #rescans = new Map<string, NodeJS.Timeout>();
  /** Directories where the watcher saw a name that is not UTF-8, to be listed as bytes. */
  readonly #nameChecks = new Map<string, NodeJS.Timeout>();
  readonly #dirty = new Set<string>();
  /** What could not be indexed, and why: replaced by each reconcile, kept up to date between them. */
  #skipped: SkipList;
  #state: 'idle' | 'error' | null = null;
  #lastSyncAt: number | null = null;
  /** What this source believes the store knows: key → version (seeded from the store by the first reconcile). */
  readonly #known = new Map<string, string>();
  #seeded = false;
  /** Keys the watcher emitted while a reconcile walked: newer than what the walk saw, so the walk leaves them alone. */
  #emittedMeanwhile: Set<string> | null = null;
  /** Serializes the emits of reconciles so that they never interleave (watcher flushes have `#flushChain`). */
  #chain: Promise<void> = Promise.resolve();
  /** Serializes reconciles; their walks run beside watcher flushes, only their emits queue on `#chain`. */
  #reconciles: Promise<void> = Promise.resolve();
  /**
   * Watcher changes are emitted on their own chain: a reconcile's emit waiting on a full
   * pipeline queue must not hold a live edit back (the pipeline takes edits ahead of a backlog).
   */
  #flushChain: Promise<void> = Promise.resolve();
  #pendingReconcile: Promise<void> | null = null;
  /** The listing marker was written (or asked for) by this run: later reconciles need not write it again. */
  #listedOnce = false;
  /** The first reconcile after `start` (see `synced`). */
  #firstReconcile: Promise<void> = Promise.resolve();
  #flushQueued = false;
  #ready = false;
  #stopped = false;
  #onAbort: (() => void) | null = null;

  constructor(options: FsSourceOptions, defaults: { dataDir?: string } = {}) {
    this.#opts = fsSourceOptionsSchema.parse(options);
    this.#root = path.resolve(this.#opts.path);
    this.id = `fs:${this.#root}`;
    const normalized = toPosix(path.normalize(this.#opts.path));
    this.#prefix = normalized.length > 1 ? normalized.replace(/\/+$/, '') : normalized;
    const dirs = [...this.#opts.exclude_dirs];
    if (defaults.dataDir) dirs.push(defaults.dataDir);
    this.#excludeDirs = dirs.map((d) => path.resolve(d)).filter((d) => d !== this.#root);
    this.#include = compileGlobs(this.#opts.include);
    this.#exclude = compileGlobs(this.#opts.exclude);
    const dirPatterns = this.#opts.exclude.filter((p) => p.endsWith('/**')).map((p) => p.slice(0, -3));
    this.#excludeDir = compileGlobs(dirPatterns.filter((p) => p.length > 0));
    const dotSegments = this.#opts.include.flatMap((p) =>
      p.split('/').filter((s) => s.startsWith('.') && s !== '.' && s !== '..'),
    );
    this.#dotDirs = dotSegments.length > 0 ? picomatch(dotSegments, { dot: true }) : null;
    this.#skipped = new SkipList(this.#opts.skipped_listed);
  }

  owns(key: string): boolean {
    // Relative keys, but not those of the cloud and push sources (`s3:…`, `push:…`).
    if (this.#prefix === '.') return !path.posix.isAbsolute(key) && key !== '..' && !key.startsWith('../') && !isNamedKey(key);
    if (this.#prefix === '/') return key.startsWith('/');
    return key.startsWith(this.#prefix + '/');
  }

  async start(ctx: SourceContext): Promise<void> {
    if (this.#ctx) throw new LivedexError('internal', `source ${this.id} was started twice`);
    this.#ctx = ctx;
    this.#log = ctx.logger;
    this.#stopped = false;
    try {
      const st = await fsp.stat(this.#root);
      if (!st.isDirectory()) throw new Error('not a directory');
      this.#rootReal = await fsp.realpath(this.#root);
      this.#rootThroughLink = this.#rootReal !== this.#root;
      this.#watchedId = rootId(st);
      this.#rootSeen = rootSignature({ id: this.#watchedId, real: this.#rootReal });
    } catch (err) {
      this.#ctx = null;
      throw new LivedexError('config_error', `folder source: ${this.#opts.path} is not a readable directory`, {
        field: 'path',
        cause: err,
      });
    }
    this.#excludedReal = await Promise.all(this.#excludeDirs.map((d) => fsp.realpath(d).catch(() => d)));
    this.#onAbort = () => void this.stop();
    if (ctx.signal.aborted) return this.stop();
    ctx.signal.addEventListener('abort', this.#onAbort, { once: true });

    // The walk arms each directory's watch before reading it: a change made while listing is then seen by one or the other.
    this.#startWatcher();
    try {
      if (await this.#listedBefore(ctx)) {
        // A restart: the index serves what it has; the listing finds what changed while it was down.
        this.#ready = true;
        this.#listedOnce = true;
        this.#firstReconcile = this.reconcile();
        this.#firstReconcile.catch((err: unknown) => this.#log?.warn('folder reconcile failed', { source: this.id, error: describeError(err) }));
      } else {
        await this.reconcile();
        this.#ready = true;
        if (this.#dirty.size > 0) this.#queueFlush();
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    if (this.#opts.reconcile_interval_s > 0 && !this.#stopped) {
      this.#interval = setInterval(() => {
        this.reconcile().catch((err: unknown) => this.#log?.warn('folder reconcile failed', { source: this.id, error: describeError(err) }));
      }, this.#opts.reconcile_interval_s * 1000);
      this.#interval.unref();
    }
    if (!this.#stopped) {
      this.#rootTimer = setInterval(() => void this.#checkRoot(), ROOT_CHECK_MS);
      this.#rootTimer.unref();
    }
  }

  /** Lists the folder and emits the differences with the store; coalesces concurrent calls. */
  reconcile(): Promise<void> {
    if (!this.#ctx || this.#stopped) return Promise.resolve();
    // One reconcile may wait behind the running one; later callers share it.
    if (this.#pendingReconcile) return this.#pendingReconcile;
    const run = this.#reconciles.then(async () => {
      this.#pendingReconcile = null;
      if (!this.#stopped) await this.#reconcileNow();
    });
    this.#reconciles = run.catch(() => undefined);
    this.#pendingReconcile = run;
    return run;
  }

  /** Resolves once the first reconcile after `start` has been emitted (at once when `start` waited for it); a failed one counts as done. */
  synced(): Promise<void> {
    return this.#firstReconcile.catch(() => undefined);
  }

  /** How many directories are watched (one system watch each). */
  get watchedDirectories(): number {
    return this.#watcher?.count ?? 0;
  }

  /** True when the store holds a full listing of this folder from an earlier run (then `start` need not wait for one). */
  async #listedBefore(ctx: SourceContext): Promise<boolean> {
    const cursor = await ctx.getCursor();
    if (cursor === null) return false;
    try {
      return (JSON.parse(cursor) as { listed?: unknown }).listed === this.#rootReal;
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return this.#chain;
    this.#stopped = true;
    if (this.#onAbort) this.#ctx?.signal.removeEventListener('abort', this.#onAbort);
    if (this.#interval) clearInterval(this.#interval);
    this.#interval = null;
    if (this.#rootTimer) clearInterval(this.#rootTimer);
    this.#rootTimer = null;
    for (const t of [...[...this.#debounced.values()].map((d) => d.timer), ...this.#rescans.values(), ...this.#nameChecks.values()]) clearTimeout(t);
    this.#debounced.clear();
    this.#rescans.clear();
    this.#nameChecks.clear();
    this.#closeWatcher();
    await Promise.all([this.#chain, this.#reconciles, this.#flushChain]);
  }

  // ───────────── the folder itself ─────────────

  /** What is at the folder's path now. */
  async #rootState(): Promise<RootState> {
    let st: Stats;
    let real: string;
    try {
      st = await fsp.stat(this.#root);
      if (!st.isDirectory()) return { problem: `folder not reachable: ${this.#opts.path} is no longer a directory` };
      real = await fsp.realpath(this.#root);
    } catch (err) {
      return { problem: `folder not reachable: ${describeError(err)}` };
    }
    if (real !== this.#rootReal && !this.#rootThroughLink) {
      // Given as a plain directory, it became a link: following it would read wherever it points.
      return { problem: `folder not reachable: ${this.#opts.path} now leads to ${real} through a symbolic link, which is not followed (restart livedex to index it there)` };
    }
    return { id: rootId(st), real };
  }

  /** Looks at the folder itself; when it vanished, came back or changed, reconciles (which watches it again). */
  async #checkRoot(): Promise<void> {
    if (this.#stopped || this.#checkingRoot || !this.#ready) return;
    this.#checkingRoot = true;
    try {
      if (rootSignature(await this.#rootState()) !== this.#rootSeen && !this.#stopped) await this.reconcile();
    } catch (err) {
      this.#log?.warn('folder reconcile failed', { source: this.id, error: describeError(err) });
    } finally {
      this.#checkingRoot = false;
    }
  }

  #closeWatcher(): void {
    const watcher = this.#watcher;
    this.#watcher = null;
    this.#watchedId = null;
    watcher?.close();
  }

  // ───────────── health ─────────────

  /** Tells the index how the source is doing, with what it skipped. */
  #report(state: 'idle' | 'error', error?: string): void {
    this.#state = state;
    if (state === 'idle') this.#lastSyncAt = Math.floor(Date.now() / 1000);
    const skipped = this.#skipped.toHealth();
    this.#ctx?.reportHealth({ state, ...(error !== undefined ? { error } : {}), ...(skipped ? { skipped } : {}) });
  }

  /** The skipped paths changed between reconciles: the same state, with the new list. */
  #reportSkipped(): void {
    if (this.#state !== 'idle' || this.#stopped) return;
    const skipped = this.#skipped.toHealth();
    this.#ctx?.reportHealth({ state: 'idle', last_sync_at: this.#lastSyncAt, ...(skipped ? { skipped } : {}) });
  }

  /** A path found between reconciles that will not be indexed: warned about once, reported. */
  #noteSkip(key: string, reason: string): void {
    if (!this.#skipped.note(key, reason)) return;
    this.#log?.warn(`skipped: ${reason}`, { source: this.id, path: key });
    this.#reportSkipped();
  }

  #clearSkip(key: string): void {
    if (this.#skipped.clear(key)) this.#reportSkipped();
  }

  // ───────────── listing ─────────────

  #enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(() => (this.#stopped ? undefined : job()));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #reconcileNow(): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx) return;
    const root = await this.#rootState();
    this.#rootSeen = rootSignature(root);
    if ('problem' in root) {
      // A vanished or unmounted root must not wipe the index; the watcher reports real deletions.
      // Its watches are on a directory that is gone: drop them; the folder's return re-arms it.
      this.#closeWatcher();
      ctx.logger.warn('folder is not reachable; reconcile skipped', { source: this.id, error: root.problem });
      this.#report('error', root.problem);
      return;
    }
    if (root.id !== this.#watchedId || root.real !== this.#rootReal) {
      // Created again (or its link points elsewhere): fresh watches, armed by the listing below.
      const back = this.#watchedId === null && this.#rootSeen !== '';
      this.#closeWatcher();
      this.#rootReal = root.real;
      this.#startWatcher();
      this.#watchedId = root.id;
      if (back) ctx.logger.info('folder is back; watching it again', { source: this.id });
    }
    const started = Date.now();
    const emittedMeanwhile = new Set<string>();
    this.#emittedMeanwhile = emittedMeanwhile;
    try {
      if (!this.#seeded) {
        // The store is the truth after a restart; afterwards this source's own record of what it emitted is.
        for (const [key, version] of await ctx.knownVersions()) if (this.owns(key) && !emittedMeanwhile.has(key)) this.#known.set(key, version);
        this.#seeded = true;
        // Watcher changes can be compared with what is known from now on, while the walk goes on.
        if (this.#dirty.size > 0) this.#queueFlush();
      }
      await this.#listAndEmit(ctx, started);
    } finally {
      if (this.#emittedMeanwhile === emittedMeanwhile) this.#emittedMeanwhile = null;
    }
  }

  /** Walks the folder, emitting what differs from `#known` as it goes; deletions once the walk is whole. */
  async #listAndEmit(ctx: SourceContext, started: number): Promise<void> {
    const emittedMeanwhile = this.#emittedMeanwhile ?? new Set<string>();
    const skipped = new SkipList(this.#opts.skipped_listed);
    const seen = new Set<string>();
    let pending: Change[] = [];
    let upserts = 0;
    let deletes = 0;
    let sinceYield = 0;
    /** Emits on the chain, dropping what the watcher emitted since the walk looked (its view is newer). */
    const hand = (changes: Change[]): Promise<void> =>
      this.#enqueue(async () => {
        const fresh = changes.filter((c) =>
          c.kind === 'upsert'
            ? !emittedMeanwhile.has(c.doc.key) && this.#known.get(c.doc.key) !== c.doc.version
            : !emittedMeanwhile.has(c.key) && this.#known.has(c.key),
        );
        for (const c of fresh) c.kind === 'upsert' ? upserts++ : deletes++;
        await this.#emit(fresh, emittedMeanwhile);
      });
    const listing: Listing = {
      file: (key, item) => {
        seen.add(key);
        sinceYield++;
        if (this.#known.get(key) !== versionOf(item.stats)) pending.push({ kind: 'upsert', doc: this.#document(key, item) });
      },
      afterDir: async () => {
        if (pending.length >= BATCH) {
          const batch = pending;
          pending = [];
          await hand(batch);
        }
        if (sinceYield >= WALK_SLICE) {
          sinceYield = 0;
          await yieldToQueries();
        }
      },
      unsure: [],
      skip: (key, reason) => skipped.add(key, reason),
    };
    // Fresh watches (a first listing): arm them all before the walk, which the pipeline's
    // back-pressure paces; a directory it reaches late would otherwise hide an edit until then,
    // and hand it over behind the backlog.
    if (this.#watcher && !this.#watcher.has(this.#root)) await this.#watchTree(this.#root);
    await this.#walk(this.#root, [this.#rootReal], listing);
    if (this.#stopped) return;
    // A directory that could not be read (EACCES, EMFILE…) keeps its documents until it can.
    const unsureKeys = listing.unsure.map((abs) => this.#keyOf(abs));
    const unsure = (key: string): boolean => unsureKeys.some((u) => key === u || key.startsWith(u + '/') || u === this.#prefix);
    let compared = 0;
    for (const key of [...this.#known.keys()]) {
      if (!seen.has(key) && this.owns(key) && !unsure(key)) pending.push({ kind: 'delete', key });
      if (++compared % COMPARE_SLICE === 0) await yieldToQueries();
    }
    if (listing.unsure.length > 0) {
      ctx.logger.warn('parts of the folder could not be read; their documents are kept as they were', {
        source: this.id,
        paths: listing.unsure.slice(0, 10),
      });
    }
    this.#warnNewSkips(skipped);
    this.#skipped = skipped;
    await hand(pending);
    if (this.#stopped) return;
    if (listing.rootError !== undefined) {
      this.#report('error', `folder cannot be listed: ${listing.rootError}`);
    } else {
      this.#report('idle');
      // A later start may then serve at once and reconcile after (see `#listedBefore`), but only
      // once the store holds what this listing found: a crash before that lists in full again.
      if (!this.#listedOnce) {
        this.#listedOnce = true;
        const listed = JSON.stringify({ listed: this.#rootReal });
        void ctx
          .settled()
          .then(() => (this.#stopped ? undefined : ctx.setCursor(listed)))
          .catch((err: unknown) => this.#log?.warn('folder listing marker not written; the next start lists in full', { source: this.id, error: describeError(err) }));
      }
    }
    ctx.logger.debug('folder reconciled', { source: this.id, files: seen.size, upserts, deletes, skipped: skipped.count, ms: Date.now() - started });
  }

  /** One warning per path a listing skipped that the last one had not (and one for the ones beyond the list). */
  #warnNewSkips(fresh: SkipList): void {
    const report = fresh.toHealth();
    if (!report) return;
    for (const { path: key, reason } of report.paths) {
      if (!this.#skipped.has(key)) this.#log?.warn(`skipped: ${reason}`, { source: this.id, path: key });
    }
    const unlisted = report.count - report.paths.length;
    if (unlisted > 0 && report.count !== this.#skipped.count) {
      this.#log?.warn('more paths skipped than status lists', { source: this.id, count: report.count, listed: report.paths.length, hint: 'raise skipped_listed to see more' });
    }
  }

  /** Watches every directory under `root` (links are left to the walk), yielding between slices. */
  async #watchTree(root: string): Promise<void> {
    const dirs = [root];
    let sinceYield = 0;
    while (dirs.length > 0 && !this.#stopped && this.#watcher) {
      const dir = dirs.pop()!;
      this.#watcher.add(dir);
      const entries = await fsp.readdir(dir, { withFileTypes: true, encoding: 'buffer' }).catch(() => []);
      for (const entry of entries) {
        if (!entry.isDirectory() || !isUtf8(entry.name)) continue;
        const abs = path.join(dir, entry.name.toString('utf8'));
        if (this.#enterable(abs)) dirs.push(abs);
      }
      if (++sinceYield >= WALK_SLICE / 100) {
        sinceYield = 0;
        await yieldToQueries();
      }
    }
  }

  /** Walks `dir` into `out`; `ancestors` holds real paths on the way down, so links never loop. */
  async #walk(dir: string, ancestors: string[], out: Listing): Promise<void> {
    if (this.#stopped) return;
    this.#watcher?.add(dir);
    let entries: Dirent<Buffer>[];
    try {
      // Names as bytes: a name that is not UTF-8 would otherwise come back mangled (and never open).
      entries = await fsp.readdir(dir, { withFileTypes: true, encoding: 'buffer' });
    } catch (err) {
      if (!isMissing(err)) {
        this.#log?.warn('cannot list directory', { dir, error: describeError(err) });
        out.unsure.push(dir);
        if (dir === this.#root) out.rootError = skipReasonOf(err);
        else out.skip(this.#keyOf(dir), skipReasonOf(err));
      }
      return;
    }
    const files: string[] = [];
    const dirs: string[] = [];
    const links: string[] = [];
    for (const entry of entries) {
      const abs = path.join(dir, entry.name.toString('utf8'));
      const valid = isUtf8(entry.name);
      if (entry.isDirectory()) {
        if (!this.#enterable(abs)) continue;
        if (valid) dirs.push(abs);
        else out.skip(this.#keyOfName(dir, entry.name), SKIP_REASONS.invalidDirName);
      } else if (entry.isFile()) {
        if (!this.#wanted(abs)) continue;
        if (valid) files.push(abs);
        else out.skip(this.#keyOfName(dir, entry.name), SKIP_REASONS.invalidFileName);
      } else if (entry.isSymbolicLink() && this.#opts.follow_symlinks) {
        if (valid) links.push(abs);
        else if (this.#wanted(abs)) out.skip(this.#keyOfName(dir, entry.name), SKIP_REASONS.invalidFileName);
      } // sockets, FIFOs, devices, unfollowed links: never documents
    }
    const stats = await mapLimited(files, STAT_CONCURRENCY, (abs) => this.#statFile(abs, false, out.skip));
    files.forEach((abs, i) => {
      const st = stats[i];
      if (st === 'unsure') out.unsure.push(abs);
      else if (st && st !== 'gone' && st !== 'dir') out.file(this.#keyOf(abs), { abs, stats: st });
    });
    for (const abs of links) {
      const target = await this.#resolveLink(abs, out.skip);
      if (!target) continue;
      if (target.stats.isFile()) {
        if (!this.#wanted(abs)) continue;
        if (await unreadable(target.real, target.stats)) {
          out.unsure.push(abs);
          out.skip(this.#keyOf(abs), SKIP_REASONS.permissionDenied);
        } else {
          out.file(this.#keyOf(abs), { abs, stats: target.stats });
        }
      } else if (target.stats.isDirectory() && this.#enterable(abs)) {
        if (ancestors.some((a) => a === target.real || a.startsWith(target.real + path.sep))) {
          this.#log?.debug('symlink loop skipped', { path: abs });
        } else {
          await this.#walk(abs, [...ancestors, target.real], out);
        }
      }
    }
    await out.afterDir?.();
    for (const abs of dirs) {
      const real = this.#opts.follow_symlinks ? await fsp.realpath(abs).catch(() => abs) : abs;
      await this.#walk(abs, [...ancestors, real], out);
    }
  }

  /** Follows a link; null when it dangles, leaves the folder or leads into an excluded directory (`skip` says which). */
  async #resolveLink(abs: string, skip: Listing['skip']): Promise<{ real: string; stats: Stats } | null> {
    try {
      const real = await fsp.realpath(abs);
      if (!isInside(real, this.#rootReal)) {
        skip(this.#keyOf(abs), SKIP_REASONS.linkOutside);
        return null;
      }
      if (this.#excludedReal.some((d) => isInside(real, d))) {
        skip(this.#keyOf(abs), SKIP_REASONS.opensExcluded);
        return null;
      }
      return { real, stats: await fsp.stat(real) };
    } catch (err) {
      if (!isMissing(err)) {
        this.#log?.warn('cannot follow symlink', { path: abs, error: describeError(err) });
        skip(this.#keyOf(abs), skipReasonOf(err));
      }
      return null;
    }
  }

  /**
   * Looks at a candidate file: gone when it is not there, not a regular file, or an unfollowed
   * link; unsure when it cannot be stat'ed or read (then `skip` says why, and it is kept as it was).
   * `fromEvent`: the path came from the watcher, which may reach it through a followed link,
   * so with `follow_symlinks` its real path must still lie inside the folder.
   */
  async #statFile(abs: string, fromEvent: boolean, skip: Listing['skip']): Promise<FileState> {
    try {
      let st: Stats;
      let real = abs;
      if (fromEvent && this.#opts.follow_symlinks) {
        const target = await this.#resolveLink(abs, skip);
        if (target?.stats.isDirectory()) return 'dir';
        if (!target?.stats.isFile()) return 'gone';
        ({ stats: st, real } = target);
      } else {
        st = await fsp.lstat(abs);
        if (st.isDirectory()) return 'dir';
        if (!st.isFile()) return 'gone';
      }
      if (await unreadable(real, st)) {
        skip(this.#keyOf(abs), SKIP_REASONS.permissionDenied);
        return 'unsure';
      }
      return st;
    } catch (err) {
      if (isMissing(err)) return 'gone';
      this.#log?.warn('cannot stat file', { path: abs, error: describeError(err) });
      skip(this.#keyOf(abs), skipReasonOf(err));
      return 'unsure';
    }
  }

  /** Reports the names in `dir` that are not valid UTF-8 (the watcher only ever sees them mangled). */
  async #checkNames(dir: string): Promise<void> {
    const entries = await fsp.readdir(dir, { withFileTypes: true, encoding: 'buffer' }).catch(() => []);
    for (const entry of entries) {
      if (isUtf8(entry.name)) continue;
      const abs = path.join(dir, entry.name.toString('utf8'));
      if (entry.isDirectory() && this.#enterable(abs)) this.#noteSkip(this.#keyOfName(dir, entry.name), SKIP_REASONS.invalidDirName);
      else if ((entry.isFile() || (entry.isSymbolicLink() && this.#opts.follow_symlinks)) && this.#wanted(abs)) {
        this.#noteSkip(this.#keyOfName(dir, entry.name), SKIP_REASONS.invalidFileName);
      }
    }
  }

  // ───────────── filters ─────────────

  #rel(abs: string): string | null {
    const rel = path.relative(this.#root, abs);
    if (rel === '' || rel === '..' || rel.startsWith('..' + path.sep) || path.isAbsolute(rel)) return null;
    return toPosix(rel);
  }

  #inExcludedDir(abs: string): boolean {
    return this.#excludeDirs.some((d) => abs === d || abs.startsWith(d + path.sep));
  }

  /** May the walk enter this directory? */
  #enterable(abs: string): boolean {
    const rel = this.#rel(abs);
    if (rel === null || this.#inExcludedDir(abs)) return false;
    const name = path.posix.basename(rel);
    if (name.startsWith('.') && !(this.#dotDirs?.(name) ?? false)) return false;
    return !(this.#excludeDir?.(rel) ?? false);
  }

  /** Is this file path a document of this source (ignoring what is on disk)? */
  #wanted(abs: string): boolean {
    const rel = this.#rel(abs);
    if (rel === null || this.#inExcludedDir(abs)) return false;
    const segments = rel.split('/');
    const name = segments.pop() ?? '';
    if (TEMP_FILE.test(name)) return false;
    let dirRel = '';
    for (const seg of segments) {
      dirRel = dirRel ? `${dirRel}/${seg}` : seg;
      if (seg.startsWith('.') && !(this.#dotDirs?.(seg) ?? false)) return false;
      if (this.#excludeDir?.(dirRel)) return false;
    }
    if (this.#include && !this.#include(rel)) return false;
    return !(this.#exclude?.(rel) ?? false);
  }

  // ───────────── documents ─────────────

  #keyOf(abs: string): string {
    const rel = this.#rel(abs) ?? '';
    return toPosix(path.join(this.#opts.path, rel));
  }

  /** The key of an entry of `dir` whose name is not valid UTF-8, its bad bytes written `\xHH`. */
  #keyOfName(dir: string, name: Uint8Array): string {
    const parent = this.#rel(dir);
    const rel = parent === null ? printableName(name) : `${parent}/${printableName(name)}`;
    if (this.#prefix === '.') return rel;
    return this.#prefix === '/' ? `/${rel}` : `${this.#prefix}/${rel}`;
  }

  #absOf(key: string): string {
    const rel = this.#prefix === '.' ? key : key.slice(this.#prefix === '/' ? 1 : this.#prefix.length + 1);
    return path.join(this.#root, rel);
  }

  #document(key: string, item: Listed): SourceDocument {
    const { abs, stats } = item;
    const modified = Math.floor(stats.mtimeMs / 1000);
    const born = stats.birthtimeMs > 0 ? Math.floor(stats.birthtimeMs / 1000) : modified;
    return {
      key,
      version: versionOf(stats),
      metadata: { path: key, modified_at: modified, created_at: born, size: stats.size, owner: String(stats.uid) },
      read: (signal?: AbortSignal) => this.#read(key, abs, signal),
    };
  }

  /**
   * Reads a listed file as it is now: the path may have become a FIFO (whose open would block a
   * thread for good), a device, or a link out of the folder since it was listed, or a directory
   * on its way may have been swapped for one. `readInside` checks the file it opened.
   */
  async #read(key: string, abs: string, signal?: AbortSignal): Promise<Uint8Array> {
    const boundary: Boundary = { rootReal: this.#rootReal, followLinks: this.#opts.follow_symlinks, excluded: this.#excludedReal };
    try {
      const bytes = await readInside(abs, path.join(this.#rootReal, path.relative(this.#root, abs)), boundary, signal);
      this.#clearSkip(key);
      return bytes;
    } catch (err) {
      if (err instanceof RefusedPathError) {
        if (err.reason !== null) {
          this.#log?.warn('read refused: the file opened lies outside what the folder may read', { source: this.id, path: key, error: err.message });
          this.#noteSkip(key, err.reason);
        }
      } else if (!isMissing(err) && !signal?.aborted) {
        this.#noteSkip(key, skipReasonOf(err));
      }
      throw err;
    }
  }

  /** Hands `changes` over; keys in `newer` (emitted by the watcher meanwhile) keep the watcher's version. */
  async #emit(changes: Change[], newer?: ReadonlySet<string>): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx) return;
    for (let i = 0; i < changes.length && !this.#stopped; i += BATCH) {
      const batch = changes.slice(i, i + BATCH);
      await ctx.emit(batch);
      for (const c of batch) {
        if (newer?.has(c.kind === 'upsert' ? c.doc.key : c.key)) continue;
        if (c.kind === 'upsert') this.#known.set(c.doc.key, c.doc.version);
        else this.#known.delete(c.key);
      }
    }
  }

  // ───────────── watching ─────────────

  /** Fresh, empty watches: the next walk arms one per directory it enters. */
  #startWatcher(): void {
    if (this.#stopped) return;
    const watcher: DirWatcher = new DirWatcher({
      changed: (dir, name) => {
        if (this.#watcher !== watcher || this.#stopped) return;
        if (name === null) return this.#scheduleRescan(dir);
        // A name that is not UTF-8 cannot be opened by its text: list the directory as bytes.
        if (!isUtf8(name)) return this.#scheduleNameCheck(dir);
        const text = name.toString('utf8');
        // A directory's own watch names the directory when it goes; for the folder itself, look at once.
        if (dir === this.#root && text === path.basename(dir)) void this.#checkRoot();
        this.#touch(path.join(dir, text));
      },
      failed: (dir, err) => {
        const code = (err as NodeJS.ErrnoException).code;
        if (isMissing(err) || this.#watcher !== watcher) return; // gone: its parent's watch reports it
        this.#log?.warn('folder watch failed; the next reconcile heals what it missed', {
          source: this.id,
          dir,
          error: describeError(err),
          ...(code === 'ENOSPC' ? { hint: 'raise fs.inotify.max_user_watches or lower reconcile_interval_s' } : {}),
        });
      },
    });
    this.#watcher = watcher;
  }

  /**
   * Debounces a path; when quiet for `debounce_ms`, it is checked against the disk. A path
   * written without a pause (a log, a file saved by a tool every few ms) is checked once
   * `debounce_max_ms` has passed since its first event, or it would never be indexed.
   */
  #touch(abs: string): void {
    if (this.#stopped) return;
    const prev = this.#debounced.get(abs);
    if (prev) clearTimeout(prev.timer);
    const now = Date.now();
    const since = prev?.since ?? now;
    const { debounce_ms, debounce_max_ms } = this.#opts;
    const deadline = since + Math.max(debounce_max_ms, debounce_ms);
    const timer = setTimeout(() => {
      this.#debounced.delete(abs);
      this.#dirty.add(abs);
      this.#queueFlush();
    }, Math.max(0, Math.min(debounce_ms, deadline - now)));
    this.#debounced.set(abs, { timer, since });
  }

  /** Directories disappeared (deleted, renamed away, replaced): their watches go, and every known document under them is checked. */
  #touchKnownUnder(absDirs: readonly string[]): void {
    if (absDirs.length === 0) return;
    for (const dir of absDirs) this.#watcher?.dropUnder(dir);
    if (absDirs.some((d) => this.#rel(d) === null)) {
      for (const key of this.#known.keys()) this.#touch(this.#absOf(key));
      return;
    }
    const dirKeys = new Set(absDirs.map((d) => this.#keyOf(d)));
    // One pass over what is known, each key's parents looked up: a tree of thousands of directories is not thousands of passes.
    for (const key of this.#known.keys()) {
      for (let i = key.lastIndexOf('/'); i > 0; i = key.lastIndexOf('/', i - 1)) {
        if (dirKeys.has(key.slice(0, i))) {
          this.#touch(this.#absOf(key));
          break;
        }
      }
    }
    let cleared = false;
    for (const dirKey of dirKeys) cleared = this.#skipped.clearUnder(dirKey) || cleared;
    if (cleared) this.#reportSkipped();
  }

  /** A directory appeared (created or renamed in): a little later it is walked, which watches it and checks every file in it. */
  #scheduleRescan(absDir: string): void {
    if (this.#stopped) return;
    for (const [pending, timer] of this.#rescans) {
      if (absDir === pending || absDir.startsWith(pending + path.sep)) return; // covered by a pending ancestor
      if (pending.startsWith(absDir + path.sep)) {
        clearTimeout(timer);
        this.#rescans.delete(pending);
      }
    }
    const timer = setTimeout(() => {
      this.#rescans.delete(absDir);
      if (this.#stopped) return;
      this.#touchTree(absDir).catch((err: unknown) => this.#log?.warn('cannot list new directory', { dir: absDir, error: describeError(err) }));
    }, this.#opts.debounce_ms);
    this.#rescans.set(absDir, timer);
  }

  #scheduleNameCheck(absDir: string): void {
    if (this.#stopped || this.#nameChecks.has(absDir) || this.#nameChecks.size > 1000) return;
    this.#nameChecks.set(
      absDir,
      setTimeout(() => {
        this.#nameChecks.delete(absDir);
        if (!this.#stopped) void this.#checkNames(absDir);
      }, Math.max(this.#opts.debounce_ms, 100)),
    );
  }

  /** Every file under `absDir` becomes a candidate, and every directory under it is watched. */
  async #touchTree(absDir: string): Promise<void> {
    if (this.#stopped || !this.#enterable(absDir)) return;
    const ancestors = [this.#rootReal];
    if (this.#opts.follow_symlinks) {
      // A directory reached through a link must not lead the walk back onto its own ancestors.
      for (let dir = path.dirname(absDir); dir.length >= this.#root.length; dir = path.dirname(dir)) {
        ancestors.push(await fsp.realpath(dir).catch(() => dir));
        if (dir === this.#root || dir === path.dirname(dir)) break;
      }
      const real = await fsp.realpath(absDir).catch(() => absDir);
      if (!isInside(real, this.#rootReal) || ancestors.some((a) => a === real || a.startsWith(real + path.sep))) return;
      ancestors.push(real);
    }
    const found: Listing = { file: (_key, item) => this.#touch(item.abs), unsure: [], skip: (key, reason) => this.#noteSkip(key, reason) };
    await this.#walk(absDir, ancestors, found);
  }

  #queueFlush(): void {
    if (!this.#seeded || this.#flushQueued || this.#stopped) return;
    this.#flushQueued = true;
    const run = this.#flushChain.then(async () => {
      this.#flushQueued = false;
      if (!this.#stopped) await this.#flush();
    });
    this.#flushChain = run.catch((err: unknown) => this.#log?.warn('folder change delivery failed', { source: this.id, error: describeError(err) }));
  }

  /** What a path the watcher named is now, looked at on disk: a file of ours, a directory, or neither. */
  async #lookAt(abs: string, skip: Listing['skip']): Promise<FileState> {
    if (this.#wanted(abs)) return this.#statFile(abs, true, skip);
    try {
      const st = this.#opts.follow_symlinks ? await fsp.stat(abs) : await fsp.lstat(abs);
      return st.isDirectory() ? 'dir' : 'gone';
    } catch {
      return 'gone';
    }
  }

  /**
   * Turns dirty paths into changes by looking at the disk now (not at what the event said).
   * Changes of files the index has go first; new files (a burst copied in) follow a batch at a
   * time, and a path that turns dirty meanwhile is looked at before the next batch: an edit
   * never waits in here while the pipeline pushes back on a burst.
   */
  async #flush(): Promise<void> {
    const skip: Listing['skip'] = (key, reason) => this.#noteSkip(key, reason);
    let fresh: { abs: string; change: Change }[] = [];
    while ((this.#dirty.size > 0 || fresh.length > 0) && !this.#stopped) {
      if (this.#dirty.size === 0) {
        await this.#emit(fresh.splice(0, BATCH).map((f) => f.change));
        continue;
      }
      const paths = [...this.#dirty];
      this.#dirty.clear();
      const looked = new Set(paths);
      fresh = fresh.filter((f) => !looked.has(f.abs));
      const states = await mapLimited(paths, STAT_CONCURRENCY, (abs) => this.#lookAt(abs, skip));
      const changes: Change[] = [];
      const vanished: string[] = [];
      paths.forEach((abs, i) => {
        if (this.#rel(abs) === null) return;
        const key = this.#keyOf(abs);
        const st = states[i];
        if (st === undefined || st === 'unsure') return; // kept as it was; the skipped list says why
        if (st === 'dir') {
          if (!this.#watcher?.has(abs) && this.#enterable(abs)) this.#scheduleRescan(abs);
        } else if (this.#watcher?.has(abs)) {
          vanished.push(abs); // a watched directory is gone, or is a file now
        }
        this.#clearSkip(key);
        if (st !== 'gone' && st !== 'dir') {
          if (this.#known.get(key) === versionOf(st)) return;
          const change: Change = { kind: 'upsert', doc: this.#document(key, { abs, stats: st }), live: true };
          if (this.#known.has(key)) changes.push(change);
          else fresh.push({ abs, change });
          this.#emittedMeanwhile?.add(key);
        } else if (this.#known.has(key)) {
          changes.push({ kind: 'delete', key, live: true });
          this.#emittedMeanwhile?.add(key);
        }
      });
      this.#touchKnownUnder(vanished);
      await this.#emit(changes);
    }
  }
}

/** Lets timers and I/O (queries among them) run before the next slice of a walk. */
const yieldToQueries = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export const fsSourcePlugin = definePlugin({
  kind: 'source',
  name: 'fs',
  description: 'A folder on local disk, watched live and reconciled periodically.',
  options: fsSourceOptionsSchema,
  create: (options, ctx) => new FolderSource(options, { dataDir: ctx.dataDir }),
});
