/** @module parsers/markdown — Markdown kept as text, cut into sections by heading, front matter into metadata. */
import { z } from 'zod';
import { definePlugin } from '../core/registry.js';
import type { Metadata, ParsedPart, ParseInput, Parser } from '../core/types.js';
import { decodeText, isBlank } from './decode.js';
import { SectionBuilder } from './sections.js';

export const MARKDOWN_EXTENSIONS: readonly string[] = ['.md', '.markdown', '.mdx'];

export const markdownParserOptions = z.strictObject({
  extensions: z.array(z.string().regex(/^\.[a-z0-9][a-z0-9._+-]*$/, 'an extension is lower-case and starts with a dot, like ".md"')).default([...MARKDOWN_EXTENSIONS]),
});

/**
 * Keys a front matter may not set: they belong to the source (where the document lives, its
 * version) or to the parser. A front matter key that the source metadata already has is
 * dropped as well, since part metadata overrides document metadata in every chunk.
 */
const RESERVED_KEYS = new Set(['path', 'key', 'url', 'size', 'version', 'modified_at', 'created_at', 'indexed_at', 'seen_at', 'headings']);

const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$/;
const SETEXT_UNDERLINE = /^ {0,3}(=+|-+)[ \t]*$/;
const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})(.*)$/;
/** Lines that start a block other than a paragraph: a `---` under them is a rule, not a heading. */
const NOT_PARAGRAPH = /^ {0,3}(?:[-*+][ \t]|\d{1,9}[.)][ \t]|>|\||<)|^(?: {4}|\t)/;

/**
 * Parses Markdown (and MDX) into one part per section, each with `headings`, the heading path.
 *
 * ATX (`## Title`) and setext (`Title` over `===`/`---`) headings count; lines inside fenced
 * code blocks never do, so `# comment` in a shell snippet stays code. The text keeps its
 * Markdown syntax: it reads well as is, and code and tables survive.
 *
 * @example
 * const parts = await new MarkdownParser().parse({ key: 'README.md', bytes, extension: '.md', metadata: {} });
 * parts[1]?.metadata.headings; // ["Install", "From source"]
 */
export class MarkdownParser implements Parser {
  readonly name = 'markdown';
  /** Heading paths and page ranges kept, table rows never cut. */
  readonly splitter = 'structure';
  readonly extensions: readonly string[];

  constructor(extensions: readonly string[] = MARKDOWN_EXTENSIONS) {
    this.extensions = [...extensions];
  }

  async parse(input: ParseInput): Promise<ParsedPart[]> {
    input.signal?.throwIfAborted();
    const { text } = decodeText(input.bytes);
    if (isBlank(text)) return [];
    const lines = text.split('\n');
    const { fields, bodyStart } = readFrontMatter(lines);
    const frontMatter: Metadata = {};
    for (const [k, v] of Object.entries(fields)) {
      if (!RESERVED_KEYS.has(k) && !(k in input.metadata)) frontMatter[k] = v;
    }
    input.signal?.throwIfAborted();
    return splitSections(lines, bodyStart).map((s) => ({ text: s.text, metadata: { ...frontMatter, headings: s.headings } }));
  }
}

/** Cuts Markdown lines (from `start`) into sections by heading, ignoring fenced code. */
export function splitSections(lines: readonly string[], start = 0) {
  const builder = new SectionBuilder();
  /** Lines of the paragraph being read: a setext underline turns them into a heading. */
  let paragraph: string[] = [];
  /** The closing line of the open fenced code block, if any. */
  let fenceClose: RegExp | null = null;

  const flushParagraph = () => {
    for (const l of paragraph) builder.line(l);
    paragraph = [];
  };

  for (let i = start; i < lines.length; i++) {
    const line = lines[i]!;
    if (fenceClose) {
      builder.line(line);
      if (fenceClose.test(line)) fenceClose = null;
      continue;
    }
    const open = FENCE_OPEN.exec(line);
    if (open && !(open[1]![0] === '`' && open[2]!.includes('`'))) {
      flushParagraph();
      fenceClose = new RegExp(`^ {0,3}${open[1]![0] === '`' ? '`' : '~'}{${open[1]!.length},}[ \\t]*$`);
      builder.line(line);
      continue;
    }
    const atx = ATX.exec(line);
    if (atx) {
      flushParagraph();
      builder.heading(atx[1]!.length, cleanHeading(stripClosingHashes(atx[2] ?? '')), [line]);
      continue;
    }
    const underline = SETEXT_UNDERLINE.exec(line);
    if (underline && paragraph.length > 0 && !NOT_PARAGRAPH.test(paragraph[0]!)) {
      const title = cleanHeading(paragraph.map((l) => l.trim()).join(' '));
      builder.heading(underline[1]![0] === '=' ? 1 : 2, title, [...paragraph, line]);
      paragraph = [];
      continue;
    }
    if (line.trim() === '') {
      flushParagraph();
      builder.line(line);
      continue;
    }
    paragraph.push(line);
  }
  flushParagraph();
  return builder.finish();
}

