/**
 * @module bench/peers — livedex side by side with what users would pick instead, in one run, on the
 * same documents and queries, with the same embedding function (livedex's offline `hashing`
 * embedder wrapped as each library's embedding class, so the vectors are identical):
 *
 * - LangChain.js: `MemoryVectorStore` + a BM25 retriever + `EnsembleRetriever` (RRF), fed and
 *   updated through `index()` from `@langchain/core/indexing` with an in-memory record manager.
 * - LlamaIndex.TS: `VectorStoreIndex` (its default in-memory store and node parser); an edit is
 *   `deleteRefDoc` + `insert`.
 *
 * Two shims were needed and are labelled: `@langchain/community` (home of `BM25Retriever`) does not
 * install beside our `@langchain/core`, so `MiniBm25Retriever` is a minimal Okapi BM25 (k1 1.2,
 * b 0.75, lower-cased letter/digit words, no stemming); and `MemoryVectorStore` has no `delete`
 * and drops the ids `index()` gives it, so `DeletableMemoryVectorStore` adds both. LangChain has no
 * in-memory record manager in `@langchain/core`, so `InMemoryRecordManager` implements it.
 *
 * The libraries do not watch anything: their "re-index after one edit" starts with the edited
 * document in hand, while livedex's starts at the file write and ends when a query finds it.
 */
import { Document } from '@langchain/core/documents';
import { Embeddings } from '@langchain/core/embeddings';
import { index } from '@langchain/core/indexing';
import { RecordManager, type ListKeyOptions, type UpdateOptions } from '@langchain/core/indexing';
import { BaseRetriever } from '@langchain/core/retrievers';
import { EnsembleRetriever } from '@langchain/classic/retrievers/ensemble';
import { MemoryVectorStore } from '@langchain/classic/vectorstores/memory';
import { BaseEmbedding, Document as LlamaDocument, Settings, VectorStoreIndex } from 'llamaindex';
import { HashingEmbedder } from '../src/models/hashing.js';
import { mean, ndcgAt, percentile } from './lib.js';

export interface PeerDoc {
  id: string;
  text: string;
}

/** What each system is measured on; times in ms. */
export interface PeerResult {
  system: string;
  ingestMs: number;
  reindexOneMs: number;
  queryP50Ms: number;
  queryP99Ms: number;
  ndcg10: number;
}

export interface PeerInput {
  docs: PeerDoc[];
  queries: Array<{ id: string; text: string }>;
  qrels: Map<string, Map<string, number>>;
  /** The document edited for the re-index measurement, and its new text. */
  edit: PeerDoc;
}

