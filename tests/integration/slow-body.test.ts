/**
 * Slow requests: a body trickling in holds no slot of `limits.max_concurrent` (it takes one only
 * once it has arrived), and it is cut off after `limits.body_timeout_ms`; headers that do not
 * arrive within `limits.header_timeout_ms` are cut off too. Other requests are answered meanwhile.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/livedex.js';
import { serveHeron, type HeronServer, type TestServer } from '../helpers/livedex.js';

const MAX_CONCURRENT = 8;
const SLOW = 260;
const BODY_TIMEOUT_MS = 5000;
const HEADER_TIMEOUT_MS = 1000;

interface SlowClient {
  socket: Socket;
  openedAt: number;
  /** What the server sent back (nothing until it cuts the request off). */
  received: string;
  closed: Promise<number>;
}

/** A request whose head goes at once and whose body then comes at one byte a second. */
function slowRequest(port: number, head: string, drip: string): SlowClient {
  const socket = connect(port, '127.0.0.1');
  const client: SlowClient = { socket, openedAt: performance.now(), received: '', closed: Promise.resolve(0) };
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (client.received += d));
  socket.on('error', () => {});
  let at = 0;
  const timer = setInterval(() => {
    if (at < drip.length && !socket.destroyed) socket.write(drip[at++]!);
  }, 1000);
  client.closed = new Promise((resolve) =>
    socket.on('close', () => {
      clearInterval(timer);
      resolve(performance.now());
    }),
  );
  socket.write(head);
  return client;
}

describe('slow requests', () => {
  let served: HeronServer;
  let server: TestServer;

  before(async () => {
    served = await serveHeron({ limits: { max_concurrent: MAX_CONCURRENT, body_timeout_ms: BODY_TIMEOUT_MS, header_timeout_ms: HEADER_TIMEOUT_MS } });
    server = served.server;
  });

  after(async () => {
    await served?.close();
  });

  it(`answers other requests while ${SLOW} bodies arrive at 1 byte/s (max_concurrent ${MAX_CONCURRENT}), and cuts those off with 408 after body_timeout_ms`, { timeout: 120_000 }, async () => {
    const host = `127.0.0.1:${server.port}`;
    const body = JSON.stringify({ query: 'heron', k: 1 });
    const slow: SlowClient[] = [];
    for (let i = 0; i < SLOW; i++) {
      const push = i % 26 === 0;
      const head = push
        ? `PUT /v1/documents/slow-${i}.txt HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n`
        : `POST /v1/retrieve HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
      slow.push(slowRequest(server.port, head, push ? 'x'.repeat(1000) : body));
    }
    // The slow requests are all in: each has sent its head and is waiting on its body.
    await new Promise((r) => setTimeout(r, 300));
    const stillOpen = () => slow.filter((c) => !c.socket.destroyed && c.received === '').length;

    const answered: Array<{ path: string; status: number }> = [];
    let whileAllOpen = 0;
    for (let round = 0; round < 10; round++) {
      for (const path of ['/v1/retrieve?query=heron&k=1', '/healthz', '/v1/statistics']) {
        const res = await fetch(`${server.url}${path}`);
        await res.arrayBuffer();
        answered.push({ path, status: res.status });
      }
      const post = await fetch(`${server.url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      answered.push({ path: 'POST /v1/retrieve', status: post.status });
      assert.match(await post.text(), /heron stands still/);
      if (stillOpen() === SLOW) whileAllOpen++;
    }
    assert.deepEqual(answered.filter((a) => a.status !== 200), [], 'every other request is answered 200, none 429');
    assert.ok(whileAllOpen >= 1, 'the other requests were answered while every slow body was still arriving');

    const closedAt = await Promise.all(slow.map((c) => c.closed));
    for (const [i, c] of slow.entries()) {
      assert.match(c.received, /^HTTP\/1\.1 408 /, `slow request ${i} was cut off with 408, got ${JSON.stringify(c.received.slice(0, 80))}`);
      const lived = closedAt[i]! - c.openedAt;
      assert.ok(lived >= BODY_TIMEOUT_MS - 50, `slow request ${i} lived ${Math.round(lived)} ms, at least body_timeout_ms`);
    }
    const longest = Math.max(...closedAt.map((t, i) => t - slow[i]!.openedAt));
    // Bounded, with room for a loaded machine: the timeout, then Node's check every quarter of the header timeout.
    assert.ok(longest < BODY_TIMEOUT_MS + 15_000, `the last slow request lived ${Math.round(longest)} ms`);
    // None of the slow pushes went through.
    const pushed = await fetch(`${server.url}/v1/documents/push:slow-0.txt`);
    assert.equal(pushed.status, 404);
  });

  it('cuts off headers that do not arrive within header_timeout_ms (408)', { timeout: 60_000 }, async () => {
    const host = `127.0.0.1:${server.port}`;
    const client = slowRequest(server.port, `GET /v1/retrieve?query=heron HTTP/1.1\r\nHost: ${host}\r\n`, 'X-Slow: ' + 'a'.repeat(100));
    const closedAt = await client.closed;
    assert.match(client.received, /^HTTP\/1\.1 408 /);
    const lived = closedAt - client.openedAt;
    assert.ok(lived >= HEADER_TIMEOUT_MS - 50 && lived < BODY_TIMEOUT_MS, `lived ${Math.round(lived)} ms: past the header timeout, before the body timeout`);
  });

  it('serves a body that arrives in parts within the timeout', { timeout: 60_000 }, async () => {
    const host = `127.0.0.1:${server.port}`;
    const body = JSON.stringify({ query: 'heron', k: 1 });
    const client = slowRequest(server.port, `POST /v1/retrieve HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, -1)}`, body.slice(-1));
    await client.closed;
    assert.match(client.received, /^HTTP\/1\.1 200 /);
    assert.match(client.received, /heron stands still/);
  });

  it('takes the timeouts from the config, with defaults, and refuses nonsense naming the key', () => {
    const { limits } = parseConfig({});
    assert.equal(limits.header_timeout_ms, 10_000);
    assert.equal(limits.body_timeout_ms, 60_000);
    assert.throws(() => parseConfig({ limits: { body_timeout_ms: 5 } }), /limits\.body_timeout_ms/);
    assert.throws(() => parseConfig({ limits: { header_timeout_ms: 'soon' } }), /limits\.header_timeout_ms/);
  });
});
