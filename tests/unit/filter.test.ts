import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import picomatch from 'picomatch';
import { Catalog } from '../../src/core/catalog.js';
import { compileFilter, globMatch } from '../../src/core/filter.js';
import { DEFAULT_FILTER_LIMITS, FilterBudget, type FilterLimits } from '../../src/core/filter-budget.js';
import { compileGlob } from '../../src/core/glob.js';
import { LivedexError } from '../../src/core/errors.js';
import type { Metadata } from '../../src/core/types.js';

const UNICODE_PATH = "reports/l'été 2024 — “final”.pdf";

const DOCS: Metadata[] = [
  { path: 'docs/guide.md', modified_at: 1700000100, tags: ['howto'], owner: 'ann' },
  { path: 'docs/api/reference.md', modified_at: 1700000300 },
  { path: 'README.md', modified_at: 1600000000 },
  { path: UNICODE_PATH, modified_at: 1650000000 },
  { path: 'notes/a`b.txt', size: 10 },
  { path: '.config/app.yml' },
  { title: 'a document without a path' },
];

/** The paths of the documents a filter keeps (`<no path>` for the one without). */
function kept(opts: Parameters<typeof compileFilter>[0]): string[] {
  const match = compileFilter(opts);
  return DOCS.filter((m) => !match || match(m)).map((m) => (typeof m.path === 'string' ? m.path : '<no path>'));
}

function assertInvalidFilter(fn: () => unknown, field: string, ...fragments: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LivedexError, `expected a LivedexError, got ${String(err)}`);
    assert.equal(err.code, 'invalid_filter');
    assert.equal(err.status, 400);
    assert.equal(err.field, field);
    for (const f of fragments) {
      if (typeof f === 'string') assert.ok(err.message.includes(f), `${JSON.stringify(err.message)} should mention ${f}`);
      else assert.match(err.message, f);
    }
    return true;
  });
}

describe('filepath_globpattern (Pathway glob matrix)', () => {
  it('treats null, undefined and "" as no filter at all', () => {
    assert.equal(compileFilter({}), null);
    assert.equal(compileFilter({ metadataFilter: null, filepathGlobpattern: null }), null);
    assert.equal(compileFilter({ metadataFilter: '', filepathGlobpattern: '' }), null);
    assert.equal(compileFilter({ metadataFilter: '  ' }), null);
    assert.equal(kept({ filepathGlobpattern: '' }).length, DOCS.length);
  });

  it('matches **/*.md at every depth, the root included', () => {
    assert.deepEqual(kept({ filepathGlobpattern: '**/*.md' }), ['docs/guide.md', 'docs/api/reference.md', 'README.md']);
  });

  it('matches the exact path', () => {
    assert.deepEqual(kept({ filepathGlobpattern: 'docs/api/reference.md' }), ['docs/api/reference.md']);
  });

  it('matches a pattern without a slash against the file name anywhere (*.md)', () => {
    assert.deepEqual(kept({ filepathGlobpattern: '*.md' }), ['docs/guide.md', 'docs/api/reference.md', 'README.md']);
  });

  it('keeps * within one segment when the pattern has a slash', () => {
    assert.deepEqual(kept({ filepathGlobpattern: 'docs/*.md' }), ['docs/guide.md']);
    assert.deepEqual(kept({ filepathGlobpattern: 'docs/**' }), ['docs/guide.md', 'docs/api/reference.md']);
  });

  it('matches dotfiles and dot-folders', () => {
    assert.deepEqual(kept({ filepathGlobpattern: '**/*.yml' }), ['.config/app.yml']);
  });

  it('matches nothing for **/abc.md, *.txt-like misses and partial paths', () => {
    assert.deepEqual(kept({ filepathGlobpattern: '**/abc.md' }), []);
    assert.deepEqual(kept({ filepathGlobpattern: '*.py' }), []);
    assert.deepEqual(kept({ filepathGlobpattern: 'api/reference.md' }), []);
    assert.deepEqual(kept({ filepathGlobpattern: 'guide' }), []);
  });

  it('matches a Unicode and apostrophe file name, alone and with *.pdf', () => {
    assert.deepEqual(kept({ filepathGlobpattern: '*.pdf' }), [UNICODE_PATH]);
    assert.deepEqual(kept({ filepathGlobpattern: UNICODE_PATH }), [UNICODE_PATH]);
    assert.deepEqual(kept({ filepathGlobpattern: "**/l'été*" }), [UNICODE_PATH]);
  });
});

