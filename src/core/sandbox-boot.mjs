/**
 * @module core/sandbox-boot — the entry of parse workers when livedex runs from its TypeScript
 * sources (tsx). Plain JavaScript, so that a worker can load it whatever loader hooks it
 * inherited: before Node 22.22, `--import tsx/esm` registers its hooks in the main thread only,
 * and a worker handed `sandbox-worker.ts` directly fails with "Unknown file extension .ts"
 * (whatever the cwd). This file loads the worker module, registering tsx itself when needed.
 *
 * A worker module that cannot load does not crash the worker (piscina would then leave queued
 * jobs waiting for a worker that never comes): every job gets a `parse workers cannot start`
 * error instead, flagged transient so that documents stay pending and are tried again later.
 */
const WORKER_MODULE = new URL('./sandbox-worker.ts', import.meta.url).href;

async function importWorker() {
  try {
    return await import(WORKER_MODULE);
  } catch (err) {
    if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    const { register } = await import('tsx/esm/api');
    register();
    // Node remembers the failed import of the URL: ask again under another one.
    return import(`${WORKER_MODULE}?tsx`);
  }
}

let handler;
try {
  handler = (await importWorker()).default;
  if (typeof handler !== 'function') throw new Error(`${WORKER_MODULE} has no default export`);
} catch (err) {
  const reason = err instanceof Error ? err.message || err.name : String(err);
  const error = { name: 'LivedexError', code: 'parse_failed', message: `parse workers cannot start: ${reason}`, transient: true };
  handler = async () => ({ ok: false, error });
}

/** The piscina task handler: the worker module's, or one that reports why it could not load. */
export default handler;
