/**
 * Test helper: a fake of the Google Drive v3 endpoints livedex uses, and of Google's OAuth token
 * endpoint, on 127.0.0.1. Real response shapes (`fields` masks applied, default fields when none
 * are asked), page tokens, the Changes API log, Google's error bodies; an in-memory tree the
 * tests mutate; faults from `FakeHttp`.
 */
import { createHash, createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import { FakeHttp, formOf, type Reply } from './fake-http.js';
import { makeDocx } from './office.js';

export const FOLDER = 'application/vnd.google-apps.folder';
export const GDOC = 'application/vnd.google-apps.document';
const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

interface DriveFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  trashed: boolean;
  version: number;
  createdTime: string;
  modifiedTime: string;
  owners: Array<{ displayName: string; emailAddress: string }>;
  driveId?: string;
  /** Binary content, or the text of a Google Doc. */
  content: Buffer;
}

/** A change-log entry: the file changed (or was removed) at this point. */
interface LogEntry {
  fileId: string;
  time: string;
  removed: boolean;
}

/** A Google-style error body. */
export function googleError(code: number, message: string, reason: string, extra: Record<string, string> = {}): Reply {
  const status = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL' }[code] ?? 'UNKNOWN';
  return { status: code, body: { error: { code, message, errors: [{ message, domain: 'global', reason, ...extra }], status } } };
}

/** Parses a Drive `fields` mask (`nextPageToken,files(id,owners(emailAddress))`) into a tree. */
function parseFields(mask: string): Map<string, Map<string, unknown> | null> {
  const out = new Map<string, Map<string, unknown> | null>();
  let i = 0;
  const parse = (into: Map<string, unknown>): void => {
    let name = '';
    while (i < mask.length) {
      const ch = mask[i++]!;
      if (ch === ',' || ch === ')') {
        if (name.trim()) into.set(name.trim(), into.get(name.trim()) ?? null);
        name = '';
        if (ch === ')') return;
      } else if (ch === '(') {
        const sub = new Map<string, unknown>();
        parse(sub);
        into.set(name.trim(), sub);
        name = '';
      } else {
        name += ch;
      }
    }
    if (name.trim()) into.set(name.trim(), null);
  };
  parse(out as Map<string, unknown>);
  return out;
}

function pick(value: unknown, mask: Map<string, unknown> | null): unknown {
  if (mask === null || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => pick(v, mask));
  const out: Record<string, unknown> = {};
  for (const [key, sub] of mask) {
    if (key === '*') return value;
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) out[key] = pick(v, sub as Map<string, unknown> | null);
  }
  return out;
}

/**
 * The fake Drive. Tests create files with `addFolder`/`addFile`/`addDoc`, change them with
 * `update`/`rename`/`move`/`trash`/`remove`, read `requests`, inject faults with `fail`.
 */
export class FakeDrive extends FakeHttp {
  readonly files = new Map<string, DriveFile>();
  readonly log: LogEntry[] = [];
  /** Page tokens below this are refused (as an expired token is). */
  oldestToken = 1;
  /** Lifetime of issued access tokens. */
  tokenLifetimeS = 3600;
  readonly #tokens = new Map<string, number>();
  readonly #keys = new Map<string, string>();
  readonly #clients = new Map<string, { secret: string; refreshToken: string }>();
  readonly assertions: Array<{ header: Record<string, unknown>; claims: Record<string, unknown> }> = [];
  #next = 0;

