/**
 * @module bench/scale-server — one livedex server in its own process for bench/scale.ts, so its
 * RSS and heap are its own: `serve()` with the config given as JSON in argv[2], then IPC messages
 * (`listening`, `ready`, `synced`) and answers to `stats`, `sync` and `close`. Started with `--expose-gc` so
 * `stats` reports the heap that is live, not garbage not yet collected.
 */
import { getHeapStatistics } from 'node:v8';
import { silentLogger } from '../src/core/log.js';
import { parseConfig, serve } from '../src/livedex.js';

const send = (m: unknown) => process.send!(m);
const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss, heapLimit: getHeapStatistics().heap_size_limit };
};

const startedAt = Date.now();
const server = await serve(parseConfig(JSON.parse(process.argv[2]!)), { logger: silentLogger });
send({ type: 'listening', url: server.url, startedAt, at: Date.now(), mem: heap() });
server.ready.then(
  () => send({ type: 'ready', at: Date.now() }),
  (err: unknown) => send({ type: 'failed', error: String(err) }),
);
server.synced.then(
  () => send({ type: 'synced', at: Date.now() }),
  () => {},
);
process.on('message', (msg: { type: string; id: number }) => {
  void (async () => {
    try {
      if (msg.type === 'stats') {
        const s = await server.index.status();
        send({ type: 'reply', id: msg.id, value: { chunks: s.chunks, documents: s.documents, queue: s.queue, ready: s.ready, mem: heap() } });
      } else if (msg.type === 'count') {
        const s = await server.index.status();
        send({ type: 'reply', id: msg.id, value: { chunks: s.chunks, documents: s.documents, queue: s.queue, ready: s.ready } });
      } else if (msg.type === 'sync') {
        await server.index.sync();
        send({ type: 'reply', id: msg.id, value: null });
      } else if (msg.type === 'close') {
        await server.close();
        send({ type: 'reply', id: msg.id, value: null });
        process.disconnect();
      }
    } catch (err) {
      send({ type: 'reply', id: msg.id, error: String(err) });
    }
  })();
});
