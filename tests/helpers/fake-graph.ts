/**
 * Test helper: a fake of the Microsoft Graph drive endpoints livedex uses and of the Entra ID
 * token endpoint, on 127.0.0.1: sites, drives, items by path, delta with `@odata.nextLink` /
 * `@odata.deltaLink` tokens and `410 resyncRequired`, children, pre-authenticated download URLs.
 */
import { randomBytes } from 'node:crypto';
import { FakeHttp, formOf, type Reply } from './fake-http.js';

interface Item {
  id: string;
  name: string;
  parent: string | null;
  folder: boolean;
  content: Buffer;
  version: number;
  created: string;
  modified: string;
  by: string;
}

const graphError = (status: number, code: string, message: string): Reply => ({
  status,
  body: { error: { code, message, innerError: { date: new Date().toISOString(), 'request-id': randomBytes(8).toString('hex') } } },
});

/** The fake Graph: one site with one document library; tests mutate items and read `requests`. */
export class FakeGraph extends FakeHttp {
  readonly tenant = 'contoso-tenant';
  readonly clientId = randomBytes(8).toString('hex');
  readonly clientSecret = `s3cr3t~${randomBytes(12).toString('hex')}`;
  readonly siteId = `contoso.sharepoint.com,${randomBytes(4).toString('hex')},${randomBytes(4).toString('hex')}`;
  readonly driveId = `b!${randomBytes(12).toString('base64url')}`;
  readonly items = new Map<string, Item>();
  readonly rootId: string;
  /** Change log: item ids in order of change (deleted ones too). */
  readonly log: Array<{ id: string; deleted: boolean; parent: string | null; name: string; folder: boolean }> = [];
  /** Delta tokens below this answer 410 resyncRequired. */
  oldestToken = 0;
  pageSize = 200;
  readonly #tokens = new Set<string>();
  #next = 0;

  constructor() {
    super((req, url, body) => this.#route(req.method ?? 'GET', url, body, req.headers.authorization));
    this.rootId = this.#id();
    const now = new Date().toISOString();
    this.items.set(this.rootId, { id: this.rootId, name: 'root', parent: null, folder: true, content: Buffer.alloc(0), version: 1, created: now, modified: now, by: '' });
  }

  get tokenUrl(): string {
    return `${this.url}/${this.tenant}/oauth2/v2.0/token`;
  }

  revokeTokens(): void {
    this.#tokens.clear();
  }

  /** The current delta position (tokens are positions in the change log). */
  get position(): number {
    return this.log.length;
  }

  #id(): string {
    return `01${(++this.#next).toString(36).toUpperCase().padStart(4, '0')}${randomBytes(8).toString('hex').toUpperCase()}`;
  }

