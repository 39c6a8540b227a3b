/** @module sources/s3/client — the S3 client of the S3 source, and what its failures mean. */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { CallError, type FailureKind } from '../../core/calls.js';
import { describeError } from '../../core/errors.js';

/** What the client needs from the source options. */
export interface S3ClientOptions {
  region?: string | undefined;
  endpoint?: string | undefined;
  force_path_style?: boolean | undefined;
  access_key_id?: string | undefined;
  secret_access_key?: string | undefined;
  session_token?: string | undefined;
  max_attempts: number;
  request_timeout_ms: number;
}

/**
 * An S3 client for the options: static keys when given, else the SDK's default chain (the
 * `AWS_*` environment, `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` included, profiles, roles).
 * Path-style addressing is the default with a custom endpoint (MinIO, Ceph and most
 * S3-compatible servers need it). Checksums are computed and validated only where S3 requires
 * them, which every S3-compatible server accepts.
 */
export function createS3Client(opts: S3ClientOptions, env: NodeJS.ProcessEnv = process.env): S3Client {
  const customEndpoint = opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const config: S3ClientConfig = {
    region: opts.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: opts.force_path_style ?? Boolean(customEndpoint),
    followRegionRedirects: true,
    maxAttempts: opts.max_attempts,
    retryMode: 'standard',
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { requestTimeout: opts.request_timeout_ms, connectionTimeout: Math.min(opts.request_timeout_ms, 10_000) },
  };
  if (opts.endpoint) config.endpoint = opts.endpoint;
  if (opts.access_key_id && opts.secret_access_key) {
    config.credentials = {
      accessKeyId: opts.access_key_id,
      secretAccessKey: opts.secret_access_key,
      ...(opts.session_token ? { sessionToken: opts.session_token } : {}),
    };
  }
  return new S3Client(config);
}

/** An SDK error as far as we read it. */
interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

const AUTH_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidToken',
  'TokenRefreshRequired',
  'AccessDenied',
  'CredentialsProviderError',
  'AllAccessDisabled',
]);
const TIMEOUT_ERRORS = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/** How an S3 failure reads: its kind, and whether asking again later may help. */
export function classifyS3Error(err: unknown): { kind: FailureKind; transient: boolean; status: number | undefined } {
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? '';
  if (AUTH_ERRORS.has(name) || status === 401 || status === 403) return { kind: 'auth', transient: true, status };
  if (status === 429 || name === 'SlowDown' || name === 'Throttling') return { kind: 'rate_limited', transient: true, status };
  if (TIMEOUT_ERRORS.has(name)) return { kind: 'timeout', transient: true, status };
  if (status !== undefined && status >= 500) return { kind: 'server_error', transient: true, status };
  if (CONNECTION_CODES.has(e.code ?? '') || /ECONNREFUSED|ECONNRESET|socket hang up/.test(e.message ?? '')) {
    return { kind: 'connection', transient: true, status };
  }
  return { kind: status !== undefined ? 'client_error' : 'unknown', transient: false, status };
}

/** True when S3 says the object (or the bucket) is not there. */
export function isNotFound(err: unknown): boolean {
  const e = (err ?? {}) as SdkError;
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/** Removes every credential we know of from `text` (SDK messages can echo request details). */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  return out;
}

/** The credentials a message must never show: the options' and the environment's. */
export function secretsOf(opts: S3ClientOptions, env: NodeJS.ProcessEnv = process.env): string[] {
  return [opts.access_key_id, opts.secret_access_key, opts.session_token, env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY, env.AWS_SESSION_TOKEN].filter(
    (s): s is string => typeof s === 'string' && s !== '',
  );
}

/** A readable, credential-free sentence for an S3 failure: what was done, the S3 code, the HTTP status. */
export function describeS3Error(what: string, err: unknown, secrets: readonly string[]): string {
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name && e.name !== 'Error' ? e.name : (e.code ?? '');
  const parts = [name, status !== undefined ? `HTTP ${status}` : ''].filter(Boolean).join(', ');
  const attempts = e.$metadata?.attempts && e.$metadata.attempts > 1 ? ` after ${e.$metadata.attempts} attempts` : '';
  const hint = classifyS3Error(err).kind === 'auth' ? ' (check the credentials: options access_key_id/secret_access_key or the AWS_* environment)' : '';
  return redact(`${what} failed${attempts}: ${parts ? `${parts}: ` : ''}${describeError(err)}${hint}`, secrets);
}

/** The error a document read throws: transient failures keep the document pending (retried), not failed. */
export function readError(what: string, err: unknown, secrets: readonly string[]): Error {
  const { kind, transient, status } = classifyS3Error(err);
  const message = describeS3Error(what, err, secrets);
  if (transient) {
    const attempts = ((err ?? {}) as SdkError).$metadata?.attempts ?? 1;
    return new CallError(message, { kind, attempts, transient: true, ...(status !== undefined ? { httpStatus: status } : {}) });
  }
  return new Error(message);
}
