/** @module sources/sharepoint — SharePoint / OneDrive: a drive folder followed through Microsoft Graph delta queries. */
import { createHash } from 'node:crypto';
import { extname } from 'node:path';
import { ResponseType, type Client } from '@microsoft/microsoft-graph-client';
import { z } from 'zod';
import { LivedexError, describeError, markTransient } from '../../core/errors.js';
import { definePlugin } from '../../core/registry.js';
import type { Change, SourceDocument } from '../../core/types.js';
import { CursorLostError, FeedSource, type Feed, type FeedPage, type RetryPolicy } from '../feed/index.js';
import { pollIntervalSchema, sourceNameSchema } from '../naming.js';
import { ClientCredentialsToken, graphClient } from './graph.js';

export const sharepointSourceOptionsSchema = z.strictObject({
  /** The site: its id, or `host:/sites/name` (`contoso.sharepoint.com/sites/eng` works too). */
  site: z.string().min(1).optional(),
  /** The document library (drive) of the site, by name or id; default: the site's default library. */
  drive: z.string().min(1).optional(),
  /** A drive id directly (a OneDrive or a library), instead of `site`/`drive`. */
  drive_id: z.string().min(1).optional(),
  /** The folder inside the drive; `/` for all of it. */
  path: z.string().default('/'),
  tenant_id: z.string().min(1).optional(),
  client_id: z.string().min(1).optional(),
  client_secret: z.string().min(1).optional(),
  /** Graph's base URL (a fake's in tests); default `https://graph.microsoft.com`. */
  base_url: z.url().optional(),
  /** The token endpoint; default `<AZURE_AUTHORITY_HOST or https://login.microsoftonline.com>/<tenant_id>/oauth2/v2.0/token`. */
  token_url: z.url().optional(),
  /** Prefixes the document keys (`<name>:<item id>`) and names the source in status. */
  name: sourceNameSchema('sharepoint'),
  poll_interval_s: pollIntervalSchema,
  /** Seconds between full enumerations that heal anything the delta feed missed; 0: never. */
  reconcile_interval_s: z.number().min(0).default(6 * 3600),
  request_timeout_ms: z.number().int().min(100).default(60_000),
  /** Retries of a request that failed with 429, 5xx or a timeout. */
  retries: z.number().int().min(0).default(4),
});

/** Options as written in a config file (defaults not yet applied). */
export type SharepointSourceOptions = z.input<typeof sharepointSourceOptionsSchema>;
type ResolvedOptions = z.output<typeof sharepointSourceOptionsSchema>;

interface DriveItem {
  id: string;
  name?: string;
  eTag?: string;
  cTag?: string;
  size?: number;
  webUrl?: string;
  createdDateTime?: string;
  lastModifiedDateTime?: string;
  lastModifiedBy?: { user?: { displayName?: string; email?: string } };
  parentReference?: { id?: string; driveId?: string };
  file?: { mimeType?: string };
  folder?: Record<string, unknown>;
  root?: Record<string, unknown>;
  deleted?: Record<string, unknown>;
  '@removed'?: Record<string, unknown>;
  '@microsoft.graph.downloadUrl'?: string;
}

interface GraphPage {
  value?: DriveItem[];
  '@odata.nextLink'?: string;
  '@odata.deltaLink'?: string;
}

/** What the cursor holds: the delta (or next) link, and the folder tree it was taken with. */
interface GraphState {
  v: 1;
  link: string;
  driveId: string;
  label: string;
  root: string;
  /** Folder id → [name, parent id], for every folder inside the tree. */
  folders: Record<string, [string, string]>;
  relist?: boolean;
}

const shortHash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
const seconds = (iso: string | undefined): number | null => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? null : Math.floor(t / 1000);
};
const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number }).statusCode;

/** The Graph side of the source: enumerating the drive and following its delta feed. */
export class GraphFeed implements Feed {
  readonly service = 'Microsoft Graph';
  readonly #opts: ResolvedOptions;
  readonly #base: string;
  readonly #client: Client;
  readonly #timeoutMs: number;
  onVanished: (key: string) => void = () => {};
  readonly #signal: AbortSignal;

