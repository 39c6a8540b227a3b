/** @module core/filter — compiles Pathway-style metadata filters (JMESPath + `globmatch`) and glob patterns into predicates whose cost is bounded. */
import { compile, tokenize } from '@jmespath-community/jmespath';
import type { JSONValue } from '@jmespath-community/jmespath';
import { LivedexError } from './errors.js';
import { DEFAULT_FILTER_LIMITS, FilterBudget, limitError, type FilterLimits } from './filter-budget.js';
import { COST, createInterpreter, Meter, type ExpressionNode, type MeteredInterpreter } from './filter-interpreter.js';
import { compileGlob as compileGlobPattern, GlobError, type Glob } from './glob.js';
import type { Metadata } from './types.js';

/**
 * A compiled filter: true when a metadata object matches. `budget` is the request's (one per
 * request, shared by every document it evaluates); without one, the call gets a budget of its own.
 *
 * @throws LivedexError `invalid_filter` when the evaluation goes over a limit of `budget`.
 */
export type MetadataPredicate = (metadata: Metadata, budget?: FilterBudget) => boolean;

export interface CompileFilterOptions {
  /** JMESPath expression over metadata, with `globmatch(pattern, path)`; empty or null means none. */
  metadataFilter?: string | null;
  /** Glob over `metadata.path`, ANDed with the filter; empty or null means none. */
  filepathGlobpattern?: string | null;
  /** The request field named in errors about `metadataFilter` (default `metadata_filter`). */
  field?: string;
  /** The cost limits (`limits.filter_*` of the config); the defaults when absent. */
  limits?: FilterLimits;
}

// ───────────────────────────── globs ─────────────────────────────

/** A tiny LRU: queries repeat, so compiled filters and globs are worth keeping. */
class Lru<V> {
  readonly #max: number;
  readonly #map = new Map<string, V>();
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }
  set(key: string, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
  }
}

const globCache = new Lru<Glob>(256);

/** A compiled glob, or the `GlobError` saying why it is refused. */
function cachedGlob(pattern: string, limits: FilterLimits): Glob {
  const key = `${limits.glob_max_chars}\u0000${pattern}`;
  const cached = globCache.get(key);
  if (cached) return cached;
  const glob = compileGlobPattern(pattern, { maxChars: limits.glob_max_chars });
  globCache.set(key, glob);
  return glob;
}

/** A refused glob as the 400 of `field`, naming the limit when it is one. */
function globRefusal(field: string, err: unknown, limits: FilterLimits): LivedexError {
  if (!(err instanceof GlobError)) throw err;
  const overLimit = /characters/.test(err.message);
  const detail = overLimit ? `${err.message} (limits.glob_max_chars is ${limits.glob_max_chars})` : err.message;
  return new LivedexError('invalid_filter', `${field} is not a valid glob: ${detail}`, { field, cause: err });
}

/**
 * Matches `path` against a glob, the one glob semantics of livedex (`filepath_globpattern`
 * and `globmatch()` alike, see `core/glob`): dot files match; `*` stays within a segment,
 * `**` spans segments and `**\/x` also matches `x` at the root; a pattern without `/`
 * matches the basename anywhere (`*.md` matches `docs/a/b.md`); backslashes in `path` are
 * read as `/` and a leading `./` is ignored; `""` matches only the empty path. The time is
 * linear in the path for a given pattern (no backtracking).
 *
 * @throws LivedexError `invalid_filter` for a glob over `limits.glob_max_chars` or an extglob.
 *
 * @example
 * globMatch('**\/*.md', 'docs/a.md'); // true
 * globMatch('*.md', 'docs/a/b.md');   // true (basename)
 * globMatch('docs/*.md', 'docs/a/b.md'); // false
 */
export function globMatch(pattern: string, path: string, limits: FilterLimits = DEFAULT_FILTER_LIMITS): boolean {
  try {
    return cachedGlob(pattern, limits).match(path);
  } catch (err) {
    throw globRefusal('filepath_globpattern', err, limits);
  }
}

// ───────────────────────────── JMESPath ─────────────────────────────

/** A filter error with the position (in the user's text) it refers to. */
class FilterSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
  }
}

