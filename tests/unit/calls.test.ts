import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffDelay,
  CallError,
  CallMachine,
  callOptions,
  classifyError,
  LruCache,
  retryAfterOf,
  wrapEmbedder,
  type CallOptionsInput,
  type CallSpec,
  type Clock,
} from '../../src/core/calls.js';
import { silentLogger } from '../../src/core/log.js';
import type { Embedder } from '../../src/core/types.js';
import { LivedexError, markTransient } from '../../src/core/errors.js';

/** A clock whose sleeps return at once and move time forward; every sleep is recorded. */
function fakeClock(random = () => 1) {
  const state = { t: 1_000_000, sleeps: [] as number[] };
  const clock: Clock = {
    now: () => state.t,
    sleep: async (ms, signal) => {
      signal?.throwIfAborted();
      state.sleeps.push(ms);
      state.t += ms;
    },
    random,
  };
  return { clock, state };
}

/** An error shaped like the openai package's APIError. */
function httpError(status: number, headers: Record<string, string> = {}): Error {
  return Object.assign(new Error(`${status} fake`), { status, headers: new Headers(headers) });
}

interface Recorder {
  batches: string[][];
  inFlight: number;
  maxInFlight: number;
  signals: AbortSignal[];
}

function machine(
  opts: CallOptionsInput,
  behave: (items: string[], n: number, signal: AbortSignal) => Promise<string[]> | string[] = (items) => items.map((s) => s.toUpperCase()),
  extra: { clock?: Clock; cache?: LruCache<string> | null; spec?: Partial<CallSpec<string, string>> } = {},
) {
  const rec: Recorder = { batches: [], inFlight: 0, maxInFlight: 0, signals: [] };
  const m = new CallMachine<string, string>(
    {
      what: 'test model',
      call: async (items, signal) => {
        rec.batches.push(items);
        rec.signals.push(signal);
        rec.inFlight++;
        rec.maxInFlight = Math.max(rec.maxInFlight, rec.inFlight);
        try {
          return await behave(items, rec.batches.length, signal);
        } finally {
          rec.inFlight--;
        }
      },
      key: (s) => s,
      ...extra.spec,
    },
    callOptions.parse(opts),
    { logger: silentLogger, ...(extra.clock ? { clock: extra.clock } : {}), ...(extra.cache !== undefined ? { cache: extra.cache } : {}) },
  );
  return { m, rec };
}

