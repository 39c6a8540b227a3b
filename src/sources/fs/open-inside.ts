/** @module sources/fs/open-inside — reads a file of a folder only if the file the kernel opened lies inside that folder. */
import { constants as fsConstants, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { SKIP_REASONS } from './skipped.js';

/** What a read may reach. */
export interface Boundary {
  /** The folder's real path: nothing outside it is read. */
  rootReal: string;
  /** Links that stay inside the folder are followed; otherwise no component of the path may be a link. */
  followLinks: boolean;
  /** Real paths of directories inside the folder that are never read (the data directory). */
  excluded: readonly string[];
  /** False: resolve the path again and compare inodes, as on a system without `/proc` (default true). */
  procFd?: boolean;
}

/**
 * A read refused because of where the path led when it was opened. Its code is ENOENT: as far as
 * the folder is concerned the file is not there (the pipeline drops the document, nothing is
 * marked failed with another file's details). `reason` is null when the refusal is only the
 * link policy (a link met with `follow_symlinks` off), which is not worth reporting.
 */
export class RefusedPathError extends Error {
  readonly code = 'ENOENT';
  constructor(
    readonly path: string,
    readonly reason: string | null,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

/** True when `p` is `dir` or lies beneath it. */
export function isInside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

/** Why `real` may not be read (null when it may): `expected` is where it lies when no link is on the way. */
function refusal(abs: string, real: string, expected: string, boundary: Boundary): RefusedPathError | null {
  if (!isInside(real, boundary.rootReal)) return new RefusedPathError(abs, SKIP_REASONS.opensOutside, `opened ${real}, outside the folder`);
  if (boundary.excluded.some((d) => isInside(real, d))) return new RefusedPathError(abs, SKIP_REASONS.opensExcluded, `opened ${real}`);
  if (!boundary.followLinks && real !== expected) return new RefusedPathError(abs, null, `opened ${real} through a link that is not followed`);
  return null;
}

/**
 * The path the kernel opened `fd` as (Linux: the link `/proc/self/fd/N`), which no later rename
 * of a directory on the way can change to look inside; null where there is no `/proc`.
 */
async function openedPath(fd: number): Promise<string | null> {
  try {
    return await fsp.readlink(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/**
 * Without `/proc`: resolve the path again and make sure it names the very file that was opened
 * (same device and inode), the same path before and after that comparison. Path calls can be
 * redirected one by one, so this narrows the window of a swap without closing it: where Node
 * has no `openat`, only the kernel's own name for the descriptor (above) is airtight.
 */
async function resolvedIfSame(abs: string, opened: Stats): Promise<string | null> {
  const real = await fsp.realpath(abs);
  const st = await fsp.lstat(real);
  if (st.dev !== opened.dev || st.ino !== opened.ino) return null;
  return (await fsp.realpath(abs)) === real ? real : null;
}

/**
 * Reads `abs` if, at the moment it is opened, it is a regular file whose every path component
 * resolves inside the folder (and, without `follow_symlinks`, through no link at all). The check
 * is made on the opened descriptor and the bytes are read from that descriptor only, so a
 * directory swapped for a link before, during or after the read cannot bring in another file.
 * Opens without blocking, since the path may have become a FIFO.
 *
 * @param expected - where `abs` lies when no link is on the way: the folder's real path joined with the relative path
 * @example
 * const bytes = await readInside('/srv/docs/a.md', '/srv/docs/a.md', { rootReal: '/srv/docs', followLinks: false, excluded: [] });
 */
export async function readInside(abs: string, expected: string, boundary: Boundary, signal?: AbortSignal): Promise<Uint8Array> {
  const flags = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | (boundary.followLinks ? 0 : fsConstants.O_NOFOLLOW);
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(abs, flags);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' && !boundary.followLinks) throw new RefusedPathError(abs, null, 'became a symlink');
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      // Not allowed to open, say: still, a file outside the folder is not ours to report on.
      const real = await fsp.realpath(abs).catch(() => null);
      const refused = real === null ? null : refusal(abs, real, expected, boundary);
      if (refused) throw refused;
    }
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw Object.assign(new Error(`${abs} is no longer a regular file`), { code: 'ENOENT' });
    const real = (boundary.procFd === false ? null : await openedPath(handle.fd)) ?? (await resolvedIfSame(abs, st));
    if (real === null) throw new RefusedPathError(abs, null, 'changed while it was opened');
    const refused = refusal(abs, real, expected, boundary);
    if (refused) throw refused;
    return new Uint8Array(await handle.readFile(signal ? { signal } : {}));
  } finally {
    await handle.close();
  }
}
