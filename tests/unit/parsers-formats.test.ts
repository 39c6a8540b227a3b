/** The document-format parsers against the shared corpus (../shared/data/docs) and inputs made here. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { makePdf } from '../helpers/pdf.js';
import { makeZipBomb } from '../helpers/zip-bomb.js';
import JSZip from 'jszip';
import { LivedexError } from '../../src/core/errors.js';
import type { ParsedPart, Parser } from '../../src/core/types.js';
import { CsvParser } from '../../src/parsers/csv.js';
import { DocxParser } from '../../src/parsers/docx.js';
import { EmlParser } from '../../src/parsers/eml.js';
import { parserPlugins } from '../../src/parsers/index.js';
import { JsonParser } from '../../src/parsers/json.js';
import { PdfParser } from '../../src/parsers/pdf.js';
import { PptxParser } from '../../src/parsers/pptx.js';
import { XlsxParser } from '../../src/parsers/xlsx.js';
import { checkZip } from '../../src/parsers/zip-limits.js';

const DOCS = fileURLToPath(new URL('../../../shared/data/docs/', import.meta.url));
const skip = existsSync(DOCS) ? false : `the shared corpus is not at ${DOCS}`;
const doc = (name: string): Uint8Array => readFileSync(DOCS + name);

function parse(parser: Parser, bytes: Uint8Array, name: string, signal?: AbortSignal): Promise<ParsedPart[]> {
  const extension = name.slice(name.lastIndexOf('.')).toLowerCase();
  return parser.parse({ key: name, bytes, extension, metadata: {}, ...(signal ? { signal } : {}) });
}

/** Asserts `promise` rejects with a `parse_failed` LivedexError whose message matches `reason`. */
async function assertFails(promise: Promise<unknown>, reason: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof LivedexError, `expected a LivedexError, got ${String(err)}`);
    assert.equal(err.code, 'parse_failed');
    assert.match(err.message, reason);
    return true;
  });
}

const text = (parts: ParsedPart[]) => parts.map((p) => p.text).join('\n');



/** A small DOCX with Heading 1/2 paragraphs and a table, built with jszip. */
async function makeDocx(): Promise<Uint8Array> {
  const zip = new JSZip();
  zip.file('[Content_Types].xml', '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/></Types>');
  zip.file('_rels/.rels', '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>');
  zip.file('word/_rels/document.xml.rels', '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>');
  const style = (id: string, name: string) => `<w:style w:type="paragraph" w:styleId="${id}"><w:name w:val="${name}"/></w:style>`;
  zip.file('word/styles.xml', `<?xml version="1.0" encoding="UTF-8"?><w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">${style('Heading1', 'heading 1')}${style('Heading2', 'heading 2')}</w:styles>`);
  const p = (t: string, s?: string) => `<w:p>${s ? `<w:pPr><w:pStyle w:val="${s}"/></w:pPr>` : ''}<w:r><w:t>${t}</w:t></w:r></w:p>`;
  const tc = (t: string) => `<w:tc>${p(t)}</w:tc>`;
  const table = `<w:tbl><w:tr>${tc('Planet')}${tc('Moons')}</w:tr><w:tr>${tc('Jupiter')}${tc('95')}</w:tr><w:tr>${tc('Saturn')}${tc('146')}</w:tr></w:tbl>`;
  const body = [p('Solar system', 'Heading1'), p('An overview of the planets.'), p('Gas giants', 'Heading2'), p('The giants have many moons.'), table].join('');
  zip.file('word/document.xml', `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${body}</w:body></w:document>`);
  return zip.generateAsync({ type: 'uint8array' });
}