/** `## Title ##` → `Title`; a closing run of `#` counts only after a space. */
function stripClosingHashes(s: string): string {
  if (/^#+$/.test(s)) return '';
  return s.replace(/[ \t]+#+$/, '');
}

/** Heading text as a reader sees it: links and images by their text, no code ticks, emphasis or tags. */
function cleanHeading(s: string): string {
  return s
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/!?\[([^\]]*)\]\[[^\]]*\]/g, '$1')
    .replace(/<[^>]*>/g, '')
    .replace(/`+/g, '')
    .replace(/\*{1,3}([^*]+)\*{1,3}/g, '$1')
    .replace(/\s+/g, ' ')
    .trim();
}

type FrontMatterValue = string | number | boolean | string[];

/**
 * Reads a YAML (`---`) or TOML (`+++`) front matter at the very top: flat `key: value` (or
 * `key = value`) lines, inline lists `[a, b]` and `- item` lists under a bare key. Anything
 * nested is skipped — this is not a YAML parser, it only lifts the common fields (title,
 * description, tags, date, author) into metadata.
 */
export function readFrontMatter(lines: readonly string[]): { fields: Record<string, FrontMatterValue>; bodyStart: number } {
  const none = { fields: {}, bodyStart: 0 };
  const first = lines[0]?.trimEnd();
  if (first !== '---' && first !== '+++') return none;
  const toml = first === '+++';
  let end = -1;
  for (let i = 1; i < Math.min(lines.length, 500); i++) {
    const l = lines[i]!.trimEnd();
    if (l === first || (!toml && l === '...')) {
      end = i;
      break;
    }
  }
  if (end < 0) return none;

  const fields: Record<string, FrontMatterValue> = {};
  const pair = toml ? /^([A-Za-z_][\w.-]*)[ \t]*=[ \t]*(.*)$/ : /^([A-Za-z_][\w.-]*)[ \t]*:(?:[ \t]+(.*))?$/;
  let listKey: string | null = null;
  for (let i = 1; i < end; i++) {
    const line = lines[i]!;
    const item = /^[ \t]+-[ \t]+(.*)$/.exec(line) ?? /^-[ \t]+(.*)$/.exec(line);
    if (item && listKey) {
      const list = fields[listKey];
      if (Array.isArray(list)) list.push(unquote(item[1]!.trim()));
      continue;
    }
    listKey = null;
    const m = pair.exec(line);
    if (!m) continue;
    const key = m[1]!;
    const raw = stripComment((m[2] ?? '').trim());
    if (raw === '') {
      if (!toml) {
        fields[key] = [];
        listKey = key;
      }
      continue;
    }
    fields[key] = scalarOrList(raw);
  }
  for (const [k, v] of Object.entries(fields)) if (Array.isArray(v) && v.length === 0) delete fields[k];
  return { fields, bodyStart: end + 1 };
}

function stripComment(s: string): string {
  if (s.startsWith('"') || s.startsWith("'")) return s;
  return s.replace(/[ \t]+#.*$/, '');
}

function scalarOrList(raw: string): FrontMatterValue {
  if (raw.startsWith('[') && raw.endsWith(']')) {
    return raw
      .slice(1, -1)
      .split(',')
      .map((s) => unquote(s.trim()))
      .filter((s) => s !== '');
  }
  if (raw === 'true' || raw === 'false') return raw === 'true';
  if (/^-?\d+(?:\.\d+)?$/.test(raw) && raw.length < 16) return Number(raw);
  return unquote(raw);
}

function unquote(s: string): string {
  if (s.length >= 2 && ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'")))) return s.slice(1, -1);
  return s;
}

export const markdownParser = definePlugin({
  kind: 'parser',
  name: 'markdown',
  module: import.meta.url,
  description: 'Markdown and MDX, kept as text and cut into sections by heading (heading path in `headings`); front matter fields become metadata.',
  options: markdownParserOptions,
  create: (options) => new MarkdownParser(options.extensions),
});
