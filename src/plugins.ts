/**
 * @module plugins — the built-in plugins, registered by name, and third-party plugins loaded
 * from the modules a config names; the only place that imports every plugin room.
 */
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LivedexError } from './core/errors.js';
import { pluginsIn, Registry, type PluginDefinition } from './core/registry.js';
import { vectorIndexPlugins } from './indexes/index.js';
import { chatModelPlugins, embedderPlugins } from './models/index.js';
import { optInParserPlugins, parserPlugins } from './parsers/index.js';
import { sourcePlugins } from './sources/index.js';
import { splitterPlugins } from './splitters/index.js';

export function builtinRegistry(): Registry {
  return new Registry().register(...parserPlugins, ...optInParserPlugins, ...splitterPlugins, ...embedderPlugins, ...chatModelPlugins, ...sourcePlugins, ...vectorIndexPlugins);
}

/** The modules (as named, and by URL) whose plugins each registry holds. */
const LOADED = new WeakMap<Registry, Set<string>>();

/** The URL of a plugin module: `./…`, `../…` and absolute paths from `baseDir`, package names as `baseDir` would import them. */
function moduleUrl(spec: string, baseDir: string): string {
  if (/^\.\.?[\\/]/.test(spec) || isAbsolute(spec)) return pathToFileURL(resolve(baseDir, spec)).href;
  if (spec.startsWith('file:')) return spec;
  try {
    return pathToFileURL(createRequire(join(baseDir, 'package.json')).resolve(spec)).href;
  } catch {
    // An ESM-only package (no `require` condition), or one installed beside livedex itself.
    return import.meta.resolve(spec);
  }
}

/**
 * Imports each module of `specs` and registers the plugin definitions it exports. A parser
 * without its own `module` is given the one it came from, so the parse workers import it too.
 * A module that cannot be loaded, or exports no plugin, is a config error naming it.
 */
export async function loadPluginModules(specs: readonly string[], registry: Registry, baseDir = process.cwd()): Promise<PluginDefinition[]> {
  const loaded: PluginDefinition[] = [];
  let seen = LOADED.get(registry);
  if (!seen) LOADED.set(registry, (seen = new Set()));
  for (const [i, spec] of specs.entries()) {
    const field = `plugins[${i}]`;
    // A config read with this registry already brought these in (the app file, then the open).
    if (seen.has(spec)) continue;
    let url: string;
    let mod: Record<string, unknown>;
    try {
      url = moduleUrl(spec, baseDir);
      if (seen.has(url)) continue;
      mod = (await import(url)) as Record<string, unknown>;
    } catch (err) {
      throw new LivedexError('config_error', `${field}: cannot load the plugin module "${spec}": ${err instanceof Error ? err.message : String(err)}`, { field, cause: err });
    }
    const defs = pluginsIn(mod).map((d) => (d.kind === 'parser' && d.module === undefined ? { ...d, module: url } : d));
    if (defs.length === 0) throw new LivedexError('config_error', `${field}: "${spec}" exports no plugin (a definePlugin(…) value, or a list of them)`, { field });
    registry.register(...defs);
    seen.add(spec).add(url);
    loaded.push(...defs);
  }
  return loaded;
}
