/**
 * Hostile filters and globs against the real CLI server: every one is answered (200) or
 * refused (400) within 1 s of the server's CPU, the process never dies, and `/healthz` is
 * answered throughout (the server's event loop never stalls).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runCli, tempDir, waitFor, type ChildServer } from '../helpers/livedex.js';

const DOCUMENTS = 3000;
const TOKEN = 'hostile-filters-read-token';
const CPU_LIMIT_MS = 1000;
const HEALTHZ_LIMIT_MS = 100;
const TICK_MS = 1000 / 100; // /proc/<pid>/stat counts in clock ticks (USER_HZ, 100 on Linux)

/** User + system CPU time of a process, all its threads (or its main thread only), from /proc (ms, tick resolution). */
function cpuMs(pid: number, mainThread = false): number {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; field?: string } } & Record<string, unknown>;
  cpuMs: number;
  wallMs: number;
}

const HEALTHZ_PATH = '/healthz';

/**
 * Polls `/healthz` while the hostile requests run. A poll counts as a stall only for the part
 * of its wait during which the server's main thread was burning CPU: on a loaded machine a
 * probe may wait because that thread was not scheduled at all (while other processes, or the
 * server's own worker and GC threads, had the cores), which says nothing about its event
 * loop; a main thread that had the CPU and still did not answer was stalled.
 */
class HealthProbe {
  readonly stalls: number[] = [];
  failures = 0;
  #stop = false;
  #done: Promise<void> | null = null;
  constructor(
    readonly url: string,
    readonly pid: number,
  ) {}

