/**
 * @module config-file — `livedex serve --config app.yaml`: a YAML app file with `${ENV}` and
 * `${ENV:-default}` interpolation, validated against the config schema and every plugin's own
 * options schema; an error names the file, the line, the path inside it, what was expected
 * and what was found.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, Scalar, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { LivedexConfig } from './core/config.js';
import { LivedexError } from './core/errors.js';
import type { PluginKind, Registry } from './core/registry.js';
import { loadPluginModules } from './plugins.js';

/** Where the config keys that hold plugin blocks find their plugins. */
const PLUGIN_KEYS: Record<string, { kind: PluginKind; list: boolean; map?: boolean }> = {
  sources: { kind: 'source', list: true },
  parsers: { kind: 'parser', list: true },
  splitter: { kind: 'splitter', list: false },
  splitters: { kind: 'splitter', list: false, map: true },
  embedder: { kind: 'embedder', list: false },
  vector_index: { kind: 'vectorIndex', list: false },
  llm: { kind: 'llm', list: false },
};

/** `${NAME}`, `${NAME:-default}`, and `$${…}` for a literal `${…}`. */
const INTERPOLATION = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface LoadConfigOptions {
  /** Variables for `${…}`; defaults to `process.env`. */
  env?: Record<string, string | undefined>;
  /** When given, every plugin block is checked against its plugin's options schema too. */
  registry?: Registry;
  /** Resolve `./…` and `../…` paths against this directory (`loadConfigFile`: the file's). */
  baseDir?: string;
}

/** A path like `sources[1].gdrive.folder_id`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
}

/** A short, safe rendering of what a config value was. */
function found(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value);
  return `${typeof value} ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}

/**
 * Reads and validates a YAML app file. Relative `data_dir` and folder paths stay relative to
 * the working directory, as on the command line.
 *
 * @example
 * const config = await loadConfigFile('app.yaml', { registry: builtinRegistry() });
 */
export async function loadConfigFile(file: string, opts: LoadConfigOptions = {}): Promise<LivedexConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new LivedexError('config_error', `${file}: cannot read the config file (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  const baseDir = opts.baseDir ?? dirname(resolve(file));
  if (opts.registry) {
    // The plugin modules first: the rest of the file may name their plugins.
    const { plugins } = parseConfigText(text, file, { ...opts, registry: undefined, baseDir });
    await loadPluginModules(plugins, opts.registry, baseDir).catch((err: unknown) => {
      throw err instanceof LivedexError ? new LivedexError('config_error', `${file}: ${err.message}`, { ...(err.field ? { field: err.field } : {}), cause: err.cause }) : err;
    });
  }
  return parseConfigText(text, file, { ...opts, baseDir });
}

/** Validates a config object; errors name the path at fault. */
export function parseConfig(input: unknown, origin = 'config'): LivedexConfig {
  const parsed = LivedexConfig.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
  throw new LivedexError('config_error', `${origin}: ${path || '(root)'}: ${issue.message}`, { field: path });
}

/** Validates YAML text as an app file; `file` names it in errors. */
export function parseConfigText(text: string, file: string, opts: LoadConfigOptions = {}): LivedexConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = lines.linePos(syntax.pos[0]);
    const where = `${file}:${pos.line}:${pos.col}`;
    throw new LivedexError('config_error', `${where}: YAML syntax error: ${syntax.message.split('\n')[0]}`);
  }
  const at = (node: { range?: [number, number, number] | null } | null | undefined): string => {
    if (!node?.range) return file;
    const pos = lines.linePos(node.range[0]);
    return `${file}:${pos.line}:${pos.col}`;
  };
  interpolate(doc, opts.env ?? process.env, at);

  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new LivedexError('config_error', `${file}: the config must be a mapping of settings (found ${found(raw)})`);
  const fail = (path: readonly PropertyKey[], message: string, value: unknown, key?: string): never => {
    const yamlPath = path.filter((p): p is string | number => typeof p === 'string' || typeof p === 'number');
    // An unknown key is shown where it is written, not where its mapping starts.
    const node = (key !== undefined && keyNode(doc, yamlPath, key)) || nearestNode(doc, yamlPath);
    const shown = formatPath(yamlPath) || '(root)';
    const detail = key === undefined ? ` (found ${found(value)})` : '';
    throw new LivedexError('config_error', `${at(node)}: ${shown}: ${message}${detail}`, { field: shown });
  };

  const parsed = LivedexConfig.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    fail(issue.path, issue.message, valueAt(raw, issue.path), unknownKey(issue));
  }
  if (opts.registry) checkPlugins(raw as Record<string, unknown>, opts.registry, fail);
  return opts.baseDir ? relativeTo(parsed.data!, opts.baseDir) : parsed.data!;
}

/** Option names that hold paths: `path`, `model`, `…_file`, `…_dir`. */
const PATH_KEY = /^(path|model|data_dir|.*_file|.*_dir)$/;

