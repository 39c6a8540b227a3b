/** The `unstructured` parser against a fake of the partition API: elements to parts, key errors, transient errors retried. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CallError } from '../../src/core/calls.js';
import { LivedexError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import type { Logger, Parser } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';
import { startFakeUnstructured, type FakeElement, type FakeUnstructured } from '../helpers/fake-unstructured.js';
import { post, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';
import { makePdf } from '../helpers/pdf.js';

const KEY = 'uk-test-4f1c9a';
const WRONG_KEY = 'uk-wrong-77aa01';

/** What the fake answers for `manual.pdf`: two sections, two pages, a table, a title with nothing under it. */
const MANUAL: FakeElement[] = [
  { type: 'Title', text: 'Pump Manual', element_id: 't-manual', metadata: { page_number: 1, category_depth: 0 } },
  { type: 'Title', text: 'Installation', element_id: 't-install', metadata: { page_number: 1, category_depth: 1, parent_id: 't-manual' } },
  { type: 'NarrativeText', text: 'Bolt the impeller housing to a level concrete plinth.', metadata: { page_number: 1, parent_id: 't-install' } },
  { type: 'NarrativeText', text: 'Prime the volute with water before the first start.', metadata: { page_number: 1, parent_id: 't-install' } },
  { type: 'ListItem', text: 'Check the rotation arrow.', metadata: { page_number: 1, parent_id: 't-install' } },
  { type: 'PageBreak', text: '', metadata: { page_number: 1 } },
  { type: 'NarrativeText', text: 'Tighten the gland packing a quarter turn at a time.', metadata: { page_number: 2, parent_id: 't-install' } },
  { type: 'Table', text: 'Model Flow P-100 40 m3/h', metadata: { page_number: 2, parent_id: 't-install', text_as_html: '<table><tr><td>Model</td><td>Flow</td></tr></table>' } },
  { type: 'Title', text: 'Warranty', element_id: 't-warranty', metadata: { page_number: 3, category_depth: 0 } },
  { type: 'NarrativeText', text: 'Seals are covered for two years of service.', metadata: { page_number: 3, parent_id: 't-warranty' } },
  { type: 'Title', text: 'Index', element_id: 't-index', metadata: { page_number: 3, category_depth: 0 } },
];

const elementsFor = (file: { name: string }) => (file.name === 'manual.pdf' ? MANUAL : [{ type: 'NarrativeText', text: `contents of ${file.name}`, metadata: { page_number: 1 } }]);

async function unstructured(options: Record<string, unknown>): Promise<Parser> {
  return builtinRegistry().create('parser', 'unstructured', options, { logger: silentLogger, dataDir: '/nonexistent' });
}

const pdfInput = (bytes: Uint8Array) => ({ key: '/docs/manual.pdf', bytes, extension: '.pdf', metadata: {} });

