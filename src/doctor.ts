/**
 * @module doctor — `livedex doctor`: checks a data directory (store, text index, change-log
 * sequences, vector snapshot, free space), the config, the models and the sources, one line per
 * check, each failure with what to do. Reads only: it never writes to the index.
 */
import { existsSync, readFileSync } from 'node:fs';
import { access, constants, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { openEngine } from './engine/index.js';
import type { Engine } from './engine/types.js';
import { loadConfigFile } from './config-file.js';
import { closeEmbedder } from './core/calls.js';
import type { LivedexConfig } from './core/config.js';
import { describeError } from './core/errors.js';
import { describeStoreReset, detectStoreReset, inspectDataDir, STORE_RESET_CURSOR, type DataDirClaims, type StoreReset } from './core/housekeeping.js';
import type { Registry } from './core/registry.js';
import { describeStorageProblem, storageProblem } from './core/storage-error.js';
import type { Embedder, Logger } from './core/types.js';

export type CheckLevel = 'ok' | 'warn' | 'fail';

/** One check's outcome; `advice` says what to do about a warning or failure. */
export interface Check {
  level: CheckLevel;
  /** What was checked: `config`, `store`, `text index`, `embedder`, `sources[0].fs`… */
  name: string;
  message: string;
  advice?: string;
}

export interface DoctorOptions {
  /** An app file to validate and check; its settings are what the other checks use. */
  configFile?: string;
  /** The config from the command line (used when no file is given, and for `data_dir` overrides). */
  config: LivedexConfig;
  /** Replaces the data dir of the file's config (`--data-dir` given explicitly). */
  dataDir?: string;
  registry: Registry;
  logger: Logger;
  /** How long a model or endpoint may take to answer. */
  timeoutMs?: number;
}

/** Where the store records the serving model (see core/live-index). */
const ACTIVE_MODEL_CURSOR = 'livedex:embedder';
const SERVER_FILE = 'server.json';
const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');
/** How long a store reset found at a start stays a warning. */
const RESET_NOTE_DAYS = 7;

/**
 * Runs every check and returns them in order; none throws.
 *
 * @example
 * const checks = await runDoctor({ config, registry: builtinRegistry(), logger });
 * process.exitCode = checks.some((c) => c.level === 'fail') ? 1 : 0;
 */
export async function runDoctor(opts: DoctorOptions): Promise<Check[]> {
  const checks: Check[] = [];
  let config = opts.config;
  if (opts.configFile) {
    try {
      config = await loadConfigFile(opts.configFile, { registry: opts.registry });
      if (opts.dataDir) config = { ...config, data_dir: opts.dataDir };
      checks.push({ level: 'ok', name: 'config', message: `${opts.configFile} is valid` });
    } catch (err) {
      checks.push({ level: 'fail', name: 'config', message: describeError(err), advice: `fix ${opts.configFile} (\`livedex init\` shows working examples)` });
      // The data dir can still be checked, from the command line's settings.
    }
  }
  const dataDir = resolve(config.data_dir);
  checks.push(...(await checkDataDir(dataDir)));
  checks.push(...(await checkModels(config, opts)));
  checks.push(...(await checkSources(config, opts.timeoutMs ?? 10_000)));
  return checks;
}

/** The data directory: free space, writability, a running server, the store, the text index and the vector snapshot. */
async function checkDataDir(dataDir: string): Promise<Check[]> {
  const checks: Check[] = [];
  const claims = await inspectDataDir(dataDir);
  if (claims.storeBytes === null || claims.storeBytes === 0) {
    // Indexes that reflect commits the store does not have: the store was lost, not never made.
    const reset = detectStoreReset(claims, 0);
    if (reset) {
      checks.push({
        level: 'fail',
        name: 'store',
        message: describeStoreReset(reset, dataDir, 'next start'),
        advice: `restore ${join(dataDir, 'store.sqlite')} from a backup before starting livedex on this data dir; otherwise the next start re-indexes every source from scratch`,
      });
      return checks;
    }
  }
  if (!existsSync(join(dataDir, 'store.sqlite'))) {
    checks.push({ level: 'fail', name: 'data dir', message: `no index in ${dataDir}`, advice: 'run `livedex index <folder>` or `livedex serve …` with this --data-dir (or --config) first' });
    return checks;
  }
  const server = runningServer(dataDir);
  checks.push(server
    ? { level: 'ok', name: 'data dir', message: `${dataDir}: a server (pid ${server.pid}) holds it and serves ${server.url}; checked read-only beside it` }
    : { level: 'ok', name: 'data dir', message: `${dataDir}: no server running on it` });

  // Free space and writability: a full or read-only dir stops commits (documents stay pending).
  try {
    const fs = await statfs(dataDir);
    const free = fs.bavail * fs.bsize;
    const total = fs.blocks * fs.bsize;
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;
    if (free < 64 * 1024 * 1024 || free < total * 0.02) {
      checks.push({ level: 'warn', name: 'disk space', message: `${mb(free)} free of ${mb(total)}`, advice: 'free space on that disk: when it fills, edits stay pending until there is room' });
    } else {
      checks.push({ level: 'ok', name: 'disk space', message: `${mb(free)} free of ${mb(total)}` });
    }
  } catch (err) {
    checks.push({ level: 'warn', name: 'disk space', message: `cannot measure: ${describeError(err)}` });
  }
  const probe = join(dataDir, `.doctor-${process.pid}.tmp`);
  try {
    await writeFile(probe, 'livedex doctor\n');
    await rm(probe, { force: true });
    checks.push({ level: 'ok', name: 'writable', message: 'the data dir takes writes' });
  } catch (err) {
    await rm(probe, { force: true }).catch(() => {});
    const problem = storageProblem(err);
    checks.push({
      level: 'fail',
      name: 'writable',
      message: problem ? describeStorageProblem(problem, dataDir, err) : `cannot write in ${dataDir}: ${describeError(err)}`,
      advice: problem === 'full' ? 'free space on that disk' : 'make the folder writable for the user that runs livedex',
    });
  }

  let engine: Engine;
  try {
    engine = await openEngine(dataDir, { readOnly: true });
  } catch (err) {
    const message = describeError(err);
    if (/text index/.test(message)) {
      checks.push({ level: 'ok', name: 'store', message: 'the store opens (the text index does not)' });
      checks.push({
        level: 'fail',
        name: 'text index',
        message,
        advice: 'the store is intact: start the server once (`livedex serve …`) or run `livedex index <folder>` on this data dir; it rebuilds the text index from the store',
      });
    } else {
      checks.push({
        level: 'fail',
        name: 'store',
        message,
        advice: `the store is damaged: restore ${join(dataDir, 'store.sqlite')} from a backup, or move the data dir away and index again (\`livedex index <folder>\`)`,
      });
    }
    return checks;
  }
  try {
    checks.push(...(await checkStore(engine)));
    checks.push(...(await checkReset(engine, dataDir, claims)));
    checks.push(...(await checkVectors(engine, dataDir)));
  } finally {
    await engine.close();
  }
  return checks;
}

/** The store's rows agree with each other, and the text index has applied the change log. */
async function checkStore(engine: Engine): Promise<Check[]> {
  const checks: Check[] = [];
  const stats = await engine.stats();
  // Every chunk is read once: each document's chunk count must match the chunks stored under it.
  const perDoc = new Map<string, number>();
  let chunks = 0;
  try {
    for (let after = 0; ; ) {
      const page = await engine.listChunks(after, 2000);
      for (const c of page) perDoc.set(c.docKey, (perDoc.get(c.docKey) ?? 0) + 1);
      chunks += page.length;
      if (page.length < 2000) break;
      after = page[page.length - 1]!.id;
    }
    const docs = await engine.listDocuments();
    const mismatched = docs.filter((d) => (perDoc.get(d.key) ?? 0) !== d.chunkCount);
    const orphans = [...perDoc.keys()].filter((k) => !docs.some((d) => d.key === k));
    if (mismatched.length > 0 || orphans.length > 0 || chunks !== stats.chunks) {
      checks.push({
        level: 'fail',
        name: 'store',
        message: `rows disagree: ${mismatched.length} documents with a wrong chunk count, ${orphans.length} documents missing for stored chunks, ${chunks} chunks listed vs ${stats.chunks} counted`,
        advice: 'move the data dir away and index again (`livedex index <folder>`)',
      });
    } else {
      checks.push({ level: 'ok', name: 'store', message: `${stats.documents} documents (${stats.indexed} indexed, ${stats.pending} pending, ${stats.failed} failed), ${chunks} chunks, change log at sequence ${stats.lastSeq}` });
    }
  } catch (err) {
    checks.push({ level: 'fail', name: 'store', message: `reading the store failed: ${describeError(err)}`, advice: 'restore store.sqlite from a backup, or move the data dir away and index again' });
  }
  if (stats.textIndexSeq === stats.lastSeq) {
    checks.push({ level: 'ok', name: 'text index', message: `at sequence ${stats.textIndexSeq}, as the change log` });
  } else if (stats.textIndexSeq < stats.lastSeq) {
    checks.push({
      level: 'warn',
      name: 'text index',
      message: `at sequence ${stats.textIndexSeq}, behind the change log (${stats.lastSeq})`,
      advice: 'it replays the change log at the next start (or the next commit of a running server); a lag that stays points to a full disk',
    });
  } else {
    checks.push({
      level: 'fail',
      name: 'text index',
      message: `at sequence ${stats.textIndexSeq}, ahead of the change log (${stats.lastSeq}): it does not belong to this store`,
      advice: 'start the server once (or `livedex index <folder>`): it rebuilds the text index from the store',
    });
  }
  return checks;
}

/** A store behind its indexes now, or found reset at a recent start. */
async function checkReset(engine: Engine, dataDir: string, claims: DataDirClaims): Promise<Check[]> {
  const stats = await engine.stats();
  const now = detectStoreReset(claims, stats.lastSeq);
  if (now) {
    return [{
      level: 'fail',
      name: 'store reset',
      message: describeStoreReset(now, dataDir, 'next start'),
      advice: `if this store is not the one you meant to keep, restore the right ${join(dataDir, 'store.sqlite')} before starting livedex`,
    }];
  }
  let found: StoreReset | null = null;
  try {
    found = JSON.parse((await engine.getCursor(STORE_RESET_CURSOR)) ?? 'null') as StoreReset | null;
  } catch {
    // An unreadable note: nothing to report.
  }
  if (!found || typeof found.detected_at !== 'number') return [];
  const when = new Date(found.detected_at * 1000).toISOString();
  if (Date.now() / 1000 - found.detected_at > RESET_NOTE_DAYS * 86400) {
    return [{ level: 'ok', name: 'store reset', message: `the store was found reset on ${when}, more than ${RESET_NOTE_DAYS} days ago` }];
  }
  return [{
    level: 'warn',
    name: 'store reset',
    message: `found at the start on ${when}: ${describeStoreReset(found, dataDir, 'past')}`,
    advice: `find what emptied or replaced the store (a cleanup script, a restore, a copy that ran out of space) and push again what was pushed over HTTP; this note stays ${RESET_NOTE_DAYS} days`,
  }];
}

/** The serving model's vector snapshot, compared with the change log. */
async function checkVectors(engine: Engine, dataDir: string): Promise<Check[]> {
  const stats = await engine.stats();
  let modelKey: string | null = null;
  try {
    const ref = JSON.parse((await engine.getCursor(ACTIVE_MODEL_CURSOR)) ?? 'null') as { modelKey?: unknown } | null;
    if (typeof ref?.modelKey === 'string') modelKey = ref.modelKey;
  } catch {
    // An unreadable cursor: treated as none.
  }
  if (!modelKey) return [{ level: 'warn', name: 'vector snapshot', message: 'the store names no serving model', advice: 'start the server once: it records the model' }];
  const meta = join(dataDir, 'vectors', safeName(modelKey), 'meta.json');
  let snapshot: { seq?: unknown; count?: unknown; files?: { index?: unknown } };
  try {
    snapshot = JSON.parse(await readFile(meta, 'utf8')) as typeof snapshot;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    return [{
      level: 'warn',
      name: 'vector snapshot',
      message: missing ? `none for ${modelKey}` : `${meta} is unreadable: ${describeError(err)}`,
      advice: 'the vectors are rebuilt from the stored embeddings at the next start (nothing is embedded again)',
    }];
  }
  const seq = typeof snapshot.seq === 'number' ? snapshot.seq : -1;
  const index = typeof snapshot.files?.index === 'string' ? join(dataDir, 'vectors', safeName(modelKey), snapshot.files.index) : null;
  if (!index || !(await stat(index).then((s) => s.isFile(), () => false))) {
    return [{ level: 'warn', name: 'vector snapshot', message: `${meta} names a graph file that is missing`, advice: 'the vectors are rebuilt from the stored embeddings at the next start' }];
  }
  if (seq > stats.lastSeq) {
    return [{ level: 'warn', name: 'vector snapshot', message: `at sequence ${seq}, ahead of the change log (${stats.lastSeq})`, advice: 'it is discarded and rebuilt from the stored embeddings at the next start' }];
  }
  const behind = seq < stats.lastSeq ? `; the ${stats.lastSeq - seq} later commits are filled in from the store at start` : '';
  return [{ level: 'ok', name: 'vector snapshot', message: `${modelKey}: ${String(snapshot.count)} vectors at sequence ${seq}${behind}` }];
}

/** The embedder embeds one short text; the chat model (if any) answers one tiny call. */
async function checkModels(config: LivedexConfig, opts: DoctorOptions): Promise<Check[]> {
  const checks: Check[] = [];
  const ctx = { logger: opts.logger, dataDir: resolve(config.data_dir) };
  const timeout = opts.timeoutMs ?? 20_000;
  const name = `embedder ${config.embedder.name}`;
  let embedder: Embedder | null = null;
  try {
    embedder = await opts.registry.create('embedder', config.embedder.name, config.embedder.options, ctx, `embedder.${config.embedder.name}`);
    // A query embedding: few attempts, short timeouts (someone is waiting), and no cache.
    const probe = embedder.embedQuery ? embedder.embedQuery('livedex doctor') : embedder.embed(['livedex doctor'], AbortSignal.timeout(timeout)).then((v) => v[0]);
    const vec = await withTimeout(probe, timeout);
    if (!vec || vec.length !== embedder.dimensions) throw new Error(`it returned ${vec?.length ?? 0} numbers, expected ${embedder.dimensions}`);
    checks.push({ level: 'ok', name, message: `${embedder.modelKey} embeds (${embedder.dimensions} dimensions)` });
  } catch (err) {
    checks.push({ level: 'fail', name, message: describeError(err), advice: modelAdvice(config.embedder.name) });
  } finally {
    if (embedder) await closeEmbedder(embedder).catch(() => {});
  }
  if (config.llm) {
    const llmName = `llm ${config.llm.name}`;
    try {
      const chat = await opts.registry.create('llm', config.llm.name, config.llm.options, ctx, `llm.${config.llm.name}`);
      try {
        const res = await withTimeout(chat.complete({ messages: [{ role: 'user', content: 'Reply with OK.' }], maxTokens: 4, temperature: 0 }, AbortSignal.timeout(timeout)), timeout);
        checks.push({ level: 'ok', name: llmName, message: `${res.model || chat.model} answers` });
      } finally {
        await chat.close?.().catch(() => {});
      }
    } catch (err) {
      checks.push({ level: 'fail', name: llmName, message: describeError(err), advice: modelAdvice(config.llm.name) });
    }
  }
  return checks;
}

function modelAdvice(plugin: string): string {
  if (plugin === 'openai') return 'check OPENAI_BASE_URL (is the server up and reachable from here?), OPENAI_API_KEY and the model name';
  if (plugin === 'local') return 'check the model directory (`npm run fetch-model` downloads one)';
  return 'check the model settings in the config';
}

/** Each source: a folder exists and can be read; a cloud endpoint answers. */
async function checkSources(config: LivedexConfig, timeoutMs: number): Promise<Check[]> {
  const checks: Check[] = [];
  if (config.sources.length === 0) return [{ level: 'warn', name: 'sources', message: 'none configured', advice: 'give folders or source URIs to `livedex serve`, or list sources in the app file' }];
  for (const [i, ref] of config.sources.entries()) {
    const name = `sources[${i}].${ref.name}`;
    const options = ref.options as Record<string, unknown>;
    try {
      if (ref.name === 'fs') {
        const path = resolve(String(options.path ?? ''));
        const info = await stat(path);
        if (!info.isDirectory()) throw new Error(`${path} is not a folder`);
        await access(path, constants.R_OK | constants.X_OK);
        const entries = await readdir(path);
        checks.push({ level: 'ok', name, message: `${path} is readable (${entries.length} entries at its top)` });
      } else if (ref.name === 'push') {
        checks.push({ level: 'ok', name, message: 'documents arrive over HTTP (nothing to reach)' });
      } else {
        const url = endpointOf(ref.name, options);
        if (!url) {
          checks.push({ level: 'warn', name, message: 'not checked (no endpoint known for this source)' });
          continue;
        }
        const res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs) });
        // Any HTTP answer (even 403 without credentials) means the endpoint is reachable.
        checks.push({ level: 'ok', name, message: `${url} answers (HTTP ${res.status})` });
      }
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      const message = cause ? `${describeError(err)}: ${describeError(cause)}` : describeError(err);
      checks.push({
        level: 'fail',
        name,
        message,
        advice: ref.name === 'fs' ? 'check that the folder exists and that the user running livedex may read it' : 'check the network, the endpoint setting and any proxy between here and it',
      });
    }
  }
  return checks;
}

