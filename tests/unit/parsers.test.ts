import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LivedexError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { Registry } from '../../src/core/registry.js';
import type { ParsedPart, Parser } from '../../src/core/types.js';
import { decodeText } from '../../src/parsers/decode.js';
import { HtmlParser, sniffHtmlCharset } from '../../src/parsers/html.js';
import { parserPlugins } from '../../src/parsers/index.js';
import { MarkdownParser, readFrontMatter } from '../../src/parsers/markdown.js';
import { TextParser } from '../../src/parsers/text.js';

const utf8 = (s: string) => new TextEncoder().encode(s);
const bytesOf = (...chunks: (string | number[])[]) =>
  new Uint8Array(chunks.flatMap((c) => (typeof c === 'string' ? [...utf8(c)] : c)));

function parse(parser: Parser, bytes: Uint8Array, extension: string, metadata: Record<string, unknown> = {}, signal?: AbortSignal): Promise<ParsedPart[]> {
  return parser.parse({ key: `doc${extension}`, bytes, extension, metadata, ...(signal ? { signal } : {}) });
}

async function rejectsAsBinary(promise: Promise<unknown>, reason: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof LivedexError, 'a LivedexError');
    assert.equal(err.code, 'parse_failed');
    assert.match(err.message, /looks like a binary file/);
    assert.match(err.message, reason);
    return true;
  });
}

describe('decoding', () => {
  it('decodes UTF-8 and strips its byte-order mark', () => {
    const { text, encoding, lossy } = decodeText(bytesOf([0xef, 0xbb, 0xbf], 'héllo wörld'));
    assert.equal(text, 'héllo wörld');
    assert.equal(encoding, 'utf-8');
    assert.equal(lossy, false);
  });

  it('decodes UTF-16 LE and BE with a byte-order mark', () => {
    const s = 'Grüße, 世界 😀\nline two';
    const le = [0xff, 0xfe];
    const be = [0xfe, 0xff];
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      le.push(c & 0xff, c >> 8);
      be.push(c >> 8, c & 0xff);
    }
    assert.deepEqual(decodeText(new Uint8Array(le)), { text: s, encoding: 'utf-16le', lossy: false });
    assert.deepEqual(decodeText(new Uint8Array(be)), { text: s, encoding: 'utf-16be', lossy: false });
  });

  it('decodes UTF-32 LE and BE with a byte-order mark', () => {
    const s = 'Grüße, 世界 😀\nline two';
    const cps = [0xfeff, ...[...s].map((c) => c.codePointAt(0)!)];
    const le = new Uint8Array(cps.length * 4);
    const be = new Uint8Array(cps.length * 4);
    cps.forEach((cp, i) => {
      new DataView(le.buffer).setUint32(i * 4, cp, true);
      new DataView(be.buffer).setUint32(i * 4, cp, false);
    });
    assert.deepEqual(decodeText(le), { text: s, encoding: 'utf-32le', lossy: false });
    assert.deepEqual(decodeText(be), { text: s, encoding: 'utf-32be', lossy: false });
    // A cut-off last unit is a replacement character, not a failure.
    assert.deepEqual(decodeText(le.subarray(0, le.length - 1)), { text: s.slice(0, -1) + '\uFFFD', encoding: 'utf-32le', lossy: true });
  });

  it('turns invalid UTF-8 bytes into U+FFFD and keeps the rest', () => {
    const { text, encoding, lossy } = decodeText(bytesOf('naïve text with one bad byte ', [0xff], ' and more — fine'));
    assert.equal(text, 'naïve text with one bad byte \uFFFD and more — fine');
    assert.equal(encoding, 'utf-8');
    assert.equal(lossy, true);
  });

  it('reads a legacy Latin-1 file as windows-1252 instead of a field of U+FFFD', () => {
    const { text, encoding } = decodeText(bytesOf('caf', [0xe9], ' cr', [0xe8], 'me br', [0xfb], 'l', [0xe9], 'e ', [0x80]));
    assert.equal(text, 'café crème brûlée €');
    assert.equal(encoding, 'windows-1252');
  });

  it('normalizes CRLF and lone CR line ends to LF', () => {
    assert.equal(decodeText(utf8('a\r\nb\rc\n')).text, 'a\nb\nc\n');
  });

  it('uses a declared charset when there is no byte-order mark', () => {
    assert.equal(decodeText(bytesOf([0xc0, 0xe4]), { declaredEncoding: 'windows-1251' }).text, 'Ад');
    assert.equal(decodeText(utf8('plain'), { declaredEncoding: 'no-such-charset' }).text, 'plain');
  });

  it('rejects bytes with a NUL in the first 8 KiB, saying where', () => {
    assert.throws(() => decodeText(bytesOf('%PDF-1.7 ', [0x00, 0x01, 0x02])), /binary.*NUL byte at offset 9/);
  });

  it('rejects bytes that are mostly control characters', () => {
    const noise = new Uint8Array(1000).map((_, i) => (i % 3 === 0 ? 0x01 + (i % 8) : 0x41));
    assert.throws(() => decodeText(noise), /binary.*control characters/);
  });

  it('rejects binary without NUL bytes that is not UTF-8 either', () => {
    let seed = 5;
    const compressed = new Uint8Array(4096).map(() => 0x20 + ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 0xe0));
    assert.throws(() => decodeText(compressed), /binary.*not valid UTF-8/);
  });

  it('hints at a missing byte-order mark for UTF-16 text without one', () => {
    const le: number[] = [];
    for (const ch of 'hello utf-16 world') le.push(ch.charCodeAt(0), 0);
    assert.throws(() => decodeText(new Uint8Array(le)), /byte-order mark/);
  });

  it('allows tabs, form feeds and ANSI colour escapes in text', () => {
    const s = '\u001b[32mok\u001b[0m\tdone\fnext page';
    assert.equal(decodeText(utf8(s)).text, s);
  });
});

