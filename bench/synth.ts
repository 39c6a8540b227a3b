/**
 * @module bench/synth — a deterministic synthetic corpus made of SciFact text, for latency at
 * sizes SciFact alone does not reach. Document `i` takes a title and 3–5 sentences drawn from the
 * SciFact abstracts by a PRNG seeded with `i`, so the same size always gives the same files, and
 * each file stays short enough to be one chunk (the chunk count is then close to the file count;
 * the benchmark reports the count the index actually holds).
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** mulberry32: a small, fast, seedable PRNG (32-bit state). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Source {
  titles: string[];
  sentences: string[];
}

async function loadSource(folder: string): Promise<Source> {
  const names = (await readdir(folder)).filter((n) => n.endsWith('.txt')).sort();
  const titles: string[] = [];
  const sentences: string[] = [];
  for (const n of names) {
    const [title = '', ...rest] = (await readFile(join(folder, n), 'utf8')).split('\n');
    titles.push(title.trim());
    for (const s of rest.join(' ').split(/(?<=[.!?])\s+(?=[A-Z])/)) {
      const t = s.trim();
      if (t.length >= 40 && t.length <= 400) sentences.push(t);
    }
  }
  return { titles, sentences };
}

/**
 * Writes `count` synthetic documents under `dir/synth-<count>/docs` (once; a `complete` marker
 * makes later runs reuse them) and returns that folder.
 */
export async function syntheticCorpus(sciFactFolder: string, dir: string, count: number): Promise<string> {
  const root = join(dir, `synth-${count}`);
  const folder = join(root, 'docs');
  if (existsSync(join(root, 'complete'))) return folder;
  await rm(root, { recursive: true, force: true });
  const src = await loadSource(sciFactFolder);
  // 1000 files per sub-folder keeps directory listings small.
  for (let i = 0; i < count; i++) {
    const rand = prng(i + 1);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
    const n = 3 + Math.floor(rand() * 3);
    const body = Array.from({ length: n }, () => pick(src.sentences)).join(' ');
    const sub = join(folder, String(Math.floor(i / 1000)).padStart(3, '0'));
    if (i % 1000 === 0) await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `s${i}.txt`), `${pick(src.titles)}\n\n${body}\n`);
  }
  await writeFile(join(root, 'complete'), String(count));
  return folder;
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ren', 'ta', 'vo', 'shu', 'bel', 'dra', 'nix', 'po', 'qua', 'ser', 'tum', 'gal', 'fe', 'zor', 'wi', 'han', 'ost'];

/**
 * Prose of about `bytes` bytes with varied words (syllables drawn by a PRNG seeded with
 * `seed`): sentences of 6–20 words, paragraphs of 3–7 sentences, so a splitter cuts it as it
 * cuts a real book and the text index sees many distinct terms.
 */
export function syntheticText(bytes: number, seed = 1): string {
  const random = prng(seed);
  const vocabulary: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    let w = '';
    for (let s = 1 + Math.floor(random() * 3); s > 0; s--) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    vocabulary.push(w);
  }
  const paragraphs: string[] = [];
  let size = 0;
  while (size < bytes) {
    const sentences: string[] = [];
    for (let s = 3 + Math.floor(random() * 5); s > 0; s--) {
      const words: string[] = [];
      for (let n = 6 + Math.floor(random() * 15); n > 0; n--) words.push(vocabulary[Math.floor(random() * vocabulary.length)]!);
      const sentence = words.join(' ');
      sentences.push(sentence[0]!.toUpperCase() + sentence.slice(1) + '.');
    }
    const paragraph = sentences.join(' ');
    paragraphs.push(paragraph);
    size += paragraph.length + 2;
  }
  return paragraphs.join('\n\n').slice(0, bytes);
}

/** A CSV of `rows` records with `columns` one-digit columns each (a header row first): the wide-table case. */
export function wideCsv(columns: number, rows: number, seed = 2): string {
  const random = prng(seed);
  const lines: string[] = [];
  const header: string[] = [];
  for (let c = 0; c < columns; c++) header.push(`c${c}`);
  lines.push(header.join(','));
  for (let r = 0; r < rows; r++) {
    const cells: string[] = [];
    for (let c = 0; c < columns; c++) cells.push(String(Math.floor(random() * 10)));
    lines.push(cells.join(','));
  }
  return lines.join('\n') + '\n';
}

/** A Markdown book of about `bytes` bytes: `syntheticText` paragraphs under a chapter heading and a small table every 400 paragraphs. */
export function syntheticMarkdown(bytes: number, seed = 3): string {
  const out: string[] = ['# Book'];
  syntheticText(bytes, seed)
    .split('\n\n')
    .forEach((paragraph, i) => {
      if (i % 400 === 0) out.push(`## Chapter ${i / 400 + 1}`, `| chapter | paragraphs |\n|---|---|\n| ${i / 400 + 1} | 400 |`);
      out.push(paragraph);
    });
  return out.join('\n\n') + '\n';
}