describe('globMatch', () => {
  it('reads Windows backslashes in paths as slashes', () => {
    assert.equal(globMatch('docs/*.md', 'docs\\guide.md'), true);
    assert.equal(globMatch('*.md', 'C:\\work\\docs\\guide.md'), true);
  });

  it('ignores a leading ./ in the path', () => {
    assert.equal(globMatch('src/*.ts', './src/main.ts'), true);
  });

  it('lets **/x match x at the root and under absolute paths', () => {
    assert.equal(globMatch('**/guide.md', 'guide.md'), true);
    assert.equal(globMatch('**/guide.md', '/srv/data/docs/guide.md'), true);
  });

  it('matches only the empty path with an empty pattern', () => {
    assert.equal(globMatch('', 'a.md'), false);
  });
});

describe('metadata_filter (JMESPath with Pathway literals)', () => {
  it('supports contains(path, `x`) with a backtick string', () => {
    assert.deepEqual(kept({ metadataFilter: 'contains(path, `api`)' }), ['docs/api/reference.md']);
  });

  it("supports path == '…' with single quotes", () => {
    assert.deepEqual(kept({ metadataFilter: "path == 'README.md'" }), ['README.md']);
  });

  it('supports path == `…` with a backtick string', () => {
    assert.deepEqual(kept({ metadataFilter: 'path == `README.md`' }), ['README.md']);
  });

  it('matches nothing for a backticked path that does not exist', () => {
    assert.deepEqual(kept({ metadataFilter: 'path == `docs/missing.md`' }), []);
  });

  it('supports globmatch(`**/*.md`, path) and globmatch with single quotes', () => {
    const expected = ['docs/guide.md', 'docs/api/reference.md', 'README.md'];
    assert.deepEqual(kept({ metadataFilter: 'globmatch(`**/*.md`, path)' }), expected);
    assert.deepEqual(kept({ metadataFilter: "globmatch('*.md', path)" }), expected);
  });

  it('compares numbers when the backtick literal is JSON', () => {
    assert.deepEqual(kept({ metadataFilter: 'modified_at > `1700000000`' }), ['docs/guide.md', 'docs/api/reference.md']);
    assert.deepEqual(kept({ metadataFilter: 'modified_at >= `1650000000` && modified_at < `1700000200`' }), [
      'docs/guide.md',
      UNICODE_PATH,
    ]);
  });

  it('keeps JSON strings, arrays and booleans in backticks as JSON', () => {
    assert.deepEqual(kept({ metadataFilter: 'path == `"README.md"`' }), ['README.md']);
    assert.deepEqual(kept({ metadataFilter: 'tags == `["howto"]`' }), ['docs/guide.md']);
    assert.equal(kept({ metadataFilter: '`true`' }).length, DOCS.length);
  });

  it('reads a non-JSON backtick literal such as a date as a string', () => {
    assert.deepEqual(kept({ metadataFilter: 'modified_at == `2024-01-01`' }), []);
    const match = compileFilter({ metadataFilter: 'day == `2024-01-01`' });
    assert.equal(match?.({ day: '2024-01-01' }), true);
  });

  it('matches a Unicode and apostrophe path in backticks and in escaped single quotes', () => {
    assert.deepEqual(kept({ metadataFilter: `path == \`${UNICODE_PATH}\`` }), [UNICODE_PATH]);
    assert.deepEqual(kept({ metadataFilter: `path == '${UNICODE_PATH.replace("'", "\\'")}'` }), [UNICODE_PATH]);
    assert.deepEqual(kept({ metadataFilter: 'contains(path, `été`)', filepathGlobpattern: '*.pdf' }), [UNICODE_PATH]);
  });

  it('treats a backtick inside a quoted string as a character, and \\` inside backticks as a backtick', () => {
    assert.deepEqual(kept({ metadataFilter: "path == 'notes/a`b.txt'" }), ['notes/a`b.txt']);
    assert.deepEqual(kept({ metadataFilter: 'path == `notes/a\\`b.txt`' }), ['notes/a`b.txt']);
  });

  it('ANDs the filter with filepath_globpattern', () => {
    assert.deepEqual(kept({ metadataFilter: 'modified_at > `1700000000`', filepathGlobpattern: 'docs/*.md' }), [
      'docs/guide.md',
    ]);
  });

  it('matches on JMESPath truthiness when the result is not a boolean', () => {
    // `path` keeps documents that have a non-empty path; numbers (0 included) are truthy.
    assert.equal(kept({ metadataFilter: 'path' }).length, DOCS.length - 1);
    assert.deepEqual(kept({ metadataFilter: 'size' }), ['notes/a`b.txt']);
    assert.equal(compileFilter({ metadataFilter: 'n' })?.({ n: 0 }), true);
    assert.equal(compileFilter({ metadataFilter: 'tags' })?.({ tags: [] }), false);
  });

  it('makes a type error "no match" for that object instead of throwing', () => {
    assert.deepEqual(kept({ metadataFilter: 'abs(path) > `0`' }), []);
    // contains() on a missing path is a type error for that object only.
    assert.deepEqual(kept({ metadataFilter: 'contains(path, `guide`)' }), ['docs/guide.md']);
    assert.deepEqual(kept({ metadataFilter: 'globmatch(`*`, title)' }), ['<no path>']);
  });

  it('returns the cached predicate for a repeated filter', () => {
    const a = compileFilter({ metadataFilter: 'path == `README.md`', filepathGlobpattern: '*.md' });
    const b = compileFilter({ metadataFilter: 'path == `README.md`', filepathGlobpattern: '*.md' });
    assert.equal(a, b);
  });
});

