/** @module server/app — the REST routes of livedex over a live index, wire-compatible with Pathway's document store. */
import { Hono } from 'hono';
import type { Context } from 'hono';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { getPath } from 'hono/utils/url';
import { LivedexError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import type { AnswerApi, LiveIndexApi, Logger, RetrievalMode } from '../core/types.js';
import { mountMcp, type McpSessionLimits } from '../mcp/http.js';
import { mountAnswerRoutes } from './answers.js';
import { errorBody, respondToError } from './errors.js';
import { createMetrics, mountMetrics } from './metrics.js';
import { mountOpenApi } from './openapi.js';
import { mountPush, type PushRouteOptions } from './push.js';
import { readFields } from './request.js';
import { DEFAULT_MAX_RESPONSE_BYTES, respondWithHits, respondWithListing } from './response.js';
import { mountSecurity, type SecurityOptions } from './security.js';
import { mountStatusPage } from './ui/page.js';
import {
  DEFAULT_K,
  DEFAULT_MODE,
  DEFAULT_MAX_K,
  ListDocumentsRequestSchema,
  StatisticsRequestSchema,
  coerceWireValues,
  parseWire,
  retrieveRequestSchema,
  toListDocumentsRequest,
  toRetrieveRequest,
} from './schemas.js';

export interface AppOptions {
  /** Where request failures (500s) are logged; silent by default. */
  logger?: Logger;
  /** `k` when a request gives none (default 3, as Pathway's clients). */
  defaultK?: number;
  /** `mode` when a request gives none (`retrieval.default_mode`; default hybrid). */
  defaultMode?: RetrievalMode;
  /** The largest `k` accepted (default 1000); larger asks are a 400. */
  maxK?: number;
  /** Push ingestion (`PUT`/`DELETE /v1/documents/{key}`); absent: those routes say it is off (404). */
  push?: PushRouteOptions;
  /** Answers questions (`/v2/answer`, `/v2/summarize`, `/v1/chat/completions`); absent: those routes answer 503. */
  answerer?: AnswerApi;
  /** Serve MCP (streamable HTTP) at `/mcp` over the same index and schemas (default true). */
  mcp?: boolean;
  /** How many MCP sessions stay open, and for how long unused. */
  mcpSessions?: McpSessionLimits;
  /** Tokens, CORS and limits (see `securityFor`); absent: open, unlimited (tests, embedding). */
  security?: SecurityOptions;
  /** Aborted when the server stops: long-lived connections (MCP sessions) end. */
  signal?: AbortSignal;
  /** Serve Prometheus metrics at `/metrics` (behind the token like every route; default true). */
  metrics?: boolean;
  /** Largest answer of `/v1/retrieve` (hits past it left out) and of the listings (refused past it); default 32 MiB. */
  maxResponseBytes?: number;
}

/**
 * The request path with doubled slashes collapsed and any trailing slash dropped, so that
 * `//v1/retrieve` (a base URL ending in `/`) and `/v1/retrieve/` reach `/v1/retrieve`
 * without a redirect (a 301/302 would turn a client's POST into a GET).
 */
function normalizedPath(request: Request): string {
  const path = getPath(request).replace(/\/{2,}/g, '/');
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

const LIST_DOCUMENTS_ROUTES = ['/v1/inputs', '/v2/list_documents', '/v1/pw_list_documents'] as const;

/**
 * Builds the REST app over `index`: `/v1/retrieve`, `/v1/statistics`, `/v1/inputs` (and its
 * aliases `/v2/list_documents`, `/v1/pw_list_documents`), `GET /v1/documents/{key}` (and, with
 * a push source, `PUT`/`DELETE` on it: see `server/push.ts`),
 * `GET /v1/status` (queue, counts by status), `/healthz` and `/readyz`. Every route but the last three takes GET (query string) and
 * POST (JSON body, query string filling missing keys); every error is JSON.
 *
 * @example
 * const app = createApp(index, { logger });
 * const server = await startServer(app, { host: '127.0.0.1', port: 8000 });
 */
export function createApp(index: LiveIndexApi, opts: AppOptions = {}): Hono {
  const logger = opts.logger ?? silentLogger;
  const defaultK = opts.defaultK ?? DEFAULT_K;
  const defaultMode = opts.defaultMode ?? DEFAULT_MODE;
  const retrieveSchema = retrieveRequestSchema({ maxK: opts.maxK ?? DEFAULT_MAX_K });
  const maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const app = new Hono({ getPath: normalizedPath });
  const metrics = opts.metrics === false ? null : createMetrics(index);
  if (metrics) {
    // Refusals by the security middleware are counted too.
    app.use(metrics.countErrors);
    index = metrics.instrument(index);
    opts.signal?.addEventListener('abort', () => metrics.close(), { once: true });
  }
  if (opts.security) mountSecurity(app, opts.security);

  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        c.json(
          errorBody('method_not_allowed', `${c.req.method} is not allowed on ${c.req.path}; use ${methods.join(' or ')}`),
          405,
          { Allow: methods.join(', ') },
        ),
    }),
  );

  app.on(['GET', 'POST'], '/v1/retrieve', async (c) => {
    const wire = parseWire(retrieveSchema, coerceWireValues(await readFields(c)));
    const hits = await index.retrieve(toRetrieveRequest(wire, { k: defaultK, mode: defaultMode }));
    return respondWithHits(c, hits, maxResponseBytes);
  });

  app.on(['GET', 'POST'], '/v1/statistics', async (c) => {
    parseWire(StatisticsRequestSchema, await readFields(c));
    return c.json(await index.statistics());
  });

  const listDocuments = async (c: Context) => {
    const wire = parseWire(ListDocumentsRequestSchema, coerceWireValues(await readFields(c)));
    return respondWithListing(c, await index.listDocuments(toListDocumentsRequest(wire)), maxResponseBytes);
  };
  for (const route of LIST_DOCUMENTS_ROUTES) app.on(['GET', 'POST'], route, listDocuments);

  app.get('/v1/documents/:key{.+}', async (c) => {
    const key = c.req.param('key');
    const doc = await index.getDocument(key);
    if (!doc) throw new LivedexError('not_found', `no document with key ${JSON.stringify(key)}`, { field: 'key' });
    return c.json(doc);
  });

  app.get('/v1/status', async (c) => c.json(await index.status()));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  if (metrics) mountMetrics(app, metrics);
  mountOpenApi(app);
  mountStatusPage(app);

  app.get('/readyz', async (c) => {
    if (index.isReady()) return c.json({ ready: true });
    let detail: Record<string, unknown> = {};
    try {
      const status = await index.status();
      detail = { documents: status.documents, queue: status.queue };
    } catch {
      // readiness must answer even when the status does not
    }
    return c.json({ ready: false, reason: 'the first indexing of the sources is not finished', ...detail }, 503);
  });

  mountAnswerRoutes(app, opts.answerer, { logger });

  mountPush(app, opts.push);

  if (opts.mcp !== false) {
    mountMcp(app, index, { ...opts.mcpSessions, logger, defaultK, defaultMode, maxK: opts.maxK ?? DEFAULT_MAX_K, maxResponseBytes, ...(opts.answerer ? { answer: opts.answerer } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  app.notFound((c) => c.json(errorBody('not_found', `no route for ${c.req.method} ${c.req.path}`), 404));
  app.onError((err, c) => respondToError(err, c, logger));
  return app;
}
