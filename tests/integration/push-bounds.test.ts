/** Bounded documents: metadata size and chunk count limits, and a document's metadata stored once, not once per chunk. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { openEngine } from '../../src/engine/index.js';
import { createLogger } from '../../src/core/log.js';
import { definePlugin } from '../../src/core/registry.js';
import type { DocumentInfo, Metadata, Source, SourceContext } from '../../src/core/types.js';
import { parseConfig, serve } from '../../src/livedex.js';
import { countingRegistry, get, post, retrieve, tempDir, waitFor } from '../helpers/livedex.js';

const MB = 1024 * 1024;

async function start(dataDir: string, config: Record<string, unknown> = {}, registry = countingRegistry()) {
  const parsed = parseConfig({
    data_dir: dataDir,
    host: '127.0.0.1',
    port: 0,
    embedder: 'counting',
    sandbox: { enabled: false },
    sources: ['push'],
    ...config,
  });
  return serve(parsed, { logger: createLogger({ level: 'silent' }), registry });
}

async function put(base: string, key: string, body: string, headers: Record<string, string>) {
  const res = await fetch(`${base}/v1/documents/${key}`, { method: 'PUT', headers, body });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string; field?: string } } & Record<string, unknown> };
}

/** Bytes of every file under `dir`. */
async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await dirBytes(path) : (await stat(path)).size;
  }
  return total;
}

/** `n` words of prose, varied enough to make many chunks. */
function words(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`word${i % 997}${i % 7 === 6 ? '.' : ''}`);
  return out.join(' ');
}

/** The first truthy value of `check`. */
async function until<T>(check: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  return (await waitFor(check, timeoutMs)).value as T;
}

const status = (url: string, key: string) => async () => (await get<DocumentInfo>(url, `/v1/documents/${key}`)).body;

