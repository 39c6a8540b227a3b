/**
 * The chat model contract (plugin kind `llm`), run against every chat model in
 * `builtinRegistry()` through its official client and a loopback fake: an answer with usage and
 * the model that gave it, a stream that ends with exactly one `done` holding the same text,
 * tool calls, and a cancelled call that rejects.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/core/log.js';
import type { ChatChunk, ChatModel } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/plugins.js';
import { startFakeChat, type FakeChat } from '../helpers/fake-chat.js';
import { tempDir } from '../helpers/livedex.js';

let chat: FakeChat;
const HARNESS: Record<string, () => Record<string, unknown>> = {
  openai: () => ({ base_url: chat.url, api_key: 'contract-key', model: 'contract-chat', max_attempts: 1 }),
};

const registry = builtinRegistry();
const definitions = registry.list('llm');
const question = (text: string) => ({ messages: [{ role: 'system' as const, content: 'Answer briefly.' }, { role: 'user' as const, content: text }] });

describe('the chat model contract', () => {
  let tmp: { path: string; cleanup(): Promise<void> };
  before(async () => {
    tmp = await tempDir();
    chat = await startFakeChat({
      apiKey: 'contract-key',
      respond: (req) =>
        req.user === 'call the tool'
          ? { toolCall: { name: 'lookup', arguments: '{"term":"lighthouse"}' } }
          : req.user === 'wait'
            ? new Promise(() => {})
            : { text: `You asked: ${req.user}`, chunks: ['You ', 'asked: ', req.user] },
    });
  });
  after(async () => {
    await chat.close();
    await tmp.cleanup();
  });

  it('has a harness for every registered chat model', () => {
    assert.deepEqual(definitions.map((d) => d.name).filter((name) => !HARNESS[name]), []);
  });

  for (const def of definitions) {
    describe(`chat model "${def.name}"`, { skip: HARNESS[def.name] ? false : 'no harness' }, () => {
      let model: ChatModel;
      before(async () => {
        model = await registry.create('llm', def.name, HARNESS[def.name]!(), { logger: silentLogger, dataDir: tmp.path });
      });
      after(async () => model.close?.());

      it('answers with text, usage and the model that answered', async () => {
        assert.equal(model.name, def.name);
        const result = await model.complete(question('where is the lighthouse'));
        assert.equal(result.text, 'You asked: where is the lighthouse');
        assert.deepEqual(result.toolCalls, []);
        assert.ok(result.usage.prompt_tokens > 0);
        assert.equal(typeof result.model, 'string');
      });

      it('streams the same text, ending with exactly one done chunk', async () => {
        const chunks: ChatChunk[] = [];
        for await (const chunk of model.stream(question('where is the lighthouse'))) chunks.push(chunk);
        const done = chunks.filter((c) => c.type === 'done');
        assert.equal(done.length, 1);
        assert.equal(chunks.at(-1)?.type, 'done');
        const streamed = chunks.flatMap((c) => (c.type === 'text' ? [c.text] : [])).join('');
        assert.equal(streamed, 'You asked: where is the lighthouse');
        assert.equal(done[0]!.type === 'done' && done[0]!.result.text, streamed);
      });

      it('returns the tool call the model makes, arguments as sent', async () => {
        const result = await model.complete({ ...question('call the tool'), tools: [{ name: 'lookup', description: 'Looks a term up.', parameters: { type: 'object', properties: { term: { type: 'string' } } } }] });
        assert.equal(result.toolCalls.length, 1);
        assert.equal(result.toolCalls[0]!.name, 'lookup');
        assert.deepEqual(JSON.parse(result.toolCalls[0]!.arguments), { term: 'lighthouse' });
      });

      it('rejects a call whose signal is aborted', async () => {
        const controller = new AbortController();
        const pending = model.complete(question('wait'), controller.signal);
        setTimeout(() => controller.abort(), 50);
        await assert.rejects(pending);
      });
    });
  }
});
