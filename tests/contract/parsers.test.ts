/**
 * The parser contract, run against every parser in `builtinRegistry()`: what the pipeline and
 * the parse workers rely on from any parser, built in or third party. A parser added to the
 * registry without a sample here fails the first spec, so none goes unchecked.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ExcelJS from 'exceljs';
import { LivedexError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { pluginsIn } from '../../src/core/registry.js';
import type { ParsedPart, Parser } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';
import { startFakeUnstructured, type FakeUnstructured } from '../helpers/fake-unstructured.js';
import { tempDir } from '../helpers/livedex.js';
import { makeMsg } from '../helpers/msg.js';
import { makeDocx } from '../helpers/office.js';
import { makePdf } from '../helpers/pdf.js';

const DOCS = fileURLToPath(new URL('../../../shared/data/docs/', import.meta.url));
const PHRASE = 'harbour lighthouse keeper';

interface Sample {
  extension: string;
  bytes: () => Promise<Uint8Array> | Uint8Array;
  /** Words the parsed text must hold. */
  phrase: string;
  /** The plugin's options (default: none). */
  options?: () => Record<string, unknown>;
  /** Read from the shared corpus (skipped where it is absent). */
  fromCorpus?: true;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

async function xlsx(): Promise<Uint8Array> {
  const book = new ExcelJS.Workbook();
  const sheet = book.addWorksheet('Keepers');
  sheet.addRow(['name', 'post']);
  sheet.addRow(['Ada', PHRASE]);
  return new Uint8Array(await book.xlsx.writeBuffer());
}

let unstructured: FakeUnstructured | undefined;

/** One valid document per parser, made here (the shared corpus only where no builder exists). */
const SAMPLES: Record<string, Sample> = {
  pdf: { extension: '.pdf', bytes: () => makePdf([`The ${PHRASE} wrote a log.`]), phrase: PHRASE },
  docx: { extension: '.docx', bytes: () => makeDocx(`Notes\nThe ${PHRASE} wrote a log.`), phrase: PHRASE },
  pptx: { extension: '.pptx', bytes: () => readFileSync(DOCS + 'sample-presentation.pptx'), phrase: 'first content slide', fromCorpus: true },
  xlsx: { extension: '.xlsx', bytes: xlsx, phrase: PHRASE },
  csv: { extension: '.csv', bytes: () => utf8(`name,post\nAda,${PHRASE}\n`), phrase: PHRASE },
  eml: {
    extension: '.eml',
    bytes: () => utf8(`From: Ada <ada@example.com>\r\nTo: Bo <bo@example.com>\r\nSubject: Night shift\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe ${PHRASE} wrote a log.\r\n`),
    phrase: PHRASE,
  },
  msg: { extension: '.msg', bytes: () => makeMsg({ subject: 'Night shift', from: { name: 'Ada', email: 'ada@example.com' }, body: `The ${PHRASE} wrote a log.` }), phrase: PHRASE },
  json: { extension: '.json', bytes: () => utf8(JSON.stringify({ post: PHRASE, shifts: [1, 2] })), phrase: PHRASE },
  markdown: { extension: '.md', bytes: () => utf8(`# Night shift\n\nThe ${PHRASE} wrote a log.\n`), phrase: PHRASE },
  html: { extension: '.html', bytes: () => utf8(`<!doctype html><title>Night</title><h1>Night shift</h1><p>The ${PHRASE} wrote a log.</p>`), phrase: PHRASE },
  text: { extension: '.txt', bytes: () => utf8(`The ${PHRASE} wrote a log.\n`), phrase: PHRASE },
  unstructured: {
    extension: '.txt',
    bytes: () => utf8(`The ${PHRASE} wrote a log.\n`),
    phrase: PHRASE,
    options: () => ({ url: unstructured!.url, api_key: 'contract-key', strategy: 'fast' }),
  },
};

const registry = builtinRegistry();
const definitions = registry.list('parser');
const corpus = existsSync(DOCS);