describe('unstructured parser', () => {
  let fake: FakeUnstructured;
  before(async () => {
    fake = await startFakeUnstructured({ apiKey: KEY, elements: elementsFor });
  });
  after(() => fake.close());

  it('sends the file with the key and strategy, and maps elements to parts with page, category and headings', async () => {
    fake.requests.length = 0;
    const parser = await unstructured({ url: fake.url, api_key: KEY, strategy: 'fast', extensions: ['.pdf'], languages: ['eng'] });
    assert.deepEqual(parser.extensions, ['.pdf']);
    const bytes = makePdf(['page one', 'page two']);
    const size = bytes.byteLength;
    const parts = await parser.parse(pdfInput(bytes));

    assert.equal(fake.requests.length, 1);
    const [request] = fake.requests;
    assert.equal(request!.keyAccepted, true);
    assert.equal(request!.fileName, 'manual.pdf');
    assert.equal(request!.size, size);
    assert.deepEqual(request!.fields.strategy, ['fast']);
    assert.deepEqual(request!.fields.split_pdf_page, ['false']);
    assert.ok(JSON.stringify(request!.fields).includes('eng'), `languages sent: ${JSON.stringify(request!.fields)}`);

    const install = ['Pump Manual', 'Installation'];
    assert.deepEqual(parts, [
      { text: 'Bolt the impeller housing to a level concrete plinth.\n\nPrime the volute with water before the first start.', metadata: { page: 1, category: 'NarrativeText', headings: install, languages: ['eng'] } },
      { text: 'Check the rotation arrow.', metadata: { page: 1, category: 'ListItem', headings: install, languages: ['eng'] } },
      { text: 'Tighten the gland packing a quarter turn at a time.', metadata: { page: 2, category: 'NarrativeText', headings: install, languages: ['eng'] } },
      { text: 'Model Flow P-100 40 m3/h', metadata: { page: 2, category: 'Table', headings: install, languages: ['eng'] } },
      { text: 'Seals are covered for two years of service.', metadata: { page: 3, category: 'NarrativeText', headings: ['Warranty'], languages: ['eng'] } },
      { text: 'Index', metadata: { page: 3, category: 'Title', languages: ['eng'] } },
    ]);
  });

  it('takes the URL and key from UNSTRUCTURED_API_URL and UNSTRUCTURED_API_KEY when the options give none', async () => {
    fake.requests.length = 0;
    const saved = { url: process.env.UNSTRUCTURED_API_URL, key: process.env.UNSTRUCTURED_API_KEY };
    process.env.UNSTRUCTURED_API_URL = fake.url;
    process.env.UNSTRUCTURED_API_KEY = KEY;
    try {
      const parser = await unstructured({});
      assert.ok(parser.extensions.includes('.pdf') && parser.extensions.includes('.docx'));
      const parts = await parser.parse({ key: 'memo.docx', bytes: new Uint8Array([1, 2, 3]), extension: '.docx', metadata: {} });
      assert.equal(parts[0]?.text, 'contents of memo.docx');
      assert.equal(fake.requests.length, 1);
      assert.equal(fake.requests[0]!.keyAccepted, true);
      assert.deepEqual(fake.requests[0]!.fields.strategy, ['auto']);
    } finally {
      for (const [name, value] of [['UNSTRUCTURED_API_URL', saved.url], ['UNSTRUCTURED_API_KEY', saved.key]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('fails a refused key at once, naming the option and never the key', async () => {
    fake.requests.length = 0;
    const parser = await unstructured({ url: fake.url, api_key: WRONG_KEY, max_attempts: 3 });
    const err = await parser.parse(pdfInput(makePdf(['x']))).then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CallError, String(err));
    assert.equal(err.transient, false);
    assert.equal(err.kind, 'auth');
    assert.match(err.message, /refused the key \(HTTP 401\): set parsers\.unstructured\.api_key \(or UNSTRUCTURED_API_KEY\)/);
    assert.ok(!err.message.includes(WRONG_KEY));
    assert.equal(fake.requests.length, 1, 'a refused key is not retried');
  });

  it('retries a 500 within the call and succeeds on the next attempt', async () => {
    fake.requests.length = 0;
    fake.faults.push({ status: 500 });
    const parser = await unstructured({ url: fake.url, api_key: KEY, max_attempts: 2, retry_base_ms: 10, retry_max_ms: 20 });
    const parts = await parser.parse(pdfInput(makePdf(['x'])));
    assert.equal(parts.length, 6);
    assert.deepEqual(fake.requests.map((r) => r.status), [500, 200]);
  });

  it('gives up on 429s and 5xx with a transient error once the attempts are spent', async () => {
    fake.requests.length = 0;
    fake.faults.push({ status: 429, retryAfter: '0' }, { status: 503 });
    const parser = await unstructured({ url: fake.url, api_key: KEY, max_attempts: 2, retry_base_ms: 10, retry_max_ms: 20 });
    const err = await parser.parse(pdfInput(makePdf(['x']))).then(() => assert.fail('expected a rejection'), (e: unknown) => e);
    assert.ok(err instanceof CallError);
    assert.equal(err.transient, true);
    assert.match(err.message, /gave up after 2 attempts: HTTP 503: Internal Server Error|gave up after 2 attempts: HTTP 503/);
    assert.deepEqual(fake.requests.map((r) => r.status), [429, 503]);
  });

  it('turns a request that gets no answer in time into a transient timeout', async () => {
    fake.requests.length = 0;
    fake.faults.push({ hang: true }, { hang: true });
    const parser = await unstructured({ url: fake.url, api_key: KEY, timeout_ms: 200, max_attempts: 2, retry_base_ms: 10, retry_max_ms: 20 });
    const err = await parser.parse(pdfInput(makePdf(['x']))).then(() => assert.fail('expected a rejection'), (e: unknown) => e);
    assert.ok(err instanceof CallError);
    assert.equal(err.transient, true);
    assert.equal(err.kind, 'timeout');
    assert.match(err.message, /gave up after 2 attempts: no answer within 200 ms/);
    assert.equal(fake.requests.length, 2);
  });

  it('rejects options that cannot work, naming the option', async () => {
    await assert.rejects(unstructured({ url: 'localhost:8000' }), (e: unknown) => e instanceof LivedexError && /parser\.unstructured\.url/.test(e.message));
    await assert.rejects(unstructured({ strategy: 'fastest' }), /parser\.unstructured\.strategy/);
    await assert.rejects(unstructured({ extensions: [] }), /parser\.unstructured\.extensions/);
  });
});

describe('unstructured parser in a served folder (parse sandbox on)', () => {
  let fake: FakeUnstructured;
  before(async () => {
    fake = await startFakeUnstructured({ apiKey: KEY, elements: elementsFor });
  });
  after(() => fake.close());

  async function serveFolder(options: Record<string, unknown>, pipeline: Record<string, unknown> = {}, logger: Logger = silentLogger) {
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'manual.pdf'), makePdf(['The local PDF parser would read this text layer.']));
    await writeFile(join(folder.path, 'notes.md'), '# Notes\n\nThe workshop opens at eight.\n');
    const server = await startServer(folder.path, {
      dataDir: data.path,
      logger,
      config: { parsers: ['markdown', { unstructured: { url: fake.url, extensions: ['.pdf'], strategy: 'fast', ...options } }], pipeline },
    });
    return {
      server,
      folder,
      async close() {
        await server.close();
        await folder.cleanup();
        await data.cleanup();
      },
    };
  }

  const statusOf = async (server: TestServer, name: string) => {
    const listed = (await post<Array<Record<string, unknown>>>(server.url, '/v2/list_documents', { return_status: true })).body;
    return listed.find((d) => String(d.path).endsWith(`/${name}`));
  };

  it('indexes the elements: a query finds the PDF with page, category and headings', async () => {
    fake.requests.length = 0;
    const run = await serveFolder({ api_key: KEY });
    try {
      await run.server.ready;
      const hits = await retrieve(run.server.url, { query: 'gland packing quarter turn', k: 3 });
      const top = hits[0]!;
      assert.ok(String(top.metadata.path).endsWith('/manual.pdf'));
      assert.match(top.text, /gland packing/);
      assert.equal(top.metadata.page, 2);
      assert.equal(top.metadata.category, 'NarrativeText');
      assert.deepEqual(top.metadata.headings, ['Pump Manual', 'Installation']);
      // The text layer of the file was not read locally: only the API's elements are indexed.
      assert.equal((await retrieve(run.server.url, { query: 'local PDF parser text layer', k: 5, mode: 'bm25' })).filter((h) => String(h.metadata.path).endsWith('/manual.pdf')).length, 0);
      assert.equal((await statusOf(run.server, 'notes.md'))?._indexing_status, 'INDEXED');
      assert.equal(fake.requests.length, 1, 'one request for the one PDF; markdown stays local');
      assert.equal(fake.requests[0]!.keyAccepted, true);
    } finally {
      await run.close();
    }
  });

  it('marks the document failed on a 401, naming the key option and not the key', async () => {
    fake.requests.length = 0;
    const run = await serveFolder({ api_key: WRONG_KEY });
    try {
      await run.server.ready;
      const doc = await statusOf(run.server, 'manual.pdf');
      assert.equal(doc?._indexing_status, 'FAILED');
      assert.match(String(doc?._indexing_error), /refused the key \(HTTP 401\): set parsers\.unstructured\.api_key \(or UNSTRUCTURED_API_KEY\)/);
      assert.ok(!JSON.stringify(doc).includes(WRONG_KEY));
      assert.equal((await statusOf(run.server, 'notes.md'))?._indexing_status, 'INDEXED');
      assert.equal(fake.requests.length, 1);
    } finally {
      await run.close();
    }
  });

  it('keeps the document pending on a 500 and indexes it on the retry: exactly two requests', async () => {
    fake.requests.length = 0;
    fake.faults.push({ status: 500 });
    const heldBack: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (msg, fields) => void (msg === 'document held back' && heldBack.push(String(fields?.error))) };
    const run = await serveFolder({ api_key: KEY, max_attempts: 1 }, { retry_base_ms: 300 }, logger);
    try {
      await run.server.ready;
      await waitFor(async () => (await statusOf(run.server, 'manual.pdf'))?._indexing_status === 'INDEXED', 30_000);
      assert.equal(heldBack.length, 1);
      assert.match(heldBack[0]!, /^unstructured partition at http:\/\/127\.0\.0\.1:\d+ gave up after 1 attempt: HTTP 500: Internal Server Error; the document stays pending and is tried again later \(trying again in 0 s\)$/);
      assert.deepEqual(fake.requests.map((r) => r.status), [500, 200]);
      const hits = await retrieve(run.server.url, { query: 'impeller housing concrete plinth', k: 1 });
      assert.equal(hits[0]?.metadata.page, 1);
    } finally {
      await run.close();
    }
  });
});
