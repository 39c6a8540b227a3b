/** @module core/registry — plugins by kind and name; core reaches plugins only through here. */
import type { z } from 'zod';
import { LivedexError } from './errors.js';
import type { ChatModel, Embedder, Logger, Parser, Source, Splitter, TokenSplitting, VectorIndex } from './types.js';

/** What every plugin factory receives. */
export interface PluginContext {
  logger: Logger;
  /** The data directory (plugins that persist state keep it under here). */
  dataDir: string;
  /** The engine's token splitting, when the engine has it (splitters fall back to their own). */
  tokenSplitting?: TokenSplitting | undefined;
}

export interface VectorIndexContext extends PluginContext {
  dimensions: number;
  /** The embedder's model key: a snapshot made under another model is not reused. */
  modelKey: string;
  /** Directory where the index keeps its snapshot. */
  dir: string;
}

export interface PluginKinds {
  source: { instance: Source; ctx: PluginContext };
  parser: { instance: Parser; ctx: PluginContext };
  splitter: { instance: Splitter; ctx: PluginContext };
  embedder: { instance: Embedder; ctx: PluginContext };
  vectorIndex: { instance: VectorIndex; ctx: VectorIndexContext };
  /** Chat models, for answers and summaries. */
  llm: { instance: ChatModel; ctx: PluginContext };
}
export type PluginKind = keyof PluginKinds;

export interface PluginDefinition<K extends PluginKind = PluginKind, S extends z.ZodType = z.ZodType> {
  kind: K;
  name: string;
  description: string;
  /** Options schema; its parsed output is what `create` receives. */
  options: S;
  /**
   * Built only when the config names it, never as part of a default set (e.g. a parser that
   * sends documents to a remote service, or needs credentials).
   */
  optIn?: boolean;
  /**
   * URL of the module that exports this definition (`import.meta.url`): a parse worker imports
   * it alone instead of the whole registry, so it loads only the parsers it is asked for.
   */
  module?: string;
  create(options: z.output<S>, ctx: PluginKinds[K]['ctx']): PluginKinds[K]['instance'] | Promise<PluginKinds[K]['instance']>;
}

/** Identity helper that keeps the options type tied to the schema. */
export function definePlugin<K extends PluginKind, S extends z.ZodType>(def: PluginDefinition<K, S>): PluginDefinition<K, S> {
  return def;
}

export class Registry {
  readonly #plugins = new Map<string, PluginDefinition>();

  register(...defs: PluginDefinition<PluginKind, z.ZodType>[]): this {
    for (const def of defs) {
      const id = `${def.kind}:${def.name}`;
      if (this.#plugins.has(id)) throw new LivedexError('config_error', `plugin ${id} is registered twice`);
      this.#plugins.set(id, def as PluginDefinition);
    }
    return this;
  }

  get<K extends PluginKind>(kind: K, name: string): PluginDefinition<K> {
    const def = this.#plugins.get(`${kind}:${name}`);
    if (!def) {
      const known = this.list(kind).map((d) => d.name).join(', ') || 'none';
      throw new LivedexError('config_error', `unknown ${kind} "${name}" (known: ${known})`, { field: kind });
    }
    return def as unknown as PluginDefinition<K>;
  }

  list<K extends PluginKind>(kind: K): PluginDefinition<K>[] {
    return [...this.#plugins.values()].filter((d) => d.kind === kind) as unknown as PluginDefinition<K>[];
  }

  /** Validates `options` against the plugin's schema and builds it; errors name the option path. */
  async create<K extends PluginKind>(
    kind: K,
    name: string,
    options: unknown,
    ctx: PluginKinds[K]['ctx'],
    where = `${kind}.${name}`,
  ): Promise<PluginKinds[K]['instance']> {
    const def = this.get(kind, name);
    const parsed = def.options.safeParse(options ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = [where, ...(issue?.path ?? []).map(String)].join('.');
      throw new LivedexError('config_error', `${path}: ${issue?.message ?? 'invalid options'}`, { field: path });
    }
    return def.create(parsed.data, ctx);
  }
}

/** True when `value` looks like a plugin definition (a module's export, checked by shape). */
export function isPluginDefinition(value: unknown): value is PluginDefinition {
  const d = value as Partial<PluginDefinition> | null;
  return typeof d === 'object' && d !== null && typeof d.kind === 'string' && typeof d.name === 'string' && typeof d.create === 'function';
}

/** The plugin definitions a module exports: each export that is one, or a list of them (`default` too). */
export function pluginsIn(mod: Record<string, unknown>): PluginDefinition[] {
  const found = new Set<PluginDefinition>();
  for (const value of Object.values(mod)) {
    for (const v of Array.isArray(value) ? value : [value]) if (isPluginDefinition(v)) found.add(v);
  }
  return [...found];
}
