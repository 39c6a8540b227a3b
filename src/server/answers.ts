/**
 * @module server/answers — the answer routes: Pathway's `/v2/answer` and `/v2/summarize` (and their
 * `/v1/pw_ai_*` aliases), streamed as server-sent events on request, and an OpenAI-compatible
 * `/v1/chat/completions` that answers from the documents.
 */
import { randomUUID } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { noChatModelError } from '../core/answer.js';
import { LivedexError, describeError } from '../core/errors.js';
import type { AnswerApi, AnswerEvent, AnswerRequest, AnswerResult, ChatMessage, Logger } from '../core/types.js';
import { readFields } from './request.js';
import {
  answerRequestSchema,
  chatCompletionRequestSchema,
  coerceWireValues,
  parseWire,
  summarizeRequestSchema,
  toAnswerRequest,
  toSummarizeRequest,
  type ChatCompletionRequestWire,
} from './schemas.js';

const ANSWER_ROUTES = ['/v2/answer', '/v1/pw_ai_answer'] as const;
const SUMMARIZE_ROUTES = ['/v2/summarize', '/v1/pw_ai_summary'] as const;
/** The model name of livedex itself on the OpenAI-compatible endpoint: the configured chat model. */
export const LIVEDEX_MODEL = 'livedex';

/**
 * Mounts the answer routes on `app`. Without `answerer` (no chat model configured) every one of
 * them answers 503, naming the option to set.
 *
 * @example
 * mountAnswerRoutes(app, new Answerer({ index, chat, config: config.answer, logger }), { logger });
 */
export function mountAnswerRoutes(app: Hono, answerer: AnswerApi | undefined, opts: { logger: Logger }): void {
  const need = (): AnswerApi => {
    if (!answerer) throw noChatModelError();
    return answerer;
  };

  const answer = async (c: Context) => {
    const api = need();
    const wire = parseWire(answerRequestSchema, coerceWireValues(await readFields(c)));
    const req = toAnswerRequest(wire);
    const streaming = wire.stream ?? acceptsEventStream(c);
    const abort = linkedAbort(c);
    if (!streaming) return c.json(answerBody(await api.answer(req, abort.signal)));
    return eventStream(api.answerStream(req, abort.signal), abort, opts.logger, (event) => ({ event: event.type, data: answerEventData(event) }));
  };
  for (const route of ANSWER_ROUTES) app.on(['GET', 'POST'], route, answer);

  const summarize = async (c: Context) => {
    const api = need();
    const wire = parseWire(summarizeRequestSchema, await readFields(c));
    return c.json(await api.summarize(toSummarizeRequest(wire), linkedAbort(c).signal));
  };
  for (const route of SUMMARIZE_ROUTES) app.on(['GET', 'POST'], route, summarize);

  app.post('/v1/chat/completions', async (c) => {
    const api = need();
    const wire = parseWire(chatCompletionRequestSchema, coerceWireValues(await readFields(c)));
    const req = toChatAnswerRequest(wire);
    const model = wire.model || LIVEDEX_MODEL;
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const abort = linkedAbort(c);
    if (!wire.stream) {
      const result = await api.answer(req, abort.signal);
      return c.json({
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: result.response, refusal: null }, finish_reason: 'stop', logprobs: null }],
        usage: totalUsage(result),
        citations: result.citations,
        context_docs: result.context_docs ?? [],
      });
    }
    const includeUsage = wire.stream_options?.include_usage === true;
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({ id, object: 'chat.completion.chunk', created, model, choices, ...extra });
    let first = true;
    return eventStream(
      api.answerStream(req, abort.signal),
      abort,
      opts.logger,
      (event) => {
        if (event.type === 'token') {
          const delta = first ? { role: 'assistant', content: event.text } : { content: event.text };
          first = false;
          return { data: chunk([{ index: 0, delta, finish_reason: null, logprobs: null }]) };
        }
        const { result } = event;
        const messages = [
          { data: chunk([{ index: 0, delta: {}, finish_reason: 'stop', logprobs: null }], { citations: result.citations, context_docs: result.context_docs ?? [] }) },
        ];
        if (includeUsage) messages.push({ data: chunk([], { usage: totalUsage(result) }) });
        return messages;
      },
      '[DONE]',
    );
  });

  app.get('/v1/models', (c) => {
    const api = need();
    const created = Math.floor(Date.now() / 1000);
    const ids = [LIVEDEX_MODEL, ...(api.models ?? [])];
    return c.json({ object: 'list', data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'livedex' })) });
  });
}

