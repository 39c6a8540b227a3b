/** @module parsers/msg — Outlook `.msg` messages with @kenjiuno/msgreader: headers as metadata, the body, attachments parsed by their type. */
import msgreader, { type FieldsData } from '@kenjiuno/msgreader';
import { extname } from 'node:path';
import type { z } from 'zod';
import { describeError, LivedexError } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import type { Metadata, ParsedPart, ParseInput, Parser } from '../core/types.js';
import { isBlank } from './decode.js';
import { attachmentParser, documentParsersByExtension, mailParserOptions, withAttachments, type MailAttachment } from './mail.js';

const MsgReader = msgreader.default;

export const MSG_EXTENSIONS: readonly string[] = ['.msg'];

export const msgParserOptions = mailParserOptions(MSG_EXTENSIONS);
export type MsgParserOptions = z.output<typeof msgParserOptions>;

/**
 * Parses an Outlook message (`.msg`, an OLE compound file of MAPI properties) into a body part
 * and the parts of its attachments, the way the `eml` parser does for RFC 822 mail: every part
 * carries `from`, `to`, `cc`, `subject`, `date` (ISO 8601) and `message_id` where the message
 * has them; attachment parts add `attachment` (the file name).
 *
 * The body is the plain-text one when there is one, else the HTML body as readable text (a
 * message with an RTF body only is indexed by its headers). Attachments go to the parser of
 * their extension — PDF, Office, CSV, JSON, HTML, Markdown, text, `.eml` — and attached
 * messages (`.msg` files or embedded items) are followed up to `max_depth`. One that fails is
 * skipped and named in `attachment_errors`; the message is still indexed.
 *
 * @example
 * const parts = await new MsgParser().parse({ key: 'a.msg', bytes, extension: '.msg', metadata: {} });
 * parts[0]?.metadata.from; // 'Ada Lovelace <ada@example.org>'
 */
export class MsgParser implements Parser {
  readonly name = 'msg';
  readonly extensions: readonly string[];
  readonly splitter = 'structure';
  readonly #opts: MsgParserOptions;
  #byExtension: Map<string, Parser> | undefined;

