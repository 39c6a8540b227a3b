/**
 * Answers over the live index (issue 6): /v2/answer with citations, filters and context docs,
 * adaptive RAG against a fixed k, SSE streaming, the OpenAI-compatible endpoint through the
 * official client, summaries, and what happens without a model or with a failing one. The chat
 * model is a scripted fake on 127.0.0.1 that answers only from the context it was sent.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { parseContext, startFakeChat, type ChatReply, type FakeChat, type SeenChatRequest } from '../helpers/fake-chat.js';
import { post, runCli, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const BIRDS = ['Heron', 'Kestrel', 'Osprey', 'Plover', 'Curlew', 'Dunlin', 'Merlin', 'Shrike', 'Avocet', 'Bittern', 'Godwit', 'Lapwing', 'Puffin', 'Redstart', 'Siskin', 'Twite', 'Wryneck', 'Fulmar', 'Gannet', 'Linnet'];
const TEAMS = ['platform', 'billing', 'search', 'mobile', 'data'];
const codeOf = (bird: string) => `${bird.toUpperCase()}-${1000 + bird.length * 37 + bird.charCodeAt(0)}`;
const question = (bird: string) => `What is the launch code of Project ${bird}?`;

/** The fake model: answers, citing the block, only when the block with the launch code is in its context. */
function script(req: SeenChatRequest): ChatReply {
  const summary = /^Summarize/m.test(req.messages[0]?.content ?? '');
  if (summary) return { text: `Summary of ${req.user.split('\n\n').length} texts: ${req.user.slice(0, 40)}` };
  // The question follows the context, which may quote other questions.
  const bird = /Project (\w+)\?/.exec(req.user.slice(req.user.lastIndexOf('Question:')))?.[1];
  const block = parseContext(req.user).find((b) => bird && b.text.includes(`The launch code of Project ${bird} is `));
  if (block) {
    const code = /launch code of Project \w+ is ([A-Z]+-\d+)/.exec(block.text)![1]!;
    const text = `The launch code of Project ${bird} is ${code} [${block.ref}].`;
    return { text: req.jsonMode ? JSON.stringify({ answer: text }) : text };
  }
  if (req.jsonMode) return { text: JSON.stringify({ answer: null }) };
  return { toolCall: { name: 'no_answer', arguments: JSON.stringify({ reason: 'not in the context' }) } };
}

interface AnswerBody {
  response: string;
  context_docs?: Array<{ text: string; metadata: { path: string }; dist: number; ref: number }>;
  citations: number[];
  answered: boolean;
  usage: { prompt_tokens: number; completion_tokens: number; calls: number };
}

