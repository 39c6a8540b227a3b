/**
 * The adapters as a consumer sees them: `import … from "livedex/langchain"` and
 * `"livedex/llamaindex"` through package.json `exports` (code and types) of a compiled
 * package, answering from a live livedex without loading the native engine.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const ENGINE = join(ROOT, 'build/livedex-engine.node');

function run(args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    proc.on('error', reject);
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Records every native addon the process opens, then imports the adapters by their package names and queries `url`. */
const PROBE = `
import { createRequire } from 'node:module';
const natives = [];
const dlopen = process.dlopen;
process.dlopen = function (module, filename, ...rest) {
  natives.push(filename);
  return dlopen.call(this, module, filename, ...rest);
};
const [url, control] = process.argv.slice(2);
if (control) createRequire(import.meta.url)(control);
const langchain = await import('livedex/langchain');
const llamaindex = await import('livedex/llamaindex');
const docs = await new langchain.LivedexRetriever({ url, k: 1 }).invoke('otters');
const nodes = await new llamaindex.LivedexRetriever({ url, k: 1 }).retrieve('otters');
console.log(JSON.stringify({ natives, doc: docs[0]?.pageContent, node: nodes[0]?.node.text, path: docs[0]?.metadata.path }));
`;

/** Type-checks against the package's declared types; the expect-error lines fail if the types resolve to `any`. */
const CONSUMER_TS = `
import { LivedexRetriever, LivedexVectorStore, type LivedexDocumentMetadata } from 'livedex/langchain';
import { LivedexRetriever as LlamaRetriever } from 'livedex/llamaindex';
import type { BaseRetriever } from '@langchain/core/retrievers';
import type { BaseRetriever as LlamaBaseRetriever } from '@llamaindex/core/retriever';

export const lc: BaseRetriever<LivedexDocumentMetadata> = new LivedexRetriever({ url: 'http://127.0.0.1:8000', k: 4, mode: 'bm25' });
export const store = new LivedexVectorStore({ url: 'http://127.0.0.1:8000' });
export const li: LlamaBaseRetriever = new LlamaRetriever({ url: 'http://127.0.0.1:8000', filepathGlobpattern: '**/*.md' });
// @ts-expect-error k is a number
export const badK = new LivedexRetriever({ url: 'http://127.0.0.1:8000', k: 'four' });
// @ts-expect-error mode is hybrid, vector or bm25
export const badMode = new LlamaRetriever({ url: 'http://127.0.0.1:8000', mode: 'fuzzy' });
`;

describe('the adapters as package exports', () => {
  let server: TestServer;
  let app: string;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    const docs = await tempDir();
    const data = await tempDir();
    const work = await tempDir('livedex-pkg-');
    cleanups.push(docs.cleanup, data.cleanup, work.cleanup);
    await writeFile(join(docs.path, 'otters.md'), 'Sea otters hold hands while they sleep.');
    server = await startServer(docs.path, { dataDir: data.path });
    cleanups.unshift(() => server.close());

    // A consumer app whose node_modules holds livedex (compiled adapters + the real package.json exports) and the peers.
    app = join(work.path, 'app');
    const pkg = join(app, 'node_modules/livedex');
    await mkdir(pkg, { recursive: true });
    const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
    const { name, type, exports, peerDependencies, peerDependenciesMeta } = manifest;
    await writeFile(join(pkg, 'package.json'), JSON.stringify({ name, type, exports, peerDependencies, peerDependenciesMeta }, null, 2));
    for (const scope of ['@langchain', '@llamaindex']) await symlink(join(ROOT, 'node_modules', scope), join(app, 'node_modules', scope), 'dir');
    await symlink(join(ROOT, 'node_modules/@types'), join(app, 'node_modules/@types'), 'dir');
    const build = await run(
      [TSC, '--outDir', join(pkg, 'dist'), '--rootDir', join(ROOT, 'src'), '--declaration', '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
        '--target', 'ES2022', '--strict', '--skipLibCheck', '--types', 'node', join(ROOT, 'src/adapters/langchain.ts'), join(ROOT, 'src/adapters/llamaindex.ts')],
      { cwd: ROOT },
    );
    assert.equal(build.code, 0, `the adapters compile on their own:\n${build.stdout}${build.stderr}`);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
    await writeFile(join(app, 'probe.mjs'), PROBE);
    await writeFile(join(app, 'consumer.ts'), CONSUMER_TS);
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: ['consumer.ts'] }),
    );
    await server.ready;
    await waitFor(async () => (await retrieve(server.url, { query: 'otters', k: 1 })).length === 1, 120_000);
  });

  after(async () => {
    for (const c of cleanups) await c();
  });

  it('`import { LivedexRetriever } from "livedex/langchain"` and "livedex/llamaindex" answer from a live server, loading no native engine', async () => {
    const res = await run([join(app, 'probe.mjs'), server.url], { cwd: app });
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { natives: string[]; doc: string; node: string; path: string };
    assert.equal(out.doc, 'Sea otters hold hands while they sleep.');
    assert.equal(out.node, out.doc);
    assert.match(out.path, /otters\.md$/);
    assert.deepEqual(out.natives, [], 'no native addon is opened by the adapters or their peers');
  });

  it('the probe does see the engine when something loads it (control)', async () => {
    const res = await run([join(app, 'probe.mjs'), server.url, ENGINE], { cwd: app });
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { natives: string[] };
    assert.deepEqual(out.natives, [ENGINE]);
  });

  it('the `types` conditions give consumers real types (wrong options do not compile)', async () => {
    const res = await run([TSC, '-p', join(app, 'tsconfig.json')], { cwd: app });
    assert.equal(res.code, 0, `consumer type-check:\n${res.stdout}${res.stderr}`);
  });
});
