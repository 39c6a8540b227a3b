/**
 * @module server/security — who may call the server and how much: the Host and Origin a request
 * may come with, bearer tokens with scopes (compared in constant time), CORS, JSON-only POST
 * bodies, request body and query-string size, a per-caller rate limit and a cap on requests in
 * flight. Every refusal is JSON with a code and a message.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { parse as parseYaml } from 'yaml';
import { AuthConfig, type LivedexConfig } from '../core/config.js';
import { LivedexError } from '../core/errors.js';
import type { Logger } from '../core/types.js';
import { requireJsonType } from './request.js';

export type TokenScope = 'read' | 'admin';

export interface AuthToken {
  token: string;
  scope: TokenScope;
  /** Shown in logs and used as the rate-limit key instead of the secret. */
  name: string;
}

export interface SecurityOptions {
  /** No tokens: every route is open (the server then binds to loopback only, see `serve`). */
  tokens: AuthToken[];
  /** Origins allowed by CORS; empty: no CORS headers at all. `*` allows any. */
  corsOrigins: string[];
  /** Largest request body, except pushed documents (they have `pipeline.max_file_bytes`). */
  maxBodyBytes: number;
  /** Longest query string. */
  maxQueryChars: number;
  /** Requests per minute per token (or per client address without auth); 0 = unlimited. */
  ratePerMinute: number;
  /** Requests handled at once (counted once their body has arrived); more get 429 until one ends. */
  maxConcurrent: number;
  /**
   * `Host` names (`name`, or `name:port` for one port) answered besides loopback names. Without a
   * token every other Host is refused (DNS rebinding); with a token, only when this is not empty.
   */
  allowedHosts?: string[];
  /** Largest pushed document (`pipeline.max_file_bytes`): a push body is read up to it before it takes a slot; absent: the push route reads it. */
  maxDocumentBytes?: number;
}

/** Routes anyone may call: probes must work without credentials; the status page holds no data (its API calls carry the token). */
const OPEN_ROUTES = new Set(['/healthz', '/readyz', '/']);

/** Probes answer any Host: orchestrators call them by the pod's or container's address, and they hold no documents. */
const PROBES = new Set(['/healthz', '/readyz']);

const isPushRoute = (c: Context) => c.req.path.startsWith('/v1/documents/');

/** Writes need an admin token: pushing and deleting documents. */
const isAdminRequest = (c: Context) => (c.req.method === 'PUT' || c.req.method === 'DELETE') && isPushRoute(c);

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The token matching `presented`, checking every token so that timing tells nothing. */
export function matchToken(tokens: readonly AuthToken[], presented: string): AuthToken | null {
  const given = digest(presented);
  let found: AuthToken | null = null;
  for (const t of tokens) if (timingSafeEqual(digest(t.token), given) && !found) found = t;
  return found;
}

function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** A token bucket per caller: `perMinute` tokens a minute, bursts up to a tenth of a minute's worth. */
class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #perMs: number;
  readonly #burst: number;

  constructor(perMinute: number) {
    this.#perMs = perMinute / 60_000;
    this.#burst = Math.max(5, Math.ceil(perMinute / 10));
  }

  /** 0 when allowed, else the milliseconds until the next request would be. */
  take(key: string, now = Date.now()): number {
    const b = this.#buckets.get(key) ?? { tokens: this.#burst, at: now };
    b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#perMs);
    b.at = now;
    if (this.#buckets.size > 10_000) this.#prune(now);
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.#perMs);
  }

  /** Drops buckets that have refilled (they hold no state worth keeping). */
  #prune(now: number): void {
    for (const [k, b] of this.#buckets) if (b.tokens + (now - b.at) * this.#perMs >= this.#burst) this.#buckets.delete(k);
  }
}

/** The name (lower-case, IPv6 without brackets) and port of a `Host` value; null when it is not one. */
function splitHostHeader(value: string): { name: string; port: string } | null {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^\s:@/\[\]]+))(?::(\d{1,5}))?$/i.exec(value.trim());
  if (!m) return null;
  return { name: (m[1] ?? m[2]!).toLowerCase(), port: m[3] ?? '' };
}

