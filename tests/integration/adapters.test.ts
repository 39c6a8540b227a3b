/** The retriever adapters (`livedex/langchain`, `livedex/llamaindex`) against a live livedex. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EnsembleRetriever } from '@langchain/classic/retrievers/ensemble';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { AIMessage, type BaseMessage } from '@langchain/core/messages';
import { StringOutputParser } from '@langchain/core/output_parsers';
import type { ChatResult } from '@langchain/core/outputs';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { RunnablePassthrough, RunnableSequence } from '@langchain/core/runnables';
import type { DocumentInterface } from '@langchain/core/documents';
import { VectorStore } from '@langchain/core/vectorstores';
import type { LLMCompletionParamsNonStreaming, LLMCompletionParamsStreaming } from '@llamaindex/core/llms';
import { MockLLM } from '@llamaindex/core/llms/mock';
import { RetrieverQueryEngine } from '@llamaindex/core/query-engine';
import { getResponseSynthesizer } from '@llamaindex/core/response-synthesizers';
import { TextNode } from '@llamaindex/core/schema';
import { extractText } from '@llamaindex/core/utils';
import { type LivedexClientError, LivedexRetriever, LivedexVectorStore } from '../../src/adapters/langchain.js';
import { LivedexRetriever as LlamaLivedexRetriever } from '../../src/adapters/llamaindex.js';
import { deadUrl, startRecorder, type Recorder } from '../helpers/http-recorder.js';
import { retrieve, startServer, tempDir, waitFor, type TestServer } from '../helpers/livedex.js';

const OTTERS = 'Sea otters hold hands while they sleep so that they do not drift apart on the tide.';
const KANGAROOS = 'Kangaroos carry their young in a pouch until the joey is old enough to hop.';
const VOLCANO = 'A volcano erupts when magma rises through the crust and pressure escapes.';

/** A chat model that writes down every prompt it gets and answers with how long the prompt was. */
class RecordingChatModel extends BaseChatModel {
  readonly prompts: string[] = [];
  _llmType(): string {
    return 'recording';
  }
  async _generate(messages: BaseMessage[]): Promise<ChatResult> {
    const prompt = messages.map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content))).join('\n');
    this.prompts.push(prompt);
    const text = `answered from ${prompt.length} characters`;
    return { generations: [{ text, message: new AIMessage(text) }] };
  }
}

/** LlamaIndex's mock LLM, writing down every completion prompt. */
class RecordingLLM extends MockLLM {
  readonly prompts: string[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: one body for both of LlamaIndex's overloads (a stream and a response)
  override complete(params: LLMCompletionParamsStreaming | LLMCompletionParamsNonStreaming): Promise<any> {
    this.prompts.push(extractText(params.prompt));
    return super.complete(params as LLMCompletionParamsNonStreaming);
  }
}

const formatDocs = (docs: DocumentInterface[]) => docs.map((d) => `[${String(d.metadata.path)}]\n${d.pageContent}`).join('\n\n');

describe('retriever adapters over a live livedex', () => {
  let server: TestServer;
  let recorder: Recorder;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    const docs = await tempDir();
    const data = await tempDir();
    cleanups.push(docs.cleanup, data.cleanup);
    await mkdir(join(docs.path, 'animals'));
    await mkdir(join(docs.path, 'geology'));
    await writeFile(join(docs.path, 'animals/otters.md'), `# Otters\n\n${OTTERS}\n`);
    await writeFile(join(docs.path, 'animals/kangaroos.txt'), KANGAROOS);
    await writeFile(join(docs.path, 'geology/volcano.txt'), VOLCANO);
    server = await startServer(docs.path, { dataDir: data.path });
    cleanups.unshift(() => server.close());
    await server.ready;
    await waitFor(async () => (await retrieve(server.url, { query: 'otters kangaroos volcano', k: 3 })).length === 3, 120_000);
    recorder = await startRecorder({ upstream: server.url });
    cleanups.unshift(() => recorder.close());
  });

  after(async () => {
    for (const c of cleanups) await c();
  });

