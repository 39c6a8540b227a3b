/**
 * @module bench/catalog-scale — the catalog and the query path at scale: JS heap and RSS per
 * chunk of the catalog (this one and a baseline revision's, each in its own process), the cost
 * of a filter pass over it, engine calls per query, hybrid p50/p99 with and without a filter
 * that keeps 1 % of the documents, and q/s with 4 concurrent clients.
 *
 *   npm run bench:catalog -- [--memory 100000,1000000] [--query 100000] [--baseline c6cf6b1] [--out file]
 *
 * Chunks are pushed straight into the index (engine commit, vectors, catalog), as the pipeline's
 * commit does, without files, parsing or splitting: what is measured is what serves queries.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { DocumentOp, Engine } from '../src/engine/types.js';
import type { Metadata } from '../src/core/types.js';
import { arg, percentile } from './lib.js';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const CHUNKS_PER_DOCUMENT = 5;
/** Documents carry `shard` 0..99: `shard == \`7\`` keeps 1 % of them. */
const SHARDS = 100;
const FILTER = 'shard == `7`';

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with --expose-gc (npm run bench:catalog does)');
  for (let i = 0; i < 3; i++) collect();
}

/** What the folder source gives a document, and what each of its chunks carries. */
function documentMetadata(d: number): Metadata {
  return {
    path: `team/docs/folder-${d % 997}/document-${d}.md`,
    modified_at: 1_760_000_000 + d,
    created_at: 1_750_000_000 + d,
    size: 2000 + (d % 5000),
    owner: `user${d % 50}`,
    shard: d % SHARDS,
  };
}

// ───────────── memory: one catalog implementation, one size, in this process ─────────────

interface CatalogLike {
  setDocument(key: string, ids: number[], metadata: Metadata[]): void;
  readonly size: number;
  matching(key: string, predicate: (m: Metadata) => boolean, budget: unknown): Promise<{ ids: { size: number } }>;
}

async function memoryRun(modulePath: string, chunks: number): Promise<void> {
  const { Catalog } = (await import(modulePath)) as { Catalog: new () => CatalogLike };
  const { FilterBudget, DEFAULT_FILTER_LIMITS } = await import('../src/core/filter-budget.js');
  gc();
  const heap0 = process.memoryUsage();
  const catalog = new Catalog();
  const documents = Math.ceil(chunks / CHUNKS_PER_DOCUMENT);
  let id = 1;
  const t0 = performance.now();
  for (let d = 0; d < documents; d++) {
    // Metadata as the store gives it back: a fresh object per chunk, equal within a document.
    const n = Math.min(CHUNKS_PER_DOCUMENT, chunks - (id - 1));
    const ids = Array.from({ length: n }, () => id++);
    catalog.setDocument(`team/docs/folder-${d % 997}/document-${d}.md`, ids, ids.map(() => documentMetadata(d)));
  }
  const buildMs = performance.now() - t0;
  gc();
  const heap1 = process.memoryUsage();
  const budget = new FilterBudget({ ...DEFAULT_FILTER_LIMITS, filter_budget_ms: 1e9, filter_max_request_cost: 1e12 });
  const t1 = performance.now();
  const matched = await catalog.matching('bench', (m) => m.shard === 7, budget);
  const filterMs = performance.now() - t1;
  const out = {
    chunks: catalog.size,
    documents,
    heapPerChunk: (heap1.heapUsed - heap0.heapUsed) / catalog.size,
    externalPerChunk: (heap1.external + heap1.arrayBuffers - heap0.external - heap0.arrayBuffers) / catalog.size,
    rssPerChunk: (heap1.rss - heap0.rss) / catalog.size,
    rssMb: heap1.rss / 2 ** 20,
    heapLimitMb: getHeapStatistics().heap_size_limit / 2 ** 20,
    buildMs,
    filterMs,
    filterKept: matched.ids.size,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

function memoryChild(modulePath: string, chunks: number): Record<string, number> | { error: string } {
  const res = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '--import', 'tsx', join(ROOT, 'bench/catalog-scale.ts'), '--memory-run', modulePath, String(chunks)], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  const line = res.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, number>;
  } catch {
    return { error: (res.stderr || `exit ${res.status}`).trim().split('\n').slice(-3).join(' ') };
  }
}

// ───────────── queries: a real LiveIndex, chunks pushed straight in ─────────────