describe('text parser', () => {
  const parser = new TextParser();

  it('returns the whole text as one part', async () => {
    const parts = await parse(parser, utf8('def main():\n    print("hi")\n'), '.py');
    assert.deepEqual(parts, [{ text: 'def main():\n    print("hi")\n', metadata: {} }]);
  });

  it('returns no parts for an empty or whitespace-only file (indexed with 0 chunks, not failed)', async () => {
    assert.deepEqual(await parse(parser, new Uint8Array(0), '.txt'), []);
    assert.deepEqual(await parse(parser, utf8(' \n\t\n  '), '.txt'), []);
    assert.deepEqual(await parse(parser, bytesOf([0xef, 0xbb, 0xbf], '\n'), '.txt'), []);
  });

  it('rejects a binary file with a clear reason', async () => {
    const png = bytesOf([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d], 'IHDR');
    await rejectsAsBinary(parse(parser, png, '.txt'), /NUL byte at offset 8/);
  });

  it('claims plain-text, config and source extensions, but not the formats with a parser of their own', () => {
    for (const ext of ['.txt', '.log', '.yaml', '.toml', '.ts', '.py', '.rs', '.go', '.sql', '.sh']) assert.ok(parser.extensions.includes(ext), ext);
    for (const ext of ['.csv', '.json', '.jsonl']) assert.ok(!parser.extensions.includes(ext), ext);
    assert.ok(!parser.extensions.includes('.md'));
  });

  it('stops when its signal is aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(parse(parser, utf8('text'), '.txt', {}, ac.signal), { name: 'AbortError' });
  });
});

