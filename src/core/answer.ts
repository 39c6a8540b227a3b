/**
 * @module core/answer — question answering over a live index: retrieve (hybrid, filters inside),
 * number the context, ask the chat model, map its `[n]` citations back to the documents. Adaptive
 * RAG widens the context geometrically until the model answers, read from a structured signal.
 */
import { z } from 'zod';
import {
  DEFAULT_PROMPT_TEMPLATE,
  DEFAULT_SUMMARIZE_PROMPT,
  DEFAULT_SYSTEM_PROMPT,
  NO_ANSWER_TOOL,
  SIGNAL_INSTRUCTIONS,
  TEMPLATE_PLACEHOLDERS,
  formatContext,
  parseCitations,
  readJsonAnswer,
  renderTemplate,
} from './answer-prompt.js';
import { CallError } from './calls.js';
import { LivedexError } from './errors.js';
import type {
  AnswerApi,
  AnswerEvent,
  AnswerRequest,
  AnswerResult,
  ChatMessage,
  ChatModel,
  ChatRequest,
  ChatResult,
  ContextDoc,
  Hit,
  LiveIndexApi,
  Logger,
  SummarizeRequest,
} from './types.js';

export const answerConfigSchema = z.strictObject({
  strategy: z
    .enum(['adaptive', 'fixed'])
    .default('adaptive')
    .describe('adaptive: start with few documents and widen until the model answers; fixed: always k documents'),
  k: z.number().int().min(1).max(200).default(6).describe('documents in the context with strategy fixed'),
  adaptive: z
    .strictObject({
      start: z.number().int().min(1).max(200).default(2).describe('documents in the first try'),
      factor: z.number().min(1.1).max(10).default(2).describe('each new try has this many times more documents'),
      max: z.number().int().min(1).max(200).default(16).describe('documents in the widest try'),
    })
    .prefault({})
    .refine((a) => a.max >= a.start, { message: 'adaptive.max must be at least adaptive.start' }),
  no_answer_signal: z
    .enum(['tool', 'json'])
    .default('tool')
    .describe('how the model says "not in the context": a no_answer tool call (streams), or JSON mode {"answer": null} (for servers without tools; streams the answer in one piece)'),
  mode: z.enum(['hybrid', 'vector', 'bm25']).default('hybrid').describe('retrieval mode of the context'),
  prompt_template: z
    .string()
    .default(DEFAULT_PROMPT_TEMPLATE)
    .refine((t) => TEMPLATE_PLACEHOLDERS.every((p) => t.includes(p)), { message: `prompt_template must contain ${TEMPLATE_PLACEHOLDERS.join(' and ')}` })
    .describe('the user message: {context} becomes the numbered documents, {question} the question'),
  system_prompt: z.string().default(DEFAULT_SYSTEM_PROMPT),
  summarize_prompt: z.string().default(DEFAULT_SUMMARIZE_PROMPT),
  no_answer_response: z.string().default('No information found in the documents.').describe('the response when no try found the answer'),
  models: z.array(z.string().min(1)).default([]).describe('model names a request may ask for besides the configured one (an allow-list)'),
});
export type AnswerConfig = z.output<typeof answerConfigSchema>;

export interface AnswererDeps {
  index: Pick<LiveIndexApi, 'retrieve'>;
  chat: ChatModel;
  config: AnswerConfig;
  logger: Logger;
}

interface Plan {
  hits: Hit[];
  /** Documents per try, growing. */
  sizes: number[];
  model: string | undefined;
}

type Usage = AnswerResult['usage'];

/** The sizes of the tries: start, start·factor, … up to max, never past the documents there are. */
export function contextSizes(config: AnswerConfig, available: number): number[] {
  if (config.strategy === 'fixed') return [Math.min(config.k, available)];
  const { start, factor, max } = config.adaptive;
  const sizes: number[] = [];
  for (let n = start; ; n = Math.max(n + 1, Math.ceil(n * factor))) {
    const size = Math.min(n, max, available);
    if (sizes.at(-1) !== size) sizes.push(size);
    if (size >= max || size >= available) return sizes;
  }
}