/** Counts the engine calls made while `fn` runs. */
function countingCalls(engine: Engine): { calls: Map<string, number>; reset(): void } {
  const calls = new Map<string, number>();
  const target = engine as unknown as Record<string, unknown>;
  for (const name of ['retrieve', 'searchText', 'getChunks', 'getDocument', 'listDocuments', 'stats', 'listChunks', 'chunkEmbeddings', 'lookupEmbeddings']) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = (...args: unknown[]) => {
      calls.set(name, (calls.get(name) ?? 0) + 1);
      return (original as (...a: unknown[]) => unknown).apply(engine, args);
    };
  }
  return { calls, reset: () => calls.clear() };
}

async function queryRun(chunks: number): Promise<string[]> {
  const { LiveIndex } = await import('../src/core/live-index.js');
  const { silentLogger } = await import('../src/core/log.js');
  const { parseConfig } = await import('../src/livedex.js');
  const { builtinRegistry } = await import('../src/plugins.js');
  const { sha256 } = await import('../src/core/hash.js');
  const { syntheticText } = await import('./synth.js');
  const dataDir = await mkdtemp(join(tmpdir(), 'livedex-catalog-bench-'));
  const lines: string[] = [];
  try {
    const config = parseConfig({ data_dir: dataDir, sources: [], sandbox: { enabled: false }, pipeline: { snapshot_interval_s: 0 } });
    const index = await LiveIndex.open({ config, registry: builtinRegistry(), logger: silentLogger });
    const embedder = index.embedder;
    const documents = Math.ceil(chunks / CHUNKS_PER_DOCUMENT);
    const batchDocs = 400;
    const t0 = performance.now();
    for (let d0 = 0; d0 < documents; d0 += batchDocs) {
      const ops: DocumentOp[] = [];
      const texts: string[] = [];
      for (let d = d0; d < Math.min(documents, d0 + batchDocs); d++) {
        const metadata = documentMetadata(d);
        const chunkTexts = Array.from({ length: CHUNKS_PER_DOCUMENT }, (_, c) => `document ${d} part ${c} ${syntheticText(420, d * 7 + c + 1)}`);
        texts.push(...chunkTexts);
        ops.push({ op: 'upsert', key: metadata.path as string, version: '1', contentHash: sha256(String(d)), metadata, chunks: chunkTexts.map((text, ordinal) => ({ ordinal, text, textHash: sha256(text), metadata })) });
      }
      const vecs = await embedder.embed(texts);
      let v = 0;
      for (const op of ops) if (op.op === 'upsert') for (const c of op.chunks) c.embedding = vecs[v++]!;
      const result = await index.engine.commit(embedder.modelKey, ops);
      v = 0;
      for (const [i, doc] of result.documents.entries()) {
        const op = ops[i]!;
        if (op.op !== 'upsert') continue;
        doc.current.forEach((id, j) => { index.vectors.add(id, op.chunks[j]!.embedding!); });
        index.catalog.setDocument(doc.key, doc.current, op.chunks.map((c) => c.metadata));
      }
    }
    const ingestS = (performance.now() - t0) / 1000;
    lines.push(`query index: ${index.catalog.size} chunks in ${documents} documents, pushed in ${ingestS.toFixed(0)} s (engine commit + hnswlib addPoint + catalog)`);

    const queries = Array.from({ length: 300 }, (_, i) => syntheticText(60, 10_000 + i).split(/\s+/).slice(0, 6).join(' '));
    const counter = countingCalls(index.engine);
    const run = async (metadataFilter: string | undefined, n: number) => {
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await index.retrieve({ query: queries[i % queries.length]!, k: 10, mode: 'hybrid', ...(metadataFilter ? { metadataFilter } : {}) });
        times.push(performance.now() - t);
      }
      return times;
    };
    // Warm: query vectors cached, filter result cached, pages in memory.
    await run(undefined, queries.length);
    await run(FILTER, queries.length);
    for (const [name, filter] of [['no filter', undefined], [`filter ${FILTER} (1 % of documents)`, FILTER]] as const) {
      counter.reset();
      const times = await run(filter, queries.length);
      const calls = [...counter.calls.values()].reduce((a, b) => a + b, 0) / queries.length;
      lines.push(`hybrid, ${name}: p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms, max ${Math.max(...times).toFixed(1)} ms; engine calls per query ${calls.toFixed(2)} (${[...counter.calls].map(([k, v]) => `${k} ${v}`).join(', ')})`);
    }
    // A filter seen for the first time: evaluated over the catalog within the query.
    {
      const times: number[] = [];
      for (let s = 0; s < 10; s++) {
        const t = performance.now();
        await index.retrieve({ query: queries[s]!, k: 10, mode: 'hybrid', metadataFilter: `shard == \`${20 + s}\`` });
        times.push(performance.now() - t);
      }
      lines.push(`hybrid, a new filter each time (evaluated over ${index.catalog.documents} documents): p50 ${percentile(times, 50).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`);
    }
    for (const clients of [1, 4]) {
      let done = 0;
      const until = performance.now() + 10_000;
      const t = performance.now();
      await Promise.all(
        Array.from({ length: clients }, async (_, c) => {
          for (let i = c; performance.now() < until; i += clients) {
            await index.retrieve({ query: queries[i % queries.length]!, k: 10, mode: 'hybrid' });
            done++;
          }
        }),
      );
      lines.push(`hybrid q/s, ${clients} concurrent client${clients > 1 ? 's' : ''} (in process, no HTTP): ${(done / ((performance.now() - t) / 1000)).toFixed(0)}`);
    }
    await index.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
  return lines;
}