const sleepReal = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Resolves after `ms`, or rejects when the signal aborts (a well-behaved call). */
const hang = (signal: AbortSignal, ms = 60_000) =>
  new Promise<never>((_, reject) => {
    const t = setTimeout(() => reject(new Error('hang ended without abort')), ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

describe('call machine: batching', () => {
  it('coalesces concurrent callers into full requests and gives each caller its own results in order', async () => {
    const { m, rec } = machine({ max_batch_items: 4, flush_ms: 5 });
    const callers = [['a1', 'a2', 'a3'], ['b1', 'b2', 'b3'], ['c1', 'c2', 'c3', 'c4']];
    const results = await Promise.all(callers.map((items) => m.run(items)));
    assert.deepEqual(results, callers.map((items) => items.map((s) => s.toUpperCase())));
    assert.equal(rec.batches.length, 3); // ⌈10 / 4⌉
    assert.deepEqual(rec.batches.map((b) => b.length), [4, 4, 2]);
    assert.equal(m.counters.requests, 3);
    assert.equal(m.counters.items, 10);
  });

  it('waits flush_ms for more items, then sends a partial batch', async () => {
    const { m, rec } = machine({ max_batch_items: 100, flush_ms: 20 });
    const first = m.run(['x']);
    await sleepReal(5);
    const second = m.run(['y']);
    assert.deepEqual(await Promise.all([first, second]), [['X'], ['Y']]);
    assert.deepEqual(rec.batches, [['x', 'y']]);
  });

  it('sends duplicates once, within a caller and across callers', async () => {
    const { m, rec } = machine({ max_batch_items: 10 });
    const [a, b] = await Promise.all([m.run(['a', 'b', 'a']), m.run(['b', 'c'])]);
    assert.deepEqual(a, ['A', 'B', 'A']);
    assert.deepEqual(b, ['B', 'C']);
    assert.deepEqual(rec.batches, [['a', 'b', 'c']]);
  });

  it('caps a request by approximate tokens (chars / 4)', async () => {
    const { m, rec } = machine({ max_batch_items: 100, max_batch_tokens: 10 });
    const items = ['a'.repeat(20), 'b'.repeat(20), 'c'.repeat(20), 'd'.repeat(20), 'e'.repeat(20)]; // 5 tokens each
    await m.run(items);
    assert.deepEqual(rec.batches.map((b) => b.length), [2, 2, 1]);
  });
});

describe('call machine: cache', () => {
  it('serves repeated items from the per-item cache with no request', async () => {
    const { m, rec } = machine({ max_batch_items: 10 });
    await m.run(['a', 'b']);
    assert.equal(rec.batches.length, 1);
    assert.deepEqual(await m.run(['b', 'a', 'b']), ['B', 'A', 'B']);
    assert.equal(rec.batches.length, 1);
    assert.equal(m.counters.cacheHits, 3);
    // Per item, not per batch: a new batch that shares one item sends only the new one.
    await m.run(['a', 'z']);
    assert.deepEqual(rec.batches[1], ['z']);
  });

  it('keeps only the most recently used entries', async () => {
    const cache = new LruCache<string>(2);
    await cache.put([{ key: 'a', value: '1' }, { key: 'b', value: '2' }]);
    await cache.get(['a']);
    await cache.put([{ key: 'c', value: '3' }]);
    assert.deepEqual(await cache.get(['a', 'b', 'c']), ['1', null, '3']);
  });

  it('calls the model when caching is off', async () => {
    const { m, rec } = machine({}, undefined, { cache: null });
    await m.run(['a']);
    await m.run(['a']);
    assert.equal(rec.batches.length, 2);
  });
});

describe('call machine: limits', () => {
  it('never has more than max_concurrency requests in flight', async () => {
    const { m, rec } = machine({ max_batch_items: 1, max_concurrency: 3, flush_ms: 0 }, async (items) => {
      await sleepReal(15);
      return items;
    });
    await Promise.all(Array.from({ length: 12 }, (_, i) => m.run([`t${i}`])));
    assert.equal(rec.batches.length, 12);
    assert.equal(rec.maxInFlight, 3);
    assert.equal(m.counters.maxInFlight, 3);
    assert.equal(m.counters.inFlight, 0);
  });

  it('waits for the requests-per-minute budget instead of failing', async () => {
    const { clock, state } = fakeClock();
    const { m, rec } = machine({ max_batch_items: 1, flush_ms: 0, requests_per_minute: 2 }, undefined, { clock });
    for (const t of ['a', 'b', 'c', 'd']) await m.run([t]);
    assert.equal(rec.batches.length, 4);
    // Two at once (a full bucket), then one every 30 s.
    assert.deepEqual(state.sleeps, [30_000, 30_000]);
  });

  it('waits for the tokens-per-minute budget', async () => {
    const { clock, state } = fakeClock();
    const { m } = machine({ max_batch_items: 1, flush_ms: 0, tokens_per_minute: 100 }, undefined, { clock });
    for (const t of ['a', 'b', 'c']) await m.run([t.repeat(200)]); // 50 tokens each
    assert.deepEqual(state.sleeps, [30_000]);
  });
});

describe('call machine: retries', () => {
  it('retries a 429 after the Retry-After the server asked for', async () => {
    const { clock, state } = fakeClock();
    const { m, rec } = machine({}, (items, n) => {
      if (n === 1) throw httpError(429, { 'retry-after': '2' });
      return items;
    }, { clock });
    assert.deepEqual(await m.run(['a']), ['a']);
    assert.equal(rec.batches.length, 2);
    assert.deepEqual(state.sleeps, [2000]);
    assert.equal(m.counters.retries, 1);
    assert.equal(m.counters.attemptFailures.rate_limited, 1);
  });

  it('reads Retry-After as seconds or an HTTP date, and retry-after-ms first', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(retryAfterOf(httpError(429, { 'retry-after': '1.5' }), now), 1500);
    assert.equal(retryAfterOf(httpError(429, { 'retry-after': 'Thu, 01 Jan 2026 00:00:07 GMT' }), now), 7000);
    assert.equal(retryAfterOf(httpError(429, { 'retry-after': '3', 'retry-after-ms': '250' }), now), 250);
    assert.equal(retryAfterOf(httpError(429, { 'retry-after': 'soon' }), now), undefined);
    assert.equal(retryAfterOf(httpError(429), now), undefined);
    assert.equal(retryAfterOf({ status: 429, headers: { 'retry-after': '4' } }, now), 4000);
  });

  it('backs off exponentially with full jitter, within [0, min(max, base·2^(n−1))]', () => {
    const opts = { retry_base_ms: 500, retry_max_ms: 30_000 };
    const ceilings = [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];
    ceilings.forEach((ceiling, i) => {
      assert.equal(backoffDelay(i + 1, opts, () => 0), 0);
      assert.equal(backoffDelay(i + 1, opts, () => 1), ceiling);
      for (let k = 0; k < 50; k++) {
        const d = backoffDelay(i + 1, opts);
        assert.ok(d >= 0 && d <= ceiling, `retry ${i + 1}: ${d} > ${ceiling}`);
      }
    });
  });

  it('gives up after max_attempts with an error that says what failed, how often, and keeps the cause', async () => {
    const { clock, state } = fakeClock();
    const causes: Error[] = [];
    const { m, rec } = machine({}, () => {
      const err = httpError(503);
      causes.push(err);
      throw err;
    }, { clock, spec: { failureNote: 'documents are held back' } });
    const err = await m.run(['a']).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof CallError);
    assert.equal(rec.batches.length, 6);
    assert.deepEqual(state.sleeps, [500, 1000, 2000, 4000, 8000]);
    assert.equal(err.attempts, 6);
    assert.equal(err.transient, true);
    assert.equal(err.kind, 'server_error');
    assert.equal(err.httpStatus, 503);
    assert.equal(err.cause, causes[5]);
    assert.match(err.message, /test model gave up after 6 attempts: 503 fake; documents are held back/);
    assert.deepEqual(m.counters.failures, { server_error: 1 });
  });

  for (const status of [400, 401, 403, 404, 422]) {
    it(`never retries ${status}`, async () => {
      const { clock, state } = fakeClock();
      const { m, rec } = machine({}, () => {
        throw httpError(status);
      }, { clock });
      const err = await m.run(['a']).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof CallError);
      assert.equal(rec.batches.length, 1);
      assert.deepEqual(state.sleeps, []);
      assert.equal(err.transient, false);
      assert.equal(err.attempts, 1);
      assert.match(err.message, /not retried/);
    });
  }

  it("sorts livedex's own errors by whether they are transient, not by the status livedex would answer", () => {
    assert.equal(classifyError(new LivedexError('model_unavailable', 'the worker keeps exiting')).retryable, false);
    assert.equal(classifyError(new LivedexError('internal', 'boom')).retryable, false);
    const held = classifyError(markTransient(new LivedexError('not_ready', 'the worker is restarting')));
    assert.deepEqual([held.kind, held.retryable], ['server_error', true]);
  });

  it('retries 408, 409, 5xx, connection errors and malformed responses', async () => {
    const faults: unknown[] = [
      httpError(408),
      httpError(409),
      httpError(500),
      httpError(502),
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }),
      new Error('socket hang up'),
      new SyntaxError('Unexpected end of JSON input'),
    ];
    for (const fault of faults) assert.equal(classifyError(fault).retryable, true, String(fault));
    const { clock } = fakeClock();
    const { m, rec } = machine({ max_attempts: 10 }, (items, n) => {
      if (n <= faults.length) throw faults[n - 1];
      return items;
    }, { clock });
    assert.deepEqual(await m.run(['a']), ['a']);
    assert.equal(rec.batches.length, faults.length + 1);
  });

  it('retries a response with the wrong number of results', async () => {
    const { clock } = fakeClock();
    const { m, rec } = machine({ max_batch_items: 10 }, (items, n) => (n === 1 ? items.slice(1) : items), { clock });
    assert.deepEqual(await m.run(['a', 'b']), ['a', 'b']);
    assert.equal(rec.batches.length, 2);
    assert.equal(m.counters.attemptFailures.malformed, 1);
  });

  it('does not retry an unknown error (a bug does not get better)', async () => {
    const { m, rec } = machine({}, () => {
      throw new RangeError('boom');
    });
    await assert.rejects(m.run(['a']), /failed \(unknown, not retried\): boom/);
    assert.equal(rec.batches.length, 1);
  });
});

