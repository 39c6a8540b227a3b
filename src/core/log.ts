/**
 * @module core/log — structured logs with pino: one JSON object a line (`time`, `level`, `msg`,
 * fields), pretty with pino-pretty on a terminal, secrets redacted by path and by key name.
 */
import pino, { type DestinationStream } from 'pino';
import pretty from 'pino-pretty';
import type { Logger } from './types.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export const REDACTED = '[redacted]';

/** Field names whose values are secrets wherever they appear (a number such as `prompt_tokens` stays). */
const SECRET_KEY = /(^|[_-])(authorization|proxy-authorization|cookie|set-cookie|password|passwd|passphrase|secret|client[_-]?secret|token|tokens|access[_-]?token|refresh[_-]?token|api[_-]?key|apikey|private[_-]?key|credentials?|sas)$/i;
const CAMEL_SECRET_KEY = /(apiKey|accessToken|refreshToken|clientSecret|privateKey|Authorization|Password|Secret|Token)$/;
/** A bearer/basic credential or a key-looking value inside a free-text string (an error message quoting a header). */
const SECRET_IN_TEXT = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}|\bsk-[A-Za-z0-9_-]{8,}/g;

/** Paths pino redacts before anything else sees the object (headers of a request or response). */
const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  'req.headers.authorization',
  'api_key',
  '*.api_key',
  'password',
  '*.password',
  'client_secret',
  '*.client_secret',
];

const isSecretKey = (key: string) => SECRET_KEY.test(key) || CAMEL_SECRET_KEY.test(key);

/** `value` with every secret-named field (at any depth) and every credential in text replaced. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.replace(SECRET_IN_TEXT, (_m, scheme: string | undefined) => (scheme ? `${scheme} ${REDACTED}` : REDACTED));
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (value instanceof Error) return redactSecrets({ name: value.name, message: value.message }, depth + 1);
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretKey(k) && v !== null && typeof v !== 'number' && typeof v !== 'boolean' ? REDACTED : redactSecrets(v, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Receives each line (no trailing newline) instead of stderr: tests, embedding. */
  write?: (line: string) => void;
  /** Fields on every line. */
  bindings?: Record<string, unknown>;
  /** Human-readable lines (default: when stderr is a terminal and no `write` is given). */
  pretty?: boolean;
}

function destination(opts: LoggerOptions): DestinationStream {
  if (opts.write) {
    const write = opts.write;
    return { write: (chunk: string) => void write(chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk) };
  }
  if (opts.pretty ?? process.stderr.isTTY === true) {
    return pretty({ destination: 2, sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  }
  return pino.destination({ fd: 2, sync: true });
}

/**
 * A logger writing JSON lines (`{"time","level","msg",…fields}`) to stderr, or to `write`.
 *
 * @example
 * const logger = createLogger({ level: 'debug' });
 * logger.info('document indexed', { key, chunks: 12 });
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const base = pino(
    {
      level,
      base: opts.bindings ? (redactSecrets(opts.bindings) as Record<string, unknown>) : null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    destination(opts),
  );
  const emit = (method: 'debug' | 'info' | 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) => {
    if (!base.isLevelEnabled(method)) return;
    if (fields) base[method](redactSecrets(fields) as Record<string, unknown>, redactSecrets(msg) as string);
    else base[method](redactSecrets(msg) as string);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
