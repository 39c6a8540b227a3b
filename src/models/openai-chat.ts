/** @module models/openai-chat — chat completions from OpenAI or any OpenAI-compatible server (vLLM, Ollama, LM Studio, Azure). */
import OpenAI, { APIError } from 'openai';
import { z } from 'zod';
import { chatCallOptions, wrapChatModel } from '../core/chat-calls.js';
import { CallResponseError, malformed } from '../core/calls.js';
import { LivedexError } from '../core/errors.js';
import { definePlugin } from '../core/registry.js';
import type { ChatChunk, ChatModel, ChatRequest, ChatResult, ChatToolCall } from '../core/types.js';

const DEFAULT_BASE_URL = 'https://api.openai.com/v1';

export const openaiChatOptions = z.strictObject({
  ...chatCallOptions.shape,
  model: z.string().min(1).default('gpt-4o-mini').describe('chat model name as the server knows it'),
  base_url: z.string().url().optional().describe('OpenAI-compatible API root, e.g. http://localhost:11434/v1; default OPENAI_BASE_URL, else api.openai.com'),
  api_key: z.string().min(1).optional().describe('default OPENAI_API_KEY; "none" for a local server that needs no key'),
  temperature: z.number().min(0).max(2).default(0).describe('sampling temperature; 0 keeps answers repeatable'),
  max_tokens: z.number().int().min(1).optional().describe('longest answer, in tokens (the server default when absent)'),
});
export type OpenAIChatOptions = z.output<typeof openaiChatOptions>;

type Messages = OpenAI.Chat.ChatCompletionMessageParam[];

/**
 * Calls `POST /chat/completions` with the official client, its own retries off (the call
 * machine retries). Streams ask for usage (`stream_options.include_usage`); a server that
 * sends none gets an estimate of characters / 4.
 *
 * @example
 * const chat = new OpenAIChatModel({ model: 'llama3.1', baseURL: 'http://localhost:11434/v1', apiKey: 'none' });
 * const { text } = await chat.complete({ messages: [{ role: 'user', content: 'Hello' }] });
 */
export class OpenAIChatModel implements ChatModel {
  readonly name = 'openai';
  readonly model: string;
  readonly baseURL: string;
  readonly #client: OpenAI;
  readonly #temperature: number;
  readonly #maxTokens: number | undefined;
  readonly #keySource: string;

  constructor(opts: { model: string; baseURL: string; apiKey: string; keySource?: string; temperature?: number; maxTokens?: number; timeoutMs?: number }) {
    this.model = opts.model;
    this.baseURL = opts.baseURL.replace(/\/+$/, '');
    this.#temperature = opts.temperature ?? 0;
    this.#maxTokens = opts.maxTokens;
    this.#keySource = opts.keySource ?? 'llm.openai.api_key';
    this.#client = new OpenAI({ apiKey: opts.apiKey, baseURL: this.baseURL, maxRetries: 0, timeout: opts.timeoutMs ?? 10 * 60_000 });
  }

