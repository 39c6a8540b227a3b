/** Sources on the command line: folders and URIs become source blocks; the CLI serves them. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LivedexError } from '../../src/core/errors.js';
import { FolderSource } from '../../src/sources/fs/index.js';
import { parseSourceArg, parseSourceArgs } from '../../src/sources/uris.js';
import { retrieve, runCli, tempDir, waitFor } from '../helpers/livedex.js';
import { S3RVER_CREDENTIALS, startFakeS3 } from '../helpers/s3.js';

describe('source arguments', () => {
  it('turns paths and the three cloud schemes into source blocks', () => {
    assert.deepEqual(parseSourceArg('./docs'), { fs: { path: './docs' } });
    assert.deepEqual(parseSourceArg('file:///srv/my%20docs', { folder: { include: ['*.md'] } }), { fs: { path: '/srv/my docs', include: ['*.md'] } });
    assert.deepEqual(parseSourceArg('s3://bucket/team/docs/', { pollIntervalS: 5 }), { s3: { bucket: 'bucket', prefix: 'team/docs/', poll_interval_s: 5 } });
    assert.deepEqual(parseSourceArg('s3://bucket'), { s3: { bucket: 'bucket' } });
    assert.deepEqual(parseSourceArg('gdrive://1AbCdEf_123#drive2', { pollIntervalS: 60 }), { gdrive: { folder_id: '1AbCdEf_123', name: 'drive2', poll_interval_s: 60 } });
    assert.deepEqual(parseSourceArg('sharepoint://contoso.sharepoint.com/Documents/Team%20Site/Specs'), {
      sharepoint: { site: 'contoso.sharepoint.com', drive: 'Documents', path: 'Team Site/Specs' },
    });
    assert.deepEqual(parseSourceArg('sharepoint://site-id/drive-id'), { sharepoint: { site: 'site-id', drive: 'drive-id' } });
    assert.deepEqual(parseSourceArg('C:\\docs'), { fs: { path: 'C:\\docs' } }, 'a drive letter is a path, not a scheme');
  });

  it('refuses unknown schemes and incomplete URIs with a message saying what a source is', () => {
    const refuses = (arg: string, why: RegExp) =>
      assert.throws(() => parseSourceArg(arg), (err: unknown) => err instanceof LivedexError && err.code === 'config_error' && why.test(err.message) && /s3:\/\/<bucket>/.test(err.message));
    refuses('ftp://host/dir', /the scheme "ftp:\/\/" is not one livedex reads/);
    refuses('s3://', /the bucket is missing/);
    refuses('gdrive://', /the folder id is missing/);
    refuses('gdrive://a/b', /by its id, not a path/);
    refuses('sharepoint://site', /the drive \(document library\) is missing/);
    refuses('s3://b/p?x=1', /query strings/);
    refuses('s3://b/p#', /name after "#" is empty/);
  });

  it('asks for names when two cloud sources of one kind would share one', () => {
    assert.throws(() => parseSourceArgs(['s3://a', 's3://b']), /both named "s3"; name one with "#<name>"/);
    assert.deepEqual(parseSourceArgs(['s3://a', 's3://b#archive', './x', './y']).map((b) => Object.keys(b)[0]), ['s3', 's3', 'fs', 'fs']);
  });

  it('a folder source at "." never claims the keys of named sources', () => {
    const folder = new FolderSource({ path: '.' });
    assert.equal(folder.owns('docs/a.md'), true);
    assert.equal(folder.owns('s3:docs/a.md'), false);
    assert.equal(folder.owns('push:a.md'), false);
    assert.equal(folder.owns('gdrive:1AbC'), false);
  });
});

describe('livedex serve with source URIs', () => {
  it('exits 2 on an unknown scheme, naming it', async () => {
    const child = runCli(['serve', 'ftp://example.com/docs', '--port', '0']);
    assert.equal(await child.exited, 2);
    assert.match(child.stderr.join(''), /the scheme "ftp:\/\/" is not one livedex reads/);
  });

  it('serves a folder, an S3 prefix (credentials and endpoint from the AWS environment) and pushed documents', async () => {
    const s3 = await startFakeS3('cli-bucket');
    const folder = await tempDir();
    const data = await tempDir();
    await s3.put('kb/s3-note.md', '# S3\n\nThe tapir lives in the bucket.');
    await writeFile(join(folder.path, 'local.md'), '# Local\n\nThe ibex lives on disk.');
    const child = runCli(['serve', folder.path, 's3://cli-bucket/kb/', '--push', '--poll-interval', '0.3', '--port', '0', '--data-dir', data.path], {
      env: { AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.access_key_id, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secret_access_key, AWS_REGION: 'us-east-1' },
    });
    try {
      const url = await child.url;
      const first = async (query: string) => (await retrieve(url, { query, k: 1, mode: 'bm25' }))[0]?.metadata.path;
      await waitFor(async () => (await first('tapir')) === 's3://cli-bucket/kb/s3-note.md', 60_000);
      await waitFor(async () => (await first('ibex')) === join(folder.path, 'local.md'), 60_000);
      const res = await fetch(`${url}/v1/documents/pushed.txt`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'The okapi was pushed.' });
      assert.equal(res.status, 202);
      await waitFor(async () => (await first('okapi')) === 'push:pushed.txt', 60_000);
      // A change in the bucket arrives with the next polls.
      await s3.put('kb/later.md', '# Later\n\nThe dugong arrived later.');
      await waitFor(async () => (await first('dugong')) === 's3://cli-bucket/kb/later.md', 60_000);
      const status = (await (await fetch(`${url}/v1/status`)).json()) as { sources: { id: string; state: string }[] };
      assert.deepEqual(status.sources.map((s) => s.id).sort(), [`fs:${folder.path}`, 'push', 's3'].sort());
    } finally {
      child.proc.kill('SIGTERM');
      await child.exited;
      await s3.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });
});