describe('answers', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let fake: FakeChat;
  const servers: TestServer[] = [];
  let adaptive: TestServer;
  let fixed: TestServer;
  let json: TestServer;
  let noModel: TestServer;

  const llm = () => ({ openai: { model: 'fake-gpt', base_url: fake.url, api_key: 'sk-test', max_attempts: 3, retry_base_ms: 1, retry_max_ms: 5 } });
  const start = async (name: string, config: Record<string, unknown>) => {
    // Parsing is not under test here: no parse workers, so that four servers start fast.
    const server = await startServer(join(dir.path, 'docs'), { dataDir: join(dir.path, `data-${name}`), config: { sandbox: { enabled: false }, ...config } });
    servers.push(server);
    await server.ready;
    return server;
  };

  before(async () => {
    dir = await tempDir();
    const docs = join(dir.path, 'docs');
    await mkdir(join(docs, 'projects'), { recursive: true });
    await mkdir(join(docs, 'reports'), { recursive: true });
    for (const [i, bird] of BIRDS.entries()) {
      await writeFile(
        join(docs, 'projects', `${bird.toLowerCase()}.md`),
        `# Project ${bird}\n\nProject ${bird} is run by the ${TEAMS[i % TEAMS.length]} team. The launch code of Project ${bird} is ${codeOf(bird)}. It ships after review.\n`,
      );
    }
    // Notes that repeat a project's name and "launch code" without the code outrank its page for
    // every fourth project: those questions need a wider context.
    for (const bird of BIRDS.filter((_, i) => i % 4 === 3)) {
      for (const n of [1, 2]) {
        await writeFile(
          join(docs, 'projects', `${bird.toLowerCase()}-notes-${n}.md`),
          `# Notes ${n} on Project ${bird}\n\nWhat is the launch code of Project ${bird}? Questions about the launch code of Project ${bird} go to the team of Project ${bird}.\n`,
        );
      }
    }
    // Reports name many projects and the words "launch code", never a code: they compete in retrieval.
    for (let w = 0; w < 6; w++) {
      const named = BIRDS.filter((_, i) => (i + w) % 3 === 0).map((b) => `Project ${b}`);
      await writeFile(join(docs, 'reports', `week-${w + 1}.md`), `# Week ${w + 1} status\n\n${named.join(', ')} are on track. The launch code of each project is on its own page, not in this report.\n`);
    }
    fake = await startFakeChat({ respond: script, apiKey: 'sk-test' });
    adaptive = await start('adaptive', { llm: llm() });
    fixed = await start('fixed', { llm: llm(), answer: { strategy: 'fixed', k: 6 } });
    json = await start('json', { llm: llm(), answer: { no_answer_signal: 'json' } });
    noModel = await start('none', {});
  });

  after(async () => {
    for (const s of servers) await s.close();
    await fake?.close();
    await dir?.cleanup();
  });

  it('answers with citations that point at the documents the model saw in its prompt', async () => {
    const seenBefore = fake.requests.length;
    const res = await post<AnswerBody>(adaptive.url, '/v2/answer', { prompt: question('Osprey'), return_context_docs: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(Object.keys(res.body)[0], 'response', 'Pathway shape: response first');
    assert.match(res.body.response, new RegExp(codeOf('Osprey')));
    assert.equal(res.body.answered, true);
    assert.equal(res.body.citations.length, 1);
    const ref = res.body.citations[0]!;
    const cited = res.body.context_docs![ref - 1]!;
    assert.equal(cited.ref, ref);
    assert.match(cited.metadata.path, /projects\/osprey\.md$/);
    // The block the model saw under [ref] is that document, under its path.
    const last = fake.requests.at(-1)!;
    assert.ok(fake.requests.length > seenBefore);
    const block = parseContext(last.user).find((b) => b.ref === ref)!;
    assert.match(block.source, /projects\/osprey\.md/);
    assert.ok(cited.text.includes(block.text) || block.text.includes(cited.text.trim()));
    // Every context doc is what the model saw, in order.
    assert.deepEqual(parseContext(last.user).map((b) => b.ref), res.body.context_docs!.map((d) => d.ref));
    assert.equal(res.body.usage.prompt_tokens, fake.requests.slice(seenBefore).reduce((s, r) => s + r.promptTokens, 0));
  });

  it('returns context_docs only when asked, and answers on the deprecated /v1/pw_ai_answer too', async () => {
    const res = await post<AnswerBody>(adaptive.url, '/v1/pw_ai_answer', { prompt: question('Merlin') });
    assert.equal(res.status, 200);
    assert.match(res.body.response, new RegExp(codeOf('Merlin')));
    assert.equal('context_docs' in res.body, false);
    const withDocs = await post<AnswerBody>(adaptive.url, '/v2/answer', { prompt: question('Merlin'), return_context_docs: 'true', filters: null, model: null });
    assert.ok(withDocs.body.context_docs!.length >= 1);
  });

  it('limits the context to the documents the filters accept', async () => {
    const onlyReports = await post<AnswerBody>(adaptive.url, '/v2/answer', { prompt: question('Heron'), filters: 'globmatch(`**/reports/**`, path)', return_context_docs: true });
    assert.equal(onlyReports.status, 200, JSON.stringify(onlyReports.body));
    assert.ok(onlyReports.body.context_docs!.length > 0);
    for (const d of onlyReports.body.context_docs!) assert.match(d.metadata.path, /\/reports\//);
    assert.equal(onlyReports.body.answered, false);
    assert.deepEqual(onlyReports.body.citations, []);
    for (const r of fake.requests.slice(-onlyReports.body.usage.calls)) assert.ok(!r.user.includes('/projects/'), 'the model never saw a filtered-out document');

    const onlyHeron = await post<AnswerBody>(adaptive.url, '/v2/answer', { prompt: question('Heron'), filters: "globmatch('**/projects/heron.md', path)", return_context_docs: true });
    assert.equal(onlyHeron.body.answered, true);
    assert.deepEqual(onlyHeron.body.citations, [1]);
    assert.deepEqual(onlyHeron.body.context_docs!.map((d) => d.metadata.path.split('/').slice(-2).join('/')), ['projects/heron.md']);
  });

  it('widens the context geometrically until the model answers, and reports every call', async () => {
    const before = fake.requests.length;
    const res = await post<AnswerBody>(adaptive.url, '/v2/answer', { prompt: 'What is the launch code of Project Albatross?' });
    assert.equal(res.status, 200);
    assert.equal(res.body.answered, false);
    assert.equal(res.body.response, 'No information found in the documents.');
    const seen = fake.requests.slice(before);
    assert.deepEqual(seen.map((r) => parseContext(r.user).length), [2, 4, 8, 16]);
    for (const r of seen) assert.deepEqual(r.toolNames, ['no_answer'], 'the no-answer signal is a tool the model can call');
    assert.equal(res.body.usage.calls, 4);
    assert.equal(res.body.usage.prompt_tokens, seen.reduce((s, r) => s + r.promptTokens, 0));
  });

  it('reads "no answer" from JSON mode as well', async () => {
    const before = fake.requests.length;
    const missing = await post<AnswerBody>(json.url, '/v2/answer', { prompt: 'What is the launch code of Project Albatross?' });
    assert.equal(missing.body.answered, false);
    const seen = fake.requests.slice(before);
    assert.ok(seen.length > 1 && seen.every((r) => r.jsonMode && r.toolNames.length === 0));
    const found = await post<AnswerBody>(json.url, '/v2/answer', { prompt: question('Puffin'), return_context_docs: true });
    assert.equal(found.body.answered, true);
    assert.equal(found.body.response, `The launch code of Project Puffin is ${codeOf('Puffin')} [${found.body.citations[0]}].`);
    assert.match(found.body.context_docs![found.body.citations[0]! - 1]!.metadata.path, /puffin\.md$/);
  });

  it('sends fewer prompt tokens with adaptive RAG than with a fixed k = 6 on 20 questions', async () => {
    const run = async (server: TestServer) => {
      const first = fake.requests.length;
      let reported = 0;
      let calls = 0;
      let right = 0;
      for (const bird of BIRDS) {
        const res = await post<AnswerBody>(server.url, '/v2/answer', { prompt: question(bird) });
        assert.equal(res.status, 200);
        if (res.body.response.includes(codeOf(bird))) right++;
        reported += res.body.usage.prompt_tokens;
        calls += res.body.usage.calls;
      }
      const counted = fake.requests.slice(first).reduce((s, r) => s + r.promptTokens, 0);
      assert.equal(reported, counted, 'usage reports what the model counted');
      return { tokens: reported, calls, right };
    };
    const a = await run(adaptive);
    const f = await run(fixed);
    console.log(
      `prompt tokens per answer over ${BIRDS.length} questions: adaptive ${(a.tokens / BIRDS.length).toFixed(0)} (${a.calls} calls, ${a.right} right), ` +
        `fixed k=6 ${(f.tokens / BIRDS.length).toFixed(0)} (${f.calls} calls, ${f.right} right): ${((1 - a.tokens / f.tokens) * 100).toFixed(0)}% fewer`,
    );
    assert.equal(a.right, BIRDS.length, 'adaptive answers every question');
    assert.ok(a.calls > BIRDS.length, 'some questions needed a wider context');
    assert.ok(a.right >= f.right);
    assert.ok(a.tokens < f.tokens, `adaptive ${a.tokens} < fixed ${f.tokens}`);
  });

  it('streams tokens as server-sent events before the model has finished, ending with the citations', { timeout: 300_000 }, async () => {
    let release!: () => void;
    fake.gate = new Promise<void>((r) => (release = r));
    const finished = fake.finished;
    try {
      const res = await fetch(`${adaptive.url}/v2/answer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ prompt: question('Kestrel'), return_context_docs: true }),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      while (!buffer.includes('\n\n')) {
        const { value, done } = await reader.read();
        assert.ok(!done, 'the stream ended before its first event');
        buffer += decoder.decode(value, { stream: true });
      }
      assert.match(buffer, /^event: token\ndata: /);
      assert.equal(fake.finished, finished, 'the first token arrived while the model was still answering');
      release();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
      }
      const events = buffer.trim().split('\n\n').map((e) => ({ event: /^event: (\w+)/.exec(e)![1], data: JSON.parse(/^data: (.*)$/m.exec(e)![1]!) }));
      const tokens = events.filter((e) => e.event === 'token');
      assert.ok(tokens.length > 1, 'tokens come one by one');
      const done = events.at(-1)!;
      assert.equal(done.event, 'done');
      assert.equal(done.data.response, tokens.map((t) => t.data.text).join(''));
      assert.match(done.data.response, new RegExp(codeOf('Kestrel')));
      assert.match(done.data.context_docs[done.data.citations[0] - 1].metadata.path, /kestrel\.md$/);
    } finally {
      fake.gate = null;
      release?.();
    }
  });

  it('cancels the model call when the client leaves a stream', { timeout: 300_000 }, async () => {
    let release!: () => void;
    fake.gate = new Promise<void>((r) => (release = r));
    const aborted = fake.aborted;
    try {
      const controller = new AbortController();
      const res = await fetch(`${adaptive.url}/v2/answer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ prompt: question('Shrike') }),
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      await waitFor(() => fake.aborted === aborted + 1, 120_000);
    } finally {
      fake.gate = null;
      release?.();
    }
  });

  it('streams with stream: true in the body too, retrying a model that fails before its first token', async () => {
    const before = fake.requests.length;
    fake.faults.push({ kind: 'status', status: 502 });
    const res = await fetch(`${adaptive.url}/v2/answer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: question('Dunlin'), stream: true }) });
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const text = await res.text();
    assert.match(text, /event: done\ndata: .*"citations":\[\d+\]/);
    assert.equal(fake.requests.length - before, 2);
  });

  it('serves the official openai client as an OpenAI-compatible model that answers from the documents', async () => {
    const client = new OpenAI({ baseURL: `${adaptive.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === 'livedex'));
    const completion = await client.chat.completions.create({
      model: 'livedex',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: question('Gannet') },
      ],
    });
    assert.equal(completion.object, 'chat.completion');
    assert.match(completion.choices[0]!.message.content!, new RegExp(codeOf('Gannet')));
    assert.equal(completion.choices[0]!.finish_reason, 'stop');
    assert.ok(completion.usage!.prompt_tokens > 0);
    const extra = completion as unknown as { citations: number[]; context_docs: Array<{ metadata: { path: string } }> };
    assert.match(extra.context_docs[extra.citations[0]! - 1]!.metadata.path, /gannet\.md$/);

    const stream = await client.chat.completions.create({ model: 'livedex', messages: [{ role: 'user', content: question('Linnet') }], stream: true, stream_options: { include_usage: true } });
    let content = '';
    let pieces = 0;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (choice?.delta.content) {
        content += choice.delta.content;
        pieces++;
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    assert.match(content, new RegExp(codeOf('Linnet')));
    assert.ok(pieces > 1);
    assert.equal(finish, 'stop');
    assert.ok(usage && usage.prompt_tokens > 0 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens);
  });

  it('summarizes a text list into a bare JSON string', async () => {
    for (const route of ['/v2/summarize', '/v1/pw_ai_summary']) {
      const res = await post<string>(adaptive.url, route, { text_list: ['First text about herons.', 'Second text about kestrels.'] });
      assert.equal(res.status, 200);
      assert.equal(typeof res.body, 'string');
      assert.match(res.body, /^Summary of 2 texts: First text about herons\./);
    }
    const bad = await post<{ error: { field: string; message: string } }>(adaptive.url, '/v2/summarize', {});
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'text_list');
  });

  it('rejects a request without a prompt, and a model that is not allowed, naming the field', async () => {
    const noPrompt = await post<{ error: { field: string; message: string } }>(adaptive.url, '/v2/answer', { filters: null });
    assert.equal(noPrompt.status, 400);
    assert.equal(noPrompt.body.error.field, 'prompt');
    const badModel = await post<{ error: { field: string; message: string } }>(adaptive.url, '/v2/answer', { prompt: question('Heron'), model: 'gpt-5-turbo' });
    assert.equal(badModel.status, 400);
    assert.equal(badModel.body.error.field, 'model');
    assert.match(badModel.body.error.message, /answer\.models/);
  });

  it('answers 503 naming the option to set when no chat model is configured', async () => {
    for (const [path, body] of [
      ['/v2/answer', { prompt: 'hi' }],
      ['/v1/pw_ai_answer', { prompt: 'hi' }],
      ['/v2/summarize', { text_list: ['x'] }],
      ['/v1/chat/completions', { model: 'livedex', messages: [{ role: 'user', content: 'hi' }] }],
    ] as const) {
      const res = await post<{ error: { code: string; message: string; field: string } }>(noModel.url, path, body);
      assert.equal(res.status, 503, path);
      assert.equal(res.body.error.field, 'llm');
      assert.match(res.body.error.message, /`llm`/);
      assert.match(res.body.error.message, /--llm openai --llm-model/);
    }
  });

  it('`livedex serve <folder> --llm openai --llm-model NAME` answers with the model of OPENAI_BASE_URL and OPENAI_API_KEY', async () => {
    const data = join(dir.path, 'data-cli');
    const child = runCli(['serve', join(dir.path, 'docs', 'projects'), '--data-dir', data, '--port', '0', '--log-level', 'warn', '--llm', 'openai', '--llm-model', 'fake-cli-model'], {
      env: { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'sk-test' },
    });
    try {
      const url = await child.url;
      // A deadline for a loaded machine, not a speed claim.
      await waitFor(async () => (await fetch(new URL('/readyz', url))).status === 200, 300_000, 100);
      const res = await post<AnswerBody>(url, '/v2/answer', { prompt: question('Siskin') });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.match(res.body.response, new RegExp(codeOf('Siskin')));
      assert.equal(fake.requests.at(-1)!.body.model, 'fake-cli-model');
      assert.equal(fake.requests.at(-1)!.headers.authorization, 'Bearer sk-test');
    } finally {
      child.proc.kill('SIGTERM');
      await child.exited;
    }
  });

  it('retries a failing model per the call machinery, then answers 502 with the cause', async () => {
    let before = fake.requests.length;
    fake.faults.push({ kind: 'status', status: 500, message: 'the fake is down' }, { kind: 'status', status: 503 }, { kind: 'status', status: 500, message: 'the fake is still down' });
    const down = await post<{ error: { code: string; message: string } }>(adaptive.url, '/v2/answer', { prompt: question('Avocet') });
    assert.equal(down.status, 502);
    assert.equal(fake.requests.length - before, 3, 'max_attempts = 3');
    assert.match(down.body.error.message, /the fake is still down/);

    before = fake.requests.length;
    fake.faults.push({ kind: 'status', status: 400, message: 'bad request from the fake' });
    const bad = await post<{ error: { message: string } }>(adaptive.url, '/v2/answer', { prompt: question('Avocet') });
    assert.equal(bad.status, 502);
    assert.equal(fake.requests.length - before, 1, 'a 400 is never retried');
    assert.match(bad.body.error.message, /bad request from the fake/);

    before = fake.requests.length;
    fake.faults.push({ kind: 'status', status: 429, retryAfter: '0' }, { kind: 'reset' });
    const recovered = await post<AnswerBody>(adaptive.url, '/v2/answer', { prompt: question('Bittern') });
    assert.equal(recovered.status, 200);
    assert.match(recovered.body.response, new RegExp(codeOf('Bittern')));
    assert.equal(fake.requests.length - before, 3, '429 and a reset are retried');

    // Streaming: a model that fails before its first token is a plain 502 too.
    fake.faults.push({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    const res = await fetch(`${adaptive.url}/v2/answer`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ prompt: question('Avocet') }) });
    assert.equal(res.status, 502);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'model_unavailable');
  });
});
