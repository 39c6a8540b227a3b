/** Splitters chosen per parser, through a real server over a folder: heading paths, page ranges, config overrides. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import JSZip from 'jszip';
import { LivedexError } from '../../src/core/errors.js';
import { makePdf } from '../helpers/pdf.js';
import { retrieve, startServer, tempDir, type TestServer, type WireHit } from '../helpers/livedex.js';

const GUIDE = [
  '# Guide', 'The aurora handbook starts here.',
  '## Install', '### Linux', 'Install with the zephyrpkg tool on Linux machines.', '### macOS', 'Install with brewmaster on macOS machines.',
  '## Usage', 'Run the quasarctl command to start.',
].join('\n\n');

/** A DOCX with Heading 1/2 paragraphs and a table (the parts mammoth reads, written with jszip). */
async function manualDocx(): Promise<Buffer> {
  const zip = new JSZip();
  const rels = (body: string) => `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">${body}</Relationships>`;
  const ns = 'http://schemas.openxmlformats.org/wordprocessingml/2006/main';
  zip.file('[Content_Types].xml', '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/></Types>');
  zip.file('_rels/.rels', rels('<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'));
  zip.file('word/_rels/document.xml.rels', rels('<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'));
  const style = (level: number) => `<w:style w:type="paragraph" w:styleId="Heading${level}"><w:name w:val="heading ${level}"/></w:style>`;
  zip.file('word/styles.xml', `<?xml version="1.0" encoding="UTF-8"?><w:styles xmlns:w="${ns}">${style(1)}${style(2)}</w:styles>`);
  const p = (text: string, level?: number) => `<w:p>${level ? `<w:pPr><w:pStyle w:val="Heading${level}"/></w:pPr>` : ''}<w:r><w:t>${text}</w:t></w:r></w:p>`;
  const row = (...cells: string[]) => `<w:tr>${cells.map((c) => `<w:tc>${p(c)}</w:tc>`).join('')}</w:tr>`;
  const body = [
    p('Manual', 1), p('How the machine is run.'),
    p('Safety', 2), p('Wear marigold goggles at all times.'),
    p('Parts', 2), `<w:tbl>${row('Part', 'Stock')}${row('Sprocket', '12')}${row('Gimbal', '7')}</w:tbl>`,
  ].join('');
  zip.file('word/document.xml', `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="${ns}"><w:body>${body}</w:body></w:document>`);
  return zip.generateAsync({ type: 'nodebuffer' });
}

/** Four pages: two small ones, a long one (over a chunk), a small appendix. */
function reportPdf(): Buffer {
  const long = Array.from({ length: 45 }, (_, i) => `Line ${i} of the findings about harbor tides and pelican counts season ${i}.`).join('\n');
  return makePdf(['Cover of the report with a walrus.', 'Contents page listing a narwhal.', long, 'Appendix about the ocelot.']);
}

/** A text with many sentences in one paragraph: the token and recursive splitters cut it differently. */
const NOTES = Array.from({ length: 60 }, (_, i) => `Observation ${i} notes the lighthouse keeper counted ${i * 3} gulls`).join(' ') + '.';

const top = async (server: TestServer, query: string, extra: Record<string, unknown> = {}): Promise<WireHit> => {
  const hits = await retrieve(server.url, { query, k: 1, mode: 'bm25', ...extra });
  assert.ok(hits[0], `a hit for "${query}"`);
  return hits[0];
};

/** Chunks of notes.txt, as found by a query every chunk matches. */
const noteChunks = async (server: TestServer): Promise<string[]> =>
  (await retrieve(server.url, { query: 'observation lighthouse keeper gulls', k: 100, mode: 'bm25', filepath_globpattern: '**/notes.txt' })).map((h) => h.text);

/** True when some chunk starts with words that another chunk has too (overlap); any 6 words in a row hold a unique number. */
function overlapping(chunks: string[]): boolean {
  return chunks.some((b) => chunks.some((a) => a !== b && a.includes(b.split(' ').slice(0, 6).join(' '))));
}

