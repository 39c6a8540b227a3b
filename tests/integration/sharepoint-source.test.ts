/** Spec: the SharePoint / OneDrive source, through a served index, against a fake Microsoft Graph on 127.0.0.1 with the official client. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SourceStatus } from '../../src/core/types.js';
import { FakeGraph } from '../helpers/fake-graph.js';
import { get, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

// A generous cap for each change to show (the machine may be loaded); never a timing assertion.
const CAP_MS = 120_000;

async function serveGraph(graph: FakeGraph, folder: string, dataDir: string, extra: Record<string, unknown> = {}): Promise<TestServer> {
  return startServer(folder, {
    dataDir,
    config: {
      sources: [
        { fs: { path: folder, reconcile_interval_s: 0 } },
        {
          sharepoint: {
            site: 'contoso.sharepoint.com/sites/eng',
            drive: 'Documents',
            path: '/Specs',
            tenant_id: graph.tenant,
            client_id: graph.clientId,
            client_secret: graph.clientSecret,
            base_url: graph.url,
            token_url: graph.tokenUrl,
            poll_interval_s: 0.2,
            // Generous on a loaded machine: a download that times out holds its document back until the next try.
            request_timeout_ms: 15_000,
            ...extra,
          },
        },
      ],
      // A document held back by a failed download is tried again within seconds, not the default 30 s.
      pipeline: { retry_base_ms: 500, retry_max_ms: 4000 },
    },
  });
}

// Assertions look for a path among the top five, never at rank one: with 1,200 look-alike specs the
// hashing embedder's collisions can tie a spec with the expected hit (RRF then breaks the tie by id).
const paths = async (base: string, query: string, k = 5) => (await retrieve(base, { query, k })).map((h) => h.metadata.path);
const hitAt = async (base: string, query: string, path: string) => (await retrieve(base, { query, k: 5 })).find((h) => h.metadata.path === path);
const status = async (base: string) => (await get<{ sources: SourceStatus[] }>(base, '/v1/status')).body.sources.find((s) => s.id === 'sharepoint');
const P = 'sharepoint://contoso.sharepoint.com/sites/eng/Documents/Specs';

describe('SharePoint source', () => {
  it('enumerates the folder, follows delta (create, modify, rename, move, delete), resumes from the deltaLink and resyncs after 410', async () => {
    const graph = new FakeGraph();
    await graph.start();
    const folder = await tempDir();
    const data = await tempDir();
    const specs = graph.addFolder('Specs');
    const api = graph.addFolder('API', specs);
    const readme = graph.addFile('readme.md', specs, '# Readme\nThe capybara is the largest rodent.');
    graph.addFile('outside.txt', graph.addFolder('Other'), 'The tapir is outside the folder.');
    for (let i = 0; i < 1200; i++) graph.addFile(`spec-${i}.txt`, i % 2 ? api : specs, `Specification ${i} covers widget w${i}z.`);
    let server = await serveGraph(graph, folder.path, data.path);
    try {
      await server.ready;
      const base = server.url;
      assert.equal((await get<{ file_count: number }>(base, '/v1/statistics')).body.file_count, 1201);
      const hit = await hitAt(base, 'capybara rodent', `${P}/readme.md`);
      assert.ok(hit, 'the readme is found');
      assert.match(String(hit?.metadata.url), /^https:\/\/contoso\.sharepoint\.com\/sites\/eng\//);
      assert.equal(hit?.metadata.last_modified_by, 'grace@contoso.com');
      assert.ok((await paths(base, 'w1117z')).includes(`${P}/API/spec-1117.txt`));
      assert.ok(!(await paths(base, 'tapir outside')).some((p) => String(p).endsWith('outside.txt')), 'a file outside the folder is not indexed');
      assert.ok(graph.count('delta') >= 6, 'the enumeration followed @odata.nextLink');
      assert.ok(graph.requests.filter((r) => r.op !== 'token' && r.op !== 'download').every((r) => r.authorization?.startsWith('Bearer ')), 'every Graph call carries the bearer token');
      assert.ok(graph.requests.filter((r) => r.op === 'download').every((r) => r.authorization === undefined), 'no token goes to a download URL');

      const from = graph.requests.length;
      const created = graph.addFile('notes.txt', api, 'The axolotl regrows its limbs.');
      await waitFor(async () => (await paths(base, 'axolotl limbs')).includes(`${P}/API/notes.txt`), CAP_MS);
      graph.update(created, 'The axolotl lives in Lake Xochimilco.');
      await waitFor(async () => (await hitAt(base, 'Xochimilco', `${P}/API/notes.txt`))?.metadata.last_modified_by === 'alan@contoso.com', CAP_MS);
      graph.move(created, specs, 'axolotl.txt');
      await waitFor(async () => {
        const found = await paths(base, 'axolotl Xochimilco');
        return found.includes(`${P}/axolotl.txt`) && !found.includes(`${P}/API/notes.txt`);
      }, CAP_MS);
      graph.move(api, specs, 'Interfaces');
      await waitFor(async () => {
        const found = await paths(base, 'w1117z');
        return found.includes(`${P}/Interfaces/spec-1117.txt`) && !found.includes(`${P}/API/spec-1117.txt`);
      }, CAP_MS);
      graph.remove(readme);
      await waitFor(async () => !(await paths(base, 'capybara rodent')).includes(`${P}/readme.md`), CAP_MS);
      // A deleted folder is reported alone: what it held goes too.
      graph.remove(api);
      await waitFor(async () => (await get<{ file_count: number }>(base, '/v1/statistics')).body.file_count === 601, CAP_MS);
      assert.ok(graph.requests.slice(from).some((r) => r.op === 'delta.enumerate'), 'a folder deleted from the tree is settled by a full enumeration');

      // 429 with Retry-After, a 503, an expired token: retried; a lasting outage shows in status, the folder keeps flowing.
      graph.fail('delta', { status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'activityLimitReached', message: 'The request has been throttled' } } });
      graph.fail('delta', { status: 503, body: { error: { code: 'serviceNotAvailable', message: 'Service unavailable' } } });
      graph.revokeTokens();
      graph.addFile('tardigrade.txt', specs, 'The tardigrade survives in space.');
      await waitFor(async () => (await paths(base, 'tardigrade space')).includes(`${P}/tardigrade.txt`), CAP_MS);
      graph.fail('delta', { status: 500, times: Infinity, body: { error: { code: 'generalException', message: 'General exception while processing' } } });
      await waitFor(async () => (await status(base))?.state === 'error', CAP_MS);
      assert.match(String((await status(base))?.error), /Microsoft Graph/);
      assert.ok(!JSON.stringify(await get(base, '/v1/status')).includes(graph.clientSecret));
      await writeFile(join(folder.path, 'local.txt'), 'The pangolin rolls into a ball.');
      await server.index.sync();
      assert.ok((await paths(base, 'pangolin ball')).some((p) => String(p).endsWith('local.txt')));
      graph.clearFaults();
      await waitFor(async () => (await status(base))?.state === 'idle', CAP_MS);

      // Restart: resumes from the stored deltaLink (no enumeration) and sees what changed while down.
      const polls = graph.count('delta');
      await waitFor(() => graph.count('delta') >= polls + 2, CAP_MS);
      await server.close();
      const gone = graph.addFile('gone.txt', specs, 'The dodo is extinct.');
      graph.addFile('while-down.txt', specs, 'The okapi was added while the server was down.');
      const before = graph.requests.length;
      server = await serveGraph(graph, folder.path, data.path);
      await server.ready;
      assert.equal(graph.requests.slice(before).filter((r) => r.op === 'delta' && r.url.searchParams.get('token') === 'enum').length, 0);
      assert.equal(graph.requests.slice(before).filter((r) => r.op === 'delta.enumerate').length, 0, 'no full enumeration after a restart');
      assert.ok((await paths(server.url, 'okapi down')).includes(`${P}/while-down.txt`));

      // A lost cursor (410 resyncRequired): a full enumeration that removes what disappeared.
      await server.close();
      graph.remove(gone);
      graph.oldestToken = graph.position + 1;
      const resync = graph.requests.length;
      server = await serveGraph(graph, folder.path, data.path);
      await server.ready;
      assert.ok(graph.requests.slice(resync).some((r) => r.op === 'delta.enumerate'));
      assert.ok(!(await paths(server.url, 'dodo extinct')).includes(`${P}/gone.txt`));
      assert.ok((await paths(server.url, 'okapi down')).includes(`${P}/while-down.txt`));
    } finally {
      await server.close();
      await graph.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });
});
