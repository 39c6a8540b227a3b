/** The S3 source against a real S3-compatible server (s3rver) on 127.0.0.1: listing, ETag diffs, restarts, faults. */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openEngine } from '../../src/engine/index.js';
import { createLogger } from '../../src/core/log.js';
import type { IndexStatus } from '../../src/core/types.js';
import { parseConfig, serve } from '../../src/livedex.js';
import { countingRegistry, embedCounter, get, retrieve, tempDir, waitFor, type WireHit } from '../helpers/livedex.js';
import { S3RVER_CREDENTIALS, startFakeS3, type FakeS3 } from '../helpers/s3.js';

/** Polls fast so that the tests wait little; timing is never asserted. */
const POLL_S = 0.2;

function s3Block(s3: FakeS3, extra: Record<string, unknown> = {}) {
  return { s3: { bucket: s3.bucket, endpoint: s3.endpoint, ...S3RVER_CREDENTIALS, poll_interval_s: POLL_S, max_attempts: 2, ...extra } };
}

async function start(dataDir: string, sources: unknown[], logLines?: string[]) {
  // Parsing runs in-thread: the worker sandbox is not under test here, and its start-up is slow on a busy machine.
  const config = parseConfig({ data_dir: dataDir, host: '127.0.0.1', port: 0, embedder: 'counting', sandbox: { enabled: false }, sources });
  const logger = createLogger({ level: logLines ? 'debug' : 'silent', write: (line) => logLines?.push(line) });
  return serve(config, { logger, registry: countingRegistry() });
}

const find = async (url: string, query: string): Promise<WireHit[]> => retrieve(url, { query, k: 10, mode: 'bm25' });
const paths = (hits: WireHit[]) => hits.map((h) => h.metadata.path);
const sourceState = async (url: string, id: string) => (await get<IndexStatus>(url, '/v1/status')).body.sources.find((s) => s.id === id);

