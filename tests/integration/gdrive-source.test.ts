/** Spec: the Google Drive source, through a served index, against a fake Drive v3 on 127.0.0.1 with the official client. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../src/core/log.js';
import type { SourceStatus } from '../../src/core/types.js';
import { FakeDrive } from '../helpers/fake-drive.js';
import { get, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const POLL_S = 0.2;
/** A generous cap for "reaches the index within the poll interval + 2 s" on a busy machine. */
const CAP_MS = 30_000;

interface Setup {
  drive: FakeDrive;
  key: Record<string, string>;
  root: string;
  dirs: Array<{ cleanup(): Promise<void> }>;
  folder: string;
}

async function setup(): Promise<Setup> {
  const drive = new FakeDrive();
  await drive.start();
  const key = drive.serviceAccount();
  const root = drive.addFolder('Team');
  const folder = await tempDir();
  return { drive, key, root, dirs: [folder], folder: folder.path };
}

async function serveDrive(s: Setup, dataDir: string, extra: Record<string, unknown> = {}, logLines?: string[]): Promise<TestServer> {
  return startServer(s.folder, {
    dataDir,
    ...(logLines ? { logger: createLogger({ level: 'debug', write: (l) => logLines.push(l) }) } : {}),
    config: {
      sources: [
        { fs: { path: s.folder, reconcile_interval_s: 0 } },
        { gdrive: { folder_id: s.root, credentials_json: s.key, root_url: s.drive.url, poll_interval_s: POLL_S, request_timeout_ms: 2000, ...extra } },
      ],
    },
  });
}

const paths = async (base: string, query: string, k = 5) => (await retrieve(base, { query, k })).map((h) => h.metadata.path);
const driveStatus = async (base: string): Promise<SourceStatus | undefined> =>
  (await get<{ sources: SourceStatus[] }>(base, '/v1/status')).body.sources.find((s) => s.id === 'gdrive');

