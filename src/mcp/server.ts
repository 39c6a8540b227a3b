/**
 * @module mcp/server — the MCP server of a live index, one `Server` per session, fed by one hub
 * that turns the index's change feed into resource notifications.
 *
 * Built on the SDK's protocol-level `Server` rather than `McpServer`: the tools validate their
 * arguments with the REST routes' own parsing (same coercions, same messages naming the field)
 * and resources need cursor pagination and subscriptions, which `McpServer` does not expose.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { describeError, LivedexError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import type { IndexChange, LiveIndexApi, Logger } from '../core/types.js';
import {
  DOCUMENT_URI_TEMPLATE,
  documentKeyOf,
  documentUri,
  listDocumentResources,
  readDocumentResource,
  RESOURCE_NOT_FOUND,
} from './resources.js';
import { toolJsonSchema } from './json-schema.js';
import { buildTools, type ToolDefinition, type ToolOptions } from './tools.js';
import { VERSION } from '../core/version.js';

export interface McpHubOptions extends ToolOptions {
  /** Where tool failures that are not the caller's fault are logged; silent by default. */
  logger?: Logger;
  /** Document resources per `resources/list` page (default 100). */
  pageSize?: number;
  /** The version the server reports (default the package version). */
  version?: string;
}

const INSTRUCTIONS =
  'livedex keeps a live hybrid (BM25 + vector) index over documents that change. Use `retrieve` to search ' +
  '(hits carry metadata.path, modified_at and indexed_at, in Unix seconds), `get_document` to read a whole ' +
  'document, `list_documents` and `statistics` for what is indexed, `index_status` to know whether the index ' +
  'is up to date. Documents are also resources (livedex://documents/{key}); subscribe to one to hear when it changes.';

const READ_ONLY = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false } as const;

interface Session {
  server: Server;
  /** Resource URIs the client subscribed to. */
  subscriptions: Set<string>;
}

/** A tool error: the message (with the field at fault) as text, the error object in `_meta`. */
function toolError(err: unknown, logger: Logger, tool: string): CallToolResult {
  if (err instanceof LivedexError && err.status < 500) {
    const where = err.field ? ` (field: ${err.field})` : '';
    return { isError: true, content: [{ type: 'text', text: `${err.code}${where}: ${err.message}` }], _meta: { 'livedex/error': err.toJSON().error } };
  }
  if (err instanceof LivedexError) {
    // 5xx: the index or a model failed; the message says what to do and carries no secrets.
    logger.warn('MCP tool failed', { tool, code: err.code, error: err.message });
    return { isError: true, content: [{ type: 'text', text: `${err.code}: ${err.message}` }], _meta: { 'livedex/error': err.toJSON().error } };
  }
  logger.error('MCP tool failed', { tool, error: describeError(err), stack: err instanceof Error ? err.stack : undefined });
  const error = { code: 'internal', message: 'internal server error; the server log has the details' };
  return { isError: true, content: [{ type: 'text', text: `${error.code}: ${error.message}` }], _meta: { 'livedex/error': error } };
}

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => toolJsonSchema(schema, io) as Tool['inputSchema'];

/**
 * Serves one live index to any number of MCP sessions: builds a `Server` per session and tells
 * the sessions when documents change (`notifications/resources/updated` to subscribers of a
 * document, `notifications/resources/list_changed` when documents come or go).
 *
 * @example
 * const hub = new McpHub(index, { logger });
 * await hub.createServer().connect(new StdioServerTransport());
 * // …
 * await hub.close();
 */