/** The `allowed_hosts` entries as `name` (any port) or `name:port` keys. */
function allowedHostKeys(entries: readonly string[]): Set<string> {
  const keys = new Set<string>();
  for (const entry of entries) {
    // A bare IPv6 address (`fe80::1`) has colons but no port.
    const bareIpv6 = !entry.includes('[') && (entry.match(/:/g)?.length ?? 0) > 1;
    const h = bareIpv6 ? { name: entry.toLowerCase(), port: '' } : splitHostHeader(entry);
    if (h) keys.add(h.port ? `${h.name}:${h.port}` : h.name);
  }
  return keys;
}

/** `https://App.example:443/` → `https://app.example`, as browsers send it; anything else as given. */
function normalizeOrigin(origin: string): string {
  try {
    const u = new URL(origin);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : origin;
  } catch {
    return origin;
  }
}

/** True when `origin` is the server as the request addressed it: the same host and port as its `Host`. */
function isOwnOrigin(origin: string, host: { name: string; port: string } | null): boolean {
  if (!host) return false;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
  // Behind a TLS proxy the page is https while we hear http: the port then defaults by the page's scheme.
  const defaultPort = u.protocol === 'https:' ? '443' : '80';
  const name = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return name === host.name && (u.port || defaultPort) === (host.port || defaultPort);
}

/**
 * Refuses requests a web page could make on a user's behalf: a `Host` that is not this machine
 * (DNS rebinding: a page on evil.example whose name now points at 127.0.0.1) unless a token is
 * needed anyway, and an `Origin` that is neither in `cors_origins` nor the server's own. Runs
 * before CORS, so a preflight from a foreign origin fails too.
 */
function refuseForeignCallers(opts: SecurityOptions): MiddlewareHandler {
  const allowedHosts = allowedHostKeys(opts.allowedHosts ?? []);
  const checkHost = opts.tokens.length === 0 || allowedHosts.size > 0;
  const anyOrigin = opts.corsOrigins.includes('*');
  const origins = new Set(opts.corsOrigins.map(normalizeOrigin));
  return async (c, next) => {
    // A request made in-process (`app.request`) has no Host header: its URL says where it went.
    const hostHeader = c.req.header('host') ?? new URL(c.req.url).host;
    const host = splitHostHeader(hostHeader);
    if (checkHost && !PROBES.has(c.req.path)) {
      const allowed = host !== null && (isLoopbackHost(host.name) || allowedHosts.has(host.name) || allowedHosts.has(`${host.name}:${host.port}`));
      if (!allowed) {
        const why = opts.tokens.length === 0 ? 'this server has no auth token, so it answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]) or to allowed_hosts' : 'this server answers only requests addressed to a loopback name or to allowed_hosts';
        const fix = host ? `add ${JSON.stringify(host.name)} to allowed_hosts (--allowed-host ${host.name})${opts.tokens.length === 0 ? ' or set an auth token' : ''}` : 'send a Host header';
        throw new LivedexError('forbidden', `the Host ${hostHeader ? JSON.stringify(hostHeader) : '(none)'} is refused: ${why}; to serve it, ${fix}`, { field: 'host' });
      }
    }
    const origin = c.req.header('origin');
    if (origin !== undefined && !anyOrigin && !origins.has(normalizeOrigin(origin)) && !isOwnOrigin(origin, host)) {
      throw new LivedexError('forbidden', `requests from pages of the origin ${JSON.stringify(origin)} are refused: add it to cors_origins (--cors-origin ${origin}) to let its pages call this server`, { field: 'origin' });
    }
    return next();
  };
}

/** Thrown when a body does not arrive whole: Node cut it off (limits.body_timeout_ms) or the client left. */
const bodyNotArrived = (cause: unknown) =>
  new LivedexError('invalid_request', 'the request body did not arrive in time (limits.body_timeout_ms) or the client went away', { field: 'body', status: 408, cause });