  describe('LangChain', () => {
    it('an LCEL chain (retriever → prompt → chat model) puts the retrieved chunks in the prompt', async () => {
      const retriever = new LivedexRetriever({ url: server.url, k: 2 });
      const model = new RecordingChatModel({});
      const prompt = ChatPromptTemplate.fromMessages([
        ['system', 'Answer from the context only.\n\nContext:\n{context}'],
        ['human', '{question}'],
      ]);
      const chain = RunnableSequence.from([
        { context: retriever.pipe(formatDocs), question: new RunnablePassthrough() },
        prompt,
        model,
        new StringOutputParser(),
      ]);
      const answer = await chain.invoke('Why do sea otters hold hands?');
      assert.equal(model.prompts.length, 1);
      const sent = model.prompts[0]!;
      assert.ok(sent.includes(OTTERS), `the otter chunk reaches the prompt:\n${sent}`);
      assert.match(sent, /animals\/otters\.md/, 'with its path');
      assert.ok(sent.includes('Why do sea otters hold hands?'));
      assert.equal(answer, `answered from ${sent.length} characters`);
    });

    it('returns Documents with metadata, dist, per-leg scores and a stable chunk id', async () => {
      const retriever = new LivedexRetriever({ url: server.url, k: 3 });
      const docs = await retriever.invoke('sea otters sleep');
      assert.equal(docs.length, 3);
      const top = docs[0]!;
      assert.ok(top.pageContent.includes(OTTERS));
      assert.match(String(top.metadata.path), /animals\/otters\.md$/);
      assert.equal(typeof top.metadata.modified_at, 'number');
      assert.equal(top.metadata.dist, 0, 'the best hybrid hit has dist 0');
      assert.equal(typeof top.metadata.scores.bm25, 'number');
      assert.equal(typeof top.metadata.scores.fused, 'number');
      const dists = docs.map((d) => d.metadata.dist);
      assert.deepEqual(dists, [...dists].sort((a, b) => a - b), 'best first');
      assert.match(top.id ?? '', /^[0-9a-f]{32}$/);
      const again = await retriever.invoke('otters holding hands');
      assert.equal(again.find((d) => d.pageContent === top.pageContent)?.id, top.id, 'the same chunk keeps its id');
    });

    it('sends k, mode, both filters, alpha, the bearer key and extra headers to the server', async () => {
      recorder.requests.length = 0;
      const retriever = new LivedexRetriever({
        url: recorder.url,
        k: 1,
        mode: 'hybrid',
        alpha: 0.25,
        metadataFilter: 'contains(path, `animals`)',
        filepathGlobpattern: '**/*.txt',
        apiKey: 'sk-test-123',
        headers: { 'X-Tenant': 'zoo' },
      });
      const docs = await retriever.invoke('what carries its young in a pouch?');
      assert.equal(docs.length, 1);
      assert.ok(docs[0]!.pageContent.includes(KANGAROOS), 'the filters leave only the kangaroo file');
      const [req] = recorder.requests;
      assert.equal(req?.method, 'POST');
      assert.equal(req?.path, '/v1/retrieve');
      assert.deepEqual(req?.body, {
        query: 'what carries its young in a pouch?',
        k: 1,
        mode: 'hybrid',
        metadata_filter: 'contains(path, `animals`)',
        filepath_globpattern: '**/*.txt',
        alpha: 0.25,
      });
      assert.equal(req?.headers.authorization, 'Bearer sk-test-123');
      assert.equal(req?.headers['x-tenant'], 'zoo');
    });

    it('mode bm25 and vector reach the index: each answers with its own leg only', async () => {
      const bm25 = await new LivedexRetriever({ url: server.url, k: 1, mode: 'bm25' }).invoke('magma crust pressure');
      assert.ok(bm25[0]!.pageContent.includes(VOLCANO));
      assert.deepEqual(Object.keys(bm25[0]!.metadata.scores), ['bm25']);
      assert.ok(bm25[0]!.metadata.dist < 0, "bm25 keeps Pathway's dist = −score");
      const vector = await new LivedexRetriever({ url: server.url, k: 1, mode: 'vector' }).invoke('magma crust pressure');
      assert.deepEqual(Object.keys(vector[0]!.metadata.scores), ['vector']);
    });

    it("works inside LangChain's EnsembleRetriever (bm25 + vector legs, fused by weighted RRF)", async () => {
      const bm25 = new LivedexRetriever({ url: server.url, k: 3, mode: 'bm25' });
      const vector = new LivedexRetriever({ url: server.url, k: 3, mode: 'vector' });
      const seen: string[] = [];
      const ensemble = new EnsembleRetriever({ retrievers: [bm25, vector], weights: [0.5, 0.5] });
      const docs = await ensemble.invoke('kangaroo pouch', {
        callbacks: [{ handleRetrieverStart: (_r: unknown, query: string) => void seen.push(query) }],
      });
      assert.equal(seen.filter((q) => q === 'kangaroo pouch').length, 3, 'the ensemble and both legs ran as retrievers');
      assert.ok(docs[0]!.pageContent.includes(KANGAROOS));
      assert.equal(new Set(docs.map((d) => d.pageContent)).size, docs.length);
      const batch = await bm25.batch(['otters', 'volcano']);
      assert.ok(batch[0]![0]!.pageContent.includes(OTTERS));
      assert.ok(batch[1]![0]!.pageContent.includes(VOLCANO));
    });

    it('LivedexVectorStore: similaritySearch with a filter, scores as dist, asRetriever, read-only', async () => {
      const store = new LivedexVectorStore({ url: server.url });
      assert.ok(store instanceof VectorStore);
      const geology = await store.similaritySearch('animals and rocks', 3, 'contains(path, `geology`)');
      assert.deepEqual(geology.map((d) => d.pageContent.trim()), [VOLCANO]);
      const byGlob = await store.similaritySearch('animals', 3, { filepathGlobpattern: '*.md' });
      assert.deepEqual(byGlob.map((d) => d.pageContent.includes(OTTERS)), [true]);
      const scored = await store.similaritySearchWithScore('otters hold hands', 2);
      assert.equal(scored.length, 2);
      assert.ok(scored[0]![0].pageContent.includes(OTTERS));
      assert.equal(scored[0]![1], scored[0]![0].metadata.dist);
      assert.ok(scored[0]![1] <= scored[1]![1], 'dist ascending');
      const viaRetriever = await store.asRetriever(1).invoke('volcano magma');
      assert.ok(viaRetriever[0]!.pageContent.includes(VOLCANO));
      await assert.rejects(store.addDocuments([]), (err: LivedexClientError) => err.code === 'unsupported');
      await assert.rejects(store.similaritySearchVectorWithScore([0.1, 0.2], 1), (err: LivedexClientError) => err.code === 'unsupported');
      await assert.rejects(store.similaritySearch('x', 1, { path: 'a' } as never), /filter has unknown keys path/);
    });
  });

