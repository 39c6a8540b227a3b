/** @module core/glob — the glob matcher of filters: a segment-by-segment automaton, linear in the path for a given pattern, with no backtracking. */

/** Why a glob was refused; the caller turns it into a 400 naming its field. */
export class GlobError extends Error {}

/** A compiled glob. */
export interface Glob {
  /** True when `path` matches. */
  match(path: string): boolean;
  /**
   * An upper bound on the work of one `match(path)` in character comparisons, known before it
   * runs: the matcher compares each pattern character with each path character at most once.
   */
  cost(path: string): number;
}

/** What `compileGlob` may produce: patterns past this size are refused, not run. */
export interface GlobLimits {
  /** Longest pattern, and longest total of its brace alternatives once expanded (× 4). */
  maxChars: number;
}

type Token =
  | { kind: 'char'; ch: string }
  | { kind: 'any' }
  | { kind: 'star' }
  | { kind: 'class'; negated: boolean; test: (ch: string) => boolean };

/** One segment of a pattern: `**` (any number of path segments) or a run of tokens within a segment. */
type Segment = { globstar: true } | { globstar: false; tokens: Token[]; literal: string | null };

interface Alternative {
  segments: Segment[];
  chars: number;
}

const POSIX_CLASSES: Record<string, (ch: string) => boolean> = {
  alpha: (c) => /^[A-Za-z]$/.test(c),
  digit: (c) => c >= '0' && c <= '9',
  alnum: (c) => /^[A-Za-z0-9]$/.test(c),
  upper: (c) => c >= 'A' && c <= 'Z',
  lower: (c) => c >= 'a' && c <= 'z',
  space: (c) => /^\s$/.test(c),
  blank: (c) => c === ' ' || c === '\t',
  punct: (c) => /^[!-/:-@[-`{-~]$/.test(c),
  xdigit: (c) => /^[0-9A-Fa-f]$/.test(c),
  word: (c) => /^\w$/.test(c),
  cntrl: (c) => c.charCodeAt(0) < 32 || c.charCodeAt(0) === 127,
  print: (c) => c.charCodeAt(0) >= 32 && c.charCodeAt(0) !== 127,
  graph: (c) => c.charCodeAt(0) > 32 && c.charCodeAt(0) !== 127,
  ascii: (c) => c.charCodeAt(0) < 128,
};

/**
 * Compiles a glob with livedex's one glob semantics (`filepath_globpattern` and `globmatch()`):
 * dot files match; `*` and `?` stay within a segment; `**` as a whole segment spans any
 * number of segments (`**\/x` matches `x` at the root); `[a-z]`, `[!a]`/`[^a]` and POSIX
 * `[[:alpha:]]` classes; `{a,b}` and `{1..3}` braces; `\` escapes the next character; a
 * leading `!` negates; a leading `./` is ignored; a pattern without `/` matches the basename
 * anywhere. Paths read backslashes as `/` and ignore a leading `./`; `""` matches only `""`.
 * Extglobs (`+(a|b)`, `@(…)`, `!(…)`, `*(…)`, `?(…)`) are refused: they need backtracking.
 *
 * @throws GlobError when the pattern is too long, expands to too much, or uses an extglob.
 */
export function compileGlob(pattern: string, limits: GlobLimits): Glob {
  if (pattern.length > limits.maxChars) {
    throw new GlobError(`the glob has ${pattern.length} characters, more than the ${limits.maxChars} allowed`);
  }
  if (pattern === '') return { match: (path) => path === '', cost: () => 1 };
  let body = pattern;
  let negated = false;
  while (body.startsWith('!') && !body.startsWith('!(')) {
    negated = !negated;
    body = body.slice(1);
  }
  // `./x` is `x` at the root only: the basename rule is for patterns written without a `/`.
  const onBasename = !body.includes('/');
  while (body.startsWith('./')) body = body.slice(2);
  const extglob = findExtglob(body);
  if (extglob >= 0) {
    throw new GlobError(
      `extglob ${JSON.stringify(body.slice(extglob, extglob + 2))}… at position ${extglob + (pattern.length - body.length)} is not supported (it needs backtracking); use braces, as in {a,b}`,
    );
  }
  const expanded = expandBraces(body, limits.maxChars * 4);
  const alternatives: Alternative[] = expanded.map((alt) => ({ segments: parseSegments(alt), chars: alt.length }));
  const totalChars = alternatives.reduce((n, a) => n + a.chars + a.segments.length, 0);
  return {
    match(path) {
      if (path === '') return negated;
      const p = normalizePath(path);
      const segments = onBasename ? [p.slice(p.lastIndexOf('/') + 1)] : p.split('/');
      if (onBasename && segments[0] === '') return negated;
      const hit = alternatives.some((alt) => matchSegments(alt.segments, segments));
      return hit !== negated;
    },
    cost: (path) => totalChars * (path.length + 1),
  };
}

function normalizePath(path: string): string {
  let p = path.includes('\\') ? path.replace(/\\/g, '/') : path;
  while (p.startsWith('./')) p = p.slice(2);
  return p;
}

/** Positions of the characters that are neither escaped (`\x`) nor inside a bracket class. */
function* bareChars(pattern: string): Generator<number> {
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\') {
      i++;
      continue;
    }
    if (ch === '[') {
      const end = classEnd(pattern, i);
      if (end > 0) {
        i = end;
        continue;
      }
    }
    yield i;
  }
}

/** The index of the first unescaped extglob opener outside a class, or -1. */
function findExtglob(pattern: string): number {
  for (const i of bareChars(pattern)) if ('!+@*?'.includes(pattern[i]!) && pattern[i + 1] === '(') return i;
  return -1;
}

/** The index of the `]` closing the class that opens at `start`, or -1 when it is not a class. */
function classEnd(pattern: string, start: number): number {
  let i = start + 1;
  if (pattern[i] === '!' || pattern[i] === '^') i++;
  if (pattern[i] === ']') i++;
  for (; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '/') return -1;
    if (ch === '\\') i++;
    else if (ch === '[' && pattern[i + 1] === ':') {
      const close = pattern.indexOf(':]', i + 2);
      if (close > 0 && POSIX_CLASSES[pattern.slice(i + 2, close)]) i = close + 1;
    } else if (ch === ']') return i;
  }
  return -1;
}

/**
 * Expands `{a,b}` and `{1..3}` into alternatives, innermost first; a brace pair with neither
 * a top-level comma nor a range stays literal. Refuses once the alternatives would exceed
 * `maxTotal` characters, so that a few nested braces cannot multiply into millions.
 */
function expandBraces(pattern: string, maxTotal: number): string[] {
  const open = findBraceOpen(pattern);
  if (open === null) return [pattern];
  const { start, end, parts } = open;
  const prefix = pattern.slice(0, start);
  const suffix = pattern.slice(end + 1);
  const out: string[] = [];
  let total = 0;
  for (const part of parts) {
    for (const alt of expandBraces(prefix + part + suffix, maxTotal)) {
      total += alt.length;
      if (total > maxTotal) {
        throw new GlobError(`the glob's braces expand to more than ${maxTotal} characters`);
      }
      out.push(alt);
    }
  }
  return out;
}

