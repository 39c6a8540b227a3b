import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CallingEmbedder } from '../../src/core/calls.js';
import { isTransientError, LivedexError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import type { Logger } from '../../src/core/types.js';
import { Registry } from '../../src/core/registry.js';
import { embedderPlugins, LocalWorkerEmbedder } from '../../src/models/index.js';
import { retrieve, runCli, tempDir, waitFor } from '../helpers/livedex.js';
import { startFakeHub } from '../helpers/fake-hub.js';
import { makeTinyModel, type TinyModel } from '../helpers/tiny-model.js';

const registry = new Registry().register(...embedderPlugins);

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const norm = (a: Float32Array) => Math.sqrt(dot(a, a));

async function errorOf(p: Promise<unknown>): Promise<LivedexError> {
  const err = await p.then(() => null, (e: unknown) => e);
  assert.ok(err instanceof LivedexError, `expected a LivedexError, got ${String(err)}`);
  return err;
}

/** A logger that keeps what it is told, as "level msg {fields}". */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  return { lines, debug: () => {}, info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * One text the tokenizer of the tiny model turns into 4 million tokens: far more than a worker
 * heap of `CRASH_HEAP_MB` holds (it loads the model in less than half), so the thread runs out
 * of memory (ERR_WORKER_OUT_OF_MEMORY) as a real one would. `n` makes each one different.
 */
const heapBuster = (n: number) => `${'car banana '.repeat(2_000_000)}${n}`;
const CRASH_HEAP_MB = 96;

async function configErrorOf(p: Promise<unknown>): Promise<LivedexError> {
  const err = await p.then(() => null, (e: unknown) => e);
  assert.ok(err instanceof LivedexError, `expected a LivedexError, got ${String(err)}`);
  assert.equal(err.code, 'config_error');
  return err;
}

describe('local embedder (transformers.js) on a tiny model made by the test', () => {
  let tmp: { path: string; cleanup(): Promise<void> };
  let model: TinyModel;
  const open: CallingEmbedder[] = [];
  const create = async (options: Record<string, unknown> = {}): Promise<CallingEmbedder> => {
    const embedder = (await registry.create('embedder', 'local', { model: model.dir, ...options }, { logger: silentLogger, dataDir: tmp.path })) as CallingEmbedder;
    open.push(embedder);
    return embedder;
  };

  before(async () => {
    tmp = await tempDir('livedex-local-');
    model = await makeTinyModel(join(tmp.path, 'tiny'));
  });
  after(async () => {
    for (const e of open) await e.close();
    await tmp.cleanup();
  });

  it('reads its dimensions from the model and returns unit vectors', async () => {
    const embedder = await create();
    assert.equal(embedder.dimensions, model.dimensions);
    const vectors = await embedder.embed(['car', 'The doctor visited yesterday', 'zzz words it has never seen', '']);
    assert.equal(vectors.length, 4);
    for (const v of vectors) {
      assert.equal(v.length, model.dimensions);
      assert.ok(Math.abs(norm(v) - 1) < 1e-5, `norm ${norm(v)}`);
    }
  });

  it('puts synonyms near each other and unrelated words apart (mean pooling of the designed table)', async () => {
    const embedder = await create();
    const [car, automobile, doctor, physician, banana] = await embedder.embed(['car', 'automobile', 'doctor', 'physician', 'banana']);
    assert.ok(dot(car!, automobile!) > 0.9, `car·automobile = ${dot(car!, automobile!)}`);
    assert.ok(dot(doctor!, physician!) > 0.9, `doctor·physician = ${dot(doctor!, physician!)}`);
    for (const [a, b] of [[car, banana], [car, doctor], [physician, banana]] as const) assert.ok(Math.abs(dot(a!, b!)) < 0.01, `unrelated: ${dot(a!, b!)}`);
  });

  it('keeps the order of the texts across batches and ONNX slices', async () => {
    const words = ['car', 'banana', 'the old guitar', 'physician', 'a river flows fast', 'invoice', 'quantum physics', 'my red vehicle is parked outside', 'stream'];
    const texts = Array.from({ length: 23 }, (_, i) => `${words[i % words.length]} ${'note '.repeat(i % 4)}`.trim());
    const one = await create({ max_batch_items: 1, batch_size: 1 });
    const expected: Float32Array[] = [];
    for (const t of texts) expected.push((await one.embed([t]))[0]!);
    const batched = await create({ max_batch_items: 7, batch_size: 3 });
    const got = await Promise.all([batched.embed(texts.slice(0, 10)), batched.embed(texts.slice(10))]);
    const flat = got.flat();
    assert.equal(flat.length, texts.length);
    flat.forEach((v, i) => { assert.ok(dot(v, expected[i]!) > 1 - 1e-5, `text ${i} "${texts[i]}" came back out of place`); });
  });

  it('prefixes queries and documents as configured, and the prefixes are part of the model key', async () => {
    const plain = await create();
    const prefixed = await create({ query_prefix: 'doctor ', document_prefix: 'car ' });
    assert.notEqual(prefixed.modelKey, plain.modelKey);
    const [carBanana, doctorBanana, banana] = await plain.embed(['car banana', 'doctor banana', 'banana']);
    const asDocument = (await prefixed.embed(['banana']))[0]!;
    const asQuery = await prefixed.embedQuery!('banana');
    assert.ok(dot(asDocument, carBanana!) > 1 - 1e-5, 'document_prefix is prepended to documents');
    assert.ok(dot(asQuery, doctorBanana!) > 1 - 1e-5, 'query_prefix is prepended to queries');
    assert.ok(dot(await plain.embedQuery!('banana'), banana!) > 1 - 1e-5, 'no prefix: a query embeds like a document');
  });

  it('truncates texts to max_tokens, from the option or the model’s sentence_bert_config.json', async () => {
    // [CLS] car [SEP]: the words after the first are cut.
    const short = await create({ max_tokens: 3 });
    const plain = await create();
    const [truncated] = await short.embed(['car banana doctor']);
    const [car] = await plain.embed(['car']);
    assert.ok(dot(truncated!, car!) > 1 - 1e-5);
    assert.notEqual(short.modelKey, plain.modelKey);
    const withConfig = await makeTinyModel(join(tmp.path, 'tiny-st'), { maxSeqLength: 3 });
    const fromConfig = (await registry.create('embedder', 'local', { model: withConfig.dir }, { logger: silentLogger, dataDir: tmp.path })) as CallingEmbedder;
    open.push(fromConfig);
    assert.ok(dot((await fromConfig.embed(['car banana doctor']))[0]!, car!) > 1 - 1e-5);
  });

  it('changes its model key when the weights change, for every vector-changing option, and not otherwise', async () => {
    const dir = join(tmp.path, 'swap');
    await makeTinyModel(dir);
    const keyOf = async (options: Record<string, unknown> = {}) => (await create({ model: dir, ...options })).modelKey;
    const first = await keyOf();
    assert.equal(await keyOf({ max_batch_items: 3, batch_size: 2, max_concurrency: 2 }), first, 'batching does not change vectors');
    assert.match(first, /^local:swap@[0-9a-f]{16}:fp32:mean:norm:t512:\d+$/);
    assert.notEqual(await keyOf({ pooling: 'cls' }), first);
    assert.notEqual(await keyOf({ normalize: false }), first);
    await makeTinyModel(dir, { variant: 1 });
    const second = await keyOf();
    assert.notEqual(second, first, 'new weights, new key');
    await makeTinyModel(dir);
    assert.equal(await keyOf(), first, 'the same weights again, the same key');
  });

  it('loads the weights named by dtype (auto picks what the directory holds)', async () => {
    const dir = join(tmp.path, 'quantized');
    await makeTinyModel(dir, { onnxName: 'model_quantized.onnx' });
    const auto = await create({ model: dir });
    assert.match(auto.modelKey, /:q8:/);
    assert.equal((await auto.embed(['car']))[0]!.length, model.dimensions);
    const err = await configErrorOf(create({ model: dir, dtype: 'fp32' }));
    assert.match(err.message, /embedder\.local\.model: .* has no onnx\/model\.onnx/);
  });

  it('rejects a missing or incomplete model directory with a config_error naming the option', async () => {
    const missing = await configErrorOf(create({ model: join(tmp.path, 'nope') }));
    assert.equal(missing.field, 'embedder.local.model');
    assert.match(missing.message, /is not a model directory.*allow_remote/);

    const empty = join(tmp.path, 'empty');
    await mkdir(empty, { recursive: true });
    assert.match((await configErrorOf(create({ model: empty }))).message, /embedder\.local\.model: .* has no config\.json/);

    const noWeights = join(tmp.path, 'no-weights');
    await makeTinyModel(noWeights);
    await rename(join(noWeights, 'onnx', 'model.onnx'), join(noWeights, 'onnx', 'other.onnx'));
    assert.match((await configErrorOf(create({ model: noWeights }))).message, /has no onnx\/model\.onnx or onnx\/model_quantized\.onnx/);

    const broken = join(tmp.path, 'broken');
    await makeTinyModel(broken);
    await writeFile(join(broken, 'onnx', 'model.onnx'), 'not a protobuf');
    assert.match((await configErrorOf(create({ model: broken }))).message, /embedder\.local\.model: cannot load the model/);
  });

  it('never goes to the hub for a model name unless allow_remote is set', async () => {
    const err = await configErrorOf(create({ model: 'Xenova/all-MiniLM-L6-v2' }));
    assert.equal(err.field, 'embedder.local.model');
    assert.match(err.message, /set embedder\.local\.allow_remote: true/);
  });

  it('with allow_remote, downloads a hub model into cache_dir once and then loads it from there', async () => {
    const hub = await startFakeHub({ 'livedex/tiny': model.dir });
    const cacheDir = join(tmp.path, 'hub-cache');
    try {
      const remote = await create({ model: 'livedex/tiny', allow_remote: true, remote_host: hub.url, cache_dir: cacheDir });
      assert.ok(hub.requests.some((r) => r === 'GET /livedex/tiny/resolve/main/onnx/model.onnx'), hub.requests.join('\n'));
      assert.ok(existsSync(join(cacheDir, 'livedex', 'tiny', 'onnx', 'model.onnx')), 'the weights are kept in cache_dir');
      const local = await create();
      // Same files, same fingerprint: only the name differs.
      assert.equal(remote.modelKey.replace(/^local:[^@]+@/, ''), local.modelKey.replace(/^local:[^@]+@/, ''));
      assert.match(remote.modelKey, /^local:livedex\/tiny@/);
      const [a] = await remote.embed(['automobile']);
      const [b] = await local.embed(['automobile']);
      assert.deepEqual(a, b);
    } finally {
      await hub.close();
    }
    // The hub is gone: the cached copy is enough.
    const again = await create({ model: 'livedex/tiny', allow_remote: true, remote_host: hub.url, cache_dir: cacheDir });
    assert.equal(again.dimensions, model.dimensions);
  });

  it('runs the model in a worker thread that close() ends: later calls are refused', async () => {
    const worker = await LocalWorkerEmbedder.start({ model: model.dir });
    assert.equal((await worker.embed(['car']))[0]!.length, model.dimensions);
    await worker.close();
    await assert.rejects(worker.embed(['banana']), /the local embedder is closed/);
    await assert.rejects(worker.embedQuery('banana'), /the local embedder is closed/);
    const plugin = await create();
    await plugin.close();
    await assert.rejects(plugin.embed(['banana']), /shutting down/);
  });

  describe('when its worker thread exits (out of memory under max_heap_mb)', () => {
    it('rejects the calls in flight with a transient error, restarts the thread and gives the same vectors as before', async () => {
      const logger = recordingLogger();
      const embedder = await LocalWorkerEmbedder.start({ model: model.dir, maxHeapMb: CRASH_HEAP_MB }, logger);
      try {
        const before = await embedder.embed(['car', 'doctor banana', 'the old guitar']);
        const queryBefore = await embedder.embedQuery('physician');
        const crash = errorOf(embedder.embed([heapBuster(1)]));
        // Queued behind the batch that ends the thread: in flight too.
        const alongside = errorOf(embedder.embedQuery('river'));
        for (const err of [await crash, await alongside]) {
          assert.equal(err.code, 'not_ready');
          assert.ok(isTransientError(err), 'transient: the pipeline holds its documents back instead of failing them');
          assert.match(err.message, /the local model's worker thread exited \(code 1: .*memory.*\); it is restarting/);
        }
        assert.ok(logger.lines.some((l) => /^warn the local model's worker thread exited; restarting it .*"exits":1/.test(l)), logger.lines.join('\n'));
        // Made while the new thread loads: they wait for it.
        const [after, queryAfter] = await Promise.all([embedder.embed(['car', 'doctor banana', 'the old guitar']), embedder.embedQuery('physician')]);
        assert.deepEqual(after, before);
        assert.deepEqual(queryAfter, queryBefore);
        assert.ok(logger.lines.some((l) => l.startsWith("info the local model's worker thread is back")), logger.lines.join('\n'));
      } finally {
        await embedder.close();
      }
    });

    it('gives up after 5 exits within 10 minutes: calls reject for good with an error saying what to check', async () => {
      const logger = recordingLogger();
      const embedder = await LocalWorkerEmbedder.start({ model: model.dir, maxHeapMb: CRASH_HEAP_MB }, logger);
      try {
        for (let i = 1; i <= 4; i++) {
          const err = await errorOf(embedder.embed([heapBuster(i)]));
          assert.ok(isTransientError(err), `exit ${i}: ${err.message}`);
        }
        const last = await errorOf(embedder.embed([heapBuster(5)]));
        assert.equal(last.code, 'model_unavailable');
        assert.ok(!isTransientError(last), 'not transient: waiting will not help');
        assert.match(last.message, /keeps exiting \(5 times within 10 minutes, last code 1: .*memory.*\); it is not restarted again .*max_heap_mb.* the model in ".*tiny" runs/);
        for (const call of [embedder.embed(['car']), embedder.embedQuery('car')]) {
          const err = await errorOf(call);
          assert.equal(err, last);
        }
        assert.equal(logger.lines.filter((l) => l.startsWith("warn the local model's worker thread exited")).length, 4, logger.lines.join('\n'));
        assert.ok(logger.lines.some((l) => l.startsWith("error the local model's worker thread is not restarted again")), logger.lines.join('\n'));
      } finally {
        await embedder.close();
      }
      await assert.rejects(embedder.embed(['car']), /keeps exiting/);
    });

    it('close() while the thread restarts ends it: waiting calls reject, nothing restarts', async () => {
      const logger = recordingLogger();
      const embedder = await LocalWorkerEmbedder.start({ model: model.dir, maxHeapMb: CRASH_HEAP_MB }, logger);
      assert.ok(isTransientError(await errorOf(embedder.embed([heapBuster(1)]))));
      const waiting = assert.rejects(embedder.embed(['car']), /the local embedder is closed/);
      await embedder.close();
      await waiting;
      await assert.rejects(embedder.embedQuery('car'), /the local embedder is closed/);
      assert.ok(!logger.lines.some((l) => /worker thread is back/.test(l)), logger.lines.join('\n'));
      // A call in flight when close() ends a healthy thread is not a crash: no restart, no transient error.
      const other = await LocalWorkerEmbedder.start({ model: model.dir, maxHeapMb: CRASH_HEAP_MB }, logger);
      const inFlight = other.embed(['car banana']).then(() => null, (e: unknown) => e);
      await other.close();
      const err = await inFlight;
      assert.ok(err instanceof Error && !isTransientError(err));
      assert.match(err.message, /the local embedder is closed/);
      assert.equal(logger.lines.filter((l) => l.startsWith("warn the local model's worker thread exited")).length, 1, logger.lines.join('\n'));
    });

    it('gives up when the new thread loads another model (the files changed on disk since the start)', async () => {
      const dir = join(tmp.path, 'changing');
      await makeTinyModel(dir);
      const embedder = await LocalWorkerEmbedder.start({ model: dir, maxHeapMb: CRASH_HEAP_MB });
      try {
        await makeTinyModel(dir, { variant: 1 });
        assert.ok(isTransientError(await errorOf(embedder.embed([heapBuster(1)]))));
        const err = await errorOf(embedder.embed(['car']));
        assert.equal(err.code, 'model_unavailable');
        assert.ok(!isTransientError(err));
        assert.match(err.message, /the model in ".*changing" has changed since livedex started \(local:changing@\w+.* → local:changing@\w+.*\); restart livedex/);
      } finally {
        await embedder.close();
      }
    });

    it('through the plugin (max_heap_mb): a batch that ends the thread twice fails alone, and the model keeps answering', async () => {
      const logger = recordingLogger();
      const embedder = (await registry.create('embedder', 'local', { model: model.dir, max_heap_mb: CRASH_HEAP_MB, retry_base_ms: 10 }, { logger, dataDir: tmp.path })) as CallingEmbedder;
      open.push(embedder);
      const [carBefore] = await embedder.embed(['car']);
      const err = await errorOf(embedder.embed([heapBuster(1)]));
      // The call machine retried the transient error once; the second exit marks these texts.
      assert.ok(!isTransientError(err), `a batch that cannot be embedded fails its documents: ${err.message}`);
      assert.match(err.message, /worker thread exited 2 times while embedding these 1 text\(s\) \(22000001 characters\); they are not sent to it again/);
      assert.equal(logger.lines.filter((l) => l.startsWith("warn the local model's worker thread exited")).length, 2, logger.lines.join('\n'));
      const [carAfter] = await embedder.embed(['car']);
      assert.deepEqual(carAfter, carBefore);
      // Asked again (a later try of the same documents): refused at once, the thread is left alone.
      assert.match((await errorOf(embedder.embed([heapBuster(1)]))).message, /they are not sent to it again/);
      assert.equal(logger.lines.filter((l) => l.startsWith("warn the local model's worker thread exited")).length, 2, logger.lines.join('\n'));
    });
  });

  it('rejects unknown and ill-typed options by name', async () => {
    assert.match((await configErrorOf(create({ pooling: 'max' }))).message, /^embedder\.local\.pooling:/);
    assert.match((await configErrorOf(create({ dimensions: 8 }))).message, /^embedder\.local: .*dimensions/);
  });
});

describe('livedex serve --embedder local', () => {
  it('finds by meaning in vector mode what BM25 cannot find by words', async () => {
    const tmp = await tempDir('livedex-local-cli-');
    try {
      const model = await makeTinyModel(join(tmp.path, 'model'));
      const folder = join(tmp.path, 'docs');
      await mkdir(folder, { recursive: true });
      await writeFile(join(folder, 'car.md'), 'My old car is parked outside.\n');
      await writeFile(join(folder, 'clinic.md'), 'The physician visited yesterday.\n');
      await writeFile(join(folder, 'fruit.md'), 'A sweet yellow banana.\n');
      await writeFile(join(folder, 'music.md'), 'This guitar plays loud.\n');
      const server = runCli(['serve', folder, '--data-dir', join(tmp.path, 'data'), '--port', '0', '--log-level', 'warn', '--embedder', 'local', '--embedding-model', model.dir]);
      try {
        const url = await server.url;
        await waitFor(async () => (await fetch(new URL('/readyz', url))).status === 200, 60_000, 100);
        const vector = await retrieve(url, { query: 'automobile', mode: 'vector', k: 1 });
        assert.equal(vector[0]?.metadata.path, join(folder, 'car.md'));
        const doctor = await retrieve(url, { query: 'doctor', mode: 'vector', k: 1 });
        assert.equal(doctor[0]?.metadata.path, join(folder, 'clinic.md'));
        const bm25 = await retrieve(url, { query: 'automobile', mode: 'bm25', k: 4 });
        assert.ok(!bm25.some((h) => h.metadata.path === join(folder, 'car.md')), 'no shared word, no BM25 hit');
      } finally {
        server.proc.kill('SIGTERM');
        assert.equal(await server.exited, 0, server.stderr.join(''));
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('exits with an error naming the option when the model directory is missing', async () => {
    const tmp = await tempDir('livedex-local-cli-');
    try {
      const server = runCli(['serve', tmp.path, '--data-dir', join(tmp.path, 'data'), '--port', '0', '--embedder', 'local', '--embedding-model', join(tmp.path, 'no-model')]);
      assert.equal(await server.exited, 2);
      assert.match(server.stderr.join(''), /embedder\.local\.model: .*no-model.* is not a model directory/);
    } finally {
      await tmp.cleanup();
    }
  });
});