  describe('LlamaIndex', () => {
    it('a RetrieverQueryEngine with a fake LLM gets the retrieved chunks in its prompt', async () => {
      const retriever = new LlamaLivedexRetriever({ url: server.url, k: 2 });
      const llm = new RecordingLLM({ timeBetweenToken: 0, responseMessage: 'Otters hold hands.' });
      const engine = new RetrieverQueryEngine(retriever, getResponseSynthesizer('compact', { llm }));
      const response = await engine.query({ query: 'Why do sea otters hold hands?' });
      assert.equal(response.message.content, 'Otters hold hands.');
      assert.ok(llm.prompts.length >= 1);
      const prompt = llm.prompts.join('\n');
      assert.ok(prompt.includes(OTTERS), `the otter chunk reaches the prompt:\n${prompt}`);
      assert.ok(prompt.includes('Why do sea otters hold hands?'));
      assert.doesNotMatch(prompt, /dist:|scores:/, 'ranking metadata stays out of the prompt');
      const sources = response.sourceNodes ?? [];
      assert.equal(sources.length, 2);
      const top = sources[0]!;
      assert.ok(top.node instanceof TextNode);
      assert.match(String(top.node.metadata.path), /animals\/otters\.md$/);
      assert.match(top.node.id_, /^[0-9a-f]{32}$/);
      assert.equal(top.score, 1 - (top.node.metadata.dist as number), "score = 1 − dist, as Pathway's PathwayRetriever");
    });

    it('passes k, mode and filters through', async () => {
      recorder.requests.length = 0;
      const retriever = new LlamaLivedexRetriever({ url: recorder.url, k: 1, mode: 'bm25', filepathGlobpattern: '**/geology/*' });
      const nodes = await retriever.retrieve('pressure');
      assert.equal(nodes.length, 1);
      assert.ok((nodes[0]!.node as TextNode).text.includes(VOLCANO));
      assert.deepEqual(recorder.requests[0]?.body, { query: 'pressure', k: 1, mode: 'bm25', filepath_globpattern: '**/geology/*' });
    });
  });

