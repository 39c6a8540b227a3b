/** @module sources/gdrive — Google Drive: a folder tree (My Drive or a shared drive) followed through the Changes API. */
import { createHash } from 'node:crypto';
import { extname } from 'node:path';
import { drive, type drive_v3 } from '@googleapis/drive';
import { z } from 'zod';
import { classifyError, type Classified } from '../../core/calls.js';
import { LivedexError, describeError, markTransient } from '../../core/errors.js';
import { definePlugin } from '../../core/registry.js';
import type { Change, SourceDocument } from '../../core/types.js';
import { CursorLostError, FeedSource, withRetry, type Feed, type FeedPage, type RetryPolicy } from '../feed/index.js';
import { pollIntervalSchema, sourceNameSchema } from '../naming.js';
import { driveAuthClient, resolveCredentials } from './auth.js';

export const gdriveSourceOptionsSchema = z.strictObject({
  /** The folder to index (an id from its URL); a shared drive's id indexes the whole shared drive. */
  folder_id: z.string().min(1),
  /** The shared drive holding the folder; absent: My Drive (and files shared with the account). */
  drive_id: z.string().min(1).optional(),
  /** A service account key file or an OAuth `authorized_user` file (JSON). */
  credentials_file: z.string().min(1).optional(),
  /** The same JSON inline (a string or a mapping); wins over `credentials_file`. */
  credentials_json: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
  /** The user a service account acts for (domain-wide delegation). */
  subject: z.string().min(1).optional(),
  /** Also index the folder's subfolders. */
  recursive: z.boolean().default(true),
  /** What Google Docs, Sheets and Slides are exported as (and parsed as). */
  export_formats: z
    .strictObject({
      document: z.enum(['docx', 'txt', 'html', 'md', 'pdf']).default('docx'),
      spreadsheet: z.enum(['xlsx', 'csv', 'pdf']).default('xlsx'),
      presentation: z.enum(['pptx', 'txt', 'pdf']).default('pptx'),
    })
    .prefault({}),
  /** The API's base URL (a fake's in tests); default Google's. */
  root_url: z.url().optional(),
  /** Prefixes the document keys (`<name>:<file id>`) and names the source in status. */
  name: sourceNameSchema('gdrive'),
  /** Seconds between polls of the Changes API. */
  poll_interval_s: pollIntervalSchema,
  /** Seconds between full listings that heal anything the change feed missed; 0: never. */
  reconcile_interval_s: z.number().min(0).default(6 * 3600),
  /** Files per listing and changes per page (the API allows 1,000). */
  page_size: z.number().int().min(1).max(1000).default(1000),
  /** Time allowed per request. */
  request_timeout_ms: z.number().int().min(100).default(60_000),
  /** Retries of a request that failed with 429, 5xx, a rate-limit 403 or a timeout. */
  retries: z.number().int().min(0).default(4),
});

/** Options as written in a config file (defaults not yet applied). */
export type GdriveSourceOptions = z.input<typeof gdriveSourceOptionsSchema>;
type ResolvedOptions = z.output<typeof gdriveSourceOptionsSchema>;

const FOLDER = 'application/vnd.google-apps.folder';
const GOOGLE_APPS = 'application/vnd.google-apps.';
const FILE_FIELDS = 'id,name,mimeType,parents,trashed,md5Checksum,version,modifiedTime,createdTime,webViewLink,size,owners(displayName,emailAddress)';

/** Export MIME types by the extension asked for. */
const EXPORT_MIME: Record<string, string> = {
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  txt: 'text/plain',
  html: 'text/html',
  md: 'text/markdown',
  csv: 'text/csv',
  pdf: 'application/pdf',
};

/** Extensions for binary files whose names have none. */
const EXTENSION_OF_MIME: Record<string, string> = {
  'text/plain': '.txt',
  'text/markdown': '.md',
  'text/html': '.html',
  'text/csv': '.csv',
  'application/json': '.json',
  'application/pdf': '.pdf',
  'message/rfc822': '.eml',
  [EXPORT_MIME.docx!]: '.docx',
  [EXPORT_MIME.xlsx!]: '.xlsx',
  [EXPORT_MIME.pptx!]: '.pptx',
};

/** What the cursor holds: the changes page token, and the folder tree it was taken with. */
interface DriveState {
  v: 1;
  token: string;
  root: { id: string; name: string };
  /** Folder id → [name, parent id], for every folder inside the tree. */
  folders: Record<string, [string, string]>;
  /** A folder left the tree: the next poll lists everything (persisted, so a failed relist is retried). */
  relist?: boolean;
}

