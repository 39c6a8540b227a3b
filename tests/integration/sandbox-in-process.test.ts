/**
 * Where a file is parsed, seen from `/metrics`: parse workers start with the server, before any
 * file; small plain text and Markdown are parsed on the main thread; a PDF, a large text and
 * every parser not listed in `sandbox.in_process` go to a worker with the sandbox's limits.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { builtinRegistry as sandboxTestRegistry } from '../helpers/sandbox-registry.js';
import { get, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';
import { makePdf } from '../helpers/pdf.js';
import { parsePrometheus, type Scrape } from '../helpers/prometheus.js';

async function scrape(server: TestServer): Promise<Scrape> {
  const res = await fetch(new URL('/metrics', server.url));
  assert.equal(res.status, 200);
  return parsePrometheus(await res.text());
}

interface DocumentRow {
  status: string;
  error: string | null;
}

/** Each file's document, by file name, from `GET /v1/documents/{key}`. */
async function documents(server: TestServer, folder: string, names: string[]): Promise<Map<string, DocumentRow>> {
  const docs = new Map<string, DocumentRow>();
  for (const name of names) {
    const res = await get<DocumentRow>(server.url, `/v1/documents/${encodeURIComponent(join(folder, name))}`);
    assert.equal(res.status, 200, `${name}: ${JSON.stringify(res.body)}`);
    docs.set(name, res.body);
  }
  return docs;
}

/** Starts a server over a fresh folder holding `files`, waits for its first sync, runs `body`, and cleans up. */
async function withServer(files: Record<string, string | Uint8Array>, config: Record<string, unknown>, body: (server: TestServer, docs: () => Promise<Map<string, DocumentRow>>) => Promise<void>, registry = sandboxTestRegistry()): Promise<void> {
  const folder = await tempDir();
  const data = await tempDir();
  for (const [name, content] of Object.entries(files)) await writeFile(join(folder.path, name), content);
  const server = await startServer(folder.path, { dataDir: data.path, registry, config: { embedder: 'hashing', ...config } });
  try {
    await server.ready;
    await body(server, () => documents(server, folder.path, Object.keys(files)));
  } finally {
    await server.close();
    await folder.cleanup();
    await data.cleanup();
  }
}

describe('the parse sandbox, seen from /metrics', () => {
  it('starts its two workers with the server, before any file is parsed', { timeout: 180_000 }, async () => {
    await withServer({}, { sandbox: { workers: 2 } }, async (server) => {
      // The folder is empty: nothing was ever posted to a worker, yet both threads come up.
      await waitFor(async () => (await scrape(server)).value('livedex_parse_workers') === 2, 120_000, 50);
      const m = await scrape(server);
      assert.equal(m.value('livedex_parse_workers_started_total'), 2);
      assert.equal(m.value('livedex_parses_total'), 0);
    });
  });

  it('parses small text and Markdown on the main thread, and a PDF and a text above in_process_max_bytes in a worker', { timeout: 180_000 }, async () => {
    const files = {
      'plain.txt': 'The avocet sweeps its upturned bill through the mud.\n',
      'guide.md': '# Guide\n\nThe godwit probes deep for worms.\n',
      'report.pdf': makePdf(['The curlew calls across the estuary at dawn.']),
      'large.txt': `The dunlin flocks turn as one. ${'x'.repeat(2048)}\n`,
    };
    await withServer(files, { sandbox: { workers: 1, in_process_max_bytes: 1024 } }, async (server, read) => {
      const docs = await read();
      for (const name of Object.keys(files)) assert.equal(docs.get(name)?.status, 'indexed', `${name}: ${JSON.stringify(docs.get(name))}`);
      for (const word of ['avocet', 'godwit', 'curlew', 'dunlin']) {
        assert.equal((await retrieve(server.url, { query: word, k: 1, mode: 'bm25' })).length, 1, word);
      }
      const m = await scrape(server);
      assert.equal(m.value('livedex_parses_total', { parser: 'text', thread: 'main' }), 1);
      assert.equal(m.value('livedex_parses_total', { parser: 'text', thread: 'worker' }), 1, 'the large text');
      assert.equal(m.value('livedex_parses_total', { parser: 'markdown', thread: 'main' }), 1);
      assert.equal(m.value('livedex_parses_total', { parser: 'markdown', thread: 'worker' }), 0);
      assert.equal(m.value('livedex_parses_total', { parser: 'pdf', thread: 'worker' }), 1);
      assert.equal(m.value('livedex_parses_total', { parser: 'pdf', thread: 'main' }), 0);
    });
  });

  it('keeps every limit for the formats that go to a worker: a PDF above sandbox.max_bytes, an endless parser and a crashing one are FAILED and the server goes on', { timeout: 180_000 }, async () => {
    const files = {
      'plain.txt': 'The stilt wades on long pink legs.\n',
      'big.pdf': makePdf(Array.from({ length: 40 }, (_, p) => `Page ${p}: the plover runs and stops, runs and stops. ${'filler '.repeat(100)}`)),
      'spin.loop': 'x',
      'crash.exit': 'x',
    };
    await withServer(files, { sandbox: { workers: 1, timeout_ms: 1_000, max_bytes: 8 * 1024 } }, async (server, read) => {
      const docs = await read();
      assert.equal(docs.get('plain.txt')?.status, 'indexed');
      assert.equal(docs.get('big.pdf')?.status, 'failed');
      assert.match(String(docs.get('big.pdf')?.error), /above the .* limit \(sandbox\.max_bytes\)/);
      assert.equal(docs.get('spin.loop')?.status, 'failed');
      assert.match(String(docs.get('spin.loop')?.error), /^parsing timed out after 1 s \(sandbox\.timeout_ms\)/);
      assert.equal(docs.get('crash.exit')?.status, 'failed');
      assert.match(String(docs.get('crash.exit')?.error), /^parser crashed: /);
      const m = await scrape(server);
      assert.equal(m.value('livedex_parses_total', { parser: 'loop', thread: 'worker' }), 1);
      assert.equal(m.value('livedex_parses_total', { parser: 'exit', thread: 'worker' }), 1);
      // The stopped and the crashed worker were replaced at once, not on the next file.
      await waitFor(async () => (await scrape(server)).value('livedex_parse_workers') === 1, 120_000, 50);
      assert.ok(m.value('livedex_parse_workers_started_total') >= 2, `workers started: ${m.value('livedex_parse_workers_started_total')}`);
      assert.equal((await retrieve(server.url, { query: 'stilt', k: 1, mode: 'bm25' })).length, 1);
    });
  });

  it('parses everything on the main thread with sandbox.enabled: false, and reports no workers', { timeout: 180_000 }, async () => {
    const files = { 'plain.txt': 'The redshank flashes white wings.\n', 'report.pdf': makePdf(['The whimbrel passes through in spring.']) };
    await withServer(files, { sandbox: { enabled: false } }, async (server, read) => {
      const docs = await read();
      assert.equal(docs.get('plain.txt')?.status, 'indexed');
      assert.equal(docs.get('report.pdf')?.status, 'indexed');
      assert.equal((await retrieve(server.url, { query: 'whimbrel', k: 1, mode: 'bm25' })).length, 1);
      const m = await scrape(server);
      assert.equal(m.value('livedex_parse_workers'), 0);
      assert.equal(m.value('livedex_parse_workers_started_total'), 0);
      assert.equal(m.value('livedex_parses_total'), 0);
    });
  });
});
