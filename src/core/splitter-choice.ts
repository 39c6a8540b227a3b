/** @module core/splitter-choice — which splitter each parser's parts go to: the config's choice, else the parser's preference, else the default. */
import { DEFAULT_SPLITTER, type LivedexConfig, type PluginRef } from './config.js';
import { LivedexError } from './errors.js';
import type { PluginContext, Registry } from './registry.js';
import type { Parser, Splitter } from './types.js';

/** The splitters of a live index: one per parser name, and one for parts of no known parser. */
export interface SplitterChoice {
  byParser: Map<string, Splitter>;
  fallback: Splitter;
}

/**
 * Builds the splitter of every parser, first match wins:
 * 1. `splitters.<parser name>` in the config;
 * 2. `splitter` in the config (every parser);
 * 3. the parser's own `splitter` preference (e.g. `structure` for Markdown and PDF), with
 *    default options — skipped with a warning when the registry has no such splitter;
 * 4. `DEFAULT_SPLITTER`.
 *
 * Splitters with the same name and options are built once and shared. A `splitters` key that
 * names no configured parser is a config error naming the key.
 */
export async function chooseSplitters(
  registry: Registry,
  config: Pick<LivedexConfig, 'splitter' | 'splitters'>,
  parsers: readonly Parser[],
  ctx: PluginContext,
): Promise<SplitterChoice> {
  const names = new Set(parsers.map((p) => p.name));
  for (const key of Object.keys(config.splitters)) {
    if (!names.has(key)) {
      const known = [...names].sort().join(', ') || 'none';
      throw new LivedexError('config_error', `splitters.${key}: no parser is named "${key}" (parsers: ${known})`, { field: `splitters.${key}` });
    }
  }
  const built = new Map<string, Promise<Splitter>>();
  const build = (ref: PluginRef, where: string): Promise<Splitter> => {
    const id = `${ref.name}\u0000${JSON.stringify(ref.options)}`;
    let splitter = built.get(id);
    if (!splitter) {
      splitter = registry.create('splitter', ref.name, ref.options, ctx, where);
      built.set(id, splitter);
    }
    return splitter;
  };
  const known = new Set(registry.list('splitter').map((d) => d.name));
  const byParser = new Map<string, Splitter>();
  for (const parser of parsers) {
    if (byParser.has(parser.name)) continue;
    const own = config.splitters[parser.name];
    if (own) {
      byParser.set(parser.name, await build(own, `splitters.${parser.name}.${own.name}`));
      continue;
    }
    if (config.splitter) {
      byParser.set(parser.name, await build(config.splitter, `splitter.${config.splitter.name}`));
      continue;
    }
    let name = parser.splitter ?? DEFAULT_SPLITTER;
    if (!known.has(name)) {
      ctx.logger.warn('the splitter a parser prefers is not registered: using the default', { parser: parser.name, splitter: name, default: DEFAULT_SPLITTER });
      name = DEFAULT_SPLITTER;
    }
    byParser.set(parser.name, await build({ name, options: {} }, `splitter.${name}`));
  }
  const fallbackRef = config.splitter ?? { name: DEFAULT_SPLITTER, options: {} };
  const fallback = await build(fallbackRef, `splitter.${fallbackRef.name}`);
  return { byParser, fallback };
}
