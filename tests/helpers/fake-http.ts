/** Test helper: the plumbing of the fake cloud services — a loopback HTTP server, a request log and fault injection. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the fake saw it. */
export interface LoggedRequest {
  /** The operation the fake recognised (`files.list`, `delta`…), or `unknown`. */
  op: string;
  method: string;
  url: URL;
  /** The bearer token sent, if any (tests assert it is never something else). */
  authorization: string | undefined;
  at: number;
}

/** A fault the next matching requests meet instead of the real answer. */
export interface Fault {
  /** Operations it applies to (`*` for all). */
  op: string;
  /** How many requests it hits; Infinity until cleared. */
  times: number;
  /** `hang`: accept the request and never answer. */
  kind: 'status' | 'hang' | 'reset';
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/** What a fake's router returns for a request. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** JSON body (objects) or raw bytes. */
  body?: unknown;
}

export type Route = (req: IncomingMessage, url: URL, body: Buffer) => Promise<{ op: string; reply: () => Reply | Promise<Reply> }>;

/** A loopback HTTP server with a request log and injectable faults; the fakes build on it. */
export class FakeHttp {
  readonly requests: LoggedRequest[] = [];
  readonly #faults: Fault[] = [];
  #server: Server | null = null;
  #hanging = new Set<ServerResponse>();
  url = '';

  constructor(private readonly route: Route) {}

  async start(): Promise<string> {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#hanging.clear();
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Makes the next `times` requests of `op` meet `fault`. */
  fail(op: string, fault: Omit<Fault, 'op' | 'times' | 'kind'> & { kind?: Fault['kind']; times?: number }): void {
    this.#faults.push({ kind: 'status', times: 1, ...fault, op });
  }

  clearFaults(): void {
    this.#faults.length = 0;
  }

  /** Requests of `op` logged so far (since index `from`). */
  count(op: string, from = 0): number {
    return this.requests.slice(from).filter((r) => r.op === op).length;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', this.url);
    try {
      const { op, reply } = await this.route(req, url, Buffer.concat(chunks));
      this.requests.push({ op, method: req.method ?? 'GET', url, authorization: req.headers.authorization, at: Date.now() });
      const fault = this.#faults.find((f) => (f.op === op || f.op === '*') && f.times > 0);
      if (fault) {
        fault.times--;
        if (fault.kind === 'hang') {
          this.#hanging.add(res);
          res.on('close', () => this.#hanging.delete(res));
          return;
        }
        if (fault.kind === 'reset') {
          req.socket.destroy();
          return;
        }
        return send(res, { status: fault.status ?? 500, ...(fault.headers ? { headers: fault.headers } : {}), body: fault.body ?? {} });
      }
      send(res, await reply());
    } catch (err) {
      send(res, { status: 500, body: { error: { code: 500, message: `fake crashed: ${String(err)}` } } });
    }
  }
}

function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...reply.headers };
  let payload: Buffer | undefined;
  if (reply.body instanceof Uint8Array) {
    payload = Buffer.from(reply.body);
    headers['content-type'] ??= 'application/octet-stream';
  } else if (reply.body !== undefined) {
    payload = Buffer.from(JSON.stringify(reply.body));
    headers['content-type'] ??= 'application/json; charset=UTF-8';
  }
  res.writeHead(reply.status, headers);
  res.end(payload);
}

/** Reads an `application/x-www-form-urlencoded` body. */
export const formOf = (body: Buffer): URLSearchParams => new URLSearchParams(body.toString('utf8'));