  constructor(opts: ResolvedOptions, env: NodeJS.ProcessEnv, signal: AbortSignal, where = 'sources.sharepoint') {
    this.#opts = opts;
    this.#signal = signal;
    const tenantId = opts.tenant_id ?? env.AZURE_TENANT_ID;
    const clientId = opts.client_id ?? env.AZURE_CLIENT_ID;
    const clientSecret = opts.client_secret ?? env.AZURE_CLIENT_SECRET;
    for (const [field, value, envName] of [['tenant_id', tenantId, 'AZURE_TENANT_ID'], ['client_id', clientId, 'AZURE_CLIENT_ID'], ['client_secret', clientSecret, 'AZURE_CLIENT_SECRET']] as const) {
      if (!value) throw new LivedexError('config_error', `${where}.${field}: required (or set ${envName})`, { field: `${where}.${field}` });
    }
    if (!opts.drive_id && !opts.site) throw new LivedexError('config_error', `${where}.site: give a site (or a drive_id)`, { field: `${where}.site` });
    this.#base = (opts.base_url ?? 'https://graph.microsoft.com').replace(/\/+$/, '');
    this.#timeoutMs = opts.request_timeout_ms;
    const token = new ClientCredentialsToken(
      {
        tenantId: tenantId!,
        clientId: clientId!,
        clientSecret: clientSecret!,
        // AZURE_AUTHORITY_HOST is the Azure SDKs' own variable for national clouds (and fakes).
        tokenUrl: opts.token_url ?? `${(env.AZURE_AUTHORITY_HOST ?? 'https://login.microsoftonline.com').replace(/\/+$/, '')}/${encodeURIComponent(tenantId!)}/oauth2/v2.0/token`,
        scope: 'https://graph.microsoft.com/.default',
      },
      opts.request_timeout_ms,
    );
    const policy: RetryPolicy = { retries: opts.retries, baseMs: 500, maxMs: 30_000 };
    this.#client = graphClient({ baseUrl: this.#base, token, policy, timeoutMs: opts.request_timeout_ms, signal });
  }

