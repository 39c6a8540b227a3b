/** @module bench/vectors — the offline `hashing` vectors of a chunked corpus and of SciFact's queries, cached as float32 files. */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { HashingEmbedder } from '../src/models/hashing.js';
import { loadSciFactSource, prng, readChunkTexts } from './synth.js';

/** One float32 vector per chunk of `chunksFile`, `dimensions` wide, in one array (embedded once, then read from beside it). */
export async function chunkVectors(chunksFile: string, count: number, dimensions = 384): Promise<{ vectors: Float32Array; embedS: number | null }> {
  const file = `${chunksFile}.${dimensions}.f32`;
  if (existsSync(file)) {
    const buf = await readFile(file);
    if (buf.length === count * dimensions * 4) return { vectors: new Float32Array(buf.buffer, buf.byteOffset, count * dimensions), embedS: null };
  }
  const embedder = new HashingEmbedder({ dimensions });
  const vectors = new Float32Array(count * dimensions);
  const started = performance.now();
  let i = 0;
  for await (const text of readChunkTexts(chunksFile)) {
    if (i >= count) break;
    vectors.set(embedder.embedText(text), i * dimensions);
    i++;
  }
  if (i !== count) throw new Error(`${chunksFile} holds ${i} chunks, expected ${count}`);
  const embedS = (performance.now() - started) / 1000;
  await writeFile(`${file}.tmp`, new Uint8Array(vectors.buffer));
  await rename(`${file}.tmp`, file);
  return { vectors, embedS };
}

/**
 * `count` query vectors by `hashing`: SciFact's own queries first (300), then the first 6–14
 * words of SciFact sentences picked by a seeded PRNG (query-sized texts that share words with the
 * corpus without being one of its chunks).
 */
export async function queryVectors(datasetDir: string, sciFactFolder: string, count: number, dimensions = 384): Promise<Float32Array[]> {
  const embedder = new HashingEmbedder({ dimensions });
  const out: Float32Array[] = [];
  for await (const line of createInterface({ input: createReadStream(join(datasetDir, 'queries.jsonl')), crlfDelay: Infinity })) {
    if (!line.trim() || out.length === count) continue;
    out.push(embedder.embedText(String((JSON.parse(line) as { text: unknown }).text)));
  }
  const { sentences } = await loadSciFactSource(sciFactFolder);
  const rand = prng(0x9e3779b9);
  while (out.length < count) {
    const words = sentences[Math.floor(rand() * sentences.length)]!.split(/\s+/);
    out.push(embedder.embedText(words.slice(0, 6 + Math.floor(rand() * 9)).join(' ')));
  }
  return out;
}

/** Row `i` of a packed vector array as the plain array hnswlib-node's calls take. */
export const row = (vectors: Float32Array, i: number, dimensions: number): number[] => Array.from(vectors.subarray(i * dimensions, (i + 1) * dimensions));
