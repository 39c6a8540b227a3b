/** @module parsers/html — HTML to readable text with html-to-text: sections by heading, `<title>` into metadata. */
import { compile, type FormatCallback, type HtmlToTextOptions, type SelectorDefinition } from 'html-to-text';
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { Metadata, ParsedPart, ParseInput, Parser } from '../core/types.js';
import { decodeText, isBlank } from './decode.js';
import { SectionBuilder } from './sections.js';

export const HTML_EXTENSIONS: readonly string[] = ['.html', '.htm', '.xhtml'];

/**
 * Elements whose text is not content: code, styling, page chrome (navigation, footers) and
 * things hidden from readers. Navigation menus repeat on every page of a site and would make
 * every page match the menu's words.
 */
export const DEFAULT_SKIP_SELECTORS: readonly string[] = [
  'script', 'style', 'noscript', 'template', 'svg', 'canvas', 'iframe', 'object', 'embed',
  'nav', 'footer', '[role="navigation"]', '[aria-hidden="true"]', '[hidden]',
];

export const htmlParserOptions = z.strictObject({
  extensions: z.array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".html"')).default([...HTML_EXTENSIONS]),
  /** CSS selectors whose elements are dropped with their content; replaces the default list. */
  skip_selectors: z.array(z.string().min(1)).default([...DEFAULT_SKIP_SELECTORS]),
  /** Keep link targets inline (`text [https://…]`); off by default since URLs pollute BM25. */
  link_urls: z.boolean().default(false),
});
export type HtmlParserOptions = z.output<typeof htmlParserOptions>;

/**
 * Starts a heading line in the converter's output; the parser turns such lines into section
 * boundaries and removes the marker. Private-use characters, so real text never has it.
 */
const HEADING_MARK = '\uE000\uE001h';

/** What the formatters learn while one document is converted (html-to-text's per-call metadata). */
interface ConversionState {
  title?: string;
}

const captureTitle: FormatCallback = (elem, _walk, builder) => {
  const state = (builder as unknown as { metadata?: ConversionState }).metadata;
  const title = textContent(elem).replace(/\s+/g, ' ').trim();
  if (state && title !== '' && state.title === undefined) state.title = title;
};

const markedHeading: FormatCallback = (elem, walk, builder, options) => {
  const level = Number(elem.name?.slice(1)) || 1;
  builder.openBlock({ leadingLineBreaks: options.leadingLineBreaks ?? 2 });
  builder.addLiteral(`${HEADING_MARK}${level}`);
  walk(elem.children, builder);
  builder.closeBlock({ trailingLineBreaks: options.trailingLineBreaks ?? 2 });
};

const imageAlt: FormatCallback = (elem, _walk, builder) => {
  const alt = typeof elem.attribs?.alt === 'string' ? elem.attribs.alt.trim() : '';
  if (alt !== '') builder.addInline(alt);
};

function textContent(node: { data?: string | undefined; children?: { data?: string | undefined; children?: unknown[] }[] }): string {
  if (typeof node.data === 'string') return node.data;
  return (node.children ?? []).map((c) => textContent(c as typeof node)).join('');
}

