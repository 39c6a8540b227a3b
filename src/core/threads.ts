/**
 * @module core/threads — where a worker thread of livedex starts. Under tsx a worker cannot
 * always load `.ts` by itself, so it starts at core/thread-boot.mjs, which registers tsx and
 * loads the module named in `workerData.livedexThreadModule`; from the built JavaScript it
 * starts at the module itself.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The entry of the worker that runs `./<name>` beside the module at `base` (its
 * `import.meta.url`), and the `workerData` field that names the module for the boot.
 */
export function threadEntry(base: string, name: string): { entry: URL; workerData: { livedexThreadModule: string } } {
  const ownExtension = extname(fileURLToPath(base));
  const module = new URL(`./${name}${ownExtension}`, base);
  const entry = ownExtension === '.ts' ? new URL('./thread-boot.mjs', import.meta.url) : module;
  return { entry, workerData: { livedexThreadModule: module.href } };
}
