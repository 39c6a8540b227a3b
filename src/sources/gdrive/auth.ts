/** @module sources/gdrive/auth — Google credentials (service account or OAuth refresh token) as an OAuth2 client for the Drive API. */
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { auth } from '@googleapis/drive';
import { LivedexError } from '../../core/errors.js';

/** Read-only access to file content and metadata is all the source needs. */
export const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive.readonly';
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

/** A service account key (`type: service_account`) or an OAuth user grant (`type: authorized_user`). */
export type GoogleCredentials =
  | { type: 'service_account'; clientEmail: string; privateKey: string; privateKeyId?: string; tokenUri: string; subject?: string }
  | { type: 'authorized_user'; clientId: string; clientSecret: string; refreshToken: string; tokenUri: string };

/** Where credentials may come from, in the order they are tried. */
export interface CredentialSources {
  credentials_json?: string | Record<string, unknown> | undefined;
  credentials_file?: string | undefined;
  /** Impersonated user for domain-wide delegation (service accounts only). */
  subject?: string | undefined;
  env: NodeJS.ProcessEnv;
}

/** An error of the token endpoint; `status` lets the retry logic tell 5xx from a refused grant. */
export class TokenError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'TokenError';
    this.status = status;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/** Turns a credentials JSON object into credentials; `where` names the field in errors. */
export function parseCredentials(json: Record<string, unknown>, where: string, subject?: string): GoogleCredentials {
  const tokenUri = str(json.token_uri) ?? GOOGLE_TOKEN_URL;
  if (json.type === 'service_account' || (json.type === undefined && json.private_key !== undefined)) {
    const clientEmail = str(json.client_email);
    const privateKey = str(json.private_key);
    if (!clientEmail || !privateKey) {
      throw new LivedexError('config_error', `${where}: a service account key needs client_email and private_key`, { field: where });
    }
    const keyId = str(json.private_key_id);
    return { type: 'service_account', clientEmail, privateKey, tokenUri, ...(keyId ? { privateKeyId: keyId } : {}), ...(subject ? { subject } : {}) };
  }
  if (json.type === 'authorized_user') {
    const clientId = str(json.client_id);
    const clientSecret = str(json.client_secret);
    const refreshToken = str(json.refresh_token);
    if (!clientId || !clientSecret || !refreshToken) {
      throw new LivedexError('config_error', `${where}: OAuth credentials need client_id, client_secret and refresh_token`, { field: where });
    }
    return { type: 'authorized_user', clientId, clientSecret, refreshToken, tokenUri };
  }
  throw new LivedexError('config_error', `${where}: unsupported credentials type ${JSON.stringify(json.type ?? null)} (expected service_account or authorized_user)`, { field: where });
}

function readJson(text: string, where: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below without echoing the text: it holds secrets
  }
  throw new LivedexError('config_error', `${where}: not a JSON object`, { field: where });
}

/**
 * Finds credentials: `credentials_json`, then `credentials_file`, then the file named by
 * `GOOGLE_APPLICATION_CREDENTIALS`, then OAuth from `GOOGLE_CLIENT_ID`, `GOOGLE_CLIENT_SECRET`
 * and `GOOGLE_REFRESH_TOKEN`. Errors name the field, never the secret.
 */
export function resolveCredentials(src: CredentialSources, where: string): GoogleCredentials {
  if (src.credentials_json !== undefined) {
    const json = typeof src.credentials_json === 'string' ? readJson(src.credentials_json, `${where}.credentials_json`) : src.credentials_json;
    return parseCredentials(json, `${where}.credentials_json`, src.subject);
  }
  const file = src.credentials_file ?? src.env.GOOGLE_APPLICATION_CREDENTIALS;
  if (file) {
    const field = src.credentials_file ? `${where}.credentials_file` : 'GOOGLE_APPLICATION_CREDENTIALS';
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new LivedexError('config_error', `${field}: cannot read ${file}`, { field, cause: err });
    }
    return parseCredentials(readJson(text, field), field, src.subject);
  }
  const { GOOGLE_CLIENT_ID: clientId, GOOGLE_CLIENT_SECRET: clientSecret, GOOGLE_REFRESH_TOKEN: refreshToken } = src.env;
  if (clientId && clientSecret && refreshToken) {
    return { type: 'authorized_user', clientId, clientSecret, refreshToken, tokenUri: src.env.GOOGLE_TOKEN_URI || GOOGLE_TOKEN_URL };
  }
  throw new LivedexError(
    'config_error',
    `${where}: no Google credentials (give credentials_file or credentials_json, or set GOOGLE_APPLICATION_CREDENTIALS, or GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET and GOOGLE_REFRESH_TOKEN)`,
    { field: `${where}.credentials_file` },
  );
}

const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/** A signed JWT-bearer assertion (RFC 7523) as Google's token endpoint expects it. */
export function serviceAccountAssertion(creds: Extract<GoogleCredentials, { type: 'service_account' }>, scope: string, nowS = Math.floor(Date.now() / 1000)): string {
  const header = { alg: 'RS256', typ: 'JWT', ...(creds.privateKeyId ? { kid: creds.privateKeyId } : {}) };
  const claims = { iss: creds.clientEmail, scope, aud: creds.tokenUri, iat: nowS, exp: nowS + 3600, ...(creds.subject ? { sub: creds.subject } : {}) };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  let signature: Buffer;
  try {
    signature = createSign('RSA-SHA256').update(signingInput).sign(creds.privateKey);
  } catch (err) {
    throw new LivedexError('config_error', 'the service account private_key cannot sign (not a PEM RSA key?)', { field: 'private_key', cause: err });
  }
  return `${signingInput}.${signature.toString('base64url')}`;
}

/** Asks the token endpoint for an access token. */
export async function fetchAccessToken(creds: GoogleCredentials, timeoutMs: number, signal?: AbortSignal): Promise<{ access_token: string; expiry_date: number }> {
  const form = new URLSearchParams(
    creds.type === 'service_account'
      ? { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: serviceAccountAssertion(creds, DRIVE_SCOPE) }
      : { grant_type: 'refresh_token', client_id: creds.clientId, client_secret: creds.clientSecret, refresh_token: creds.refreshToken },
  );
  const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
  let res: Response;
  try {
    res = await fetch(creds.tokenUri, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form, signal: AbortSignal.any(signals) });
  } catch (err) {
    throw new TokenError(`token endpoint unreachable (${(err as Error).name === 'TimeoutError' ? 'timed out' : 'connection failed'})`, undefined, err);
  }
  const body = (await res.json().catch(() => ({}))) as { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown };
  if (!res.ok || typeof body.access_token !== 'string') {
    const reason = [body.error, body.error_description].filter((s) => typeof s === 'string').join(': ') || 'no access_token in the answer';
    throw new TokenError(`token endpoint answered ${res.status} (${reason})`, res.ok ? 502 : res.status);
  }
  const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : 3600;
  return { access_token: body.access_token, expiry_date: Date.now() + expiresIn * 1000 };
}

/** The OAuth2 client the Drive API client authenticates with: tokens from `fetchAccessToken`, refreshed when expiring or refused with 401. */
export function driveAuthClient(creds: GoogleCredentials, timeoutMs: number, signal?: AbortSignal): InstanceType<typeof auth.OAuth2> {
  const client = new auth.OAuth2({ forceRefreshOnFailure: true });
  client.refreshHandler = () => fetchAccessToken(creds, timeoutMs, signal);
  return client;
}
