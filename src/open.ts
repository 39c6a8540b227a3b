/**
 * @module open — a live index in this process: `openLivedex` opens it from a config object or
 * an app file, registers the config's plugin modules, starts the sources, and hands back a
 * `Livedex` handle (retrieve, list, status, change events, close). The server is built on it.
 */
import { resolve } from 'node:path';
import type { LivedexConfig, LivedexConfigInput } from './core/config.js';
import { LivedexError } from './core/errors.js';
import { LiveIndex } from './core/live-index.js';
import { createLogger, type LogLevel } from './core/log.js';
import type { PluginDefinition, Registry } from './core/registry.js';
import type { DocumentChunk, DocumentInfo, Fusion, Hit, IndexChange, IndexStatus, Logger, Metadata, RetrievalMode, Statistics } from './core/types.js';
import { loadConfigFile, parseConfig } from './config-file.js';
import { builtinRegistry, loadPluginModules } from './plugins.js';

export interface OpenLivedexOptions {
  /** The config as an object with the app file's keys (what is left out takes its default); see `openValidated` for a parsed one. */
  config?: LivedexConfigInput;
  /** An app file (YAML) to read the config from, as `livedex serve --config` does (instead of `config`). */
  configFile?: string;
  /** Shortcut for one folder source (`sources: [{ fs: { path: folder } }]`), added to the config's sources. */
  folder?: string;
  /** Plugin definitions to register besides the built-in ones (and the config's `plugins` modules). */
  plugins?: readonly PluginDefinition[];
  /** A logger, or the level of the default one (default `warn`: a library stays quiet). */
  logger?: Logger | LogLevel;
  /** Start the sources at once (default true); with false, `start()` starts them. */
  start?: boolean;
  /** The registry to build plugins from (default: the built-in plugins). */
  registry?: Registry;
}

export interface RetrieveOptions {
  /** How many hits (default: the config's `retrieval.default_k`). */
  k?: number;
  /** `hybrid`, `vector` or `bm25` (default: the config's `retrieval.default_mode`). */
  mode?: RetrievalMode;
  fusion?: Fusion;
  /** Weight of the vector leg in convex fusion (0..1). */
  alpha?: number;
  /** A JMESPath filter on the chunk metadata, applied inside the searches. */
  filter?: string;
  /** A glob on the document path. */
  glob?: string;
}

export interface ListOptions {
  filter?: string;
  glob?: string;
}

/** A live index opened in this process. */
export class Livedex implements AsyncDisposable {
  /** The index underneath (what the server serves). */
  readonly index: LiveIndex;
  readonly config: LivedexConfig;
  #ready: Promise<void> | null = null;
  /** The change iterators open now: closing the index ends them. */
  readonly #closing = new Set<AbortController>();

  constructor(index: LiveIndex, config: LivedexConfig) {
    this.index = index;
    this.config = config;
  }

  /** Starts the sources (once); resolves when what they listed first is indexed (on a restart: at once, from the store). */
  start(): Promise<void> {
    this.#ready ??= this.index.start();
    return this.#ready;
  }

  /** Resolves once the index serves (see `start`). */
  get ready(): Promise<void> {
    return this.start();
  }

  /** Resolves once every source has been listed since the start and what it found is indexed. */
  synced(): Promise<void> {
    return this.index.synced();
  }

  /** Asks every source to look for changes now, and waits until what it found is indexed. */
  sync(): Promise<void> {
    return this.index.sync();
  }

  /** The best chunks for `query`, with the defaults of the config's `retrieval` block. */
  async retrieve(query: string, opts: RetrieveOptions = {}): Promise<Hit[]> {
    const { default_k, max_k, default_mode } = this.config.retrieval;
    const k = opts.k ?? default_k;
    if (typeof query !== 'string' || query.length === 0) throw new LivedexError('invalid_request', 'query: a non-empty string is required', { field: 'query' });
    if (!Number.isInteger(k) || k < 1 || k > max_k) throw new LivedexError('invalid_request', `k: an integer from 1 to ${max_k} is required (found ${k})`, { field: 'k' });
    return this.index.retrieve({
      query,
      k,
      mode: opts.mode ?? default_mode,
      ...(opts.fusion ? { fusion: opts.fusion } : {}),
      ...(opts.alpha !== undefined ? { alpha: opts.alpha } : {}),
      metadataFilter: opts.filter ?? null,
      filepathGlobpattern: opts.glob ?? null,
    });
  }