  #touch(item: Item, deleted = false): void {
    item.version++;
    item.modified = new Date().toISOString();
    this.log.push({ id: item.id, deleted, parent: item.parent, name: item.name, folder: item.folder });
  }

  addFolder(name: string, parent = this.rootId): string {
    return this.#add(name, parent, true, Buffer.alloc(0));
  }

  addFile(name: string, parent: string, content: string, by = 'Grace Hopper'): string {
    return this.#add(name, parent, false, Buffer.from(content), by);
  }

  #add(name: string, parent: string, folder: boolean, content: Buffer, by = 'Grace Hopper'): string {
    const id = this.#id();
    const now = new Date().toISOString();
    const item: Item = { id, name, parent, folder, content, version: 0, created: now, modified: now, by };
    this.items.set(id, item);
    this.#touch(item);
    return id;
  }

  update(id: string, content: string, by = 'Alan Turing'): void {
    const item = this.items.get(id)!;
    item.content = Buffer.from(content);
    item.by = by;
    this.#touch(item);
  }

  move(id: string, parent: string, name?: string): void {
    const item = this.items.get(id)!;
    item.parent = parent;
    if (name) item.name = name;
    this.#touch(item);
  }

  /** Deletes an item (a folder with its descendants; delta reports only the folder, as Graph may). */
  remove(id: string): void {
    const item = this.items.get(id)!;
    const drop = (x: Item) => {
      for (const child of [...this.items.values()].filter((c) => c.parent === x.id)) drop(child);
      this.items.delete(x.id);
    };
    drop(item);
    this.#touch(item, true);
  }

  #path(item: Item): string {
    const names: string[] = [];
    for (let p = item.parent; p && p !== this.rootId; p = this.items.get(p)?.parent ?? null) names.unshift(this.items.get(p)?.name ?? '');
    return names.join('/');
  }

  #resource(item: Item): Record<string, unknown> {
    const base = `https://contoso.sharepoint.com/sites/eng/Shared%20Documents`;
    const res: Record<string, unknown> = {
      id: item.id,
      name: item.name,
      eTag: `"{${item.id}},${item.version}"`,
      cTag: `"c:{${item.id}},${item.version}"`,
      createdDateTime: item.created,
      lastModifiedDateTime: item.modified,
      webUrl: item.id === this.rootId ? base : `${base}/${[this.#path(item), item.name].filter(Boolean).map(encodeURIComponent).join('/')}`,
      lastModifiedBy: { user: { displayName: item.by, email: `${item.by.split(' ')[0]!.toLowerCase()}@contoso.com` } },
      parentReference: item.parent ? { driveId: this.driveId, driveType: 'documentLibrary', id: item.parent } : { driveId: this.driveId, driveType: 'documentLibrary' },
    };
    if (item.id === this.rootId) res.root = {};
    if (item.folder) res.folder = { childCount: [...this.items.values()].filter((c) => c.parent === item.id).length };
    else {
      res.file = { mimeType: item.name.endsWith('.md') ? 'text/markdown' : 'text/plain', hashes: {} };
      res.size = item.content.length;
      res['@microsoft.graph.downloadUrl'] = `${this.url}/download/${item.id}?tempauth=${randomBytes(6).toString('hex')}`;
    }
    return res;
  }

  async #route(method: string, url: URL, body: Buffer, authorization: string | undefined): Promise<{ op: string; reply: () => Reply | Promise<Reply> }> {
    const p = decodeURIComponent(url.pathname);
    if (method === 'POST' && p === `/${this.tenant}/oauth2/v2.0/token`) return { op: 'token', reply: () => this.#token(formOf(body)) };
    const dl = /^\/download\/([^/]+)$/.exec(p);
    if (dl) {
      return {
        op: 'download',
        reply: () => {
          const item = this.items.get(dl[1]!);
          return item && url.searchParams.get('tempauth') ? { status: 200, body: new Uint8Array(item.content) } : { status: 404, body: {} };
        },
      };
    }
    const authed = (fn: () => Reply | Promise<Reply>) => () =>
      authorization?.startsWith('Bearer ') && this.#tokens.has(authorization.slice(7)) ? fn() : graphError(401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.');
    const d = `/v1.0/drives/${this.driveId}`;
    if (p === `/v1.0/sites/contoso.sharepoint.com:/sites/eng` || p === `/v1.0/sites/${this.siteId}`) {
      return { op: 'site', reply: authed(() => ({ status: 200, body: { id: this.siteId, name: 'eng', displayName: 'Engineering', webUrl: 'https://contoso.sharepoint.com/sites/eng' } })) };
    }
    if (p === `/v1.0/sites/${this.siteId}/drives`) return { op: 'drives', reply: authed(() => ({ status: 200, body: { value: [{ id: this.driveId, name: 'Documents', driveType: 'documentLibrary' }] } })) };
    if (p === `/v1.0/sites/${this.siteId}/drive`) return { op: 'drive', reply: authed(() => ({ status: 200, body: { id: this.driveId, name: 'Documents', driveType: 'documentLibrary' } })) };
    if (p === `${d}/root`) return { op: 'item', reply: authed(() => ({ status: 200, body: this.#resource(this.items.get(this.rootId)!) })) };
    if (p.startsWith(`${d}/root:/`)) {
      const rel = p.slice(`${d}/root:/`.length).replace(/:$/, '');
      return {
        op: 'item',
        reply: authed(() => {
          const item = [...this.items.values()].find((i) => i.id !== this.rootId && [this.#path(i), i.name].filter(Boolean).join('/') === rel);
          return item ? { status: 200, body: this.#resource(item) } : graphError(404, 'itemNotFound', 'The resource could not be found.');
        }),
      };
    }
    if (p === `${d}/root/delta`) return { op: url.searchParams.has('token') ? 'delta' : 'delta.enumerate', reply: authed(() => this.#delta(url)) };
    const children = new RegExp(`^${d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/items/([^/]+)/children$`).exec(p);
    if (children) {
      return {
        op: 'children',
        reply: authed(() => ({ status: 200, body: { value: [...this.items.values()].filter((i) => i.parent === children[1]).map((i) => this.#resource(i)) } })),
      };
    }
    const content = new RegExp(`^${d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/items/([^/]+)/content$`).exec(p);
    if (content) {
      return {
        op: 'content',
        reply: authed(() => {
          const item = this.items.get(content[1]!);
          return item ? { status: 200, body: new Uint8Array(item.content) } : graphError(404, 'itemNotFound', 'The resource could not be found.');
        }),
      };
    }
    return { op: 'unknown', reply: () => graphError(400, 'invalidRequest', `Invalid request: ${method} ${p}`) };
  }

  #token(form: URLSearchParams): Reply {
    if (form.get('grant_type') !== 'client_credentials') return { status: 400, body: { error: 'unsupported_grant_type', error_description: 'AADSTS70003: The app requested an unsupported grant type.' } };
    if (form.get('client_id') !== this.clientId || form.get('client_secret') !== this.clientSecret) {
      return { status: 401, body: { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' } };
    }
    if (form.get('scope') !== 'https://graph.microsoft.com/.default') return { status: 400, body: { error: 'invalid_scope', error_description: 'AADSTS70011: The provided value for scope is not valid.' } };
    const token = `eyJ0eXAiOiJKV1Qi.${randomBytes(24).toString('base64url')}`;
    this.#tokens.add(token);
    return { status: 200, body: { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token } };
  }

  /** Delta: without a token, every item now in the drive; with one, the latest state of what changed since. */
  #delta(url: URL): Reply {
    const token = url.searchParams.get('token');
    const skip = Number(url.searchParams.get('skip') ?? 0);
    // A round of pages reads one snapshot of the log, as Graph's tokens do: the deltaLink of its
    // last page points where the first page stood, so a change made mid-round comes next round.
    const at = Number(url.searchParams.get('at') ?? this.log.length);
    let entries: Array<Record<string, unknown>>;
    if (token === null || token === 'enum') {
      entries = [...this.items.values()].map((i) => this.#resource(i));
    } else {
      const from = Number(token);
      if (!Number.isInteger(from) || from < this.oldestToken || from > this.log.length) {
        return graphError(410, 'resyncRequired', "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd.");
      }
      const latest = new Map<string, (typeof this.log)[number]>();
      for (const e of this.log.slice(from, at)) {
        latest.delete(e.id);
        latest.set(e.id, e);
      }
      entries = [...latest.values()].map((e) => {
        const item = this.items.get(e.id);
        return item && !e.deleted
          ? this.#resource(item)
          : { id: e.id, name: e.name, deleted: { state: 'deleted' }, parentReference: { driveId: this.driveId, id: e.parent }, ...(e.folder ? { folder: {} } : { file: {} }) };
      });
    }
    const page = entries.slice(skip, skip + this.pageSize);
    const base = `${this.url}/v1.0/drives/${this.driveId}/root/delta`;
    const more = skip + this.pageSize < entries.length;
    const tokenParam = token ?? 'enum';
    return {
      status: 200,
      body: {
        '@odata.context': `${this.url}/v1.0/$metadata#Collection(driveItem)`,
        value: page,
        ...(more ? { '@odata.nextLink': `${base}?token=${tokenParam}&skip=${skip + this.pageSize}&at=${at}` } : { '@odata.deltaLink': `${base}?token=${at}` }),
      },
    };
  }
}
