/** @module sources/s3 — an S3 bucket (or a prefix of one) as a source, polled and diffed by ETag. */
import { extname } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { LivedexError } from '../../core/errors.js';
import { extensionForType } from '../../core/media-types.js';
import { definePlugin } from '../../core/registry.js';
import type { Change, Metadata, Source, SourceContext, SourceDocument } from '../../core/types.js';
import { mapLimited } from '../../core/concurrency.js';
import { documentKey, ownsKey, pollIntervalSchema, sourceNameSchema } from '../naming.js';
import { classifyS3Error, createS3Client, describeS3Error, isNotFound, readError, secretsOf } from './client.js';

export const s3SourceOptionsSchema = z
  .strictObject({
    /** The bucket to index. */
    bucket: z.string().min(3).max(63).regex(/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/, 'a bucket name is lower-case letters, digits, "." and "-"'),
    /** Only objects whose key starts with this (e.g. `team/docs/`); default: the whole bucket. */
    prefix: z.string().default(''),
    /** The source's id and the prefix of its document keys (`s3:team/docs/a.md`). */
    name: sourceNameSchema('s3'),
    /** Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`. */
    region: z.string().min(1).optional(),
    /** An S3-compatible endpoint (MinIO, R2, Ceph…); default: AWS, or `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`. */
    endpoint: z.url().optional(),
    /** `bucket` in the path instead of the host name; default: true with a custom endpoint. */
    force_path_style: z.boolean().optional(),
    /** Static credentials; default: the AWS SDK's chain (environment, profile, role). */
    access_key_id: z.string().min(1).optional(),
    secret_access_key: z.string().min(1).optional(),
    session_token: z.string().min(1).optional(),
    poll_interval_s: pollIntervalSchema,
    /** Tries per S3 request (the SDK's standard retry: backoff on 429, 5xx, timeouts, resets). */
    max_attempts: z.number().int().min(1).max(20).default(4),
    request_timeout_ms: z.number().int().min(100).default(30_000),
    /** Reads content type and user metadata (one HEAD per new or changed object) into the metadata. */
    object_metadata: z.boolean().default(true),
  })
  .refine((o) => (o.access_key_id === undefined) === (o.secret_access_key === undefined), {
    message: 'access_key_id and secret_access_key go together',
    path: ['secret_access_key'],
  });

/** Options as written in a config file (defaults not yet applied). */
export type S3SourceOptions = z.input<typeof s3SourceOptionsSchema>;
type ResolvedOptions = z.output<typeof s3SourceOptionsSchema>;

/** Changes per `ctx.emit`. */
const BATCH = 256;
/** HEAD requests in flight while describing changed objects. */
const HEAD_CONCURRENCY = 16;
/** The longest wait between polls while S3 fails, as a multiple of the poll interval. */
const MAX_BACKOFF = 8;

/** One object of a listing. */
interface Listed {
  key: string;
  etag: string;
  size: number;
  modified: number;
  storageClass: string | undefined;
}

/** What the cursor records: the scope the stored versions were listed from. */
interface Snapshot {
  v: 1;
  bucket: string;
  prefix: string;
  endpoint: string;
}

