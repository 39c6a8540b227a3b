/** Logs: pino JSON lines, secrets redacted wherever they sit, one line per document state change. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../src/core/log.js';
import { startServer, tempDir, waitFor } from '../helpers/livedex.js';

type Line = Record<string, unknown> & { level: string; msg: string; time: string };

function capture(level: 'debug' | 'info' | 'warn' = 'debug') {
  const lines: Line[] = [];
  const logger = createLogger({ level, write: (l) => lines.push(JSON.parse(l) as Line) });
  return { lines, logger };
}

describe('the logger', () => {
  it('writes one JSON object a line with time, level, msg and the fields, above its level', () => {
    const { lines, logger } = capture('info');
    logger.debug('not shown');
    logger.info('listening', { url: 'http://127.0.0.1:1' });
    logger.error('boom', { code: 'internal' });
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!.level, 'info');
    assert.equal(lines[0]!.msg, 'listening');
    assert.equal(lines[0]!.url, 'http://127.0.0.1:1');
    assert.ok(!Number.isNaN(Date.parse(lines[0]!.time)));
    assert.equal(lines[1]!.level, 'error');
  });

  it('redacts secrets by key name at any depth, and credentials quoted in text', () => {
    const { lines, logger } = capture();
    logger.warn('request failed with Authorization: Bearer abcdef0123456789', {
      headers: { authorization: 'Bearer abcdef0123456789', 'content-type': 'application/json' },
      options: { openai: { api_key: 'sk-live-0123456789abcdef', model: 'text-embedding-3-small' } },
      auth: { tokens: ['a-very-secret-token-123'], client_secret: 'cs-0123', nested: [{ password: 'hunter2', user: 'ann' }] },
      clientSecret: 'x'.repeat(12),
      refresh_token: 'rt-0123456789',
      usage: { prompt_tokens: 12, completion_tokens: 3 },
      error: 'upstream said: invalid key sk-abcdefghijklmnop',
    });
    const text = JSON.stringify(lines[0]);
    for (const secret of ['abcdef0123456789', 'sk-live-0123456789abcdef', 'a-very-secret-token-123', 'cs-0123', 'hunter2', 'xxxxxxxxxxxx', 'rt-0123456789', 'sk-abcdefghijklmnop']) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    }
    // The logged line, as the JSON it was written as: any shape, read field by field below.
    const line = JSON.parse(text);
    assert.equal(line.headers.authorization, '[redacted]');
    assert.equal(line.headers['content-type'], 'application/json');
    assert.equal(line.options.openai.model, 'text-embedding-3-small');
    assert.equal(line.auth.nested[0].user, 'ann');
    assert.deepEqual(line.usage, { prompt_tokens: 12, completion_tokens: 3 });
    assert.match(line.msg, /Bearer \[redacted\]/);
  });
});

describe('document state lines', () => {
  it('logs one line per document state change, with its key', async () => {
    const folder = await tempDir();
    const data = await tempDir();
    const { lines, logger } = capture('info');
    await writeFile(join(folder.path, 'a.md'), '# A\n\nAlpha text.\n');
    await writeFile(join(folder.path, 'bad.md'), Buffer.from([0x00, 0x01, 0x00, 0x02, 0xff, 0x00]));
    const server = await startServer(folder.path, { dataDir: data.path, logger });
    try {
      await server.ready;
      const a = join(folder.path, 'a.md');
      const bad = join(folder.path, 'bad.md');
      const of = (msg: string, key: string) => lines.filter((l) => l.msg === msg && l.key === key);
      assert.equal(of('document indexed', a).length, 1);
      assert.ok((of('document indexed', a)[0]!.chunks as number) >= 1);
      assert.equal(of('document failed', bad).length, 1);
      assert.match(String(of('document failed', bad)[0]!.error), /binary/i);
      assert.equal(of('document failed', bad)[0]!.level, 'warn');
      await rm(a);
      await waitFor(() => of('document deleted', a).length === 1, 15_000);
      assert.equal(of('document indexed', a).length, 1);
    } finally {
      await server.close();
      await folder.cleanup();
      await data.cleanup();
    }
  });
});