interface Rewritten {
  text: string;
  /** `origin[i]` is the index in the user's text of `text[i]`; one extra entry for the end. */
  origin: number[];
  /** Indexes (in `text`) of characters outside any quoted string or literal. */
  bare: Set<number>;
}

/** Scans a quoted run starting at `start` (the opening quote); returns the index of the closing quote. */
function scanQuoted(expr: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < expr.length && expr[i] !== quote) {
    i += expr[i] === '\\' && (expr[i + 1] === '\\' || expr[i + 1] === quote) ? 2 : 1;
  }
  return i;
}

const QUOTE_NAMES: Record<string, string> = {
  "'": 'string literal',
  '"': 'quoted identifier',
  '`': 'literal',
};

/**
 * Rewrites backtick literals the way Pathway users write them: a literal whose content is
 * JSON stays a JSON literal (`` `1700000000` `` is a number); anything else becomes a raw
 * string (`` `a.pdf` `` is `'a.pdf'`). Inside backticks, `` \` `` is a backtick and every
 * other character (backslashes included) is taken as written. Quoted strings are copied
 * as they are, so a backtick inside `'…'` or `"…"` is just a character.
 */
function rewriteLiterals(expr: string): Rewritten {
  let text = '';
  const origin: number[] = [];
  const bare = new Set<number>();
  const emit = (s: string, from: number) => {
    for (let j = 0; j < s.length; j++) origin.push(from);
    text += s;
  };
  let i = 0;
  while (i < expr.length) {
    const ch = expr[i]!;
    if (ch === "'" || ch === '"' || ch === '`') {
      const end = scanQuoted(expr, i, ch);
      if (end >= expr.length) {
        throw new FilterSyntaxError(`unterminated ${QUOTE_NAMES[ch]} (missing closing ${ch})`, i);
      }
      const body = expr.slice(i + 1, end);
      if (ch === '`') {
        emit(backtickToJmespath(body), i);
      } else {
        if (ch === '"' && !isJson(expr.slice(i, end + 1))) {
          throw new FilterSyntaxError('invalid escape in quoted identifier', i);
        }
        for (let j = i; j <= end; j++) {
          origin.push(j);
        }
        text += expr.slice(i, end + 1);
      }
      i = end + 1;
    } else {
      bare.add(text.length);
      emit(ch, i);
      i += 1;
    }
  }
  origin.push(expr.length);
  return { text, origin, bare };
}

