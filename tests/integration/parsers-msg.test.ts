/** The Outlook `.msg` parser: headers as metadata, the body, attachments parsed recursively; corrupt files fail with a reason. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import CFB from 'cfb';
import { LivedexError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import type { AttachmentParsers, ParsedPart, Parser } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';
import { EmlParser } from '../../src/parsers/eml.js';
import { MsgParser } from '../../src/parsers/msg.js';
import { post, retrieve, startServer, tempDir, type TestServer } from '../helpers/livedex.js';
import { makeMsg, type MsgSpec } from '../helpers/msg.js';
import { makePdf } from '../helpers/pdf.js';

const ADA = { name: 'Ada Lovelace', email: 'ada@example.org' };
const CHARLES = { name: 'Charles Babbage', email: 'charles@example.org' };
const MARY = { name: 'Mary Somerville', email: 'mary@example.org' };
const SENT = new Date('2024-03-05T09:30:00.000Z');

/** What the pipeline hands a parser: the configured parsers (here every built-in one, with its defaults) for its attachments. */
async function builtinParsers(): Promise<AttachmentParsers> {
  const registry = builtinRegistry();
  const byExtension = new Map<string, Parser>();
  for (const def of registry.list('parser').filter((d) => !d.optIn)) {
    const parser = await registry.create('parser', def.name, {}, { logger: silentLogger, dataDir: '.' });
    for (const ext of parser.extensions) if (!byExtension.has(ext)) byExtension.set(ext, parser);
  }
  return (extension) => {
    const parser = byExtension.get(extension);
    return parser && ((input) => parser.parse(input));
  };
}
const host = await builtinParsers();

const parse = (bytes: Uint8Array, parser = new MsgParser()): Promise<ParsedPart[]> => parser.parse({ key: 'mail.msg', bytes, extension: '.msg', metadata: {}, parseAttachment: host });

