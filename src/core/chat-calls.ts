/** @module core/chat-calls — chat model calls through the call machine: limits, retries with backoff, per-attempt timeouts, cancellation. */
import { z } from 'zod';
import { CallError, CallMachine, callOptions, type CallCounters, type CallOptions, type Clock } from './calls.js';
import { describeError } from './errors.js';
import type { ChatChunk, ChatModel, ChatRequest, ChatResult, Logger } from './types.js';

/** The call-machine options that make sense for chat (no batching: one conversation per request). */
export const chatCallOptions = z.strictObject({
  ...callOptions.pick({
    max_concurrency: true,
    requests_per_minute: true,
    tokens_per_minute: true,
    timeout_ms: true,
    max_attempts: true,
    retry_base_ms: true,
    retry_max_ms: true,
  }).shape,
  max_concurrency: z.number().int().min(1).max(1024).default(8).describe('chat requests in flight at most'),
  timeout_ms: z.number().int().min(1).default(60_000).describe('per attempt: until the whole answer (or, streaming, the first chunk and then between chunks)'),
  max_attempts: z.number().int().min(1).max(100).default(4).describe('attempts per request, the first included'),
});
export type ChatCallOptions = z.output<typeof chatCallOptions>;

/** A chat model whose calls go through the call machine; `close()` cancels them. */
export interface CallingChatModel extends ChatModel {
  readonly counters: CallCounters;
  close(): Promise<void>;
}

interface Item {
  id: number;
  req: ChatRequest;
  streaming: boolean;
  /** Aborts the call: the caller's signal, the shutdown, or (streaming) the idle timer. */
  signal: AbortSignal;
}

/** A stream whose first chunk has arrived (so the connection and the status were fine). */
interface OpenedStream {
  first: IteratorResult<ChatChunk>;
  rest: AsyncIterator<ChatChunk>;
}

const approxTokens = (req: ChatRequest) => Math.ceil(req.messages.reduce((s, m) => s + m.content.length, 0) / 4) + (req.maxTokens ?? 0);

/**
 * Wraps a chat model so that every call is limited (concurrency, requests and tokens per
 * minute), retried with exponential backoff and full jitter (honouring `Retry-After`; never on
 * 400/401/403/404) and timed out per attempt. A stream is retried until its first chunk
 * arrives; after that, a broken stream ends with the error (the words already sent cannot be
 * taken back) and a silence longer than `timeout_ms` is a timeout. Nothing is cached: an
 * answer depends on a live index.
 *
 * @example
 * const chat = wrapChatModel(new OpenAIChatModel({ … }), chatCallOptions.parse({ max_attempts: 3 }), { logger });
 * const { text } = await chat.complete({ messages: [{ role: 'user', content: 'Hi' }] });
 */
export function wrapChatModel(model: ChatModel, options: ChatCallOptions, deps: { logger: Logger; clock?: Clock }): CallingChatModel {
  const what = `chat model ${model.name}:${model.model}`;
  const machineOptions: CallOptions = callOptions.parse({ ...options, max_batch_items: 1, flush_ms: 0 });
  const closing = new AbortController();
  let nextId = 0;
  const machine = new CallMachine<Item, ChatResult | OpenedStream>(
    {
      what,
      key: (item) => String(item.id),
      tokens: (item) => approxTokens(item.req),
      call: async ([item], attemptSignal) => {
        const signal = AbortSignal.any([attemptSignal, item!.signal]);
        if (!item!.streaming) return [await model.complete(item!.req, signal)];
        const rest = model.stream(item!.req, signal)[Symbol.asyncIterator]();
        return [{ first: await rest.next(), rest }];
      },
    },
    machineOptions,
    { logger: deps.logger, cache: null, ...(deps.clock ? { clock: deps.clock } : {}) },
  );

  const item = (req: ChatRequest, streaming: boolean, signal: AbortSignal): Item => ({ id: ++nextId, req, streaming, signal });

  async function* stream(req: ChatRequest, callerSignal?: AbortSignal): AsyncGenerator<ChatChunk> {
    // Aborts the stream for good: the caller left, the server shuts down, or the model went quiet.
    const control = new AbortController();
    const signals = [closing.signal, ...(callerSignal ? [callerSignal] : [])];
    const onAbort = (s: AbortSignal) => () => control.abort(s.reason);
    const listeners = signals.map((s) => {
      const l = onAbort(s);
      if (s.aborted) l();
      else s.addEventListener('abort', l, { once: true });
      return [s, l] as const;
    });
    let opened: OpenedStream | null = null;
    try {
      opened = (await machine.run([item(req, true, control.signal)], callerSignal))[0] as OpenedStream;
      let step = opened.first;
      while (!step.done) {
        yield step.value;
        step = await nextWithin(opened.rest, options.timeout_ms, control, what);
      }
    } catch (err) {
      if (err instanceof CallError || callerSignal?.aborted) throw err;
      throw new CallError(`${what}: the answer stream broke: ${describeError(err)}`, { kind: 'connection', attempts: 1, transient: true, cause: err });
    } finally {
      for (const [s, l] of listeners) s.removeEventListener('abort', l);
      // A consumer that stops early (or an error) must not leave the HTTP stream open.
      if (!control.signal.aborted) control.abort(new Error('stream closed'));
      await opened?.rest.return?.().catch(() => {});
    }
  }

  return {
    name: model.name,
    model: model.model,
    counters: machine.counters,
    complete: async (req, signal) => {
      const callSignal = signal ? AbortSignal.any([signal, closing.signal]) : closing.signal;
      return (await machine.run([item(req, false, callSignal)], signal))[0] as ChatResult;
    },
    stream,
    close: async () => {
      closing.abort(new Error('shutting down'));
      await machine.close();
      await model.close?.();
    },
  };
}

/** The next chunk, or a timeout error (aborting the stream) when none comes within `ms`. */
async function nextWithin(it: AsyncIterator<ChatChunk>, ms: number, control: AbortController, what: string): Promise<IteratorResult<ChatChunk>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new CallError(`${what}: no chunk of the answer stream within ${ms} ms (timeout_ms)`, { kind: 'timeout', attempts: 1, transient: true });
      control.abort(err);
      reject(err);
    }, ms);
  });
  timeout.catch(() => {});
  try {
    return await Promise.race([it.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
