/**
 * A fake of the Unstructured partition API on 127.0.0.1, faithful to its wire contract:
 * `POST /general/v0/general`, a multipart form with the file in `files` and the partition
 * parameters as fields, the key in the `unstructured-api-key` header, a JSON array of elements
 * (`type`, `element_id`, `text`, `metadata`) back; `{"detail": …}` bodies on errors (401 for a
 * bad key, 422 for a bad form, 429/5xx as injected).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeElement {
  type: string;
  text: string;
  element_id?: string;
  metadata?: Record<string, unknown>;
}

/** One request as the fake saw it. */
export interface PartitionRequestRecord {
  /** Whether the `unstructured-api-key` header held the expected key. */
  keyAccepted: boolean;
  fileName: string | null;
  fileType: string | null;
  size: number;
  /** Every non-file form field, by name (a field may repeat). */
  fields: Record<string, string[]>;
  status: number;
}

/** A response to give instead of the elements, for the next request (`hang`: no answer at all). */
export type Fault = { status: number; retryAfter?: string; detail?: string } | { hang: true };

export interface FakeUnstructured {
  url: string;
  requests: PartitionRequestRecord[];
  /** Faults served one per request, in order, before requests are answered normally again. */
  faults: Fault[];
  close(): Promise<void>;
}

/**
 * Starts the fake. `elements` answers a partition request for a file; the fake fills in
 * `element_id` (a hash, as the API does), `filename`, `filetype` and `languages` when absent.
 */
export async function startFakeUnstructured(opts: { apiKey: string; elements: (file: { name: string; bytes: Uint8Array }) => FakeElement[] }): Promise<FakeUnstructured> {
  const requests: PartitionRequestRecord[] = [];
  const faults: Fault[] = [];

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'POST' || url.pathname !== '/general/v0/general') return send(res, 404, { detail: 'Not Found' });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);

    const record: PartitionRequestRecord = { keyAccepted: req.headers['unstructured-api-key'] === opts.apiKey, fileName: null, fileType: null, size: 0, fields: {}, status: 0 };
    requests.push(record);
    const reply = (status: number, payload: unknown, headers?: Record<string, string>) => {
      record.status = status;
      send(res, status, payload, headers);
    };

    if (!record.keyAccepted) return reply(401, { detail: 'API key is malformed, please type the API key correctly in the header.' });
    let form: FormData;
    try {
      form = await new Request('http://127.0.0.1/', { method: 'POST', headers: { 'content-type': String(req.headers['content-type'] ?? '') }, body }).formData();
    } catch {
      return reply(422, { detail: [{ type: 'value_error', loc: ['body'], msg: 'a multipart/form-data body is required' }] });
    }
    let file: File | null = null;
    for (const [name, value] of form) {
      if (name === 'files' && typeof value !== 'string') file = value;
      else if (typeof value === 'string') (record.fields[name] ??= []).push(value);
    }
    if (!file) return reply(422, { detail: [{ type: 'missing', loc: ['body', 'files'], msg: 'Field required' }] });
    const bytes = new Uint8Array(await file.arrayBuffer());
    record.fileName = file.name;
    record.fileType = file.type || null;
    record.size = bytes.byteLength;

    const fault = faults.shift();
    if (fault && 'hang' in fault) {
      record.status = -1;
      return; // the connection stays open until the client gives up or the fake closes
    }
    if (fault) {
      return reply(fault.status, { detail: fault.detail ?? (fault.status >= 500 ? 'Internal Server Error' : 'Too Many Requests') }, fault.retryAfter ? { 'retry-after': fault.retryAfter } : {});
    }
    const elements = opts.elements({ name: file.name, bytes }).map((e, i) => ({
      type: e.type,
      element_id: e.element_id ?? createHash('sha256').update(`${file.name}:${i}:${e.text}`).digest('hex').slice(0, 32),
      text: e.text,
      metadata: { filename: file.name, filetype: file.type || 'application/octet-stream', languages: ['eng'], ...e.metadata },
    }));
    reply(200, elements);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { detail: String(err) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    faults,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