describe('pdf parser', { skip }, () => {
  const pdf = new PdfParser();

  it('gives one part per page with page and pages, in reading order', async () => {
    const parts = await parse(pdf, doc('multi-column.pdf'), 'multi-column.pdf');
    assert.equal(parts.length, 13);
    assert.deepEqual(parts.map((p) => p.metadata.page), Array.from({ length: 13 }, (_, i) => i + 1));
    assert.ok(parts.every((p) => p.metadata.pages === 13));
    assert.match(parts[0]!.text, /Dense Passage Retrieval/);
    // Words on one line are joined by spaces, not glued together.
    assert.match(text(parts), /Term-matching methods like/);
  });

  it('lists pages without a text layer and keeps the others', async () => {
    const parts = await parse(pdf, doc('chelsea_pdta.pdf'), 'chelsea_pdta.pdf');
    assert.equal(parts[0]!.metadata.pages, 65);
    assert.deepEqual(parts[0]!.metadata.pages_without_text, [4]);
    assert.ok(!parts.some((p) => p.metadata.page === 4));
    const made = await parse(pdf, makePdf(['First page words', null, 'Third page words']), 'made.pdf');
    assert.deepEqual(made.map((p) => [p.metadata.page, p.text]), [[1, 'First page words'], [3, 'Third page words']]);
    assert.deepEqual(made[0]!.metadata.pages_without_text, [2]);
  });

  it('refuses a PDF where no page has text: OCR is not configured', async () => {
    await assertFails(parse(pdf, makePdf([null, null]), 'scan.pdf'), /no text layer \(scanned PDF\?\): OCR is not configured/);
  });

  it('parses an owner-password (copy-protected) PDF and refuses one that needs a password', async () => {
    const parts = await parse(pdf, doc('copy-protected.pdf'), 'copy-protected.pdf');
    assert.equal(parts.length, 2);
    assert.match(parts[0]!.text, /LayoutParser/);
    await assertFails(parse(pdf, doc('password.pdf'), 'password.pdf'), /^encrypted PDF: needs a password$/);
  });

  it('says why an empty or random file is not a PDF', async () => {
    await assertFails(parse(pdf, doc('empty.pdf'), 'empty.pdf'), /not a valid PDF \(empty file\)/);
    const random = Buffer.alloc(4096);
    for (let i = 0; i < random.length; i++) random[i] = (i * 7919 + 13) % 251;
    await assertFails(parse(pdf, random, 'random.pdf'), /not a valid PDF/);
    await assertFails(parse(pdf, Buffer.concat([Buffer.from('%PDF-1.7\n'), random]), 'broken.pdf'), /PDF/);
  });

  it('refuses a PDF over max_pages and stops when the signal aborts', async () => {
    await assertFails(parse(new PdfParser({ max_pages: 5 }), doc('multi-column.pdf'), 'multi-column.pdf'), /13 pages, over the limit of 5 \(parser option max_pages\)/);
    const huge = makePdf(Array.from({ length: 5000 }, (_, i) => `page ${i + 1}`));
    await assertFails(parse(pdf, huge, 'huge.pdf'), /5000 pages, over the limit of 2000/);
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(parse(pdf, doc('multi-column.pdf'), 'multi-column.pdf', controller.signal), { name: 'AbortError' });
  });
});

describe('docx parser', { skip }, () => {
  const docx = new DocxParser();

  it('keeps headings as a path and tables one row per line', async () => {
    const parts = await parse(docx, await makeDocx(), 'made.docx');
    assert.deepEqual(parts.map((p) => p.metadata.headings), [['Solar system'], ['Solar system', 'Gas giants']]);
    assert.match(parts[1]!.text, /^Planet \| Moons\nJupiter \| 95\nSaturn \| 146$/m);
  });

  it('renders the corpus tables row by row', async () => {
    const parts = await parse(docx, doc('docx-tables.docx'), 'docx-tables.docx');
    assert.match(text(parts), /Header Col 1 \| Header Col 2\nLorem ipsum \| A link example/);
    assert.ok(parts.every((p) => Array.isArray(p.metadata.headings)));
    const handbook = text(await parse(docx, doc('handbook-1p.docx'), 'handbook-1p.docx'));
    assert.match(handbook, /The United States Trustee appoints and supervises standing trustees/);
  });

  it('gives clear reasons for encrypted and truncated files', async () => {
    await assertFails(parse(docx, doc('testWORD_protected_passtika.docx'), 'p.docx'), /^encrypted or legacy Office file \(OLE container\): /);
    await assertFails(parse(docx, doc('testWORD_truncated.docx'), 't.docx'), /^corrupt DOCX: /);
  });

  it('stops a zip bomb before inflating it', async () => {
    const bomb = await makeZipBomb('word/document.xml', 300);
    assert.ok(bomb.length < 1024 * 1024, `bomb is ${bomb.length} bytes`);
    await assertFails(parse(docx, bomb, 'bomb.docx'), /^zip bomb: /);
    // The same with a lying central directory on an honest, tiny file.
    const honest = Buffer.from(await makeDocx());
    const cd = honest.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    honest.writeUInt32LE(250 * 1024 * 1024, cd + 24);
    await assertFails(parse(docx, honest, 'lying.docx'), /^zip bomb: .*over .*uncompressed/);
  });

  it('stops XLSX and PPTX files that declare more than the limits', async () => {
    const lying = (name: string) => {
      const bytes = Buffer.from(doc(name));
      const cd = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
      bytes.writeUInt32LE(250 * 1024 * 1024, cd + 24);
      return bytes;
    };
    await assertFails(parse(new XlsxParser(), lying('stanley-cups.xlsx'), 'x.xlsx'), /^zip bomb: /);
    await assertFails(parse(new PptxParser(), lying('sample-presentation.pptx'), 'x.pptx'), /^zip bomb: /);
  });

  it('limits entry counts', () => {
    assert.throws(() => checkZip(doc('sample-presentation.pptx'), 'PPTX', { max_uncompressed_bytes: 1e9, max_entries: 3, max_ratio: 100, ratio_min_bytes: 1 }), /zip bomb: \d+ entries, over the limit of 3/);
  });
});