/**
 * Answers questions over a live index with a chat model.
 *
 * @example
 * const answerer = new Answerer({ index, chat, config: answerConfigSchema.parse({}), logger });
 * const { response, citations } = await answerer.answer({ prompt: 'Who wrote the report?', returnContextDocs: true });
 */
export class Answerer implements AnswerApi {
  readonly #index: Pick<LiveIndexApi, 'retrieve'>;
  readonly #chat: ChatModel;
  readonly #config: AnswerConfig;
  readonly #logger: Logger;

  constructor(deps: AnswererDeps) {
    this.#index = deps.index;
    this.#chat = deps.chat;
    this.#config = deps.config;
    this.#logger = deps.logger;
  }

  /** The models a request may name: the configured one first. */
  get models(): string[] {
    return [...new Set([this.#chat.model, ...this.#config.models])];
  }

  async answer(req: AnswerRequest, signal?: AbortSignal): Promise<AnswerResult> {
    const plan = await this.#plan(req);
    const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, calls: 0 };
    let docs: Hit[] = [];
    for (const size of plan.sizes) {
      docs = plan.hits.slice(0, size);
      const result = await this.#call(() => this.#chat.complete(this.#chatRequest(req, docs, plan.model), signal));
      addUsage(usage, result);
      const answer = this.#read(result);
      if (answer !== null) return this.#result(req, answer, docs, usage, true);
      this.#logger.debug('no answer in the context, widening', { documents: size });
    }
    return this.#result(req, this.#config.no_answer_response, docs, usage, false);
  }

  async *answerStream(req: AnswerRequest, signal?: AbortSignal): AsyncGenerator<AnswerEvent> {
    const plan = await this.#plan(req);
    const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, calls: 0 };
    let docs: Hit[] = [];
    for (const size of plan.sizes) {
      docs = plan.hits.slice(0, size);
      const chatReq = this.#chatRequest(req, docs, plan.model);
      if (this.#config.no_answer_signal === 'json') {
        // A JSON answer cannot be shown before it is whole: it comes as one token.
        const result = await this.#call(() => this.#chat.complete(chatReq, signal));
        addUsage(usage, result);
        const answer = this.#read(result);
        if (answer === null) continue;
        yield { type: 'token', text: answer };
        yield { type: 'done', result: this.#result(req, answer, docs, usage, true) };
        return;
      }
      let text = '';
      let noAnswer = false;
      try {
        for await (const chunk of this.#chat.stream(chatReq, signal)) {
          if (chunk.type === 'text' && !noAnswer) {
            text += chunk.text;
            yield { type: 'token', text: chunk.text };
          } else if (chunk.type === 'tool_call' && chunk.call.name === NO_ANSWER_TOOL.name && text.trim() === '') {
            // Words already sent cannot be taken back: a no_answer call after them does not count.
            noAnswer = true;
          } else if (chunk.type === 'done') {
            addUsage(usage, chunk.result);
          }
        }
      } catch (err) {
        throw modelFailure(err, this.#chat);
      }
      if (!noAnswer && text.trim() !== '') {
        yield { type: 'done', result: this.#result(req, text, docs, usage, true) };
        return;
      }
    }
    yield { type: 'token', text: this.#config.no_answer_response };
    yield { type: 'done', result: this.#result(req, this.#config.no_answer_response, docs, usage, false) };
  }

  async summarize(req: SummarizeRequest, signal?: AbortSignal): Promise<string> {
    const model = this.#model(req.model);
    const result = await this.#call(() =>
      this.#chat.complete(
        {
          messages: [
            { role: 'system', content: this.#config.summarize_prompt },
            { role: 'user', content: req.textList.join('\n\n') },
          ],
          ...(model ? { model } : {}),
        },
        signal,
      ),
    );
    return result.text;
  }

  async #plan(req: AnswerRequest): Promise<Plan> {
    const model = this.#model(req.model);
    const widest = this.#config.strategy === 'fixed' ? this.#config.k : this.#config.adaptive.max;
    // One search for the widest try: the first n hits of it are the n best.
    const hits = req.prompt.trim()
      ? await this.#index.retrieve({
          query: req.prompt,
          k: widest,
          mode: this.#config.mode,
          metadataFilter: req.metadataFilter ?? null,
          filepathGlobpattern: req.filepathGlobpattern ?? null,
        })
      : [];
    return { hits, sizes: hits.length === 0 ? [] : contextSizes(this.#config, hits.length), model };
  }

  #model(requested: string | null | undefined): string | undefined {
    if (!requested) return undefined;
    if (this.models.includes(requested)) return requested;
    throw new LivedexError(
      'invalid_request',
      `model "${requested}" is not allowed; use one of ${this.models.map((m) => `"${m}"`).join(', ')} (answer.models in the config lists the others a request may ask for)`,
      { field: 'model' },
    );
  }

  #chatRequest(req: AnswerRequest, docs: Hit[], model: string | undefined): ChatRequest {
    const signal = this.#config.no_answer_signal;
    const messages: ChatMessage[] = [
      { role: 'system', content: `${this.#config.system_prompt}\n${SIGNAL_INSTRUCTIONS[signal]}` },
      ...(req.history ?? []),
      { role: 'user', content: renderTemplate(this.#config.prompt_template, { context: formatContext(docs), question: req.prompt }) },
    ];
    return {
      messages,
      ...(model ? { model } : {}),
      ...(signal === 'tool' ? { tools: [NO_ANSWER_TOOL] } : { responseFormat: 'json' as const }),
    };
  }

  /** The answer a model gave, or null when it signalled that the context does not hold it. */
  #read(result: ChatResult): string | null {
    if (this.#config.no_answer_signal === 'json') {
      const { answer, wellFormed } = readJsonAnswer(result.text);
      if (!wellFormed) this.#logger.warn('the chat model ignored JSON mode; taking its text as the answer', { model: result.model });
      return answer !== null && answer.trim() !== '' ? answer : null;
    }
    if (result.toolCalls.some((c) => c.name === NO_ANSWER_TOOL.name)) return null;
    return result.text.trim() === '' ? null : result.text;
  }

  #result(req: AnswerRequest, response: string, docs: Hit[], usage: Usage, answered: boolean): AnswerResult {
    const citations = answered ? parseCitations(response, docs.length) : [];
    const result: AnswerResult = { response, citations, usage: { ...usage }, answered };
    if (req.returnContextDocs) result.context_docs = docs.map((hit, i): ContextDoc => ({ ...hit, ref: i + 1 }));
    return result;
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw modelFailure(err, this.#chat);
    }
  }
}

function addUsage(usage: Usage, result: ChatResult): void {
  usage.prompt_tokens += result.usage.prompt_tokens;
  usage.completion_tokens += result.usage.completion_tokens;
  usage.calls++;
}

/** A model that failed after its retries is a bad gateway (502), with the cause in the message. */
function modelFailure(err: unknown, chat: ChatModel): unknown {
  if (err instanceof CallError && err.kind !== 'shutdown') {
    return new LivedexError('model_unavailable', `the chat model (${chat.name}:${chat.model}) failed: ${err.message}`, { status: 502, cause: err });
  }
  return err;
}

/** The error every answer route gives when no chat model is configured. */
export function noChatModelError(): LivedexError {
  return new LivedexError(
    'model_unavailable',
    'no chat model is configured: set `llm` in the config (e.g. llm: { openai: { model: gpt-4o-mini } }) or start with `livedex serve <folder> --llm openai --llm-model NAME`',
    { field: 'llm' },
  );
}
