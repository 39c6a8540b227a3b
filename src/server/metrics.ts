/**
 * @module server/metrics — Prometheus metrics of one app at `GET /metrics`, in a registry of
 * its own (never prom-client's global one), so several servers in one process do not collide.
 * Gauges are read from the index when scraped; the ingest latency histogram (change seen →
 * queryable) is fed by the index's settle events; query latency is timed around `retrieve`.
 */
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CallCounters } from '../core/calls.js';
import { isObservableIndex, type DocumentSettled, type TelemetrySnapshot } from '../core/telemetry.js';
import type { LiveIndexApi, RetrieveRequest } from '../core/types.js';

/** The metrics of one app: its registry and what the routes feed it. */
export interface AppMetrics {
  readonly registry: Registry;
  /** Wraps `index` so that every `retrieve` (REST, MCP) is timed by mode. */
  instrument<T extends LiveIndexApi>(index: T): T;
  /** Counts answers with an error status by their error code (a middleware to mount first). */
  readonly countErrors: MiddlewareHandler;
  /** Stops listening to the index. */
  close(): void;
}

const INGEST_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const QUERY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15];

type CallKey = 'documents' | 'queries';

/** A counter mirroring a total kept elsewhere, set from it at each scrape. */
function mirrored<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], read: (set: (labels: Partial<Record<L, string>>, value: number) => void) => void): Counter<L> {
  return new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      read((labels, value) => {
        if (value > 0) this.inc(labels as Record<L, string>, value);
      });
    },
  });
}

/**
 * Builds the metrics of an app over `index`. What an index does not report (a test stub, a
 * remote index without telemetry) is left out rather than made up.
 *
 * @example
 * const metrics = createMetrics(index);
 * app.get('/metrics', metricsHandler(metrics));
 */
