/**
 * Files that keep failing: a failed version is never parsed again (not on reconcile, not on a
 * repeated event, not on restart) until the file changes; a transient failure is tried again
 * with a growing delay, and after a restart.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../src/core/log.js';
import type { Logger } from '../../src/core/types.js';
import { startFakeUnstructured } from '../helpers/fake-unstructured.js';
import { post, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';
import { makePdf } from '../helpers/pdf.js';

const statusOf = async (server: TestServer, name: string) => {
  const listed = (await post<Array<Record<string, unknown>>>(server.url, '/v2/list_documents', { return_status: true })).body;
  return listed.find((d) => String(d.path).endsWith(`/${name}`));
};

describe('a document that failed', () => {
  it('is not parsed again while unchanged — reconcile, repeated event, restart — and is retried once it changes', { timeout: 180_000 }, async () => {
    const folder = await tempDir();
    const data = await tempDir();
    const broken = join(folder.path, 'broken.pdf');
    await writeFile(broken, '%PDF-1.7\nthis is not a PDF body at all\n');
    await writeFile(join(folder.path, 'fine.md'), '# Fine\n\nOtters hold hands while they sleep.\n');
    let server = await startServer(folder.path, { dataDir: data.path });
    try {
      await server.synced;
      const failed = await statusOf(server, 'broken.pdf');
      assert.equal(failed?._indexing_status, 'FAILED');
      const reason = String(failed?._indexing_error);
      const { counters } = server.index.pipeline;
      assert.deepEqual([counters.parsed, counters.failed], [1, 1]);

      // A reconcile finds the same version: nothing is queued, nothing parsed.
      await server.index.sync();
      assert.deepEqual([counters.parsed, counters.failed], [1, 1]);

      // A source repeating the same version (a duplicate event): not read, not parsed.
      const stored = await server.index.engine.getDocument(broken);
      let reads = 0;
      await server.index.pipeline.enqueue([{ kind: 'upsert', doc: { key: broken, version: stored!.version, metadata: { path: broken }, read: async () => {
              reads++;
              return new Uint8Array();
            } } }]);
      await server.index.pipeline.idle();
      assert.equal(reads, 0);
      assert.deepEqual([counters.parsed, counters.failed], [1, 1]);
      assert.equal((await statusOf(server, 'broken.pdf'))?._indexing_error, reason);

      // A restart over the same data: the failed version is remembered, nothing is parsed.
      await server.close();
      server = await startServer(folder.path, { dataDir: data.path });
      await server.synced;
      assert.deepEqual([server.index.pipeline.counters.parsed, server.index.pipeline.counters.failed], [0, 0]);
      assert.equal((await statusOf(server, 'broken.pdf'))?._indexing_status, 'FAILED');

      // A new version is parsed again, and indexes now that it is a real PDF.
      await writeFile(broken, makePdf(['Sea otters keep a favourite stone in a pouch of skin.']));
      await waitFor(async () => (await statusOf(server, 'broken.pdf'))?._indexing_status === 'INDEXED', 60_000);
      assert.deepEqual([server.index.pipeline.counters.parsed, server.index.pipeline.counters.failed], [1, 0]);
    } finally {
      await server.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });
});

describe('a document that failed, after parsing changed', () => {
  it('is read again once the configuration that failed it changes (here the size limit), and only then', { timeout: 180_000 }, async () => {
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'big.md'), `# Big\n\n${'Walruses use their tusks to haul out onto ice. '.repeat(100)}\n`);
    await writeFile(join(folder.path, 'small.md'), '# Small\n\nPuffins mate for life.\n');
    const limited = { pipeline: { max_file_bytes: 1024 } };
    let server = await startServer(folder.path, { dataDir: data.path, config: limited });
    try {
      await server.synced;
      assert.match(String((await statusOf(server, 'big.md'))?._indexing_error), /pipeline\.max_file_bytes/);

      // The same configuration again: the failed version is remembered.
      await server.close();
      server = await startServer(folder.path, { dataDir: data.path, config: limited });
      await server.synced;
      assert.equal(server.index.pipeline.counters.failed, 0);
      assert.equal((await statusOf(server, 'big.md'))?._indexing_status, 'FAILED');

      // A raised limit: the file is read again and indexed; the one that was fine is not touched.
      await server.close();
      server = await startServer(folder.path, { dataDir: data.path });
      await server.synced;
      assert.equal((await statusOf(server, 'big.md'))?._indexing_status, 'INDEXED');
      assert.equal(server.index.pipeline.counters.parsed, 1);
    } finally {
      await server.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });
});

describe('a document held back by a transient failure', () => {
  const KEY = 'uk-backoff-key';
  const elements = () => [{ type: 'NarrativeText', text: 'Kittiwakes nest on narrow cliff ledges.', metadata: { page_number: 1 } }];
  const config = (url: string, pipeline: Record<string, unknown>) => ({
    parsers: ['markdown', { unstructured: { url, api_key: KEY, extensions: ['.pdf'], max_attempts: 1 } }],
    pipeline,
  });

  it('is tried again with a doubling delay until the service answers', { timeout: 180_000 }, async () => {
    const fake = await startFakeUnstructured({ apiKey: KEY, elements });
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'cliffs.pdf'), makePdf(['cliffs']));
    const heldBack: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (msg, fields) => void (msg === 'document held back' && heldBack.push(String(fields?.error))) };
    fake.faults.push({ status: 502 }, { status: 503 });
    const server = await startServer(folder.path, { dataDir: data.path, logger, config: config(fake.url, { retry_base_ms: 1_000 }) });
    try {
      await server.synced;
      await waitFor(async () => (await statusOf(server, 'cliffs.pdf'))?._indexing_status === 'INDEXED', 60_000);
      assert.deepEqual(heldBack.map((r) => /\(trying again in (\d+) s\)$/.exec(r)?.[1]), ['1', '2']);
      assert.match(heldBack[0]!, /HTTP 502/);
      assert.match(heldBack[1]!, /HTTP 503/);
      assert.deepEqual(fake.requests.map((r) => r.status), [502, 503, 200]);
    } finally {
      await server.close();
      await fake.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });

  it('is tried again after a restart, and not before its delay', { timeout: 180_000 }, async () => {
    const fake = await startFakeUnstructured({ apiKey: KEY, elements });
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'cliffs.pdf'), makePdf(['cliffs']));
    fake.faults.push({ status: 500 });
    // A delay far longer than the test: only the restart can bring the document back.
    let server = await startServer(folder.path, { dataDir: data.path, config: config(fake.url, { retry_base_ms: 600_000 }) });
    try {
      await server.synced;
      const held = await statusOf(server, 'cliffs.pdf');
      assert.equal(held?._indexing_status, 'INGESTED');
      assert.match(String(held?._indexing_error), /HTTP 500.*\(trying again in 600 s\)$/);
      await server.index.sync();
      assert.deepEqual(fake.requests.map((r) => r.status), [500], 'a reconcile does not cut the delay short');

      await server.close();
      server = await startServer(folder.path, { dataDir: data.path, config: config(fake.url, { retry_base_ms: 600_000 }) });
      await server.synced;
      assert.equal((await statusOf(server, 'cliffs.pdf'))?._indexing_status, 'INDEXED');
      assert.deepEqual(fake.requests.map((r) => r.status), [500, 200]);
    } finally {
      await server.close();
      await fake.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });
});