function backtickToJmespath(body: string): string {
  const content = body.replace(/\\`/g, '`');
  const trimmed = content.trim();
  if (trimmed !== '') {
    try {
      const value: unknown = JSON.parse(trimmed);
      // Re-serialized so that backticks inside JSON strings need no escaping.
      return '`' + JSON.stringify(value).replace(/`/g, '\\u0060') + '`';
    } catch {
      // not JSON: a raw string, below
    }
  }
  return "'" + content.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

function isJson(s: string): boolean {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Finds where (in the rewritten text) the parser gave up, by parsing growing token prefixes. */
function locateParseError(rw: Rewritten, err: unknown): number {
  const msg = messageOf(err);
  const unknownChar = /unknown character: (.)/su.exec(msg);
  if (unknownChar) {
    for (let i = 0; i < rw.text.length; i++) {
      if (rw.bare.has(i) && rw.text[i] === unknownChar[1]) return i;
    }
    return rw.text.length;
  }
  let tokens: { start: number }[];
  try {
    tokens = tokenize(rw.text);
  } catch {
    return rw.text.length;
  }
  // Re-parsing every prefix is quadratic: past this size the position is left unknown.
  if (tokens.length * rw.text.length > 4_000_000) return -1;
  // The parser reads left to right, so the first prefix that fails on something other than
  // the end of input fails at its last token.
  for (let j = 0; j < tokens.length; j++) {
    const end = tokens[j + 1]?.start ?? rw.text.length;
    try {
      compile(rw.text.slice(0, end));
    } catch (e) {
      if (!/EOF/.test(messageOf(e))) return tokens[j]!.start;
    }
  }
  return rw.text.length;
}

interface AstFacts {
  calls: { name: string; argc: number }[];
  /** `a = b` outside `let`: the parser accepts it, and it would match every object. */
  strayAssignment: boolean;
}

function collectFacts(node: unknown, facts: AstFacts): void {
  if (Array.isArray(node)) {
    for (const child of node) collectFacts(child, facts);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const n = node as { type?: unknown; name?: unknown; children?: unknown; bindings?: unknown; expression?: unknown };
  if (n.type === 'Function' && typeof n.name === 'string' && Array.isArray(n.children)) {
    facts.calls.push({ name: n.name, argc: n.children.length });
  }
  if (n.type === 'Binding') facts.strayAssignment = true;
  if (n.type === 'LetExpression' && Array.isArray(n.bindings)) {
    for (const binding of n.bindings as { reference?: unknown }[]) collectFacts(binding.reference, facts);
    collectFacts(n.expression, facts);
    return;
  }
  for (const value of Object.values(node)) {
    if (value !== null && typeof value === 'object') collectFacts(value, facts);
  }
}

/** Checks names, arities and stray `=` now, so that a typo is a 400 rather than a silent mismatch. */
function checkAst(ast: unknown, rw: Rewritten, table: MeteredInterpreter['functions']): void {
  const facts: AstFacts = { calls: [], strayAssignment: false };
  collectFacts(ast, facts);
  if (facts.strayAssignment) {
    throw new FilterSyntaxError('use == to compare (a single = only binds variables in let expressions)', positionOfAssignment(rw));
  }
  for (const call of facts.calls) {
    const entry = table[call.name];
    if (!entry) {
      throw new FilterSyntaxError(
        `unknown function ${call.name}() (available: ${Object.keys(table).sort().join(', ')})`,
        positionOfCall(rw, call.name),
      );
    }
    const sig = entry._signature;
    const required = sig.filter((s) => !s.optional).length;
    const variadic = sig[sig.length - 1]?.variadic ?? false;
    if (call.argc < required || (!variadic && call.argc > sig.length)) {
      const expected =
        variadic ? `at least ${required}` : required === sig.length ? `${required}` : `${required} to ${sig.length}`;
      throw new FilterSyntaxError(
        `${call.name}() takes ${expected} argument${sig.length === 1 && !variadic ? '' : 's'} but received ${call.argc}`,
        positionOfCall(rw, call.name),
      );
    }
  }
}

function tokensOf(rw: Rewritten): ReturnType<typeof tokenize> {
  try {
    return tokenize(rw.text);
  } catch {
    return []; // the expression already compiled, so this does not happen
  }
}

function positionOfCall(rw: Rewritten, name: string): number {
  const tokens = tokensOf(rw);
  for (let j = 0; j + 1 < tokens.length; j++) {
    if (tokens[j]!.value === name && tokens[j + 1]!.type === 'Lparen') return tokens[j]!.start;
  }
  return 0;
}

function positionOfAssignment(rw: Rewritten): number {
  const tokens = tokensOf(rw);
  for (let j = 1; j < tokens.length; j++) {
    if (tokens[j]!.type === 'Assign' && tokens[j - 1]!.type !== 'Variable') return tokens[j]!.start;
  }
  return 0;
}

/** JMESPath truthiness: false, null, "", [] and {} are false; everything else (0 included) is true. */
function isTruthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/** The library's message, with a hint for the mistakes people make most. */
function explainSyntaxError(message: string, atEnd: boolean): string {
  if (/\(Assign\)|type: Assign/.test(message)) return `${message} (compare with ==)`;
  if (atEnd) return `the expression is incomplete (${message})`;
  return message;
}

function invalidFilter(field: string, expr: string, detail: string, position: number): LivedexError {
  if (position < 0) return new LivedexError('invalid_filter', `${field} is not a valid filter: ${detail}`, { field });
  const where =
    position >= expr.length
      ? `at the end of the expression (position ${expr.length})`
      : `at position ${position} (near ${JSON.stringify(expr.slice(position, position + 24))})`;
  return new LivedexError('invalid_filter', `${field} is not a valid filter: ${detail} ${where}`, { field });
}

/**
 * How deeply brackets and calls nest in the expression, read on the text before parsing: the
 * parser recurses on them, so a deep nesting is refused before it can exhaust the stack.
 */
function bracketDepth(rw: Rewritten): { depth: number; at: number } {
  let depth = 0;
  let worst = { depth: 0, at: 0 };
  for (let i = 0; i < rw.text.length; i++) {
    if (!rw.bare.has(i)) continue;
    const ch = rw.text[i];
    if (ch === '(' || ch === '[' || ch === '{') {
      depth++;
      if (depth > worst.depth) worst = { depth, at: i };
    } else if (ch === ')' || ch === ']' || ch === '}') depth = Math.max(0, depth - 1);
  }
  return worst;
}

/** The depth of the parsed tree (chains such as `a || b || c` nest too), without recursing. */
function astDepth(ast: unknown): number {
  let worst = 0;
  const stack: [unknown, number][] = [[ast, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    const isNode = !Array.isArray(node) && typeof (node as { type?: unknown }).type === 'string';
    const d = isNode ? depth + 1 : depth;
    if (d > worst) worst = d;
    for (const child of Object.values(node)) if (child !== null && typeof child === 'object') stack.push([child, d]);
  }
  return worst - 1;
}

type AstNode = { type?: unknown; name?: unknown; children?: unknown; value?: unknown };

/** Refuses now what would be refused on the first document: literal widths, counts and globs over the limits. */
function checkLiteralCosts(ast: unknown, field: string, limits: FilterLimits): void {
  const stack: unknown[] = [ast];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== 'object') continue;
    const n = node as AstNode;
    if (n.type === 'Function' && Array.isArray(n.children)) {
      const args = n.children as AstNode[];
      const literal = (i: number) => (args[i]?.type === 'Literal' ? args[i]!.value : undefined);
      if ((n.name === 'pad_left' || n.name === 'pad_right') && typeof literal(1) === 'number' && (literal(1) as number) > limits.filter_max_string_chars) {
        throw limitError(field, 'filter_max_string_chars', limits, `${n.name}() with width ${String(literal(1))} would make a string of ${String(literal(1))} characters`);
      }
      if (n.name === 'replace' && typeof literal(3) === 'number' && (literal(3) as number) > limits.filter_max_array_items) {
        throw limitError(field, 'filter_max_array_items', limits, `replace() with count ${String(literal(3))} would make an array of ${String(literal(3))} items`);
      }
      if (n.name === 'globmatch' && typeof literal(0) === 'string') {
        try {
          cachedGlob(literal(0) as string, limits);
        } catch (err) {
          throw globRefusal(field, err, limits);
        }
      }
    }
    for (const child of Object.values(node)) if (child !== null && typeof child === 'object') stack.push(child);
  }
}

function compileJmespath(expr: string, field: string, limits: FilterLimits): MetadataPredicate {
  if (expr.length > limits.filter_max_chars) {
    throw limitError(field, 'filter_max_chars', limits, `the filter has ${expr.length} characters`);
  }
  let rw: Rewritten | undefined;
  let ast: ExpressionNode;
  const interpreter = createInterpreter((pattern, meter) => {
    try {
      return cachedGlob(pattern, limits);
    } catch (err) {
      throw globRefusal(meter.field, err, limits);
    }
  });
  try {
    rw = rewriteLiterals(expr);
    const nesting = bracketDepth(rw);
    if (nesting.depth > limits.filter_max_depth) {
      throw limitError(field, 'filter_max_depth', limits, `the filter nests ${nesting.depth} levels deep at position ${rw.origin[nesting.at] ?? 0}`);
    }
    ast = compile(rw.text);
    const depth = astDepth(ast);
    if (depth > limits.filter_max_depth) {
      throw limitError(field, 'filter_max_depth', limits, `the filter nests ${depth} levels deep (a long chain of || or && counts too; contains(\`[…]\`, path) lists many values in one call)`);
    }
    checkAst(ast, rw, interpreter.functions);
    checkLiteralCosts(ast, field, limits);
  } catch (err) {
    if (err instanceof LivedexError) throw err;
    if (err instanceof FilterSyntaxError) {
      const pos = rw ? (rw.origin[err.position] ?? expr.length) : err.position;
      throw invalidFilter(field, expr, err.message, pos);
    }
    if (!rw) throw err;
    const at = locateParseError(rw, err);
    const pos = at < 0 ? -1 : (rw.origin[at] ?? expr.length);
    throw invalidFilter(field, expr, explainSyntaxError(messageOf(err), pos >= expr.length), pos);
  }
  const tree = ast;
  return (metadata, budget = new FilterBudget(limits, field)) => {
    try {
      return isTruthy(interpreter.search(tree, metadata as JSONValue, new Meter(budget, field)));
    } catch (err) {
      // Over a limit: the whole request is refused. A type error (say, contains() on a
      // missing field) means "no match" for this object.
      if (err instanceof LivedexError) throw err;
      return false;
    }
  };
}

// ───────────────────────────── compileFilter ─────────────────────────────

const filterCache = new Lru<MetadataPredicate>(256);

/**
 * Compiles a metadata filter and a path glob into one predicate, or `null` when neither is
 * given (empty strings, and a blank filter, count as not given).
 *
 * The filter is JMESPath (community edition) with `globmatch(pattern, path)`. Single-quoted
 * strings are raw strings as in JMESPath; backtick literals are read as Pathway users write
 * them: JSON content stays JSON (`` modified_at > `1700000000` `` compares numbers), any
 * other content is a string (`` path == `a.pdf` ``). The result counts as a match when it
 * is truthy in JMESPath's sense (false, null, "", [] and {} do not match; numbers do), and
 * an evaluation error on one object (a type error, say) is "no match" for that object.
 *
 * Its cost is bounded (`opts.limits`): the length, nesting and literal sizes are checked
 * now; what functions build, the work per document and the time per request (the budget
 * passed to the predicate) while it runs. Going over a limit is a 400 naming the field and
 * the `limits` key, never a frozen or dead process.
 *
 * @throws LivedexError `invalid_filter` (field `opts.field ?? 'metadata_filter'`, or
 *   `filepath_globpattern`) on a syntax error, an unknown function, a wrong number of
 *   arguments, or a limit exceeded, quoting the problem and its position.
 *
 * @example
 * const match = compileFilter({ metadataFilter: "globmatch(`**\/*.md`, path) && size > `100`" });
 * match?.({ path: 'docs/a.md', size: 512 }); // true
 */
export function compileFilter(opts: CompileFilterOptions): MetadataPredicate | null {
  const expr = opts.metadataFilter && opts.metadataFilter.trim() !== '' ? opts.metadataFilter : null;
  const glob = opts.filepathGlobpattern ? opts.filepathGlobpattern : null;
  if (expr === null && glob === null) return null;
  const field = opts.field ?? 'metadata_filter';
  const limits = opts.limits ?? DEFAULT_FILTER_LIMITS;
  const key = `${JSON.stringify(limits)}\u0000${field}\u0000${expr ?? ''}\u0000${glob ?? '\u0000'}`;
  const cached = filterCache.get(key);
  if (cached) return cached;

  const byFilter = expr === null ? null : compileJmespath(expr, field, limits);
  let byGlob: MetadataPredicate | null = null;
  if (glob !== null) {
    let matcher: Glob;
    try {
      matcher = cachedGlob(glob, limits);
    } catch (err) {
      throw globRefusal('filepath_globpattern', err, limits);
    }
    byGlob = (metadata, budget = new FilterBudget(limits, 'filepath_globpattern')) => {
      if (typeof metadata.path !== 'string') return false;
      new Meter(budget, 'filepath_globpattern').charge(matcher.cost(metadata.path) * COST.globStep);
      return matcher.match(metadata.path);
    };
  }
  const predicate: MetadataPredicate =
    byFilter && byGlob ? (m, budget) => byGlob(m, budget) && byFilter(m, budget) : (byFilter ?? byGlob)!;
  filterCache.set(key, predicate);
  return predicate;
}

/** A fresh budget for one request's filter, blaming the filter when there is one, else the glob. */
export function filterBudget(opts: CompileFilterOptions): FilterBudget {
  const hasFilter = Boolean(opts.metadataFilter && opts.metadataFilter.trim() !== '');
  return new FilterBudget(opts.limits ?? DEFAULT_FILTER_LIMITS, hasFilter ? (opts.field ?? 'metadata_filter') : 'filepath_globpattern');
}
