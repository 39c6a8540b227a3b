/** Test harness: the JS heap in use after a full collection, so a test can see what a document leaves behind. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// The test runner starts files without --expose-gc; the flag set now gives a new context a `gc`.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap used (MB) after two full collections a turn apart (finalizers of the first free more). */
export async function collectedHeapMb(): Promise<number> {
  gc();
  await new Promise((r) => setTimeout(r, 100));
  gc();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}
