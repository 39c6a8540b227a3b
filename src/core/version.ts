/** @module core/version — the package's version, read from package.json (two levels up from src/core and dist/core alike). */
import { createRequire } from 'node:module';

export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
