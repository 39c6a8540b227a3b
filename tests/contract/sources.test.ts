/**
 * The source contract, run against every source in `builtinRegistry()` with a recording
 * `SourceContext`: the folder on a temporary directory, push through its own API, S3 against
 * s3rver, Drive and SharePoint against their loopback fakes with the official clients. A source
 * lists what it holds once started, owns the keys it emits and no others, reports an edit with a
 * new version and a removal as a delete, reads the bytes it announced, and is quiet once stopped.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../src/core/log.js';
import type { PushTarget } from '../../src/core/push.js';
import type { Change, Source, SourceContext, SourceDocument } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';
import { FakeDrive } from '../helpers/fake-drive.js';
import { FakeGraph } from '../helpers/fake-graph.js';
import { tempDir, waitFor } from '../helpers/livedex.js';
import { S3RVER_CREDENTIALS, startFakeS3 } from '../helpers/s3.js';

/** A service (or folder) with documents the spec can add, edit and remove, and the source's options over it. */
interface Harness {
  options: Record<string, unknown>;
  add(name: string, text: string): Promise<void>;
  update(name: string, text: string): Promise<void>;
  remove(name: string): Promise<void>;
  close(): Promise<void>;
}
type Setup = (dir: string, source: () => Source) => Promise<Harness>;

const utf8 = (s: string) => new TextEncoder().encode(s);

const HARNESS: Record<string, Setup> = {
  fs: async (dir) => ({
    options: { path: dir, reconcile_interval_s: 0 },
    add: (name, text) => writeFile(join(dir, name), text),
    update: (name, text) => writeFile(join(dir, name), text),
    remove: (name) => rm(join(dir, name)),
    close: async () => {},
  }),
  push: async (dir, source) => {
    const push = () => source() as Source & PushTarget;
    const put = async (name: string, text: string) => {
      await push().put({ key: name, bytes: utf8(text), contentType: 'text/plain', extension: null, metadata: {} });
    };
    return {
      options: { dir: join(dir, 'pushed') },
      add: put,
      update: put,
      remove: async (name) => {
        await push().remove(push().resolveKey(name));
      },
      close: async () => {},
    };
  },
  s3: async () => {
    const s3 = await startFakeS3();
    return {
      options: { bucket: s3.bucket, endpoint: s3.endpoint, ...S3RVER_CREDENTIALS, poll_interval_s: 3600, max_attempts: 2 },
      add: (name, text) => s3.put(name, text),
      update: (name, text) => s3.put(name, text),
      remove: (name) => s3.del(name),
      close: () => s3.close(),
    };
  },
  gdrive: async () => {
    const drive = new FakeDrive();
    await drive.start();
    const root = drive.addFolder('Team');
    const ids = new Map<string, string>();
    return {
      options: { folder_id: root, credentials_json: drive.serviceAccount(), root_url: drive.url, poll_interval_s: 3600, request_timeout_ms: 5000 },
      add: async (name, text) => void ids.set(name, drive.addFile(name, root, text)),
      update: async (name, text) => drive.update(ids.get(name)!, text),
      remove: async (name) => drive.remove(ids.get(name)!),
      close: () => drive.close(),
    };
  },
  sharepoint: async () => {
    const graph = new FakeGraph();
    await graph.start();
    const specs = graph.addFolder('Specs');
    const ids = new Map<string, string>();
    return {
      options: {
        site: 'contoso.sharepoint.com/sites/eng',
        drive: 'Documents',
        path: '/Specs',
        tenant_id: graph.tenant,
        client_id: graph.clientId,
        client_secret: graph.clientSecret,
        base_url: graph.url,
        token_url: graph.tokenUrl,
        poll_interval_s: 3600,
        request_timeout_ms: 5000,
      },
      add: async (name, text) => void ids.set(name, graph.addFile(name, specs, text)),
      update: async (name, text) => graph.update(ids.get(name)!, text),
      remove: async (name) => graph.remove(ids.get(name)!),
      close: () => graph.close(),
    };
  },
};

/** A SourceContext that keeps what the source emitted, and knows the versions it reported (as the store would). */
function recordingContext() {
  const changes: Change[] = [];
  const versions = new Map<string, string>();
  const docs = new Map<string, SourceDocument>();
  let cursor: string | null = null;
  const controller = new AbortController();
  const ctx: SourceContext = {
    knownVersions: async () => new Map(versions),
    emit: async (batch) => {
      for (const change of batch) {
        changes.push(change);
        if (change.kind === 'upsert') {
          versions.set(change.doc.key, change.doc.version);
          docs.set(change.doc.key, change.doc);
        } else {
          versions.delete(change.key);
          docs.delete(change.key);
        }
      }
    },
    getCursor: async () => cursor,
    setCursor: async (value) => {
      cursor = value;
    },
    settled: async () => {},
    reportHealth: () => {},
    logger: silentLogger,
    signal: controller.signal,
  };
  return { ctx, changes, docs, abort: () => controller.abort() };
}

