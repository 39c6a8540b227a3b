/** @module parsers/xlsx — Excel workbooks with exceljs: per sheet, one record per row with its headers. */
import ExcelJS from 'exceljs';
import { z } from 'zod';
import { LivedexError, describeError } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import type { ParsedPart, ParseInput, Parser } from '../core/types.js';
import { recordParts, type TableRow } from './records.js';
import { checkZip, zipLimitsSchema } from './zip-limits.js';

export const XLSX_EXTENSIONS: readonly string[] = ['.xlsx', '.xlsm'];

export const xlsxParserOptions = z.strictObject({
  extensions: z.array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".xlsx"')).default([...XLSX_EXTENSIONS]),
  /** Records per part: small parts keep chunks small and their `row` metadata precise. */
  rows_per_part: z.number().int().positive().default(20),
  /** Hidden sheets are often lookup tables or scratch space. */
  include_hidden_sheets: z.boolean().default(false),
  /** Limits on the ZIP container, checked before anything is inflated. */
  zip: zipLimitsSchema.prefault({}),
});
export type XlsxParserOptions = z.output<typeof xlsxParserOptions>;

/**
 * Parses an Excel workbook into parts of up to `rows_per_part` records per sheet; each record
 * is one line `Header1: v1; Header2: v2` with the headers of its sheet. Parts carry `sheet`
 * (its name), `row` and `row_end` (1-based row numbers as Excel shows them). Formulas give their
 * cached results, dates their ISO form.
 *
 * Password-protected workbooks are OLE containers, not ZIPs, and are refused with that reason.
 *
 * @example
 * const parts = await new XlsxParser().parse({ key: 'cups.xlsx', bytes, extension: '.xlsx', metadata: {} });
 * parts[0]?.metadata; // { sheet: 'stanley-cups', row: 2, row_end: 5 }
 */
export class XlsxParser implements Parser {
  readonly name = 'xlsx';
  /** Record parts stay as they are (a part over the budget is cut between records). */
  readonly splitter = 'token';
  readonly extensions: readonly string[];
  readonly #opts: XlsxParserOptions;

  constructor(options: Partial<XlsxParserOptions> = {}) {
    this.#opts = xlsxParserOptions.parse(options);
    this.extensions = [...this.#opts.extensions];
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    checkZip(input.bytes, 'XLSX', this.#opts.zip);
    const workbook = new ExcelJS.Workbook();
    try {
      const buffer = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);
      await workbook.xlsx.load(buffer as unknown as ArrayBuffer);
    } catch (err) {
      throw new LivedexError('parse_failed', `corrupt XLSX: ${describeError(err)}`, { cause: err });
    }
    const parts: ParsedPart[] = [];
    for (const sheet of workbook.worksheets) {
      input.signal?.throwIfAborted();
      if (sheet.state !== 'visible' && !this.#opts.include_hidden_sheets) continue;
      const rows: TableRow[] = [];
      sheet.eachRow({ includeEmpty: false }, (row, number) => {
        const cells: string[] = [];
        row.eachCell({ includeEmpty: true }, (cell, col) => {
          // A merged range repeats its value in every cell; only its top-left cell keeps it.
          cells[col - 1] = cell.isMerged && cell.master !== cell ? '' : cellText(cell.value);
        });
        rows.push({ row: number, cells: Array.from(cells, (c) => c ?? '') });
      });
      parts.push(...recordParts(rows, { sheet: sheet.name }, this.#opts.rows_per_part));
    }
    return parts;
  }
}

/** A cell's value as a reader sees it: formula results, rich text joined, dates in ISO form. */
export function cellText(value: ExcelJS.CellValue): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) {
    const iso = value.toISOString();
    return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso.replace('.000Z', 'Z');
  }
  if (typeof value === 'number') return String(Number.isInteger(value) ? value : Number(value.toPrecision(12)));
  if (typeof value === 'string' || typeof value === 'boolean') return String(value);
  if ('richText' in value) return value.richText.map((r) => r.text).join('');
  if ('error' in value) return String(value.error);
  if ('formula' in value || 'sharedFormula' in value) return cellText((value as { result?: ExcelJS.CellValue }).result ?? null);
  if ('text' in value) return typeof value.text === 'string' ? value.text : cellText(value.text as ExcelJS.CellValue);
  return '';
}

export const xlsxParser = definePlugin({
  kind: 'parser',
  name: 'xlsx',
  module: import.meta.url,
  description: 'Excel workbooks (exceljs): per sheet, one line per row as `Header: value; …`, parts with `sheet`, `row` and `row_end`; encrypted and zip-bomb files are refused.',
  options: xlsxParserOptions,
  create: (options) => new XlsxParser(options),
});
