/** @module core/storage-error — recognises a data directory that is full or read-only, and says what to do. */
import { describeError } from './errors.js';

/** Why the data directory refused a write. */
export type StorageProblem = 'full' | 'read-only';

const FULL = [/database or disk is full/i, /no space left on device/i, /\bENOSPC\b/, /os error 28\b/, /disk quota exceeded/i, /\bEDQUOT\b/, /os error 122\b/];
const READ_ONLY = [/read-only file system/i, /\bEROFS\b/, /os error 30\b/, /readonly database/i, /attempt to write a readonly/i];

/** The messages of `err` and of its causes (the engine wraps the native error). */
function messages(err: unknown): string[] {
  const out: string[] = [];
  for (let e: unknown = err, depth = 0; e != null && depth < 5; depth++) {
    out.push(describeError(e));
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

/** `full` or `read-only` when `err` says the data directory cannot take a write; else null. */
export function storageProblem(err: unknown): StorageProblem | null {
  const text = messages(err).join('\n');
  if (FULL.some((re) => re.test(text))) return 'full';
  if (READ_ONLY.some((re) => re.test(text))) return 'read-only';
  return null;
}

/** A message a user can act on for a write the data directory `dir` refused. */
export function describeStorageProblem(problem: StorageProblem, dir: string, err: unknown): string {
  const what = problem === 'full'
    ? `the data directory ${dir} is full: free space on its disk`
    : `the data directory ${dir} is read-only: remount it read-write (or point --data-dir at a writable folder)`;
  return `${what} (${describeError(err)})`;
}