const shortHash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
const seconds = (iso: string | null | undefined): number | null => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? null : Math.floor(t / 1000);
};

/** Drive answers a rate limit with 403 `rateLimitExceeded`/`userRateLimitExceeded`: retry those too. */
function classifyDriveError(err: unknown): Classified {
  const e = err as { status?: number; response?: { data?: { error?: { errors?: Array<{ reason?: string }> } } } };
  const reasons = e?.response?.data?.error?.errors?.map((x) => x.reason) ?? [];
  if (e?.status === 403 && reasons.some((r) => r === 'rateLimitExceeded' || r === 'userRateLimitExceeded')) {
    return { ...classifyError(err), kind: 'rate_limited', retryable: true };
  }
  return classifyError(err);
}

/** The Drive side of the source: listing the tree and reading the Changes API. */
export class DriveFeed implements Feed {
  readonly service = 'Google Drive';
  readonly #opts: ResolvedOptions;
  readonly #api: drive_v3.Drive;
  readonly #policy: RetryPolicy;
  /** Set by the source: documents found gone when read are reported through it. */
  onVanished: (key: string) => void = () => {};
  signal: AbortSignal | null = null;

  constructor(opts: ResolvedOptions, env: NodeJS.ProcessEnv, where: string) {
    this.#opts = opts;
    const creds = resolveCredentials({ credentials_json: opts.credentials_json, credentials_file: opts.credentials_file, subject: opts.subject, env }, where);
    this.#policy = { retries: opts.retries, baseMs: 500, maxMs: 30_000 };
    this.#api = drive({
      version: 'v3',
      auth: driveAuthClient(creds, opts.request_timeout_ms),
      // Retries are ours (they honour Retry-After and stop with the source).
      retry: false,
      timeout: opts.request_timeout_ms,
      ...(opts.root_url ? { rootUrl: opts.root_url.endsWith('/') ? opts.root_url : `${opts.root_url}/` } : {}),
    });
  }

  #call<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    return withRetry(fn, this.#policy, signal, classifyDriveError);
  }

  get #drives(): Record<string, unknown> {
    // Both flags are needed for files of shared drives to show up at all.
    const base = { supportsAllDrives: true, includeItemsFromAllDrives: true };
    return this.#opts.drive_id ? { ...base, driveId: this.#opts.drive_id } : base;
  }

  async list(signal: AbortSignal): Promise<{ docs: SourceDocument[]; cursor: string }> {
    // The token first: whatever changes while we list is replayed by the next poll.
    const start = await this.#call(
      () => this.#api.changes.getStartPageToken({ supportsAllDrives: true, ...(this.#opts.drive_id ? { driveId: this.#opts.drive_id } : {}) }, { signal }),
      signal,
    );
    const token = start.data.startPageToken;
    if (!token) throw new Error('changes.getStartPageToken returned no token');
    const rootFile = await this.#call(
      () => this.#api.files.get({ fileId: this.#opts.folder_id, supportsAllDrives: true, fields: 'id,name,mimeType' }, { signal }),
      signal,
    );
    if (rootFile.data.mimeType && rootFile.data.mimeType !== FOLDER) {
      throw new LivedexError('config_error', `folder_id ${this.#opts.folder_id} is not a folder (${rootFile.data.mimeType})`, { field: 'folder_id' });
    }
    const state: DriveState = { v: 1, token, root: { id: rootFile.data.id ?? this.#opts.folder_id, name: rootFile.data.name ?? this.#opts.folder_id }, folders: {} };
    const docs: SourceDocument[] = [];
    await this.#walk(state, state.root.id, docs, signal);
    return { docs, cursor: JSON.stringify(state) };
  }

  /** Lists `folderId` (and, when recursive, its subfolders) into `docs` and `state.folders`. */
  async #walk(state: DriveState, folderId: string, docs: SourceDocument[], signal: AbortSignal): Promise<void> {
    const queue = [folderId];
    while (queue.length > 0) {
      const parent = queue.shift()!;
      let pageToken: string | undefined;
      do {
        const res = await this.#call(
          () =>
            this.#api.files.list(
              {
                q: `'${parent.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}' in parents and trashed = false`,
                pageSize: this.#opts.page_size,
                fields: `nextPageToken,files(${FILE_FIELDS})`,
                ...(this.#opts.drive_id ? { corpora: 'drive' } : {}),
                ...this.#drives,
                ...(pageToken ? { pageToken } : {}),
              },
              { signal },
            ),
          signal,
        );
        for (const file of res.data.files ?? []) {
          if (!file.id) continue;
          if (file.mimeType === FOLDER) {
            if (!this.#opts.recursive) continue;
            state.folders[file.id] = [file.name ?? file.id, parent];
            queue.push(file.id);
          } else {
            const doc = this.#document(state, file, parent);
            if (doc) docs.push(doc);
          }
        }
        pageToken = res.data.nextPageToken ?? undefined;
      } while (pageToken);
    }
  }

  async changes(cursor: string, signal: AbortSignal): Promise<FeedPage> {
    const state = parseState(cursor);
    if (state.relist) throw new CursorLostError('a folder left the indexed tree');
    let res: { data: drive_v3.Schema$ChangeList };
    try {
      res = await this.#call(
        () =>
          this.#api.changes.list(
            {
              pageToken: state.token,
              pageSize: this.#opts.page_size,
              includeRemoved: true,
              fields: `nextPageToken,newStartPageToken,changes(changeType,removed,fileId,time,file(${FILE_FIELDS}))`,
              ...this.#drives,
            },
            { signal },
          ),
        signal,
      );
    } catch (err) {
      const status = (err as { status?: number }).status;
      // An expired or unknown page token: 400 (invalid pageToken), 404 or 410.
      if (status === 400 || status === 404 || status === 410) throw new CursorLostError(`page token refused (${status}: ${describeError(err)})`, { cause: err });
      throw err;
    }
    const list = res.data.changes ?? [];
    const changes: Change[] = [];
    const entered: string[] = [];
    let relist = false;
    const inTree = (parents: string[] | null | undefined): string | undefined =>
      parents?.find((p) => p === state.root.id || Object.hasOwn(state.folders, p));

    // Folders first: a file's new parent may arrive in the same page.
    for (const change of list) {
      if (change.changeType === 'drive' || !change.fileId) continue;
      const id = change.fileId;
      const file = change.file;
      const was = Object.hasOwn(state.folders, id) ? state.folders[id] : undefined;
      if (!was && file?.mimeType !== FOLDER) continue;
      if (id === state.root.id) {
        if (change.removed || file?.trashed) relist = true; // the whole tree is gone: the listing fails and says so
        else if (file?.name) state.root.name = file.name;
        continue;
      }
      const parent = inTree(file?.parents);
      const gone = change.removed || !file || file.trashed || !parent || !this.#opts.recursive;
      if (was && gone) {
        relist = true; // what it held must go, and only a listing knows what that is
      } else if (was && file && parent && (was[0] !== file.name || was[1] !== parent)) {
        state.folders[id] = [file.name ?? id, parent];
        entered.push(id); // renamed or moved within: its documents' paths change
      } else if (!was && !gone && file && parent) {
        state.folders[id] = [file.name ?? id, parent];
        entered.push(id); // created or moved in: list what it holds
      }
    }
    if (relist) {
      state.relist = true;
      return { changes, cursor: JSON.stringify(state), more: false, resync: true };
    }
    for (const change of list) {
      if (change.changeType === 'drive' || !change.fileId) continue;
      const file = change.file;
      if (file?.mimeType === FOLDER || Object.hasOwn(state.folders, change.fileId) || change.fileId === state.root.id) continue;
      const key = this.#keyOf(change.fileId);
      const parent = change.removed || !file || file.trashed ? undefined : inTree(file.parents);
      const doc = parent && file ? this.#document(state, file, parent) : null;
      changes.push(doc ? { kind: 'upsert', doc } : { kind: 'delete', key });
    }
    for (const folderId of entered) {
      const docs: SourceDocument[] = [];
      await this.#walk(state, folderId, docs, signal);
      for (const doc of docs) changes.push({ kind: 'upsert', doc });
    }
    const next = res.data.nextPageToken ?? res.data.newStartPageToken;
    if (!next) throw new Error('changes.list returned neither nextPageToken nor newStartPageToken');
    state.token = next;
    return { changes, cursor: JSON.stringify(state), more: Boolean(res.data.nextPageToken) };
  }

  #keyOf(fileId: string): string {
    return `${this.#opts.name}:${fileId}`;
  }

  #folderPath(state: DriveState, folderId: string): string {
    const names: string[] = [];
    for (let id = folderId, depth = 0; id !== state.root.id && depth < 256; depth++) {
      const entry = state.folders[id];
      if (!entry) break;
      names.unshift(entry[0]);
      id = entry[1];
    }
    return [state.root.name, ...names].join('/');
  }

  /** A document for a Drive file, or null for types that have no content to index (forms, shortcuts…). */
  #document(state: DriveState, file: drive_v3.Schema$File, parent: string): SourceDocument | null {
    const id = file.id!;
    const mime = file.mimeType ?? '';
    const name = file.name ?? id;
    const formats = this.#opts.export_formats;
    const exportAs =
      mime === `${GOOGLE_APPS}document` ? formats.document : mime === `${GOOGLE_APPS}spreadsheet` ? formats.spreadsheet : mime === `${GOOGLE_APPS}presentation` ? formats.presentation : null;
    if (!exportAs && mime.startsWith(GOOGLE_APPS)) return null;
    const extension = exportAs ? `.${exportAs}` : extname(name).toLowerCase() || EXTENSION_OF_MIME[mime] || '';
    const path = `gdrive://${this.#folderPath(state, parent)}/${name}`;
    const base = file.md5Checksum ?? (file.version ? `v${file.version}` : (file.modifiedTime ?? ''));
    const size = file.size !== undefined && file.size !== null ? Number(file.size) : undefined;
    const key = this.#keyOf(id);
    return {
      key,
      // The path is part of the version: a rename or move refreshes the document's metadata.
      version: `${base}#${shortHash(path)}`,
      extension,
      metadata: {
        path,
        url: file.webViewLink ?? null,
        modified_at: seconds(file.modifiedTime),
        created_at: seconds(file.createdTime),
        ...(exportAs ? {} : size !== undefined && Number.isFinite(size) ? { size } : {}),
        mime_type: mime,
        owners: (file.owners ?? []).map((o) => o.emailAddress ?? o.displayName ?? '').filter((o) => o !== ''),
        file_id: id,
      },
      read: (signal?: AbortSignal) => this.#download(key, id, exportAs, signal),
    };
  }

  async #download(key: string, fileId: string, exportAs: string | null, signal?: AbortSignal): Promise<Uint8Array> {
    const own = this.signal;
    const combined = AbortSignal.any([...(signal ? [signal] : []), ...(own ? [own] : [])]);
    try {
      const res = await this.#call(
        () =>
          exportAs
            ? this.#api.files.export({ fileId, mimeType: EXPORT_MIME[exportAs]! }, { responseType: 'arraybuffer', signal: combined })
            : this.#api.files.get({ fileId, alt: 'media', supportsAllDrives: true }, { responseType: 'arraybuffer', signal: combined }),
        combined,
      );
      return new Uint8Array(res.data as unknown as ArrayBuffer);
    } catch (err) {
      throw downloadError(err, key, () => this.onVanished(key));
    }
  }
}

