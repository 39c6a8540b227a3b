/** @module parsers/zip-limits — checks a ZIP's central directory before unzipping: OLE containers, truncation, zip bombs. */
import { z } from 'zod';
import { LivedexError } from '../core/errors.js';

/** Limits checked against what the central directory declares, before anything is inflated. */
export const zipLimitsSchema = z.strictObject({
  /** Total declared uncompressed size of all entries. */
  max_uncompressed_bytes: z.number().int().positive().default(200 * 1024 * 1024),
  max_entries: z.number().int().positive().default(10_000),
  /** Compression ratio above which a big entry is taken for a bomb (zeros compress ~1000×). */
  max_ratio: z.number().positive().default(100),
  /** Entries smaller than this may have any ratio (tiny XML parts compress very well). */
  ratio_min_bytes: z.number().int().nonnegative().default(10 * 1024 * 1024),
});
export type ZipLimits = z.output<typeof zipLimitsSchema>;
export const DEFAULT_ZIP_LIMITS: ZipLimits = zipLimitsSchema.parse({});

export interface ZipEntryInfo {
  name: string;
  compressedSize: number;
  uncompressedSize: number;
}

const OLE_MAGIC = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];

/** True for an OLE compound file: legacy .doc/.xls/.ppt, or an encrypted OOXML file. */
export function isOleContainer(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && OLE_MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Reads the central directory of an Office ZIP (`format` names it in messages) and throws
 * `parse_failed` when it is an OLE container (encrypted or legacy Office), not a ZIP, or
 * declares more than the limits allow. Returns the entries as declared.
 *
 * Declared sizes can lie; the inflaters do not check them, so the sandbox's heap limit is
 * the backstop. This stops the common bombs cheaply, before any byte is inflated.
 *
 * @example
 * checkZip(bytes, 'DOCX');
 */
export function checkZip(bytes: Uint8Array, format: string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): ZipEntryInfo[] {
  if (isOleContainer(bytes)) {
    throw new LivedexError('parse_failed', `encrypted or legacy Office file (OLE container): a password-protected ${format} or an old binary format, which is not supported`);
  }
  if (bytes.length < 22 || bytes[0] !== 0x50 || bytes[1] !== 0x4b) {
    throw new LivedexError('parse_failed', `corrupt ${format}: not a ZIP archive${bytes.length === 0 ? ' (empty file)' : ''}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eocd = findEndOfCentralDirectory(view);
  if (eocd < 0) throw new LivedexError('parse_failed', `corrupt ${format}: truncated ZIP archive (no end of central directory)`);
  let count = view.getUint16(eocd + 10, true);
  let offset = view.getUint32(eocd + 16, true);
  if (count === 0xffff || offset === 0xffffffff) {
    // ZIP64: the locator just before the EOCD points at the ZIP64 end record.
    const loc = eocd - 20;
    if (loc < 0 || view.getUint32(loc, true) !== 0x07064b50) throw new LivedexError('parse_failed', `corrupt ${format}: bad ZIP64 directory`);
    const rec = Number(view.getBigUint64(loc + 8, true));
    if (rec + 56 > bytes.length || view.getUint32(rec, true) !== 0x06064b50) throw new LivedexError('parse_failed', `corrupt ${format}: bad ZIP64 directory`);
    count = Number(view.getBigUint64(rec + 32, true));
    offset = Number(view.getBigUint64(rec + 48, true));
  }
  if (count > limits.max_entries) {
    throw new LivedexError('parse_failed', `zip bomb: ${count} entries, over the limit of ${limits.max_entries}`);
  }
  // Data prepended to the archive (a self-extractor stub) shifts every offset: the directory
  // then sits right before the end record rather than where the record says.
  const cdSize = view.getUint32(eocd + 12, true);
  if ((offset + 4 > bytes.length || view.getUint32(offset, true) !== 0x02014b50) && cdSize <= eocd && view.getUint32(eocd - cdSize, true) === 0x02014b50) {
    offset = eocd - cdSize;
  }
  const entries: ZipEntryInfo[] = [];
  let total = 0;
  let p = offset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > bytes.length || view.getUint32(p, true) !== 0x02014b50) {
      throw new LivedexError('parse_failed', `corrupt ${format}: damaged ZIP central directory (entry ${i + 1} of ${count})`);
    }
    let compressedSize = view.getUint32(p + 20, true);
    let uncompressedSize = view.getUint32(p + 24, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    const name = Buffer.from(bytes.buffer, bytes.byteOffset + p + 46, Math.min(nameLen, bytes.length - p - 46)).toString('utf8');
    if (uncompressedSize === 0xffffffff || compressedSize === 0xffffffff) {
      const sizes = zip64Sizes(view, p + 46 + nameLen, extraLen, uncompressedSize === 0xffffffff, compressedSize === 0xffffffff);
      uncompressedSize = sizes.uncompressed ?? uncompressedSize;
      compressedSize = sizes.compressed ?? compressedSize;
    }
    total += uncompressedSize;
    if (total > limits.max_uncompressed_bytes) {
      throw new LivedexError('parse_failed', `zip bomb: entries declare over ${mib(limits.max_uncompressed_bytes)} uncompressed (limit), "${name}" alone ${mib(uncompressedSize)}`);
    }
    if (uncompressedSize >= limits.ratio_min_bytes && uncompressedSize > limits.max_ratio * Math.max(compressedSize, 1)) {
      throw new LivedexError('parse_failed', `zip bomb: "${name}" inflates ${Math.round(uncompressedSize / Math.max(compressedSize, 1))}× (${mib(compressedSize)} → ${mib(uncompressedSize)}), over the ratio limit of ${limits.max_ratio}×`);
    }
    entries.push({ name, compressedSize, uncompressedSize });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

function findEndOfCentralDirectory(view: DataView): number {
  // The record is 22 bytes plus a comment of up to 65 535 bytes, at the very end.
  const stop = Math.max(0, view.byteLength - 22 - 0xffff);
  for (let i = view.byteLength - 22; i >= stop; i--) if (view.getUint32(i, true) === 0x06054b50) return i;
  return -1;
}

function zip64Sizes(view: DataView, start: number, len: number, wantUncompressed: boolean, wantCompressed: boolean): { uncompressed?: number; compressed?: number } {
  for (let p = start; p + 4 <= start + len && p + 4 <= view.byteLength; ) {
    const id = view.getUint16(p, true);
    const size = view.getUint16(p + 2, true);
    if (id === 0x0001) {
      const out: { uncompressed?: number; compressed?: number } = {};
      let q = p + 4;
      if (wantUncompressed && q + 8 <= view.byteLength) { out.uncompressed = Number(view.getBigUint64(q, true)); q += 8; }
      if (wantCompressed && q + 8 <= view.byteLength) out.compressed = Number(view.getBigUint64(q, true));
      return out;
    }
    p += 4 + size;
  }
  return {};
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