/**
 * Reads the whole body before the request takes a slot of `max_concurrent` (a body trickling in
 * must not hold one), refusing it (413) past `max` bytes, and hands the route a copy in memory.
 */
async function readBodyFirst(c: Context, max: number, tooLarge: () => LivedexError): Promise<void> {
  const raw = c.req.raw;
  const declared = Number(raw.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) throw tooLarge();
  if (!raw.body) return;
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = raw.body.getReader();
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (err) {
      throw bodyNotArrived(err);
    }
    if (chunk.done) break;
    size += chunk.value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    parts.push(chunk.value);
  }
  // Built from its parts: Node's request object is not a Request that `new Request(raw, …)` can copy.
  c.req.raw = new Request(raw.url, { method: raw.method, headers: raw.headers, body: Buffer.concat(parts), signal: raw.signal });
}

/** Mounts the security middleware in front of every route of `app`. */
export function mountSecurity(app: Hono, opts: SecurityOptions): void {
  app.use('*', refuseForeignCallers(opts));
  if (opts.corsOrigins.length > 0) {
    const any = opts.corsOrigins.includes('*');
    app.use(
      '*',
      cors({
        origin: any ? '*' : opts.corsOrigins.map(normalizeOrigin),
        allowHeaders: ['Authorization', 'Content-Type', 'Accept', 'Mcp-Session-Id', 'Mcp-Protocol-Version', 'Last-Event-ID'],
        exposeHeaders: ['Mcp-Session-Id', 'Retry-After', 'X-Livedex-Truncated'],
        allowMethods: ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
        maxAge: 600,
      }),
    );
  }

  const bodyTooLarge = () => new LivedexError('invalid_request', `the request body is above the ${opts.maxBodyBytes} bytes limit (limits.max_body_bytes)`, { field: 'body', status: 413 });
  const documentTooLarge = (max: number) => () =>
    new LivedexError('invalid_request', `the document is more than ${max} bytes, above the ${max} bytes limit (pipeline.max_file_bytes)`, { field: 'body', status: 413 });
  const limiter = opts.ratePerMinute > 0 ? new RateLimiter(opts.ratePerMinute) : null;
  let inFlight = 0;
  const guard: MiddlewareHandler = async (c, next) => {
    // CORS preflights never get here when CORS is on: its middleware answers them first.
    if (OPEN_ROUTES.has(c.req.path)) return next();
    let caller = `addr:${clientAddress(c)}`;
    if (opts.tokens.length > 0) {
      const header = c.req.header('authorization') ?? '';
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      const token = m ? matchToken(opts.tokens, m[1]!) : null;
      if (!token) {
        c.header('WWW-Authenticate', 'Bearer realm="livedex"');
        throw new LivedexError('unauthorized', header ? 'the bearer token is not valid' : 'this server needs a bearer token: send `Authorization: Bearer <token>`', { field: 'authorization' });
      }
      if (isAdminRequest(c) && token.scope !== 'admin') {
        throw new LivedexError('forbidden', `the token "${token.name}" is read-only; pushing and deleting documents needs an admin token`, { field: 'authorization' });
      }
      caller = `token:${token.name}`;
    }
    const query = new URL(c.req.url).search;
    if (query.length > opts.maxQueryChars) {
      throw new LivedexError('invalid_request', `the query string is ${query.length} characters, above the ${opts.maxQueryChars} limit (limits.max_query_chars); send long requests as a JSON body`, { field: 'query', status: 414 });
    }
    if (limiter) {
      const waitMs = limiter.take(caller);
      if (waitMs > 0) {
        c.header('Retry-After', String(Math.ceil(waitMs / 1000)));
        throw new LivedexError('rate_limited', `too many requests: the limit is ${opts.ratePerMinute} a minute (limits.rate_per_minute); retry in ${Math.ceil(waitMs / 1000)} s`);
      }
    }
    // Pushed documents have their own types and size limit; every other body is JSON.
    if (c.req.method === 'PUT' && isPushRoute(c)) {
      if (opts.maxDocumentBytes !== undefined) await readBodyFirst(c, opts.maxDocumentBytes, documentTooLarge(opts.maxDocumentBytes));
    } else if (BODY_METHODS.has(c.req.method)) {
      if (c.req.method === 'POST') requireJsonType(c);
      await readBodyFirst(c, opts.maxBodyBytes, bodyTooLarge);
    }
    if (inFlight >= opts.maxConcurrent) {
      c.header('Retry-After', '1');
      throw new LivedexError('rate_limited', `the server is handling ${inFlight} requests, its limit (limits.max_concurrent); retry shortly`);
    }
    inFlight++;
    try {
      await next();
    } finally {
      inFlight--;
    }
  };
  app.use('*', guard);
}