  constructor() {
    super((req, url, body) => this.#route(req.method ?? 'GET', url, body, req.headers.authorization));
  }

  get tokenUrl(): string {
    return `${this.url}/token`;
  }

  /** A service account known to the fake: the JSON key file a user would download (private key generated here). */
  serviceAccount(email = 'indexer@livedex-test.iam.gserviceaccount.com'): Record<string, string> {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.#keys.set(email, publicKey.export({ type: 'spki', format: 'pem' }).toString());
    return {
      type: 'service_account',
      project_id: 'livedex-test',
      private_key_id: randomBytes(20).toString('hex'),
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: email,
      client_id: '1234567890',
      token_uri: this.tokenUrl,
    };
  }

  /** An OAuth client with a user's refresh token. */
  oauthClient(): { clientId: string; clientSecret: string; refreshToken: string } {
    const clientId = `${randomBytes(6).toString('hex')}.apps.googleusercontent.com`;
    const c = { secret: randomBytes(12).toString('hex'), refreshToken: `1//${randomBytes(16).toString('hex')}` };
    this.#clients.set(clientId, c);
    return { clientId, clientSecret: c.secret, refreshToken: c.refreshToken };
  }

  /** Invalidates every access token issued so far (the next API call answers 401). */
  revokeTokens(): void {
    this.#tokens.clear();
  }

  /** The current changes page token (what `getStartPageToken` answers). */
  get startPageToken(): string {
    return String(this.log.length + 1);
  }

  // ───────────── the tree ─────────────

  #id(): string {
    return `${(++this.#next).toString(36).padStart(4, '0')}${randomBytes(10).toString('base64url')}`;
  }

