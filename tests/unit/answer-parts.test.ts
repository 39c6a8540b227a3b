/** The parts of an answer: context sizes, citations read back, the template, the config, and chat calls through the call machine. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfigFile } from '../../src/config-file.js';
import { answerConfigSchema, contextSizes } from '../../src/core/answer.js';
import { formatContext, parseCitations, renderTemplate } from '../../src/core/answer-prompt.js';
import { CallError } from '../../src/core/calls.js';
import { chatCallOptions, wrapChatModel } from '../../src/core/chat-calls.js';
import type { LivedexError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import type { ChatChunk, ChatModel, ChatResult } from '../../src/core/types.js';
import { parseConfig } from '../../src/livedex.js';
import { resolveChatConnection } from '../../src/models/openai-chat.js';
import { builtinRegistry } from '../../src/plugins.js';
import { tempDir } from '../helpers/livedex.js';

describe('answer parts', () => {
  it('grows the context geometrically from start to max, never past the documents found', () => {
    const config = (adaptive: Record<string, number>) => answerConfigSchema.parse({ adaptive });
    assert.deepEqual(contextSizes(config({}), 100), [2, 4, 8, 16]);
    assert.deepEqual(contextSizes(config({}), 5), [2, 4, 5]);
    assert.deepEqual(contextSizes(config({ start: 1, factor: 1.5, max: 6 }), 100), [1, 2, 3, 5, 6]);
    assert.deepEqual(contextSizes(config({ start: 3, factor: 3, max: 10 }), 100), [3, 9, 10]);
    assert.deepEqual(contextSizes(answerConfigSchema.parse({ strategy: 'fixed', k: 6 }), 100), [6]);
    assert.deepEqual(contextSizes(answerConfigSchema.parse({ strategy: 'fixed', k: 6 }), 4), [4]);
  });

  it('reads citations in order of first use and drops numbers that cite nothing', () => {
    assert.deepEqual(parseCitations('Yes [2]. Also [1, 3][2] and [9] and [0].', 3), [2, 1, 3]);
    assert.deepEqual(parseCitations('no citation here', 3), []);
  });

  it('numbers the context with path, page and section, and fills the template', () => {
    const context = formatContext([
      { text: 'Install with npm.', metadata: { path: 'docs/guide.md', headings: ['Setup', 'Install'] }, dist: 0, scores: {} },
      { text: 'Revenue grew.', metadata: { path: 'report.pdf', page: 3 }, dist: 0.1, scores: {} },
    ]);
    assert.equal(context, '[1] docs/guide.md, section "Setup › Install"\nInstall with npm.\n\n[2] report.pdf, page 3\nRevenue grew.');
    assert.equal(renderTemplate('Q: {question} C: {context} {other} $1', { context: 'ctx', question: 'what $&?' }), 'Q: what $&? C: ctx {other} $1');
  });

  it('rejects a prompt template without its placeholders and a chat model without a key, naming the field', () => {
    assert.throws(() => parseConfig({ answer: { prompt_template: 'Answer: {question}' } }), (err: LivedexError) => err.code === 'config_error' && /answer\.prompt_template.*\{context\}/.test(err.message));
    assert.throws(() => parseConfig({ answer: { adaptive: { start: 8, max: 4 } } }), /adaptive\.max must be at least adaptive\.start/);
    assert.throws(() => resolveChatConnection({}, {}), (err: LivedexError) => err.field === 'llm.openai.api_key' && /OPENAI_API_KEY/.test(err.message));
    assert.deepEqual(resolveChatConnection({}, { OPENAI_API_KEY: 'k', OPENAI_BASE_URL: 'http://x/v1' }), { apiKey: 'k', keySource: 'OPENAI_API_KEY', baseURL: 'http://x/v1' });
  });

  it('reads llm and answer from a YAML app file, checking the chat plugin\'s options', async () => {
    const dir = await tempDir();
    try {
      const good = join(dir.path, 'good.yaml');
      await writeFile(good, 'llm:\n  openai: { model: "${CHAT_MODEL:-gpt-4o-mini}", base_url: http://127.0.0.1:9/v1 }\nanswer:\n  strategy: fixed\n  k: 4\n');
      const config = await loadConfigFile(good, { registry: builtinRegistry(), env: {} });
      assert.deepEqual(config.llm, { name: 'openai', options: { model: 'gpt-4o-mini', base_url: 'http://127.0.0.1:9/v1' } });
      assert.equal(config.answer.k, 4);
      const bad = join(dir.path, 'bad.yaml');
      await writeFile(bad, 'llm:\n  openai: { model: m, temprature: 0.2 }\n');
      await assert.rejects(loadConfigFile(bad, { registry: builtinRegistry(), env: {} }), /llm\.openai.*temprature/);
    } finally {
      await dir.cleanup();
    }
  });

  it('times out a stream that goes quiet after its first chunk, and cancels it', async () => {
    let cancelled = false;
    const model: ChatModel = {
      name: 'scripted',
      model: 'quiet',
      complete: async (): Promise<ChatResult> => ({ text: 'x', toolCalls: [], usage: { prompt_tokens: 1, completion_tokens: 1 }, model: 'quiet', finishReason: 'stop' }),
      async *stream(_req, signal): AsyncGenerator<ChatChunk> {
        yield { type: 'text', text: 'first' };
        await new Promise<void>((resolve) => signal!.addEventListener('abort', () => resolve(), { once: true }));
        cancelled = true;
        throw signal!.reason;
      },
    };
    const chat = wrapChatModel(model, chatCallOptions.parse({ timeout_ms: 50 }), { logger: silentLogger });
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of chat.stream({ messages: [{ role: 'user', content: 'hi' }] })) if (chunk.type === 'text') seen.push(chunk.text);
      })(),
      (err: CallError) => err instanceof CallError && err.kind === 'timeout' && /timeout_ms/.test(err.message),
    );
    assert.deepEqual(seen, ['first']);
    assert.ok(cancelled, 'the model call was aborted');
    await chat.close();
  });
});