async function failure(promise: Promise<unknown>): Promise<LivedexError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof LivedexError, `a LivedexError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('msg parser', () => {
  it('carries from, to, cc, subject, date and message_id, and reads the plain body', async () => {
    const parts = await parse(makeMsg({
      subject: 'Engine trials',
      from: ADA,
      to: [CHARLES],
      cc: [MARY],
      date: SENT,
      messageId: '<trial-1@example.org>',
      body: 'The analytical engine weaves algebraic patterns\r\njust as the Jacquard loom weaves flowers.',
      html: '<p>ignored when a plain body exists</p>',
    }));
    assert.equal(parts.length, 1);
    assert.deepEqual(parts[0]!.metadata, {
      from: 'Ada Lovelace <ada@example.org>',
      to: 'Charles Babbage <charles@example.org>',
      cc: 'Mary Somerville <mary@example.org>',
      subject: 'Engine trials',
      date: '2024-03-05T09:30:00.000Z',
      message_id: '<trial-1@example.org>',
    });
    assert.match(parts[0]!.text, /^From: Ada Lovelace <ada@example.org>\nTo: Charles Babbage <charles@example.org>\nCc: Mary Somerville <mary@example.org>\nSubject: Engine trials\n\n/);
    assert.match(parts[0]!.text, /weaves algebraic patterns\njust as the Jacquard loom/);
    assert.doesNotMatch(parts[0]!.text, /ignored when/);
  });

  it('reads an HTML-only body as text', async () => {
    const [part] = await parse(makeMsg({ subject: 'Notes', from: ADA, html: '<html><body><h1>Bernoulli numbers</h1><p>The <b>first</b> program ever published.</p></body></html>' }));
    assert.match(part!.text, /Bernoulli numbers/);
    assert.match(part!.text, /first program ever published/i);
    assert.doesNotMatch(part!.text, /<\/?[a-z]+>/);
  });

  it('parses attachments by their type, follows attached messages, skips what has no text, and names the ones that fail', async () => {
    const inner: MsgSpec = { subject: 'Forwarded: loom cards', from: CHARLES, to: [ADA], date: SENT, body: 'Punched cards steer the loom through each pattern.' };
    const eml = 'From: Mary <mary@example.org>\r\nTo: Ada <ada@example.org>\r\nSubject: Orbits\r\nDate: Tue, 05 Mar 2024 10:00:00 +0000\r\n\r\nThe mechanism of the heavens, translated.\r\n';
    const spec: MsgSpec = {
      subject: 'Papers attached',
      from: ADA,
      to: [CHARLES],
      date: SENT,
      body: 'See the attached notes.',
      attachments: [
        { fileName: 'notes.txt', content: new TextEncoder().encode('Note G computes Bernoulli numbers.') },
        { fileName: 'table.csv', content: new TextEncoder().encode('term,value\nB1,-1/2\n') },
        { fileName: 'paper.pdf', content: makePdf(['A sketch of the analytical engine.']) },
        { fileName: 'orbits.eml', content: new TextEncoder().encode(eml) },
        { fileName: 'loom.msg', message: inner },
        { fileName: 'portrait.png', content: randomBytes(64) },
        { fileName: 'broken.pdf', content: new TextEncoder().encode('%PDF-1.7 this is not really a pdf') },
      ],
    };
    const parts = await parse(makeMsg(spec));
    const byAttachment = (name: string) => parts.filter((p) => p.metadata.attachment === name);

    assert.equal(parts[0]!.metadata.attachment, undefined);
    assert.match(byAttachment('notes.txt')[0]!.text, /Note G computes Bernoulli numbers/);
    assert.match(byAttachment('table.csv').map((p) => p.text).join('\n'), /B1/);
    const pdf = byAttachment('paper.pdf');
    assert.match(pdf[0]!.text, /sketch of the analytical engine/);
    assert.equal(pdf[0]!.metadata.page, 1);
    const orbits = byAttachment('orbits.eml');
    assert.match(orbits[0]!.text, /mechanism of the heavens/);
    const loom = byAttachment('loom.msg');
    assert.match(loom[0]!.text, /Punched cards steer the loom/);
    assert.match(loom[0]!.text, /Subject: Forwarded: loom cards/);
    assert.equal(byAttachment('portrait.png').length, 0);
    // Every part carries the outer message's headers (the hit is about this message).
    for (const p of [...pdf, ...orbits, ...loom]) {
      assert.equal(p.metadata.subject, 'Papers attached');
      assert.equal(p.metadata.from, 'Ada Lovelace <ada@example.org>');
      assert.equal(p.metadata.date, '2024-03-05T09:30:00.000Z');
    }
    const errors = parts[0]!.metadata.attachment_errors as string[];
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /^broken\.pdf: /);
  });

  it('is followed when attached to an .eml, within the max_depth of the eml parser', async () => {
    const msg = makeMsg({ subject: 'Loom cards', from: CHARLES, to: [ADA], date: SENT, body: 'Punched cards steer the loom through each pattern.' });
    const b64 = Buffer.from(msg).toString('base64').replace(/.{76}/g, '$&\r\n');
    const eml = [
      'From: Mary <mary@example.org>',
      'To: Ada <ada@example.org>',
      'Subject: Forwarding an Outlook message',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain',
      '',
      'See the message attached.',
      '--b1',
      'Content-Type: application/vnd.ms-outlook; name="loom.msg"',
      'Content-Disposition: attachment; filename="loom.msg"',
      'Content-Transfer-Encoding: base64',
      '',
      b64,
      '--b1--',
      '',
    ].join('\r\n');
    const bytes = new TextEncoder().encode(eml);
    const parts = await new EmlParser().parse({ key: 'fwd.eml', bytes, extension: '.eml', metadata: {}, parseAttachment: host });
    const loom = parts.filter((p) => p.metadata.attachment === 'loom.msg');
    assert.match(loom[0]!.text, /Punched cards steer the loom/);
    assert.match(loom[0]!.text, /Subject: Loom cards/);
    assert.equal(loom[0]!.metadata.subject, 'Forwarding an Outlook message');
    const flat = await new EmlParser({ max_depth: 0 }).parse({ key: 'fwd.eml', bytes, extension: '.eml', metadata: {}, parseAttachment: host });
    assert.equal(flat.filter((p) => p.metadata.attachment === 'loom.msg').length, 0);
    assert.match(String((flat[0]!.metadata.attachment_errors as string[])[0]), /^loom\.msg: .*nested deeper than 0/);
  });

  it('stops following attached messages at max_depth', async () => {
    const deepest: MsgSpec = { subject: 'level 2', from: ADA, body: 'two levels down' };
    const middle: MsgSpec = { subject: 'level 1', from: ADA, body: 'one level down', attachments: [{ fileName: 'l2.msg', message: deepest }] };
    const bytes = makeMsg({ subject: 'top', from: ADA, body: 'top level', attachments: [{ fileName: 'l1.msg', message: middle }] });

    const all = await parse(bytes);
    assert.ok(all.some((p) => /two levels down/.test(p.text)));

    const shallow = await parse(bytes, new MsgParser({ max_depth: 1 }));
    assert.ok(shallow.some((p) => /one level down/.test(p.text)));
    assert.ok(!shallow.some((p) => /two levels down/.test(p.text)));
    assert.ok(shallow.some((p) => (p.metadata.attachment_errors as string[] | undefined)?.some((e) => /l2\.msg: attached messages nested deeper than 1/.test(e))));
  });

  it('fails what is not a readable Outlook message, with the reason', async () => {
    assert.match((await failure(parse(randomBytes(4096)))).message, /^not an Outlook message: /);
    const good = makeMsg({ subject: 'cut short', from: ADA, body: 'x'.repeat(10_000) });
    const truncated = good.subarray(0, Math.floor(good.length / 3));
    const err = await failure(parse(truncated));
    assert.equal(err.code, 'parse_failed');
    assert.match(err.message, /^(unreadable Outlook message|not an Outlook message): /);
    // A compound file that is not a message (a legacy .doc, say).
    const other = CFB.utils.cfb_new();
    CFB.utils.cfb_add(other, '/WordDocument', Buffer.from('not mail'));
    CFB.utils.cfb_del(other, '/\u0001Sh33tJ5');
    const doc = new Uint8Array(CFB.write(other, { type: 'buffer' }) as Buffer);
    assert.equal((await failure(parse(doc))).message, 'not an Outlook message: the compound file holds no message properties');
  });
});

describe('msg files in a served folder', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await writeFile(join(folder.path, 'trials.msg'), makeMsg({
      subject: 'Engine trials',
      from: ADA,
      to: [CHARLES],
      date: SENT,
      body: 'The difference engine tabulated polynomials without a single error.',
      attachments: [{ fileName: 'appendix.txt', content: new TextEncoder().encode('Appendix: the mill and the store.') }],
    }));
    await writeFile(join(folder.path, 'corrupt.msg'), randomBytes(2048));
    await writeFile(join(folder.path, 'other.md'), '# Other\n\nSomething about gardens and tulips.\n');
    server = await startServer(folder.path, { dataDir: data.path });
    await server.ready;
  });
  after(async () => {
    await server?.close();
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('finds the body text, with from, subject and date on the hit', async () => {
    const hits = await retrieve(server.url, { query: 'difference engine tabulated polynomials', k: 3 });
    const top = hits[0]!;
    assert.equal(String(top.metadata.path).split('/').pop(), 'trials.msg');
    assert.match(top.text, /tabulated polynomials/);
    assert.equal(top.metadata.from, 'Ada Lovelace <ada@example.org>');
    assert.equal(top.metadata.subject, 'Engine trials');
    assert.equal(top.metadata.date, '2024-03-05T09:30:00.000Z');

    const attached = await retrieve(server.url, { query: 'appendix mill store', k: 1 });
    assert.equal(attached[0]?.metadata.attachment, 'appendix.txt');
    assert.equal(attached[0]?.metadata.subject, 'Engine trials');
  });

  it('marks a corrupt .msg failed with the reason and indexes the rest', async () => {
    const listed = (await post<Array<Record<string, unknown>>>(server.url, '/v2/list_documents', { return_status: true })).body;
    const byName = new Map(listed.map((d) => [String(d.path).split('/').pop(), d]));
    assert.equal(byName.get('corrupt.msg')?._indexing_status, 'FAILED');
    assert.match(String(byName.get('corrupt.msg')?._indexing_error), /^not an Outlook message: /);
    assert.equal(byName.get('trials.msg')?._indexing_status, 'INDEXED');
    assert.equal(byName.get('other.md')?._indexing_status, 'INDEXED');
  });
});
