/** @module parsers/decode — bytes to text for every text-like parser: BOMs, charsets, the binary check, newlines. */
import { LivedexError } from '../core/errors.js';

/** How many leading bytes the binary check looks at. */
const SNIFF_BYTES = 8192;
/** Above this share of control characters in the sniffed prefix, the bytes are not text. */
const MAX_CONTROL_RATIO = 0.1;
/** Above this share of bytes ≥ 0x80 in the sniffed prefix, bytes that are not UTF-8 are not text either. */
const MAX_LEGACY_HIGH_RATIO = 0.3;

export interface DecodeOptions {
  /**
   * The encoding the container declares (an HTML `<meta charset>`, an XML declaration), used
   * when there is no byte-order mark. Unknown labels are ignored (UTF-8 is assumed).
   */
  declaredEncoding?: string | undefined;
}

export interface DecodedText {
  /** The text, without BOM, with `\r\n` and lone `\r` turned into `\n`. */
  text: string;
  /** The WHATWG name of the encoding actually used (`utf-8`, `utf-16le`, `windows-1252`…). */
  encoding: string;
  /** True when some bytes were not valid in that encoding and became U+FFFD. */
  lossy: boolean;
}

/**
 * Decodes the bytes of a text document, or throws `parse_failed` when they look binary.
 *
 * Order of evidence: a byte-order mark (UTF-8, UTF-16 LE/BE) wins; then the declared encoding;
 * then UTF-8. Bytes that are not valid UTF-8 become U+FFFD — unless most non-ASCII bytes are
 * invalid, which means a legacy 8-bit file; that is decoded as windows-1252 (the WHATWG
 * superset of Latin-1) so `café` stays `café` instead of `caf�`.
 *
 * Binary is told from text by a NUL byte in the first 8 KiB, by more than 10% control
 * characters there, or — for bytes that are not UTF-8 — by more than 30% bytes ≥ 0x80 there.
 *
 * @example
 * const { text } = decodeText(await doc.read());
 */
export function decodeText(bytes: Uint8Array, opts: DecodeOptions = {}): DecodedText {
  const bom = detectBom(bytes);
  if (bom) {
    const body = bytes.subarray(bom.length);
    if (bom.encoding === 'utf-8') return decodeUtf8(body);
    if (bom.encoding.startsWith('utf-32')) {
      const text = decodeUtf32(body, bom.encoding === 'utf-32le');
      assertTextChars(text);
      return { text: normalizeNewlines(text), encoding: bom.encoding, lossy: text.includes('\uFFFD') };
    }
    // UTF-16 text is full of NUL bytes, so the binary check runs on the decoded characters.
    const text = new TextDecoder(bom.encoding, { ignoreBOM: true }).decode(body);
    assertTextChars(text);
    return { text: normalizeNewlines(text), encoding: bom.encoding, lossy: text.includes('\uFFFD') };
  }

  assertTextBytes(bytes);
  const declared = resolveEncoding(opts.declaredEncoding);
  if (declared && declared !== 'utf-8' && !declared.startsWith('utf-16')) {
    return { text: normalizeNewlines(decodeLegacy(declared, bytes)), encoding: declared, lossy: false };
  }
  return decodeUtf8(bytes);
}

/** True when the text has nothing but whitespace (such a document is indexed with no chunks). */
export function isBlank(text: string): boolean {
  return !/\S/.test(text);
}

/** The WHATWG name for an encoding label (`latin1` → `windows-1252`), or undefined when unknown. */
export function resolveEncoding(label: string | undefined): string | undefined {
  if (!label) return undefined;
  try {
    return new TextDecoder(label.trim()).encoding;
  } catch {
    return undefined;
  }
}

function detectBom(b: Uint8Array): { encoding: string; length: number } | null {
  if (b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return { encoding: 'utf-8', length: 3 };
  // UTF-32 LE's mark starts like UTF-16 LE's, so it is checked first.
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xfe && b[2] === 0 && b[3] === 0) return { encoding: 'utf-32le', length: 4 };
  if (b.length >= 4 && b[0] === 0 && b[1] === 0 && b[2] === 0xfe && b[3] === 0xff) return { encoding: 'utf-32be', length: 4 };
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0xfe) return { encoding: 'utf-16le', length: 2 };
  if (b.length >= 2 && b[0] === 0xfe && b[1] === 0xff) return { encoding: 'utf-16be', length: 2 };
  return null;
}

/**
 * UTF-32 by hand: TextDecoder has no UTF-32. Code points past U+10FFFF, surrogates and a
 * trailing partial unit become U+FFFD, as the other decoders do with bad input.
 */
