/** The README's contract: after `npm install`, `npx livedex serve ./examples/docs` answers /v1/retrieve. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from '../helpers/livedex.js';

describe('the installed command', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('`npx livedex serve ./examples/docs` (the built bin) answers /v1/retrieve', async () => {
    assert.ok(existsSync(join(ROOT, 'dist/cli.js')), 'npm install builds dist/ (the prepare script)');
    assert.ok(existsSync(join(ROOT, 'build/livedex-engine.node')), 'npm install builds the engine');
    const data = await tempDir();
    cleanups.push(data.cleanup);
    const proc = spawn('npx', ['livedex', 'serve', './examples/docs', '--port', '0', '--data-dir', data.path, '--log-level', 'warn'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: `npm exec` does not forward signals, a terminal's Ctrl-C reaches the group.
      detached: true,
    });
    const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
    try {
      let out = '';
      let err = '';
      proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
      const url = await new Promise<string>((resolve, reject) => {
        proc.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          const m = /serving \.\/examples\/docs at (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        void exited.then((code) => reject(new Error(`exited ${code}: ${err}`)));
      });
      // Ready once the folder's first sync is indexed.
      for (let i = 0; i < 600 && (await fetch(`${url}/readyz`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
      const res = await fetch(`${url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'What happens when a file is deleted?', k: 2 }) });
      assert.equal(res.status, 200);
      const hits = (await res.json()) as Array<{ text: string; metadata: { path: string }; dist: number }>;
      assert.equal(hits.length, 2);
      assert.equal(hits[0]!.metadata.path, 'examples/docs/faq.txt');
    } finally {
      process.kill(-proc.pid!, 'SIGTERM');
      await exited;
    }
    // A clean shutdown removes the file that announces the running server.
    for (let i = 0; i < 100 && existsSync(join(data.path, 'server.json')); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!existsSync(join(data.path, 'server.json')), 'the server shut down cleanly');
  });
});
