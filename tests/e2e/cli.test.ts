/** The `livedex` command line, run as a real child process. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, runCli, tempDir, waitFor } from '../helpers/livedex.js';

async function finish(child: ReturnType<typeof runCli>): Promise<{ code: number | null; out: string; err: string }> {
  const code = await child.exited;
  return { code, out: child.stdout.join(''), err: child.stderr.join('') };
}

describe('the livedex command', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    await cp(join(ROOT, 'examples/docs'), folder.path, { recursive: true });
  });
  after(async () => {
    await folder.cleanup();
    await data.cleanup();
  });

  it('`index` indexes a folder once and exits 0 with a summary', async () => {
    const res = await finish(runCli(['index', folder.path, '--data-dir', data.path]));
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /indexed .* 4 documents, 0 failed/);
    assert.ok(existsSync(join(data.path, 'store.sqlite')));
  });

  it('`index --include/--exclude` choose the files', async () => {
    const only = await tempDir();
    try {
      const res = await finish(runCli(['index', folder.path, '--data-dir', only.path, '--include', '*.md', '*.txt', '--exclude', 'faq.*']));
      assert.equal(res.code, 0, res.err);
      assert.match(res.out, /: 2 documents, 0 failed/);
    } finally {
      await only.cleanup();
    }
  });

  it('`query` answers from the data dir when no server runs', async () => {
    const res = await finish(runCli(['query', 'what happens when a file is deleted', '-k', '2', '--data-dir', data.path, '--json']));
    assert.equal(res.code, 0, res.err);
    const hits = JSON.parse(res.out) as Array<{ metadata: { path: string } }>;
    assert.equal(hits.length, 2);
    assert.equal(hits[0]!.metadata.path, join(folder.path, 'faq.txt'));
  });

  it('`status` lists documents and failures', async () => {
    await writeFile(join(folder.path, 'broken.md'), Buffer.from([0, 1, 2, 3, 0, 0, 7]));
    const indexed = await finish(runCli(['index', folder.path, '--data-dir', data.path]));
    assert.equal(indexed.code, 0, indexed.err);
    assert.match(indexed.out, /1 failed/);
    const res = await finish(runCli(['status', '--data-dir', data.path]));
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /5 \(4 indexed, 0 pending, 1 failed\)/);
    assert.match(res.out, /FAILED .*broken\.md: .*binary/i);
  });

  it('`serve` serves the folder, `query` finds the running server, and SIGTERM stops it cleanly', async () => {
    const server = runCli(['serve', folder.path, '--data-dir', data.path, '--port', '0', '--log-level', 'warn']);
    const url = await server.url;
    const health = await fetch(new URL('/healthz', url));
    assert.equal(health.status, 200);
    const res = await finish(runCli(['query', 'reciprocal rank fusion', '--data-dir', data.path, '--mode', 'bm25']));
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /architecture\.md/);
    await waitFor(async () => (await fetch(new URL('/readyz', url))).status === 200, 10_000);
    const second = await finish(runCli(['serve', folder.path, '--data-dir', data.path, '--port', '0']));
    assert.equal(second.code, 1);
    assert.match(second.err, /in use by another livedex process \(pid \d+\).*`livedex query` and `livedex status` work beside it/);
    const status = await finish(runCli(['status', '--data-dir', data.path]));
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, new RegExp(`${url.replace(/[/.]/g, '\\$&')}[\\s\\S]*ready: true[\\s\\S]*4 indexed`));
    server.proc.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    assert.ok(!existsSync(join(data.path, 'server.json')), 'the server file is removed on shutdown');
  });

  it('`index` shows a progress bar on a terminal', { skip: !existsSync('/usr/bin/script') && 'needs util-linux script for a pseudo-terminal' }, async () => {
    const tty = await tempDir();
    try {
      const command = [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli.ts'), 'index', folder.path, '--data-dir', tty.path]
        .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
        .join(' ');
      const out = execFileSync('script', ['-qec', command, '/dev/null'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
      assert.match(out, /indexing \|[█░]+\| \d+\/\d+ documents · \d+ chunks/);
      assert.match(out, /indexed .* 4 documents/);
    } finally {
      await tty.cleanup();
    }
  });

  it('`serve` shows the first sync as a progress bar on a terminal', { skip: !existsSync('/usr/bin/script') && 'needs util-linux script for a pseudo-terminal' }, async () => {
    const tty = await tempDir();
    const command = [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli.ts'), 'serve', folder.path, '--data-dir', tty.path, '--port', '0']
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    try {
      await waitFor(() => /initial sync done/.test(out) || undefined, 120_000, 50);
      assert.match(out, /indexing \|[█░]+\| \d+\/\d+ documents · \d+ chunks/);
      assert.match(out, /initial sync done: 4 documents indexed/);
    } finally {
      child.kill('SIGKILL');
      await tty.cleanup();
    }
  });

  it('rejects a missing folder and bad arguments with a clear message', async () => {
    const missing = await finish(runCli(['serve', join(folder.path, 'nope'), '--data-dir', data.path]));
    assert.equal(missing.code, 2);
    assert.match(missing.err, /does not exist/);
    const badK = await finish(runCli(['query', 'x', '-k', 'zero', '--data-dir', data.path]));
    assert.notEqual(badK.code, 0);
    assert.match(badK.err, /-k must be an integer/);
  });
});