function converterOptions(opts: HtmlParserOptions): HtmlToTextOptions {
  const cell = (prefix: string) => ({ format: 'inlineSurround', options: { prefix, suffix: '' } });
  const selectors: SelectorDefinition[] = [
    { selector: 'title', format: 'captureTitle' },
    ...[1, 2, 3, 4, 5, 6].map((n) => ({ selector: `h${n}`, format: 'markedHeading', options: { leadingLineBreaks: 2, trailingLineBreaks: 2 } })),
    { selector: 'a', options: { ignoreHref: !opts.link_urls, hideLinkHrefIfSameAsText: true } },
    { selector: 'img', format: opts.link_urls ? 'image' : 'imageAlt' },
    { selector: 'head', format: 'block' },
    // Tables as one line per row with cells separated by `|`: html-to-text's layout of
    // columns wraps long cells across lines and interleaves them, which scrambles the text.
    { selector: 'table', format: 'block', options: { leadingLineBreaks: 2, trailingLineBreaks: 2 } },
    { selector: 'tr', format: 'block', options: { leadingLineBreaks: 1, trailingLineBreaks: 1 } },
    { selector: 'caption', format: 'block', options: { leadingLineBreaks: 1, trailingLineBreaks: 1 } },
    { selector: 'th', ...cell(' | ') },
    { selector: 'td', ...cell(' | ') },
    { selector: 'th:first-child', ...cell('') },
    { selector: 'td:first-child', ...cell('') },
    ...opts.skip_selectors.map((selector) => ({ selector, format: 'skip' })),
  ];
  return {
    wordwrap: false,
    // The whole document: `<title>` lives in `<head>`, and fragments have no `<body>`.
    baseElements: { selectors: ['html'], returnDomByDefault: true },
    formatters: { captureTitle, markedHeading, imageAlt },
    selectors,
    limits: { maxInputLength: Number.MAX_SAFE_INTEGER },
  };
}

/**
 * Parses HTML into readable text, one part per heading section (heading path in `headings`),
 * with the page `<title>` in metadata `title`. Text outside elements to skip is kept, link
 * texts without their URLs, image alt texts, tables row by row.
 *
 * The charset comes from a BOM, else `<meta charset>` (or `http-equiv` Content-Type, or the
 * XML declaration), else UTF-8.
 *
 * @example
 * const parts = await new HtmlParser().parse({ key: 'a.html', bytes, extension: '.html', metadata: {} });
 * parts[0]?.metadata.title;
 */
export class HtmlParser implements Parser {
  readonly name = 'html';
  /** Heading paths and page ranges kept, table rows never cut. */
  readonly splitter = 'structure';
  readonly extensions: readonly string[];
  readonly #convert: (html: string, metadata?: ConversionState) => string;

  constructor(options: Partial<HtmlParserOptions> = {}) {
    const opts = htmlParserOptions.parse(options);
    this.extensions = [...opts.extensions];
    this.#convert = compile(converterOptions(opts));
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    const { text: html } = decodeText(input.bytes, { declaredEncoding: sniffHtmlCharset(input.bytes) });
    if (isBlank(html)) return [];
    const state: ConversionState = {};
    const text = this.#convert(html, state);
    input.signal?.throwIfAborted();

    const builder = new SectionBuilder();
    for (const line of text.split('\n')) {
      if (line.startsWith(HEADING_MARK)) {
        const level = Number(line.charAt(HEADING_MARK.length)) || 1;
        const title = line.slice(HEADING_MARK.length + 1).trim();
        builder.heading(level, title, [title]);
      } else {
        builder.line(line);
      }
    }
    const base: Metadata = state.title !== undefined ? { title: state.title } : {};
    return builder.finish().map((s) => ({ text: s.text, metadata: { ...base, headings: s.headings } }));
  }
}

/**
 * The charset an HTML document declares in its first 1024 bytes (as browsers pre-scan it):
 * `<meta charset>`, `<meta http-equiv="Content-Type" content="…; charset=…">` or an XML
 * declaration's `encoding`. A BOM, checked by the decoder, still wins.
 */
export function sniffHtmlCharset(bytes: Uint8Array): string | undefined {
  const head = new TextDecoder('windows-1252').decode(bytes.subarray(0, 1024));
  const meta = /<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([\w.:-]+)/i.exec(head);
  if (meta) return meta[1];
  const xml = /^\s*<\?xml\b[^>]*\bencoding\s*=\s*["']([\w.:-]+)["']/i.exec(head);
  return xml?.[1];
}

export const htmlParser = definePlugin({
  kind: 'parser',
  name: 'html',
  module: import.meta.url,
  description: 'HTML pages as readable text (html-to-text): scripts, styles, navigation and footers dropped, sections by heading, <title> as metadata `title`.',
  options: htmlParserOptions,
  create: (options) => new HtmlParser(options),
});
