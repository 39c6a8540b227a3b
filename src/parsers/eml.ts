/** @module parsers/eml — e-mail messages with mailparser: headers as metadata, the body, attachments parsed by their type. */
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { extname } from 'node:path';
import type { z } from 'zod';
import { LivedexError, describeError } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import type { Metadata, ParsedPart, ParseInput, Parser } from '../core/types.js';
import { isBlank } from './decode.js';
import { attachmentParser, documentParsersByExtension, mailParserOptions, withAttachments, type MailAttachment } from './mail.js';

export const EML_EXTENSIONS: readonly string[] = ['.eml'];

export const emlParserOptions = mailParserOptions(EML_EXTENSIONS);
export type EmlParserOptions = z.output<typeof emlParserOptions>;

/**
 * Parses an e-mail (RFC 822/MIME) into a body part and the parts of its attachments. Every part
 * carries the headers `from`, `to`, `subject`, `date` (ISO 8601) and `message_id`; attachment
 * parts add `attachment` (the file name).
 *
 * The body is the text/plain alternative when there is one (it is what the sender wrote; the
 * HTML is often a template around it), else the HTML as readable text. Attachments go to the
 * parser of their extension — PDF, DOCX, PPTX, XLSX, CSV, JSON, HTML, Markdown, text, and
 * attached messages up to `max_depth`. One that fails is skipped and named in
 * `attachment_errors`; the message is still indexed.
 *
 * @example
 * const parts = await new EmlParser().parse({ key: 'a.eml', bytes, extension: '.eml', metadata: {} });
 * parts[0]?.metadata.subject;
 */
export class EmlParser implements Parser {
  readonly name = 'eml';
  /** Heading paths and page ranges kept, table rows never cut. */
  readonly splitter = 'structure';
  readonly extensions: readonly string[];
  readonly #opts: EmlParserOptions;
  #byExtension: Map<string, Parser> | undefined;

  constructor(options: Partial<EmlParserOptions> = {}) {
    this.#opts = emlParserOptions.parse(options);
    this.extensions = [...this.#opts.extensions];
  }

  parse(input: ParseInput): Promise<ParsedPart[]> {
    return this.#parseAt(input, input.depth ?? 0);
  }

  async #parseAt(input: ParseInput, depth: number): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    if (isBlank(Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength).toString('latin1'))) return [];
    let mail: ParsedMail;
    try {
      const buffer = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);
      mail = await simpleParser(buffer, { skipImageLinks: true, skipTextToHtml: true });
    } catch (err) {
      throw new LivedexError('parse_failed', `unreadable e-mail: ${describeError(err)}`, { cause: err });
    }
    const headers: Metadata = {};
    const from = addresses(mail.from);
    const to = addresses(mail.to);
    if (from) headers.from = from;
    if (to) headers.to = to;
    if (mail.subject) headers.subject = mail.subject;
    if (mail.date && !Number.isNaN(mail.date.getTime())) headers.date = mail.date.toISOString();
    if (mail.messageId) headers.message_id = mail.messageId;

    const parts: ParsedPart[] = [];
    const body = await this.#body(mail, input);
    const head = [from && `From: ${from}`, to && `To: ${to}`, mail.subject && `Subject: ${mail.subject}`].filter(Boolean).join('\n');
    if (head !== '' || !isBlank(body)) parts.push({ text: isBlank(body) ? head : `${head}\n\n${body.trim()}`, metadata: { ...headers } });

    const attachments = (this.#opts.attachments ? mail.attachments : []).map((att, i): MailAttachment => {
      const isMessage = att.contentType === 'message/rfc822';
      const filename = att.filename ?? (isMessage ? `attachment-${i + 1}.eml` : `attachment-${i + 1}`);
      const extension = isMessage ? '.eml' : extname(filename).toLowerCase();
      return { filename, extension, bytes: () => att.content, parse: this.#attachmentParser(extension, depth, input) };
    });
    return withAttachments(input, headers, parts, attachments);
  }

  #attachmentParser(extension: string, depth: number, input: ParseInput): MailAttachment['parse'] {
    const own = { own: '.eml', self: (i: ParseInput) => this.parse(i), defaults: () => this.#parsers() };
    return attachmentParser(extension, { depth, maxDepth: this.#opts.max_depth, host: input.parseAttachment, ...own });
  }

  async #body(mail: ParsedMail, input: ParseInput): Promise<string> {
    if (typeof mail.text === 'string' && !isBlank(mail.text)) return mail.text.replace(/\r\n?/g, '\n');
    if (typeof mail.html === 'string' && !isBlank(mail.html)) {
      const parts = await this.#html().parse({ key: input.key, bytes: new TextEncoder().encode(mail.html), extension: '.html', metadata: {} });
      return parts.map((p) => p.text).join('\n\n');
    }
    return '';
  }

  #html(): Parser {
    return this.#parsers().get('.html')!;
  }

  /** The sibling parsers attachments go to, by extension; built on first use. */
  #parsers(): Map<string, Parser> {
    this.#byExtension ??= documentParsersByExtension();
    return this.#byExtension;
  }
}

function addresses(value: AddressObject | AddressObject[] | undefined): string | undefined {
  if (!value) return undefined;
  const text = (Array.isArray(value) ? value : [value]).map((a) => a.text).filter(Boolean).join(', ');
  return text || undefined;
}

export const emlParser = definePlugin({
  kind: 'parser',
  name: 'eml',
  module: import.meta.url,
  description: 'E-mail messages (mailparser): `from`, `to`, `subject`, `date`, `message_id` on every part, the plain-text body (else the HTML as text), attachments parsed by type with `attachment`.',
  options: emlParserOptions,
  create: (options) => new EmlParser(options),
});