/** Sorts a failed download for the pipeline: gone (deleted), worth another try later (held back), or failed. */
export function downloadError(err: unknown, key: string, onVanished: () => void): Error {
  const c = classifyDriveError(err);
  if (c.status === 404 || c.status === 410) {
    onVanished();
    return Object.assign(new Error(`${key} is gone from the service`), { code: 'ENOENT' });
  }
  if (c.retryable || (err as Error)?.name === 'RetryLaterError') {
    // The service may answer later: the pipeline keeps the document pending and tries again.
    return markTransient(new LivedexError('not_ready', `download of ${key} failed: ${describeError(err)}`, { cause: err }));
  }
  return new LivedexError('parse_failed', `download of ${key} failed: ${describeError(err)}`, { cause: err });
}

function parseState(cursor: string): DriveState {
  try {
    const state = JSON.parse(cursor) as DriveState;
    if (state?.v === 1 && typeof state.token === 'string' && state.root && state.folders) return state;
  } catch {
    // fall through
  }
  throw new CursorLostError('the stored cursor is not a Drive cursor of this version');
}

/**
 * Builds the Drive source.
 *
 * @example
 * sources:
 *   - gdrive: { folder_id: 1AbCdEf, credentials_file: ./sa.json, poll_interval_s: 30 }
 */
export function createGdriveSource(options: ResolvedOptions, env: NodeJS.ProcessEnv = process.env, where = 'sources.gdrive'): FeedSource {
  const feed = new DriveFeed(options, env, where);
  const source = new FeedSource(options.name, feed, { pollIntervalS: options.poll_interval_s, reconcileIntervalS: options.reconcile_interval_s });
  feed.onVanished = (key) => source.markVanished(key);
  feed.signal = source.signal;
  return source;
}

export const gdriveSourcePlugin = definePlugin({
  kind: 'source',
  name: 'gdrive',
  description: 'A Google Drive folder (or shared drive), listed once and then followed through the Changes API.',
  options: gdriveSourceOptionsSchema,
  create: (options) => createGdriveSource(options),
});
