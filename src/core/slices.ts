/** @module core/slices — long CPU work on the event loop cut into slices of a few milliseconds, so queries get through. */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Work between two yields: short enough that a query waits at most this long behind it. */
export const SLICE_MS = 8;

/**
 * Tells long loops when to let the event loop run: `await slicer.pause()` after each step is
 * almost free until `SLICE_MS` have passed since the last yield, then yields once.
 *
 * @example
 * const slicer = new Slicer(signal);
 * for (const chunk of chunks) { hash(chunk); await slicer.pause(); }
 */
export class Slicer {
  #since = performance.now();
  readonly #signal: AbortSignal | undefined;

  constructor(signal?: AbortSignal) {
    this.#signal = signal;
  }

  /** Yields to the event loop when this slice is used up; throws if the work was aborted. */
  pause(): Promise<void> | undefined {
    if (performance.now() - this.#since < SLICE_MS) return undefined;
    return this.#yield();
  }

  async #yield(): Promise<void> {
    await nextTurn();
    this.#signal?.throwIfAborted();
    this.#since = performance.now();
  }
}

/** `items.map(f)`, yielding between slices. */
export async function mapInSlices<T, U>(items: readonly T[], f: (item: T, index: number) => U, signal?: AbortSignal): Promise<U[]> {
  const slicer = new Slicer(signal);
  const out = new Array<U>(items.length);
  for (let i = 0; i < items.length; i++) {
    out[i] = f(items[i]!, i);
    await slicer.pause();
  }
  return out;
}
