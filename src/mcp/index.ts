/** @module mcp — the live index as an MCP server: tools, document resources and change notifications, over streamable HTTP or stdio. */
export { McpHub } from './server.js';
export type { McpHubOptions } from './server.js';
export { McpHttpHandler, mountMcp } from './http.js';
export type { McpHttpOptions } from './http.js';
export { relayStdio, serveStdio } from './stdio.js';
export type { StdioOptions, StdioSession } from './stdio.js';
export { buildTools } from './tools.js';
export type { ToolDefinition, ToolOptions } from './tools.js';
export { DOCUMENT_URI_TEMPLATE, documentKeyOf, documentUri } from './resources.js';
