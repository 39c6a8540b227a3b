/**
 * Code written for Pathway's server works unchanged: LangChain's `PathwayVectorClient`
 * (langchain-community) and LlamaIndex's `PathwayRetriever` (llama-index-retrievers-pathway),
 * pip-installed into a venv cached outside the repo, query a live livedex.
 *
 * Skips (with the reason) where Python 3 with venv and pip is missing, or when
 * LIVEDEX_PYCLIENTS=skip. The venv lives in `$LIVEDEX_PYCLIENTS_DIR`, else
 * `${XDG_CACHE_HOME:-~/.cache}/livedex/pyclients/<hash of the pins>`: built on the first
 * run (about a minute), reused after.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ROOT, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

/** The clients, at versions known to work; a change of pins (or of the lock) gets a fresh venv. */
const PINS = ['langchain-community==0.4.2', 'langchain-core==1.7.2', 'llama-index-retrievers-pathway==0.6.0', 'llama-index-core==0.14.25'];
/** Everything they pull in, as resolved on Python 3.11: pip then has nothing to search. */
const LOCK = join(ROOT, 'tests/fixtures/pathway-clients.requirements.txt');
const SCRIPT = join(ROOT, 'tests/fixtures/pathway-clients.py');

const OTTERS = 'Sea otters hold hands while they sleep so that they do not drift apart.';
const KANGAROOS = 'Kangaroos carry their young in a pouch until the joey can hop.';
const VOLCANO = 'A volcano erupts when magma rises through the crust.';

/** The Python to build the venv with, or why there is none. */
function findPython(): { python: string } | { skip: string } {
  if (process.env.LIVEDEX_PYCLIENTS === 'skip') return { skip: 'LIVEDEX_PYCLIENTS=skip' };
  for (const python of ['python3', 'python']) {
    const probe = spawnSync(python, ['-c', 'import sys, venv, ensurepip; print(sys.version_info[0])'], { encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout.trim() === '3') return { python };
  }
  return { skip: 'no Python 3 with venv and pip on PATH (install python3 and python3-venv to run this test)' };
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONDONTWRITEBYTECODE: '1' } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    proc.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The cached venv's python, building the venv first when it is missing or half-built. */
async function clientsVenv(python: string): Promise<{ bin: string; installedMs: number | null }> {
  const version = spawnSync(python, ['-c', 'import sys; print(sys.version)'], { encoding: 'utf8' }).stdout.trim();
  const key = createHash('sha256').update(`${version}\n${PINS.join('\n')}\n${await readFile(LOCK, 'utf8')}`).digest('hex').slice(0, 12);
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const dir = process.env.LIVEDEX_PYCLIENTS_DIR || join(cache, 'livedex', 'pyclients', key);
  const bin = join(dir, process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python');
  const marker = join(dir, '.livedex-installed');
  if (existsSync(marker)) return { bin, installedMs: null };
  const started = performance.now();
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const venv = await run(python, ['-m', 'venv', dir], 120_000);
  assert.equal(venv.code, 0, `python -m venv ${dir} failed:\n${venv.stderr}`);
  let pip = await run(bin, ['-m', 'pip', 'install', '--no-input', '-q', '-c', LOCK, ...PINS], 15 * 60_000);
  // Another Python may lack wheels for some locked version: let pip resolve around the direct pins.
  if (pip.code !== 0) pip = await run(bin, ['-m', 'pip', 'install', '--no-input', '-q', ...PINS], 15 * 60_000);
  assert.equal(pip.code, 0, `pip install ${PINS.join(' ')} failed (is PyPI reachable?):\n${pip.stderr.slice(-3000)}`);
  await writeFile(marker, `${PINS.join('\n')}\n`);
  return { bin, installedMs: performance.now() - started };
}

interface ClientsOutput {
  lc_search: Array<{ text: string; path: string }>;
  lc_scored: Array<{ text: string; dist: number }>;
  lc_filtered: string[];
  lc_retriever: string[];
  lc_statistics: { file_count: number; last_modified: number | null; last_indexed: number | null };
  lc_inputs: string[];
  lc_host_port: string[];
  li_nodes: Array<{ text: string; score: number; path: string }>;
  li_url: string[];
}

const found = findPython();

describe("Pathway's Python clients against livedex", { skip: 'skip' in found ? found.skip : false, timeout: 20 * 60_000 }, () => {
  let server: TestServer;
  let bin: string;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    const venv = await clientsVenv((found as { python: string }).python);
    bin = venv.bin;
    if (venv.installedMs !== null) console.log(`# built the Python clients venv in ${(venv.installedMs / 1000).toFixed(1)} s (reused from now on)`);
    const docs = await tempDir();
    const data = await tempDir();
    cleanups.push(docs.cleanup, data.cleanup);
    await mkdir(join(docs.path, 'animals'));
    await mkdir(join(docs.path, 'geology'));
    await writeFile(join(docs.path, 'animals/otters.md'), OTTERS);
    await writeFile(join(docs.path, 'animals/kangaroos.txt'), KANGAROOS);
    await writeFile(join(docs.path, 'geology/volcano.txt'), VOLCANO);
    server = await startServer(docs.path, { dataDir: data.path });
    cleanups.unshift(() => server.close());
    await server.ready;
    await waitFor(async () => (await retrieve(server.url, { query: 'otters kangaroos volcano', k: 3 })).length === 3, 120_000);
  });

  after(async () => {
    for (const c of cleanups) await c();
  });

  it('PathwayVectorClient and PathwayRetriever, unchanged, get the expected documents', async () => {
    const res = await run(bin, [SCRIPT, server.url], 120_000);
    assert.equal(res.code, 0, `the Python clients failed:\n${res.stderr.slice(-3000)}`);
    const out = JSON.parse(res.stdout.trim().split('\n').at(-1)!) as ClientsOutput;

    // LangChain's PathwayVectorClient
    assert.deepEqual(out.lc_search.map((d) => d.text), [OTTERS]);
    assert.match(out.lc_search[0]!.path, /animals\/otters\.md$/);
    assert.equal(out.lc_scored.length, 2);
    assert.equal(out.lc_scored[0]!.text, KANGAROOS);
    assert.ok(out.lc_scored[0]!.dist <= out.lc_scored[1]!.dist, 'scores are dist, ascending');
    assert.equal(out.lc_filtered.length, 1, 'the JMESPath filter reaches the server');
    assert.match(out.lc_filtered[0]!, /geology\/volcano\.txt$/);
    assert.deepEqual(out.lc_retriever, [VOLCANO]);
    assert.equal(out.lc_statistics.file_count, 3);
    assert.equal(typeof out.lc_statistics.last_indexed, 'number');
    assert.equal(out.lc_inputs.length, 2, '/v1/inputs with a glob');
    assert.ok(out.lc_inputs.every((p) => p.endsWith('.txt')));
    assert.deepEqual(out.lc_host_port, [VOLCANO]);

    // LlamaIndex's PathwayRetriever
    assert.equal(out.li_nodes.length, 2);
    assert.equal(out.li_nodes[0]!.text, OTTERS);
    assert.match(out.li_nodes[0]!.path, /animals\/otters\.md$/);
    assert.equal(out.li_nodes[0]!.score, 1, 'score = 1 − dist, and the best hybrid hit has dist 0');
    assert.ok(out.li_nodes[0]!.score >= out.li_nodes[1]!.score);
    assert.deepEqual(out.li_url, [KANGAROOS]);
  });
});
