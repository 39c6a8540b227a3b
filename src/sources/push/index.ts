/** @module sources/push — documents pushed over HTTP (`PUT /v1/documents/{key}`), kept durably under the data dir. */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { LivedexError, describeError } from '../../core/errors.js';
import type { PushedDocument, PushTarget } from '../../core/push.js';
import { definePlugin } from '../../core/registry.js';
import type { Change, Metadata, Source, SourceContext, SourceDocument } from '../../core/types.js';
import { documentKey, ownsKey, sourceNameSchema } from '../naming.js';

export const pushSourceOptionsSchema = z.strictObject({
  /** The source's id and the prefix of its keys: `PUT /v1/documents/notes.md` makes `push:notes.md`. */
  name: sourceNameSchema('push'),
  /** Where pushed documents are kept; default `<data_dir>/push/<name>`. */
  dir: z.string().min(1).optional(),
});

/** Options as written in a config file (defaults not yet applied). */
export type PushSourceOptions = z.input<typeof pushSourceOptionsSchema>;

/** The longest key (after the source prefix), in UTF-8 bytes. */
export const MAX_PUSH_KEY_BYTES = 1024;

/** What is stored beside the bytes of a pushed document. */
interface Entry {
  key: string;
  version: string;
  /** The file holding the bytes (named by key and content, so a new version never overwrites an old one in place). */
  file: string;
  extension: string | null;
  content_type: string | null;
  metadata: Metadata;
  size: number;
  created_at: number;
  modified_at: number;
}

