/**
 * The shared corpus (../shared/data/docs, 50 real files) through the public surface: every file
 * is indexed and found first by a phrase from inside it, or failed with a clear reason.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { cp, readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParsedPart, Parser } from '../../src/core/types.js';
import { parserPlugins } from '../../src/parsers/index.js';
import { post, retrieve, startServer, tempDir, type TestServer } from '../helpers/livedex.js';

const DOCS = fileURLToPath(new URL('../../../shared/data/docs/', import.meta.url));
const skip = existsSync(DOCS) ? false : `the shared corpus is not at ${DOCS}`;

/** Files the MANIFEST marks ENCRYPTED/CORRUPT that cannot be opened, with the reason they must fail with. */
const EXPECTED_FAILURES: Record<string, RegExp> = {
  'password.pdf': /encrypted PDF: needs a password/,
  'empty.pdf': /not a valid PDF \(empty file\)/,
  'testWORD_protected_passtika.docx': /encrypted or legacy Office file \(OLE container\)/,
  'testWORD_truncated.docx': /corrupt DOCX: truncated ZIP archive/,
  'password_protected.xlsx': /encrypted or legacy Office file \(OLE container\)/,
};

/** Files whose content makes "found first by its own phrase" impossible, and why. */
const NOT_FINDABLE: Record<string, string> = {
  'empty.txt': 'zero bytes: indexed with no chunks, so there is no phrase to look for',
};

/** Files with no phrase to pick, looked up by the one word they have instead. */
const OWN_QUERY: Record<string, string> = {
  // Every one of its 1040 cells is the letter "x" (headers too): no phrase, but no other file has as many x's.
  'more-than-1k-cells.xlsx': 'x',
};

/**
 * Files with a twin of the same text in the corpus: a phrase from one matches the other with
 * the same BM25 score, so either may come first; the test asks for the file among the tied top hits.
 */
const TWINS: Record<string, string[]> = {
  // copy-protected.pdf is layout-parser-paper-fast.pdf with an owner password: same two pages.
  'copy-protected.pdf': ['layout-parser-paper-fast.pdf'],
  'layout-parser-paper-fast.pdf': ['copy-protected.pdf'],
  // The same table as UTF-8 and UTF-16 CSV, and as the first sheet of the workbook.
  'stanley-cups.csv': ['stanley-cups-utf-16.csv', 'stanley-cups.xlsx'],
  'stanley-cups-utf-16.csv': ['stanley-cups.csv', 'stanley-cups.xlsx'],
  'stanley-cups.xlsx': ['stanley-cups.csv', 'stanley-cups-utf-16.csv'],
};

let parsers: Parser[] | undefined;

/** The parser the server uses for `name`: the first plugin claiming its extension, as the index does. */
async function parserFor(name: string): Promise<Parser | undefined> {
  parsers ??= await Promise.all(parserPlugins.map((def) => (def.create as (o: unknown, c: unknown) => Parser | Promise<Parser>)(def.options.parse({}), { logger: console, dataDir: '' })));
  return parsers.find((p) => p.extensions.includes(extname(name).toLowerCase()));
}

/** Words that say little about a document; a phrase is picked for its other words. */
const COMMON = new Set('the of and to a in is that for it as with was on be by this are or at from an have not which but all were they we he she his her you your our their there been has had will would can more one'.split(' '));

/**
 * A distinctive phrase from inside the parsed parts: from the middle part, the line with the
 * most uncommon words, then the 8-word window of it with the most uncommon words.
 */
function distinctivePhrase(parts: ParsedPart[]): string {
  const middle = parts[Math.floor(parts.length / 2)]!;
  const words = (line: string) => line.split(/[\s|;:]+/).map((w) => w.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '')).filter((w) => w !== '');
  const score = (ws: string[]) => new Set(ws.filter((w) => w.length > 3 && !COMMON.has(w.toLowerCase())).map((w) => w.toLowerCase())).size;
  let best: string[] = [];
  for (const line of middle.text.split('\n')) {
    const ws = words(line);
    if (score(ws) > score(best)) best = ws;
  }
  let window = best.slice(0, 8);
  for (let i = 0; i + 8 <= best.length; i++) if (score(best.slice(i, i + 8)) > score(window)) window = best.slice(i, i + 8);
  return window.join(' ');
}