// ───────────── main ─────────────

async function main(): Promise<void> {
  const i = process.argv.indexOf('--memory-run');
  if (i >= 0) return memoryRun(process.argv[i + 1]!, Number(process.argv[i + 2]));

  const sizes = arg('memory', '100000,1000000').split(',').map(Number).filter((n) => n > 0);
  const querySize = Number(arg('query', '100000'));
  const baselineRev = arg('baseline', 'c6cf6b1');
  const outFile = arg('out', '');
  const lines: string[] = [];
  const say = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  say(`# catalog and query path · ${new Date().toISOString()} · node ${process.version} · load ${execFileSync('uptime', { encoding: 'utf8' }).trim().replace(/.*load average: /, '')}`);

  const work = await mkdtemp(join(tmpdir(), 'livedex-catalog-baseline-'));
  const baselinePath = join(work, 'catalog.ts');
  await writeFile(baselinePath, execFileSync('git', ['show', `${baselineRev}:src/core/catalog.ts`], { cwd: ROOT, encoding: 'utf8' }));
  const impls = [
    { name: `baseline ${baselineRev} (Map of objects)`, path: baselinePath },
    { name: 'this revision (typed arrays)', path: join(ROOT, 'src/core/catalog.ts') },
  ];
  say('');
  say('catalog memory (5 chunks a document, folder-source metadata; each run in its own process, after gc):');
  say('| catalog | chunks | JS heap B/chunk | typed arrays B/chunk | RSS B/chunk | build ms | 1 % filter pass ms |');
  say('|---|---|---|---|---|---|---|');
  const heap = new Map<string, number>();
  for (const chunks of sizes) {
    for (const impl of impls) {
      const r = memoryChild(impl.path, chunks);
      if ('error' in r) {
        say(`| ${impl.name} | ${chunks} | failed: ${r.error} | | | | |`);
        continue;
      }
      heap.set(`${impl.name}:${chunks}`, r.heapPerChunk!);
      say(`| ${impl.name} | ${r.chunks} | ${r.heapPerChunk!.toFixed(1)} | ${r.externalPerChunk!.toFixed(1)} | ${r.rssPerChunk!.toFixed(1)} | ${r.buildMs!.toFixed(0)} | ${r.filterMs!.toFixed(1)} |`);
    }
    const before = heap.get(`${impls[0]!.name}:${chunks}`);
    const after = heap.get(`${impls[1]!.name}:${chunks}`);
    if (before && after) say(`  at ${chunks} chunks: JS heap per chunk ${after.toFixed(1)} B = ${(after / 100).toFixed(2)} × the 100 B goal, ${(before / after).toFixed(1)}× less than the baseline`);
  }
  await rm(work, { recursive: true, force: true });

  if (querySize > 0) {
    say('');
    say(`query path at ${querySize} chunks (hashing embedder, default HNSW settings, k 10, candidates 50; the issue's baseline: 12 engine calls per hybrid query):`);
    for (const line of await queryRun(querySize)) say(line);
  }
  if (outFile) await writeFile(outFile, lines.join('\n') + '\n');
}

await main();
