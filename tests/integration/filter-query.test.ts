import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../src/core/log.js';
import { fuseLegs } from '../../src/engine/index.js';
import { HashingEmbedder } from '../../src/models/hashing.js';
import { parseConfig, serve } from '../../src/livedex.js';
import { retrieve, tempDir, type WireHit } from '../helpers/livedex.js';

/** 1,000 one-chunk documents in 100 groups: `group == 7` keeps 1 % of them. */
const DOCS = 1000;
const WORDS = 'tide harbor lantern keeper storm reef gull anchor beacon fog rope sail hull mast cliff shore wave salt chart compass drift ember brine kelp'.split(' ');
function textOf(i: number): string {
  let x = (i * 2654435761) >>> 0;
  const out: string[] = [];
  for (let w = 0; w < 14; w++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(WORDS[(x >>> 8) % WORDS.length]!);
  }
  return `${out.join(' ')} doc${i}`;
}

const QUERIES = ['lantern keeper storm', 'fog over the reef and the harbor', 'salt brine kelp drift'];
const FILTER = 'group == `7`';
const K = 5;
const embedder = new HashingEmbedder();
const docs = new Map<string, { text: string; group: number }>();

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

describe('a metadata filter keeping 1 % of the documents, through REST', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: Awaited<ReturnType<typeof serve>>;

  const put = async (key: string, text: string, group: number) => {
    const res = await fetch(`${server.url}/v1/documents/${key}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text, metadata: { group } }) });
    assert.equal(res.status, 202, await res.text());
    docs.set(`push:${key}`, { text, group });
  };

  /** The exact vector leg over the filtered documents: cosine of the query with each, best first. */
  async function vectorLeg(query: string): Promise<Array<{ key: string; score: number }>> {
    const kept = [...docs].filter(([, d]) => d.group === 7);
    const [q, ...vs] = await embedder.embed([query, ...kept.map(([, d]) => d.text)]);
    return kept.map(([key], i) => ({ key, score: cosine(q!, vs[i]!) })).sort((a, b) => b.score - a.score);
  }

  /** The exact BM25 leg: the unfiltered ranking of every matching document, cut to the group (BM25 is not approximate). */
  async function bm25Leg(query: string): Promise<Array<{ key: string; score: number }>> {
    const all = await retrieve(server.url, { query, k: 1000, mode: 'bm25' });
    return all.filter((h) => h.metadata.group === 7).map((h) => ({ key: String(h.metadata.path), score: h.scores.bm25! }));
  }

  /** Top-k keys equal, allowing a swap between hits whose scores tie (within float rounding). */
  function assertSameTop(got: WireHit[], want: Array<{ key: string; score: number }>, score: (h: WireHit) => number, what: string): void {
    assert.equal(got.length, Math.min(K, want.length), `${what}: hit count`);
    got.forEach((h, i) => {
      assert.equal(h.metadata.group, 7, `${what}: a hit outside the filter`);
      assert.ok(Math.abs(score(h) - want[i]!.score) < 1e-4, `${what}: rank ${i} scores ${score(h)}, the reference ${want[i]!.score} (${want[i]!.key})`);
      const ref = want.find((w) => w.key === h.metadata.path);
      assert.ok(ref, `${what}: rank ${i} is ${String(h.metadata.path)}, not among the kept documents`);
      if (ref.key !== want[i]!.key) assert.ok(Math.abs(want[i]!.score - ref.score) < 1e-6, `${what}: rank ${i} is ${ref.key}, the reference ${want[i]!.key}`);
    });
  }

  async function assertExact(query: string): Promise<void> {
    const vec = await vectorLeg(query);
    const bm = await bm25Leg(query);
    const v = await retrieve(server.url, { query, k: K, mode: 'vector', metadata_filter: FILTER });
    assertSameTop(v, vec, (h) => h.scores.vector!, `vector "${query}"`);
    const b = await retrieve(server.url, { query, k: K, mode: 'bm25', metadata_filter: FILTER });
    assertSameTop(b, bm, (h) => h.scores.bm25!, `bm25 "${query}"`);
    // RRF ranks by leg position, so equal cosines (documents sharing no word with the query)
    // would be ordered by chunk ids the reference does not know: it is compared when there are none.
    const vectorTies = vec.some((h, i) => i > 0 && Math.abs(vec[i - 1]!.score - h.score) < 1e-6);
    for (const fusion of vectorTies ? (['convex'] as const) : (['rrf', 'convex'] as const)) {
      const id = new Map([...docs.keys()].map((k, i) => [k, i]));
      const keyOf = new Map([...id].map(([k, i]) => [i, k]));
      const fused = fuseLegs(
        bm.slice(0, 50).map((h) => ({ id: id.get(h.key)!, score: h.score })),
        vec.slice(0, 50).map((h) => ({ id: id.get(h.key)!, score: h.score })),
        { mode: 'hybrid', fusion, alpha: 0.2, rrfK: 60, k: 1000 },
      ).map((f) => ({ key: keyOf.get(f.id)!, score: f.fused }));
      const h = await retrieve(server.url, { query, k: K, mode: 'hybrid', fusion, metadata_filter: FILTER, ...(fusion === 'convex' ? { alpha: 0.2 } : {}) });
      assertSameTop(h, fused, (x) => x.scores.fused!, `hybrid ${fusion} "${query}"`);
    }
  }

  const settle = () => server.index.sync();

  before(async () => {
    dir = await tempDir();
    server = await serve(parseConfig({ data_dir: dir.path, host: '127.0.0.1', port: 0, embedder: 'hashing', sandbox: { enabled: false }, sources: ['push'] }), { logger: createLogger({ level: 'silent' }) });
    await server.ready;
    for (let i = 0; i < DOCS; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => put(`d${i + j}.txt`, textOf(i + j), (i + j) % 100)));
    await settle();
  });
  after(async () => {
    await server?.close();
    await dir?.cleanup();
  });

  it('answers exactly the top-k of an exhaustive search over the kept documents, in vector, bm25 and hybrid modes', async () => {
    for (const q of QUERIES) await assertExact(q);
  });

  it('answers the edited text and the documents moved into the filter after an edit, not what the filter kept before', async () => {
    for (const q of QUERIES) await retrieve(server.url, { query: q, k: K, mode: 'hybrid', metadata_filter: FILTER }); // the kept set is cached now
    await put('d107.txt', 'lantern keeper storm lantern keeper storm', 7);
    await put('d108.txt', 'fog over the reef and the harbor', 7); // was in group 8
    await settle();
    for (const q of QUERIES) await assertExact(q);
    const top = await retrieve(server.url, { query: 'fog over the reef and the harbor', k: K, mode: 'vector', metadata_filter: FILTER });
    assert.equal(top[0]!.metadata.path, 'push:d108.txt');
  });

  it('never answers a deleted document or one edited out of the filter', async () => {
    const res = await fetch(`${server.url}/v1/documents/d108.txt`, { method: 'DELETE' });
    assert.ok(res.ok, await res.text());
    docs.delete('push:d108.txt');
    await put('d107.txt', textOf(107), 9); // moved out of group 7
    await settle();
    for (const q of QUERIES) {
      for (const mode of ['vector', 'bm25', 'hybrid']) {
        const hits = await retrieve(server.url, { query: q, k: K, mode, metadata_filter: FILTER });
        assert.ok(!hits.some((h) => h.metadata.path === 'push:d108.txt' || h.metadata.path === 'push:d107.txt'), `${mode} "${q}" answered a stale document`);
      }
      await assertExact(q);
    }
  });
});
