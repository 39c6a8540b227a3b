/**
 * @module index — livedex as a library: a live hybrid index in your own process, without a
 * server. `openLivedex` opens it from a config object (the app file's keys) or an app file,
 * starts its sources, and hands back a `Livedex`: retrieve, list, status, change events,
 * close. The server (`serve`) is built on the same handle; third-party plugins are
 * `definePlugin` values, registered by `plugins` or named in the config's `plugins` list.
 *
 * @example
 * import { openLivedex } from 'livedex';
 * const livedex = await openLivedex({ folder: './docs' });
 * await livedex.ready;
 * const hits = await livedex.retrieve('how do refunds work', { k: 3 });
 * for await (const change of livedex.changes()) console.log(change.updated, change.deleted);
 */
export { Livedex, openLivedex, openValidated, type ListOptions, type OpenLivedexOptions, type RetrieveOptions } from './open.js';
export { definePlugin, Registry, type PluginContext, type PluginDefinition, type PluginKind, type VectorIndexContext } from './core/registry.js';
export { LivedexError, type ErrorCode } from './core/errors.js';
export { builtinRegistry, loadPluginModules } from './plugins.js';
export { loadConfigFile, parseConfig } from './config-file.js';
export { serve, type RunningServer } from './livedex.js';
export { LiveIndex } from './core/live-index.js';
export type { LivedexConfig, LivedexConfigInput } from './core/config.js';
export type { LogLevel } from './core/log.js';
export type {
  ChatModel,
  DocumentChunk,
  DocumentInfo,
  Embedder,
  Fusion,
  Hit,
  IndexChange,
  IndexStatus,
  Logger,
  Metadata,
  Parser,
  RetrievalMode,
  Source,
  Splitter,
  Statistics,
  VectorIndex,
} from './core/types.js';
// The config schema, for tools that validate or document an app file.
export { LivedexConfig as LivedexConfigSchema } from './core/config.js';
