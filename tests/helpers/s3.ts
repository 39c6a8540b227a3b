/**
 * A real S3-compatible server for tests: s3rver in a child process, behind a loopback proxy that
 * counts requests by S3 operation and can inject faults (an HTTP status, or a dropped connection).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ROOT, tempDir } from './livedex.js';

/** s3rver's fixed credentials. */
export const S3RVER_CREDENTIALS = { access_key_id: 'S3RVER', secret_access_key: 'S3RVER' } as const;

/** An S3 operation as read from a request (enough for counting). */
export type S3Operation = 'ListObjectsV2' | 'GetObject' | 'HeadObject' | 'PutObject' | 'DeleteObject' | 'Other';

export interface FakeS3 {
  /** The proxy's URL: give it to clients as `endpoint`. */
  endpoint: string;
  bucket: string;
  /** Requests seen per operation since the last `resetCounts()`; GetObject keys in `gets`. */
  counts: Record<S3Operation, number>;
  gets: string[];
  resetCounts(): void;
  /**
   * Every read answers `status` (with an S3 error body) until `heal()`; `drop` cuts connections
   * instead, `hang` never answers (a timeout).
   */
  fail(status: number | 'drop' | 'hang'): void;
  heal(): void;
  put(key: string, body: string | Uint8Array, opts?: { contentType?: string; metadata?: Record<string, string> }): Promise<void>;
  del(key: string): Promise<void>;
  close(): Promise<void>;
}

function operationOf(req: IncomingMessage): S3Operation {
  const url = new URL(req.url ?? '/', 'http://x');
  const segments = url.pathname.split('/').filter(Boolean);
  const onObject = segments.length >= 2;
  if (req.method === 'GET' && url.searchParams.get('list-type') === '2') return 'ListObjectsV2';
  if (req.method === 'GET' && onObject) return 'GetObject';
  if (req.method === 'HEAD' && onObject) return 'HeadObject';
  if (req.method === 'PUT' && onObject) return 'PutObject';
  if (req.method === 'DELETE' && onObject) return 'DeleteObject';
  return 'Other';
}

/** Starts s3rver with `bucket` and the proxy in front of it. */
export async function startFakeS3(bucket = 'docs'): Promise<FakeS3> {
  const dir = await tempDir('livedex-s3-');
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', join(ROOT, 'tests/helpers/s3rver-process.mjs'), dir.path, bucket], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const upstreamPort = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening`)));
  });

  const empty = (): Record<S3Operation, number> => ({ ListObjectsV2: 0, GetObject: 0, HeadObject: 0, PutObject: 0, DeleteObject: 0, Other: 0 });
  let fault: number | 'drop' | 'hang' | null = null;
  const sockets = new Set<Socket>();
  const fake = {
    counts: empty(),
    gets: [] as string[],
  };
  const proxy: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const op = operationOf(req);
    // The test's own writes (PutObject/DeleteObject) pass through faults: only reads fail.
    const faulty = fault !== null && op !== 'PutObject' && op !== 'DeleteObject';
    if (faulty && fault === 'drop') {
      req.socket.destroy();
      return;
    }
    if (faulty && fault === 'hang') return; // the socket is cut at close()
    fake.counts[op]++;
    if (op === 'GetObject') fake.gets.push(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.split('/').slice(2).join('/')));
    if (faulty) {
      const code = fault === 503 ? 'SlowDown' : fault === 429 ? 'TooManyRequests' : 'InternalError';
      res.writeHead(fault as number, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test</Message></Error>`);
      req.resume();
      return;
    }
    const upstream = httpRequest(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  proxy.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_CREDENTIALS.access_key_id, secretAccessKey: S3RVER_CREDENTIALS.secret_access_key },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  return {
    endpoint,
    bucket,
    get counts() {
      return fake.counts;
    },
    get gets() {
      return fake.gets;
    },
    resetCounts() {
      fake.counts = empty();
      fake.gets = [];
    },
    fail(status) {
      fault = status;
    },
    heal() {
      fault = null;
    },
    async put(key, body, opts = {}) {
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: typeof body === 'string' ? Buffer.from(body) : body,
          ...(opts.contentType ? { ContentType: opts.contentType } : {}),
          ...(opts.metadata ? { Metadata: opts.metadata } : {}),
        }),
      );
    },
    async del(key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    async close() {
      client.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      child.stdin?.end();
      if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
      await dir.cleanup();
    },
  };
}
