import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileFilter, globMatch } from '../src/core/filter.js';
import { LivedexError } from '../src/core/errors.js';
import type { Metadata } from '../src/core/types.js';

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
