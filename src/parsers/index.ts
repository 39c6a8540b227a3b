/** @module parsers — the parser plugins of this package, for the registry. */
import { csvParser } from './csv.js';
import { docxParser } from './docx.js';
import { emlParser } from './eml.js';
import { htmlParser } from './html.js';
import { jsonParser } from './json.js';
import { markdownParser } from './markdown.js';
import { msgParser } from './msg.js';
import { pdfParser } from './pdf.js';
import { pptxParser } from './pptx.js';
import { textParser } from './text.js';
import { unstructuredParser } from './unstructured.js';
import { xlsxParser } from './xlsx.js';

export { csvParser, CsvParser } from './csv.js';
export { docxParser, DocxParser } from './docx.js';
export { emlParser, EmlParser } from './eml.js';
export { htmlParser, HtmlParser, sniffHtmlCharset } from './html.js';
export { jsonParser, JsonParser } from './json.js';
export { markdownParser, MarkdownParser } from './markdown.js';
export { msgParser, MsgParser } from './msg.js';
export { pdfParser, PdfParser } from './pdf.js';
export { pptxParser, PptxParser } from './pptx.js';
export { textParser, TextParser } from './text.js';
export { unstructuredParser, UnstructuredParser } from './unstructured.js';
export { xlsxParser, XlsxParser } from './xlsx.js';
export { decodeText } from './decode.js';
export { checkZip } from './zip-limits.js';

/**
 * Every parser plugin. When two claim an extension the first one listed wins, so the
 * dedicated formats come before `text`, which also serves files no parser claims.
 */
export const parserPlugins = [pdfParser, docxParser, pptxParser, xlsxParser, csvParser, emlParser, msgParser, jsonParser, markdownParser, htmlParser, textParser] as const;

/** Parser plugins built only when the config lists them (`optIn`): `unstructured` sends documents to a service. */
export const optInParserPlugins = [unstructuredParser] as const;
