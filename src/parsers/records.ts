/** @module parsers/records — table rows to records that carry their headers (`Header: value; …`), grouped into parts. */
import type { Metadata, ParsedPart } from '../core/types.js';

/** One row of a table: its 1-based number in the source and its cells as text. */
export interface TableRow {
  row: number;
  cells: string[];
}

/** How many leading non-empty rows are looked at to find the header row. */
const HEADER_SCAN_ROWS = 10;

/**
 * Turns table rows into parts of up to `rowsPerPart` records, each record one line
 * `Header1: v1; Header2: v2` (empty cells left out), so every chunk says what its numbers are.
 *
 * The header row is the first of the leading rows that fills at least half as many cells as
 * the widest of them: titles above a table ("Q2 results") are kept as plain lines instead.
 * Every part has `row` (its first row) and `row_end` (its last), plus `base`.
 *
 * @example
 * recordParts([{ row: 1, cells: ['Team', 'Year'] }, { row: 2, cells: ['Oilers', '1990'] }], { sheet: 'Cups' }, 20);
 * // [{ text: 'Team: Oilers; Year: 1990', metadata: { sheet: 'Cups', row: 2, row_end: 2 } }]
 */
export function recordParts(rows: readonly TableRow[], base: Metadata, rowsPerPart: number): ParsedPart[] {
  const filled = rows
    .map((r) => ({ row: r.row, cells: r.cells.map((c) => c.replace(/\s+/g, ' ').trim()) }))
    .filter((r) => r.cells.some((c) => c !== ''));
  if (filled.length === 0) return [];
  const count = (r: TableRow) => r.cells.filter((c) => c !== '').length;
  const scan = filled.slice(0, HEADER_SCAN_ROWS);
  const widest = Math.max(...scan.map(count));
  // A one-cell title is never the header of a wider table.
  const needed = widest >= 2 ? Math.max(2, Math.ceil(widest / 2)) : 1;
  const headerAt = Math.max(0, scan.findIndex((r) => count(r) >= needed));
  const headerRow = filled[headerAt]!;
  const headers = headerRow.cells.map((h, i) => h || columnName(i));

  const lines: { row: number; text: string }[] = [];
  for (const r of filled.slice(0, headerAt)) lines.push({ row: r.row, text: r.cells.filter((c) => c !== '').join(' ') });
  if (filled.length === headerAt + 1) {
    // A header with nothing under it is the content.
    lines.push({ row: headerRow.row, text: headerRow.cells.filter((c) => c !== '').join(' | ') });
  }
  for (const r of filled.slice(headerAt + 1)) {
    const fields: string[] = [];
    r.cells.forEach((c, i) => {
      if (c !== '') fields.push(`${headers[i] ?? columnName(i)}: ${c}`);
    });
    lines.push({ row: r.row, text: fields.join('; ') });
  }

  const parts: ParsedPart[] = [];
  for (let i = 0; i < lines.length; i += rowsPerPart) {
    const group = lines.slice(i, i + rowsPerPart);
    parts.push({
      // Each record ends with a newline of its own: a splitter packing paragraphs never cuts one.
      text: group.map((l) => l.text).join('\n'),
      metadata: { ...base, row: group[0]!.row, row_end: group[group.length - 1]!.row },
    });
  }
  return parts;
}

/** `0` → `A`, `27` → `AB`: how a spreadsheet names a column without a header. */
export function columnName(index: number): string {
  let name = '';
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) name = String.fromCharCode(65 + ((n - 1) % 26)) + name;
  return name;
}
