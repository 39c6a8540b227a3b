/** @module splitters — the splitter plugins of this package, for the registry. */
import { recursiveSplitter } from './recursive.js';
import { structureSplitter } from './structure.js';
import { tokenSplitter } from './token.js';

export { tokenSplitter, TokenSplitter, TokenCounter, loadTokenCounter } from './token.js';
export { recursiveSplitter, RecursiveSplitter, DEFAULT_SEPARATORS } from './recursive.js';
export { structureSplitter, StructureSplitter, isTableRow, RANGE_KEYS } from './structure.js';

export const splitterPlugins = [tokenSplitter, recursiveSplitter, structureSplitter] as const;