describe('call machine: timeouts and cancellation', () => {
  it('aborts an attempt after timeout_ms and retries it', async () => {
    const { clock } = fakeClock();
    const { m, rec } = machine({ timeout_ms: 40 }, (items, n, signal) => (n === 1 ? hang(signal) : items), { clock });
    const started = Date.now();
    assert.deepEqual(await m.run(['a']), ['a']);
    assert.equal(rec.batches.length, 2);
    assert.equal(rec.signals[0]!.aborted, true);
    assert.equal(m.counters.attemptFailures.timeout, 1);
    assert.ok(Date.now() - started < 1000);
  });

  it('times out even a call that ignores its signal', async () => {
    const { clock } = fakeClock();
    const { m } = machine({ timeout_ms: 30, max_attempts: 2 }, () => new Promise<string[]>(() => {}), { clock });
    await assert.rejects(m.run(['a']), (err: unknown) => err instanceof CallError && err.kind === 'timeout' && /gave up after 2 attempts: no answer within 30 ms/.test(err.message));
  });

  it('close() aborts calls in flight and rejects queued ones with a shutting-down error', async () => {
    const { m, rec } = machine({ max_batch_items: 1, max_concurrency: 1, flush_ms: 0 }, (_items, _n, signal) => hang(signal));
    const runs = ['a', 'b', 'c'].map((t) => m.run([t]).then(() => null, (e: unknown) => e));
    await sleepReal(10);
    assert.equal(rec.batches.length, 1);
    await m.close();
    const errors = await Promise.all(runs);
    for (const err of errors) {
      assert.ok(err instanceof CallError);
      assert.equal(err.kind, 'shutdown');
      assert.match(err.message, /shutting down/);
    }
    assert.equal(rec.signals[0]!.aborted, true);
    assert.equal(rec.batches.length, 1);
    await assert.rejects(m.run(['d']), /shutting down/);
  });

  it('close() rejects at once even when the call ignores its signal', async () => {
    const { m } = machine({ timeout_ms: 60_000 }, () => new Promise<string[]>(() => {}));
    const run = m.run(['a']).then(() => null, (e: unknown) => e);
    await sleepReal(10);
    const started = Date.now();
    await m.close();
    assert.match(String(await run), /shutting down/);
    assert.ok(Date.now() - started < 200);
  });

  it('close() interrupts a backoff wait', async () => {
    const { m } = machine({ retry_base_ms: 60_000, retry_max_ms: 60_000 }, () => {
      throw httpError(500);
    }, { clock: { now: Date.now, sleep: (ms, signal) => hang(signal!, ms + 1000).then(() => {}), random: () => 1 } });
    const run = m.run(['a']).then(() => null, (e: unknown) => e);
    await sleepReal(10);
    await m.close();
    assert.match(String(await run), /shutting down/);
  });

  it("a caller's abort rejects that caller only", async () => {
    const { m } = machine({ flush_ms: 10 }, async (items) => {
      await sleepReal(20);
      return items;
    });
    const ac = new AbortController();
    const a = m.run(['x'], ac.signal);
    const b = m.run(['x', 'y']);
    ac.abort(new Error('caller gone'));
    await assert.rejects(a, /caller gone/);
    assert.deepEqual(await b, ['x', 'y']);
  });
});