/** Methods whose body is read before the route runs. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

const isWildcardHost = (host: string) => host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/**
 * The security options of a config: its tokens (and those of `auth.tokens_file`), CORS and
 * limits. Refuses to expose an index without a token on a non-loopback address unless
 * `auth.allow_remote_without_auth` says so.
 */
export async function securityFor(config: LivedexConfig, logger: Logger): Promise<SecurityOptions> {
  const entries: unknown[] = [...config.auth.tokens];
  if (config.auth.tokens_file) {
    let text: string;
    try {
      text = await readFile(config.auth.tokens_file, 'utf8');
    } catch (err) {
      throw new LivedexError('config_error', `auth.tokens_file: cannot read ${config.auth.tokens_file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { field: 'auth.tokens_file', cause: err });
    }
    const parsed = AuthConfig.shape.tokens.safeParse(parseYaml(text));
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new LivedexError('config_error', `auth.tokens_file: ${config.auth.tokens_file}: [${issue.path.join('].')}]: ${issue.message}`, { field: 'auth.tokens_file' });
    }
    entries.push(...parsed.data);
  }
  const tokens = entries.map((e, i): AuthToken =>
    typeof e === 'string' ? { token: e, scope: 'admin', name: `token-${i + 1}` } : { ...(e as Omit<AuthToken, 'name'>), name: (e as { name?: string }).name ?? `token-${i + 1}` },
  );
  if (tokens.length === 0) {
    if (!isLoopbackHost(config.host) && !config.auth.allow_remote_without_auth) {
      throw new LivedexError(
        'config_error',
        `refusing to serve ${config.host} without an auth token: anyone on the network could read the index. Set --auth-token (or LIVEDEX_AUTH_TOKEN, auth.tokens), or bind to 127.0.0.1, or pass --allow-remote-without-auth`,
        { field: 'host' },
      );
    }
    if (isLoopbackHost(config.host)) logger.info('no auth token configured: serving this machine only (loopback)', { host: config.host, allowed_hosts: config.allowed_hosts });
    else {
      logger.warn('no auth token configured and bound beyond loopback: the index is open to the network', { host: config.host, allowed_hosts: config.allowed_hosts });
      if (config.allowed_hosts.length === 0 && isWildcardHost(config.host)) {
        logger.warn('requests naming this machine other than by a loopback name are refused (403) until allowed_hosts (--allowed-host) lists the names clients use', {});
      }
    }
    if (config.cors_origins.includes('*')) logger.warn('no auth token and cors_origins "*": pages of any web site can read the index through a visitor\'s browser', {});
  }
  // The address the server is bound to (beyond loopback, by choice) is a name it answers to.
  const boundTo = isWildcardHost(config.host) || isLoopbackHost(config.host) ? [] : [config.host];
  return {
    tokens,
    corsOrigins: config.cors_origins,
    maxBodyBytes: config.limits.max_body_bytes,
    maxQueryChars: config.limits.max_query_chars,
    ratePerMinute: config.limits.rate_per_minute,
    maxConcurrent: config.limits.max_concurrent,
    allowedHosts: [...config.allowed_hosts, ...(tokens.length === 0 ? boundTo : [])],
    maxDocumentBytes: config.pipeline.max_file_bytes,
  };
}