describe('invalid filters', () => {
  it('names metadata_filter and the position of a syntax error', () => {
    assertInvalidFilter(() => compileFilter({ metadataFilter: 'path == `a` && ) size' }), 'metadata_filter', 'position 15');
    assertInvalidFilter(() => compileFilter({ metadataFilter: 'path ==' }), 'metadata_filter', 'incomplete', 'position 7');
    assertInvalidFilter(() => compileFilter({ metadataFilter: 'path # 1' }), 'metadata_filter', 'position 5', '#');
  });

  it('hints at == when a filter uses =', () => {
    assertInvalidFilter(() => compileFilter({ metadataFilter: "category = 'food'" }), 'metadata_filter', '==');
  });

  it('reports an unterminated literal where it starts', () => {
    assertInvalidFilter(() => compileFilter({ metadataFilter: 'path == `abc' }), 'metadata_filter', 'unterminated', 'position 8');
    assertInvalidFilter(() => compileFilter({ metadataFilter: "path == 'abc" }), 'metadata_filter', 'unterminated');
  });

  it('rejects an unknown function and a wrong number of arguments at compile time', () => {
    assertInvalidFilter(() => compileFilter({ metadataFilter: 'globmath(`*.md`, path)' }), 'metadata_filter', 'globmath()', 'position 0');
    assertInvalidFilter(
      () => compileFilter({ metadataFilter: 'path != `x` && globmatch(`*.md`)' }),
      'metadata_filter',
      'globmatch() takes 2 arguments but received 1',
      'position 15',
    );
  });

  it('names the field the caller asks for', () => {
    assertInvalidFilter(() => compileFilter({ metadataFilter: 'path ==', field: 'filters' }), 'filters');
  });
});