describe('the parser contract', () => {
  let data: { path: string; cleanup(): Promise<void> };
  before(async () => {
    data = await tempDir();
    unstructured = await startFakeUnstructured({
      apiKey: 'contract-key',
      elements: (file) => [{ type: 'NarrativeText', text: new TextDecoder().decode(file.bytes).trim(), metadata: { page_number: 1 } }],
    });
  });
  after(async () => {
    await unstructured?.close();
    await data.cleanup();
  });

  it('has a sample for every registered parser', () => {
    assert.deepEqual(definitions.map((d) => d.name).filter((name) => !SAMPLES[name]), []);
  });

  it('gives every extension to one default parser at most', () => {
    const owners = new Map<string, string[]>();
    for (const def of definitions.filter((d) => !d.optIn)) {
      const parser = SAMPLES[def.name];
      if (parser) owners.set(parser.extension, [...(owners.get(parser.extension) ?? []), def.name]);
    }
    assert.deepEqual([...owners].filter(([, names]) => names.length > 1), []);
  });

  for (const def of definitions) {
    const sample = SAMPLES[def.name];
    describe(`parser "${def.name}"`, { skip: !sample ? 'no sample' : sample.fromCorpus && !corpus ? `the shared corpus is not at ${DOCS}` : false }, () => {
      let parser: Parser;
      let bytes: Uint8Array;
      const parse = (input: Uint8Array, metadata: Record<string, unknown> = {}): Promise<ParsedPart[]> =>
        parser.parse({ key: `sample${sample!.extension}`, bytes: input, extension: sample!.extension, metadata });

      before(async () => {
        parser = await registry.create('parser', def.name, sample!.options?.() ?? {}, { logger: silentLogger, dataDir: data.path });
        bytes = await sample!.bytes();
      });

      it('is named as registered and claims lower-case extensions with their dot', () => {
        assert.equal(parser.name, def.name);
        assert.ok(parser.extensions.length > 0);
        for (const ext of parser.extensions) assert.match(ext, /^\.[a-z0-9]+$/);
        if (!def.optIn) assert.ok(parser.extensions.includes(sample!.extension), `${def.name} claims ${sample!.extension}`);
      });

      it('names a registered splitter when it names one', () => {
        if (parser.splitter !== undefined) assert.ok(registry.list('splitter').some((s) => s.name === parser.splitter), parser.splitter);
      });

      it('is importable alone from its module, so a parse worker loads only it', async () => {
        assert.ok(def.module, 'module is set');
        const found = pluginsIn((await import(def.module)) as Record<string, unknown>);
        assert.ok(found.some((d) => d.kind === 'parser' && d.name === def.name));
      });

      it('reads its sample into parts of text and JSON metadata holding the words', async () => {
        const parts = await parse(bytes);
        assert.ok(parts.length > 0);
        for (const part of parts) {
          assert.equal(typeof part.text, 'string');
          assert.equal(typeof part.metadata, 'object');
          assert.deepEqual(JSON.parse(JSON.stringify(part.metadata)), part.metadata, 'metadata survives JSON (the store keeps it as JSON)');
        }
        assert.match(parts.map((p) => p.text).join('\n').replace(/\s+/g, ' '), new RegExp(sample!.phrase));
      });

      it('gives the same parts twice, and leaves the input metadata alone', async () => {
        const metadata = Object.freeze({ team: 'night' });
        assert.deepEqual(await parse(bytes, metadata), await parse(bytes, metadata));
        assert.deepEqual(metadata, { team: 'night' });
      });

      it('reports damaged input as parse_failed, or reads what it can', async () => {
        const damaged = [bytes.subarray(0, Math.floor(bytes.length / 2)), new Uint8Array([0xff, 0xfe, 0x00, 0x13, 0x37, 0x80, 0x81, 0x00]), new Uint8Array(0)];
        for (const input of damaged) {
          try {
            const parts = await parse(input);
            for (const part of parts) assert.equal(typeof part.text, 'string');
          } catch (err) {
            assert.ok(err instanceof LivedexError, `${input.length} bytes: expected a LivedexError, got ${String(err)}`);
            assert.equal(err.code, 'parse_failed', `${input.length} bytes: ${err.message}`);
          }
        }
      });
    });
  }
});