  /** The metadata of every indexed document (optionally filtered). */
  listDocuments(opts: ListOptions = {}): Promise<Metadata[]> {
    return this.index.listDocuments({ metadataFilter: opts.filter ?? null, filepathGlobpattern: opts.glob ?? null });
  }

  /** Every stored document, indexed, pending or failed (with its reason), sorted by key. */
  documents(): Promise<DocumentInfo[]> {
    return this.index.listDocumentInfos();
  }

  getDocument(key: string): Promise<DocumentInfo | null> {
    return this.index.getDocument(key);
  }

  /** A document's chunks in order; null when there is no such document. */
  getDocumentChunks(key: string): Promise<DocumentChunk[] | null> {
    return this.index.getDocumentChunks(key);
  }

  status(): Promise<IndexStatus> {
    return this.index.status();
  }

  statistics(): Promise<Statistics> {
    return this.index.statistics();
  }

  /** Calls `listener` after each commit with the documents it changed; returns the unsubscribe. */
  on(event: 'change', listener: (change: IndexChange) => void): () => void {
    if (event !== 'change') throw new LivedexError('invalid_request', `event: only "change" is emitted (found ${String(event)})`, { field: 'event' });
    return this.index.onChange(listener);
  }

  /**
   * The commits from now on, as an async iterator that ends when `signal` aborts or the index
   * closes. Changes that come while the loop body runs are kept, in order.
   */
  async *changes(opts: { signal?: AbortSignal } = {}): AsyncGenerator<IndexChange, void, undefined> {
    const queue: IndexChange[] = [];
    let wake: (() => void) | null = null;
    const poke = () => {
      wake?.();
      wake = null;
    };
    const off = this.on('change', (c) => {
      queue.push(c);
      poke();
    });
    const stop = new AbortController();
    this.#closing.add(stop);
    opts.signal?.addEventListener('abort', () => stop.abort(), { once: true });
    stop.signal.addEventListener('abort', poke, { once: true });
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (stop.signal.aborted || opts.signal?.aborted) return;
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      off();
      this.#closing.delete(stop);
    }
  }

  /** Stops the sources, waits for the commits in flight, saves the vector snapshot, closes the store. */
  async close(): Promise<void> {
    for (const c of this.#closing) c.abort();
    await this.index.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The config of `opts`: from the app file or the object (not both), with `folder` added as a source. */
async function configOf(opts: OpenLivedexOptions, registry: Registry): Promise<LivedexConfig> {
  if (opts.configFile && opts.config) throw new LivedexError('config_error', 'give config or configFile, not both', { field: 'config' });
  const config = opts.configFile ? await loadConfigFile(opts.configFile, { registry }) : parseConfig(opts.config ?? {});
  if (!opts.folder) return config;
  return { ...config, sources: [...config.sources, { name: 'fs', options: { path: resolve(opts.folder) } }] };
}

/**
 * Opens a live index in this process and (unless `start: false`) starts its sources.
 * Await `ready` before the first query if it must see the folder's documents.
 */
export async function openLivedex(opts: OpenLivedexOptions = {}): Promise<Livedex> {
  const registry = opts.registry ?? builtinRegistry();
  if (opts.plugins?.length) registry.register(...opts.plugins);
  return openValidated(await configOf(opts, registry), { ...opts, registry });
}

/** `openLivedex` for a config already validated (`parseConfig`, `loadConfigFile`): what the server and the CLI open. */
export async function openValidated(config: LivedexConfig, opts: Pick<OpenLivedexOptions, 'registry' | 'logger' | 'start'> = {}): Promise<Livedex> {
  const registry = opts.registry ?? builtinRegistry();
  await loadPluginModules(config.plugins, registry);
  const logger = typeof opts.logger === 'object' ? opts.logger : createLogger({ level: opts.logger ?? 'warn' });
  const index = await LiveIndex.open({ config, registry, logger });
  const livedex = new Livedex(index, config);
  if (opts.start !== false) livedex.start().catch((err) => logger.error('source failed to start', { error: String(err) }));
  return livedex;
}