describe('markdown parser', () => {
  const parser = new MarkdownParser();
  const md = async (src: string, metadata: Record<string, unknown> = {}) => parse(parser, utf8(src), '.md', metadata);

  it('cuts sections by ATX heading with the heading path of each', async () => {
    const parts = await md(
      [
        'Intro text before any heading.',
        '',
        '# Install',
        '',
        'Get it.',
        '',
        '## From source',
        '',
        'Clone and build.',
        '',
        '### On Linux ###',
        '',
        'apt install.',
        '',
        '## From npm',
        '',
        'npm i.',
        '',
        '# Usage',
        '',
        'Run it.',
      ].join('\n'),
    );
    assert.deepEqual(
      parts.map((p) => p.metadata.headings),
      [[], ['Install'], ['Install', 'From source'], ['Install', 'From source', 'On Linux'], ['Install', 'From npm'], ['Usage']],
    );
    assert.equal(parts[0]!.text, 'Intro text before any heading.');
    assert.equal(parts[2]!.text, '## From source\n\nClone and build.');
  });

  it('ignores # lines inside fenced code blocks', async () => {
    const parts = await md(
      [
        '# Setup',
        '',
        '```bash',
        '# install the deps',
        'npm ci',
        '## not a heading either',
        '```',
        '',
        '~~~~',
        '# still code',
        '```',
        '# and still code, the fence is ~~~~',
        '~~~~',
        '',
        '## Next',
        'done',
      ].join('\n'),
    );
    assert.deepEqual(parts.map((p) => p.metadata.headings), [['Setup'], ['Setup', 'Next']]);
    assert.match(parts[0]!.text, /# install the deps\nnpm ci\n## not a heading either/);
    assert.match(parts[0]!.text, /# and still code, the fence is ~~~~/);
  });

  it('reads setext headings and tells them from rules and list items', async () => {
    const parts = await md(['Title', '=====', '', 'text', '', 'Part two', '--------', 'more', '', '- item', '---', '', 'after a rule'].join('\n'));
    assert.deepEqual(parts.map((p) => p.metadata.headings), [['Title'], ['Title', 'Part two']]);
    assert.match(parts[1]!.text, /- item\n---\n\nafter a rule$/);
  });

  it('does not take #hashtags or indented code for headings', async () => {
    const parts = await md(['#hashtag is text', '', '    # indented code', '', 'end'].join('\n'));
    assert.equal(parts.length, 1);
    assert.deepEqual(parts[0]!.metadata.headings, []);
  });

  it('cleans heading text of links, code and emphasis', async () => {
    const parts = await md('# The `config` file and [its **schema**](https://x.y/z) <a name="x"></a>\n\ntext');
    assert.deepEqual(parts[0]!.metadata.headings, ['The config file and its schema']);
  });

  it('lets a heading with no text of its own open its first subsection', async () => {
    const parts = await md('# Install\n\n## From source\n\nClone.\n\n## From npm\n\nnpm i.');
    assert.equal(parts.length, 2);
    assert.equal(parts[0]!.text, '# Install\n\n## From source\n\nClone.');
    assert.deepEqual(parts[0]!.metadata.headings, ['Install', 'From source']);
  });

  it('lifts YAML front matter into metadata, without overriding source metadata', async () => {
    const src = [
      '---',
      'title: "Getting started"',
      'tags: [intro, setup]',
      'authors:',
      '  - Ada',
      '  - Linus',
      'draft: false',
      'weight: 3',
      'path: /somewhere/else',
      'nested:',
      '  key: skipped',
      '---',
      '# Hello',
      'body',
    ].join('\n');
    const parts = await md(src, { path: 'docs/start.md' });
    assert.equal(parts.length, 1);
    assert.deepEqual(parts[0]!.metadata, { title: 'Getting started', tags: ['intro', 'setup'], authors: ['Ada', 'Linus'], draft: false, weight: 3, headings: ['Hello'] });
    assert.equal(parts[0]!.text, '# Hello\nbody');
  });

  it('reads TOML front matter and leaves a leading rule alone', () => {
    assert.deepEqual(readFrontMatter(['+++', 'title = "T"', 'draft = true', '+++', 'x']), { fields: { title: 'T', draft: true }, bodyStart: 4 });
    assert.deepEqual(readFrontMatter(['---', 'no closing fence', 'text']), { fields: {}, bodyStart: 0 });
  });

  it('rejects a binary .md with NUL bytes with a clear reason', async () => {
    await rejectsAsBinary(parse(parser, bytesOf('# Title\n', [0x00, 0x00, 0x10, 0x00]), '.md'), /NUL byte at offset 8/);
  });

  it('returns no parts for an empty file', async () => {
    assert.deepEqual(await md(''), []);
    assert.deepEqual(await md('---\ntitle: only front matter\n---\n'), []);
  });
});

describe('html parser', () => {
  const parser = new HtmlParser();
  const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>Live &amp; Fresh</title>
<style>body { color: red }</style><script>var tracking = "secret";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/about">About us</a></nav>
<h1>Guide</h1>
<p>Read the <a href="https://example.com/docs">documentation pages</a> first. <img src="x.png" alt="a diagram"></p>
<script>document.write("injected")</script>
<h2>Install</h2>
<p>Run the installer.</p>
<table><tr><th>OS</th><th>Command</th></tr><tr><td>Linux</td><td>apt install livedex</td></tr></table>
<h3>Linux</h3><p>Use apt.</p>
<h2>Usage</h2><p>Query it.</p>
<footer>Copyright footer text</footer>
</body></html>`;

  it('drops scripts, styles, navigation and footers, keeps headings and link text without URLs', async () => {
    const parts = await parse(parser, utf8(page), '.html');
    const all = parts.map((p) => p.text).join('\n');
    for (const gone of ['tracking', 'injected', 'color', 'Home', 'About us', 'Copyright', 'https://', 'x.png']) assert.ok(!all.includes(gone), `"${gone}" should be gone`);
    for (const kept of ['Guide', 'Read the documentation pages first.', 'a diagram', 'Run the installer.', 'Linux | apt install livedex', 'Query it.']) assert.ok(all.includes(kept), `"${kept}" should be kept`);
  });

  it('puts <title> into metadata and gives each section its heading path', async () => {
    const parts = await parse(parser, utf8(page), '.html');
    assert.deepEqual(
      parts.map((p) => p.metadata.headings),
      [['Guide'], ['Guide', 'Install'], ['Guide', 'Install', 'Linux'], ['Guide', 'Usage']],
    );
    for (const p of parts) assert.equal(p.metadata.title, 'Live & Fresh');
    assert.match(parts[1]!.text, /^Install\n\nRun the installer\./);
  });

  it('keeps headings in their own case', async () => {
    const [part] = await parse(parser, utf8('<h2>Mixed Case Heading</h2><p>x</p>'), '.html');
    assert.match(part!.text, /^Mixed Case Heading/);
  });

  it('reads a fragment without <html> or <body>', async () => {
    const parts = await parse(parser, utf8('<title>T</title><p>just a <b>fragment</b></p>'), '.htm');
    assert.deepEqual(parts, [{ text: 'just a fragment', metadata: { title: 'T', headings: [] } }]);
  });

  it('decodes the charset declared by <meta>', async () => {
    const latin1 = bytesOf('<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"></head><body><p>Caf', [0xe9], ' cr', [0xe8], 'me</p></body></html>');
    assert.equal(sniffHtmlCharset(latin1), 'ISO-8859-1');
    const parts = await parse(parser, latin1, '.html');
    assert.equal(parts[0]!.text, 'Café crème');
    const sjis = bytesOf('<meta charset="shift_jis"><p>', [0x93, 0xfa, 0x96, 0x7b], '</p>');
    assert.equal((await parse(parser, sjis, '.html'))[0]!.text, '日本');
  });

  it('can keep link URLs when asked', async () => {
    const withUrls = new HtmlParser({ link_urls: true });
    const [part] = await parse(withUrls, utf8('<p><a href="https://example.com/a">docs</a></p>'), '.html');
    assert.equal(part!.text, 'docs [https://example.com/a]');
  });

  it('returns no parts for a page without text', async () => {
    assert.deepEqual(await parse(parser, utf8('<html><head><title>Empty</title><script>x()</script></head><body> </body></html>'), '.html'), []);
  });

  it('rejects a binary file', async () => {
    await rejectsAsBinary(parse(parser, bytesOf('<html>', [0x00, 0xff]), '.html'), /NUL/);
  });
});

describe('parser plugins', () => {
  const registry = new Registry().register(...parserPlugins);
  const ctx = { logger: silentLogger, dataDir: '/tmp/unused' };

  it('registers every format, dedicated parsers before text, no extension claimed twice', async () => {
    const names = registry.list('parser').map((d) => d.name);
    assert.deepEqual([...names].sort(), ['csv', 'docx', 'eml', 'html', 'json', 'markdown', 'msg', 'pdf', 'pptx', 'text', 'xlsx']);
    assert.equal(names.at(-1), 'text', 'text comes last: it takes what no other parser claims');
    const claimed = new Map<string, string>();
    for (const def of registry.list('parser')) {
      const parser = await registry.create('parser', def.name, {}, ctx);
      assert.equal(parser.name, def.name);
      for (const ext of parser.extensions) {
        assert.ok(!claimed.has(ext), `${ext} is claimed by ${claimed.get(ext)} and ${def.name}`);
        claimed.set(ext, def.name);
      }
    }
    assert.equal(claimed.get('.md'), 'markdown');
    assert.equal(claimed.get('.mdx'), 'markdown');
    assert.equal(claimed.get('.xhtml'), 'html');
    assert.equal(claimed.get('.txt'), 'text');
  });

  it('validates options and names the option at fault', async () => {
    await assert.rejects(registry.create('parser', 'text', { extensions: ['txt'] }, ctx), /parser\.text\.extensions\.0: .*starts with a dot/);
    await assert.rejects(registry.create('parser', 'html', { link_url: true }, ctx), /parser\.html/);
    const custom = await registry.create('parser', 'text', { extensions: ['.txt', ''] }, ctx);
    assert.deepEqual(custom.extensions, ['.txt', '']);
  });
});
