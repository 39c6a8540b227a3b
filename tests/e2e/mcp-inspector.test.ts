/**
 * The MCP Inspector's CLI against a running `livedex serve`: it lists the tools (schemas
 * portable under `--strict`) and calls `retrieve`. The Inspector needs Node ≥ 22.19 while
 * livedex runs on Node 20, so the test installs a pinned Node 22 (npm's `node` package ships
 * the binary) and a pinned Inspector into a cache outside the repo, once.
 * `LIVEDEX_INSPECTOR_DIR` moves the cache; `LIVEDEX_SKIP_INSPECTOR=1` skips the suite (offline).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { runCli, tempDir, waitFor, type ChildServer } from '../helpers/livedex.js';

const INSPECTOR_VERSION = '2.12.0';
const NODE_VERSION = '22.23.3';
const CACHE = process.env.LIVEDEX_INSPECTOR_DIR ?? join(homedir(), '.cache', 'livedex', 'mcp-inspector');
const NODE_BIN = join(CACHE, 'node_modules', '.bin', 'node');
const INSPECTOR = join(CACHE, 'node_modules', '@modelcontextprotocol', 'inspector');
const LAUNCHER = join(INSPECTOR, 'clients', 'launcher', 'build', 'index.js');

function installedVersion(): string | null {
  try {
    return (JSON.parse(readFileSync(join(INSPECTOR, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
}

/** Installs Node 22 and the Inspector into the cache unless the pinned versions are there. */
async function ensureInspector(): Promise<void> {
  if (installedVersion() === INSPECTOR_VERSION && existsSync(NODE_BIN)) return;
  await mkdir(CACHE, { recursive: true });
  const args = ['install', '--prefix', CACHE, '--no-audit', '--no-fund', '--loglevel=error', `node@${NODE_VERSION}`, `@modelcontextprotocol/inspector@${INSPECTOR_VERSION}`];
  const code = await new Promise<number | null>((resolve, reject) => {
    const npm = spawn('npm', args, { cwd: CACHE, stdio: ['ignore', 'inherit', 'inherit'] });
    npm.on('error', reject);
    npm.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`npm ${args.join(' ')} failed (${code}); set LIVEDEX_SKIP_INSPECTOR=1 to skip this suite offline`);
}

interface InspectorRun {
  code: number;
  stdout: string;
  stderr: string;
}

function inspector(args: string[], catalog: string): Promise<InspectorRun> {
  return new Promise((resolve) => {
    execFile(NODE_BIN, [LAUNCHER, '--cli', ...args], { env: { ...process.env, MCP_CATALOG_PATH: catalog }, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the MCP Inspector CLI against a running livedex', { skip: process.env.LIVEDEX_SKIP_INSPECTOR === '1' }, () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let child: ChildServer;
  let endpoint: string;
  let catalog: string;

  before(async () => {
    folder = await tempDir();
    data = await tempDir();
    catalog = join(data.path, 'inspector-catalog.json');
    await writeFile(join(folder.path, 'notes.txt'), 'The quarterly report mentions the lighthouse budget.\n');
    await writeFile(join(folder.path, 'guide.md'), '# Guide\n\nThe harbor master keeps a ledger of every ship.\n');
    await ensureInspector();
    child = runCli(['serve', folder.path, '--data-dir', join(data.path, 'index'), '--port', '0', '--log-level', 'warn']);
    const url = await child.url;
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 60_000, 100);
    endpoint = `${url}/mcp`;
  });

  after(async () => {
    if (child && child.proc.exitCode === null) {
      child.proc.kill('SIGTERM');
      await child.exited;
    }
    await folder?.cleanup();
    await data?.cleanup();
  });

  it(`runs Inspector ${INSPECTOR_VERSION} under Node ${NODE_VERSION}`, async () => {
    const res = await new Promise<string>((resolve, reject) => execFile(NODE_BIN, ['--version'], (err, out) => (err ? reject(err) : resolve(out))));
    assert.equal(res.trim(), `v${NODE_VERSION}`);
    assert.equal(installedVersion(), INSPECTOR_VERSION);
  });

  it('lists the tools, with schemas free of portability problems (--strict)', async () => {
    const run = await inspector([endpoint, '--transport', 'http', '--method', 'tools/list', '--strict'], catalog);
    assert.equal(run.code, 0, run.stderr);
    const { tools } = JSON.parse(run.stdout) as { tools: { name: string; inputSchema: { required?: string[] } }[] };
    const names = tools.map((t) => t.name).sort();
    assert.deepEqual(names, ['get_document', 'index_status', 'inputs_query', 'list_documents', 'retrieve', 'retrieve_query', 'statistics', 'statistics_query']);
    assert.deepEqual(tools.find((t) => t.name === 'retrieve')!.inputSchema.required, ['query']);
    assert.doesNotMatch(run.stderr, /Warning|Error:/, run.stderr);
  });

  it('calls retrieve: the hit names its path and when it was modified and indexed', async () => {
    const run = await inspector([endpoint, '--transport', 'http', '--method', 'tools/call', '--tool-name', 'retrieve', '--tool-arg', 'query=lighthouse budget', '--tool-arg', 'k=1'], catalog);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { isError?: boolean; content: { type: string; text: string }[]; structuredContent: { hits: { metadata: Record<string, unknown> }[] } };
    assert.notEqual(result.isError, true);
    const hits = result.structuredContent.hits;
    assert.equal(hits.length, 1);
    assert.equal(hits[0]!.metadata.path, join(folder.path, 'notes.txt'));
    assert.equal(typeof hits[0]!.metadata.modified_at, 'number');
    assert.equal(typeof hits[0]!.metadata.indexed_at, 'number');
    assert.match(result.content[0]!.text, /lighthouse budget/);
  });

  it('a bad argument comes back as a tool error naming the field', async () => {
    const run = await inspector([endpoint, '--transport', 'http', '--method', 'tools/call', '--tool-name', 'retrieve', '--tool-arg', 'query=x', '--tool-arg', 'k=0'], catalog);
    assert.notEqual(run.code, 0);
    const result = JSON.parse(run.stdout) as { isError: boolean; content: { text: string }[] };
    assert.equal(result.isError, true);
    assert.match(result.content[0]!.text, /field: k\): k must be an integer ≥ 1/);
  });
});
