/** @module core/sandbox-worker — runs inside a parse sandbox worker thread: builds parsers from a registry module and parses. */
import { parentPort, workerData } from 'node:worker_threads';
import type { Registry } from './registry.js';
import type { Logger, Metadata, ParsedPart, Parser } from './types.js';

/** One parse job, as posted to a worker (the bytes are transferred when they can be). */
export interface ParseJob {
  id: number;
  parser: { name: string; options: unknown };
  input: { key: string; bytes: Uint8Array; extension: string; metadata: Metadata };
}

/** What every worker of a sandbox is started with. */
export interface SandboxWorkerData {
  /** URL of a module exporting `builtinRegistry()` or `createRegistry()`. */
  registryModule: string;
  /** `PluginContext.dataDir` of the parsers. */
  dataDir: string;
}

/** What a thrown error keeps across the thread boundary (structured clone drops `code` and `field`). */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  field?: string;
}

export type ParseOutcome = { ok: true; parts: ParsedPart[] } | { ok: false; error: WireError };

/** Messages a worker sends outside the job's reply: the job started (its time limit starts now), or a log line. */
export type WorkerEvent =
  | { type: 'started'; id: number }
  | { type: 'log'; level: keyof Logger; msg: string; fields?: Record<string, unknown> };

function post(event: WorkerEvent): void {
  try {
    parentPort?.postMessage(event);
  } catch {
    // Log fields that cannot be cloned (functions, sockets…) go as text rather than fail the parse.
    if (event.type === 'log') parentPort?.postMessage({ ...event, fields: { text: String(JSON.stringify(event.fields)) } });
  }
}

// The parser's logger forwards to the main thread, where the sandbox's logger writes it.
const logger: Logger = {
  debug: (msg, fields) => post({ type: 'log', level: 'debug', msg, ...(fields ? { fields } : {}) }),
  info: (msg, fields) => post({ type: 'log', level: 'info', msg, ...(fields ? { fields } : {}) }),
  warn: (msg, fields) => post({ type: 'log', level: 'warn', msg, ...(fields ? { fields } : {}) }),
  error: (msg, fields) => post({ type: 'log', level: 'error', msg, ...(fields ? { fields } : {}) }),
};

const { registryModule, dataDir } = workerData as SandboxWorkerData;
// Loading starts with the worker, so that a replacement is warm by its first job; it is not
// awaited here because piscina does not replace a worker that fails while starting up.
const registry = loadRegistry(registryModule);
registry.catch(() => {}); // reported by the jobs that need it
const parsers = new Map<string, Promise<Parser>>();

async function importModule(url: string): Promise<unknown> {
  try {
    return await import(url);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    // TypeScript under tsx: before Node 22.22 tsx registers its ESM hooks in the main thread
    // only (it cannot tell a worker from the loader thread there), so this worker does it.
    const { register } = await import('tsx/esm/api');
    register();
    // Node remembers the failed import of `url`: ask again under another URL.
    return import(`${url}${url.includes('?') ? '&' : '?'}tsx`);
  }
}

async function loadRegistry(url: string): Promise<Registry> {
  const mod = (await importModule(url)) as { builtinRegistry?: () => Registry; createRegistry?: () => Registry };
  const make = mod.builtinRegistry ?? mod.createRegistry;
  if (typeof make !== 'function') throw new Error(`${url} exports neither builtinRegistry() nor createRegistry()`);
  return make();
}

/** The parser a job names, built once per worker for each name and options. */
function parserFor(ref: ParseJob['parser']): Promise<Parser> {
  const id = `${ref.name}\n${JSON.stringify(ref.options ?? {})}`;
  let parser = parsers.get(id);
  if (!parser) {
    parser = registry.then((r) => r.create('parser', ref.name, ref.options, { logger, dataDir }, `parsers.${ref.name}`));
    parsers.set(id, parser);
    // A failed build is not kept: the next job tries again.
    parser.catch(() => parsers.delete(id));
  }
  return parser;
}

function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const { code, field } = err as { code?: unknown; field?: unknown };
  return {
    name: err.name,
    message: err.message || err.name,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof field === 'string' ? { field } : {}),
  };
}

/** The piscina task handler. Errors are returned as values so that their code survives the trip. */
export default async function parseInWorker(job: ParseJob): Promise<ParseOutcome> {
  try {
    const parser = await parserFor(job.parser);
    // The time limit counts from here: building the parser is our code, not the file's doing.
    post({ type: 'started', id: job.id });
    return { ok: true, parts: await parser.parse(job.input) };
  } catch (err) {
    return { ok: false, error: toWire(err) };
  }
}