const sha = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Writes `data` to `path` through a temp file, flushed to disk before the rename makes it visible. */
async function writeDurably(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Why a client key is refused, or null when it is fine. */
function keyProblem(inner: string): string | null {
  if (inner === '') return 'the key is empty';
  if (Buffer.byteLength(inner) > MAX_PUSH_KEY_BYTES) return `the key is longer than ${MAX_PUSH_KEY_BYTES} bytes`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
  if (/[\u0000-\u001f\u007f]/.test(inner)) return 'the key holds control characters';
  if (inner.includes('\\')) return 'the key holds a backslash; separate folders with "/"';
  if (inner.startsWith('/')) return 'the key starts with "/"';
  if (inner.split('/').some((s) => s === '..' || s === '.' || s === '')) return 'the key has an empty, "." or ".." segment';
  return null;
}

/**
 * The push source: clients put and delete documents over HTTP; each is written under the data
 * dir (bytes, then a small JSON entry, each flushed and renamed into place) before it is queued,
 * so an acknowledged push survives a restart. On start it reconciles its stored entries with
 * the store, so whatever a crash left half-done is finished.
 *
 * @example
 * const push = new PushSource({}, { dataDir: './.livedex' });
 * await push.start(ctx);
 * await push.put({ key: 'notes/a.md', bytes, contentType: 'text/markdown', extension: null, metadata: {} });
 * // → document `push:notes/a.md`
 */
export class PushSource implements Source, PushTarget {
  readonly id: string;
  readonly #name: string;
  readonly #dir: string;
  #ctx: SourceContext | null = null;
  /** Serializes writes, so two pushes of one key land in the order they came. */
  #chain: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(options: PushSourceOptions, defaults: { dataDir: string }) {
    const opts = pushSourceOptionsSchema.parse(options);
    this.#name = opts.name;
    this.id = opts.name;
    this.#dir = resolve(opts.dir ?? join(defaults.dataDir, 'push', opts.name));
  }

  owns(key: string): boolean {
    return ownsKey(this.#name, key);
  }

  async start(ctx: SourceContext): Promise<void> {
    if (this.#ctx) throw new LivedexError('internal', `source ${this.id} was started twice`);
    this.#ctx = ctx;
    await mkdir(this.#dir, { recursive: true });
    await this.reconcile();
  }

  /** Emits what the stored entries and the store disagree on (after a crash, or a lost store). */
  reconcile(): Promise<void> {
    return this.#serial(async () => {
      const ctx = this.#ctx;
      if (!ctx || this.#stopped) return;
      const entries = await this.#entries();
      const known = await ctx.knownVersions();
      const changes: Change[] = [];
      for (const entry of entries.values()) if (known.get(entry.key) !== entry.version) changes.push({ kind: 'upsert', doc: this.#document(entry) });
      for (const key of known.keys()) if (this.owns(key) && !entries.has(key)) changes.push({ kind: 'delete', key });
      if (changes.length > 0) await ctx.emit(changes);
      ctx.reportHealth({ state: 'idle' });
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#chain.catch(() => undefined);
  }

  resolveKey(key: string): string {
    const inner = this.owns(key) ? key.slice(this.#name.length + 1) : key;
    const problem = keyProblem(inner);
    if (problem) throw new LivedexError('invalid_request', `document key ${JSON.stringify(key.slice(0, 200))}: ${problem}`, { field: 'key' });
    return documentKey(this.#name, inner);
  }

  put(doc: PushedDocument): Promise<{ key: string; version: string; created: boolean }> {
    const key = this.resolveKey(doc.key);
    return this.#serial(async () => {
      const ctx = this.#live();
      const metadataJson = JSON.stringify(doc.metadata);
      const contentHash = sha(doc.bytes);
      const version = sha(`${contentHash}\u0000${doc.extension ?? ''}\u0000${doc.contentType ?? ''}\u0000${metadataJson}`).slice(0, 32);
      const id = sha(key);
      const previous = await this.#readEntry(join(this.#dir, `${id}.json`));
      const now = Math.floor(Date.now() / 1000);
      const entry: Entry = {
        key,
        version,
        file: `${id}-${contentHash.slice(0, 16)}.bin`,
        extension: doc.extension,
        content_type: doc.contentType,
        metadata: doc.metadata,
        size: doc.bytes.byteLength,
        created_at: previous?.created_at ?? now,
        modified_at: previous?.version === version ? previous.modified_at : now,
      };
      await writeDurably(join(this.#dir, entry.file), doc.bytes);
      await writeDurably(join(this.#dir, `${id}.json`), JSON.stringify(entry));
      if (previous && previous.file !== entry.file) await rm(join(this.#dir, previous.file), { force: true });
      await ctx.emit([{ kind: 'upsert', doc: this.#document(entry), live: true }]);
      return { key, version, created: previous === null };
    });
  }

  remove(key: string): Promise<boolean> {
    const full = this.resolveKey(key);
    return this.#serial(async () => {
      const ctx = this.#live();
      const id = sha(full);
      const entryPath = join(this.#dir, `${id}.json`);
      const entry = await this.#readEntry(entryPath);
      if (!entry) return false;
      // The entry goes first: without it the bytes are garbage, never a document.
      await rm(entryPath, { force: true });
      await rm(join(this.#dir, entry.file), { force: true });
      await ctx.emit([{ kind: 'delete', key: full, live: true }]);
      return true;
    });
  }

  #live(): SourceContext {
    if (!this.#ctx || this.#stopped) throw new LivedexError('not_ready', 'push ingestion is not running (the server is starting or stopping)');
    return this.#ctx;
  }

  #serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(job);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #readEntry(path: string): Promise<Entry | null> {
    try {
      const entry = JSON.parse(await readFile(path, 'utf8')) as Entry;
      return typeof entry.key === 'string' && typeof entry.version === 'string' && typeof entry.file === 'string' ? entry : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#ctx?.logger.warn('unreadable push entry skipped', { path, error: describeError(err) });
      return null;
    }
  }

  /** Every stored entry, by key; bytes no entry points to (a crash mid-push) are removed. */
  async #entries(): Promise<Map<string, Entry>> {
    const names = await readdir(this.#dir);
    const entries = new Map<string, Entry>();
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const entry = await this.#readEntry(join(this.#dir, name));
      if (entry && this.owns(entry.key)) entries.set(entry.key, entry);
    }
    const used = new Set([...entries.values()].map((e) => e.file));
    for (const name of names) {
      if ((name.endsWith('.bin') && !used.has(name)) || name.endsWith('.tmp')) await rm(join(this.#dir, name), { force: true });
    }
    return entries;
  }

  #document(entry: Entry): SourceDocument {
    const path = join(this.#dir, `${sha(entry.key)}.json`);
    return {
      key: entry.key,
      version: entry.version,
      metadata: {
        ...entry.metadata,
        path: entry.key,
        source: this.#name,
        size: entry.size,
        created_at: entry.created_at,
        modified_at: entry.modified_at,
        ...(entry.content_type ? { content_type: entry.content_type } : {}),
      },
      ...(entry.extension ? { extension: entry.extension } : {}),
      // Reads the current bytes of the key: a newer push may have replaced this version's file.
      read: async () => {
        const current = (await this.#readEntry(path)) ?? entry;
        return new Uint8Array(await readFile(join(this.#dir, current.file)));
      },
    };
  }
}

export const pushSourcePlugin = definePlugin({
  kind: 'source',
  name: 'push',
  description: 'Documents pushed over HTTP (PUT/DELETE /v1/documents/{key}), kept durably under the data dir.',
  options: pushSourceOptionsSchema,
  create: (options, ctx) => new PushSource(options, { dataDir: ctx.dataDir }),
});