  start(): void {
    this.#done = (async () => {
      while (!this.#stop) {
        const cpu0 = cpuMs(this.pid, true);
        const t0 = performance.now();
        try {
          const res = await fetch(new URL(HEALTHZ_PATH, this.url), { signal: AbortSignal.timeout(30_000) });
          await res.arrayBuffer();
          if (res.status !== 200) this.failures++;
        } catch {
          this.failures++;
        }
        const wall = performance.now() - t0;
        const cpu = cpuMs(this.pid, true) - cpu0;
        // Tick resolution: a probe that saw one tick of CPU may have been idle for most of it.
        this.stalls.push(Math.min(wall, Math.max(0, cpu - TICK_MS)));
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }

  get worst(): number {
    return Math.max(0, ...this.stalls);
  }
}

describe('hostile filters and globs (real CLI server, 3,000 documents)', () => {
  let folder: { path: string; cleanup(): Promise<void> };
  let data: { path: string; cleanup(): Promise<void> };
  let child: ChildServer;
  let url: string;
  let probe: HealthProbe;
  const answers: { what: string; answer: Answer }[] = [];

  const headers = { authorization: `Bearer ${TOKEN}` };

  async function send(what: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Answer> {
    const pid = child.proc.pid!;
    const cpu0 = cpuMs(pid);
    const t0 = performance.now();
    const res = await fetch(new URL(path, url), {
      method,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    const answer: Answer = {
      status: res.status,
      body: text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : { text },
      wallMs: performance.now() - t0,
      cpuMs: cpuMs(pid) - cpu0,
    };
    answers.push({ what, answer });
    assert.ok(answer.status === 200 || answer.status === 400, `${what}: answered ${answer.status} ${text.slice(0, 300)}`);
    assert.ok(answer.cpuMs <= CPU_LIMIT_MS, `${what}: took ${answer.cpuMs} ms of server CPU`);
    assert.equal(child.proc.exitCode, null, `${what}: the server died: ${child.stderr.join('').slice(-2000)}`);
    return answer;
  }

  function assertRefused(answer: Answer, field: string, limit: RegExp): void {
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.equal(answer.body.error?.code, 'invalid_filter');
    assert.equal(answer.body.error?.field, field);
    assert.match(answer.body.error?.message ?? '', limit);
  }

  before(async () => {
    folder = await tempDir('livedex-hostile-');
    data = await tempDir('livedex-hostile-data-');
    for (let d = 0; d < 30; d++) await mkdir(join(folder.path, `section-${d}`));
    const writes: Promise<void>[] = [];
    for (let i = 0; i < DOCUMENTS; i++) {
      // Long lower-case names: every `[a-z]` of the hostile globs has plenty to try.
      writes.push(writeFile(join(folder.path, `section-${i % 30}`, `meeting-notes-about-the-quarterly-plan-${i}.md`), `# Notes ${i}\n\nThe harbor lantern number ${i} was lit at dusk.\n`));
      if (writes.length >= 200) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    const tokens = join(data.path, 'tokens.json');
    await writeFile(tokens, JSON.stringify([{ token: TOKEN, scope: 'read', name: 'reader' }]));
    child = runCli(['serve', folder.path, '--data-dir', join(data.path, 'store'), '--port', '0', '--log-level', 'warn', '--tokens-file', tokens]);
    url = await child.url;
    await waitFor(async () => {
      const res = await fetch(new URL('/v1/statistics', url), { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
      const stats = (await res.json()) as { file_count?: number };
      return (stats.file_count ?? 0) >= DOCUMENTS ? stats : null;
    }, 600_000, 250);
    probe = new HealthProbe(url, child.proc.pid!);
    probe.start();
  });

  after(async () => {
    await probe?.stop();
    const worst = answers.reduce((w, a) => (a.answer.cpuMs > w.answer.cpuMs ? a : w), answers[0]!);
    const slowest = answers.reduce((w, a) => (a.answer.wallMs > w.answer.wallMs ? a : w), answers[0]!);
    if (worst) {
      console.log(
        `hostile filters: ${answers.length} requests; worst server CPU ${worst.answer.cpuMs} ms (${worst.what}); ` +
          `slowest answer ${slowest.answer.wallMs.toFixed(0)} ms wall (${slowest.what}); ` +
          `worst /healthz stall ${probe.worst.toFixed(0)} ms over ${probe.stalls.length} probes`,
      );
    }
    child?.proc.kill('SIGTERM');
    await child?.exited;
    await folder?.cleanup();
    await data?.cleanup();
  });

  it('refuses pad_left to 300,000,000 on GET /v1/retrieve with a 400 naming the limit, before running it', async () => {
    const filter = "length(pad_left('x', `300000000`, 'a')) > `0`";
    const answer = await send('pad_left 3e8 (GET /v1/retrieve)', 'GET', `/v1/retrieve?query=x&metadata_filter=${encodeURIComponent(filter)}`);
    assertRefused(answer, 'metadata_filter', /limits\.filter_max_string_chars/);
  });

  it('refuses the same filter on /v2/list_documents', async () => {
    const answer = await send('pad_left 3e8 (/v2/list_documents)', 'POST', '/v2/list_documents', { metadata_filter: "length(pad_left('x', `300000000`, 'a')) > `0`" });
    assertRefused(answer, 'metadata_filter', /limits\.filter_max_string_chars/);
  });

  it('refuses it through the MCP retrieve tool of the official client with a read-only token', async () => {
    const client = new Client({ name: 'hostile', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', url), { requestInit: { headers } }));
    try {
      const cpu0 = cpuMs(child.proc.pid!);
      const res = (await client.callTool({ name: 'retrieve', arguments: { query: 'x', metadata_filter: "length(pad_left('x', `300000000`, 'a')) > `0`" } })) as CallToolResult;
      const cpu = cpuMs(child.proc.pid!) - cpu0;
      assert.equal(res.isError, true);
      const text = res.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
      assert.match(text, /limits\.filter_max_string_chars/);
      assert.ok(cpu <= CPU_LIMIT_MS, `MCP retrieve took ${cpu} ms of server CPU`);
      // The session still works: the server lives and answers the next call.
      const ok = (await client.callTool({ name: 'retrieve', arguments: { query: 'harbor lantern', k: 1 } })) as CallToolResult;
      assert.ok(!ok.isError);
    } finally {
      await client.close();
    }
    assert.equal(child.proc.exitCode, null);
  });

  it("answers globmatch('*a*a*…ax', pad_right('b', `60`, 'a')) at once, with 10 and with 11 stars", async () => {
    for (const stars of [10, 11]) {
      const pattern = '*a'.repeat(stars) + 'x';
      const answer = await send(`globmatch ${stars}×*a`, 'POST', '/v1/retrieve', { query: 'x', metadata_filter: `globmatch('${pattern}', pad_right('b', \`60\`, 'a'))` });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body, []);
    }
  });

  it('answers the **/*[a-z]*…! globs over 3,000 documents, with 6 and with 8 classes, on both routes', async () => {
    for (const classes of [6, 8]) {
      const glob = '**/' + '*[a-z]'.repeat(classes) + '*!';
      const hits = await send(`glob ${classes}×*[a-z] retrieve`, 'POST', '/v1/retrieve', { query: 'harbor lantern', filepath_globpattern: glob });
      assert.equal(hits.status, 200, JSON.stringify(hits.body));
      assert.deepEqual(hits.body, []);
      const docs = await send(`glob ${classes}×*[a-z] list`, 'POST', '/v2/list_documents', { filepath_globpattern: glob });
      assert.equal(docs.status, 200, JSON.stringify(docs.body));
      assert.deepEqual(docs.body, []);
    }
    // The same shape that does match: all 3,000 documents, still linear.
    const all = await send('glob 8×*[a-z] matching', 'POST', '/v2/list_documents', { filepath_globpattern: '**/' + '*[a-z]'.repeat(8) + '*.md' });
    assert.equal(all.status, 200);
    assert.equal((all.body as unknown as unknown[]).length, DOCUMENTS);
  });

  it('refuses 1,000 nested length() calls, and 100 within the length limit, naming the limit', async () => {
    const nested = (n: number) => 'length('.repeat(n) + 'path' + ')'.repeat(n) + ' > `0`';
    assertRefused(await send('1000 nested length()', 'POST', '/v1/retrieve', { query: 'x', metadata_filter: nested(1000) }), 'metadata_filter', /limits\.filter_max_chars/);
    assertRefused(await send('100 nested length()', 'POST', '/v1/retrieve', { query: 'x', metadata_filter: nested(100) }), 'metadata_filter', /limits\.filter_max_depth/);
  });

  it('refuses a 60 KB glob with a 400 naming glob_max_chars, as a path glob and inside globmatch()', async () => {
    const glob = '*a'.repeat(30_000);
    assertRefused(await send('60 KB filepath_globpattern', 'POST', '/v1/retrieve', { query: 'x', filepath_globpattern: glob }), 'filepath_globpattern', /limits\.glob_max_chars/);
    assertRefused(await send('60 KB glob on list_documents', 'POST', '/v2/list_documents', { filepath_globpattern: glob }), 'filepath_globpattern', /limits\.glob_max_chars/);
    const built = "globmatch(replace(pad_left('x', `30000`, 'x'), 'x', '*a'), path)";
    assertRefused(await send('60 KB glob built by the filter', 'POST', '/v1/retrieve', { query: 'x', metadata_filter: built }), 'metadata_filter', /limits\.glob_max_chars/);
  });

  it('refuses growth the filter builds while running: join, replace, split, flattening, trims over long runs', async () => {
    const growing = [
      "length(join('', [pad_left('a', `60000`, 'b'), pad_left('a', `60000`, 'b')])) > `0`",
      "length(replace(pad_left('a', `60000`, 'b'), 'b', 'cccc')) > `0`",
      "length(replace(path, 'e', 'x', `1000000000`)) > `0`",
      "length(split(pad_left('a', `60000`, 'b'), 'b')) > `0`",
      "length(map(&[path, path, path, path, path, path, path, path][], split(pad_left('a', `9000`, 'b'), 'b'))[]) > `0`",
      "length(trim_right(pad_left('a', `60000`, 'x'), 'x')) > `0`",
      "length(map(&pad_left(@, `60000`, 'z'), split(pad_left('a', `500`, 'b'), 'b'))) > `0`",
    ];
    for (const filter of growing) {
      const answer = await send(`growth: ${filter.slice(0, 60)}`, 'POST', '/v1/retrieve', { query: 'harbor', metadata_filter: filter });
      if (answer.status === 400) assert.match(answer.body.error?.message ?? '', /limits\.filter_/);
    }
  });

  it('answers or refuses every generated filter and glob within its budget (fast-check, seeded)', async () => {
    const width = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constantFrom(65_536, 70_000, 1_000_000, 300_000_000));
    const str = fc.oneof(fc.constantFrom('path', "'a'", "'x'", "'*a*a*a'", 'title'), width.map((w) => `pad_left('b', \`${w}\`, 'a')`));
    const globText = fc.array(fc.constantFrom('*', '**', '?', 'a', '[a-z]', '[!x]', '/', '{a,b}', '.md', '!', '\\', '[', '{'), { maxLength: 40 }).map((t) => t.join(''));
    const leaf = fc.oneof(
      globText.map((g) => `globmatch('${g.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}', path)`),
      str.map((s) => `length(${s}) > \`3\``),
      fc.tuple(str, str).map(([a, b]) => `contains(${a}, ${b})`),
      fc.tuple(str, width).map(([s, w]) => `length(pad_right(${s}, \`${w}\`, '*')) > \`0\``),
      fc.tuple(str, str).map(([a, b]) => `length(join(${b}, [${a}, ${a}, ${a}])) > \`1\``),
      fc.integer({ min: 1, max: 400 }).map((n) => 'length('.repeat(n) + 'path' + ')'.repeat(n)),
      fc.tuple(str, str).map(([a, b]) => `length(split(${a}, ${b})) > \`1\``),
      fc.tuple(str, fc.integer({ min: 1, max: 12 })).map(([s, n]) => `length(${'sort(split('.repeat(1)}${s}, ''))${'[]'.repeat(n)}) > \`0\``),
    );
    const filter = fc.array(leaf, { minLength: 1, maxLength: 6 }).chain((leaves) => fc.constantFrom(' && ', ' || ').map((op) => leaves.join(op)));
    const request = fc.record({ metadata_filter: fc.option(filter, { nil: undefined }), filepath_globpattern: fc.option(globText, { nil: undefined }), list: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(request, async ({ metadata_filter, filepath_globpattern, list }) => {
        const body = { metadata_filter, filepath_globpattern };
        const answer = list
          ? await send(`generated list ${JSON.stringify(body).slice(0, 120)}`, 'POST', '/v2/list_documents', body)
          : await send(`generated retrieve ${JSON.stringify(body).slice(0, 120)}`, 'POST', '/v1/retrieve', { query: 'harbor lantern', k: 3, ...body });
        if (answer.status === 400) assert.equal(answer.body.error?.code, 'invalid_filter');
      }),
      { numRuns: 60, seed: 17, endOnFailure: true },
    );
  });

  it('kept /healthz answering throughout, and the process alive', async () => {
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(child.proc.exitCode, null);
    assert.equal(probe.failures, 0);
    assert.ok(probe.stalls.length >= 10, `only ${probe.stalls.length} health probes ran`);
    assert.ok(probe.worst <= HEALTHZ_LIMIT_MS, `/healthz stalled ${probe.worst.toFixed(0)} ms (the server had the CPU and did not answer)`);
  });
});
