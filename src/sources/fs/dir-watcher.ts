/** @module sources/fs/dir-watcher — one watch per directory of a folder (never one per file), as the folder's walk arms them. */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

/** What a directory's watch tells: a name in it changed (as bytes: it may not be UTF-8), or the watch failed. */
export interface DirEvents {
  /** `name` in `dir` was created, changed, removed or renamed; null when the system did not say which. */
  changed(dir: string, name: Buffer | null): void;
  /** The watch of `dir` failed (the directory went, or the system ran out of watches). */
  failed(dir: string, err: Error): void;
}

/**
 * The watches of a folder, keyed by directory. On Linux each is one inotify watch on the
 * directory, which reports changes to every file in it: a folder of 100,000 files in 1,000
 * directories costs 1,000 watches, not 100,000. A directory's watch is armed before it is
 * read (`add`, then `readdir`), so a file made meanwhile is seen by one or the other.
 * A directory renamed keeps reporting under its old name, so its watches are dropped
 * (`dropUnder`) and the new name is watched afresh.
 *
 * @example
 * const watches = new DirWatcher({ changed: (dir, name) => console.log(dir, name), failed: console.warn });
 * watches.add('/srv/docs');
 * watches.count; // 1
 * watches.close();
 */
export class DirWatcher {
  readonly #events: DirEvents;
  readonly #watches = new Map<string, FSWatcher>();
  #closed = false;

  constructor(events: DirEvents) {
    this.#events = events;
  }

  /** How many directories are watched. */
  get count(): number {
    return this.#watches.size;
  }

  has(dir: string): boolean {
    return this.#watches.has(dir);
  }

  /** Watches `dir` (once); false when it could not be watched (gone, or out of watches: `failed` says why). */
  add(dir: string): boolean {
    if (this.#closed) return false;
    if (this.#watches.has(dir)) return true;
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: true, encoding: 'buffer' }, (_event, name) => this.#events.changed(dir, name));
    } catch (err) {
      this.#events.failed(dir, err as Error);
      return false;
    }
    watcher.on('error', (err) => {
      this.#drop(dir);
      this.#events.failed(dir, err);
    });
    this.#watches.set(dir, watcher);
    return true;
  }

  /** Stops watching `dir` and every directory under it. */
  dropUnder(dir: string): void {
    const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
    for (const watched of [...this.#watches.keys()]) if (watched === dir || watched.startsWith(prefix)) this.#drop(watched);
  }

  close(): void {
    this.#closed = true;
    for (const dir of [...this.#watches.keys()]) this.#drop(dir);
  }

  #drop(dir: string): void {
    const watcher = this.#watches.get(dir);
    if (!watcher) return;
    this.#watches.delete(dir);
    try {
      watcher.close();
    } catch {
      // Its directory is gone and the system dropped the watch already.
    }
  }
}
