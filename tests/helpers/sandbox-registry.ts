/** Test registry for the parse sandbox: the built-in plugins plus parsers that misbehave on purpose. */
import { threadId } from 'node:worker_threads';
import { z } from 'zod';
import { LivedexError } from '../../src/core/errors.js';
import { definePlugin, type Registry } from '../../src/core/registry.js';
import type { ParsedPart, ParseInput, Parser } from '../../src/core/types.js';
import { builtinRegistry as realRegistry } from '../../src/plugins.js';

const noOptions = z.strictObject({});
const textOf = (input: ParseInput): string => new TextDecoder().decode(input.bytes);

function testParser(name: string, description: string, parse: (input: ParseInput) => Promise<ParsedPart[]>) {
  return definePlugin({
    kind: 'parser',
    name,
    description,
    options: noOptions,
    // A server given this registry loads these parsers in its workers from this module.
    module: import.meta.url,
    create: (): Parser => ({ name, extensions: [`.${name}`], parse }),
  });
}

/** `.loop`: never returns, without ever yielding to the event loop. */
export const loopParser = testParser('loop', 'spins forever (tests only)', async () => {
  for (;;) {
    // busy
  }
});

/** `.hog`: keeps allocating until the heap limit stops it. */
export const hogParser = testParser('hog', 'allocates until out of memory (tests only)', async () => {
  const kept: number[][] = [];
  for (;;) kept.push(new Array(100_000).fill(kept.length));
});

/** `.boom`: throws; `plain` in the file throws a RangeError with a `code`, anything else a LivedexError. */
export const boomParser = testParser('boom', 'throws (tests only)', async (input) => {
  if (textOf(input).includes('plain')) throw Object.assign(new RangeError('plain boom'), { code: 'E_BOOM' });
  throw new LivedexError('parse_failed', 'boom', { field: 'parsers.boom' });
});

/** `.slow`: waits as many milliseconds as the file says, then returns its key. */
export const slowParser = testParser('slow', 'sleeps (tests only)', async (input) => {
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, Number(textOf(input))));
  return [{ text: input.key, metadata: { byteLength: input.bytes.byteLength, started, ended: Date.now(), thread: threadId } }];
});

/** `.exit`: ends its thread the hard way. */
export const exitParser = testParser('exit', 'exits its worker (tests only)', async () => process.exit(3));

/** `.chatty`: logs through the logger its factory was given, and returns nothing. */
export const chattyParser = definePlugin({
  kind: 'parser',
  name: 'chatty',
  description: 'logs (tests only)',
  options: noOptions,
  create: (_options, ctx): Parser => ({
    name: 'chatty',
    extensions: ['.chatty'],
    async parse(input) {
      ctx.logger.info('parsing', { key: input.key, dataDir: ctx.dataDir });
      return [];
    },
  }),
});

export function builtinRegistry(): Registry {
  return realRegistry().register(loopParser, hogParser, boomParser, slowParser, exitParser, chattyParser);
}