describe('S3 source', () => {
  let s3: FakeS3;
  let data: { path: string; cleanup(): Promise<void> };

  beforeEach(async () => {
    s3 = await startFakeS3('docs');
    data = await tempDir();
  });
  afterEach(async () => {
    await s3.close();
    await data.cleanup();
  });

  it('follows creates, modifies, deletes and renames within the poll interval, with s3:// metadata', async () => {
    await s3.put('team/alpha.md', '# Alpha\n\nThe aardvark report.', { contentType: 'text/markdown', metadata: { owner: 'ana' } });
    await s3.put('other/outside.md', '# Outside\n\nThe okapi is outside the prefix.');
    const server = await start(data.path, [s3Block(s3, { prefix: 'team/' })]);
    try {
      await server.ready;
      const [hit] = await find(server.url, 'aardvark');
      assert.ok(hit, 'the object is indexed');
      assert.equal(hit.metadata.path, 's3://docs/team/alpha.md');
      assert.equal(hit.metadata.url, 's3://docs/team/alpha.md');
      assert.equal(hit.metadata.content_type, 'text/markdown');
      assert.deepEqual(hit.metadata.object_metadata, { owner: 'ana' });
      assert.equal(typeof hit.metadata.modified_at, 'number');
      assert.equal(typeof hit.metadata.etag, 'string');
      assert.equal((await get(server.url, '/v1/documents/s3:team/alpha.md')).status, 200, 'keys are name:object-key');
      assert.deepEqual(await find(server.url, 'okapi'), [], 'objects outside the prefix are not indexed');

      // Create.
      await s3.put('team/beta.txt', 'The bison memo.');
      await waitFor(async () => (await find(server.url, 'bison')).length === 1, 20_000);
      // Modify.
      await s3.put('team/alpha.md', '# Alpha\n\nThe armadillo report.');
      await waitFor(async () => (await find(server.url, 'armadillo')).length === 1, 20_000);
      assert.deepEqual(await find(server.url, 'aardvark'), [], 'the old text is gone');
      // Rename (S3 has none: a copy under the new key, then a delete).
      await s3.put('team/renamed/beta.txt', 'The bison memo.');
      await s3.del('team/beta.txt');
      await waitFor(async () => JSON.stringify(paths(await find(server.url, 'bison'))) === JSON.stringify(['s3://docs/team/renamed/beta.txt']), 20_000);
      // Delete.
      await s3.del('team/alpha.md');
      await waitFor(async () => (await find(server.url, 'armadillo')).length === 0, 20_000);
      assert.equal((await get(server.url, '/v1/documents/s3:team/alpha.md')).status, 404);
      const status = await sourceState(server.url, 's3');
      assert.equal(status?.state, 'idle');
      assert.equal(status?.error, null);
    } finally {
      await server.close();
    }
  });

  it('indexes 1,200 objects, past the 1,000 of one listing page', async () => {
    const keys = Array.from({ length: 1200 }, (_, i) => `bulk/doc-${String(i).padStart(4, '0')}.txt`);
    for (let i = 0; i < keys.length; i += 40) {
      await Promise.all(keys.slice(i, i + 40).map((key, j) => s3.put(key, `Document ${i + j} mentions token${i + j}.`)));
    }
    s3.resetCounts();
    const server = await start(data.path, [s3Block(s3, { poll_interval_s: 60, object_metadata: false })]);
    try {
      await server.ready;
      const stats = await get<{ file_count: number }>(server.url, '/v1/statistics');
      assert.equal(stats.body.file_count, 1200);
      assert.ok(s3.counts.ListObjectsV2 >= 2, 'the listing took more than one page');
      assert.equal(s3.counts.GetObject, 1200);
      assert.equal((await find(server.url, 'token1199'))[0]?.metadata.path, 's3://docs/bulk/doc-1199.txt');
      assert.equal((await find(server.url, 'token0'))[0]?.metadata.path, 's3://docs/bulk/doc-0000.txt');
    } finally {
      await server.close();
    }
  });

  it('resumes after a restart: only what changed meanwhile is read, what vanished is removed', async () => {
    for (let i = 0; i < 6; i++) await s3.put(`r/doc-${i}.md`, `# Doc ${i}\n\nAbout creature${i}.`);
    const first = await start(data.path, [s3Block(s3)]);
    await first.ready;
    assert.equal((await find(first.url, 'creature3')).length, 1);
    await first.close();

    await s3.put('r/doc-1.md', '# Doc 1\n\nRewritten: the walrus.');
    await s3.put('r/doc-new.md', '# New\n\nThe narwhal arrived while down.');
    await s3.del('r/doc-4.md');
    s3.resetCounts();
    embedCounter.reset();

    const second = await start(data.path, [s3Block(s3)]);
    try {
      await second.ready;
      assert.deepEqual(s3.gets.sort(), ['r/doc-1.md', 'r/doc-new.md'], 'unchanged objects are not read again');
      assert.equal(embedCounter.texts, 2);
      assert.equal((await find(second.url, 'walrus')).length, 1);
      assert.equal((await find(second.url, 'narwhal')).length, 1);
      assert.deepEqual(await find(second.url, 'creature4'), []);
      assert.equal((await find(second.url, 'creature5')).length, 1);
    } finally {
      await second.close();
    }
  });

  it('resyncs in full when the listing snapshot is lost, removing what disappeared and re-embedding nothing', async () => {
    for (let i = 0; i < 5; i++) await s3.put(`l/doc-${i}.md`, `# Doc ${i}\n\nAbout beast${i}.`);
    const first = await start(data.path, [s3Block(s3)]);
    await first.ready;
    await first.close();

    await s3.del('l/doc-2.md');
    // The cursor is damaged (as after a store restored from elsewhere).
    const engine = await openEngine(data.path, { readOnly: false });
    await engine.setCursor('s3', 'not json at all');
    await engine.close();
    s3.resetCounts();
    embedCounter.reset();

    const second = await start(data.path, [s3Block(s3)]);
    try {
      await second.ready;
      assert.deepEqual(s3.gets.sort(), ['l/doc-0.md', 'l/doc-1.md', 'l/doc-3.md', 'l/doc-4.md'], 'every object is read again once');
      assert.equal(embedCounter.texts, 0, 'same bytes: nothing is embedded again');
      assert.deepEqual(await find(second.url, 'beast2'), [], 'the vanished object is removed');
      assert.equal((await find(second.url, 'beast4')).length, 1);
    } finally {
      await second.close();
    }
    // The full resync wrote a fresh snapshot: the next start reads nothing.
    s3.resetCounts();
    const third = await start(data.path, [s3Block(s3)]);
    try {
      await third.ready;
      assert.equal(s3.counts.GetObject, 0);
    } finally {
      await third.close();
    }
  });

  it('reports a failing service in /v1/status while other sources keep flowing, then recovers', async () => {
    const folder = await tempDir();
    await s3.put('f/one.md', '# One\n\nThe quokka.');
    const server = await start(data.path, [{ fs: { path: folder.path, reconcile_interval_s: 0 } }, s3Block(s3, { request_timeout_ms: 500 })]);
    try {
      await server.ready;
      s3.fail(503);
      const failing = await waitFor(async () => {
        const s = await sourceState(server.url, 's3');
        return s?.state === 'error' ? s : null;
      }, 20_000);
      assert.match(failing.value!.error ?? '', /503/);
      assert.ok(failing.value!.failures >= 1);
      const fsState = (await get<IndexStatus>(server.url, '/v1/status')).body.sources.find((s) => s.id.startsWith('fs:'));
      assert.equal(fsState?.state, 'idle');

      // The folder keeps flowing while S3 fails.
      await writeFile(join(folder.path, 'local.md'), '# Local\n\nThe wombat.');
      await waitFor(async () => (await find(server.url, 'wombat')).length === 1, 20_000);
      assert.equal((await find(server.url, 'quokka')).length, 1, 'S3 documents stay served while S3 fails');

      // Connections cut: still an error, still serving.
      s3.fail('drop');
      await waitFor(async () => /ECONNRESET|socket hang up|connection/i.test((await sourceState(server.url, 's3'))?.error ?? ''), 20_000);

      // No answer at all: the request times out.
      s3.fail('hang');
      await waitFor(async () => /Timeout|timed out/i.test((await sourceState(server.url, 's3'))?.error ?? ''), 20_000);

      s3.heal();
      await s3.put('f/two.md', '# Two\n\nThe pangolin.');
      await waitFor(async () => (await find(server.url, 'pangolin')).length === 1, 30_000);
      const healed = await sourceState(server.url, 's3');
      assert.equal(healed?.state, 'idle');
      assert.equal(healed?.error, null);
      assert.equal(healed?.failures, 0);
    } finally {
      await server.close();
      await folder.cleanup();
    }
  });

  it('reports rejected credentials without ever showing them', async () => {
    const secret = 'sekret-Key-4242-do-not-show';
    const lines: string[] = [];
    const server = await start(data.path, [s3Block(s3, { access_key_id: 'AKIAWRONGKEY4242', secret_access_key: secret })], lines);
    try {
      await server.ready;
      const state = await waitFor(async () => {
        const s = await sourceState(server.url, 's3');
        return s?.state === 'error' ? s : null;
      }, 20_000);
      assert.match(state.value!.error ?? '', /InvalidAccessKeyId|403/);
      assert.match(state.value!.error ?? '', /credentials/);
      const everything = JSON.stringify((await get(server.url, '/v1/status')).body) + lines.join('\n');
      assert.ok(!everything.includes(secret), 'the secret never shows');
      assert.ok(!everything.includes('AKIAWRONGKEY4242'), 'nor the key id');
    } finally {
      await server.close();
    }
  });
});

describe('S3 source options', () => {
  let data: { path: string; cleanup(): Promise<void> };
  before(async () => (data = await tempDir()));
  after(async () => data.cleanup());

  it('refuses a bad bucket, half a key pair and a bad name, naming the option', async () => {
    const bad = async (options: Record<string, unknown>, field: RegExp) => {
      await assert.rejects(async () => {
        const s = await start(data.path, [{ s3: options }]);
        await s.ready.finally(() => s.close());
      }, field);
    };
    await bad({ bucket: 'A' }, /sources\[0\]\.s3\.bucket/);
    await bad({ bucket: 'docs', access_key_id: 'x' }, /sources\[0\]\.s3\.secret_access_key: access_key_id and secret_access_key go together/);
    await bad({ bucket: 'docs', name: 'no spaces' }, /sources\[0\]\.s3\.name/);
  });
});