  /** A Graph link (`@odata.nextLink`…) as a path for the client; links to another host are refused (the token stays home). */
  #path(link: string): string {
    const prefix = `${this.#base}/v1.0/`;
    if (!link.startsWith(prefix)) throw new Error('Graph returned a link outside its base URL');
    return link.slice(prefix.length - 1);
  }

  async #get<T>(path: string): Promise<T> {
    return (await this.#client.api(path).get()) as T;
  }

  async #resolve(): Promise<{ driveId: string; label: string; root: DriveItem }> {
    let driveId = this.#opts.drive_id;
    let label = driveId ?? '';
    if (!driveId) {
      const raw = this.#opts.site!;
      const ref = raw.includes(':') || !raw.includes('/') ? raw : `${raw.slice(0, raw.indexOf('/'))}:${raw.slice(raw.indexOf('/'))}`;
      const site = await this.#get<{ id: string; name?: string; displayName?: string }>(`/sites/${ref}`);
      if (this.#opts.drive) {
        const drives = await this.#get<{ value: Array<{ id: string; name: string }> }>(`/sites/${site.id}/drives`);
        const found = drives.value.find((d) => d.name === this.#opts.drive || d.id === this.#opts.drive);
        if (!found) throw new LivedexError('config_error', `drive "${this.#opts.drive}" not found in site ${raw} (found: ${drives.value.map((d) => d.name).join(', ')})`, { field: 'drive' });
        driveId = found.id;
        label = `${raw}/${found.name}`;
      } else {
        const d = await this.#get<{ id: string; name: string }>(`/sites/${site.id}/drive`);
        driveId = d.id;
        label = `${raw}/${d.name}`;
      }
    }
    const folder = this.#opts.path.replace(/^\/+|\/+$/g, '');
    const root = await this.#get<DriveItem>(folder ? `/drives/${driveId}/root:/${folder.split('/').map(encodeURIComponent).join('/')}` : `/drives/${driveId}/root`);
    if (!root.folder && !root.root) throw new LivedexError('config_error', `path ${this.#opts.path} is not a folder`, { field: 'path' });
    return { driveId, label: folder ? `${label}/${folder}` : label, root };
  }

  async list(signal: AbortSignal): Promise<{ docs: SourceDocument[]; cursor: string }> {
    const { driveId, label, root } = await this.#resolve();
    // Delta is only offered on a drive's root in SharePoint and OneDrive for Business: enumerate the drive, keep the tree.
    const items: DriveItem[] = [];
    let link: string | undefined = `${this.#base}/v1.0/drives/${driveId}/root/delta`;
    let delta = '';
    while (link && !signal.aborted) {
      const page: GraphPage = await this.#get<GraphPage>(this.#path(link));
      items.push(...(page.value ?? []));
      link = page['@odata.nextLink'];
      delta = page['@odata.deltaLink'] ?? delta;
    }
    if (!delta) throw new Error('the delta enumeration ended without a deltaLink');
    const state: GraphState = { v: 1, link: delta, driveId, label, root: root.id, folders: {} };
    const folders = new Map<string, DriveItem>();
    for (const item of items) if (item.folder && !item.root && !item.deleted && item.id !== root.id) folders.set(item.id, item);
    const inTree = (id: string | undefined, depth = 0): boolean => {
      if (!id || depth > 256) return false;
      if (id === root.id) return true;
      const f = folders.get(id);
      return f ? inTree(f.parentReference?.id, depth + 1) : false;
    };
    for (const [id, f] of folders) if (inTree(f.parentReference?.id)) state.folders[id] = [f.name ?? id, f.parentReference!.id!];
    const docs: SourceDocument[] = [];
    for (const item of items) {
      if (!item.file || item.deleted || item['@removed']) continue;
      const parent = item.parentReference?.id;
      if (parent && (parent === root.id || Object.hasOwn(state.folders, parent))) docs.push(this.#document(state, item, parent));
    }
    return { docs, cursor: JSON.stringify(state) };
  }

  async changes(cursor: string, signal: AbortSignal): Promise<FeedPage> {
    const state = parseState(cursor);
    if (state.relist) throw new CursorLostError('a folder left the indexed tree');
    let page: GraphPage;
    try {
      page = await this.#get<GraphPage>(this.#path(state.link));
    } catch (err) {
      // 410 Gone (resyncRequired…): the delta token is no longer valid.
      if (statusOf(err) === 410) throw new CursorLostError(`delta token refused (410: ${describeError(err)})`, { cause: err });
      throw err;
    }
    const items = page.value ?? [];
    const changes: Change[] = [];
    const entered: string[] = [];
    let relist = false;
    const inTree = (parent: string | undefined): parent is string => parent !== undefined && (parent === state.root || Object.hasOwn(state.folders, parent));
    const removed = (item: DriveItem) => item.deleted !== undefined || item['@removed'] !== undefined;
    for (const item of items) {
      const was = Object.hasOwn(state.folders, item.id) ? state.folders[item.id] : undefined;
      if (item.id === state.root) {
        if (removed(item)) relist = true;
        continue;
      }
      if (!was && !item.folder) continue;
      const parent = item.parentReference?.id;
      const gone = removed(item) || !inTree(parent);
      if (was && gone) relist = true;
      else if (was && !gone && (was[0] !== item.name || was[1] !== parent)) {
        state.folders[item.id] = [item.name ?? item.id, parent!];
        entered.push(item.id);
      } else if (!was && !gone) {
        state.folders[item.id] = [item.name ?? item.id, parent!];
        entered.push(item.id);
      }
    }
    if (relist) {
      state.relist = true;
      return { changes, cursor: JSON.stringify(state), more: false, resync: true };
    }
    for (const item of items) {
      if (item.folder || item.root || Object.hasOwn(state.folders, item.id) || item.id === state.root) continue;
      const key = this.#keyOf(item.id);
      const parent = item.parentReference?.id;
      if (!removed(item) && item.file && inTree(parent)) changes.push({ kind: 'upsert', doc: this.#document(state, item, parent) });
      else changes.push({ kind: 'delete', key });
    }
    for (const id of entered) {
      for (const doc of await this.#children(state, id, signal)) changes.push({ kind: 'upsert', doc });
    }
    const next = page['@odata.nextLink'] ?? page['@odata.deltaLink'];
    if (!next) throw new Error('a delta page had neither @odata.nextLink nor @odata.deltaLink');
    state.link = next;
    return { changes, cursor: JSON.stringify(state), more: Boolean(page['@odata.nextLink']) };
  }

  /** Lists a folder that entered the tree (or was renamed): its files, and its subfolders into the tree. */
  async #children(state: GraphState, folderId: string, signal: AbortSignal): Promise<SourceDocument[]> {
    const docs: SourceDocument[] = [];
    const queue = [folderId];
    while (queue.length > 0 && !signal.aborted) {
      const parent = queue.shift()!;
      let link: string | undefined = `${this.#base}/v1.0/drives/${state.driveId}/items/${parent}/children`;
      while (link) {
        const page: GraphPage = await this.#get<GraphPage>(this.#path(link));
        for (const item of page.value ?? []) {
          if (item.folder) {
            state.folders[item.id] = [item.name ?? item.id, parent];
            queue.push(item.id);
          } else if (item.file) {
            docs.push(this.#document(state, item, parent));
          }
        }
        link = page['@odata.nextLink'];
      }
    }
    return docs;
  }

  #keyOf(id: string): string {
    return `${this.#opts.name}:${id}`;
  }

  #folderPath(state: GraphState, folderId: string): string {
    const names: string[] = [];
    for (let id = folderId, depth = 0; id !== state.root && depth < 256; depth++) {
      const entry = state.folders[id];
      if (!entry) break;
      names.unshift(entry[0]);
      id = entry[1];
    }
    return [state.label, ...names].join('/');
  }

  #document(state: GraphState, item: DriveItem, parent: string): SourceDocument {
    const name = item.name ?? item.id;
    const path = `sharepoint://${this.#folderPath(state, parent)}/${name}`;
    const key = this.#keyOf(item.id);
    const by = item.lastModifiedBy?.user;
    const downloadUrl = item['@microsoft.graph.downloadUrl'];
    return {
      key,
      version: `${item.cTag ?? item.eTag ?? item.lastModifiedDateTime ?? ''}#${shortHash(path)}`,
      extension: extname(name).toLowerCase(),
      metadata: {
        path,
        url: item.webUrl ?? null,
        modified_at: seconds(item.lastModifiedDateTime),
        created_at: seconds(item.createdDateTime),
        ...(typeof item.size === 'number' ? { size: item.size } : {}),
        mime_type: item.file?.mimeType ?? null,
        last_modified_by: by?.email ?? by?.displayName ?? null,
        item_id: item.id,
      },
      read: (signal?: AbortSignal) => this.#download(key, state.driveId, item.id, downloadUrl, signal),
    };
  }

  async #download(key: string, driveId: string, itemId: string, downloadUrl: string | undefined, signal?: AbortSignal): Promise<Uint8Array> {
    const combined = AbortSignal.any([this.#signal, AbortSignal.timeout(this.#timeoutMs), ...(signal ? [signal] : [])]);
    if (downloadUrl) {
      // Pre-authenticated and short-lived: no token goes with it, and an expired one falls back to /content.
      try {
        const res = await fetch(downloadUrl, { signal: combined });
        if (res.ok) return new Uint8Array(await res.arrayBuffer());
      } catch (err) {
        if (combined.aborted) throw markTransient(new LivedexError('not_ready', `download of ${key} was interrupted`, { cause: err }));
      }
    }
    try {
      const data = (await this.#client.api(`/drives/${driveId}/items/${itemId}/content`).responseType(ResponseType.ARRAYBUFFER).get()) as ArrayBuffer;
      return new Uint8Array(data);
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) {
        this.onVanished(key);
        throw Object.assign(new Error(`${key} is gone from the service`), { code: 'ENOENT' });
      }
      if (status === undefined || status === 429 || status >= 500) {
        throw markTransient(new LivedexError('not_ready', `download of ${key} failed: ${describeError(err)}`, { cause: err }));
      }
      throw new LivedexError('parse_failed', `download of ${key} failed: ${describeError(err)}`, { cause: err });
    }
  }
}

function parseState(cursor: string): GraphState {
  try {
    const state = JSON.parse(cursor) as GraphState;
    if (state?.v === 1 && typeof state.link === 'string' && state.folders) return state;
  } catch {
    // fall through
  }
  throw new CursorLostError('the stored cursor is not a Graph cursor of this version');
}

/**
 * Builds the SharePoint / OneDrive source.
 *
 * @example
 * sources:
 *   - sharepoint: { site: contoso.sharepoint.com:/sites/eng, drive: Documents, path: /Specs }
 */
export function createSharepointSource(options: ResolvedOptions, env: NodeJS.ProcessEnv = process.env): FeedSource {
  const abort = new AbortController();
  const feed = new GraphFeed(options, env, abort.signal);
  const source = new FeedSource(options.name, feed, { pollIntervalS: options.poll_interval_s, reconcileIntervalS: options.reconcile_interval_s });
  feed.onVanished = (key) => source.markVanished(key);
  source.signal.addEventListener('abort', () => abort.abort(source.signal.reason), { once: true });
  return source;
}

export const sharepointSourcePlugin = definePlugin({
  kind: 'source',
  name: 'sharepoint',
  description: 'A SharePoint or OneDrive folder, enumerated once and then followed through Graph delta queries.',
  options: sharepointSourceOptionsSchema,
  create: (options) => createSharepointSource(options),
});
