/** @module sources/sharepoint/graph — a Microsoft Graph client: client-credentials tokens, retries honouring Retry-After, any base URL. */
import { Client, HTTPMessageHandler, type Context, type Middleware } from '@microsoft/microsoft-graph-client';
import { backoffDelay } from '../../core/calls.js';
import { sleep, type RetryPolicy } from '../feed/index.js';

/** App-only credentials of an Entra ID (Azure AD) application. */
export interface ClientCredentials {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** Default: `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`. */
  tokenUrl: string;
  /** Default: `https://graph.microsoft.com/.default`. */
  scope: string;
}

/** A token endpoint error; `status` lets retries tell an outage from a refused secret. */
export class GraphTokenError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.name = 'GraphTokenError';
    this.status = status;
  }
}

/** The client-credentials flow (RFC 6749 §4.4), caching the token until shortly before it expires. */
export class ClientCredentialsToken {
  #token: { value: string; expiresAt: number } | null = null;
  constructor(
    private readonly creds: ClientCredentials,
    private readonly timeoutMs: number,
  ) {}

  invalidate(): void {
    this.#token = null;
  }

  async get(signal?: AbortSignal): Promise<string> {
    if (this.#token && this.#token.expiresAt - 60_000 > Date.now()) return this.#token.value;
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: this.creds.clientId, client_secret: this.creds.clientSecret, scope: this.creds.scope });
    let res: Response;
    try {
      res = await fetch(this.creds.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), ...(signal ? [signal] : [])]),
      });
    } catch {
      throw new GraphTokenError('token endpoint unreachable');
    }
    const json = (await res.json().catch(() => ({}))) as { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown };
    if (!res.ok || typeof json.access_token !== 'string') {
      // AADSTS descriptions name the problem (a wrong secret, an unknown tenant) without echoing it.
      const reason = typeof json.error === 'string' ? `${json.error}${typeof json.error_description === 'string' ? `: ${json.error_description.split('\n')[0]}` : ''}` : 'no access_token';
      throw new GraphTokenError(`token endpoint answered ${res.status} (${reason})`, res.ok ? 502 : res.status);
    }
    const expiresIn = typeof json.expires_in === 'number' ? json.expires_in : Number(json.expires_in ?? 3600);
    this.#token = { value: json.access_token, expiresAt: Date.now() + (Number.isFinite(expiresIn) ? expiresIn : 3600) * 1000 };
    return this.#token.value;
  }
}

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);

function retryAfterMs(res: Response): number | undefined {
  const value = res.headers.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * Retries 429/5xx (waiting what `Retry-After` asks, as Graph's throttling guidance requires),
 * timeouts and connection failures; every wait stops at once when the source stops. (The SDK's
 * own RetryHandler sleeps without a way to cancel it, so a shutdown would wait out its delay.)
 */
class RetryMiddleware implements Middleware {
  #next: Middleware | undefined;
  constructor(
    private readonly policy: RetryPolicy,
    private readonly timeoutMs: number,
    private readonly signal: AbortSignal,
  ) {}
  setNext(next: Middleware): void {
    this.#next = next;
  }
  async execute(context: Context): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const opts = (context.options ??= {});
      opts.signal = AbortSignal.any([this.signal, AbortSignal.timeout(this.timeoutMs)]);
      let failure: unknown = null;
      try {
        await this.#next!.execute(context);
      } catch (err) {
        if (this.signal.aborted) throw err;
        failure = err;
      }
      const res = context.response;
      const retryable = failure !== null || (res !== undefined && RETRY_STATUS.has(res.status));
      if (!retryable || attempt >= this.policy.retries) {
        if (failure !== null) throw failure;
        return;
      }
      const asked = failure === null && res ? retryAfterMs(res) : undefined;
      if (asked !== undefined && asked > this.policy.maxMs) return; // the caller reports it and polls later
      await sleep(asked ?? backoffDelay(attempt + 1, { retry_base_ms: this.policy.baseMs, retry_max_ms: this.policy.maxMs }), this.signal);
    }
  }
}

/** Adds the bearer token to requests for the Graph base URL only; on a 401, fetches a new token once. */
class BearerMiddleware implements Middleware {
  #next: Middleware | undefined;
  constructor(
    private readonly token: ClientCredentialsToken,
    private readonly origin: string,
    private readonly signal: AbortSignal,
  ) {}
  setNext(next: Middleware): void {
    this.#next = next;
  }
  async execute(context: Context): Promise<void> {
    const url = typeof context.request === 'string' ? context.request : context.request.url;
    if (new URL(url).origin !== this.origin) return this.#next!.execute(context);
    for (let attempt = 0; ; attempt++) {
      const value = `Bearer ${await this.token.get(this.signal)}`;
      const opts = (context.options ??= {});
      if (opts.headers instanceof Headers) opts.headers.set('Authorization', value);
      else opts.headers = { ...(opts.headers as Record<string, string> | undefined), Authorization: value };
      await this.#next!.execute(context);
      if (context.response?.status !== 401 || attempt > 0) return;
      this.token.invalidate(); // revoked or expired early: one fresh token, then the answer stands
    }
  }
}

/** A Graph SDK client for `baseUrl` (`https://graph.microsoft.com` or a fake) with our middleware chain. */
export function graphClient(opts: { baseUrl: string; token: ClientCredentialsToken; policy: RetryPolicy; timeoutMs: number; signal: AbortSignal }): Client {
  const retry = new RetryMiddleware(opts.policy, opts.timeoutMs, opts.signal);
  const bearer = new BearerMiddleware(opts.token, new URL(opts.baseUrl).origin, opts.signal);
  const http = new HTTPMessageHandler();
  retry.setNext(bearer);
  bearer.setNext(http);
  return Client.initWithMiddleware({ baseUrl: opts.baseUrl.replace(/\/+$/, ''), defaultVersion: 'v1.0', middleware: retry });
}