/** True when the client asked for server-sent events. */
function acceptsEventStream(c: Context): boolean {
  return (c.req.header('accept') ?? '').toLowerCase().includes('text/event-stream');
}

/** Aborts the answer (and the model call under it) when the client goes away. */
function linkedAbort(c: Context): AbortController {
  const controller = new AbortController();
  const signal = c.req.raw.signal;
  if (signal.aborted) controller.abort(signal.reason);
  else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  return controller;
}

/** The `/v2/answer` body: Pathway's `{response, context_docs?}`, then our fields. */
function answerBody(result: AnswerResult): Record<string, unknown> {
  return {
    response: result.response,
    ...(result.context_docs ? { context_docs: result.context_docs } : {}),
    citations: result.citations,
    answered: result.answered ?? true,
    usage: result.usage,
  };
}

function answerEventData(event: AnswerEvent): unknown {
  return event.type === 'token' ? { type: 'token', text: event.text } : { type: 'done', ...answerBody(event.result) };
}

function totalUsage(result: AnswerResult) {
  const { prompt_tokens, completion_tokens } = result.usage;
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
}

/** The text of an OpenAI message content: a string, or the text parts of an array. */
function contentText(content: ChatCompletionRequestWire['messages'][number]['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (p.type === 'text' && typeof p.text === 'string' ? p.text : '')).join('');
  return '';
}

/** The last user message is the question; the turns before it are the history. */
function toChatAnswerRequest(wire: ChatCompletionRequestWire): AnswerRequest {
  const messages = wire.messages.map((m) => ({ role: m.role, content: contentText(m.content) }));
  let last = -1;
  messages.forEach((m, i) => {
    if (m.role === 'user') last = i;
  });
  if (last < 0 || messages[last]!.content.trim() === '') {
    throw new LivedexError('invalid_request', 'messages must contain a user message with text: the question to answer', { field: 'messages' });
  }
  // Tool messages and empty turns carry nothing the answer prompt can use.
  const roles: Record<string, ChatMessage['role']> = { user: 'user', assistant: 'assistant', system: 'system', developer: 'system' };
  const history: ChatMessage[] = messages
    .slice(0, last)
    .filter((m) => roles[m.role] !== undefined && m.content !== '')
    .map((m) => ({ role: roles[m.role]!, content: m.content }));
  const model = wire.model && wire.model !== LIVEDEX_MODEL ? wire.model : null;
  return {
    prompt: messages[last]!.content,
    metadataFilter: wire.metadata_filter || null,
    filepathGlobpattern: wire.filepath_globpattern || null,
    model,
    returnContextDocs: true,
    ...(history.length > 0 ? { history } : {}),
  };
}

interface SseMessage {
  event?: string;
  data: unknown;
}

function formatSse(message: SseMessage): string {
  const data = typeof message.data === 'string' ? message.data : JSON.stringify(message.data);
  return `${message.event ? `event: ${message.event}\n` : ''}data: ${data}\n\n`;
}

/**
 * Streams `events` as server-sent events. The first event is awaited before answering, so that
 * a failure before it (a bad model name, a model down after its retries) is a plain HTTP error;
 * a failure after it is sent as an `error` event. The client leaving aborts the answer.
 */
async function eventStream<E>(
  events: AsyncIterable<E>,
  abort: AbortController,
  logger: Logger,
  format: (event: E) => SseMessage | SseMessage[],
  end?: string,
): Promise<Response> {
  const it = events[Symbol.asyncIterator]();
  const first = await it.next();
  const encoder = new TextEncoder();
  const encode = (event: E) => encoder.encode(([] as SseMessage[]).concat(format(event)).map(formatSse).join(''));
  let finished = false;
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    finished = true;
    if (end) controller.enqueue(encoder.encode(formatSse({ data: end })));
    controller.close();
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.done) finish(controller);
      else controller.enqueue(encode(first.value));
    },
    async pull(controller) {
      if (finished) return;
      try {
        const step = await it.next();
        if (step.done) finish(controller);
        else controller.enqueue(encode(step.value));
      } catch (err) {
        const error = err instanceof LivedexError ? err.toJSON().error : { code: 'internal', message: 'internal server error; the server log has the details' };
        logger.error('answer stream failed', { error: describeError(err) });
        finished = true;
        controller.enqueue(encoder.encode(formatSse({ event: 'error', data: { type: 'error', error } })));
        controller.close();
      }
    },
    async cancel(reason) {
      finished = true;
      abort.abort(reason ?? new Error('the client went away'));
      await it.return?.().catch(() => {});
    },
  });
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' },
  });
}