const stripQuotes = (etag: string | undefined): string => (etag ?? '').replace(/^W\//, '').replace(/"/g, '');

/**
 * Follows a bucket (and prefix) by listing it every `poll_interval_s` (ListObjectsV2, every
 * page) and comparing each object's ETag with the version the store holds: new and changed
 * objects are upserts, vanished ones deletes (a rename is both). The store's versions are the
 * durable listing snapshot, so a restart reads only what changed meanwhile; the cursor records
 * the scope they were listed from, and without it (lost, or another bucket/prefix/endpoint)
 * every object is read again once and whatever disappeared is removed.
 *
 * @example
 * const source = new S3Source({ bucket: 'docs', prefix: 'team/', endpoint: 'http://127.0.0.1:9000' });
 * await source.start(ctx); // keys: `s3:team/a.md`; metadata.path: `s3://docs/team/a.md`
 */
export class S3Source implements Source {
  readonly id: string;
  readonly #opts: ResolvedOptions;
  readonly #client: S3Client;
  readonly #secrets: string[];
  readonly #abort = new AbortController();
  #ctx: SourceContext | null = null;
  /** Object key → ETag, as this source believes the store knows it (seeded from the store). */
  #known: Map<string, string> | null = null;
  #fullResync = false;
  #timer: NodeJS.Timeout | null = null;
  #chain: Promise<void> = Promise.resolve();
  #pending: Promise<void> | null = null;
  #failures = 0;
  #stopped = false;
  #onAbort: (() => void) | null = null;

  constructor(options: S3SourceOptions, env: NodeJS.ProcessEnv = process.env) {
    this.#opts = s3SourceOptionsSchema.parse(options);
    this.id = this.#opts.name;
    this.#client = createS3Client(this.#opts, env);
    this.#secrets = secretsOf(this.#opts, env);
  }

  owns(key: string): boolean {
    return ownsKey(this.#opts.name, key);
  }

  /** Lists once and emits what changed; S3 failures are reported as health, never thrown. */
  async start(ctx: SourceContext): Promise<void> {
    if (this.#ctx) throw new LivedexError('internal', `source ${this.id} was started twice`);
    this.#ctx = ctx;
    this.#onAbort = () => void this.stop();
    if (ctx.signal.aborted) return this.stop();
    ctx.signal.addEventListener('abort', this.#onAbort, { once: true });
    ctx.reportHealth({ state: 'syncing' });
    await this.reconcile();
    this.#schedule();
  }

  /** Lists the bucket now and emits the differences; a call made while one runs shares the next run. */
  reconcile(): Promise<void> {
    if (!this.#ctx || this.#stopped) return Promise.resolve();
    if (this.#pending) return this.#pending;
    const run = this.#chain.then(async () => {
      this.#pending = null;
      if (!this.#stopped) await this.#poll();
    });
    this.#pending = run;
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#onAbort) this.#ctx?.signal.removeEventListener('abort', this.#onAbort);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort.abort();
    await this.#chain;
    this.#client.destroy();
  }

  // ───────────── polling ─────────────

  #schedule(): void {
    if (this.#stopped) return;
    // While S3 fails, wait longer each time (up to MAX_BACKOFF intervals) before asking again.
    const factor = Math.min(2 ** this.#failures, MAX_BACKOFF);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.reconcile().finally(() => this.#schedule());
    }, this.#opts.poll_interval_s * 1000 * (this.#failures > 0 ? factor : 1));
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    const ctx = this.#ctx!;
    const started = Date.now();
    try {
      if (!this.#known) await this.#loadKnown(ctx);
      const listed = await this.#list();
      const known = this.#known!;
      const changed = [...listed.values()].filter((o) => this.#fullResync || known.get(o.key) !== o.etag);
      const gone = [...known.keys()].filter((key) => !listed.has(key));
      const upserts = await mapLimited(changed, HEAD_CONCURRENCY, (o) => this.#document(o));
      const changes: Change[] = [
        ...upserts.filter((d): d is SourceDocument => d !== null).map((doc) => ({ kind: 'upsert' as const, doc })),
        ...gone.map((key) => ({ kind: 'delete' as const, key: documentKey(this.#opts.name, key) })),
      ];
      await this.#emit(changes);
      if (this.#stopped) return;
      if (this.#fullResync) {
        await ctx.setCursor(JSON.stringify(this.#scope()));
        this.#fullResync = false;
      }
      this.#failures = 0;
      ctx.reportHealth({ state: 'idle' });
      ctx.logger.debug('s3 listing reconciled', { source: this.id, objects: listed.size, upserts: upserts.length, deletes: gone.length, ms: Date.now() - started });
    } catch (err) {
      if (this.#stopped) return;
      this.#failures++;
      const message = describeS3Error(`listing s3://${this.#opts.bucket}/${this.#opts.prefix}`, err, this.#secrets);
      ctx.reportHealth({ state: 'error', error: message });
      ctx.logger.warn('s3 poll failed; trying again later', { source: this.id, error: message, failures: this.#failures, transient: classifyS3Error(err).transient });
    }
  }

  #scope(): Snapshot {
    return { v: 1, bucket: this.#opts.bucket, prefix: this.#opts.prefix, endpoint: this.#opts.endpoint ?? '' };
  }

  /** Seeds the snapshot from the store; a missing or foreign cursor means a full resync. */
  async #loadKnown(ctx: SourceContext): Promise<void> {
    const known = new Map<string, string>();
    const prefix = this.#opts.name + ':';
    for (const [key, version] of await ctx.knownVersions()) if (this.owns(key)) known.set(key.slice(prefix.length), version);
    let stored: Partial<Snapshot> | null = null;
    try {
      const raw = await ctx.getCursor();
      stored = raw ? (JSON.parse(raw) as Partial<Snapshot>) : null;
    } catch {
      stored = null;
    }
    const scope = this.#scope();
    this.#fullResync = stored?.v !== 1 || stored.bucket !== scope.bucket || stored.prefix !== scope.prefix || stored.endpoint !== scope.endpoint;
    if (this.#fullResync && known.size > 0) {
      ctx.logger.info('no listing snapshot for this bucket and prefix: every object is read again once', { source: this.id, known: known.size });
    }
    this.#known = known;
  }

  /** Every object under the prefix, all pages (ListObjectsV2 returns at most 1,000 per page). */
  async #list(): Promise<Map<string, Listed>> {
    const out = new Map<string, Listed>();
    let token: string | undefined;
    do {
      const page = await this.#client.send(
        new ListObjectsV2Command({ Bucket: this.#opts.bucket, Prefix: this.#opts.prefix || undefined, ContinuationToken: token }),
        { abortSignal: this.#abort.signal },
      );
      for (const o of page.Contents ?? []) {
        // Keys ending in "/" are folder markers made by consoles, never documents.
        if (!o.Key || o.Key.endsWith('/')) continue;
        out.set(o.Key, {
          key: o.Key,
          etag: stripQuotes(o.ETag),
          size: o.Size ?? 0,
          modified: o.LastModified ? Math.floor(o.LastModified.getTime() / 1000) : Math.floor(Date.now() / 1000),
          storageClass: o.StorageClass,
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && !this.#stopped);
    return out;
  }

  /** A listed object as a document; null when it vanished before we could describe it. */
  async #document(o: Listed): Promise<SourceDocument | null> {
    const { bucket, name } = this.#opts;
    const url = `s3://${bucket}/${o.key}`;
    const metadata: Metadata = {
      path: url,
      url,
      source: name,
      bucket,
      object_key: o.key,
      etag: o.etag,
      size: o.size,
      modified_at: o.modified,
      // An S3 object is written whole: its creation is its last write.
      created_at: o.modified,
      ...(o.storageClass ? { storage_class: o.storageClass } : {}),
    };
    let extension: string | null = null;
    if (this.#opts.object_metadata) {
      try {
        const head = await this.#client.send(new HeadObjectCommand({ Bucket: bucket, Key: o.key, IfMatch: `"${o.etag}"` }), { abortSignal: this.#abort.signal });
        if (head.ContentType) metadata.content_type = head.ContentType;
        if (head.Metadata && Object.keys(head.Metadata).length > 0) metadata.object_metadata = { ...head.Metadata };
        if (extname(o.key) === '') extension = extensionForType(head.ContentType);
      } catch (err) {
        // Gone or replaced since the listing: the next poll sees what is there now.
        if (isNotFound(err) || ((err ?? {}) as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) return null;
        throw err;
      }
    }
    const client = this.#client;
    const secrets = this.#secrets;
    return {
      key: documentKey(name, o.key),
      version: o.etag,
      metadata,
      ...(extension ? { extension } : {}),
      read: async (signal?: AbortSignal) => {
        try {
          const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.key }), { abortSignal: signal ?? this.#abort.signal });
          if (!res.Body) return new Uint8Array();
          return await res.Body.transformToByteArray();
        } catch (err) {
          if (isNotFound(err)) throw Object.assign(new Error(`${url} no longer exists`), { code: 'ENOENT' });
          throw readError(`reading ${url}`, err, secrets);
        }
      },
    };
  }

  async #emit(changes: Change[]): Promise<void> {
    const ctx = this.#ctx!;
    const known = this.#known!;
    const prefix = this.#opts.name + ':';
    for (let i = 0; i < changes.length && !this.#stopped; i += BATCH) {
      const batch = changes.slice(i, i + BATCH);
      await ctx.emit(batch);
      for (const c of batch) {
        if (c.kind === 'upsert') known.set(c.doc.key.slice(prefix.length), c.doc.version);
        else known.delete(c.key.slice(prefix.length));
      }
    }
  }
}

export const s3SourcePlugin = definePlugin({
  kind: 'source',
  name: 's3',
  description: 'An S3 bucket or prefix (AWS, MinIO, R2, Ceph…), polled and diffed by ETag.',
  options: s3SourceOptionsSchema,
  create: (options) => new S3Source(options),
});
