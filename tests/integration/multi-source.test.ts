/** Several sources at once: a folder, an S3 bucket and pushed documents, each under its own keys. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../src/core/log.js';
import type { IndexStatus } from '../../src/core/types.js';
import { parseConfig, serve } from '../../src/livedex.js';
import { countingRegistry, get, post, retrieve, tempDir, waitFor } from '../helpers/livedex.js';
import { S3RVER_CREDENTIALS, startFakeS3 } from '../helpers/s3.js';

describe('a folder, S3 and push served together', () => {
  it('keeps each source to its own keys: changes and deletions in one never touch the others', async () => {
    const s3 = await startFakeS3('multi');
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'shared.md'), '# Folder\n\nThe heron nests by the folder.');
    await s3.put('shared.md', '# Bucket\n\nThe heron nests in the bucket.');
    await s3.put('only-s3.md', '# Bucket\n\nThe marmot stays in S3.');
    const config = parseConfig({
      data_dir: data.path,
      host: '127.0.0.1',
      port: 0,
      embedder: 'counting',
      // Parsing runs in-thread: the worker sandbox is not under test here.
      sandbox: { enabled: false },
      sources: [
        { fs: { path: folder.path, reconcile_interval_s: 0 } },
        { s3: { bucket: 'multi', endpoint: s3.endpoint, ...S3RVER_CREDENTIALS, poll_interval_s: 0.2, name: 'archive' } },
        'push',
      ],
    });
    const start = () => serve(config, { logger: createLogger({ level: 'silent' }), registry: countingRegistry() });
    let server = await start();
    try {
      await server.ready;
      const put = await fetch(`${server.url}/v1/documents/shared.md`, { method: 'PUT', headers: { 'content-type': 'text/markdown' }, body: '# Pushed\n\nThe heron was pushed.' });
      assert.equal(put.status, 202);
      const heronPaths = async () => (await retrieve(server.url, { query: 'heron', k: 10, mode: 'bm25' })).map((h) => h.metadata.path).sort();
      await waitFor(async () => (await heronPaths()).length === 3, 20_000);
      assert.deepEqual(await heronPaths(), [join(folder.path, 'shared.md'), 'push:shared.md', 's3://multi/shared.md'].sort());

      const status = (await get<IndexStatus>(server.url, '/v1/status')).body;
      assert.deepEqual(status.sources.map((s) => s.id), [`fs:${folder.path}`, 'archive', 'push']);
      assert.ok(status.sources.every((s) => s.state === 'idle'));
      const listed = (await post<{ path: string; source?: string }[]>(server.url, '/v1/inputs', {})).body.map((d) => d.path).sort();
      assert.deepEqual(listed, [join(folder.path, 'shared.md'), 'push:shared.md', 's3://multi/only-s3.md', 's3://multi/shared.md'].sort());
      // The source is in the metadata, so filters can pick one.
      const fromS3 = await retrieve(server.url, { query: 'heron', k: 10, mode: 'bm25', metadata_filter: "source == 'archive'" });
      assert.deepEqual(fromS3.map((h) => h.metadata.path), ['s3://multi/shared.md']);

      // A deletion in each source removes that source's document only.
      await rm(join(folder.path, 'shared.md'));
      await server.index.sync();
      await s3.del('shared.md');
      await waitFor(async () => JSON.stringify(await heronPaths()) === JSON.stringify(['push:shared.md']), 20_000);
      assert.equal((await retrieve(server.url, { query: 'marmot', k: 1, mode: 'bm25' }))[0]?.metadata.path, 's3://multi/only-s3.md');
      await server.close();

      // After a restart every source keeps its documents.
      server = await start();
      await server.ready;
      assert.deepEqual(await heronPaths(), ['push:shared.md']);
      assert.equal((await retrieve(server.url, { query: 'marmot', k: 1, mode: 'bm25' }))[0]?.metadata.path, 's3://multi/only-s3.md');
    } finally {
      await server.close();
      await s3.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });

  it('refuses two sources with one name', async () => {
    const data = await tempDir();
    try {
      const config = parseConfig({ data_dir: data.path, port: 0, embedder: 'counting', sandbox: { enabled: false }, sources: ['push', { push: { dir: join(data.path, 'other') } }] });
      const server = await serve(config, { logger: createLogger({ level: 'silent' }), registry: countingRegistry() });
      try {
        await assert.rejects(server.ready, /another source already has the id "push"/);
      } finally {
        await server.close();
      }
    } finally {
      await data.cleanup();
    }
  });
});
