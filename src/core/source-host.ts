/** @module core/source-host — builds the configured sources, gives each its context (the store's versions and cursors, the pipeline), and keeps their health. */
import type { Engine } from '../engine/types.js';
import type { LivedexConfig } from './config.js';
import { LivedexError } from './errors.js';
import type { Pipeline } from './pipeline.js';
import type { Registry } from './registry.js';
import type { Logger, Source, SourceContext, SourceHealth, SourceStatus } from './types.js';

export interface SourceHostDeps {
  engine: Engine;
  pipeline: Pipeline;
  registry: Registry;
  config: LivedexConfig;
  logger: Logger;
  dataDir: string;
  /** Aborted when the index closes. */
  signal: AbortSignal;
}

export class SourceHost {
  readonly #deps: SourceHostDeps;
  readonly #sources: Source[] = [];
  readonly #health = new Map<string, SourceStatus>();
  #seen = 0;

  constructor(deps: SourceHostDeps) {
    this.#deps = deps;
  }

  /** Builds every configured source and starts it; resolves once each has handed on its first listing (or what it serves from the store). */
  async start(): Promise<void> {
    const { config, registry, logger, dataDir } = this.#deps;
    for (const [i, ref] of config.sources.entries()) {
      // Sources get the data dir in their context (the folder source never indexes it).
      const source = await registry.create('source', ref.name, ref.options, { logger, dataDir }, `sources[${i}].${ref.name}`);
      if (this.#sources.some((s) => s.id === source.id)) {
        throw new LivedexError('config_error', `sources[${i}].${ref.name}: another source already has the id ${JSON.stringify(source.id)}; give one of them a different name`);
      }
      this.#sources.push(source);
      this.#health.set(source.id, { id: source.id, state: 'syncing', error: null, last_sync_at: null, failures: 0 });
    }
    await Promise.all(this.#sources.map((s) => s.start(this.#contextFor(s))));
  }

  /** Resolves once the sources that served from the store first have finished their first listing. */
  async synced(): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.synced?.()));
  }

  /** Asks every source to reconcile now. */
  async reconcile(): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.reconcile()));
  }

  /** The sources started so far (e.g. the push source, which a route feeds). */
  list(): readonly Source[] {
    return [...this.#sources];
  }

  /** Each source's health, as last reported. */
  health(): SourceStatus[] {
    return [...this.#health.values()].map((h) => ({ ...h }));
  }

  /** Changes the sources handed on so far. */
  get seen(): number {
    return this.#seen;
  }

  async stop(): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.stop().catch(() => {})));
  }

  #contextFor(source: Source): SourceContext {
    const { engine, pipeline } = this.#deps;
    return {
      knownVersions: async () => {
        const versions = new Map<string, string>();
        for (const row of await engine.listDocuments()) if (source.owns(row.key)) versions.set(row.key, row.version);
        return versions;
      },
      emit: async (changes) => {
        this.#seen += changes.length;
        await pipeline.enqueue(changes);
      },
      getCursor: () => engine.getCursor(source.id),
      setCursor: (value) => engine.setCursor(source.id, value),
      settled: () => pipeline.idle(),
      reportHealth: (health) => this.#report(source.id, health),
      logger: this.#deps.logger,
      signal: this.#deps.signal,
    };
  }

  #report(id: string, health: SourceHealth): void {
    const prev = this.#health.get(id) ?? { id, state: 'syncing' as const, error: null, last_sync_at: null, failures: 0 };
    const failed = health.state === 'error';
    if (failed && prev.state !== 'error') this.#deps.logger.warn('source failing', { source: id, error: health.error ?? null });
    if (!failed && prev.state === 'error') this.#deps.logger.info('source recovered', { source: id });
    this.#health.set(id, {
      id,
      state: health.state,
      error: failed ? (health.error ?? 'unknown error') : null,
      last_sync_at: health.last_sync_at ?? (health.state === 'idle' ? Math.floor(Date.now() / 1000) : prev.last_sync_at),
      failures: failed ? prev.failures + 1 : 0,
      // Each report carries the whole list of skipped paths: one without it means there are none.
      ...(health.skipped && health.skipped.count > 0 ? { skipped: health.skipped } : {}),
    });
  }
}