export function createMetrics(index: LiveIndexApi): AppMetrics {
  const registry = new Registry();
  const observable = isObservableIndex(index) ? index : null;
  // One status read per scrape, shared by the gauges that need it.
  let status: ReturnType<LiveIndexApi['status']> | null = null;
  const readStatus = () => (status ??= index.status().finally(() => setTimeout(() => (status = null), 0)));
  const readSnapshot = (): TelemetrySnapshot | null => (observable ? observable.telemetry() : null);

  new Gauge({
    name: 'livedex_documents',
    help: 'Documents in the store by indexing status.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const s = await readStatus();
      for (const k of ['indexed', 'pending', 'failed'] as const) this.set({ status: k }, s.documents[k]);
    },
  });
  new Gauge({ name: 'livedex_chunks', help: 'Chunks in the index.', registers: [registry], async collect() { this.set((await readStatus()).chunks); } });
  new Gauge({ name: 'livedex_queue_depth', help: 'Changes waiting in the pipeline queue.', registers: [registry], async collect() { this.set((await readStatus()).queue.depth); } });
  new Gauge({ name: 'livedex_queue_in_flight', help: 'Changes being parsed, embedded or committed.', registers: [registry], async collect() { this.set((await readStatus()).queue.inFlight); } });
  new Gauge({ name: 'livedex_ready', help: '1 once the first sync of every source is indexed.', registers: [registry], collect() { this.set(index.isReady() ? 1 : 0); } });
  new Gauge({
    name: 'livedex_source_up',
    help: '1 when a source is syncing or idle, 0 when it reports an error.',
    labelNames: ['source', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of (await readStatus()).sources) this.set({ source: s.id, state: s.state }, s.state === 'error' ? 0 : 1);
    },
  });

  const settled = new Counter({ name: 'livedex_documents_settled_total', help: 'Documents committed in a new state (indexed, failed, pending: held back, deleted).', labelNames: ['state'] as const, registers: [registry] });
  const ingest = new Histogram({ name: 'livedex_ingest_latency_seconds', help: 'From a change being seen to the document being queryable (indexed or deleted).', buckets: INGEST_BUCKETS, registers: [registry] });
  const lastLag = new Gauge({ name: 'livedex_last_ingest_lag_seconds', help: 'Change seen → queryable time of the last document indexed or deleted.', registers: [registry] });
  const lastSettled = new Gauge({ name: 'livedex_last_indexed_timestamp_seconds', help: 'When the last document was indexed or deleted (Unix seconds).', registers: [registry] });
  const query = new Histogram({ name: 'livedex_query_duration_seconds', help: 'Retrieval latency by mode.', labelNames: ['mode', 'outcome'] as const, buckets: QUERY_BUCKETS, registers: [registry] });
  const errors = new Counter({ name: 'livedex_http_errors_total', help: 'Requests answered with an error, by error code.', labelNames: ['code', 'status'] as const, registers: [registry] });

  if (observable) {
    const pipe = (name: string, help: string, pick: (s: TelemetrySnapshot) => number) =>
      mirrored(registry, name, help, [], (set) => {
        const s = readSnapshot();
        if (s) set({}, pick(s));
      });
    pipe('livedex_changes_seen_total', 'Changes accepted from sources.', (s) => s.changesSeen);
    pipe('livedex_documents_parsed_total', 'Documents read and parsed.', (s) => s.pipeline.parsed);
    pipe('livedex_chunks_embedded_total', 'Chunk texts sent to the embedding model (not found in the store).', (s) => s.pipeline.embedded);
    pipe('livedex_embeddings_reused_total', 'Chunk texts whose embedding came from the store (chunk diff hits).', (s) => s.pipeline.embeddingsReused);
    mirrored(registry, 'livedex_commits_total', 'Store commits, by lane: edit (live edits, each committed at once) or sync (listings and reconciles, in batches).', ['lane'] as const, (set) => {
      const s = readSnapshot();
      if (!s) return;
      set({ lane: 'edit' }, s.pipeline.editCommits);
      set({ lane: 'sync' }, s.pipeline.syncCommits);
    });

    mirrored(registry, 'livedex_store_pruned_total', 'Rows the store pruner removed: embeddings no chunk used past their grace period, change-log entries every index had applied.', ['kind'] as const, (set) => {
      const h = readSnapshot()?.housekeeping;
      if (!h) return;
      set({ kind: 'embeddings' }, h.embeddingsDeleted);
      set({ kind: 'change_log' }, h.changeLogDeleted);
    });

    const calls = (name: string, help: string, pick: (c: CallCounters) => number) =>
      mirrored(registry, name, help, ['call'] as const, (set) => {
        const m = readSnapshot()?.model;
        for (const call of ['documents', 'queries'] as CallKey[]) {
          const c = m?.[call];
          if (c) set({ call }, pick(c));
        }
      });
    calls('livedex_model_items_total', 'Texts asked of the embedding model by callers (cache hits included).', (c) => c.items);
    calls('livedex_model_requests_total', 'Requests sent to the embedding model (first tries and retries).', (c) => c.requests);
    calls('livedex_model_cache_hits_total', 'Texts answered from the call cache.', (c) => c.cacheHits);
    calls('livedex_model_retries_total', 'Requests to the embedding model tried again.', (c) => c.retries);
    new Gauge({
      name: 'livedex_model_calls_in_flight',
      help: 'Requests to the embedding model in flight.',
      labelNames: ['call'] as const,
      registers: [registry],
      collect() {
        const m = readSnapshot()?.model;
        for (const call of ['documents', 'queries'] as CallKey[]) {
          const c = m?.[call];
          if (c) this.set({ call }, c.inFlight);
        }
      },
    });
    mirrored(registry, 'livedex_errors_total', 'Errors by kind: documents that failed to index, and model requests that failed for good by the kind of failure.', ['kind'] as const, (set) => {
      const s = readSnapshot();
      if (!s) return;
      set({ kind: 'document_failed' }, s.pipeline.failed);
      for (const call of ['documents', 'queries'] as CallKey[]) {
        for (const [kind, n] of Object.entries(s.model[call]?.failures ?? {})) set({ kind: `model_${kind}` }, n ?? 0);
      }
    });

    mirrored(registry, 'livedex_parses_total', 'Files parsed by parser, on the main thread (thread="main", small files of sandbox.in_process parsers) or in a parse worker (thread="worker").', ['parser', 'thread'] as const, (set) => {
      for (const [parser, c] of Object.entries(readSnapshot()?.parsing?.parses ?? {})) {
        set({ parser, thread: 'main' }, c.main);
        set({ parser, thread: 'worker' }, c.worker);
      }
    });
    new Gauge({ name: 'livedex_parse_workers', help: 'Parse worker threads running (they start with the server).', registers: [registry], collect() { const p = readSnapshot()?.parsing; if (p) this.set(p.workers); } });
    pipe('livedex_parse_workers_started_total', 'Parse worker threads started, replacements of stopped or crashed ones included.', (s) => s.parsing?.workersStarted ?? 0);
  }

  const onSettle = (e: DocumentSettled) => {
    settled.inc({ state: e.state });
    if ((e.state === 'indexed' || e.state === 'deleted' || e.state === 'failed') && e.seenAt !== null) {
      const seconds = Math.max(0, (e.settledAt - e.seenAt) / 1000);
      ingest.observe(seconds);
      lastLag.set(seconds);
      lastSettled.set(e.settledAt / 1000);
    }
  };
  const unsubscribe = observable ? observable.onSettle(onSettle) : () => {};

  return {
    registry,
    instrument<T extends LiveIndexApi>(target: T): T {
      const timed = async (req: RetrieveRequest) => {
        const end = query.startTimer({ mode: req.mode ?? 'hybrid' });
        try {
          const hits = await target.retrieve(req);
          end({ outcome: 'ok' });
          return hits;
        } catch (err) {
          end({ outcome: 'error' });
          throw err;
        }
      };
      return new Proxy(target, {
        get(t, prop) {
          if (prop === 'retrieve') return timed;
          const value = Reflect.get(t, prop, t) as unknown;
          // Bound to the real index: its methods use private fields.
          return typeof value === 'function' ? value.bind(t) : value;
        },
      });
    },
    countErrors: async (c: Context, next) => {
      await next();
      if (c.res.status < 400) return;
      let code = 'unknown';
      try {
        const body = (await c.res.clone().json()) as { error?: { code?: unknown } };
        if (typeof body?.error?.code === 'string') code = body.error.code;
      } catch {
        // not JSON (an MCP stream, a static page): the status says enough
      }
      errors.inc({ code, status: String(c.res.status) });
    },
    close: unsubscribe,
  };
}

/** Mounts `GET /metrics` (Prometheus text format 0.0.4). */
export function mountMetrics(app: Hono, metrics: AppMetrics): void {
  app.get('/metrics', async (c) => {
    const text = await metrics.registry.metrics();
    return c.body(text, 200, { 'Content-Type': metrics.registry.contentType });
  });
}
