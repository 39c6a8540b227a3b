/**
 * A fake Hugging Face hub on 127.0.0.1: serves the files of local model directories at
 * `/{owner}/{name}/resolve/{revision}/{path}` as the hub does (200 with the bytes, 404 for a
 * file it lacks, HEAD and `Range` answered), and records every request.
 */
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import type { AddressInfo } from 'node:net';

export interface FakeHub {
  url: string;
  /** Paths requested, in order (`GET /owner/name/resolve/main/config.json`). */
  requests: string[];
  close(): Promise<void>;
}

/** Starts a hub that serves `repos` (`'owner/name'` → model directory). */
export async function startFakeHub(repos: Record<string, string>): Promise<FakeHub> {
  const requests: string[] = [];
  const server: Server = createServer(async (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const m = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/(.+)$/.exec(decodeURIComponent((req.url ?? '').split('?')[0]!));
    const dir = m ? repos[m[1]!] : undefined;
    const file = m ? normalize(m[3]!) : '';
    if (!dir || file.startsWith('..')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Repository not found');
      return;
    }
    let body: Buffer;
    try {
      body = await readFile(join(dir, file));
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain', 'x-error-code': 'EntryNotFound' }).end('Entry not found');
      return;
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (range) {
      const [start, end] = [Number(range[1]), Math.min(Number(range[2]), body.length - 1)];
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': end - start + 1 });
      res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
