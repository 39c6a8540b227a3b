/**
 * A child process for the engine's crash and lock tests (run with `node --import tsx`).
 *
 *   engine-writer.ts loop <dir> <seed>      commits random batches forever (until killed);
 *                                           prints "committed <seq>" after each commit
 *   engine-writer.ts crash <dir> <seed>     commits a few batches, then one more with the
 *                                           engine told to abort between store and text index
 *   engine-writer.ts open <dir>             tries to open read-write; prints "opened" or
 *                                           "error: <message>", then waits for stdin to close
 */
import { openEngine } from '../../src/engine/index.js';
import type { DocumentOp, Engine } from '../../src/engine/types.js';
import { makeChunk, rng } from './engine-fixtures.js';

const [mode, dir, seedArg] = process.argv.slice(2);
if (!mode || !dir) {
  console.error('usage: engine-writer.ts loop|crash|open <dir> [seed]');
  process.exit(2);
}
const random = rng(Number(seedArg ?? 1));
const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];

function randomBatch(n: number): DocumentOp[] {
  const ops: DocumentOp[] = [];
  const size = 1 + Math.floor(random() * 5);
  for (let i = 0; i < size; i++) {
    const key = `doc-${Math.floor(random() * 30)}`;
    if (random() < 0.2) {
      ops.push({ op: 'delete', key });
      continue;
    }
    const count = 1 + Math.floor(random() * 4);
    const chunks = Array.from({ length: count }, (_, ordinal) => {
      // A small pool of texts, so that re-upserts keep some chunks and replace others.
      const w = WORDS[Math.floor(random() * WORDS.length)]!;
      return makeChunk(`common ${w} ${w}${Math.floor(random() * 3)} ${key}`, ordinal);
    });
    ops.push({ op: 'upsert', key, version: `v${n}-${i}`, contentHash: `h${n}-${i}`, metadata: { path: key }, chunks });
  }
  return ops;
}

async function commitSome(engine: Engine, count: number, start: number): Promise<number> {
  let n = start;
  for (; n < start + count; n++) {
    const res = await engine.commit('test-model', randomBatch(n));
    process.stdout.write(`committed ${res.seq}\n`);
  }
  return n;
}

if (mode === 'loop') {
  const engine = await openEngine(dir);
  for (let n = 0; ; n++) {
    await commitSome(engine, 1, n);
  }
} else if (mode === 'crash') {
  let engine = await openEngine(dir);
  const n = await commitSome(engine, 5 + Math.floor(random() * 10), 0);
  await engine.close();
  process.env.LIVEDEX_ENGINE_CRASH_POINT = 'after-store';
  engine = await openEngine(dir);
  // Make sure the fatal batch holds an upsert (a batch of deletes of unknown keys writes nothing).
  const ops = randomBatch(n);
  ops.push({ op: 'upsert', key: 'last-doc', version: 'v', contentHash: 'h', metadata: {}, chunks: [makeChunk('common zulu lastword', 0)] });
  process.stdout.write('crashing\n');
  await engine.commit('test-model', ops);
  process.stdout.write('not crashed\n');
  process.exit(1);
} else if (mode === 'open') {
  try {
    const engine = await openEngine(dir);
    process.stdout.write('opened\n');
    process.stdin.resume();
    process.stdin.on('end', () => void engine.close().then(() => process.exit(0)));
  } catch (err) {
    process.stdout.write(`error: ${(err as Error).message}\n`);
    process.exit(0);
  }
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
