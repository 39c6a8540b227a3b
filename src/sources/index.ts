/** @module sources — the source plugins this build registers. */
import { fsSourcePlugin } from './fs/index.js';

export { FolderSource, fsSourcePlugin, fsSourceOptionsSchema, type FsSourceOptions } from './fs/index.js';

export const sourcePlugins = [fsSourcePlugin];
