/** @module indexes/hnsw-options — the options of the `hnsw` vector index, shared by the in-thread index and the one on its own thread. */
import { z } from 'zod';

export const hnswOptionsSchema = z.strictObject({
  /**
   * Build and search the graph on a thread of its own (see indexes/hnsw-worker.ts): an ingest's
   * inserts then run beside the rest of the work, and queries are not held behind them. Off by
   * default until the thread gives back the memory of a large document it was sent.
   */
  thread: z.boolean().default(false),
  /** Links per node: more is better recall and more memory. Fixed once an index is built. */
  m: z.number().int().min(2).max(128).default(16),
  /** Candidate list while inserting: more is a better graph and slower inserts. Fixed once built. */
  ef_construction: z.number().int().min(1).default(200),
  /** Candidate list while searching (at least `k` is used): more is better recall and slower queries. */
  ef_search: z.number().int().min(1).default(64),
  /** Slots allocated up front; the index doubles when full. */
  initial_capacity: z.number().int().min(1).default(1024),
});

/** Options as written in a config file (defaults not yet applied). */
export type HnswOptions = z.input<typeof hnswOptionsSchema>;
