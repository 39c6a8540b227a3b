/**
 * The programmatic API (`import { openLivedex } from 'livedex'`): a live index in this process,
 * opened from a config object or an app file, with change events and third-party plugins.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openLivedex, definePlugin, LivedexError, type IndexChange, type Livedex } from '../../src/index.js';
import { z } from 'zod';
import { ROOT, tempDir } from '../helpers/livedex.js';
import { makeMsg } from '../helpers/msg.js';
import { makePdf } from '../helpers/pdf.js';

const NOTE_PLUGIN = join(ROOT, 'tests/fixtures/plugins/note-parser.mjs');

describe('livedex as a library', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  async function open(files: Record<string, string>, extra: Parameters<typeof openLivedex>[0] = {}): Promise<{ livedex: Livedex; docs: string }> {
    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const docs = join(dir.path, 'docs');
    await rm(docs, { recursive: true, force: true });
    const { mkdir } = await import('node:fs/promises');
    await mkdir(docs);
    for (const [name, text] of Object.entries(files)) await writeFile(join(docs, name), text);
    const livedex = await openLivedex({
      folder: docs,
      ...extra,
      config: { data_dir: join(dir.path, 'data'), pipeline: { commit_delay_ms: 5 }, ...(extra.config as object | undefined) },
    });
    cleanups.push(() => livedex.close());
    return { livedex, docs };
  }

  it('opens over a folder in-process, retrieves with the config defaults, and reports status', async () => {
    const { livedex, docs } = await open(
      { 'refunds.md': '# Refunds\n\nRefunds take five business days.', 'plans.md': '# Plans\n\nThe Enterprise plan includes single sign-on.' },
      { config: { retrieval: { default_k: 1, default_mode: 'bm25' } } },
    );
    await livedex.ready;
    const hits = await livedex.retrieve('how long do refunds take');
    assert.equal(hits.length, 1, 'default_k of the config');
    assert.equal(hits[0]!.metadata.path, join(docs, 'refunds.md'));
    assert.equal(hits[0]!.scores.vector, undefined, 'default_mode bm25: no vector leg');
    assert.equal((await livedex.retrieve('single sign-on', { k: 2, mode: 'hybrid', glob: '**/plans.md' }))[0]!.metadata.path, join(docs, 'plans.md'));
    const listed = await livedex.listDocuments();
    assert.deepEqual(listed.map((m) => m.path).sort(), [join(docs, 'plans.md'), join(docs, 'refunds.md')]);
    const status = await livedex.status();
    assert.equal(status.documents.indexed, 2);
    assert.equal(status.ready, true);
    await assert.rejects(() => livedex.retrieve('x', { k: 0 }), (e: unknown) => e instanceof LivedexError && e.code === 'invalid_request' && e.field === 'k');
    assert.throws(() => livedex.on('chnage' as 'change', () => {}), (e: unknown) => e instanceof LivedexError && e.field === 'event');
  });

  it('streams changes: an edit and a deletion arrive as change events, in order, and the iterator ends on close', async () => {
    const { livedex, docs } = await open({ 'a.md': 'alpha text' });
    await livedex.ready;
    const seen: IndexChange[] = [];
    const heard: IndexChange[] = [];
    const off = livedex.on('change', (c) => heard.push(c));
    const loop = (async () => {
      for await (const change of livedex.changes()) {
        seen.push(change);
        if (seen.some((c) => c.deleted.length > 0)) break;
      }
    })();
    await writeFile(join(docs, 'a.md'), 'alpha text, now about zebras');
    await livedex.sync();
    assert.equal((await livedex.retrieve('zebras', { k: 1, mode: 'bm25' }))[0]?.metadata.path, join(docs, 'a.md'));
    await rm(join(docs, 'a.md'));
    await livedex.sync();
    await loop;
    off();
    const key = seen.find((c) => c.updated.length > 0)!.updated[0]!;
    assert.ok(seen.findIndex((c) => c.updated.includes(key)) < seen.findIndex((c) => c.deleted.includes(key)), 'the edit before the deletion');
    assert.ok(seen.every((c, i) => i === 0 || c.seq > seen[i - 1]!.seq), 'sequences increase');
    assert.ok(heard.length >= seen.length, 'on("change") heard them too');
    // An iterator that is waiting ends when the index closes.
    const waiting = (async () => {
      for await (const _ of livedex.changes()) void _;
      return 'ended';
    })();
    await livedex.close();
    assert.equal(await waiting, 'ended');
  });

  it('registers a third-party plugin named by module in the config: its parser runs in the parse workers with its options', async () => {
    const { livedex, docs } = await open(
      { 'team.note': 'Oncall | The oncall rota changes every Monday.\nLunch | Lunch is at noon.' },
      { config: { plugins: [NOTE_PLUGIN], parsers: [{ note: { tag: 'team' } }, 'markdown'] } },
    );
    await livedex.ready;
    const [hit] = await livedex.retrieve('oncall rota', { k: 1, mode: 'bm25' });
    assert.equal(hit?.metadata.path, join(docs, 'team.note'));
    assert.equal(hit?.metadata.title, 'Oncall');
    assert.equal(hit?.metadata.tag, 'team', 'the configured options reach the plugin');
    assert.notEqual(hit?.metadata.parse_thread, 0, 'parsed in a worker thread, not the main one');
  });

  it('reads an attachment with the configured parser of its type, a third-party one included, and leaves a type no configured parser claims', async () => {
    const { livedex, docs } = await open({}, { config: { plugins: [NOTE_PLUGIN], parsers: [{ note: { tag: 'attached' } }, 'msg', 'text'] } });
    await writeFile(
      join(docs, 'mail.msg'),
      makeMsg({
        subject: 'Rota attached',
        from: { name: 'Ada', email: 'ada@example.org' },
        body: 'See the attachments.',
        attachments: [
          { fileName: 'rota.note', content: new TextEncoder().encode('Oncall | The oncall rota changes every Monday.') },
          { fileName: 'readme.txt', content: new TextEncoder().encode('Plain words about lighthouses.') },
          { fileName: 'paper.pdf', content: makePdf(['A sketch of the analytical engine.']) },
        ],
      }),
    );
    await livedex.ready;
    const note = (await livedex.retrieve('oncall rota', { k: 1, mode: 'bm25' }))[0];
    assert.equal(note?.metadata.attachment, 'rota.note');
    assert.equal(note?.metadata.tag, 'attached', 'the plugin parser, with its configured options');
    assert.equal(note?.metadata.subject, 'Rota attached');
    assert.equal((await livedex.retrieve('lighthouses', { k: 1, mode: 'bm25' }))[0]?.metadata.attachment, 'readme.txt');
    const mail = (await livedex.documents()).find((d) => d.metadata.path === join(docs, 'mail.msg'))!;
    const attached = new Set((await livedex.getDocumentChunks(mail.key))!.map((c) => c.metadata.attachment));
    assert.deepEqual([...attached].sort(), [undefined, 'readme.txt', 'rota.note'].sort(), 'no configured parser reads .pdf: that attachment is left');
  });

  it('takes plugin definitions in-process too, and names a module that exports none', async () => {
    const upper = definePlugin({
      kind: 'parser',
      name: 'shout',
      description: 'upper-cases .shout files',
      options: z.strictObject({}),
      create: () => ({ name: 'shout', extensions: ['.shout'], parse: async (input) => [{ text: new TextDecoder().decode(input.bytes).toUpperCase(), metadata: {} }] }),
    });
    const { livedex } = await open({ 'a.shout': 'quiet words' }, { plugins: [upper], config: { sandbox: { enabled: false } } });
    await livedex.ready;
    assert.equal((await livedex.retrieve('quiet', { k: 1, mode: 'bm25' }))[0]?.text, 'QUIET WORDS');

    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const empty = join(dir.path, 'empty.mjs');
    await writeFile(empty, 'export const x = 1;\n');
    await assert.rejects(
      () => openLivedex({ config: { data_dir: join(dir.path, 'data'), plugins: [empty] } }),
      (e: unknown) => e instanceof LivedexError && e.code === 'config_error' && e.field === 'plugins[0]' && /exports no plugin/.test(e.message),
    );
    await assert.rejects(
      () => openLivedex({ config: { data_dir: join(dir.path, 'data'), plugins: ['./nowhere.mjs'] } }),
      (e: unknown) => e instanceof LivedexError && e.field === 'plugins[0]' && /cannot load the plugin module/.test(e.message),
    );
  });

  it('opens from an app file whose plugins are ./paths beside it', async () => {
    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir.path, 'docs'));
    await writeFile(join(dir.path, 'docs', 'x.note'), 'Badge | Badges are at the front desk.');
    // The app file sits beside the plugin (which imports zod from the repository's modules).
    const file = join(ROOT, 'tests/fixtures/plugins', `app-${process.pid}.yaml`);
    cleanups.push(() => rm(file, { force: true }));
    await writeFile(file, `plugins: [./note-parser.mjs]\ndata_dir: ${JSON.stringify(join(dir.path, 'data'))}\nsources:\n  - fs: { path: ${JSON.stringify(join(dir.path, 'docs'))} }\nparsers: [note]\n`);
    const livedex = await openLivedex({ configFile: file });
    cleanups.push(() => livedex.close());
    await livedex.ready;
    assert.equal((await livedex.retrieve('badges', { k: 1, mode: 'bm25' }))[0]?.metadata.title, 'Badge');
    await assert.rejects(() => openLivedex({ configFile: file, config: {} }), (e: unknown) => e instanceof LivedexError && e.field === 'config');
  });
});