  constructor(options: Partial<MsgParserOptions> = {}) {
    this.#opts = msgParserOptions.parse(options);
    this.extensions = [...this.#opts.extensions];
  }

  parse(input: ParseInput): Promise<ParsedPart[]> {
    return this.#parseAt(input, input.depth ?? 0);
  }

  async #parseAt(input: ParseInput, depth: number): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    const { reader, fields } = read(input.bytes);
    const headers = headersOf(fields);

    const parts: ParsedPart[] = [];
    const body = await this.#body(fields, input);
    const head = [headers.from && `From: ${headers.from}`, headers.to && `To: ${headers.to}`, headers.cc && `Cc: ${headers.cc}`, headers.subject && `Subject: ${headers.subject}`]
      .filter(Boolean)
      .join('\n');
    if (head !== '' || !isBlank(body)) parts.push({ text: isBlank(body) ? head : `${head}\n\n${body.trim()}`, metadata: { ...headers } });

    const attachments = (this.#opts.attachments ? (fields.attachments ?? []) : []).flatMap((att, i): MailAttachment[] => {
      if (att.attachmentHidden) return []; // inline images of an HTML body and the like
      const embedded = att.innerMsgContent === true;
      const filename = att.fileName ?? att.fileNameShort ?? (embedded ? `${att.name ?? `attachment-${i + 1}`}.msg` : `attachment-${i + 1}`);
      const extension = embedded ? '.msg' : extname(filename).toLowerCase();
      return [{ filename, extension, bytes: () => reader.getAttachment(att).content, parse: this.#attachmentParser(extension, depth, input) }];
    });
    return withAttachments(input, headers, parts, attachments);
  }

  #attachmentParser(extension: string, depth: number, input: ParseInput): MailAttachment['parse'] {
    const own = { own: '.msg', self: (i: ParseInput) => this.parse(i), defaults: () => this.#parsers() };
    return attachmentParser(extension, { depth, maxDepth: this.#opts.max_depth, host: input.parseAttachment, ...own });
  }

  async #body(fields: FieldsData, input: ParseInput): Promise<string> {
    if (typeof fields.body === 'string' && !isBlank(fields.body)) return fields.body.replace(/\r\n?/g, '\n');
    const html = typeof fields.bodyHtml === 'string' ? fields.bodyHtml : fields.html instanceof Uint8Array ? new TextDecoder().decode(fields.html) : '';
    if (isBlank(html)) return '';
    const parts = await this.#parsers().get('.html')!.parse({ key: input.key, bytes: new TextEncoder().encode(html), extension: '.html', metadata: {} });
    return parts.map((p) => p.text).join('\n\n');
  }

  /** The sibling parsers attachments go to, by extension; built on first use. */
  #parsers(): Map<string, Parser> {
    this.#byExtension ??= documentParsersByExtension();
    return this.#byExtension;
  }
}

/** Opens the compound file; anything that is not a readable Outlook message fails here. */
function read(bytes: Uint8Array): { reader: InstanceType<typeof MsgReader>; fields: FieldsData } {
  let reader: InstanceType<typeof MsgReader>;
  let fields: FieldsData;
  try {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    reader = new MsgReader(view);
    fields = reader.getFileData();
  } catch (err) {
    throw new LivedexError('parse_failed', `unreadable Outlook message: ${describeError(err)}`, { cause: err });
  }
  if (fields.error) throw new LivedexError('parse_failed', `not an Outlook message: ${fields.error === 'Unsupported file type!' ? 'no OLE compound file header' : fields.error}`);
  const hasContent = [fields.subject, fields.body, fields.bodyHtml, fields.senderName, fields.senderEmail, fields.messageClass].some((v) => typeof v === 'string')
    || (fields.recipients?.length ?? 0) > 0 || (fields.attachments?.length ?? 0) > 0 || fields.html !== undefined;
  if (!hasContent) throw new LivedexError('parse_failed', 'not an Outlook message: the compound file holds no message properties');
  return { reader, fields };
}

/** `Name <address>`, or whichever of the two is known. */
function address(name: string | undefined, email: string | undefined): string | undefined {
  const n = name?.trim();
  const e = email?.trim();
  if (n && e && n !== e) return `${n} <${e}>`;
  return n || e || undefined;
}

function headersOf(fields: FieldsData): Metadata {
  const headers: Metadata = {};
  const from = address(fields.senderName, fields.senderSmtpAddress ?? fields.senderEmail);
  const recipients = (type: 'to' | 'cc') =>
    (fields.recipients ?? [])
      .filter((r) => (r.recipType ?? 'to') === type)
      .map((r) => address(r.name, r.smtpAddress ?? r.email))
      .filter(Boolean)
      .join(', ');
  const to = recipients('to');
  const cc = recipients('cc');
  if (from) headers.from = from;
  if (to) headers.to = to;
  if (cc) headers.cc = cc;
  if (fields.subject) headers.subject = fields.subject;
  const date = dateOf(fields);
  if (date) headers.date = date;
  if (fields.messageId) headers.message_id = fields.messageId;
  return headers;
}

/** When it was sent (else received, else the transport headers' `Date:`), as ISO 8601. */
function dateOf(fields: FieldsData): string | undefined {
  const fromHeaders = /^date:\s*(.+)$/im.exec(fields.headers ?? '')?.[1];
  for (const value of [fields.clientSubmitTime, fields.messageDeliveryTime, fromHeaders]) {
    if (!value) continue;
    const date = new Date(value);
    if (!Number.isNaN(date.getTime())) return date.toISOString();
  }
  return undefined;
}

export const msgParser = definePlugin({
  kind: 'parser',
  name: 'msg',
  module: import.meta.url,
  description: 'Outlook .msg messages (@kenjiuno/msgreader): `from`, `to`, `cc`, `subject`, `date`, `message_id` on every part, the plain-text body (else the HTML as text), attachments and embedded messages parsed by type with `attachment`.',
  options: msgParserOptions,
  create: (options) => new MsgParser(options),
});