describe('pptx parser', { skip }, () => {
  const pptx = new PptxParser();

  it('gives one part per slide in order, with tables by row', async () => {
    const parts = await parse(pptx, doc('sample-presentation.pptx'), 'sample-presentation.pptx');
    assert.deepEqual(parts.map((p) => [p.metadata.slide, p.metadata.slides]), [[1, 4], [2, 4], [3, 4], [4, 4]]);
    assert.match(parts[0]!.text, /Title Slide/);
    assert.match(parts[3]!.text, /^1 \| A1 \| B1 \| C1$/m);
    const table = await parse(pptx, doc('fake-power-point-table.pptx'), 'fake-power-point-table.pptx');
    assert.match(table[0]!.text, /^Red \| Green \| Blue$/m);
  });

  it('reads the malformed deck (upstream expects its two texts)', async () => {
    const t = text(await parse(pptx, doc('fake-power-point-malformed.pptx'), 'fake-power-point-malformed.pptx'));
    assert.match(t, /Problem Date Placeholder/);
    assert.match(t, /Test Slide/);
  });

  it('appends speaker notes and flags has_notes; skips an unreadable slide, keeps the rest', async () => {
    const zip = await JSZip.loadAsync(doc('sample-presentation.pptx'));
    const a = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"';
    const sp = (type: string, t: string) => `<p:sp><p:nvSpPr><p:nvPr><p:ph type="${type}"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>${t}</a:t></a:r></a:p></p:txBody></p:sp>`;
    // The deck has empty notes pages; give slide 2's (ppt/slides/_rels/slide2.xml.rels → notesSlide2.xml) some notes.
    assert.match(await zip.file('ppt/slides/_rels/slide2.xml.rels')!.async('string'), /notesSlides\/notesSlide2\.xml/);
    zip.file('ppt/notesSlides/notesSlide2.xml', `<p:notes ${a}><p:cSld><p:spTree>${sp('sldNum', '2')}${sp('body', 'Remember to thank the audience')}</p:spTree></p:cSld></p:notes>`);
    zip.file('ppt/slides/slide3.xml', '<p:sld><unclosed');
    const parts = await parse(pptx, await zip.generateAsync({ type: 'uint8array' }), 'notes.pptx');
    const slide2 = parts.find((p) => p.metadata.slide === 2)!;
    assert.equal(slide2.metadata.has_notes, true);
    assert.match(slide2.text, /\n\nNotes:\nRemember to thank the audience$/);
    assert.doesNotMatch(slide2.text, /Notes:\n2/);
    assert.deepEqual(parts.map((p) => p.metadata.slide), [1, 2, 4]);
    assert.deepEqual(parts[0]!.metadata.skipped_slides, [3]);
  });
});