describe('bounded documents', () => {
  it('refuses a push whose metadata is over pipeline.max_metadata_bytes (413, naming metadata and the limit), body or header', async () => {
    const data = await tempDir();
    const server = await start(data.path);
    try {
      await server.ready;
      // The reproduction: a 1 MB metadata value and 60,000 words of text (1.4 MB of JSON).
      const body = JSON.stringify({ text: words(60_000), metadata: { blob: 'x'.repeat(MB) } });
      assert.ok(body.length > 1.4 * MB);
      const big = await put(server.url, 'amplify', body, { 'content-type': 'application/json' });
      assert.equal(big.status, 413);
      assert.equal(big.body.error?.field, 'metadata');
      assert.match(big.body.error?.message ?? '', /above the 65536 bytes limit \(pipeline\.max_metadata_bytes\)/);
      assert.equal((await get(server.url, '/v1/documents/push:amplify')).status, 404, 'nothing is kept of a refused push');

      const under = await put(server.url, 'ok.txt', 'small text about otters', { 'content-type': 'text/plain', 'x-livedex-metadata': JSON.stringify({ team: 'wildlife' }) });
      assert.equal(under.status, 202);
    } finally {
      await server.close();
      await data.cleanup();
    }
  });

  it('applies the same limit to the X-Livedex-Metadata header', async () => {
    const data = await tempDir();
    const server = await start(data.path, { pipeline: { max_metadata_bytes: 1024 } });
    try {
      await server.ready;
      const res = await put(server.url, 'notes.txt', 'small text', { 'content-type': 'text/plain', 'x-livedex-metadata': JSON.stringify({ note: 'n'.repeat(2000) }) });
      assert.equal(res.status, 413);
      assert.equal(res.body.error?.field, 'metadata');
      assert.match(res.body.error?.message ?? '', /above the 1024 bytes limit \(pipeline\.max_metadata_bytes\)/);
    } finally {
      await server.close();
      await data.cleanup();
    }
  });

  it('stores a 1 MB metadata value once: 60,000 words make hundreds of chunks and the data dir stays a few MB', async () => {
    const data = await tempDir();
    const server = await start(data.path, { pipeline: { max_metadata_bytes: 2 * MB } });
    try {
      await server.ready;
      const blob = 'x'.repeat(MB);
      const body = JSON.stringify({ text: words(60_000), metadata: { blob, team: 'it' } });
      const res = await put(server.url, 'amplify', body, { 'content-type': 'application/json' });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      const doc = await until(async () => {
        const d = await status(server.url, 'push:amplify')();
        return d.status === 'indexed' ? d : null;
      }, 60_000);
      assert.ok(doc.chunk_count >= 200, `many chunks (got ${doc.chunk_count})`);
      await server.close();
      // Before: every chunk carried the megabyte (922 MB for 450 chunks). Now: the text, the
      // pushed body kept by the push source, the document row, embeddings and indexes.
      const size = await dirBytes(data.path);
      assert.ok(size < 12 * MB, `data dir is ${(size / MB).toFixed(1)} MB`);
    } finally {
      await server.close();
      await data.cleanup();
    }
  });

  it('gives every chunk its complete metadata after a restart: the document metadata, then what the chunk sets itself', async () => {
    const data = await tempDir();
    let server = await start(data.path);
    try {
      await server.ready;
      const res = await put(server.url, 'guide.md', `# Install\n\n${words(600)}\n\n# Usage\n\n${words(600)}`, { 'content-type': 'text/markdown', 'x-livedex-metadata': JSON.stringify({ team: 'docs', tags: ['a', 'b'], owner: null }) });
      assert.equal(res.status, 202);
      await waitFor(async () => (await status(server.url, 'push:guide.md')()).status === 'indexed', 20_000);
      const before = await retrieve(server.url, { query: 'word1 word2', k: 50, mode: 'bm25', metadata_filter: "team == 'docs'" });
      assert.ok(before.length >= 2);
      await server.close();
      server = await start(data.path);
      await server.ready;
      const afterRestart = await retrieve(server.url, { query: 'word1 word2', k: 50, mode: 'bm25', metadata_filter: "team == 'docs'" });
      const strip = (hits: typeof before) => hits.map((h) => ({ text: h.text, metadata: h.metadata })).sort((a, b) => a.text.localeCompare(b.text));
      assert.deepEqual(strip(afterRestart), strip(before));
      for (const hit of afterRestart) {
        assert.equal(hit.metadata.team, 'docs');
        assert.deepEqual(hit.metadata.tags, ['a', 'b']);
        assert.equal(hit.metadata.owner, null, 'a null value is kept');
        assert.ok(Array.isArray(hit.metadata.headings), 'the chunk keeps its own headings');
      }
      assert.deepEqual(new Set(afterRestart.map((h) => JSON.stringify(h.metadata.headings))), new Set([JSON.stringify(['Install']), JSON.stringify(['Usage'])]));
    } finally {
      await server.close();
      await data.cleanup();
    }
  });

  it('marks a document over pipeline.max_chunks_per_document FAILED, naming the limit, with nothing of it indexed', async () => {
    const data = await tempDir();
    const server = await start(data.path, { pipeline: { max_chunks_per_document: 5 }, splitter: { token: { max_tokens: 64 } } });
    try {
      await server.ready;
      assert.equal((await put(server.url, 'long.txt', `zebracorn ${words(2000)}`, { 'content-type': 'text/plain' })).status, 202);
      const failed = await until(async () => {
        const d = await status(server.url, 'push:long.txt')();
        return d.status === 'failed' ? d : null;
      }, 20_000);
      assert.match(failed.error ?? '', /splits into \d+ chunks, above the 5 limit \(pipeline\.max_chunks_per_document\)/);
      assert.deepEqual(await retrieve(server.url, { query: 'zebracorn', k: 10, mode: 'bm25' }), []);
      const listed = (await post<Metadata[]>(server.url, '/v2/list_documents', { return_status: true })).body;
      assert.equal(listed.find((m) => m.path === 'push:long.txt')?._indexing_status, 'FAILED');

      assert.equal((await put(server.url, 'long.txt', 'zebracorn in a short text', { 'content-type': 'text/plain' })).status, 202);
      await waitFor(async () => (await status(server.url, 'push:long.txt')()).status === 'indexed', 20_000);
      assert.equal((await retrieve(server.url, { query: 'zebracorn', k: 10, mode: 'bm25' })).length, 1);
    } finally {
      await server.close();
      await data.cleanup();
    }
  });

  it("marks a source's document with oversized metadata FAILED, naming the limit, and keeps only metadata that fits", async () => {
    const data = await tempDir();
    const registry = countingRegistry();
    registry.register(
      definePlugin({
        kind: 'source',
        name: 'wide-metadata',
        description: 'one document with a huge metadata value (tests only)',
        options: z.object({}).passthrough(),
        create: async (): Promise<Source> => {
          let ctx: SourceContext | null = null;
          const emit = () =>
            ctx!.emit([{ kind: 'upsert', doc: { key: 'wide:1.txt', version: '1', metadata: { path: 'wide:1.txt', title: 'Wide', description: 'd'.repeat(200_000) }, read: async () => new TextEncoder().encode('quokka text') } }]);
          return {
            id: 'wide-metadata',
            owns: (key) => key.startsWith('wide:'),
            start: async (c) => {
              ctx = c;
              await emit();
            },
            reconcile: emit,
            stop: async () => {},
          };
        },
      }),
    );
    const server = await start(data.path, { sources: ['wide-metadata'] }, registry);
    try {
      await server.ready;
      const doc = await until(async () => {
        const d = await status(server.url, 'wide:1.txt')();
        return d.status === 'failed' ? d : null;
      }, 20_000);
      assert.match(doc.error ?? '', /the metadata is \d+ bytes of JSON, above the 65536 bytes limit \(pipeline\.max_metadata_bytes\)/);
      assert.equal(doc.metadata.path, 'wide:1.txt');
      assert.equal(doc.metadata.title, 'Wide');
      assert.equal(doc.metadata.description, undefined, 'the oversized value is not stored');
      assert.deepEqual(await retrieve(server.url, { query: 'quokka', k: 10, mode: 'bm25' }), []);
    } finally {
      await server.close();
      await data.cleanup();
    }
  });
});

