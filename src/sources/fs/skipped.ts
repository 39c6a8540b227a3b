/** @module sources/fs/skipped — the paths a folder source found but could not index, and why, in bounded memory. */
import { isUtf8 } from 'node:buffer';
import { describeError } from '../../core/errors.js';
import type { SkippedPaths } from '../../core/types.js';

/** Reasons, in the user's words (they are shown in status as they are). */
export const SKIP_REASONS = {
  invalidFileName: 'file name is not valid UTF-8',
  invalidDirName: 'directory name is not valid UTF-8',
  permissionDenied: 'permission denied',
  linkOutside: 'symlink leads outside the folder',
  opensOutside: 'leads outside the folder (a directory on its path was swapped for a link)',
  opensExcluded: 'leads into an excluded directory',
} as const;

/** Why `err` kept a path from being read, for status. */
export function skipReasonOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return SKIP_REASONS.permissionDenied;
  return describeError(err);
}

/**
 * The skipped paths of a source: the first `limit` with their reasons, and a count of all of
 * them, so that a folder of a million bad names costs `limit` entries, not a million.
 *
 * @example
 * const list = new SkipList(100);
 * list.add('docs/secret.md', SKIP_REASONS.permissionDenied); // from a full listing
 * list.toHealth(); // { count: 1, paths: [{ path: 'docs/secret.md', reason: 'permission denied' }] }
 */
export class SkipList {
  readonly #limit: number;
  readonly #paths = new Map<string, string>();
  #count = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get count(): number {
    return this.#count;
  }

  /** True when `path` is among the listed ones. */
  has(path: string): boolean {
    return this.#paths.has(path);
  }

  /** A path found by a full listing, which meets each path once: always counted, listed while there is room. */
  add(path: string, reason: string): void {
    if (this.#paths.has(path)) {
      this.#paths.set(path, reason);
      return;
    }
    this.#count++;
    if (this.#paths.size < this.#limit) this.#paths.set(path, reason);
  }

  /**
   * A path found between listings (by the watcher or a read). Beyond the room it is not counted
   * either: it may already be among the uncounted ones, and the next listing counts them all.
   * Returns true when it was not listed before (the caller warns once).
   */
  note(path: string, reason: string): boolean {
    if (this.#paths.has(path)) {
      this.#paths.set(path, reason);
      return false;
    }
    if (this.#paths.size >= this.#limit) return false;
    this.#paths.set(path, reason);
    this.#count++;
    return true;
  }

  /** `path` is fine now (or gone); returns true when it was listed. */
  clear(path: string): boolean {
    if (!this.#paths.delete(path)) return false;
    this.#count--;
    return true;
  }

  /** Clears every listed path under the directory key `dir`. */
  clearUnder(dir: string): boolean {
    let cleared = false;
    for (const path of [...this.#paths.keys()]) if (path.startsWith(dir + '/')) cleared = this.clear(path) || cleared;
    return cleared;
  }

  /** The report for status; undefined when nothing is skipped. */
  toHealth(): SkippedPaths | undefined {
    if (this.#count === 0) return undefined;
    return { count: this.#count, paths: [...this.#paths].map(([path, reason]) => ({ path, reason })) };
  }
}

/** A file name as text: valid UTF-8 as it is, every other byte as `\xHH` (a name that cannot be shown as it is). */
export function printableName(name: Uint8Array): string {
  let out = '';
  for (let i = 0; i < name.length; ) {
    let len = 0;
    for (let n = 1; n <= 4 && i + n <= name.length; n++) {
      if (isUtf8(name.subarray(i, i + n))) {
        len = n;
        break;
      }
    }
    if (len === 0) {
      out += `\\x${name[i]!.toString(16).toUpperCase().padStart(2, '0')}`;
      i++;
    } else {
      out += Buffer.from(name.subarray(i, i + len)).toString('utf8');
      i += len;
    }
  }
  return out;
}