/** The first brace pair that expands, with its alternatives (ranges listed out). */
function findBraceOpen(pattern: string): { start: number; end: number; parts: string[] } | null {
  const stack: number[] = [];
  for (const i of bareChars(pattern)) {
    const ch = pattern[i]!;
    if (ch === '{') stack.push(i);
    else if (ch === '}' && stack.length > 0) {
      const start = stack.pop()!;
      const inner = pattern.slice(start + 1, i);
      const parts = splitTopLevel(inner);
      if (parts.length > 1) return { start, end: i, parts };
      const range = expandRange(inner);
      if (range) return { start, end: i, parts: range };
    }
  }
  return null;
}

/** Splits on commas outside nested braces, classes and escapes; returns `[inner]` when there is none. */
function splitTopLevel(inner: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let from = 0;
  for (const i of bareChars(inner)) {
    const ch = inner[i]!;
    if (ch === '{') depth++;
    else if (ch === '}') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      parts.push(inner.slice(from, i));
      from = i + 1;
    }
  }
  parts.push(inner.slice(from));
  return parts;
}

/** `1..3`, `a..e`, with an optional step `1..9..2`; null when `inner` is not a range. */
function expandRange(inner: string): string[] | null {
  const m = /^(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?$/.exec(inner);
  if (!m) return null;
  const [, a, b, s] = m as unknown as [string, string, string, string | undefined];
  const numeric = /\d/.test(a) && /\d/.test(b);
  if (!numeric && (/\d/.test(a) || /\d/.test(b))) return null;
  const from = numeric ? Number(a) : a.charCodeAt(0);
  const to = numeric ? Number(b) : b.charCodeAt(0);
  const step = Math.max(1, Math.abs(Number(s ?? 1)));
  // A range is as long as it says: too many members is the same refusal as too many braces.
  if (Math.abs(to - from) / step > 10_000) throw new GlobError(`the brace range {${inner}} has more than 10000 members`);
  const out: string[] = [];
  const dir = to >= from ? 1 : -1;
  for (let v = from; dir > 0 ? v <= to : v >= to; v += dir * step) out.push(numeric ? String(v) : String.fromCharCode(v));
  return out;
}

function parseSegments(pattern: string): Segment[] {
  const raw: string[] = [];
  let from = 0;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && pattern[i + 1] !== '/') i++;
    else if (ch === '[') {
      const end = classEnd(pattern, i);
      if (end > 0) i = end;
    } else if (ch === '/') {
      raw.push(pattern.slice(from, i));
      from = i + 1;
    }
  }
  raw.push(pattern.slice(from));
  return raw.map((s): Segment => {
    if (s === '**') return { globstar: true };
    const tokens = parseTokens(s);
    const literal = tokens.every((t) => t.kind === 'char') ? tokens.map((t) => (t as { ch: string }).ch).join('') : null;
    return { globstar: false, tokens, literal };
  });
}

