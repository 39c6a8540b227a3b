/** @module parsers/csv — CSV/TSV with papaparse: delimiter sniffed, one record per row with its headers. */
import Papa from 'papaparse';
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { ParsedPart, ParseInput, Parser } from '../core/types.js';
import { decodeText, isBlank } from './decode.js';
import { recordParts } from './records.js';

export const CSV_EXTENSIONS: readonly string[] = ['.csv', '.tsv'];

export const csvParserOptions = z.strictObject({
  extensions: z.array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".csv"')).default([...CSV_EXTENSIONS]),
  /** The cell separator; empty to detect it (`,`, `;`, tab, `|`). `.tsv` files always use tabs. */
  delimiter: z.string().max(1).default(''),
  /** Records per part: small parts keep chunks small and their `row` metadata precise. */
  rows_per_part: z.number().int().positive().default(20),
});
export type CsvParserOptions = z.output<typeof csvParserOptions>;

/**
 * Parses delimited text into parts of records: the first row names the columns and every
 * record is one line `Team: Oilers; Year: 1990`. Parts carry `row` and `row_end` (1-based
 * record numbers, the header being row 1). Decoding as for text: BOMs (UTF-16 too), UTF-8,
 * else windows-1252.
 *
 * @example
 * const parts = await new CsvParser().parse({ key: 'cups.csv', bytes, extension: '.csv', metadata: {} });
 * parts[0]?.metadata.row; // 2
 */
export class CsvParser implements Parser {
  readonly name = 'csv';
  /** Record parts stay as they are (a part over the budget is cut between records). */
  readonly splitter = 'token';
  readonly extensions: readonly string[];
  readonly #opts: CsvParserOptions;

  constructor(options: Partial<CsvParserOptions> = {}) {
    this.#opts = csvParserOptions.parse(options);
    this.extensions = [...this.#opts.extensions];
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    const { text } = decodeText(input.bytes);
    if (isBlank(text)) return [];
    const delimiter = this.#opts.delimiter || (input.extension === '.tsv' ? '\t' : '');
    const result = Papa.parse<string[]>(text, { delimiter, skipEmptyLines: false, delimitersToGuess: [',', ';', '\t', '|'] });
    input.signal?.throwIfAborted();
    const rows = result.data.map((cells, i) => ({ row: i + 1, cells: cells.map(String) }));
    return recordParts(rows, {}, this.#opts.rows_per_part);
  }
}

export const csvParser = definePlugin({
  kind: 'parser',
  name: 'csv',
  module: import.meta.url,
  description: 'CSV and TSV (papaparse, delimiter detected): one line per record as `Header: value; …`, parts with `row` and `row_end`.',
  options: csvParserOptions,
  create: (options) => new CsvParser(options),
});