/**
 * Paths written `./x` or `../x` in an app file mean "beside the file", wherever livedex runs
 * from (a desktop agent starts `livedex mcp` in a directory of its choosing). Absolute paths,
 * names (`hashing`, a hub model id) and bare relative paths are kept as written.
 */
function relativeTo(config: LivedexConfig, baseDir: string): LivedexConfig {
  const fix = (key: string, v: unknown): unknown =>
    typeof v === 'string' && PATH_KEY.test(key) && /^\.\.?\//.test(v) ? resolve(baseDir, v) : v;
  const fixOptions = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fix(k, v)]));
  const fixRef = <T extends { options: Record<string, unknown> }>(r: T): T => ({ ...r, options: fixOptions(r.options) });
  return {
    ...config,
    plugins: config.plugins.map((p) => fix('path', p) as string),
    data_dir: fix('data_dir', config.data_dir) as string,
    sources: config.sources.map(fixRef),
    parsers: config.parsers.map(fixRef),
    embedder: fixRef(config.embedder),
    ...(config.auth.tokens_file ? { auth: { ...config.auth, tokens_file: fix('tokens_file', config.auth.tokens_file) as string } } : {}),
  };
}

/** Checks each plugin block's options with the plugin's own schema, so errors point into the file. */
function checkPlugins(
  raw: Record<string, unknown>,
  registry: Registry,
  fail: (path: readonly PropertyKey[], message: string, value: unknown, key?: string) => never,
): void {
  for (const [key, { kind, list, map }] of Object.entries(PLUGIN_KEYS)) {
    const value = raw[key];
    if (value === undefined) continue;
    const blocks: [PropertyKey[], unknown][] =
      list && Array.isArray(value) ? value.map((v, i) => [[key, i], v])
      : map && value !== null && typeof value === 'object' ? Object.entries(value).map(([k, v]) => [[key, k], v])
      : [[[key], value]];
    for (const [path, block] of blocks) {
      const [name, options, optionsPath] =
        typeof block === 'string' ? [block, {}, path] : (() => {
          const [n] = Object.keys(block as object);
          return [n!, (block as Record<string, unknown>)[n!] ?? {}, [...path, n!]] as const;
        })();
      let schema: z.ZodType;
      try {
        schema = registry.get(kind, name).options;
      } catch (err) {
        fail(path, (err as Error).message, block);
      }
      const result = schema!.safeParse(options);
      if (!result.success) {
        const issue = result.error.issues[0]!;
        fail([...optionsPath, ...issue.path], issue.message, valueAt(options, issue.path), unknownKey(issue));
      }
    }
  }
}

/** Replaces `${NAME}` / `${NAME:-default}` in every string value (never in keys). */
function interpolate(doc: Document, env: Record<string, string | undefined>, at: (node: Scalar) => string): void {
  visit(doc, {
    Pair(_, pair) {
      // Keys are names, not values: only the value side is interpolated.
      if (isScalar(pair.value)) replaceScalar(pair.value, env, at);
      return undefined;
    },
    Seq(_, seq) {
      for (const item of seq.items) if (isScalar(item)) replaceScalar(item, env, at);
      return undefined;
    },
  });
}

function replaceScalar(node: Scalar, env: Record<string, string | undefined>, at: (node: Scalar) => string): void {
  if (typeof node.value !== 'string' || !node.value.includes('${')) return;
  const source = node.value;
  let whole = false;
  const out = source.replace(INTERPOLATION, (match, escaped: string, name: string, fallback: string | undefined, offset: number) => {
    if (escaped) return match.slice(1);
    const value = env[name];
    if (value !== undefined && value !== '') {
      whole = match.length === source.length && offset === 0;
      return value;
    }
    if (fallback !== undefined) {
      whole = match.length === source.length && offset === 0;
      return fallback;
    }
    throw new LivedexError('config_error', `${at(node)}: \${${name}} is not set in the environment (set it, or write \${${name}:-default})`, { field: name });
  });
  // An unquoted value that was one interpolation takes the YAML type of what it became: `port: ${PORT:-8000}` is a number.
  if (whole && node.type === Scalar.PLAIN) {
    const typed = parseDocument(out).contents;
    node.value = isScalar(typed) ? typed.value : out;
  } else {
    node.value = out;
  }
}

/** The deepest YAML node on `path` (the missing key's parent when the key is absent). */
function nearestNode(doc: Document, path: (string | number)[]) {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node && (isScalar(node) || isMap(node) || isSeq(node))) return node;
  }
  return undefined;
}

/** The node of `key` itself in the mapping at `path`. */
function keyNode(doc: Document, path: (string | number)[], key: string) {
  const map = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (!isMap(map)) return undefined;
  const pair = map.items.find((p) => isScalar(p.key) && p.key.value === key);
  return pair && isScalar(pair.key) ? pair.key : undefined;
}

/** The first key of an "unrecognized key" issue. */
function unknownKey(issue: z.core.$ZodIssue): string | undefined {
  return issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}