describe('Google Drive source', () => {
  let s: Setup;
  let data: { path: string; cleanup(): Promise<void> };
  let server: TestServer | null = null;
  const ids: Record<string, string> = {};
  const logs: string[] = [];

  before(async () => {
    s = await setup();
    data = await tempDir();
    const plans = s.drive.addFolder('Plans', s.root);
    ids.notes = s.drive.addFile('notes.txt', s.root, 'The quokka lives on Rottnest island.');
    ids.roadmap = s.drive.addDoc('Roadmap', plans, 'Nebula roadmap: ship the telescope in spring.');
    ids.plans = plans;
    s.drive.addFile('outside.txt', s.drive.addFolder('Elsewhere'), 'The wombat is outside the indexed folder.');
    server = await serveDrive(s, data.path, {}, logs);
    await server.ready;
  });

  after(async () => {
    await server?.close();
    await s.drive.close();
    await data.cleanup();
    for (const d of s.dirs) await d.cleanup();
  });

  it('lists the folder tree once, exports Google Docs as DOCX and keeps Drive metadata', async () => {
    const [hit] = await retrieve(server!.url, { query: 'quokka Rottnest', k: 1 });
    assert.equal(hit?.metadata.path, 'gdrive://Team/notes.txt');
    assert.match(String(hit?.metadata.url), /^https:\/\/drive\.google\.com\/file\/d\//);
    assert.deepEqual(hit?.metadata.owners, ['ada@example.com']);
    assert.equal(typeof hit?.metadata.modified_at, 'number');
    const [doc] = await retrieve(server!.url, { query: 'nebula telescope', k: 1 });
    assert.equal(doc?.metadata.path, 'gdrive://Team/Plans/Roadmap');
    assert.match(String(doc?.metadata.url), /^https:\/\/docs\.google\.com\/document\/d\//);
    assert.ok(s.drive.requests.some((r) => r.op === 'files.export' && r.url.searchParams.get('mimeType')?.endsWith('wordprocessingml.document')));
    assert.ok(!(await paths(server!.url, 'wombat outside')).some((p) => String(p).includes('outside.txt')));
    // The service account signed a JWT for the token endpoint the key file names.
    const claims = s.drive.assertions[0]?.claims;
    assert.equal(claims?.iss, s.key.client_email);
    assert.equal(claims?.aud, s.drive.tokenUrl);
    assert.equal(claims?.scope, 'https://www.googleapis.com/auth/drive.readonly');
    assert.ok(s.drive.requests.filter((r) => r.op !== 'token').every((r) => r.authorization?.startsWith('Bearer ya29.')));
  });

  it('follows create, modify, rename, move and delete through the Changes API', async () => {
    const base = server!.url;
    const from = s.drive.requests.length;
    const created = s.drive.addFile('platypus.md', s.root, '# Platypus\nThe platypus lays eggs.');
    await waitFor(async () => (await paths(base, 'platypus eggs')).includes('gdrive://Team/platypus.md'), CAP_MS);
    assert.equal(s.drive.count('files.list', from), 0, 'a change is read from the Changes API, not by listing');

    s.drive.update(created, '# Platypus\nThe platypus hunts with electroreception.');
    await waitFor(async () => (await retrieve(base, { query: 'electroreception', k: 1 }))[0]?.metadata.path === 'gdrive://Team/platypus.md', CAP_MS);

    s.drive.rename(ids.notes!, 'marsupials.txt');
    await waitFor(async () => (await paths(base, 'quokka Rottnest', 1))[0] === 'gdrive://Team/marsupials.txt', CAP_MS);

    s.drive.move(created, ids.plans!);
    await waitFor(async () => (await paths(base, 'platypus electroreception', 1))[0] === 'gdrive://Team/Plans/platypus.md', CAP_MS);

    s.drive.rename(ids.plans!, 'Plans 2025');
    await waitFor(async () => (await paths(base, 'nebula telescope', 1))[0] === 'gdrive://Team/Plans 2025/Roadmap', CAP_MS);

    s.drive.trash(ids.notes!);
    await waitFor(async () => !(await paths(base, 'quokka Rottnest')).includes('gdrive://Team/marsupials.txt'), CAP_MS);

    // A folder moved out of the tree takes its documents with it.
    s.drive.move(ids.plans!, s.drive.addFolder('Archive'));
    await waitFor(async () => (await retrieve(base, { query: 'nebula telescope platypus', k: 5 })).every((h) => !String(h.metadata.path).startsWith('gdrive://')), CAP_MS);

    const gone = s.drive.addFile('gone.txt', s.root, 'The thylacine is extinct.');
    await waitFor(async () => (await paths(base, 'thylacine extinct')).includes('gdrive://Team/gone.txt'), CAP_MS);
    s.drive.remove(gone);
    await waitFor(async () => !(await paths(base, 'thylacine extinct')).includes('gdrive://Team/gone.txt'), CAP_MS);
  });

  it('retries 429 (after Retry-After), 500, a hung request and an expired token; a folder source beside keeps flowing', async () => {
    const base = server!.url;
    s.drive.fail('changes.list', { status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 429, message: 'Rate Limit Exceeded' } } });
    s.drive.fail('changes.list', { status: 500, body: { error: { code: 500, message: 'Internal Error' } } });
    s.drive.fail('changes.list', { kind: 'hang' });
    s.drive.revokeTokens();
    s.drive.addFile('echidna.txt', s.root, 'The echidna is a spiny anteater.');
    await waitFor(async () => (await paths(base, 'echidna spiny')).includes('gdrive://Team/echidna.txt'), CAP_MS);

    // A lasting outage is reported in status; the folder source is not held up by it.
    s.drive.fail('*', { status: 503, times: Infinity, body: { error: { code: 503, message: 'Backend Error' } } });
    await waitFor(async () => (await driveStatus(base))?.state === 'error', CAP_MS);
    const status = await driveStatus(base);
    assert.match(String(status?.error), /Google Drive/);
    assert.ok((status?.failures ?? 0) >= 1);
    await writeFile(join(s.folder, 'local.txt'), 'The kookaburra laughs in the folder source.');
    await server!.index.sync();
    assert.ok((await paths(base, 'kookaburra laughs')).some((p) => String(p).endsWith('local.txt')));

    s.drive.clearFaults();
    s.drive.addFile('bilby.txt', s.root, 'The bilby digs burrows.');
    await waitFor(async () => (await paths(base, 'bilby burrows')).includes('gdrive://Team/bilby.txt'), CAP_MS);
    await waitFor(async () => (await driveStatus(base))?.state === 'idle', CAP_MS);
    // Secrets never reach the logs or the status route.
    const secretBits = [s.key.private_key!.split('\n')[1]!, 'ya29.'];
    const seen = logs.join('\n') + JSON.stringify(await get(base, '/v1/status'));
    for (const bit of secretBits) assert.ok(!seen.includes(bit), `secret ${bit.slice(0, 8)}… leaked`);
  });
});

