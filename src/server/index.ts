/** @module server — the REST server: the Hono app, its schemas and a Node listener. */
export { createApp } from './app.js';
export type { AppOptions } from './app.js';
export { startServer } from './start.js';
export type { RunningServer, StartServerOptions } from './start.js';
export * from './schemas.js';
