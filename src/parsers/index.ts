/** @module parsers — the parser plugins of this package, for the registry. */
import { htmlParser } from './html.js';
import { markdownParser } from './markdown.js';
import { textParser } from './text.js';

export { htmlParser, HtmlParser, sniffHtmlCharset } from './html.js';
export { markdownParser, MarkdownParser } from './markdown.js';
export { textParser, TextParser } from './text.js';
export { decodeText } from './decode.js';

export const parserPlugins = [textParser, markdownParser, htmlParser] as const;
