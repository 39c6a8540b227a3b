/**
 * @module bench/synth — a deterministic synthetic corpus made of SciFact text, for latency at
 * sizes SciFact alone does not reach. Document `i` takes a title and 3–5 sentences drawn from the
 * SciFact abstracts by a PRNG seeded with `i`, so the same size always gives the same files, and
 * each file stays short enough to be one chunk (the chunk count is then close to the file count;
 * the benchmark reports the count the index actually holds).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
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
