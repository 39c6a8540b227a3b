import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LivedexError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { ParseSandbox, type ParseSandboxOptions, type ParserRef } from '../../src/core/sandbox.js';
import type { ParsedPart, Parser } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';

const REGISTRY = new URL('../helpers/sandbox-registry.ts', import.meta.url);
const utf8 = (s: string) => new TextEncoder().encode(s);

function open(options: Partial<ParseSandboxOptions> = {}): ParseSandbox {
  return new ParseSandbox({ logger: silentLogger, dataDir: '/nonexistent', registryModule: REGISTRY, workers: 2, ...options });
}

/** Parses `text` as a file of `extension` with the parser plugin of the same name. */
function parse(sandbox: ParseSandbox, name: string, text: string | Uint8Array, signal?: AbortSignal): Promise<ParsedPart[]> {
  const bytes = typeof text === 'string' ? utf8(text) : text;
  return sandbox.parse({ name }, { key: `doc.${name}`, bytes, extension: `.${name}`, metadata: {}, ...(signal ? { signal } : {}) });
}

/** Resolves with the error `promise` rejects with (fails when it resolves). */
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Error, 'rejects with an Error');
    return err;
  }
  assert.fail('expected a rejection');
}

function assertParseFailed(err: Error, message: string | RegExp): void {
  assert.ok(err instanceof LivedexError, `a LivedexError, got ${err.name}: ${err.message}`);
  assert.equal(err.code, 'parse_failed');
  if (typeof message === 'string') assert.equal(err.message, message);
  else assert.match(err.message, message);
}

const elapsed = (since: number) => performance.now() - since;

