/** @module sources — the source plugins this build registers. */
import { fsSourcePlugin } from './fs/index.js';
import { gdriveSourcePlugin } from './gdrive/index.js';
import { pushSourcePlugin } from './push/index.js';
import { s3SourcePlugin } from './s3/index.js';
import { sharepointSourcePlugin } from './sharepoint/index.js';

export { FolderSource, fsSourcePlugin, fsSourceOptionsSchema, type FsSourceOptions } from './fs/index.js';
export { createGdriveSource, gdriveSourcePlugin, gdriveSourceOptionsSchema, type GdriveSourceOptions } from './gdrive/index.js';
export { PushSource, pushSourcePlugin, pushSourceOptionsSchema, type PushSourceOptions } from './push/index.js';
export { createSharepointSource, sharepointSourcePlugin, sharepointSourceOptionsSchema, type SharepointSourceOptions } from './sharepoint/index.js';
export { S3Source, s3SourcePlugin, s3SourceOptionsSchema, type S3SourceOptions } from './s3/index.js';
export { parseSourceArg, parseSourceArgs, type SourceBlock } from './uris.js';

export const sourcePlugins = [fsSourcePlugin, s3SourcePlugin, pushSourcePlugin, gdriveSourcePlugin, sharepointSourcePlugin];