function decodeUtf32(b: Uint8Array, littleEndian: boolean): string {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const whole = b.length - (b.length % 4);
  const parts: string[] = [];
  let codes: number[] = [];
  for (let i = 0; i < whole; i += 4) {
    const cp = view.getUint32(i, littleEndian);
    codes.push(cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0xfffd : cp);
    // Flushed in slices so String.fromCodePoint never gets more arguments than the stack holds.
    if (codes.length === 8192) {
      parts.push(String.fromCodePoint(...codes));
      codes = [];
    }
  }
  if (whole < b.length) codes.push(0xfffd);
  parts.push(String.fromCodePoint(...codes));
  return parts.join('');
}

/** C0 controls other than tab, LF, VT, FF, CR and ESC (ANSI colours in logs), plus DEL. */
function isControlByte(c: number): boolean {
  return (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0b && c !== 0x0c && c !== 0x0d && c !== 0x1b) || c === 0x7f;
}

function assertTextBytes(bytes: Uint8Array): void {
  const n = Math.min(bytes.length, SNIFF_BYTES);
  let controls = 0;
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (c === 0) {
      // Mostly-ASCII UTF-16 without a BOM has a NUL in every other byte: say so, it is fixable.
      const hint = looksLikeBomlessUtf16(bytes, n) ? '; if it is UTF-16 text, save it with a byte-order mark or as UTF-8' : '';
      throw new LivedexError('parse_failed', `looks like a binary file, not text (NUL byte at offset ${i}${hint})`);
    }
    if (isControlByte(c)) controls++;
  }
  if (n > 0 && controls / n > MAX_CONTROL_RATIO) {
    throw new LivedexError('parse_failed', `looks like a binary file, not text (${Math.round((100 * controls) / n)}% control characters in the first ${n} bytes)`);
  }
}

function assertTextChars(text: string): void {
  const n = Math.min(text.length, SNIFF_BYTES);
  let controls = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) throw new LivedexError('parse_failed', `looks like a binary file, not text (NUL character at position ${i})`);
    if (isControlByte(c)) controls++;
  }
  if (n > 0 && controls / n > MAX_CONTROL_RATIO) {
    throw new LivedexError('parse_failed', `looks like a binary file, not text (${Math.round((100 * controls) / n)}% control characters in the first ${n} characters)`);
  }
}

function looksLikeBomlessUtf16(bytes: Uint8Array, n: number): boolean {
  let even = 0;
  let odd = 0;
  for (let i = 0; i < n; i++) if (bytes[i] === 0) (i % 2 === 0 ? even++ : odd++);
  const pairs = n / 2;
  return pairs >= 2 && (Math.max(even, odd) > 0.4 * pairs && Math.min(even, odd) < 0.02 * pairs);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lossyUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

function decodeUtf8(bytes: Uint8Array): DecodedText {
  try {
    return { text: normalizeNewlines(strictUtf8.decode(bytes)), encoding: 'utf-8', lossy: false };
  } catch {
    // Not valid UTF-8: either a few corrupt bytes in a UTF-8 file, or a legacy 8-bit file.
  }
  // Compressed or encoded binary without a NUL up front: about half its bytes are ≥ 0x80,
  // where legacy European text has a few percent. (Text in a legacy Cyrillic or Greek code
  // page lands here too: decoded as windows-1252 it would only be mojibake.)
  const n = Math.min(bytes.length, SNIFF_BYTES);
  let high = 0;
  for (let i = 0; i < n; i++) if (bytes[i]! >= 0x80) high++;
  if (high > MAX_LEGACY_HIGH_RATIO * n) {
    throw new LivedexError(
      'parse_failed',
      `looks like a binary file, not text (${Math.round((100 * high) / n)}% of the first ${n} bytes are not ASCII and the file is not valid UTF-8; if it is text, save it as UTF-8)`,
    );
  }
  const text = lossyUtf8.decode(bytes);
  let replaced = 0;
  let wellFormed = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0xfffd) replaced++;
    else if (c > 0x7f) wellFormed++;
  }
  if (replaced > wellFormed) {
    return { text: normalizeNewlines(decodeLegacy('windows-1252', bytes)), encoding: 'windows-1252', lossy: false };
  }
  return { text: normalizeNewlines(text), encoding: 'utf-8', lossy: true };
}

/**
 * WHATWG windows-1252 for bytes 0x80–0x9F (the rest is Latin-1). Node ≥ 20.18.3 decodes
 * `windows-1252` (and so `latin1`, `iso-8859-1`, `ascii`) as plain Latin-1, which turns
 * `€` and curly quotes into C1 control characters (nodejs/node#60888); this puts them back.
 */
const WINDOWS_1252_C1 = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

function decodeLegacy(encoding: string, bytes: Uint8Array): string {
  const text = new TextDecoder(encoding, { ignoreBOM: true }).decode(bytes);
  if (encoding !== 'windows-1252') return text;
  return text.replace(/[\u0080-\u009f]/g, (c) => String.fromCharCode(WINDOWS_1252_C1[c.charCodeAt(0) - 0x80]!));
}

/** `\r\n` and lone `\r` become `\n`, so the same text checked out on Windows chunks (and hashes) the same. */
function normalizeNewlines(text: string): string {
  return text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text;
}
