/**
 * App templates: `livedex init` copies one, `livedex serve --config app.yaml` runs it, and a
 * typo in an app file fails with the file, line and path at fault.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { after, describe, it } from 'node:test';
import { loadConfigFile } from '../../src/config-file.js';
import { listTemplates } from '../../src/init.js';
import { builtinRegistry } from '../../src/plugins.js';
import { FakeDrive } from '../helpers/fake-drive.js';
import { FakeGraph } from '../helpers/fake-graph.js';
import { S3RVER_CREDENTIALS, startFakeS3 } from '../helpers/s3.js';
import { parseContext, startFakeChat, type ChatReply, type SeenChatRequest } from '../helpers/fake-chat.js';
import { post, retrieve, ROOT, runCli, tempDir, waitFor, type ChildServer } from '../helpers/livedex.js';

async function finish(child: ChildServer): Promise<{ code: number | null; out: string; err: string }> {
  const code = await child.exited;
  return { code, out: child.stdout.join(''), err: child.stderr.join('') };
}

/** The built bin, as a fresh clone has it after `npm install`. */
function bin(args: string[], cwd: string, env: Record<string, string> = {}): ChildServer {
  const proc = spawn(process.execPath, [join(ROOT, 'dist/cli.js'), ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const url = new Promise<string>((resolve, reject) => {
    proc.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout.push(c);
      const m = /serving .* at (http:\/\/\S+)/.exec(stdout.join(''));
      if (m) resolve(m[1]!);
    });
    proc.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr.join('')}`)));
  });
  url.catch(() => {});
  proc.stderr.setEncoding('utf8').on('data', (c: string) => stderr.push(c));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  return { proc, url, stdout, stderr, exited };
}

describe('templates and livedex init', () => {
  const cleanups: Array<() => Promise<void>> = [];
  const children: ChildServer[] = [];
  after(async () => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
    for (const c of cleanups) await c();
  });

  it('every template has an app.yaml that validates and a README that says how to run it', async () => {
    const templates = listTemplates();
    assert.ok(templates.some((t) => t.name === 'document-store'));
    for (const t of templates) {
      // Every ${VAR} of a template has a default: it validates with an empty environment.
      await loadConfigFile(join(ROOT, 'templates', t.name, 'app.yaml'), { env: {}, registry: builtinRegistry() });
      const readme = await readFile(join(ROOT, 'templates', t.name, 'README.md'), 'utf8');
      assert.match(readme, new RegExp(`livedex init ${t.name}`), `${t.name}/README.md shows livedex init`);
      assert.match(readme, /livedex serve --config app\.yaml|livedex mcp/, `${t.name}/README.md shows how to run it`);
    }
    const listed = await finish(runCli(['init']));
    assert.equal(listed.code, 0, listed.err);
    for (const t of templates) assert.match(listed.out, new RegExp(`^  ${t.name} `, 'm'));
  });

  it('`livedex init document-store demo && cd demo && livedex serve --config app.yaml` serves the template', async () => {
    assert.ok(existsSync(join(ROOT, 'dist/cli.js')), 'npm install builds dist/');
    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const init = await finish(bin(['init', 'document-store', 'demo'], dir.path));
    assert.equal(init.code, 0, init.err);
    assert.match(init.out, /next:\n {2}cd demo && livedex serve --config app\.yaml/);
    const demo = join(dir.path, 'demo');
    assert.ok(existsSync(join(demo, 'app.yaml')) && existsSync(join(demo, 'docs', 'welcome.md')));

    const again = await finish(bin(['init', 'document-store', 'demo'], dir.path));
    assert.equal(again.code, 2);
    assert.match(again.err, /exists and is not empty/);

    const server = bin(['serve', '--config', 'app.yaml', '--log-level', 'warn'], demo, { LIVEDEX_PORT: '0' });
    children.push(server);
    const url = await server.url;
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200 || undefined, 60_000, 100);
    const hits = await retrieve(url, { query: 'which formats are indexed', k: 1 });
    // `./docs` in an app file means the docs beside the file.
    assert.equal(hits[0]?.metadata.path, join(demo, 'docs', 'welcome.md'));
    assert.ok(existsSync(join(demo, '.livedex', 'store.sqlite')), 'the data dir of the app file, relative to where it runs');
    server.proc.kill('SIGTERM');
    assert.equal(await server.exited, 0, server.stderr.join(''));
  });

  /** A model that answers only from a context block holding `fact`, citing it; otherwise it calls no_answer. */
  const answerFrom = (fact: RegExp, answer: string) => (req: SeenChatRequest): ChatReply => {
    const block = parseContext(req.user).find((b) => fact.test(b.text));
    return block ? { text: `${answer} [${block.ref}]` } : { toolCall: { name: 'no_answer', arguments: '{"reason":"not in the context"}' } };
  };

  for (const [template, question, fact, answer, cited] of [
    ['question-answering', 'How long do refunds take?', /five business days/, 'Refunds take five business days', 'docs/refunds.md'],
    ['adaptive-rag', 'Which plan includes single sign-on?', /Single sign-on \(SSO\)/, 'The Enterprise plan includes SSO', 'docs/plans.md'],
  ] as const) {
    it(`the ${template} template answers with citations from its docs (against a fake chat server)`, async () => {
      const chat = await startFakeChat({ respond: answerFrom(fact, answer), apiKey: 'sk-template' });
      cleanups.push(() => chat.close());
      const dir = await tempDir();
      cleanups.push(dir.cleanup);
      const init = await finish(runCli(['init', template, 'app'], { cwd: dir.path }));
      assert.equal(init.code, 0, init.err);
      const app = join(dir.path, 'app');
      const server = runCli(['serve', '--config', 'app.yaml', '--log-level', 'warn'], {
        cwd: app,
        env: { LIVEDEX_PORT: '0', OPENAI_BASE_URL: chat.url, OPENAI_API_KEY: 'sk-template', LIVEDEX_LLM_MODEL: 'fake-model' },
      });
      children.push(server);
      const url = await server.url;
      await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200 || undefined, 60_000, 100);
      const res = await post<{ response: string; citations: number[]; context_docs: Array<{ metadata: { path: string } }> }>(url, '/v2/answer', { prompt: question, return_context_docs: true });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.match(res.body.response, new RegExp(answer));
      assert.equal(res.body.citations.length, 1);
      assert.equal(res.body.context_docs[res.body.citations[0]! - 1]?.metadata.path, join(app, cited));
      assert.ok(chat.requests.every((r) => r.body.model === 'fake-model'), 'LIVEDEX_LLM_MODEL picks the model');
      server.proc.kill('SIGTERM');
      await server.exited;
    });
  }

  it('the mcp-agent template serves its docs to an MCP client over stdio, from any working directory', async () => {
    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const init = await finish(runCli(['init', 'mcp-agent', 'agent'], { cwd: dir.path }));
    assert.equal(init.code, 0, init.err);
    const appFile = join(dir.path, 'agent', 'app.yaml');
    // A desktop agent starts the command in a directory of its own choosing.
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', import.meta.resolve('tsx'), join(ROOT, 'src/cli.ts'), 'mcp', '--stdio', '--config', appFile, '--log-level', 'warn'],
      cwd: tmpdir(),
      stderr: 'pipe',
    });
    const client = new Client({ name: 'template-test', version: '1.0.0' });
    await client.connect(transport);
    cleanups.push(() => client.close());
    const hit = await waitFor(async () => {
      const res = (await client.callTool({ name: 'retrieve', arguments: { query: 'aurora rollout feature flag', k: 1 } })) as CallToolResult;
      const hits = (res.structuredContent as { hits?: Array<{ metadata: { path: string } }> } | undefined)?.hits ?? [];
      return hits[0]?.metadata.path.endsWith('agent-notes.md') ? hits[0] : undefined;
    }, 60_000, 200);
    assert.equal(hit.value?.metadata.path, join(dir.path, 'agent', 'docs', 'agent-notes.md'));
    assert.ok(existsSync(join(dir.path, 'agent', '.livedex', 'store.sqlite')), 'the data dir beside the app file');
  });

  it('the multi-source template follows a folder, S3, Drive, SharePoint and pushes at once (against loopback fakes)', async () => {
    const s3 = await startFakeS3('team-docs');
    cleanups.push(() => s3.close());
    await s3.put('handbook/leave.txt', 'Parental leave is sixteen weeks at full pay.');
    const drive = new FakeDrive();
    await drive.start();
    cleanups.push(() => drive.close());
    const driveRoot = drive.addFolder('Team');
    drive.addFile('okr.txt', driveRoot, 'The quarterly objective is to halve the onboarding time.');
    const graph = new FakeGraph();
    await graph.start();
    cleanups.push(() => graph.close());
    graph.addFile('runbook.md', graph.addFolder('Ops'), '# Runbook\nRestart the ingest worker when the backlog passes ten thousand.');

    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const init = await finish(runCli(['init', 'multi-source', 'team'], { cwd: dir.path }));
    assert.equal(init.code, 0, init.err);
    const app = join(dir.path, 'team');
    const keyFile = join(dir.path, 'indexer.json');
    await writeFile(keyFile, JSON.stringify(drive.serviceAccount()));
    const server = runCli(['serve', '--config', 'app.yaml', '--log-level', 'warn'], {
      cwd: app,
      env: {
        LIVEDEX_PORT: '0',
        LIVEDEX_POLL_S: '0.5',
        LIVEDEX_S3_BUCKET: 'team-docs',
        AWS_ENDPOINT_URL_S3: s3.endpoint,
        AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.access_key_id,
        AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secret_access_key,
        AWS_REGION: 'us-east-1',
        GOOGLE_APPLICATION_CREDENTIALS: keyFile,
        LIVEDEX_GDRIVE_FOLDER_ID: driveRoot,
        LIVEDEX_GDRIVE_URL: drive.url,
        LIVEDEX_SHAREPOINT_SITE: 'contoso.sharepoint.com/sites/eng',
        LIVEDEX_SHAREPOINT_PATH: '/Ops',
        LIVEDEX_GRAPH_URL: graph.url,
        AZURE_AUTHORITY_HOST: graph.url,
        AZURE_TENANT_ID: graph.tenant,
        AZURE_CLIENT_ID: graph.clientId,
        AZURE_CLIENT_SECRET: graph.clientSecret,
      },
    });
    children.push(server);
    const url = await server.url;
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200 || undefined, 120_000, 200);
    const top = async (query: string) => String((await retrieve(url, { query, k: 1 }))[0]?.metadata.path ?? '');
    assert.equal(await top('pelican harbour wall'), join(app, 'docs', 'local-readme.md'));
    assert.equal(await top('parental leave sixteen weeks'), 's3://team-docs/handbook/leave.txt');
    assert.equal(await top('halve the onboarding time'), 'gdrive://Team/okr.txt');
    assert.equal(await top('restart the ingest worker backlog'), 'sharepoint://contoso.sharepoint.com/sites/eng/Documents/Ops/runbook.md');
    const pushed = await fetch(`${url}/v1/documents/notes/standup.txt`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'The standup moves to half past nine.' });
    assert.equal(pushed.status, 202);
    await waitFor(async () => (await top('standup half past nine')).includes('standup.txt') || undefined, 30_000);
    const status = (await (await fetch(`${url}/v1/status`)).json()) as { sources: Array<{ id: string; state: string }> };
    assert.deepEqual(status.sources.map((s) => s.id).sort(), ['fs:' + join(app, 'docs'), 'gdrive', 'push', 's3', 'sharepoint'].sort());
    assert.ok(status.sources.every((s) => s.state !== 'error'), JSON.stringify(status.sources));
    server.proc.kill('SIGTERM');
    await server.exited;
  });

  it('an app file with a typo fails with the file, the line and the path inside it', async () => {
    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    const file = join(dir.path, 'app.yaml');
    await writeFile(file, 'port: 0\nsources:\n  - fs:\n      path: .\n      includes: ["*.md"]\n');
    const res = await finish(runCli(['serve', '--config', file, '--data-dir', join(dir.path, 'data')]));
    assert.equal(res.code, 2, res.err);
    assert.match(res.err, /app\.yaml:5:7: sources\[0\]\.fs: Unrecognized key: "includes"/);
  });

  it('flags given on the command line override the app file; APP_CONFIG names it', async () => {
    const dir = await tempDir();
    cleanups.push(dir.cleanup);
    await writeFile(join(dir.path, 'note.md'), '# Note\n\nThe heron stands still in the shallow water.');
    const file = join(dir.path, 'app.yaml');
    await writeFile(file, `data_dir: ${join(dir.path, 'from-file')}\nport: 1\nsources:\n  - fs: { path: ${dir.path}, include: ["*.md"] }\n`);
    const server = runCli(['serve', '--port', '0', '--data-dir', join(dir.path, 'from-flag'), '--log-level', 'warn'], { env: { APP_CONFIG: file } });
    children.push(server);
    const url = await server.url;
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200 || undefined, 60_000, 100);
    const hits = await retrieve(url, { query: 'heron', k: 1 });
    assert.match(String(hits[0]?.metadata.path), /note\.md$/);
    assert.ok(existsSync(join(dir.path, 'from-flag', 'store.sqlite')));
    assert.ok(!existsSync(join(dir.path, 'from-file')));
    server.proc.kill('SIGTERM');
    await server.exited;
  });
});