describe('xlsx parser', { skip }, () => {
  const xlsx = new XlsxParser();

  it('gives records with their headers, sheet and row numbers', async () => {
    const parts = await parse(xlsx, doc('stanley-cups.xlsx'), 'stanley-cups.xlsx');
    assert.deepEqual(parts.map((p) => [p.metadata.sheet, p.metadata.row, p.metadata.row_end]), [['Stanley Cups', 1, 5], ['Stanley Cups Since 67', 1, 5]]);
    assert.match(parts[0]!.text, /^Team: Blues; Location: STL; Stanley Cups: 1$/m);
    const squares = text(await parse(xlsx, doc('testEXCEL.xlsx'), 'testEXCEL.xlsx'));
    assert.match(squares, /^Number: 12; Square: 144$/m);
  });

  it('cuts long sheets into parts of rows_per_part rows, each with row and row_end', async () => {
    const parts = await parse(new XlsxParser({ rows_per_part: 10 }), doc('2023-half-year-analyses-by-segment.xlsx'), 'a.xlsx');
    assert.ok(parts.length > 5);
    for (const p of parts) {
      assert.equal(typeof p.metadata.sheet, 'string');
      assert.ok(Number(p.metadata.row) <= Number(p.metadata.row_end));
      assert.ok(p.text.split('\n').length <= 10);
    }
    assert.match(text(parts), /Sales \(a\): 12553/);
  });

  it('refuses a password-protected workbook with a clear reason', async () => {
    await assertFails(parse(xlsx, doc('password_protected.xlsx'), 'password_protected.xlsx'), /^encrypted or legacy Office file \(OLE container\)/);
  });
});

describe('csv parser', { skip }, () => {
  const csv = new CsvParser();

  it('detects semicolons and carries headers into every record', async () => {
    const parts = await parse(csv, Buffer.from('city;country;people\nLyon;France;522000\n"Köln; Stadt";Germany;1084000\n'), 'cities.csv');
    assert.deepEqual(parts, [{ text: 'city: Lyon; country: France; people: 522000\ncity: Köln; Stadt; country: Germany; people: 1084000', metadata: { row: 2, row_end: 3 } }]);
    assert.match(text(await parse(csv, doc('semicolon-delimited.csv'), 'semicolon-delimited.csv')), /Lorem, ipsum: Ut enim; dolor sit: ad minim/);
  });

  it('decodes a UTF-16 CSV like its UTF-8 twin', async () => {
    assert.deepEqual(await parse(csv, doc('stanley-cups-utf-16.csv'), 'a.csv'), await parse(csv, doc('stanley-cups.csv'), 'b.csv'));
  });

  it('reads tabs in .tsv files', async () => {
    const parts = await parse(csv, Buffer.from('a\tb\n1\t2\n'), 'x.tsv');
    assert.equal(parts[0]!.text, 'a: 1; b: 2');
  });
});

