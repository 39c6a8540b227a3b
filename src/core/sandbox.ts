/**
 * @module core/sandbox — runs parsers in a pool of worker threads, each job with a time, heap
 * and size limit, so that a hostile or broken file fails alone instead of taking the server down;
 * small files of parsers that only work on strings are parsed on the calling thread instead.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { z } from 'zod';
import { CallError, type FailureKind } from './calls.js';
import { describeError, isErrorCode, LivedexError, markTransient } from './errors.js';
import type { ParseJob, ParseOutcome, SandboxWorkerData, WakeJob, WireError, WireParserRef, WorkerEvent } from './sandbox-worker.js';
import type { Logger, ParsedPart, ParseInput, Parser } from './types.js';

/** The `sandbox` section of the config; also the options of `ParseSandbox`. */
export const sandboxConfigSchema = z.strictObject({
  /** Worker threads; defaults to the number of cores. */
  workers: z.number().int().positive().optional(),
  /** Time one parse may run, from the moment a worker takes it (queueing does not count). */
  timeout_ms: z.number().int().positive().default(60_000),
  /** Heap of each worker (V8 old generation); a parse that needs more fails, the worker is replaced. */
  max_heap_mb: z.number().int().min(16).default(512),
  /** Largest input handed to a parser. */
  max_bytes: z.number().int().positive().default(64 * 1024 * 1024),
  // A worker round trip costs about 50 small text parses; a parse on the main thread cannot be
  // stopped, so only parsers that do linear string work go there, and only on a bounded input.
  in_process: z
    .array(z.string().min(1))
    .default(['text', 'markdown'])
    .describe('parsers that run on the main thread (no worker, no time or heap limit) for files up to in_process_max_bytes; [] sends every file to a worker'),
  in_process_max_bytes: z
    .number()
    .int()
    .min(0)
    .max(16 * 1024 * 1024)
    .default(1024 * 1024)
    .describe('largest file an in_process parser takes on the main thread; larger ones go to a worker with every limit'),
});
export type SandboxConfig = z.output<typeof sandboxConfigSchema>;

export interface ParseSandboxOptions extends Partial<SandboxConfig> {
  logger: Logger;
  /** Handed to the parser factories in the workers, as `PluginContext.dataDir`. */
  dataDir: string;
  /**
   * Module whose `builtinRegistry()` (or `createRegistry()`) gives the registry the workers build
   * parsers from; it must hold every parser that is wrapped. Defaults to the built-in plugins.
   */
  registryModule?: string | URL;
  /** The module the workers run; tests point it at a broken one. Defaults to the worker entry below. */
  workerModule?: string | URL;
}

/** What a worker needs to build a parser itself: its plugin name and options, as in the config. */
export interface ParserRef {
  name: string;
  options?: unknown;
  /**
   * URL of the module exporting the parser's plugin definition (`PluginDefinition.module`): the
   * worker imports it alone. Used only with the default registry module (an explicit
   * `registryModule` says where every parser comes from).
   */
  module?: string;
}

/** Where parses ran and how many workers run, for metrics. */
export interface SandboxCounters {
  /** Worker threads running now. */
  workers: number;
  /** Worker threads started since the sandbox opened, replacements included. */
  workersStarted: number;
  /** Parses by parser name: on the main thread (`main`) or in a worker (`worker`). */
  parses: Record<string, { main: number; worker: number }>;
}

// Resolved next to this file with its own extension, so that it works from `src/` (tsx) and `dist/` (tsc).
// From the sources the workers start with a plain-JS entry that loads the TypeScript worker
// itself: a worker cannot count on the loader hooks of the main thread (see sandbox-boot.mjs).
const ownExtension = extname(fileURLToPath(import.meta.url));
const WORKER_MODULE = new URL(ownExtension === '.ts' ? './sandbox-boot.mjs' : `./sandbox-worker${ownExtension}`, import.meta.url);
export const DEFAULT_REGISTRY_MODULE = new URL(`../plugins${ownExtension}`, import.meta.url).href;

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;
const megabytes = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

/**
 * A pool of worker threads that parse. It produces `Parser`s, so the pipeline does not know
 * whether a parser runs here or in a worker.
 *
 * @example
 * const sandbox = new ParseSandbox({ logger, dataDir, timeout_ms: 30_000 });
 * const local = await registry.create('parser', 'markdown', {}, ctx);
 * const parser = sandbox.wrap(local, { name: 'markdown', options: {} });
 * const parts = await parser.parse({ key: 'a.md', bytes, extension: '.md', metadata: {} });
 * await sandbox.close();
 */
