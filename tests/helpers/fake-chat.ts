/**
 * @module tests/helpers/fake-chat — a scripted fake of OpenAI's `POST /v1/chat/completions` on
 * 127.0.0.1: JSON and SSE streaming answers (chunks, tool-call deltas, usage), JSON mode,
 * scripted faults, and a gate that holds a stream after its first chunk.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the fake does instead of answering. */
export type ChatFault =
  | { kind: 'status'; status: number; retryAfter?: string; message?: string }
  | { kind: 'hang' }
  | { kind: 'reset' };

/** The fake's answer to one request: text (streamed in `chunks` when given) or a tool call. */
export type ChatReply = { text: string; chunks?: string[] } | { toolCall: { name: string; arguments: string } };

export interface SeenChatRequest {
  n: number;
  body: Record<string, unknown>;
  messages: Array<{ role: string; content: string }>;
  /** The content of the last user message. */
  user: string;
  stream: boolean;
  jsonMode: boolean;
  toolNames: string[];
  /** Prompt tokens the fake reported for it (characters / 4 of messages and tools). */
  promptTokens: number;
  headers: IncomingMessage['headers'];
}

export interface FakeChatOptions {
  /** The script: what to answer to each request. */
  respond: (req: SeenChatRequest) => ChatReply | Promise<ChatReply>;
  /** When set, requests without `Authorization: Bearer <apiKey>` get 401. */
  apiKey?: string;
}

export interface FakeChat {
  /** API root, e.g. http://127.0.0.1:PORT/v1. */
  url: string;
  requests: SeenChatRequest[];
  /** Faults for the next chat requests, one per request, in order. */
  faults: ChatFault[];
  /** While set, a stream stops after its first content chunk until the promise resolves. */
  gate: Promise<void> | null;
  /** Responses written to the end. */
  finished: number;
  /** Responses whose client went away before the end (a cancelled call). */
  aborted: number;
  close(): Promise<void>;
}

/** A context block `[n] source` + text, as livedex numbers the documents in its prompt. */
export interface ContextBlock {
  ref: number;
  source: string;
  text: string;
}

/** Reads the numbered context blocks out of a prompt (`[n] source` on a line, the text below). */
export function parseContext(prompt: string): ContextBlock[] {
  const blocks: ContextBlock[] = [];
  const re = /^\[(\d+)\](?: (.*))?$/gm;
  const heads = [...prompt.matchAll(re)];
  heads.forEach((m, i) => {
    const start = m.index! + m[0].length + 1;
    const end = i + 1 < heads.length ? heads[i + 1]!.index! : prompt.indexOf('\n\nQuestion:', start) >= 0 ? prompt.indexOf('\n\nQuestion:', start) : prompt.length;
    blocks.push({ ref: Number(m[1]), source: m[2] ?? '', text: prompt.slice(start, end).trim() });
  });
  return blocks;
}

const tokens = (s: string) => Math.ceil(s.length / 4);

function openaiError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ error: { message, type, param: null, code: status === 401 ? 'invalid_api_key' : null } }));
}

export async function startFakeChat(opts: FakeChatOptions): Promise<FakeChat> {
  const sockets = new Set<Socket>();
  let count = 0;
  const fake: FakeChat = {
    url: '',
    requests: [],
    faults: [],
    gate: null,
    finished: 0,
    aborted: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = (req.url ?? '/').split('?')[0]!;
    if (opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${opts.apiKey}`) return openaiError(res, 401, 'Incorrect API key provided.');
    if (path !== '/v1/chat/completions' || req.method !== 'POST') return openaiError(res, 404, `Invalid URL (${req.method} ${path})`);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      return openaiError(res, 400, 'We could not parse the JSON body of your request.');
    }
    if (typeof body.model !== 'string' || !Array.isArray(body.messages) || body.messages.length === 0) {
      return openaiError(res, 400, 'you must provide a model parameter and a non-empty messages array');
    }
    const messages = (body.messages as Array<{ role: string; content: unknown }>).map((m) => ({
      role: m.role,
      content: typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? ''),
    }));
    const tools = Array.isArray(body.tools) ? (body.tools as Array<{ function: { name: string } }>) : [];
    const jsonMode = (body.response_format as { type?: string } | undefined)?.type === 'json_object';
    if (jsonMode && !messages.some((m) => /json/i.test(m.content))) {
      return openaiError(res, 400, "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.");
    }
    const seen: SeenChatRequest = {
      n: ++count,
      body,
      messages,
      user: [...messages].reverse().find((m) => m.role === 'user')?.content ?? '',
      stream: body.stream === true,
      jsonMode,
      toolNames: tools.map((t) => t.function.name),
      promptTokens: tokens(messages.map((m) => m.content).join('')) + (tools.length ? tokens(JSON.stringify(body.tools)) : 0),
      headers: req.headers,
    };
    fake.requests.push(seen);

    const fault = fake.faults.shift();
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      return openaiError(res, fault.status, fault.message ?? `fake fault ${fault.status}`, fault.retryAfter ? { 'retry-after': fault.retryAfter } : {});
    }

    const reply = await opts.respond(seen);
    const id = `chatcmpl-fake-${seen.n}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model;
    const text = 'text' in reply ? reply.text : '';
    const usage = { prompt_tokens: seen.promptTokens, completion_tokens: tokens(text || ('toolCall' in reply ? reply.toolCall.arguments : '')), total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const toolCalls = 'toolCall' in reply ? [{ id: `call_${seen.n}`, type: 'function', function: reply.toolCall }] : undefined;
    const finishReason = toolCalls ? 'tool_calls' : 'stop';

    if (!seen.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: toolCalls ? null : text, ...(toolCalls ? { tool_calls: toolCalls } : {}), refusal: null }, finish_reason: finishReason, logprobs: null }],
          usage,
        }),
      );
      fake.finished++;
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.on('close', () => {
      if (!res.writableFinished) fake.aborted++;
    });
    const send = (data: unknown) => {
      if (!res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
    };
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] });
    send(chunk({ role: 'assistant', content: '' }));
    if (toolCalls) {
      const call = toolCalls[0]!;
      send(chunk({ tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }));
      send(chunk({ tool_calls: [{ index: 0, function: { arguments: call.function.arguments } }] }));
    } else {
      const parts = 'chunks' in reply && reply.chunks ? reply.chunks : text.match(/\S+\s*/g) ?? [text];
      for (const [i, part] of parts.entries()) {
        send(chunk({ content: part }));
        if (i === 0 && fake.gate) await fake.gate;
      }
    }
    send(chunk({}, finishReason));
    if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
    if (res.destroyed) return;
    res.write('data: [DONE]\n\n');
    res.end();
    fake.finished++;
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) openaiError(res, 500, String(err));
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return fake;
}
