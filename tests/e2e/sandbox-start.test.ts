/** Parse workers that cannot start never leave jobs waiting: documents stay pending with the reason; the worker entry loads from any cwd. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isTransientError, LivedexError } from '../../src/core/errors.js';
import { LiveIndex } from '../../src/core/live-index.js';
import { silentLogger } from '../../src/core/log.js';
import { ParseSandbox } from '../../src/core/sandbox.js';
import { parseConfig } from '../../src/livedex.js';
import { builtinRegistry } from '../../src/plugins.js';
import { ROOT, tempDir } from '../helpers/livedex.js';

const BROKEN_WORKER = new URL('../fixtures/sandbox/broken-worker.mjs', import.meta.url);
const BROKEN_REGISTRY = new URL('../fixtures/sandbox/broken-registry.mjs', import.meta.url).href;
const utf8 = (s: string) => new TextEncoder().encode(s);

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Error);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('parse workers that cannot start', () => {
  it('fail every job with a transient "parse workers cannot start" error when the worker entry throws at import', { timeout: 180_000 }, async () => {
    const sandbox = new ParseSandbox({ logger: silentLogger, dataDir: '/nonexistent', workers: 2, workerModule: BROKEN_WORKER });
    try {
      const input = (n: number) => ({ key: `a${n}.md`, bytes: utf8('# A\n\ntext'), extension: '.md', metadata: {} });
      // Three jobs at once: queued behind two workers that both die while loading.
      const errors = await Promise.all([1, 2, 3].map((n) => failure(sandbox.parse({ name: 'markdown' }, input(n)))));
      for (const err of errors) {
        assert.ok(err instanceof LivedexError, `${err.name}: ${err.message}`);
        assert.equal(err.code, 'parse_failed');
        assert.match(err.message, /^parse workers cannot start: .*worker entry exploded at import/);
        assert.equal(isTransientError(err), true);
      }
      // A later job spawns a worker afresh, and fails the same way instead of waiting.
      assert.match((await failure(sandbox.parse({ name: 'markdown' }, input(4)))).message, /^parse workers cannot start: /);
    } finally {
      await sandbox.close();
    }
  });

  it('keep documents pending with the reason (never failed, never hanging) when the parser registry throws at import', { timeout: 180_000 }, async () => {
    const folder = await tempDir();
    const data = await tempDir();
    await writeFile(join(folder.path, 'note.md'), '# Note\n\nThe heron waits at the edge of the pond.\n');
    const config = parseConfig({
      data_dir: data.path,
      embedder: 'hashing',
      sources: [{ fs: { path: folder.path, reconcile_interval_s: 0 } }],
      pipeline: { retry_base_ms: 60_000 },
      // Markdown goes to a worker (small Markdown is parsed on the main thread by default).
      sandbox: { workers: 1, in_process: [] },
    });
    const index = await LiveIndex.open({ config, registry: builtinRegistry(), logger: silentLogger, registryModule: BROKEN_REGISTRY });
    try {
      await index.start(); // resolves: a document held back does not hold back the sync
      const doc = await index.getDocument(join(folder.path, 'note.md'));
      assert.equal(doc?.status, 'pending');
      assert.match(String(doc?.error), /^parse workers cannot start: cannot load the parser registry .*broken-registry\.mjs: registry exploded at import \(trying again in 60 s\)$/);
      const status = await index.status();
      assert.deepEqual(status.documents, { total: 1, pending: 1, indexed: 0, failed: 0 });
    } finally {
      await index.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });
});

describe('jobs queued behind a stopped worker', () => {
  it('run once the job ahead of them is stopped at its time limit (piscina replaces no stopped worker by itself)', { timeout: 180_000 }, async () => {
    const registryModule = new URL('../helpers/sandbox-registry.ts', import.meta.url);
    const sandbox = new ParseSandbox({ logger: silentLogger, dataDir: '/nonexistent', registryModule, workers: 1, timeout_ms: 1_000 });
    try {
      const job = (name: string, text: string) => sandbox.parse({ name }, { key: `doc.${name}`, bytes: utf8(text), extension: `.${name}`, metadata: {} });
      const looping = failure(job('loop', 'x'));
      const queued = [job('text', 'first in line'), job('text', 'second in line')];
      assert.match((await looping).message, /^parsing timed out after 1 s/);
      assert.deepEqual(await Promise.all(queued), [[{ text: 'first in line', metadata: {} }], [{ text: 'second in line', metadata: {} }]]);
      // And after a crash.
      const crashing = failure(job('exit', 'x'));
      const behind = job('text', 'behind the crash');
      assert.match((await crashing).message, /^parser crashed: /);
      assert.deepEqual(await behind, [{ text: 'behind the crash', metadata: {} }]);
    } finally {
      await sandbox.close();
    }
  });
});

describe('the worker entry', () => {
  it('loads under tsx (ESM hooks only) from a cwd outside the repository', { timeout: 180_000 }, async () => {
    const dir = await tempDir();
    try {
      await mkdir(join(dir.path, 'docs'));
      await writeFile(join(dir.path, 'docs', 'a.md'), '# Kingfisher\n\nA flash of blue over the river.\n');
      // `--import tsx/esm` registers its hooks in the main thread only (Node < 22.22): the
      // worker must load its TypeScript entry by itself.
      const tsxEsm = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/esm/index.mjs')).href;
      const child = spawn(process.execPath, ['--import', tsxEsm, join(ROOT, 'src/cli.ts'), 'index', 'docs', '--data-dir', 'data', '--log-level', 'error'], {
        cwd: dir.path,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 0, out);
      assert.match(out, /1 documents, 0 failed, 1 chunks/);
    } finally {
      await dir.cleanup();
    }
  });
});