describe('parse sandbox', () => {
  describe('with two workers, a 1 s time limit and a 64 MB heap', () => {
    let sandbox: ParseSandbox;
    before(async () => {
      sandbox = open({ timeout_ms: 1_000, max_heap_mb: 64 });
      // Warm both workers: their first job waits for the registry to load.
      await Promise.all([parse(sandbox, 'slow', '50'), parse(sandbox, 'slow', '50')]);
    });
    after(() => sandbox.close());

    it('runs two jobs at once on two workers (before any worker is replaced)', async () => {
      const [a, b] = (await Promise.all([parse(sandbox, 'slow', '500'), parse(sandbox, 'slow', '500')])).map((parts) => parts[0]!.metadata as { started: number; ended: number; thread: number });
      assert.notEqual(a!.thread, b!.thread, 'two different worker threads');
      assert.ok(a!.started < b!.ended && b!.started < a!.ended, `their runs overlap: ${JSON.stringify([a, b])}`);
    });

    it('returns the same parts as the parser in process, under the same name and extensions', async () => {
      const registry = builtinRegistry();
      const ctx = { logger: silentLogger, dataDir: '/nonexistent' };
      const docs: Array<[ParserRef, string, string]> = [
        [{ name: 'text' }, '.txt', 'plain words\nsecond line'],
        [{ name: 'markdown' }, '.md', '---\ntitle: Guide\n---\n# Guide\n\nIntro.\n\n## Install\n\nRun it.\n'],
        [{ name: 'text', options: { extensions: ['.txt', '.notes'] } }, '.notes', 'custom extension list'],
      ];
      for (const [ref, extension, text] of docs) {
        const local: Parser = await registry.create('parser', ref.name, ref.options, ctx);
        const wrapped = sandbox.wrap(local, ref);
        assert.equal(wrapped.name, local.name);
        assert.deepEqual(wrapped.extensions, local.extensions);
        const input = { key: `doc${extension}`, extension, metadata: { path: `doc${extension}` } };
        const expected = await local.parse({ ...input, bytes: utf8(text) });
        assert.ok(expected.length > 0);
        assert.deepEqual(await wrapped.parse({ ...input, bytes: utf8(text) }), expected);
      }
    });

    it('stops an endless loop at its time limit while the other worker goes on parsing', async () => {
      const start = performance.now();
      let loopEnded = false;
      const looping = failure(parse(sandbox, 'loop', 'x')).finally(() => (loopEnded = true));
      const parts = await parse(sandbox, 'text', 'meanwhile');
      assert.deepEqual(parts, [{ text: 'meanwhile', metadata: {} }]);
      assert.equal(loopEnded, false, 'the other parse finished while the loop was still running');

      assertParseFailed(await looping, 'parsing timed out after 1 s (sandbox.timeout_ms)');
      assert.ok(elapsed(start) >= 1_000, `not stopped before its limit (${elapsed(start)} ms)`);
      assert.deepEqual(await parse(sandbox, 'text', 'after the loop'), [{ text: 'after the loop', metadata: {} }]);
    });

    it('stops a parser that exhausts its heap, and replaces the worker', async () => {
      // Its own pool with a generous time limit: on a loaded machine the heap fills slowly.
      const roomy = open({ workers: 1, timeout_ms: 60_000, max_heap_mb: 64 });
      try {
        assertParseFailed(await failure(parse(roomy, 'hog', 'x')), 'parser ran out of memory (heap limit 64 MB, sandbox.max_heap_mb)');
        assert.deepEqual(await parse(roomy, 'text', 'after the hog'), [{ text: 'after the hog', metadata: {} }]);
      } finally {
        await roomy.close();
      }
    });

    it('passes on what a parser throws: message, code and field of a LivedexError, name and code of others', async () => {
      const ours = await failure(parse(sandbox, 'boom', 'x'));
      assertParseFailed(ours, 'boom');
      assert.equal((ours as LivedexError).field, 'parsers.boom');

      const plain = await failure(parse(sandbox, 'boom', 'plain'));
      assert.ok(!(plain instanceof LivedexError));
      assert.equal(plain.name, 'RangeError');
      assert.equal(plain.message, 'plain boom');
      assert.equal((plain as Error & { code?: string }).code, 'E_BOOM');
      assert.deepEqual(await parse(sandbox, 'text', 'after boom'), [{ text: 'after boom', metadata: {} }]);
    });

    it('reports a worker that exits as a crash, and replaces it', async () => {
      assertParseFailed(await failure(parse(sandbox, 'exit', 'x')), 'parser crashed: worker exited with code: 3');
      assert.deepEqual(await parse(sandbox, 'text', 'after the crash'), [{ text: 'after the crash', metadata: {} }]);
    });

    it('reports an unknown parser the way the registry does', async () => {
      const err = await failure(parse(sandbox, 'nope', 'x'));
      assert.ok(err instanceof LivedexError);
      assert.equal(err.code, 'config_error');
      assert.match(err.message, /unknown parser "nope"/);
    });

    it('moves input bytes that fill their buffer to the worker, and copies views into a shared buffer', async () => {
      const own = utf8('1');
      const [part] = await parse(sandbox, 'slow', own);
      assert.equal(part?.metadata.byteLength, 1);
      assert.equal(own.byteLength, 0, 'transferred: detached here');

      const pooled = Buffer.from('1'); // a view into Node's shared 8 KB pool
      await parse(sandbox, 'slow', pooled);
      assert.equal(pooled.toString(), '1', 'copied: still readable here');
    });
  });

  it('builds parsers from the built-in plugins when no registry module is given', async () => {
    const sandbox = new ParseSandbox({ logger: silentLogger, dataDir: '/nonexistent', workers: 1 });
    try {
      const parts = await sandbox.parse({ name: 'markdown' }, { key: 'a.md', bytes: utf8('# Title\n\nBody.\n'), extension: '.md', metadata: {} });
      assert.equal(parts.length, 1);
      assert.match(parts[0]!.text, /Body\./);
      assert.match((await failure(parse(sandbox, 'loop', 'x'))).message, /unknown parser "loop"/);
    } finally {
      await sandbox.close();
    }
  });

  it('writes what parsers log to the sandbox logger, and hands them the data directory', async () => {
    const lines: Array<[string, Record<string, unknown> | undefined]> = [];
    const logger = { ...silentLogger, info: (msg: string, fields?: Record<string, unknown>) => void lines.push([msg, fields]) };
    const sandbox = open({ workers: 1, logger, dataDir: '/data' });
    try {
      assert.deepEqual(await parse(sandbox, 'chatty', 'x'), []);
      // Log lines travel on another channel than the reply: they arrive soon, not necessarily first.
      for (let i = 0; i < 200 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(lines, [['parsing', { key: 'doc.chatty', dataDir: '/data' }]]);
    } finally {
      await sandbox.close();
    }
  });

  describe('limits and cancellation', () => {
    it('rejects input above the size limit without starting a job', async () => {
      const sandbox = open({ max_bytes: 1_000 });
      try {
        const err = await failure(parse(sandbox, 'text', 'x'.repeat(2 * 1024 * 1024)));
        assertParseFailed(err, 'file is 2.0 MB, above the 0.0 MB limit (sandbox.max_bytes)');
        assert.deepEqual(await parse(sandbox, 'text', 'x'.repeat(1_000)), [{ text: 'x'.repeat(1_000), metadata: {} }]);
      } finally {
        await sandbox.close();
      }
    });

    it('counts the time limit from the start of the job, not from the queue', async () => {
      const sandbox = open({ workers: 1, timeout_ms: 1_000 });
      try {
        // The second job waits ~700 ms for the only worker, then runs 700 ms: over 1 s in all.
        const results = await Promise.all([parse(sandbox, 'slow', '700'), parse(sandbox, 'slow', '700')]);
        assert.equal(results.length, 2);
      } finally {
        await sandbox.close();
      }
    });

    it('cancels a queued job and stops a running one when their signal aborts', async () => {
      const sandbox = open({ workers: 1 });
      try {
        const running = new AbortController();
        const queued = new AbortController();
        const first = failure(parse(sandbox, 'loop', 'x', running.signal));
        const second = failure(parse(sandbox, 'text', 'never parsed', queued.signal));
        await new Promise((resolve) => setTimeout(resolve, 200));

        queued.abort();
        const cancelled = await second;
        assert.equal(cancelled.name, 'AbortError');

        // The loop never ends by itself: only the abort can settle it.
        running.abort(new Error('shutting down'));
        assert.equal((await first).message, 'shutting down');

        assert.deepEqual(await parse(sandbox, 'text', 'after the abort'), [{ text: 'after the abort', metadata: {} }]);
        const aborted = AbortSignal.abort();
        assert.equal((await failure(parse(sandbox, 'text', 'x', aborted))).name, 'AbortError');
      } finally {
        await sandbox.close();
      }
    });

    it('rejects running and queued jobs on close, and every job after it', async () => {
      const sandbox = open({ workers: 1 });
      const running = failure(parse(sandbox, 'slow', '5000'));
      const queued = failure(parse(sandbox, 'text', 'queued'));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await sandbox.close();
      assertParseFailed(await running, 'the parse sandbox was closed');
      assertParseFailed(await queued, 'the parse sandbox was closed');
      assertParseFailed(await failure(parse(sandbox, 'text', 'late')), 'the parse sandbox is closed');
    });
  });
});
