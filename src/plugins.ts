/** @module plugins — the built-in plugins, registered by name; the only place that imports every plugin room. */
import { Registry } from './core/registry.js';
import { vectorIndexPlugins } from './indexes/index.js';
import { chatModelPlugins, embedderPlugins } from './models/index.js';
import { optInParserPlugins, parserPlugins } from './parsers/index.js';
import { sourcePlugins } from './sources/index.js';
import { splitterPlugins } from './splitters/index.js';

export function builtinRegistry(): Registry {
  return new Registry().register(...parserPlugins, ...optInParserPlugins, ...splitterPlugins, ...embedderPlugins, ...chatModelPlugins, ...sourcePlugins, ...vectorIndexPlugins);
}
