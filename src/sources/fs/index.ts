/** @module sources/fs — the folder source: a reconciled listing of a directory tree, kept live by a watcher. */
import { isUtf8 } from 'node:buffer';
import { constants as fsConstants, promises as fsp, realpathSync, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import picomatch from 'picomatch';
import { z } from 'zod';
import { LivedexError, describeError } from '../../core/errors.js';
import { definePlugin } from '../../core/registry.js';
import type { Change, Logger, Source, SourceContext, SourceDocument } from '../../core/types.js';
import { mapLimited } from '../../core/concurrency.js';
import { isNamedKey } from '../naming.js';
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
  files: Map<string, Listed>;
  /** Absolute paths (directories or files) that failed with something other than "not found". */
  unsure: string[];
  /** Where a path that will not be indexed goes, with why (keyed like a document). */
  skip: (key: string, reason: string) => void;
  /** Why the folder itself could not be listed. */
  rootError?: string;
}

/** What is at the folder's path: a directory (its identity and real path), or why not. */
type RootState = { id: string; real: string } | { problem: string };

/** A candidate file as it is now: its stats, gone (or not a document), or unknown (it could not be looked at). */
type FileState = Stats | 'gone' | 'unsure';

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
 * saw it; a chokidar watcher then follows it (debounced per path, stat at emit time) and a
 * periodic reconcile heals whatever the watcher missed. A file is read only if the file opened
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
  #watcher: FSWatcher | null = null;
  /** Identity (`rootId`) of the directory the watcher follows; null while there is none. */
  #watchedId: string | null = null;
  /** What the last look at the folder itself saw: a check reconciles only when it changed. */
  #rootSeen = '';
  #rootTimer: NodeJS.Timeout | null = null;
  #checkingRoot = false;
  /** Aborted by `stop`, so that nothing waits for a watcher that was closed. */
  readonly #halt = new AbortController();
  /** A path under the folder as given → the same path as the watcher knows it. */
  #watchedPath: (abs: string) => string = (abs) => abs;
  #interval: NodeJS.Timeout | null = null;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #rescans = new Map<string, NodeJS.Timeout>();
  /** Directories where the watcher saw a name that is not UTF-8, to be listed as bytes. */
  readonly #nameChecks = new Map<string, NodeJS.Timeout>();
  /** Real paths of directories, for the watcher's loop check (only with `follow_symlinks`). */
  readonly #realCache = new Map<string, string>();
  readonly #dirty = new Set<string>();
  /** What could not be indexed, and why: replaced by each reconcile, kept up to date between them. */
  #skipped: SkipList;
  #state: 'idle' | 'error' | null = null;
  #lastSyncAt: number | null = null;
  /** What this source believes the store knows: key → version (seeded by each reconcile). */
  readonly #known = new Map<string, string>();
  /** Serializes reconciles and watcher flushes so that they never interleave their emits. */
  #chain: Promise<void> = Promise.resolve();
  #pendingReconcile: Promise<void> | null = null;
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

    // Watch first, then list: a change made while listing is then seen by one or the other.
    try {
      await this.#startWatcher();
      if (this.#stopped) return;
      await this.reconcile();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.#ready = true;
    if (this.#dirty.size > 0) this.#queueFlush();
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
    const run = this.#enqueue(async () => {
      this.#pendingReconcile = null;
      await this.#reconcileNow();
    });
    this.#pendingReconcile = run;
    return run;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return this.#chain;
    this.#stopped = true;
    this.#halt.abort();
    if (this.#onAbort) this.#ctx?.signal.removeEventListener('abort', this.#onAbort);
    if (this.#interval) clearInterval(this.#interval);
    this.#interval = null;
    if (this.#rootTimer) clearInterval(this.#rootTimer);
    this.#rootTimer = null;
    for (const t of [...this.#timers.values(), ...this.#rescans.values(), ...this.#nameChecks.values()]) clearTimeout(t);
    this.#timers.clear();
    this.#rescans.clear();
    this.#nameChecks.clear();
    await this.#closeWatcher();
    await this.#chain;
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

  async #closeWatcher(): Promise<void> {
    const watcher = this.#watcher;
    this.#watcher = null;
    this.#watchedId = null;
    this.#realCache.clear();
    await watcher?.close().catch((err: unknown) => this.#log?.warn('closing the folder watcher failed', { error: describeError(err) }));
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
      await this.#closeWatcher();
      ctx.logger.warn('folder is not reachable; reconcile skipped', { source: this.id, error: root.problem });
      this.#report('error', root.problem);
      return;
    }
    if (root.id !== this.#watchedId || root.real !== this.#rootReal) {
      // Created again (or its link points elsewhere): a fresh watcher, then the listing below.
      await this.#closeWatcher();
      this.#rootReal = root.real;
      await this.#startWatcher();
      if (this.#stopped) return;
      this.#watchedId = root.id;
      ctx.logger.info('folder is back; watching it again', { source: this.id });
    }
    const started = Date.now();
    const skipped = new SkipList(this.#opts.skipped_listed);
    const listing: Listing = { files: new Map(), unsure: [], skip: (key, reason) => skipped.add(key, reason) };
    await this.#walk(this.#root, [this.#rootReal], listing);
    if (this.#stopped) return;
    const listed = listing.files;
    // A directory that could not be read (EACCES, EMFILE…) keeps its documents until it can.
    const unsureKeys = listing.unsure.map((abs) => this.#keyOf(abs));
    const unsure = (key: string): boolean => unsureKeys.some((u) => key === u || key.startsWith(u + '/') || u === this.#prefix);

    const known = new Map<string, string>();
    for (const [key, version] of await ctx.knownVersions()) if (this.owns(key)) known.set(key, version);

    const changes: Change[] = [];
    for (const [key, item] of listed) {
      if (known.get(key) !== versionOf(item.stats)) changes.push({ kind: 'upsert', doc: this.#document(key, item) });
    }
    for (const key of known.keys()) if (!listed.has(key) && !unsure(key)) changes.push({ kind: 'delete', key });
    if (listing.unsure.length > 0) {
      ctx.logger.warn('parts of the folder could not be read; their documents are kept as they were', {
        source: this.id,
        paths: listing.unsure.slice(0, 10),
      });
    }
    this.#warnNewSkips(skipped);
    this.#skipped = skipped;

    this.#known.clear();
    for (const [key, version] of known) this.#known.set(key, version);
    await this.#emit(changes);
    if (listing.rootError !== undefined) this.#report('error', `folder cannot be listed: ${listing.rootError}`);
    else this.#report('idle');
    ctx.logger.debug('folder reconciled', {
      source: this.id,
      files: listed.size,
      upserts: changes.filter((c) => c.kind === 'upsert').length,
      deletes: changes.filter((c) => c.kind === 'delete').length,
      skipped: skipped.count,
      ms: Date.now() - started,
    });
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

  /** Walks `dir` into `out`; `ancestors` holds real paths on the way down, so links never loop. */
  async #walk(dir: string, ancestors: string[], out: Listing): Promise<void> {
    if (this.#stopped) return;
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
      else if (st && st !== 'gone') out.files.set(this.#keyOf(abs), { abs, stats: st });
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
          out.files.set(this.#keyOf(abs), { abs, stats: target.stats });
        }
      } else if (target.stats.isDirectory() && this.#enterable(abs)) {
        if (ancestors.some((a) => a === target.real || a.startsWith(target.real + path.sep))) {
          this.#log?.debug('symlink loop skipped', { path: abs });
        } else {
          await this.#walk(abs, [...ancestors, target.real], out);
        }
      }
    }
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
        if (!target?.stats.isFile()) return 'gone';
        ({ stats: st, real } = target);
      } else {
        st = await fsp.lstat(abs);
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

  /** What chokidar need not watch at all (saves inotify watches on `.git`, `node_modules/**`…). */
  #ignoredByWatcher(abs: string, stats?: Stats): boolean {
    const rel = this.#rel(abs);
    if (rel === null) return false; // the root itself
    if (this.#inExcludedDir(abs)) return true;
    const segments = rel.split('/');
    const last = segments.pop() ?? '';
    if (segments.some((s) => s.startsWith('.') && !(this.#dotDirs?.(s) ?? false))) return true;
    if (stats?.isDirectory()) {
      if (!this.#enterable(abs)) return true;
    } else if (stats?.isFile() && TEMP_FILE.test(last)) {
      return true;
    }
    // chokidar follows links blindly (a link to an ancestor next to a link to a sibling
    // expands exponentially): keep it inside the folder and off cycles.
    return stats !== undefined && this.#opts.follow_symlinks && this.#leavesOrLoops(abs, stats.isDirectory());
  }

  /** With `follow_symlinks`: does `abs` resolve outside the folder, or (a directory) onto one of its own ancestors? */
  #leavesOrLoops(abs: string, isDir: boolean): boolean {
    if (this.#realCache.size > 10_000) this.#realCache.clear();
    const realOf = (p: string): string => {
      let real = this.#realCache.get(p);
      if (real === undefined) {
        real = realpathSync(p);
        this.#realCache.set(p, real);
      }
      return real;
    };
    try {
      const real = realpathSync(abs);
      if (real !== this.#rootReal && !real.startsWith(this.#rootReal + path.sep)) return true;
      if (!isDir) return false;
      for (let dir = path.dirname(abs); ; dir = path.dirname(dir)) {
        const up = realOf(dir);
        if (up === real || up.startsWith(real + path.sep)) return true;
        if (dir === this.#root || dir.length < this.#root.length) return false;
      }
    } catch {
      return false; // gone already: the event path decides
    }
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

  async #emit(changes: Change[]): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx) return;
    for (let i = 0; i < changes.length && !this.#stopped; i += BATCH) {
      const batch = changes.slice(i, i + BATCH);
      await ctx.emit(batch);
      for (const c of batch) {
        if (c.kind === 'upsert') this.#known.set(c.doc.key, c.doc.version);
        else this.#known.delete(c.key);
      }
    }
  }

  // ───────────── watching ─────────────

  async #startWatcher(): Promise<void> {
    if (this.#stopped) return;
    // chokidar does not descend into a root that is itself a link unless it follows links:
    // watch the real directory and speak of its paths under the folder as given.
    const watched = this.#rootReal;
    const ours = (p: string): string =>
      watched === this.#root || (p !== watched && !p.startsWith(watched + path.sep)) ? p : path.join(this.#root, path.relative(watched, p));
    const watcher = watch(watched, {
      ignoreInitial: true,
      atomic: true,
      persistent: true,
      followSymlinks: this.#opts.follow_symlinks,
      ignored: (p: string, stats?: Stats) => this.#ignoredByWatcher(ours(p), stats),
    });
    this.#watcher = watcher;
    this.#watchedPath = (p) => (watched === this.#root ? p : path.join(watched, path.relative(this.#root, p)));
    watcher.on('add', (p) => this.#touch(ours(p)));
    watcher.on('change', (p) => this.#touch(ours(p)));
    watcher.on('unlink', (p) => this.#touch(ours(p)));
    watcher.on('unlinkDir', (p) => {
      if (this.#watcher !== watcher) return;
      this.#realCache.clear();
      const abs = ours(p);
      // The folder itself went: this watcher is dead whatever comes back there; look at once.
      if (abs === this.#root) {
        this.#watchedId = null;
        this.#rootSeen = '';
        void this.#checkRoot();
      }
      this.#touchKnownUnder(abs);
    });
    watcher.on('addDir', (p) => this.#scheduleRescan(ours(p)));
    // chokidar drops a name that is not UTF-8 (it arrives mangled and never stats); its raw event still tells where.
    watcher.on('raw', (_event, name, details) => {
      const dir = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
      if (typeof name === 'string' && name.includes('\uFFFD') && typeof dir === 'string') this.#scheduleNameCheck(ours(dir));
    });
    watcher.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      this.#log?.warn('folder watcher error; the next reconcile heals what it missed', {
        source: this.id,
        error: describeError(err),
        ...(code === 'ENOSPC' ? { hint: 'raise fs.inotify.max_user_watches or lower reconcile_interval_s' } : {}),
      });
    });
    await new Promise<void>((resolve) => {
      watcher.once('ready', resolve);
      this.#halt.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    if (this.#stopped) await this.#closeWatcher();
  }

  /** Debounces a path; when quiet for `debounce_ms`, it is checked against the disk. */
  #touch(abs: string): void {
    if (this.#stopped) return;
    const prev = this.#timers.get(abs);
    if (prev) clearTimeout(prev);
    this.#timers.set(
      abs,
      setTimeout(() => {
        this.#timers.delete(abs);
        this.#dirty.add(abs);
        this.#queueFlush();
      }, this.#opts.debounce_ms),
    );
  }

  /** A directory disappeared (deleted or renamed away): re-check every known document under it. */
  #touchKnownUnder(absDir: string): void {
    const rel = this.#rel(absDir);
    if (rel === null) {
      for (const key of this.#known.keys()) this.#touch(this.#absOf(key));
      return;
    }
    const dirKey = this.#keyOf(absDir);
    for (const key of this.#known.keys()) if (key.startsWith(dirKey + '/')) this.#touch(this.#absOf(key));
    if (this.#skipped.clearUnder(dirKey)) this.#reportSkipped();
  }

  /**
   * A directory appeared (created or renamed in). chokidar can miss a subdirectory created
   * right after its parent (it never watches it), so a little later we re-add the directory
   * to the watcher, which repairs its watches, and check every file in it ourselves.
   */
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
      this.#watcher?.add(this.#watchedPath(absDir));
      this.#touchTree(absDir).catch((err: unknown) => this.#log?.warn('cannot list new directory', { dir: absDir, error: describeError(err) }));
    }, Math.max(this.#opts.debounce_ms, 100));
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

  /** Every file under `absDir` becomes a candidate. */
  async #touchTree(absDir: string): Promise<void> {
    if (this.#stopped || !this.#enterable(absDir)) return;
    const found: Listing = { files: new Map(), unsure: [], skip: (key, reason) => this.#noteSkip(key, reason) };
    await this.#walk(absDir, [this.#rootReal], found);
    for (const item of found.files.values()) this.#touch(item.abs);
  }

  #queueFlush(): void {
    if (!this.#ready || this.#flushQueued || this.#stopped) return;
    this.#flushQueued = true;
    this.#enqueue(async () => {
      this.#flushQueued = false;
      await this.#flush();
    }).catch((err: unknown) => this.#log?.warn('folder change delivery failed', { source: this.id, error: describeError(err) }));
  }

  /** Turns dirty paths into changes by looking at the disk now (not at what the event said). */
  async #flush(): Promise<void> {
    const skip: Listing['skip'] = (key, reason) => this.#noteSkip(key, reason);
    while (this.#dirty.size > 0 && !this.#stopped) {
      const paths = [...this.#dirty];
      this.#dirty.clear();
      const states = await mapLimited(paths, STAT_CONCURRENCY, (abs) =>
        this.#wanted(abs) ? this.#statFile(abs, true, skip) : Promise.resolve<FileState>('gone'),
      );
      const changes: Change[] = [];
      paths.forEach((abs, i) => {
        if (this.#rel(abs) === null) return;
        const key = this.#keyOf(abs);
        const st = states[i];
        if (st === undefined || st === 'unsure') return; // kept as it was; the skipped list says why
        this.#clearSkip(key);
        if (st !== 'gone') {
          if (this.#known.get(key) !== versionOf(st)) changes.push({ kind: 'upsert', doc: this.#document(key, { abs, stats: st }) });
        } else if (this.#known.has(key)) {
          changes.push({ kind: 'delete', key });
        }
      });
      await this.#emit(changes);
    }
  }
}

export const fsSourcePlugin = definePlugin({
  kind: 'source',
  name: 'fs',
  description: 'A folder on local disk, watched live and reconciled periodically.',
  options: fsSourceOptionsSchema,
  create: (options, ctx) => new FolderSource(options, { dataDir: ctx.dataDir }),
});