/** The HTTP endpoint a cloud source talks to. */
function endpointOf(name: string, options: Record<string, unknown>): string | null {
  const given = (k: string) => (typeof options[k] === 'string' ? (options[k] as string) : null);
  if (name === 's3') {
    const region = given('region') ?? process.env.AWS_REGION ?? 'us-east-1';
    return given('endpoint') ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL ?? `https://s3.${region}.amazonaws.com`;
  }
  if (name === 'gdrive') return given('root_url') ?? 'https://www.googleapis.com';
  if (name === 'sharepoint') return given('base_url') ?? 'https://graph.microsoft.com';
  return null;
}

function runningServer(dataDir: string): { url: string; pid: number } | null {
  const file = join(dataDir, SERVER_FILE);
  if (!existsSync(file)) return null;
  try {
    const { url, pid } = JSON.parse(readFileSync(file, 'utf8')) as { url: string; pid: number };
    process.kill(pid, 0);
    return { url, pid };
  } catch {
    return null;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(ms / 1000)} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The report as printed: one line per check, advice indented under it. */
export function formatChecks(checks: Check[]): string {
  const tag = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
  return checks
    .map((c) => `${tag[c.level]}  ${c.name}: ${c.message}${c.advice && c.level !== 'ok' ? `\n      → ${c.advice}` : ''}`)
    .join('\n');
}