describe('globs in linear time (no backtracking)', () => {
  it('supports classes with ranges and negation, POSIX classes, braces, ranges, escapes and a leading !', () => {
    assert.equal(globMatch('[a-c]x.md', 'docs/bx.md'), true);
    assert.equal(globMatch('[!a-c]x.md', 'docs/bx.md'), false);
    assert.equal(globMatch('[!a-c]x.md', 'docs/dx.md'), true);
    assert.equal(globMatch('[^a-c]x.md', 'docs/dx.md'), true);
    assert.equal(globMatch('[[:digit:]]*.md', 'docs/2024-notes.md'), true);
    assert.equal(globMatch('docs/*.{md,txt}', 'docs/a.txt'), true);
    assert.equal(globMatch('{docs,src}/**', 'src/a/b.ts'), true);
    assert.equal(globMatch('{docs,src}/**', 'lib/a.ts'), false);
    assert.equal(globMatch('report-{1..3}.pdf', 'x/report-2.pdf'), true);
    assert.equal(globMatch('report-{1..3}.pdf', 'x/report-4.pdf'), false);
    assert.equal(globMatch('a\\*.md', 'a*.md'), true);
    assert.equal(globMatch('a\\*.md', 'ab.md'), false);
    assert.equal(globMatch('!*.md', 'docs/a.md'), false);
    assert.equal(globMatch('!*.md', 'docs/a.txt'), true);
    assert.equal(globMatch('a?c', 'abc'), true);
    assert.equal(globMatch('a/?/c', 'a///c'), false);
  });

  it('keeps * and ? within a segment and lets ** span any number of them', () => {
    assert.equal(globMatch('docs/*/x.md', 'docs/a/b/x.md'), false);
    assert.equal(globMatch('docs/**/x.md', 'docs/a/b/x.md'), true);
    assert.equal(globMatch('docs/**/x.md', 'docs/x.md'), true);
    assert.equal(globMatch('docs/**', 'docs'), true);
    assert.equal(globMatch('a**b', 'a/x/b'), false);
  });

  it('refuses extglobs with a 400 naming the field, rather than matching them differently', () => {
    for (const pattern of ['+(a|b).md', '@(a|b)', '!(a).md', '*(a)', '?(a)b']) {
      assertInvalidFilter(() => compileFilter({ filepathGlobpattern: pattern }), 'filepath_globpattern', 'extglob');
      assertInvalidFilter(() => compileFilter({ metadataFilter: `globmatch('${pattern}', path)` }), 'metadata_filter', 'extglob');
    }
  });

  it('refuses a glob over limits.glob_max_chars, and braces that expand past it', () => {
    assertInvalidFilter(() => compileFilter({ filepathGlobpattern: '*a'.repeat(30_000) }), 'filepath_globpattern', 'limits.glob_max_chars', '60000 characters');
    assertInvalidFilter(() => compileFilter({ filepathGlobpattern: '{a,b}'.repeat(20) }), 'filepath_globpattern', 'expand');
  });

  it('bounds the work of a match by pattern length × path length, for the patterns that backtrack', () => {
    const glob = compileGlob('**/' + '*[a-z]'.repeat(8) + '*!', { maxChars: 1024 });
    const path = 'section-1/' + 'meeting-notes-about-the-quarterly-plan-'.repeat(20) + '1.md';
    assert.equal(glob.match(path), false);
    assert.ok(glob.cost(path) <= (3 + 8 * 6 + 2 + 4) * (path.length + 1), `cost ${glob.cost(path)}`);
    assert.equal(compileGlob('*a'.repeat(20) + 'x', { maxChars: 1024 }).match('b' + 'a'.repeat(60)), false);
    assert.equal(compileGlob('*a'.repeat(20), { maxChars: 1024 }).match('b' + 'a'.repeat(60)), true);
  });

  it('agrees with picomatch (dot: true) on generated patterns and paths', () => {
    // picomatch reads [!x] as something else than a negated class, and a few corners (`**`
    // glued to other characters, `.` and `..` segments, which document paths never have)
    // differently; those stay out of this comparison.
    const token = fc.constantFrom('a', 'b', '.', '*', '?', '/', '[a-b]', '[^a]', '{a,b}', 'x', '-', '.md', '**/', '/**/', '[[:alpha:]]', '{1..3}', '2', './');
    const segment = fc.constantFrom('a', 'b', 'x', '.md', '2', '-', 'ab', 'A', 'a.md', '.x', '.git');
    fc.assert(
      fc.property(fc.array(token, { maxLength: 6 }), fc.array(segment, { minLength: 1, maxLength: 4 }), (tokens, segments) => {
        const pattern = tokens.join('');
        fc.pre(!/\*\*[^/]|[^/]\*\*|\*\*\*/.test(pattern));
        const path = segments.join('/');
        assert.equal(globMatch(pattern, path), picomatchGlob(pattern, path), `${pattern} vs ${path}`);
      }),
      { numRuns: 3000, seed: 42 },
    );
  });
});

