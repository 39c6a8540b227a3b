/** Writes small, valid PDFs for tests and benchmarks: N pages of text, or a page tree that loops. */

/** A PDF with one text page per entry of `pages` (Helvetica, one line per `\n`; `null`: a page with no text). */
export function makePdf(pages: (string | null)[], opts: { loopingPageTree?: boolean } = {}): Buffer {
  const objects: string[] = [];
  const add = (body: string) => objects.push(body); // object number = index + 1
  add('<< /Type /Catalog /Pages 2 0 R >>');
  add(''); // 2: the page tree, filled below
  add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'); // 3
  const kids: number[] = [];
  for (const text of pages) {
    const lines = text === null ? '' : text.split('\n').map((l, i) => `BT /F1 11 Tf 50 ${780 - i * 14} Td (${escapePdf(l)}) Tj ET`).join('\n');
    add(`<< /Length ${Buffer.byteLength(lines)} >>\nstream\n${lines}\nendstream`);
    const content = objects.length;
    add(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents ${content} 0 R /Resources << /Font << /F1 3 0 R >> >> >>`);
    kids.push(objects.length);
  }
  // A looping tree lists itself among its kids: a parser that walks it naively never ends.
  const kidRefs = [...kids.map((k) => `${k} 0 R`), ...(opts.loopingPageTree ? ['2 0 R'] : [])];
  objects[1] = `<< /Type /Pages /Kids [${kidRefs.join(' ')}] /Count ${opts.loopingPageTree ? 1_000_000 : kids.length} >>`;

  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out));
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

function escapePdf(s: string): string {
  return s.replace(/[\\()]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, '?');
}