describe('Google Drive source across restarts', () => {
  it('resumes from the stored page token without listing, and misses nothing changed while down', async () => {
    const s = await setup();
    const data = await tempDir();
    try {
      const keep = s.drive.addFile('keep.txt', s.root, 'The dingo howls at night.');
      const edit = s.drive.addFile('edit.txt', s.root, 'The koala sleeps all day.');
      const drop = s.drive.addFile('drop.txt', s.root, 'The emu cannot fly.');
      let server = await serveDrive(s, data.path);
      await server.ready;
      // Let a poll store the cursor once the listing is indexed.
      const polls = s.drive.count('changes.list');
      await waitFor(() => s.drive.count('changes.list') >= polls + 2, CAP_MS);
      await server.close();

      s.drive.update(edit, 'The koala eats eucalyptus leaves.');
      s.drive.remove(drop);
      s.drive.addFile('new.txt', s.root, 'The wallaby hops while we were away.');
      const from = s.drive.requests.length;
      server = await serveDrive(s, data.path);
      await server.ready;
      try {
        assert.equal(s.drive.count('files.list', from), 0, 'no full listing after a restart');
        assert.equal(s.drive.count('changes.getStartPageToken', from), 0);
        assert.ok((await paths(server.url, 'wallaby hops')).includes('gdrive://Team/new.txt'));
        assert.equal((await retrieve(server.url, { query: 'koala eucalyptus', k: 1 }))[0]?.metadata.path, 'gdrive://Team/edit.txt');
        assert.ok(!(await paths(server.url, 'emu fly')).includes('gdrive://Team/drop.txt'));
        assert.ok((await paths(server.url, 'dingo howls')).includes('gdrive://Team/keep.txt'));
        void keep;

        // A lost cursor (the page token expired): a full listing that removes what disappeared.
        await server.close();
        s.drive.remove(keep);
        s.drive.oldestToken = Number(s.drive.startPageToken) + 1;
        s.drive.addFile('later.txt', s.root, 'The numbat eats termites.');
        const before = s.drive.requests.length;
        server = await serveDrive(s, data.path);
        await server.ready;
        assert.ok(s.drive.requests.slice(before).some((r) => r.op === 'changes.list' && r.url.searchParams.has('pageToken')));
        assert.ok(s.drive.count('files.list', before) >= 1, 'the refused token led to a full listing');
        assert.ok(!(await paths(server.url, 'dingo howls')).includes('gdrive://Team/keep.txt'));
        assert.ok((await paths(server.url, 'numbat termites')).includes('gdrive://Team/later.txt'));
      } finally {
        await server.close();
      }
    } finally {
      await s.drive.close();
      await data.cleanup();
      for (const d of s.dirs) await d.cleanup();
    }
  });

  it('indexes 1,200 files across pages and folders of a shared drive', async () => {
    const s = await setup();
    const data = await tempDir();
    const shared = s.drive.addSharedDrive('Research');
    const folders = [shared, s.drive.addFolder('A', shared), s.drive.addFolder('B', shared)];
    for (let i = 0; i < 1200; i++) s.drive.addFile(`note-${i}.txt`, folders[i % 3]!, `Research note number ${i} about topic t${i}x.`);
    const server = await startServer(s.folder, {
      dataDir: data.path,
      config: {
        sources: [{ gdrive: { folder_id: shared, drive_id: shared, credentials_json: s.key, root_url: s.drive.url, poll_interval_s: POLL_S, page_size: 250 } }],
      },
    });
    try {
      await server.ready;
      const stats = await get<{ file_count: number }>(server.url, '/v1/statistics');
      assert.equal(stats.body.file_count, 1200);
      assert.ok(s.drive.count('files.list') >= 6, 'listing followed nextPageToken');
      assert.ok(s.drive.requests.filter((r) => r.op === 'files.list').every((r) => r.url.searchParams.get('driveId') === shared));
      // Among the top five, not at rank one: with 1,200 look-alike notes the test embedder's hashed
      // vectors tie many notes with the query, and RRF would break a tie with BM25's best by id.
      const hits = await retrieve(server.url, { query: 't1117x', k: 5 });
      assert.ok(hits.some((h) => h.metadata.path === 'gdrive://Research/A/note-1117.txt'));
    } finally {
      await server.close();
      await s.drive.close();
      await data.cleanup();
      for (const d of s.dirs) await d.cleanup();
    }
  });

  it('refuses a configuration without credentials, naming the field', async () => {
    const s = await setup();
    const data = await tempDir();
    try {
      const env = { ...process.env };
      for (const name of ['GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_CLIENT_ID', 'GOOGLE_CLIENT_SECRET', 'GOOGLE_REFRESH_TOKEN']) delete process.env[name];
      try {
        const server = await startServer(s.folder, { dataDir: data.path, config: { sources: [{ gdrive: { folder_id: s.root, root_url: s.drive.url } }] } }).catch((err: Error) => err);
        const failure = server instanceof Error ? server : await server.ready.then(() => null, (err: Error) => err);
        if (!(server instanceof Error)) await server.close();
        assert.match(String(failure?.message), /gdrive: no Google credentials \(give credentials_file or credentials_json/);
      } finally {
        Object.assign(process.env, env);
      }
    } finally {
      await s.drive.close();
      await data.cleanup();
      for (const d of s.dirs) await d.cleanup();
    }
  });
});
