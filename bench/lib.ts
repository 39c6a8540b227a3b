/** Shared pieces of the benchmarks: the SciFact corpus as files, metrics, percentiles, a server on loopback. */
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';

export const DEFAULT_DATASET = resolve(new URL('../../shared/data/scifact', import.meta.url).pathname);

export interface BeirQuery {
  id: string;
  text: string;
}

export interface Dataset {
  queries: BeirQuery[];
  /** query id → (doc id → relevance) */
  qrels: Map<string, Map<string, number>>;
  docCount: number;
  /** Folder holding one `<doc id>.txt` file per document (title, blank line, text). */
  folder: string;
}

async function* jsonLines(path: string): AsyncGenerator<Record<string, unknown>> {
  const stream = path.endsWith('.gz') ? createReadStream(path).pipe(createGunzip()) : createReadStream(path);
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    if (line.trim()) yield JSON.parse(line) as Record<string, unknown>;
  }
}

/** Loads a BEIR dataset and writes its corpus as one file per document under `cacheDir` (once). */
export async function loadDataset(dir: string, cacheDir: string): Promise<Dataset> {
  const corpusPath = ['corpus.jsonl.gz', 'corpus.jsonl'].map((f) => join(dir, f)).find((p) => existsSync(p));
  if (!corpusPath) throw new Error(`no corpus.jsonl(.gz) in ${dir}`);
  const folder = join(cacheDir, 'docs');
  let docCount = 0;
  const marker = join(cacheDir, 'complete');
  if (!existsSync(marker)) {
    await mkdir(folder, { recursive: true });
    for await (const doc of jsonLines(corpusPath)) {
      await writeFile(join(folder, `${String(doc._id)}.txt`), `${String(doc.title ?? '')}\n\n${String(doc.text ?? '')}\n`);
      docCount++;
    }
    await writeFile(marker, String(docCount));
  } else {
    docCount = Number(await readFile(marker, 'utf8'));
  }
  const qrelsPath = ['qrels-test.tsv', 'qrels/test.tsv'].map((f) => join(dir, f)).find((p) => existsSync(p));
  if (!qrelsPath) throw new Error(`no qrels in ${dir}`);
  const qrels = new Map<string, Map<string, number>>();
  for (const line of (await readFile(qrelsPath, 'utf8')).split(/\r?\n/).slice(1)) {
    const [q, d, s] = line.split('\t');
    if (!q || !d) continue;
    if (!qrels.has(q)) qrels.set(q, new Map());
    qrels.get(q)!.set(d, Number(s));
  }
  const queries: BeirQuery[] = [];
  for await (const q of jsonLines(join(dir, 'queries.jsonl'))) {
    if (qrels.has(String(q._id))) queries.push({ id: String(q._id), text: String(q.text) });
  }
  return { queries, qrels, docCount, folder };
}

/** nDCG@k with linear gains, as pytrec_eval computes it for BEIR. */
export function ndcgAt(ranked: string[], rel: Map<string, number>, k: number): number {
  let dcg = 0;
  ranked.slice(0, k).forEach((d, i) => { dcg += (rel.get(d) ?? 0) / Math.log2(i + 2); });
  const ideal = [...rel.values()].sort((a, b) => b - a).slice(0, k);
  const idcg = ideal.reduce((s, g, i) => s + g / Math.log2(i + 2), 0);
  return idcg > 0 ? dcg / idcg : 0;
}

export function recallAt(ranked: string[], rel: Map<string, number>, k: number): number {
  const relevant = [...rel.entries()].filter(([, g]) => g > 0).map(([d]) => d);
  if (relevant.length === 0) return 0;
  const top = new Set(ranked.slice(0, k));
  return relevant.filter((d) => top.has(d)).length / relevant.length;
}

export function mrrAt(ranked: string[], rel: Map<string, number>, k: number): number {
  const i = ranked.slice(0, k).findIndex((d) => (rel.get(d) ?? 0) > 0);
  return i < 0 ? 0 : 1 / (i + 1);
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** The document id of a hit: the file name without `.txt`. */
export const docIdOf = (path: unknown) => String(path).split('/').pop()!.replace(/\.txt$/, '');

/** Chunk hits → distinct documents in rank order. */
export function distinctDocs(paths: unknown[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of paths) {
    const id = docIdOf(p);
    if (!seen.has(id)) {
      seen.add(id);
      out.push(id);
    }
  }
  return out;
}

export async function postJson<T>(url: string, body: unknown): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url} → ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** `100k`, `1m`, `2500` → a count. */
export function parseScale(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(s.trim());
  if (!m) throw new Error(`--scale takes a count such as 100k or 1m, got ${JSON.stringify(s)}`);
  return Math.round(Number(m[1]) * ({ k: 1e3, m: 1e6 }[m[2]!.toLowerCase()] ?? 1));
}

/** 1000000 → `1m`, 100000 → `100k`. */
export const scaleName = (n: number): string => (n % 1e6 === 0 ? `${n / 1e6}m` : n % 1e3 === 0 ? `${n / 1e3}k` : String(n));