/** What `chunkedCorpus` wrote: the folder of files and the chunk texts in a side file. */
export interface ChunkedCorpus {
  /** Files in `g<NN>/<bucket>/c<i>.txt`; file `i` lies in group `i % 100`, so one group holds 1 % of the files. */
  folder: string;
  /** Every chunk text as `u32 LE byte length` + UTF-8 bytes, in file order (read with `readChunkTexts`). */
  chunksFile: string;
  files: number;
  chunks: number;
}

/** The 100 groups of a chunked corpus: `groupOf(i)` is the group of file `i`, a metadata filter keeping 1 %. */
export const groupOf = (i: number): number => i % 100;

/** The text of file `i` of a chunked corpus and its chunk texts (paragraphs of 900–1,300 characters, ~300 tokens, each one chunk at the default 400). */
export function chunkedDocument(src: { titles: string[]; sentences: string[] }, i: number, chunksPerFile: number): { text: string; chunks: string[] } {
  const rand = prng(0x5eed + i);
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
  const paragraphs: string[] = [];
  for (let c = 0; c < chunksPerFile; c++) {
    let p = '';
    const target = 900 + Math.floor(rand() * 400);
    while (p.length < target) {
      const s = pick(src.sentences);
      if (p.length + s.length > 1300 && p.length >= 900) break;
      p = p ? `${p} ${s}` : s;
    }
    paragraphs.push(p);
  }
  const title = pick(src.titles);
  return { text: `${title}\n\n${paragraphs.join('\n\n')}\n`, chunks: paragraphs.map((p, c) => (c === 0 ? `${title}\n\n${p}` : p)) };
}

/** The SciFact titles and sentences the synthetic documents are drawn from. */
export const loadSciFactSource = loadSource;

/**
 * Writes `chunks` chunk texts in `chunks / chunksPerFile` files under `dir/chunked-<chunks>/docs`
 * (once; a `complete` marker makes later runs reuse them): SciFact sentences in paragraphs the
 * size of one default chunk, so the index holds about `chunks` chunks, the limits in bench/scale.ts
 * index the same texts, and one file in a hundred lies in each group folder (a 1 % filter).
 */
export async function chunkedCorpus(sciFactFolder: string, dir: string, chunks: number, chunksPerFile = 5): Promise<ChunkedCorpus> {
  const root = join(dir, `chunked-${chunks}`);
  const folder = join(root, 'docs');
  const chunksFile = join(root, 'chunks.bin');
  const files = Math.ceil(chunks / chunksPerFile);
  if (existsSync(join(root, 'complete'))) return { folder, chunksFile, files, chunks };
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const src = await loadSource(sciFactFolder);
  const out = await open(chunksFile, 'w');
  let pending: Buffer[] = [];
  let written = 0;
  const made = new Set<string>();
  for (let i = 0; i < files; i++) {
    const { text, chunks: texts } = chunkedDocument(src, i, Math.min(chunksPerFile, chunks - i * chunksPerFile));
    const sub = join(folder, `g${String(groupOf(i)).padStart(2, '0')}`, String(Math.floor(i / 100_000)).padStart(3, '0'));
    if (!made.has(sub)) {
      await mkdir(sub, { recursive: true });
      made.add(sub);
    }
    await writeFile(join(sub, `c${i}.txt`), text);
    for (const t of texts) {
      const bytes = Buffer.from(t, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(bytes.length);
      pending.push(len, bytes);
      written++;
    }
    if (pending.length > 20_000) {
      await out.write(Buffer.concat(pending));
      pending = [];
    }
  }
  await out.write(Buffer.concat(pending));
  await out.close();
  await writeFile(join(root, 'complete'), String(written));
  return { folder, chunksFile, files, chunks: written };
}

/** The chunk texts of a `chunksFile`, in order. */
export async function* readChunkTexts(chunksFile: string): AsyncGenerator<string> {
  const fh = await open(chunksFile, 'r');
  try {
    let rest: Buffer = Buffer.alloc(0);
    for await (const piece of fh.createReadStream({ highWaterMark: 1 << 22 })) {
      let buf: Buffer = rest.length ? Buffer.concat([rest, piece as Buffer]) : (piece as Buffer);
      let at = 0;
      while (at + 4 <= buf.length) {
        const n = buf.readUInt32LE(at);
        if (at + 4 + n > buf.length) break;
        yield buf.toString('utf8', at + 4, at + 4 + n);
        at += 4 + n;
      }
      rest = buf.subarray(at);
      buf = rest;
    }
  } finally {
    await fh.close();
  }
}
