/** @module core/sandbox-worker — runs inside a parse sandbox worker thread: builds the parsers its jobs name, each from its own module, and parses. */
import { parentPort, workerData } from 'node:worker_threads';
import { LivedexError, markTransient } from './errors.js';
import { pluginsIn, Registry } from './registry.js';
import type { AttachmentParsers, Logger, Metadata, ParsedPart, Parser } from './types.js';

/** One parse job, as posted to a worker (the bytes are transferred when they can be). */
/** A parser as a job names it. `module`: where its plugin definition lives; without it the worker loads the whole registry module. */
export interface WireParserRef {
  name: string;
  options: unknown;
  module?: string;
}

export interface ParseJob {
  id: number;
  parser: WireParserRef;
  input: { key: string; bytes: Uint8Array; extension: string; metadata: Metadata; depth?: number };
  /** The configured parsers by extension, for the attachments the parser finds (the first claim of an extension wins). */
  attachments: Array<[string, WireParserRef]>;
}

/**
 * A job that only makes the pool start a worker: piscina starts workers when jobs are posted,
 * and replaces none that were stopped, so jobs queued behind a stopped one need this nudge.
 */
export interface WakeJob {
  wake: true;
}

/** What every worker of a sandbox is started with. */
export interface SandboxWorkerData {
  /** URL of a module exporting `builtinRegistry()` or `createRegistry()`. */
  registryModule: string;
  /** `PluginContext.dataDir` of the parsers. */
  dataDir: string;
}

/**
 * What a thrown error keeps across the thread boundary (structured clone drops `code`, `field`
 * and the flags): `transient` says trying again later may succeed (the document stays pending);
 * `kind`, `attempts` and `httpStatus` are those of a `CallError` (a remote parser's final error).
 */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  field?: string;
  transient?: boolean;
  kind?: string;
  attempts?: number;
  httpStatus?: number;
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
// Loaded on the first job that names no module of its own: loading every plugin is what a
// worker would otherwise spend most of its time on, for a parser or two it actually needs.
let registry: Promise<Registry> | null = null;
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

/**
 * The registry the parsers are built from. Failing to load it is not the file's fault: every
 * job gets a transient `parse workers cannot start` error, so documents wait instead of failing.
 */
async function loadRegistry(url: string): Promise<Registry> {
  try {
    const mod = (await importModule(url)) as { builtinRegistry?: () => Registry; createRegistry?: () => Registry };
    const make = mod.builtinRegistry ?? mod.createRegistry;
    if (typeof make !== 'function') throw new Error(`${url} exports neither builtinRegistry() nor createRegistry()`);
    return make();
  } catch (err) {
    const reason = err instanceof Error ? err.message || err.name : String(err);
    throw markTransient(new LivedexError('parse_failed', `parse workers cannot start: cannot load the parser registry ${url}: ${reason}`, { cause: err }));
  }
}

/**
 * A registry holding the one parser plugin that `url` exports under `name`. Failing to load it
 * is not the file's fault either (a broken install): the error is transient, as for the registry.
 */
async function loadParserModule(url: string, name: string): Promise<Registry> {
  try {
    const mod = (await importModule(url)) as Record<string, unknown>;
    const def = pluginsIn(mod).find((v) => v.kind === 'parser' && v.name === name);
    if (!def) throw new Error(`${url} exports no parser plugin named "${name}"`);
    return new Registry().register(def);
  } catch (err) {
    const reason = err instanceof Error ? err.message || err.name : String(err);
    throw markTransient(new LivedexError('parse_failed', `parse workers cannot start: cannot load the parser module ${url}: ${reason}`, { cause: err }));
  }
}

/** The parser a job names, built once per worker for each name and options, from its own module when the job names one. */
function parserFor(ref: WireParserRef): Promise<Parser> {
  const id = `${ref.name}\n${ref.module ?? ''}\n${JSON.stringify(ref.options ?? {})}`;
  let parser = parsers.get(id);
  if (!parser) {
    const source = ref.module === undefined ? (registry ??= loadRegistry(registryModule)) : loadParserModule(ref.module, ref.name);
    parser = source.then((r) => r.create('parser', ref.name, ref.options, { logger, dataDir }, `parsers.${ref.name}`));
    parsers.set(id, parser);
    // A failed build is not kept: the next job tries again.
    parser.catch(() => parsers.delete(id));
  }
  return parser;
}

function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const { code, field, transient, kind, attempts, httpStatus } = err as { code?: unknown; field?: unknown; transient?: unknown; kind?: unknown; attempts?: unknown; httpStatus?: unknown };
  return {
    name: err.name,
    message: err.message || err.name,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof field === 'string' ? { field } : {}),
    ...(transient === true ? { transient } : {}),
    ...(typeof kind === 'string' ? { kind } : {}),
    ...(typeof attempts === 'number' ? { attempts } : {}),
    ...(typeof httpStatus === 'number' ? { httpStatus } : {}),
  };
}

/** The piscina task handler. Errors are returned as values so that their code survives the trip. */
export default async function parseInWorker(job: ParseJob | WakeJob): Promise<ParseOutcome> {
  if ('wake' in job) return { ok: true, parts: [] };
  try {
    const parser = await parserFor(job.parser);
    // The time limit counts from here: building the parser is our code, not the file's doing.
    post({ type: 'started', id: job.id });
    const byExtension = new Map(job.attachments);
    const parseAttachment: AttachmentParsers = (extension) => {
      const ref = byExtension.get(extension);
      return ref && (async (input) => (await parserFor(ref)).parse({ ...input, parseAttachment }));
    };
    return { ok: true, parts: await parser.parse({ ...job.input, parseAttachment }) };
  } catch (err) {
    return { ok: false, error: toWire(err) };
  }
}
