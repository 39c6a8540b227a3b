/**
 * @module server/security — who may call the server and how much: bearer tokens with scopes
 * (compared in constant time), CORS, request body and query-string size, a per-caller rate
 * limit and a cap on requests in flight. Every refusal is JSON with a code and a message.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { parse as parseYaml } from 'yaml';
import { AuthConfig, type LivedexConfig } from '../core/config.js';
import { LivedexError } from '../core/errors.js';
import type { Logger } from '../core/types.js';

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
  /** Requests handled at once; more get 429 until one ends. */
  maxConcurrent: number;
}

/** Routes anyone may call: probes must work without credentials; the status page holds no data (its API calls carry the token). */
const OPEN_ROUTES = new Set(['/healthz', '/readyz', '/']);

/** Writes need an admin token: pushing and deleting documents. */
const isAdminRequest = (c: Context) => (c.req.method === 'PUT' || c.req.method === 'DELETE') && c.req.path.startsWith('/v1/documents/');

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

/** Mounts the security middleware in front of every route of `app`. */
export function mountSecurity(app: Hono, opts: SecurityOptions): void {
  if (opts.corsOrigins.length > 0) {
    const any = opts.corsOrigins.includes('*');
    app.use(
      '*',
      cors({
        origin: any ? '*' : opts.corsOrigins,
        allowHeaders: ['Authorization', 'Content-Type', 'Accept', 'Mcp-Session-Id', 'Mcp-Protocol-Version', 'Last-Event-ID'],
        exposeHeaders: ['Mcp-Session-Id', 'Retry-After'],
        allowMethods: ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
        maxAge: 600,
      }),
    );
  }

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

  const limitBody = bodyLimit({
    maxSize: opts.maxBodyBytes,
    onError: () => {
      throw new LivedexError('invalid_request', `the request body is above the ${opts.maxBodyBytes} bytes limit (limits.max_body_bytes)`, { field: 'body', status: 413 });
    },
  });
  // Only requests that carry a body are read through the limit (pushed documents have their own).
  const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
  app.use('*', (c, next) =>
    !BODY_METHODS.has(c.req.method) || (c.req.method === 'PUT' && c.req.path.startsWith('/v1/documents/')) ? next() : limitBody(c, next),
  );
}

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
    if (isLoopbackHost(config.host)) logger.info('no auth token configured: serving this machine only (loopback)', { host: config.host });
    else logger.warn('no auth token configured and bound beyond loopback: the index is open to the network', { host: config.host });
  }
  return {
    tokens,
    corsOrigins: config.cors_origins,
    maxBodyBytes: config.limits.max_body_bytes,
    maxQueryChars: config.limits.max_query_chars,
    ratePerMinute: config.limits.rate_per_minute,
    maxConcurrent: config.limits.max_concurrent,
  };
}
