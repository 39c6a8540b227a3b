/**
 * @module models/local-boot — the entry of the local model's worker when livedex runs from its
 * TypeScript sources (tsx): plain JavaScript, so that the worker can load it whatever loader
 * hooks it inherited, and registers tsx itself when `.ts` is not understood (as
 * core/sandbox-boot.mjs does for parse workers).
 */
const WORKER_MODULE = new URL('./local-worker.ts', import.meta.url).href;

try {
  await import(WORKER_MODULE);
} catch (err) {
  if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
  const { register } = await import('tsx/esm/api');
  register();
  // Node remembers the failed import of the URL: ask again under another one.
  await import(`${WORKER_MODULE}?tsx`);
}
