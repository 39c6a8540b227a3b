/** @module splitters — the splitter plugins of this package, for the registry. */
import { tokenSplitter } from './token.js';

export { tokenSplitter, TokenSplitter, TokenCounter, loadTokenCounter } from './token.js';

export const splitterPlugins = [tokenSplitter] as const;