describe('the store keeps a document metadata once', () => {
  let data: { path: string; cleanup(): Promise<void> };
  before(async () => {
    data = await tempDir();
  });
  after(async () => data.cleanup());

  it('reads back each chunk exactly as written: nulls, arrays, keys the document lacks or the chunk lacks, and the indexed version after a failed one', async () => {
    const engine = await openEngine(data.path);
    const v = new Float32Array([1, 0, 0]);
    const docMeta = { path: 'a.md', tags: ['x'], owner: null, nested: { a: 1, b: 2 } };
    const chunks = [
      { text: 'one', metadata: { ...docMeta, page: 1 } },
      { text: 'two', metadata: { ...docMeta, tags: ['y'], page: null } },
      { text: 'three', metadata: { tags: ['x'], page: 3 } },
      { text: 'four', metadata: { ...docMeta, nested: { a: 1 } } },
      { text: 'five', metadata: docMeta },
    ];
    await engine.commit('m', [{ op: 'upsert', key: 'a.md', version: '1', contentHash: 'h', metadata: docMeta, chunks: chunks.map((c, i) => ({ ordinal: i, text: c.text, textHash: `h${i}`, metadata: c.metadata, embedding: v })) }]);
    // A later version fails: the indexed chunks keep serving with the metadata they were indexed with.
    await engine.commit('m', [{ op: 'mark', key: 'a.md', version: '2', status: 'failed', error: 'bad', metadata: { path: 'a.md', tags: ['z'], size: 9 } }]);
    const expected = chunks.map((c) => c.metadata);
    const listed = (await engine.listChunks(0, 100)).sort((a, b) => a.ordinal - b.ordinal);
    assert.deepEqual(listed.map((r) => r.metadata), expected);
    const got = (await engine.getChunks(listed.map((r) => r.id))).sort((a, b) => a.ordinal - b.ordinal);
    assert.deepEqual(got.map((r) => r.metadata), expected);
    assert.deepEqual((await engine.getDocument('a.md'))?.metadata, { path: 'a.md', tags: ['z'], size: 9 });
    await engine.close();
  });
});
