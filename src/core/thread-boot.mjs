/**
 * @module core/thread-boot — the entry of a worker thread when livedex runs from its TypeScript
 * sources (tsx): plain JavaScript, so that the worker can load it whatever loader hooks it
 * inherited, and registers tsx itself when `.ts` is not understood (before Node 22.22,
 * `--import tsx/esm` registers its hooks in the main thread only; core/sandbox-boot.mjs does the
 * same for parse workers). It loads the module named by `workerData.livedexThreadModule`.
 */
import { workerData } from 'node:worker_threads';

const THREAD_MODULE = workerData.livedexThreadModule;

try {
  await import(THREAD_MODULE);
} catch (err) {
  if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
  const { register } = await import('tsx/esm/api');
  register();
  // Node remembers the failed import of the URL: ask again under another one.
  await import(`${THREAD_MODULE}?tsx`);
}