/** livedex's hashing embedder as a LangChain `Embeddings`. */
class HashingLangChainEmbeddings extends Embeddings {
  #e = new HashingEmbedder();
  constructor() {
    super({});
  }
  async embedDocuments(texts: string[]): Promise<number[][]> {
    return (await this.#e.embed(texts)).map((v) => Array.from(v));
  }
  async embedQuery(text: string): Promise<number[]> {
    return Array.from(await this.#e.embedQuery(text));
  }
}

/** livedex's hashing embedder as a LlamaIndex `BaseEmbedding`. */
class HashingLlamaEmbedding extends BaseEmbedding {
  #e = new HashingEmbedder();
  // biome-ignore lint/complexity/noUselessConstructor: BaseEmbedding's constructor is protected; this one makes it public
  constructor() {
    super();
  }
  async getTextEmbedding(text: string): Promise<number[]> {
    return Array.from(this.#e.embedText(text));
  }
  override getTextEmbeddings = async (texts: string[]): Promise<number[][]> => (await this.#e.embed(texts)).map((v) => Array.from(v));
}

/** SHIM: `MemoryVectorStore` with the ids `index()` passes kept, and `delete({ ids })`. */
class DeletableMemoryVectorStore extends MemoryVectorStore {
  override async addDocuments(documents: Document[], options?: { ids?: string[] }): Promise<void> {
    const withIds = documents.map((d, i) => new Document({ pageContent: d.pageContent, metadata: d.metadata, id: options?.ids?.[i] ?? d.id }));
    await super.addDocuments(withIds);
  }
  override async delete(params: { ids: string[] }): Promise<void> {
    const gone = new Set(params.ids);
    this.memoryVectors = this.memoryVectors.filter((v) => !v.id || !gone.has(v.id));
  }
}

/** SHIM: an in-memory `RecordManager` (key → updated-at time and group). */
class InMemoryRecordManager extends RecordManager {
  override lc_namespace = ['bench', 'record_manager'];
  #records = new Map<string, { at: number; group: string | null }>();
  #last = 0;
  async createSchema(): Promise<void> {}
  async getTime(): Promise<number> {
    // Strictly increasing, so records written by one `index()` call are "before" the next call.
    this.#last = Math.max(this.#last + 1, Date.now());
    return this.#last;
  }
  async update(keys: string[], opts: UpdateOptions = {}): Promise<void> {
    const at = await this.getTime();
    if (opts.timeAtLeast && at < opts.timeAtLeast) throw new Error('time went backwards');
    keys.forEach((k, i) => { this.#records.set(k, { at, group: opts.groupIds?.[i] ?? null }); });
  }
  async exists(keys: string[]): Promise<boolean[]> {
    return keys.map((k) => this.#records.has(k));
  }
  async listKeys(o: ListKeyOptions = {}): Promise<string[]> {
    const groups = o.groupIds ? new Set(o.groupIds) : null;
    const out: string[] = [];
    for (const [k, r] of this.#records) {
      if (o.before !== undefined && r.at >= o.before) continue;
      if (o.after !== undefined && r.at <= o.after) continue;
      if (groups && !groups.has(r.group)) continue;
      out.push(k);
      if (o.limit && out.length >= o.limit) break;
    }
    return out;
  }
  async deleteKeys(keys: string[]): Promise<void> {
    for (const k of keys) this.#records.delete(k);
  }
}

const words = (s: string) => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

/** SHIM: a minimal Okapi BM25 retriever (k1 1.2, b 0.75), built from scratch for every corpus change. */
class MiniBm25Retriever extends BaseRetriever {
  override lc_namespace = ['bench', 'retrievers'];
  #docs: Document[];
  #tf: Array<Map<string, number>>;
  #len: number[];
  #df = new Map<string, number>();
  #avg: number;
  constructor(docs: Document[], readonly topK: number) {
    super();
    this.#docs = docs;
    this.#tf = docs.map((d) => {
      const tf = new Map<string, number>();
      for (const w of words(d.pageContent)) tf.set(w, (tf.get(w) ?? 0) + 1);
      for (const w of tf.keys()) this.#df.set(w, (this.#df.get(w) ?? 0) + 1);
      return tf;
    });
    this.#len = this.#tf.map((tf) => [...tf.values()].reduce((a, b) => a + b, 0));
    this.#avg = mean(this.#len);
  }
  override async _getRelevantDocuments(query: string): Promise<Document[]> {
    const n = this.#docs.length;
    const terms = [...new Set(words(query))];
    const scored: Array<[number, number]> = [];
    this.#tf.forEach((tf, i) => {
      let s = 0;
      for (const t of terms) {
        const f = tf.get(t);
        if (!f) continue;
        const df = this.#df.get(t)!;
        const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5));
        s += (idf * f * 2.2) / (f + 1.2 * (0.25 + (0.75 * this.#len[i]!) / this.#avg));
      }
      if (s > 0) scored.push([s, i]);
    });
    return scored
      .sort((a, b) => b[0] - a[0])
      .slice(0, this.topK)
      .map(([, i]) => this.#docs[i]!);
  }
}

async function measureQueries(input: PeerInput, run: (q: string) => Promise<string[]>): Promise<{ p50: number; p99: number; ndcg10: number }> {
  const lat: number[] = [];
  const ndcg: number[] = [];
  for (const q of input.queries) {
    const s = performance.now();
    const ids = await run(q.text);
    lat.push(performance.now() - s);
    ndcg.push(ndcgAt([...new Set(ids)], input.qrels.get(q.id)!, 10));
  }
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), ndcg10: mean(ndcg) };
}

/** LangChain.js: ingest and one edit through `index()`; the BM25 leg is rebuilt each time (it has no update). */
export async function runLangChain(input: PeerInput): Promise<PeerResult[]> {
  const toDoc = (d: PeerDoc) => new Document({ pageContent: d.text, metadata: { source: d.id } });
  const docs = input.docs.map(toDoc);
  const store = new DeletableMemoryVectorStore(new HashingLangChainEmbeddings());
  const records = new InMemoryRecordManager();
  let t = performance.now();
  await index({ docsSource: docs, recordManager: records, vectorStore: store, options: { cleanup: 'incremental', sourceIdKey: 'source' } });
  let bm25 = new MiniBm25Retriever(docs, 10);
  const ingestMs = performance.now() - t;

  const edited = docs.map((d) => (d.metadata.source === input.edit.id ? toDoc(input.edit) : d));
  t = performance.now();
  const res = await index({ docsSource: edited, recordManager: records, vectorStore: store, options: { cleanup: 'incremental', sourceIdKey: 'source' } });
  bm25 = new MiniBm25Retriever(edited, 10);
  const reindexOneMs = performance.now() - t;
  if (res.numAdded !== 1 || res.numDeleted !== 1) throw new Error(`index() after one edit: ${JSON.stringify(res)}`);

  const vector = store.asRetriever(10);
  const ensemble = new EnsembleRetriever({ retrievers: [bm25, vector], weights: [0.5, 0.5] });
  const ids = (ds: Document[]) => ds.map((d) => String(d.metadata.source));
  const hybrid = await measureQueries(input, async (q) => ids(await ensemble.invoke(q)));
  const vec = await measureQueries(input, async (q) => ids(await vector.invoke(q)));
  return [
    { system: 'LangChain.js EnsembleRetriever (BM25 + MemoryVectorStore, RRF)', ingestMs, reindexOneMs, queryP50Ms: hybrid.p50, queryP99Ms: hybrid.p99, ndcg10: hybrid.ndcg10 },
    { system: 'LangChain.js MemoryVectorStore (vector)', ingestMs, reindexOneMs, queryP50Ms: vec.p50, queryP99Ms: vec.p99, ndcg10: vec.ndcg10 },
  ];
}

/** LlamaIndex.TS: `VectorStoreIndex.fromDocuments`, then `deleteRefDoc` + `insert` for the edit. */
export async function runLlamaIndex(input: PeerInput): Promise<PeerResult> {
  Settings.embedModel = new HashingLlamaEmbedding();
  const toDoc = (d: PeerDoc) => new LlamaDocument({ text: d.text, id_: d.id, metadata: { source: d.id } });
  let t = performance.now();
  const idx = await VectorStoreIndex.fromDocuments(input.docs.map(toDoc));
  const ingestMs = performance.now() - t;
  t = performance.now();
  await idx.deleteRefDoc(input.edit.id);
  await idx.insert(toDoc(input.edit));
  const reindexOneMs = performance.now() - t;
  const retriever = idx.asRetriever({ similarityTopK: 10 });
  const q = await measureQueries(input, async (text) => (await retriever.retrieve(text)).map((h) => String(h.node.metadata.source)));
  return { system: 'LlamaIndex.TS VectorStoreIndex (vector)', ingestMs, reindexOneMs, queryP50Ms: q.p50, queryP99Ms: q.p99, ndcg10: q.ndcg10 };
}
