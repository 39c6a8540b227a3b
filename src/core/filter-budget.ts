/** @module core/filter-budget — what one request's filter may cost: size limits, work per document, and a time budget spent in slices that yield to the event loop. */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { LimitsConfig } from './config.js';
import { LivedexError } from './errors.js';
import type { Metadata } from './types.js';

/** The cost limits of filters (`limits.filter_*`, `limits.glob_max_chars` in the config). */
export interface FilterLimits {
  /** Longest `metadata_filter`, in characters. */
  filter_max_chars: number;
  /** Deepest nesting of calls, brackets and sub-expressions in a `metadata_filter`. */
  filter_max_depth: number;
  /** Longest glob (`filepath_globpattern`, or a `globmatch()` pattern). */
  glob_max_chars: number;
  /** Longest string a filter function may produce (`pad_left` width, `join`, `replace`…). */
  filter_max_string_chars: number;
  /** Largest array a filter may produce (`split`, flattening, `replace` counts…). */
  filter_max_array_items: number;
  /** Work units one document's evaluation may take (see `COST` in `filter-interpreter.ts`). */
  filter_max_cost: number;
  /** Work units one request's filter may take, across all documents. */
  filter_max_request_cost: number;
  /** CPU time the filter of one request may spend evaluating, across all documents. */
  filter_budget_ms: number;
}

/** The defaults of the config's `limits` block. */
export const DEFAULT_FILTER_LIMITS: Readonly<FilterLimits> = Object.freeze(filterLimits(LimitsConfig.parse({})));

/** The filter limits out of the config's `limits` block. */
export function filterLimits(limits: FilterLimits): FilterLimits {
  const { filter_max_chars, filter_max_depth, glob_max_chars, filter_max_string_chars, filter_max_array_items, filter_max_cost, filter_max_request_cost, filter_budget_ms } = limits;
  return { filter_max_chars, filter_max_depth, glob_max_chars, filter_max_string_chars, filter_max_array_items, filter_max_cost, filter_max_request_cost, filter_budget_ms };
}

/**
 * How long a run of evaluations keeps the event loop before it yields: short enough that
 * `/healthz` and other requests are answered in between (a scheduling quantum, not a limit).
 */
const SLICE_MS = 8;

/** The field the user gets named in a budget error, and the `limits` key they could raise. */
export function limitError(field: string, key: keyof FilterLimits, limits: FilterLimits, detail: string): LivedexError {
  return new LivedexError('invalid_filter', `${field}: ${detail} (limits.${key} is ${limits[key]}); simplify the filter or raise the limit`, { field });
}

/** CPU time of this process so far (ms): a core it waited for is not counted, unlike the clock. */
function cpuNowMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * One request's evaluation budget. The work is counted in units (`spend`), which is the
 * same on a loaded machine as on an idle one, so whether a filter is refused does not
 * depend on what else runs; the CPU time it takes is a backstop for units that cost more
 * than calibrated. Both count only while evaluating (between `breathe()` yields), so a
 * request waiting its turn behind others is not charged for their work; each distinct
 * metadata object is evaluated once per request (chunks of a document share one).
 */
export class FilterBudget {
  readonly limits: FilterLimits;
  /** Whom a spent budget is blamed on: the filter when there is one, else the glob. */
  readonly field: string;
  readonly #memo = new WeakMap<Metadata, boolean>();
  #units = 0;
  #spentMs = 0;
  #spends = 0;
  #sliceStart = performance.now();
  #sliceCpu = cpuNowMs();
  evaluated = 0;

  constructor(limits: FilterLimits, field = 'metadata_filter') {
    this.limits = limits;
    this.field = field;
  }

  /** Work units spent so far. */
  get units(): number {
    return this.#units;
  }

  /** Throws the budget error when the CPU time is used up. */
  check(): void {
    if (this.#spentMs + (cpuNowMs() - this.#sliceCpu) > this.limits.filter_budget_ms) {
      throw limitError(this.field, 'filter_budget_ms', this.limits, `evaluating the filter took more than ${this.limits.filter_budget_ms} ms of CPU (over ${this.evaluated} documents)`);
    }
  }

  /** Counts `units` of work; the CPU clock is read now and then, often enough to stop within the budget, rarely enough to be free. */
  spend(units: number): void {
    this.#units += units;
    if (this.#units > this.limits.filter_max_request_cost) {
      throw limitError(this.field, 'filter_max_request_cost', this.limits, `evaluating the filter costs more than ${this.limits.filter_max_request_cost} work units`);
    }
    if ((++this.#spends & 255) === 0) this.check();
  }

  /** `predicate(metadata)`, evaluated once per metadata object in this request. */
  test(predicate: (m: Metadata, budget: FilterBudget) => boolean, metadata: Metadata): boolean {
    const known = this.#memo.get(metadata);
    if (known !== undefined) return known;
    const result = predicate(metadata, this);
    this.evaluated++;
    this.#memo.set(metadata, result);
    return result;
  }

  /** Yields to the event loop when the current slice has run `SLICE_MS` (by the clock: it is about answering others soon); the time away is not charged. */
  breathe(): Promise<void> | undefined {
    if (performance.now() - this.#sliceStart < SLICE_MS) return undefined;
    return this.#yield();
  }

  async #yield(): Promise<void> {
    this.pause();
    this.check();
    await yieldToLoop();
    this.resume();
  }

  /** Starts a fresh slice (after waiting for a lock, say) without charging the wait. */
  resume(): void {
    this.#sliceStart = performance.now();
    this.#sliceCpu = cpuNowMs();
  }

  /** Stops charging time (before waiting for a lock, say). */
  pause(): void {
    this.#spentMs += cpuNowMs() - this.#sliceCpu;
    this.resume();
  }
}

/** Keeps the elements `predicate` accepts, in slices that yield; the budget bounds the total. */
export async function filterSliced<T>(items: Iterable<T>, metadataOf: (item: T) => Metadata, predicate: (m: Metadata, budget: FilterBudget) => boolean, budget: FilterBudget): Promise<T[]> {
  const out: T[] = [];
  for (const item of items) {
    if (budget.test(predicate, metadataOf(item))) out.push(item);
    const pause = budget.breathe();
    if (pause) await pause;
  }
  budget.check();
  return out;
}