describe('splitters chosen per parser, end to end', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  const datas: { path: string; cleanup(): Promise<void> }[] = [];
  const servers: TestServer[] = [];
  const start = async (config?: Record<string, unknown>) => {
    const data = await tempDir();
    datas.push(data);
    const server = await startServer(folder.path, { dataDir: data.path, ...(config ? { config } : {}) });
    servers.push(server);
    await server.ready;
    return server;
  };

  before(async () => {
    folder = await tempDir('livedex-splitters-');
    await writeFile(join(folder.path, 'guide.md'), GUIDE);
    await writeFile(join(folder.path, 'manual.docx'), await manualDocx());
    await writeFile(join(folder.path, 'report.pdf'), reportPdf());
    await writeFile(join(folder.path, 'notes.txt'), NOTES);
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const d of datas) await d.cleanup();
    await folder?.cleanup();
  });

  it('by default, Markdown and DOCX hits carry their heading path and PDF hits their pages', async () => {
    const server = await start();
    assert.deepEqual((await top(server, 'zephyrpkg')).metadata.headings, ['Guide', 'Install', 'Linux']);
    assert.deepEqual((await top(server, 'brewmaster')).metadata.headings, ['Guide', 'Install', 'macOS']);
    assert.deepEqual((await top(server, 'quasarctl')).metadata.headings, ['Guide', 'Usage']);
    assert.deepEqual((await top(server, 'aurora handbook')).metadata.headings, ['Guide']);
    assert.deepEqual((await top(server, 'marigold goggles')).metadata.headings, ['Manual', 'Safety']);
    const table = await top(server, 'sprocket gimbal');
    assert.deepEqual(table.metadata.headings, ['Manual', 'Parts']);
    assert.match(table.text, /Sprocket \| 12\nGimbal \| 7/);

    // The two small pages are one chunk that says it spans them; the long page is cut on its own.
    const cover = await top(server, 'walrus');
    assert.equal(cover.metadata.page, 1);
    assert.equal(cover.metadata.page_end, 2);
    assert.match(cover.text, /narwhal/);
    const findings = await retrieve(server.url, { query: 'harbor tides pelican', k: 20, mode: 'bm25', filepath_globpattern: '**/report.pdf' });
    assert.ok(findings.length >= 2, 'the long page gives several chunks');
    for (const h of findings) {
      assert.equal(h.metadata.page, 3);
      assert.equal(h.metadata.pages, 4);
      assert.ok(!('page_end' in h.metadata));
    }
    const appendix = await top(server, 'ocelot');
    assert.equal(appendix.metadata.page, 4);
    assert.ok(!('page_end' in appendix.metadata));

    // Plain text goes to the default splitter (token, no overlap).
    const notes = await noteChunks(server);
    assert.ok(notes.length >= 2);
    assert.equal(overlapping(notes), false);
  });

  it('honours `splitter: recursive` from the config, and a `splitters` entry for one parser over it', async () => {
    const server = await start({ splitter: { recursive: { chunk_size: 60, chunk_overlap: 20 } }, splitters: { markdown: 'structure' } });
    const notes = await noteChunks(server);
    assert.ok(notes.length >= 4);
    assert.ok(overlapping(notes), 'LangChain repeats the end of each chunk');
    // Every parser uses it: the PDF's pages are split one by one, never merged.
    const cover = await top(server, 'walrus');
    assert.equal(cover.metadata.page, 1);
    assert.ok(!('page_end' in cover.metadata));
    assert.doesNotMatch(cover.text, /narwhal/);
    // Part metadata survives any splitter.
    assert.deepEqual((await top(server, 'marigold goggles')).metadata.headings, ['Manual', 'Safety']);
    assert.deepEqual((await top(server, 'zephyrpkg')).metadata.headings, ['Guide', 'Install', 'Linux']);
  });

  it('refuses a `splitters` entry that names no parser, naming the key', async () => {
    const data = await tempDir();
    datas.push(data);
    await assert.rejects(startServer(folder.path, { dataDir: data.path, config: { splitters: { pfd: 'structure' } } }), (err: unknown) => {
      assert.ok(err instanceof LivedexError && err.code === 'config_error', String(err));
      assert.match(err.message, /^splitters\.pfd: no parser is named "pfd"/);
      return true;
    });
  });
});