function parseTokens(segment: string): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i]!;
    if (ch === '\\' && i + 1 < segment.length) {
      tokens.push({ kind: 'char', ch: segment[++i]! });
    } else if (ch === '*') {
      // `**` inside a segment is a `*`; consecutive stars are one state.
      if (tokens[tokens.length - 1]?.kind !== 'star') tokens.push({ kind: 'star' });
    } else if (ch === '?') {
      tokens.push({ kind: 'any' });
    } else if (ch === '[') {
      const end = classEnd(segment, i);
      if (end < 0) {
        tokens.push({ kind: 'char', ch });
        continue;
      }
      tokens.push(parseClass(segment.slice(i + 1, end)));
      i = end;
    } else {
      tokens.push({ kind: 'char', ch });
    }
  }
  return tokens;
}

function parseClass(body: string): Token {
  let i = 0;
  let negated = false;
  if (body[0] === '!' || body[0] === '^') {
    negated = true;
    i = 1;
  }
  const singles = new Set<string>();
  const ranges: [string, string][] = [];
  const named: ((ch: string) => boolean)[] = [];
  const first = i;
  while (i < body.length) {
    let ch = body[i]!;
    if (ch === '[' && body[i + 1] === ':') {
      const close = body.indexOf(':]', i + 2);
      const test = close > 0 ? POSIX_CLASSES[body.slice(i + 2, close)] : undefined;
      if (test) {
        named.push(test);
        i = close + 2;
        continue;
      }
    }
    if (ch === '\\' && i + 1 < body.length) ch = body[++i]!;
    else if (ch === ']' && i !== first) break;
    if (body[i + 1] === '-' && i + 2 < body.length) {
      let hi = body[i + 2]!;
      let next = i + 3;
      if (hi === '\\' && i + 3 < body.length) {
        hi = body[i + 3]!;
        next = i + 4;
      }
      ranges.push([ch, hi]);
      i = next;
      continue;
    }
    singles.add(ch);
    i++;
  }
  const test = (c: string) => singles.has(c) || ranges.some(([lo, hi]) => c >= lo && c <= hi) || named.some((t) => t(c));
  return { kind: 'class', negated, test };
}

function tokenMatches(token: Token, ch: string): boolean {
  switch (token.kind) {
    case 'char':
      return token.ch === ch;
    case 'any':
      return true;
    case 'class':
      return token.test(ch) !== token.negated;
    case 'star':
      return true;
  }
}

/**
 * Matches one path segment against one pattern segment by simulating the automaton whose
 * states are the token positions (a star loops on itself): every (token, character) pair is
 * looked at at most once, so the time is |tokens| × |segment| whatever the pattern.
 */
function matchSegment(seg: Segment & { globstar: false }, text: string, last: boolean): boolean {
  if (seg.literal !== null) return seg.literal === text;
  const tokens = seg.tokens;
  // A leading `*` never matches the `.` and `..` entries; `*` matches an empty name only mid-path.
  if ((text === '.' || text === '..') && tokens[0]?.kind === 'star') return false;
  if (text === '' && last) return false;
  const n = tokens.length;
  let cur = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  cur[0] = 1;
  closeOverStars(tokens, cur);
  for (let j = 0; j < text.length; j++) {
    const ch = text[j]!;
    next.fill(0);
    let any = false;
    for (let k = 0; k < n; k++) {
      if (!cur[k]) continue;
      const t = tokens[k]!;
      if (t.kind === 'star') {
        next[k] = 1;
        any = true;
      } else if (tokenMatches(t, ch)) {
        next[k + 1] = 1;
        any = true;
      }
    }
    if (!any) return false;
    closeOverStars(tokens, next);
    [cur, next] = [next, cur];
  }
  return cur[n] === 1;
}

/** A star may match nothing: whoever reaches it also reaches the token after it. */
function closeOverStars(tokens: Token[], states: Uint8Array): void {
  for (let k = 0; k < tokens.length; k++) if (states[k] && tokens[k]!.kind === 'star') states[k + 1] = 1;
}

/**
 * Matches pattern segments against path segments: `reach[j]` says the pattern so far can end
 * just before path segment `j`. A globstar passes `reach` on to every later segment (except
 * across `.`/`..`), other segments advance it by one; each (pattern segment, path segment)
 * pair is matched at most once.
 */
function matchSegments(pattern: Segment[], path: string[]): boolean {
  let reach = new Uint8Array(path.length + 1);
  reach[0] = 1;
  for (const seg of pattern) {
    const next = new Uint8Array(path.length + 1);
    if (seg.globstar) {
      let on = false;
      for (let j = 0; j <= path.length; j++) {
        if (reach[j]) on = true;
        if (on) next[j] = 1;
        if (j < path.length && (path[j] === '.' || path[j] === '..')) on = false;
      }
    } else {
      for (let j = 0; j < path.length; j++) {
        if (reach[j] && matchSegment(seg, path[j]!, j === path.length - 1)) next[j + 1] = 1;
      }
    }
    reach = next;
  }
  return reach[path.length] === 1;
}