/** The matcher this one replaced: picomatch, with the basename rule on top. */
function picomatchGlob(pattern: string, path: string): boolean {
  if (pattern === '') return path === '';
  const p = path.replace(/\\/g, '/').replace(/^(\.\/)+/, '');
  return picomatch(pattern, { dot: true })(pattern.includes('/') ? p : p.slice(p.lastIndexOf('/') + 1));
}

describe('filter cost limits', () => {
  const tight: FilterLimits = { ...DEFAULT_FILTER_LIMITS, filter_max_cost: 100_000, filter_budget_ms: 50 };

  it('refuses a literal pad width over limits.filter_max_string_chars when compiling, before any document', () => {
    assertInvalidFilter(() => compileFilter({ metadataFilter: "length(pad_left('x', `300000000`, 'a')) > `0`" }), 'metadata_filter', 'limits.filter_max_string_chars', '300000000');
    assertInvalidFilter(() => compileFilter({ metadataFilter: "replace(path, 'a', 'b', `1000000000`) == 'x'" }), 'metadata_filter', 'limits.filter_max_array_items');
  });

  it('refuses a filter over limits.filter_max_chars and one nested past limits.filter_max_depth', () => {
    assertInvalidFilter(() => compileFilter({ metadataFilter: 'length('.repeat(1000) + 'path' + ')'.repeat(1000) }), 'metadata_filter', 'limits.filter_max_chars');
    assertInvalidFilter(() => compileFilter({ metadataFilter: 'length('.repeat(100) + 'path' + ')'.repeat(100) }), 'metadata_filter', 'limits.filter_max_depth');
    assertInvalidFilter(() => compileFilter({ metadataFilter: Array(100).fill("path == 'a'").join(' || ') }), 'metadata_filter', 'limits.filter_max_depth');
    assert.ok(compileFilter({ metadataFilter: Array(30).fill("path == 'a'").join(' || ') }));
  });

  it('refuses growth a filter builds while it runs, naming the limit', () => {
    // A generous time budget, so that each case meets the limit it is about, even on a loaded machine.
    const limits = { ...DEFAULT_FILTER_LIMITS, filter_budget_ms: 60_000 };
    const run = (expr: string) => compileFilter({ metadataFilter: expr, limits })!({ path: 'docs/a.md', width: 300_000_000, n: 2_000_000_000 });
    assertInvalidFilter(() => run("length(pad_left('x', width, 'a')) > `0`"), 'metadata_filter', 'limits.filter_max_string_chars');
    assertInvalidFilter(() => run("length(join('', [pad_left('a', `60000`, 'b'), pad_left('a', `60000`, 'b')])) > `0`"), 'metadata_filter', 'limits.filter_max_string_chars', 'join()');
    assertInvalidFilter(() => run("length(replace(pad_left('a', `60000`, 'b'), 'b', 'cc')) > `0`"), 'metadata_filter', 'limits.filter_max_string_chars', 'replace()');
    assertInvalidFilter(() => run("length(replace(path, 'a', 'b', n)) > `0`"), 'metadata_filter', 'limits.filter_max_array_items');
    assertInvalidFilter(() => run("length(split(pad_left('a', `60000`, 'b'), 'b')) > `0`"), 'metadata_filter', 'limits.filter_max_array_items', 'split()');
    assertInvalidFilter(
      () => run("length(map(&[$, $, $, $, $, $, $, $][], split(pad_left('a', `5000`, 'b'), 'b'))[]) > `0`"),
      'metadata_filter',
      'limits.filter_max_array_items',
      'flattening',
    );
    assertInvalidFilter(() => run("globmatch(replace(pad_left('x', `3000`, 'x'), 'x', '*a'), path)"), 'metadata_filter', 'limits.glob_max_chars');
  });

  it('trims a long run of trimmable characters in linear time, with the same result', () => {
    // `xxx…xa`: the library's `(.*?)[x]*$` tries every split of the run (quadratic).
    const match = compileFilter({
      metadataFilter: "trim_right(pad_left('a', `60000`, 'x'), 'x') == pad_left('a', `60000`, 'x') && trim_left(pad_left('a', `60000`, 'x'), 'x') == 'a' && trim(s) == 'b c' && trim_left(t, 'y') == 'z'",
    });
    assert.equal(match?.({ s: '  b c \t', t: 'yyz' }), true);
  });

  it('stops one document over limits.filter_max_cost and a request over limits.filter_budget_ms', () => {
    const many = compileFilter({ metadataFilter: 'length(map(&map(&map(&@, $.xs), $.xs), xs)) > `0`', limits: tight })!;
    assertInvalidFilter(() => many({ xs: Array.from({ length: 100 }, (_, i) => i) }), 'metadata_filter', 'limits.filter_max_cost');
    // Cheap per document, but enough documents to use up 50 ms.
    const match = compileFilter({ metadataFilter: "length(pad_left(path, `20000`, 'a')) > `5`", limits: tight })!;
    const budget = new FilterBudget(tight);
    assertInvalidFilter(() => {
      for (let i = 0; ; i++) match({ path: `docs/${i}.md` }, budget);
    }, 'metadata_filter', 'limits.filter_budget_ms');
  });

  it('stops a request over limits.filter_max_request_cost, counted in work units whatever the load', () => {
    const limits: FilterLimits = { ...DEFAULT_FILTER_LIMITS, filter_max_request_cost: 200_000, filter_budget_ms: 60_000 };
    const match = compileFilter({ metadataFilter: "globmatch('**/*.md', path)", limits })!;
    const budget = new FilterBudget(limits);
    let evaluated = 0;
    assertInvalidFilter(() => {
      for (; ; evaluated++) match({ path: `docs/${evaluated}.md` }, budget);
    }, 'metadata_filter', 'limits.filter_max_request_cost');
    // The same number of documents each time: the units, not the clock, decide.
    const again = new FilterBudget(limits);
    let second = 0;
    assert.throws(() => {
      for (; ; second++) match({ path: `docs/${second}.md` }, again);
    });
    assert.equal(second, evaluated);
    assert.ok(evaluated > 10, `${evaluated} documents`);
  });

  it('blames filepath_globpattern for a glob alone, and answers an ordinary filter well within the limits', () => {
    const glob = compileFilter({ filepathGlobpattern: '**/*.md', limits: { ...tight, filter_max_cost: 10_000 } })!;
    assertInvalidFilter(() => glob({ path: 'a/'.repeat(3000) + 'b.md' }), 'filepath_globpattern', 'limits.filter_max_cost');
    assert.equal(kept({ metadataFilter: "globmatch('**/*.md', path) && modified_at > `1700000000`", limits: tight }).length, 2);
  });
});

describe('catalog: one evaluation per distinct metadata object', () => {
  it('shares equal chunk metadata within a document and evaluates the filter once for them', async () => {
    const catalog = new Catalog();
    const doc = { path: 'docs/big.md', modified_at: 1 };
    const meta = Array.from({ length: 300 }, (_, i) => (i < 297 ? { ...doc } : { ...doc, page: i }));
    catalog.setDocument('docs/big.md', meta.map((_, i) => i + 1), meta);
    catalog.setDocument('docs/other.md', [1001, 1002], [{ path: 'docs/other.md' }, { path: 'docs/other.md' }]);
    assert.equal(catalog.get(1)!.metadata, catalog.get(297)!.metadata, 'equal metadata is one object');
    assert.notEqual(catalog.get(1)!.metadata, catalog.get(298)!.metadata, 'a chunk with its own page keeps its own');
    let evaluations = 0;
    const predicate = (m: Metadata) => {
      evaluations++;
      return m.path === 'docs/big.md';
    };
    const matched = await catalog.matching('k', predicate, new FilterBudget(DEFAULT_FILTER_LIMITS));
    assert.equal(matched.ids.size, 300);
    assert.equal(evaluations, 1 + 3 + 1);
  });
});
