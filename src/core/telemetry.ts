/**
 * @module core/telemetry — what a live index tells about its own work: each document settling
 * (indexed, failed, held back, deleted) with the time from the change being seen, and a
 * snapshot of its counters. Core stays free of any metrics library; the server turns these
 * into Prometheus metrics and the logger into one line per state change.
 */
import type { CallCounters } from './calls.js';
import type { HousekeepingCounters } from './housekeeping.js';
import type { SandboxCounters } from './sandbox.js';

/** Counters for tests, `status` and metrics. */
export interface PipelineCounters {
  /** Documents read and parsed (content unchanged documents are not parsed). */
  parsed: number;
  /** Texts sent to the embedder (cache misses). */
  embedded: number;
  /** Texts whose embedding came from the store (chunk diff hits). */
  embeddingsReused: number;
  committed: number;
  failed: number;
  deleted: number;
  /** Store commits of live edits (each committed at once, ahead of a sync backlog). */
  editCommits: number;
  /** Store commits of everything else (listings, reconciles: grouped in batches). */
  syncCommits: number;
}

/** The state a document settled in after one commit. */
export type SettledState = 'indexed' | 'failed' | 'pending' | 'deleted';

/** One document reaching a state, told after its commit (it is queryable from then on). */
export interface DocumentSettled {
  key: string;
  state: SettledState;
  /** Why it failed or is held back; null otherwise. */
  error: string | null;
  /** Chunks the document has now (0 when failed, held back or deleted). */
  chunks: number;
  /** When the change was first seen (ms since the epoch; the earliest of coalesced changes); null when unknown. */
  seenAt: number | null;
  /** When the commit made it visible (ms since the epoch). */
  settledAt: number;
}

/** A snapshot of the counters of an index, read when metrics are scraped. */
export interface TelemetrySnapshot {
  pipeline: Readonly<PipelineCounters>;
  /** Changes accepted from sources since start. */
  changesSeen: number;
  /** The model serving queries and the counters of its calls (null when it is not a calling embedder). */
  model: { key: string; documents: CallCounters | null; queries: CallCounters | null };
  /** What the store pruner has removed (absent before the first sync, and in a read-only index). */
  housekeeping?: Readonly<HousekeepingCounters>;
  /** Where documents were parsed and the parse workers running (absent when the sandbox is off). */
  parsing?: Readonly<SandboxCounters>;
}

/** An index that reports its work; `LiveIndex` is one. */
export interface ObservableIndex {
  telemetry(): TelemetrySnapshot;
  /** Calls `listener` for each document settled by a commit; returns the unsubscribe. */
  onSettle(listener: (event: DocumentSettled) => void): () => void;
}

/** True when `index` reports its work (duck-typed: test stubs and remote indexes may not). */
export function isObservableIndex(index: unknown): index is ObservableIndex {
  const i = index as Partial<ObservableIndex> | null;
  return typeof i?.telemetry === 'function' && typeof i.onSettle === 'function';
}