describe('eml parser', { skip }, () => {
  const eml = new EmlParser();

  it('puts the headers in metadata and the plain body in the text', async () => {
    const parts = await parse(eml, doc('family-day.eml'), 'family-day.eml');
    assert.equal(parts.length, 1);
    assert.deepEqual(
      { from: parts[0]!.metadata.from, subject: parts[0]!.metadata.subject, date: parts[0]!.metadata.date },
      { from: '"Mallori Harrell" <mallori@unstructured.io>', subject: 'Family Day', date: '2022-12-21T16:28:53.000Z' },
    );
    assert.match(String(parts[0]!.metadata.message_id), /^<CAPgNNX/);
    assert.match(parts[0]!.text, /face painting, a petting zoo, funnel cake/);
  });

  it('keeps the plain alternative when it differs from the HTML one', async () => {
    const t = text(await parse(eml, doc('mime-different-plain-html.eml'), 'm.eml'));
    assert.match(t, /This is the text\/plain part/);
    assert.doesNotMatch(t, /text\/html part/);
  });

  it('uses the HTML as text when there is no plain part', async () => {
    const raw = 'From: a@example.com\r\nTo: b@example.com\r\nSubject: html only\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><h1>Agenda</h1><p>Quarterly <b>roadmap</b> review</p><script>x()</script></body></html>\r\n';
    const parts = await parse(eml, Buffer.from(raw), 'h.eml');
    // (the HTML parser sets headings in capitals)
    assert.match(parts[0]!.text, /Agenda\n\nQuarterly roadmap review$/i);
    assert.equal(parts[0]!.metadata.date, '2023-01-02T10:00:00.000Z');
  });

  it('parses attachments by type and notes the ones that fail without failing the message', async () => {
    const parts = await parse(eml, doc('fake-email-attachment.eml'), 'a.eml');
    const att = parts.find((p) => p.metadata.attachment === 'fake-attachment.txt');
    assert.equal(att?.text, 'Hey this is a fake attachment!');
    assert.equal(att?.metadata.subject, 'Fake email with attachment');

    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64').replace(/.{76}/g, '$&\r\n');
    const attach = (name: string, type: string, bytes: Uint8Array) =>
      `--XX\r\nContent-Type: ${type}; name="${name}"\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(bytes)}\r\n`;
    const raw = [
      'From: a@example.com\r\nTo: b@example.com\r\nSubject: reports\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n',
      '--XX\r\nContent-Type: text/plain\r\n\r\nSee the attached files.\r\n',
      attach('report.pdf', 'application/pdf', makePdf(['Attached pdf quarterly figures'])),
      attach('broken.docx', 'application/octet-stream', Buffer.from('not a zip at all')),
      attach('notes.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', await makeDocx()),
      '--XX--\r\n',
    ].join('');
    const mail = await parse(eml, Buffer.from(raw), 'r.eml');
    assert.match(mail[0]!.text, /See the attached files/);
    const pdfPart = mail.find((p) => p.metadata.attachment === 'report.pdf');
    assert.equal(pdfPart?.text, 'Attached pdf quarterly figures');
    assert.equal(pdfPart?.metadata.page, 1);
    assert.deepEqual(mail.find((p) => p.metadata.attachment === 'notes.docx')?.metadata.headings, ['Solar system']);
    assert.match(String((mail[0]!.metadata.attachment_errors as string[])[0]), /^broken\.docx: corrupt DOCX: not a ZIP archive/);
  });
});

describe('json parser', () => {
  const json = new JsonParser();

  it('gives one part per JSON Lines record with its line number', async () => {
    const parts = await parse(json, Buffer.from('{"id":1,"user":{"name":"Ada"}}\n\n{"id":2,"tags":["x","y"]}\nnot json\n'), 'log.jsonl');
    assert.deepEqual(parts, [
      { text: 'id: 1\nuser.name: Ada', metadata: { line: 1 } },
      { text: 'id: 2\ntags: x, y', metadata: { line: 3 } },
      { text: 'not json', metadata: { line: 4, invalid: true } },
    ]);
  });

  it('flattens objects into path: value lines and arrays of objects into one part per element', async () => {
    assert.deepEqual(await parse(json, Buffer.from('{"a":{"b":[1,{"c":"deep"}]},"d":true}'), 'x.json'), [{ text: 'a.b[0]: 1\na.b[1].c: deep\nd: true', metadata: {} }]);
    assert.deepEqual(await parse(json, Buffer.from('[{"name":"x"},{"name":"y"}]'), 'x.json'), [
      { text: 'name: x', metadata: { index: 0 } },
      { text: 'name: y', metadata: { index: 1 } },
    ]);
  });

  it('keeps invalid JSON as plain text instead of failing', async () => {
    assert.deepEqual(await parse(json, Buffer.from('{"a": 1,, oops'), 'x.json'), [{ text: '{"a": 1,, oops', metadata: { json_invalid: true } }]);
  });
});

describe('parser registration', () => {
  it('lists dedicated formats before text, which no longer claims .json or .csv', async () => {
    const names = parserPlugins.map((p) => p.name);
    assert.ok(names.indexOf('text') === names.length - 1, names.join(','));
    const text = await parserPlugins.find((p) => p.name === 'text')!.create({ extensions: undefined } as never, { logger: console, dataDir: '' } as never);
    for (const ext of ['.json', '.jsonl', '.ndjson', '.csv']) assert.ok(!text.extensions.includes(ext), ext);
  });
});