export class ParseSandbox {
  readonly config: Required<SandboxConfig>;
  readonly registryModule: string;
  readonly #pool: Piscina<ParseJob | WakeJob, ParseOutcome>;
  readonly #logger: Logger;
  /** Jobs posted to the pool, by id: called when a worker takes the job. */
  readonly #onStart = new Map<number, () => void>();
  /** Jobs no worker has taken yet, by id: fails one (when no worker can start to take it). */
  readonly #waiting = new Map<number, (err: unknown) => void>();
  /** True when the workers build each parser from its own module (the default registry). */
  readonly #parserModules: boolean;
  /** The wrapped parsers by extension, as a job names them: a worker reads a file's attachments with them. */
  readonly #byExtension = new Map<string, WireParserRef>();
  #attachments: Array<[string, WireParserRef]> | null = null;
  readonly #parses = new Map<string, { main: number; worker: number }>();
  #workersStarted = 0;
  #nextId = 0;
  #closed = false;

  constructor(options: ParseSandboxOptions) {
    const { logger, dataDir, registryModule, workerModule, ...limits } = options;
    const parsed = sandboxConfigSchema.parse(limits);
    this.config = { ...parsed, workers: parsed.workers ?? availableParallelism() };
    this.registryModule = registryModule === undefined ? DEFAULT_REGISTRY_MODULE : new URL(registryModule).href;
    this.#parserModules = registryModule === undefined;
    this.#logger = logger;
    this.#pool = new Piscina({
      filename: workerModule === undefined ? WORKER_MODULE.href : new URL(workerModule).href,
      // Every worker starts now (`#wake` below), before the first file, and stays: a worker that
      // started on demand made the first files wait for it, and one leaving when idle made the
      // next burst pay the start again. One that is terminated (timeout, abort) or dies (OOM,
      // crash) is replaced at once by `#wake`. `minThreads` stays 0: piscina would mark its
      // first workers ready before they load, and restart a worker entry that cannot load forever.
      minThreads: 0,
      maxThreads: this.config.workers,
      idleTimeout: Infinity,
      // Between jobs piscina would block idle workers in Atomics.wait, which also freezes any
      // timer or stream a parser left behind; a plain message loop costs little next to a parse.
      atomics: 'disabled',
      resourceLimits: { maxOldGenerationSizeMb: this.config.max_heap_mb },
      workerData: { registryModule: this.registryModule, dataDir } satisfies SandboxWorkerData,
      // Workers inherit the parent's execArgv by default (`--import tsx` under tsx); passing
      // `process.execArgv` explicitly would fail on process-wide flags such as `--max-old-space-size`.
    });
    this.#pool.on('message', (event: WorkerEvent) => {
      if (event.type === 'started') this.#onStart.get(event.id)?.();
      else if (event.type === 'log') this.#logger[event.level](event.msg, event.fields);
    });
    this.#pool.on('workerCreate', () => void this.#workersStarted++);
    // Worker failures reach the job that was running; an error with no job (a worker dying idle,
    // or one that could not even load its entry) is logged.
    this.#pool.on('error', (err: unknown) => {
      this.#logger.warn('parse sandbox worker failed', { error: String(err) });
      this.#failStranded(err);
    });
    this.#wake();
  }

  /** Where parses ran and how many workers run. */
  counters(): SandboxCounters {
    return { workers: this.#pool.threads.length, workersStarted: this.#workersStarted, parses: Object.fromEntries([...this.#parses].map(([name, c]) => [name, { ...c }])) };
  }

  #count(parser: string, where: 'main' | 'worker'): void {
    let c = this.#parses.get(parser);
    if (!c) this.#parses.set(parser, (c = { main: 0, worker: 0 }));
    c[where]++;
  }

  /** Jobs waiting for a worker. */
  get queued(): number {
    return this.#pool.queueSize;
  }

  /**
   * A parser with the name and extensions of `local` whose `parse` runs in a worker; the worker
   * builds its own copy from `ref`. The input bytes are moved to the worker when they fill their
   * buffer (the caller's view is then detached), copied otherwise. A parser listed in
   * `in_process` parses files up to `in_process_max_bytes` with `local`, on this thread.
   */
  wrap(local: Parser, ref: ParserRef): Parser {
    // The first parser wrapped for an extension reads its attachments too (as it reads its files).
    for (const ext of local.extensions) if (!this.#byExtension.has(ext)) this.#byExtension.set(ext, this.#wireRef(ref));
    this.#attachments = null;
    const here = this.config.in_process.includes(ref.name);
    const maxHere = Math.min(this.config.in_process_max_bytes, this.config.max_bytes);
    return {
      name: local.name,
      extensions: [...local.extensions],
      ...(local.splitter !== undefined ? { splitter: local.splitter } : {}),
      parse: (input) => {
        if (!here || input.bytes.byteLength > maxHere) return this.parse(ref, input);
        if (this.#closed) return Promise.reject(new LivedexError('parse_failed', 'the parse sandbox is closed'));
        this.#count(ref.name, 'main');
        return local.parse(input);
      },
    };
  }

  #wireRef(ref: ParserRef): WireParserRef {
    return { name: ref.name, options: ref.options ?? {}, ...(this.#parserModules && ref.module !== undefined ? { module: ref.module } : {}) };
  }

  /** Parses `input` in a worker with the parser `ref` names. */
  async parse(ref: ParserRef, input: ParseInput): Promise<ParsedPart[]> {
    if (this.#closed) throw new LivedexError('parse_failed', 'the parse sandbox is closed');
    input.signal?.throwIfAborted();
    const { max_bytes, timeout_ms } = this.config;
    if (input.bytes.byteLength > max_bytes) {
      throw new LivedexError('parse_failed', `file is ${megabytes(input.bytes.byteLength)}, above the ${megabytes(max_bytes)} limit (sandbox.max_bytes)`);
    }

    const id = ++this.#nextId;
    this.#count(ref.name, 'worker');
    const job: ParseJob = {
      id,
      parser: this.#wireRef(ref),
      input: { key: input.key, bytes: input.bytes, extension: input.extension, metadata: input.metadata, ...(input.depth ? { depth: input.depth } : {}) },
      attachments: (this.#attachments ??= [...this.#byExtension]),
    };
    const { buffer, byteOffset, byteLength } = input.bytes;
    const transferList = buffer instanceof ArrayBuffer && byteOffset === 0 && byteLength === buffer.byteLength ? [buffer] : [];

    // Aborting the job's signal removes it from the queue, or terminates the worker running it.
    const stop = new AbortController();
    let stopped: unknown = null;
    const cancel = (reason: unknown) => {
      if (stopped !== null) return;
      stopped = reason;
      stop.abort(reason);
    };
    const onAbort = () => cancel(input.signal?.reason);
    input.signal?.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    this.#waiting.set(id, cancel);
    this.#onStart.set(id, () => {
      this.#waiting.delete(id);
      timer = setTimeout(() => cancel(new LivedexError('parse_failed', `parsing timed out after ${seconds(timeout_ms)} (sandbox.timeout_ms)`)), timeout_ms);
    });

    let outcome: ParseOutcome;
    try {
      outcome = await this.#pool.run(job, { signal: stop.signal, transferList });
    } catch (err) {
      // A job that was stopped or crashed took its worker down: start others for the jobs queued behind it.
      queueMicrotask(() => this.#wake());
      throw stopped ?? this.#explain(err);
    } finally {
      clearTimeout(timer);
      this.#onStart.delete(id);
      this.#waiting.delete(id);
      input.signal?.removeEventListener('abort', onAbort);
    }
    if (!outcome.ok) throw revive(outcome.error);
    return outcome.parts;
  }

  /**
   * Starts the workers that are missing: all of them when the sandbox opens, a replacement after
   * one was stopped (time limit, abort) or died. With `minThreads: 0` piscina replaces no worker,
   * and starts one only when a job is posted: this posts the jobs that start them.
   */
  #wake(): void {
    if (this.#closed) return;
    const missing = this.config.workers - this.#pool.threads.length;
    for (let i = 0; i < missing; i++) this.#pool.run({ wake: true }).catch(() => {});
  }

  /**
   * Fails the jobs waiting in the queue when no worker is left to take them. piscina stops
   * replacing workers that die while loading their entry, so such jobs would wait forever;
   * they fail with a transient error instead (the pipeline keeps their documents pending and
   * tries again later, when the next job spawns a worker afresh).
   */
  #failStranded(err: unknown): void {
    if (this.#closed || this.#waiting.size === 0 || this.#pool.threads.length > 0) return;
    const reason = markTransient(new LivedexError('parse_failed', `parse workers cannot start: ${describeError(err)}`, { cause: err }));
    for (const fail of [...this.#waiting.values()]) fail(reason);
  }

  /** Terminates every worker; running and queued jobs reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.destroy();
  }

  /** Turns what piscina reports when a worker dies into a reason a user can act on. */
  #explain(err: unknown): LivedexError {
    const code = (err as { code?: unknown } | null)?.code;
    const message = err instanceof Error ? err.message : String(err);
    if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return new LivedexError('parse_failed', `parser ran out of memory (heap limit ${this.config.max_heap_mb} MB, sandbox.max_heap_mb)`, { cause: err });
    }
    if (this.#closed) return new LivedexError('parse_failed', 'the parse sandbox was closed', { cause: err });
    return new LivedexError('parse_failed', `parser crashed: ${message}`, { cause: err });
  }
}

/**
 * Rebuilds an error thrown in a worker: a `CallError` or a `LivedexError` again when it was one
 * of ours, with its transient flag (so the pipeline can tell "try later" from "failed").
 */
function revive(wire: WireError): Error {
  if (wire.name === 'CallError') {
    return new CallError(wire.message, {
      kind: (wire.kind ?? 'unknown') as FailureKind,
      attempts: wire.attempts ?? 1,
      transient: wire.transient === true,
      ...(wire.httpStatus === undefined ? {} : { httpStatus: wire.httpStatus }),
    });
  }
  if (wire.name === 'LivedexError' && isErrorCode(wire.code)) {
    const err = new LivedexError(wire.code, wire.message, wire.field === undefined ? {} : { field: wire.field });
    return wire.transient === true ? markTransient(err) : err;
  }
  const err = new Error(wire.message);
  err.name = wire.name;
  if (wire.code !== undefined) Object.assign(err, { code: wire.code });
  return err;
}