const text = async (doc: SourceDocument) => new TextDecoder().decode(await doc.read());

const registry = builtinRegistry();
const definitions = registry.list('source');

describe('the source contract', () => {
  it('has a harness for every registered source', () => {
    assert.deepEqual(definitions.map((d) => d.name).filter((name) => !HARNESS[name]), []);
  });

  for (const def of definitions) {
    describe(`source "${def.name}"`, { skip: HARNESS[def.name] ? false : 'no harness' }, () => {
      let tmp: { path: string; cleanup(): Promise<void> };
      let harness: Harness;
      let source: Source;
      const recorder = recordingContext();
      /** The key of the document whose text starts with `marker`. */
      const keyOf = async (marker: string): Promise<string | undefined> => {
        for (const [key, doc] of recorder.docs) if ((await text(doc)).startsWith(marker)) return key;
        return undefined;
      };

      before(async () => {
        tmp = await tempDir();
        harness = await HARNESS[def.name]!(tmp.path, () => source);
        source = await registry.create('source', def.name, harness.options, { logger: silentLogger, dataDir: tmp.path });
        // Push keeps what it was given under its data; the others list a service that already holds the files.
        if (def.name !== 'push') {
          await harness.add('alpha.txt', 'alpha: the lighthouse keeper');
          await harness.add('beta.txt', 'beta: the harbour master');
        }
        await source.start(recorder.ctx);
        if (def.name === 'push') {
          await harness.add('alpha.txt', 'alpha: the lighthouse keeper');
          await harness.add('beta.txt', 'beta: the harbour master');
        }
        await source.synced?.();
      });
      after(async () => {
        await source.stop();
        recorder.abort();
        await harness.close();
        await tmp.cleanup();
      });

      it('lists what it holds once started, with versions, and reads the bytes it announced', async () => {
        await waitFor(async () => (await keyOf('alpha')) !== undefined && (await keyOf('beta')) !== undefined, 10_000);
        for (const doc of recorder.docs.values()) {
          assert.notEqual(doc.version, '');
          assert.equal(typeof doc.metadata, 'object');
          assert.deepEqual(JSON.parse(JSON.stringify(doc.metadata)), doc.metadata);
        }
        assert.equal(await text(recorder.docs.get((await keyOf('alpha'))!)!), 'alpha: the lighthouse keeper');
      });

      it('owns every key it emits, and no key of another source', () => {
        for (const change of recorder.changes) assert.ok(source.owns(change.kind === 'upsert' ? change.doc.key : change.key), 'owns its keys');
        assert.equal(source.owns('elsewhere://nothing/of/ours.txt'), false);
        assert.equal(source.id.length > 0, true);
      });

      it('reports an edit with a new version, and leaves the unchanged document as it was', async () => {
        const alpha = (await keyOf('alpha'))!;
        const beta = (await keyOf('beta'))!;
        const before = recorder.docs.get(alpha)!.version;
        const betaVersion = recorder.docs.get(beta)!.version;
        const from = recorder.changes.length;
        await harness.update('alpha.txt', 'alpha: the lighthouse keeper retired');
        await waitFor(async () => {
          await source.reconcile();
          return recorder.docs.get(alpha)!.version !== before;
        }, 10_000, 200);
        assert.equal(await text(recorder.docs.get(alpha)!), 'alpha: the lighthouse keeper retired');
        const betaLater = recorder.changes.slice(from).filter((c) => c.kind === 'upsert' && c.doc.key === beta);
        for (const c of betaLater) assert.equal(c.kind === 'upsert' && c.doc.version, betaVersion, 'an unchanged document keeps its version');
      });

      it('reports a removal as a delete of that key', async () => {
        const beta = (await keyOf('beta'))!;
        await harness.remove('beta.txt');
        await waitFor(async () => {
          await source.reconcile();
          return recorder.changes.some((c) => c.kind === 'delete' && c.key === beta);
        }, 10_000, 200);
        assert.ok(!recorder.docs.has(beta));
      });

      it('emits nothing once stopped', async () => {
        await source.stop();
        const from = recorder.changes.length;
        await harness.add('gamma.txt', 'gamma: after the stop').catch(() => {});
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(recorder.changes.length, from);
      });
    });
  }
});