  #touch(file: DriveFile, removed = false): void {
    const time = new Date(Date.now() + this.log.length).toISOString();
    if (!removed) {
      file.version++;
      file.modifiedTime = time;
    }
    this.log.push({ fileId: file.id, time, removed });
  }

  #add(name: string, parent: string | null, mimeType: string, content: Buffer, driveId?: string): string {
    const id = this.#id();
    const now = new Date().toISOString();
    const file: DriveFile = {
      id,
      name,
      mimeType,
      parents: parent ? [parent] : [],
      trashed: false,
      version: 0,
      createdTime: now,
      modifiedTime: now,
      owners: [{ displayName: 'Ada Lovelace', emailAddress: 'ada@example.com' }],
      content,
      ...(driveId ? { driveId } : {}),
    };
    this.files.set(id, file);
    this.#touch(file);
    return id;
  }

  /** A shared drive: its id is also its root folder's id. */
  addSharedDrive(name: string): string {
    const id = `0A${randomBytes(8).toString('hex')}`;
    const now = new Date().toISOString();
    this.files.set(id, { id, name, mimeType: FOLDER, parents: [], trashed: false, version: 1, createdTime: now, modifiedTime: now, owners: [], content: Buffer.alloc(0), driveId: id });
    return id;
  }

  addFolder(name: string, parent: string | null = null): string {
    return this.#add(name, parent, FOLDER, Buffer.alloc(0), parent ? this.files.get(parent)?.driveId : undefined);
  }

  addFile(name: string, parent: string, content: string | Uint8Array, mimeType = 'text/plain'): string {
    return this.#add(name, parent, mimeType, Buffer.from(content), this.files.get(parent)?.driveId);
  }

  /** A Google Doc holding `text` (exported as DOCX or plain text). */
  addDoc(name: string, parent: string, text: string): string {
    return this.#add(name, parent, GDOC, Buffer.from(text), this.files.get(parent)?.driveId);
  }

  #get(id: string): DriveFile {
    const f = this.files.get(id);
    if (!f) throw new Error(`fake drive: no file ${id}`);
    return f;
  }

  update(id: string, content: string | Uint8Array): void {
    const f = this.#get(id);
    f.content = Buffer.from(content);
    this.#touch(f);
  }

  rename(id: string, name: string): void {
    const f = this.#get(id);
    f.name = name;
    this.#touch(f);
  }

  move(id: string, parent: string): void {
    const f = this.#get(id);
    f.parents = [parent];
    this.#touch(f);
  }

  trash(id: string): void {
    const f = this.#get(id);
    f.trashed = true;
    this.#touch(f);
    // Drive trashes the children of a trashed folder with it (implicitly).
    for (const child of this.files.values()) if (child.parents.includes(id) && !child.trashed) this.trash(child.id);
  }

  /** Deletes permanently: the Changes API reports `removed: true` without a file. */
  remove(id: string): void {
    const f = this.#get(id);
    this.files.delete(id);
    this.log.push({ fileId: f.id, time: new Date().toISOString(), removed: true });
  }

  // ───────────── resources ─────────────

  #resource(f: DriveFile): Record<string, unknown> {
    const google = f.mimeType.startsWith('application/vnd.google-apps.');
    const link = f.mimeType === GDOC ? `https://docs.google.com/document/d/${f.id}/edit?usp=drivesdk` : f.mimeType === FOLDER ? `https://drive.google.com/drive/folders/${f.id}` : `https://drive.google.com/file/d/${f.id}/view?usp=drivesdk`;
    return {
      kind: 'drive#file',
      id: f.id,
      name: f.name,
      mimeType: f.mimeType,
      parents: f.parents,
      trashed: f.trashed,
      version: String(f.version),
      createdTime: f.createdTime,
      modifiedTime: f.modifiedTime,
      webViewLink: link,
      owners: f.driveId ? undefined : f.owners.map((o) => ({ kind: 'drive#user', ...o })),
      ...(f.driveId ? { driveId: f.driveId } : {}),
      ...(google ? {} : { md5Checksum: createHash('md5').update(f.content).digest('hex'), size: String(f.content.length) }),
    };
  }

  // ───────────── HTTP ─────────────

  async #route(method: string, url: URL, body: Buffer, authorization: string | undefined): Promise<{ op: string; reply: () => Reply | Promise<Reply> }> {
    const p = url.pathname;
    const q = url.searchParams;
    if (method === 'POST' && p === '/token') return { op: 'token', reply: () => this.#token(formOf(body)) };
    const authed = (fn: () => Reply | Promise<Reply>) => () => {
      const token = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
      const expires = this.#tokens.get(token);
      if (expires === undefined || expires < Date.now()) {
        return googleError(401, 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.', 'authError', { location: 'Authorization', locationType: 'header' });
      }
      return fn();
    };
    if (method === 'GET' && p === '/drive/v3/changes/startPageToken') {
      return { op: 'changes.getStartPageToken', reply: authed(() => ({ status: 200, body: { kind: 'drive#startPageToken', startPageToken: this.startPageToken } })) };
    }
    if (method === 'GET' && p === '/drive/v3/changes') return { op: 'changes.list', reply: authed(() => this.#changes(q)) };
    if (method === 'GET' && p === '/drive/v3/files') return { op: 'files.list', reply: authed(() => this.#list(q)) };
    const exp = /^\/drive\/v3\/files\/([^/]+)\/export$/.exec(p);
    if (method === 'GET' && exp) return { op: 'files.export', reply: authed(() => this.#export(decodeURIComponent(exp[1]!), q)) };
    const get = /^\/drive\/v3\/files\/([^/]+)$/.exec(p);
    if (method === 'GET' && get) {
      const id = decodeURIComponent(get[1]!);
      return { op: q.get('alt') === 'media' ? 'files.media' : 'files.get', reply: authed(() => this.#getFile(id, q)) };
    }
    return { op: 'unknown', reply: () => googleError(404, `Not Found: ${method} ${p}`, 'notFound') };
  }

  #token(form: URLSearchParams): Reply {
    const bad = (description: string): Reply => ({ status: 400, body: { error: 'invalid_grant', error_description: description } });
    if (form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      const parts = (form.get('assertion') ?? '').split('.');
      if (parts.length !== 3) return bad('Invalid JWT: Token must be a short-lived token and in a reasonable timeframe');
      const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()) as Record<string, unknown>;
      const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as Record<string, unknown>;
      this.assertions.push({ header, claims });
      const key = this.#keys.get(String(claims.iss));
      if (header.alg !== 'RS256' || !key) return bad('Invalid JWT Signature.');
      const ok = createVerify('RSA-SHA256').update(`${parts[0]}.${parts[1]}`).verify(key, Buffer.from(parts[2]!, 'base64url'));
      if (!ok) return bad('Invalid JWT Signature.');
      const now = Math.floor(Date.now() / 1000);
      const iat = Number(claims.iat);
      const exp = Number(claims.exp);
      if (claims.aud !== this.tokenUrl || !(Math.abs(iat - now) < 300) || !(exp > now) || exp - iat > 3600) {
        return bad('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.');
      }
      if (!String(claims.scope ?? '').split(' ').some((s) => s.startsWith('https://www.googleapis.com/auth/drive'))) {
        return { status: 400, body: { error: 'invalid_scope', error_description: 'Invalid OAuth scope or ID token audience provided.' } };
      }
    } else if (form.get('grant_type') === 'refresh_token') {
      const client = this.#clients.get(form.get('client_id') ?? '');
      if (!client || client.secret !== form.get('client_secret')) return { status: 401, body: { error: 'invalid_client', error_description: 'The OAuth client was not found.' } };
      if (client.refreshToken !== form.get('refresh_token')) return bad('Token has been expired or revoked.');
    } else {
      return { status: 400, body: { error: 'unsupported_grant_type', error_description: 'Invalid grant_type: ' + form.get('grant_type') } };
    }
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    this.#tokens.set(token, Date.now() + this.tokenLifetimeS * 1000);
    return { status: 200, body: { access_token: token, expires_in: this.tokenLifetimeS, token_type: 'Bearer' } };
  }

  /** Shared drives demand `supportsAllDrives` (and, to list, `includeItemsFromAllDrives`). */
  #visible(f: DriveFile, q: URLSearchParams): boolean {
    return !f.driveId || q.get('supportsAllDrives') === 'true';
  }

  #getFile(id: string, q: URLSearchParams): Reply {
    const f = this.files.get(id);
    if (!f || !this.#visible(f, q)) return googleError(404, `File not found: ${id}.`, 'notFound', { location: 'fileId', locationType: 'parameter' });
    if (q.get('alt') === 'media') {
      if (f.mimeType.startsWith('application/vnd.google-apps.')) {
        return googleError(403, 'Only files with binary content can be downloaded. Use Export with Docs Editors files.', 'fileNotDownloadable', { location: 'alt', locationType: 'parameter' });
      }
      return { status: 200, headers: { 'content-type': f.mimeType }, body: new Uint8Array(f.content) };
    }
    const fields = q.get('fields');
    return { status: 200, body: pick(this.#resource(f), parseFields(fields ?? 'kind,id,name,mimeType')) };
  }

  async #export(id: string, q: URLSearchParams): Promise<Reply> {
    const f = this.files.get(id);
    if (!f) return googleError(404, `File not found: ${id}.`, 'notFound', { location: 'fileId', locationType: 'parameter' });
    if (f.mimeType !== GDOC) return googleError(403, 'Export only supports Docs Editors files.', 'fileNotExportable');
    const mime = q.get('mimeType');
    if (mime === DOCX) return { status: 200, headers: { 'content-type': DOCX }, body: await makeDocx(f.content.toString('utf8')) };
    if (mime === 'text/plain') return { status: 200, headers: { 'content-type': 'text/plain' }, body: new Uint8Array(f.content) };
    return googleError(400, 'The requested conversion is not supported.', 'badRequest', { location: 'convertTo', locationType: 'parameter' });
  }

  #list(q: URLSearchParams): Reply {
    const driveId = q.get('driveId');
    if (driveId && (q.get('includeItemsFromAllDrives') !== 'true' || q.get('supportsAllDrives') !== 'true' || q.get('corpora') !== 'drive')) {
      return googleError(403, 'The includeItemsFromAllDrives parameter must be set to true when driveId is set.', 'teamDrivesParameterRequired');
    }
    const clauses = (q.get('q') ?? '').split(/\s+and\s+/).filter(Boolean);
    const tests: Array<(f: DriveFile) => boolean> = [];
    for (const clause of clauses) {
      let m: RegExpExecArray | null;
      if ((m = /^'((?:[^'\\]|\\.)*)' in parents$/.exec(clause.trim()))) {
        const parent = m[1]!.replace(/\\(.)/g, '$1');
        tests.push((f) => f.parents.includes(parent));
      } else if ((m = /^trashed\s*=\s*(true|false)$/.exec(clause.trim()))) {
        const want = m[1] === 'true';
        tests.push((f) => f.trashed === want);
      } else {
        return googleError(400, 'Invalid Value', 'invalid', { location: 'q', locationType: 'parameter' });
      }
    }
    const all = [...this.files.values()].filter((f) => (driveId ? f.driveId === driveId : this.#visibleInList(f, q)) && tests.every((t) => t(f)));
    const pageSize = Math.min(Number(q.get('pageSize') ?? 100), 1000);
    const offset = q.get('pageToken') ? Number(Buffer.from(q.get('pageToken')!, 'base64url').toString()) : 0;
    if (!Number.isInteger(offset)) return googleError(400, 'Invalid Value', 'invalid', { location: 'pageToken', locationType: 'parameter' });
    const page = all.slice(offset, offset + pageSize);
    const full = {
      kind: 'drive#fileList',
      incompleteSearch: false,
      files: page.map((f) => this.#resource(f)),
      ...(offset + pageSize < all.length ? { nextPageToken: Buffer.from(String(offset + pageSize)).toString('base64url') } : {}),
    };
    return { status: 200, body: pick(full, parseFields(q.get('fields') ?? 'kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)')) };
  }

  #visibleInList(f: DriveFile, q: URLSearchParams): boolean {
    return !f.driveId || (q.get('includeItemsFromAllDrives') === 'true' && q.get('supportsAllDrives') === 'true');
  }

  #changes(q: URLSearchParams): Reply {
    const token = Number(q.get('pageToken'));
    if (!Number.isInteger(token) || token < this.oldestToken || token > this.log.length + 1) {
      return googleError(400, 'Invalid Value', 'invalid', { location: 'pageToken', locationType: 'parameter' });
    }
    const driveId = q.get('driveId');
    if (driveId && q.get('supportsAllDrives') !== 'true') return googleError(403, 'The supportsAllDrives parameter must be set to true when driveId is set.', 'teamDrivesParameterRequired');
    const pageSize = Math.min(Number(q.get('pageSize') ?? 100), 1000);
    const includeRemoved = q.get('includeRemoved') !== 'false';
    // Like Drive: one entry per file (its latest state), in order of its latest change.
    const entries: Array<{ entry: LogEntry; index: number }> = [];
    const seen = new Map<string, number>();
    let index = token - 1;
    for (; index < this.log.length && entries.length < pageSize; index++) {
      const entry = this.log[index]!;
      const at = seen.get(entry.fileId);
      if (at !== undefined) entries.splice(at, 1);
      entries.push({ entry, index });
      seen.clear();
      entries.forEach((e, i) => { seen.set(e.entry.fileId, i); });
    }
    const changes = entries
      .map(({ entry }) => {
        const f = this.files.get(entry.fileId);
        if (driveId ? f?.driveId !== driveId && f !== undefined : f?.driveId && !this.#visibleInList(f, q)) return null;
        if (!f || entry.removed) return includeRemoved ? { kind: 'drive#change', changeType: 'file', time: entry.time, removed: true, fileId: entry.fileId } : null;
        return { kind: 'drive#change', changeType: 'file', time: entry.time, removed: false, fileId: f.id, file: this.#resource(f) };
      })
      .filter((c) => c !== null);
    const full = {
      kind: 'drive#changeList',
      changes,
      ...(index < this.log.length ? { nextPageToken: String(index + 1) } : { newStartPageToken: String(this.log.length + 1) }),
    };
    return { status: 200, body: pick(full, parseFields(q.get('fields') ?? 'kind,nextPageToken,newStartPageToken,changes(kind,changeType,time,removed,fileId,file(kind,id,name,mimeType))')) };
  }
}