  describe('errors', () => {
    it('an unreachable server is named in the error', async () => {
      const url = await deadUrl();
      for (const retriever of [new LivedexRetriever({ url }), new LlamaLivedexRetriever({ url })]) {
        await assert.rejects(
          'invoke' in retriever ? retriever.invoke('otters') : retriever.retrieve('otters'),
          (err: LivedexClientError) => {
            assert.equal(err.name, 'LivedexClientError');
            assert.equal(err.code, 'unreachable');
            assert.ok(err.message.includes(url), err.message);
            assert.match(err.message, /ECONNREFUSED/);
            return true;
          },
        );
      }
    });

    it("a 4xx passes the server's message, code and field through", async () => {
      const retriever = new LivedexRetriever({ url: server.url, metadataFilter: 'path ==' });
      await assert.rejects(retriever.invoke('otters'), (err: LivedexClientError) => {
        assert.equal(err.status, 400);
        assert.equal(err.code, 'invalid_filter');
        assert.equal(err.field, 'metadata_filter');
        assert.match(err.message, new RegExp(`livedex at ${server.url} answered 400 to /v1/retrieve: .+`));
        return true;
      });
    });

    it('a 5xx with a JSON error, or with an empty body as Pathway sends, is reported with its status', async () => {
      const down = await startRecorder({ status: 503, body: JSON.stringify({ error: { code: 'not_ready', message: 'the first indexing of the sources is not finished' } }) });
      const empty = await startRecorder({ status: 500, body: '' });
      try {
        await assert.rejects(new LivedexRetriever({ url: down.url }).invoke('q'), (err: LivedexClientError) => {
          assert.equal(err.code, 'not_ready');
          assert.equal(err.status, 503);
          assert.match(err.message, /answered 503 to \/v1\/retrieve: the first indexing of the sources is not finished/);
          return true;
        });
        await assert.rejects(new LlamaLivedexRetriever({ url: empty.url }).retrieve('q'), (err: LivedexClientError) => {
          assert.equal(err.code, 'http_500');
          assert.match(err.message, /answered 500 to \/v1\/retrieve: Internal Server Error/);
          return true;
        });
      } finally {
        await down.close();
        await empty.close();
      }
    });

    it('an answer that is not a hit list is a bad_response, not a crash further down', async () => {
      const other = await startRecorder({ status: 200, body: JSON.stringify({ response: 'an answer, not hits' }) });
      try {
        await assert.rejects(new LivedexRetriever({ url: other.url }).invoke('q'), (err: LivedexClientError) => {
          assert.equal(err.code, 'bad_response');
          assert.match(err.message, /answered \/v1\/retrieve with an unexpected body: expected a list of hits/);
          return true;
        });
      } finally {
        await other.close();
      }
    });

    it('a server that does not answer hits timeoutMs', async () => {
      const silent = await startRecorder({ hang: true });
      try {
        await assert.rejects(new LivedexRetriever({ url: silent.url, timeoutMs: 150 }).invoke('q'), (err: LivedexClientError) => {
          assert.equal(err.code, 'timeout');
          assert.match(err.message, /did not answer \/v1\/retrieve within 150 ms/);
          return true;
        });
      } finally {
        await silent.close();
      }
    });

    it('bad options fail at construction, naming the option; the key never shows in errors', async () => {
      assert.throws(() => new LivedexRetriever({ url: server.url, k: 0 }), { code: 'invalid_option', field: 'k' });
      assert.throws(() => new LivedexRetriever({ url: server.url, mode: 'fuzzy' as never }), { field: 'mode', message: /mode must be one of hybrid, vector, bm25/ });
      assert.throws(() => new LlamaLivedexRetriever({ url: server.url, alpha: 2 }), { field: 'alpha' });
      assert.throws(() => new LivedexRetriever({ url: server.url, alpha: 0.5, fusion: 'rrf' }), { field: 'alpha' });
      assert.throws(() => new LivedexRetriever({ url: 'localhost:8000' }), { field: 'url' });
      assert.throws(() => new LivedexRetriever({ url: '' }), { field: 'url', message: /url is required/ });
      assert.throws(() => new LivedexRetriever({ url: server.url, timeoutMs: -1 }), { field: 'timeoutMs' });
      const guard = await startRecorder({ status: 401, body: JSON.stringify({ error: { code: 'unauthorized', message: 'missing or wrong credentials' } }) });
      try {
        const withSecrets = new URL(guard.url);
        withSecrets.username = 'admin';
        withSecrets.password = 'hunter2';
        const basic = new LivedexRetriever({ url: withSecrets.href });
        const bearer = new LivedexRetriever({ url: withSecrets.href, apiKey: 'sk-secret-456' });
        for (const retriever of [basic, bearer]) {
          await assert.rejects(retriever.invoke('q'), (err: LivedexClientError) => {
            assert.equal(err.code, 'unauthorized');
            assert.match(err.message, /answered 401 to \/v1\/retrieve: missing or wrong credentials/);
            assert.ok(!err.message.includes('sk-secret-456') && !err.message.includes('hunter2'), err.message);
            return true;
          });
        }
        assert.equal(guard.requests[0]?.headers.authorization, `Basic ${Buffer.from('admin:hunter2').toString('base64')}`, 'URL credentials become Basic auth');
        assert.equal(guard.requests[1]?.headers.authorization, 'Bearer sk-secret-456', 'apiKey wins over URL credentials');
        assert.equal(bearer.client.url, guard.url);
        assert.ok(!JSON.stringify(bearer.toJSON()).includes('sk-secret-456'), 'LangChain serialization leaves the key out');
      } finally {
        await guard.close();
      }
    });
  });
});