export class McpHub {
  readonly #index: LiveIndexApi;
  readonly #opts: McpHubOptions;
  readonly #logger: Logger;
  readonly #tools: Map<string, ToolDefinition>;
  readonly #listing: Tool[];
  readonly #sessions = new Set<Session>();
  readonly #unsubscribe: () => void;
  /** Keys of the stored documents, to tell a new or removed document from a changed one. */
  #known: Promise<Set<string>> | null = null;
  #changes: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(index: LiveIndexApi, opts: McpHubOptions = {}) {
    this.#index = index;
    this.#opts = opts;
    this.#logger = opts.logger ?? silentLogger;
    const tools = buildTools(index, opts);
    this.#tools = new Map();
    this.#listing = [];
    for (const tool of tools) {
      for (const name of [tool.name, ...tool.aliases]) {
        this.#tools.set(name, tool);
        const alias = name !== tool.name;
        this.#listing.push({
          name,
          title: alias ? `${tool.title} (Pathway's name for ${tool.name})` : tool.title,
          description: alias ? `Alias of \`${tool.name}\`, Pathway's tool name. ${tool.description}` : tool.description,
          inputSchema: jsonSchema(tool.input, 'input'),
          ...(tool.output ? { outputSchema: jsonSchema(tool.output, 'output') as Tool['outputSchema'] } : {}),
          annotations: { title: tool.title, ...READ_ONLY },
        });
      }
    }
    this.#unsubscribe = index.onChange((change) => {
      this.#changes = this.#changes.then(() => this.#fanOut(change)).catch((err) => this.#logger.warn('MCP change notification failed', { error: describeError(err) }));
    });
  }

  /** Sessions currently connected. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** A new MCP `Server` for one session over this index; connect it to a transport. */
  createServer(): Server {
    if (this.#closed) throw new LivedexError('not_ready', 'the MCP server is shutting down');
    const server = new Server(
      { name: 'livedex', version: this.#opts.version ?? VERSION },
      { capabilities: { tools: { listChanged: false }, resources: { subscribe: true, listChanged: true } }, instructions: INSTRUCTIONS },
    );
    const session: Session = { server, subscriptions: new Set() };
    this.#sessions.add(session);
    server.onclose = () => void this.#sessions.delete(session);
    // Known before the first change this session could hear about.
    this.#knownKeys().catch(() => {});

    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: this.#listing }));
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const tool = this.#tools.get(request.params.name);
      if (!tool) throw new McpError(ErrorCode.InvalidParams, `no tool named ${JSON.stringify(request.params.name)}; tools/list has the names`);
      try {
        const { structured, text } = await tool.run(request.params.arguments, extra.signal);
        return { content: [{ type: 'text', text }], structuredContent: structured };
      } catch (err) {
        return toolError(err, this.#logger, tool.name);
      }
    });

    server.setRequestHandler(ListResourcesRequestSchema, (request) =>
      listDocumentResources(this.#index, request.params?.cursor, this.#opts.pageSize ?? 100),
    );
    server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
      resourceTemplates: [
        {
          uriTemplate: DOCUMENT_URI_TEMPLATE,
          name: 'document',
          title: 'A document of the index',
          description: 'The text of one document (its chunks in order) and its status and metadata; {key} is the URI-encoded document key.',
          mimeType: 'text/plain',
        },
      ],
    }));
    server.setRequestHandler(ReadResourceRequestSchema, (request) => readDocumentResource(this.#index, request.params.uri));
    server.setRequestHandler(SubscribeRequestSchema, (request) => {
      const { uri } = request.params;
      if (documentKeyOf(uri) === null) throw new McpError(RESOURCE_NOT_FOUND, `resource ${uri} is not a document: use ${DOCUMENT_URI_TEMPLATE}`, { uri });
      // A document not indexed yet may be subscribed to: its first indexing is an update.
      session.subscriptions.add(uri);
      return {};
    });
    server.setRequestHandler(UnsubscribeRequestSchema, (request) => {
      session.subscriptions.delete(request.params.uri);
      return {};
    });
    return server;
  }

  #knownKeys(): Promise<Set<string>> {
    this.#known ??= this.#index.listDocumentInfos().then(
      (infos) => new Set(infos.map((d) => d.key)),
      (err) => {
        this.#known = null;
        throw err;
      },
    );
    return this.#known;
  }

  async #fanOut(change: IndexChange): Promise<void> {
    if (this.#known === null && this.#sessions.size === 0) return;
    const known = await this.#knownKeys();
    let listChanged = false;
    for (const key of change.updated) {
      if (!known.has(key)) {
        known.add(key);
        listChanged = true;
      }
    }
    for (const key of change.deleted) if (known.delete(key)) listChanged = true;
    const uris = [...change.updated, ...change.deleted].map(documentUri);
    for (const { server, subscriptions } of this.#sessions) {
      // A closed transport rejects: that session is going away, nothing to tell it.
      for (const uri of uris) if (subscriptions.has(uri)) server.sendResourceUpdated({ uri }).catch(() => {});
      if (listChanged) server.sendResourceListChanged().catch(() => {});
    }
  }

  /** Closes every session and stops following the index. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    await Promise.all([...this.#sessions].map((s) => s.server.close().catch(() => {})));
    this.#sessions.clear();
  }
}