  #body(req: ChatRequest) {
    const maxTokens = req.maxTokens ?? this.#maxTokens;
    return {
      model: req.model || this.model,
      messages: req.messages.map((m) => ({ role: m.role, content: m.content })) as Messages,
      temperature: req.temperature ?? this.#temperature,
      ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
      ...(req.responseFormat === 'json' ? { response_format: { type: 'json_object' as const } } : {}),
      ...(req.tools?.length
        ? { tools: req.tools.map((t) => ({ type: 'function' as const, function: { name: t.name, description: t.description, parameters: t.parameters } })) }
        : {}),
    };
  }

  async complete(req: ChatRequest, signal?: AbortSignal): Promise<ChatResult> {
    let response: OpenAI.Chat.ChatCompletion;
    try {
      response = await this.#client.chat.completions.create({ ...this.#body(req), stream: false }, signal ? { signal } : {});
    } catch (err) {
      throw this.#explain(err, req);
    }
    const choice = response?.choices?.[0];
    if (!choice?.message) throw malformed(`${this.#where()} answered without a choice`);
    const toolCalls: ChatToolCall[] = [];
    for (const call of choice.message.tool_calls ?? []) {
      if (call.type === 'function') toolCalls.push({ name: call.function.name, arguments: call.function.arguments ?? '' });
    }
    const text = choice.message.content ?? '';
    return {
      text,
      toolCalls,
      usage: {
        prompt_tokens: response.usage?.prompt_tokens ?? estimate(req.messages.map((m) => m.content).join('')),
        completion_tokens: response.usage?.completion_tokens ?? estimate(text),
      },
      model: response.model ?? req.model ?? this.model,
      finishReason: choice.finish_reason ?? null,
    };
  }

  async *stream(req: ChatRequest, signal?: AbortSignal): AsyncGenerator<ChatChunk> {
    let stream: AsyncIterable<OpenAI.Chat.ChatCompletionChunk>;
    try {
      stream = await this.#client.chat.completions.create(
        { ...this.#body(req), stream: true, stream_options: { include_usage: true } },
        signal ? { signal } : {},
      );
    } catch (err) {
      throw this.#explain(err, req);
    }
    let text = '';
    let model = req.model || this.model;
    let finishReason: string | null = null;
    let usage: OpenAI.CompletionUsage | null = null;
    const calls = new Map<number, ChatToolCall>();
    try {
      for await (const chunk of stream) {
        if (chunk.model) model = chunk.model;
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        if (choice.finish_reason) finishReason = choice.finish_reason;
        const delta = choice.delta;
        if (delta?.content) {
          text += delta.content;
          yield { type: 'text', text: delta.content };
        }
        for (const part of delta?.tool_calls ?? []) {
          const call = calls.get(part.index) ?? { name: '', arguments: '' };
          if (part.function?.name) call.name += part.function.name;
          if (part.function?.arguments) call.arguments += part.function.arguments;
          calls.set(part.index, call);
        }
      }
    } catch (err) {
      throw this.#explain(err, req);
    }
    const toolCalls = [...calls.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
    for (const call of toolCalls) yield { type: 'tool_call', call };
    yield {
      type: 'done',
      result: {
        text,
        toolCalls,
        usage: {
          prompt_tokens: usage?.prompt_tokens ?? estimate(req.messages.map((m) => m.content).join('')),
          completion_tokens: usage?.completion_tokens ?? estimate(text),
        },
        model,
        finishReason,
      },
    };
  }

  #where(): string {
    return `OpenAI-compatible server at ${this.baseURL}`;
  }

  /** Turns the statuses a user must act on into messages that say what to do; keeps the cause. */
  #explain(err: unknown, req: ChatRequest): unknown {
    if (!(err instanceof APIError) || err.status === undefined) return err;
    const model = req.model || this.model;
    if (err.status === 401) {
      return new CallResponseError(`${this.#where()} rejected the API key from ${this.#keySource} (401): set OPENAI_API_KEY or llm.openai.api_key (${err.message})`, {
        kind: 'auth',
        retryable: false,
        cause: err,
      });
    }
    if (err.status === 404) {
      return new CallResponseError(`${this.#where()} has no model "${model}" or no /chat/completions endpoint (404): check llm.openai.model and base_url (${err.message})`, {
        kind: 'client_error',
        retryable: false,
        cause: err,
      });
    }
    return err;
  }
}

const estimate = (text: string) => Math.ceil(text.length / 4);

/** The key and URL from options and environment; a missing key is a config error that says where to set it. */
export function resolveChatConnection(options: Pick<OpenAIChatOptions, 'api_key' | 'base_url'>, env: NodeJS.ProcessEnv = process.env): { apiKey: string; keySource: string; baseURL: string } {
  const baseURL = options.base_url ?? (env.OPENAI_BASE_URL?.trim() || DEFAULT_BASE_URL);
  const apiKey = options.api_key ?? env.OPENAI_API_KEY?.trim();
  if (!apiKey) {
    throw new LivedexError('config_error', `llm.openai.api_key: no API key for ${baseURL}; set OPENAI_API_KEY or llm.openai.api_key (use "none" for a local server that needs no key)`, {
      field: 'llm.openai.api_key',
    });
  }
  return { apiKey, keySource: options.api_key !== undefined ? 'llm.openai.api_key' : 'OPENAI_API_KEY', baseURL };
}

export const openaiChat = definePlugin({
  kind: 'llm',
  name: 'openai',
  description: 'Chat completions from OpenAI or any OpenAI-compatible server (base_url), limited, retried and timed out; streaming and tool calls.',
  options: openaiChatOptions,
  create: (options, ctx) => {
    const { model, base_url, api_key, temperature, max_tokens, ...machine } = options;
    const connection = resolveChatConnection({ api_key, base_url });
    const chat = new OpenAIChatModel({
      model,
      baseURL: connection.baseURL,
      apiKey: connection.apiKey,
      keySource: connection.keySource,
      temperature,
      ...(max_tokens !== undefined ? { maxTokens: max_tokens } : {}),
      // Our per-attempt timeout rules; the client's is only a backstop.
      timeoutMs: machine.timeout_ms * 10,
    });
    ctx.logger.info('chat model "openai"', { model, baseURL: chat.baseURL, keySource: connection.keySource });
    return wrapChatModel(chat, chatCallOptions.parse(machine), { logger: ctx.logger });
  },
});