describe('wrapEmbedder', () => {
  const inner = (dims: number, wrong = false): Embedder & { calls: string[][] } => {
    const calls: string[][] = [];
    return {
      name: 'fake',
      modelKey: `fake:${dims}`,
      dimensions: dims,
      calls,
      embed: async (texts) => {
        calls.push(texts);
        return texts.map((t) => Float32Array.from({ length: wrong ? dims + 1 : dims }, (_, i) => (t.length + i) / 100));
      },
    };
  };

  it('keeps the identity of the embedder and caches query embeddings', async () => {
    const raw = inner(4);
    const e = wrapEmbedder(raw, callOptions.parse({}), { logger: silentLogger });
    assert.equal(e.modelKey, 'fake:4');
    assert.equal(e.dimensions, 4);
    const v = await e.embedQuery!('what is live?');
    assert.deepEqual(await e.embedQuery!('what is live?'), v);
    assert.equal(raw.calls.length, 1);
    await e.close();
  });

  it('fails for good on vectors of the wrong length, naming the lengths', async () => {
    const raw = inner(4, true);
    const e = wrapEmbedder(raw, callOptions.parse({}), { logger: silentLogger });
    await assert.rejects(e.embed(['a', 'b']), (err: unknown) => err instanceof CallError && !err.transient && /vector of 5 numbers, expected 4/.test(err.message));
    assert.equal(raw.calls.length, 1);
  });
});

describe('call errors for the pipeline', () => {
  it('tells held-back (transient) failures from permanent ones, and closes only what it can', async () => {
    const { isTransientCallError, closeEmbedder } = await import('../../src/core/calls.js');
    assert.equal(isTransientCallError(new CallError('x', { kind: 'server_error', attempts: 6, transient: true })), true);
    assert.equal(isTransientCallError(new CallError('x', { kind: 'auth', attempts: 1, transient: false })), false);
    assert.equal(isTransientCallError(new Error('x')), false);
    const plain: Embedder = { name: 'p', modelKey: 'p', dimensions: 1, embed: async (t) => t.map(() => new Float32Array(1)) };
    await closeEmbedder(plain);
    const wrapped = wrapEmbedder(plain, callOptions.parse({}), { logger: silentLogger });
    await closeEmbedder(wrapped);
    await assert.rejects(wrapped.embed(['a']), /shutting down/);
  });
});