describe('the shared document corpus through the REST API', { skip }, () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;
  let status: Map<string, Record<string, unknown>>;
  let files: string[];

  before(async () => {
    folder = await tempDir('livedex-docs-');
    data = await tempDir();
    // The documents only: MANIFEST.md describes them and quotes their texts.
    await cp(DOCS, folder.path, { recursive: true, filter: (src) => !src.endsWith('/MANIFEST.md') });
    files = (await readdir(folder.path)).sort();
    server = await startServer(folder.path, { dataDir: data.path });
    await server.ready;
    const listed = await post<Record<string, unknown>[]>(server.url, '/v2/list_documents', { return_status: true });
    status = new Map(listed.body.map((d) => [String(d.path).split('/').pop()!, d]));
  });
  after(async () => {
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('fails exactly the encrypted and corrupt files, each with a clear reason', () => {
    assert.equal(files.length, 50);
    for (const file of files) {
      const doc = status.get(file);
      assert.ok(doc, `${file} is listed`);
      const reason = EXPECTED_FAILURES[file];
      if (reason) {
        assert.equal(doc._indexing_status, 'FAILED', file);
        assert.match(String(doc._indexing_error), reason, file);
      } else {
        assert.equal(doc._indexing_status, 'INDEXED', `${file}: ${String(doc._indexing_error)}`);
      }
    }
  });

  it('finds every other file first with a BM25 query for a phrase from inside it', async () => {
    const misses: string[] = [];
    for (const file of files) {
      if (EXPECTED_FAILURES[file] || NOT_FINDABLE[file]) continue;
      const parser = await parserFor(file);
      assert.ok(parser, `a parser claims ${file}`);
      const parts = await parser.parse({ key: file, bytes: readFileSync(join(DOCS, file)), extension: extname(file).toLowerCase(), metadata: {} });
      const phrase = OWN_QUERY[file] ?? distinctivePhrase(parts);
      if (!OWN_QUERY[file] && phrase.split(' ').length < 3) {
        misses.push(`${file}: no phrase of 3 words or more in its middle part`);
        continue;
      }
      const hits = await retrieve(server.url, { query: phrase, k: 5, mode: 'bm25' });
      const names = hits.map((h) => String(h.metadata.path).split('/').pop());
      const twins = TWINS[file] ?? [];
      const first = names[0];
      const at = names.indexOf(file);
      const tied = at >= 0 && at <= twins.length && (hits[at]!.scores.bm25 ?? 0) >= 0.999 * (hits[0]!.scores.bm25 ?? 0);
      const ok = first === file || (twins.includes(first ?? '') && tied);
      if (!ok) misses.push(`${file}: "${phrase}" → ${hits.map((h, i) => `${names[i]} (${h.scores.bm25?.toFixed(3)})`).join(', ')}`);
    }
    assert.deepEqual(misses, []);
  });

  it('carries page, headings, sheet and row, and e-mail headers on the hits', async () => {
    const hitOf = async (query: string, file: string) => {
      const hits = await retrieve(server.url, { query, k: 10, mode: 'bm25' });
      const hit = hits.find((h) => String(h.metadata.path).endsWith(`/${file}`));
      assert.ok(hit, `${file} is among the hits for "${query}"`);
      return hit.metadata;
    };
    const pdf = await hitOf('Dense Passage Retrieval open-domain question answering', 'multi-column.pdf');
    assert.equal(typeof pdf.page, 'number');
    assert.equal(pdf.pages, 13);
    const docx = await hitOf('United States Trustee appoints and supervises standing trustees', 'handbook-1p.docx');
    assert.ok(Array.isArray(docx.headings));
    const md = await hitOf('pdfplumber extract_tables table_settings', 'pdfplumber-README.md');
    assert.ok(Array.isArray(md.headings) && md.headings.length > 0, JSON.stringify(md.headings));
    const xlsx = await hitOf('Number Square 144', 'testEXCEL.xlsx');
    assert.equal(xlsx.sheet, 'Feuil1');
    assert.equal(typeof xlsx.row, 'number');
    const eml = await hitOf('face painting petting zoo funnel cake', 'family-day.eml');
    assert.equal(eml.from, '"Mallori Harrell" <mallori@unstructured.io>');
    assert.equal(eml.subject, 'Family Day');
    assert.equal(eml.date, '2022-12-21T16:28:53.000Z');
    const pptx = await hitOf('first content slide bulleted information', 'sample-presentation.pptx');
    assert.equal(pptx.slide, 2);
  });
});
