/**
 * @module models/local-worker — a worker thread that holds one local model: onnxruntime-node's
 * `run()` computes on the thread that calls it (its promise only defers the start), so the
 * model runs here and the main thread keeps serving while it does.
 *
 * Protocol: workerData = {@link LocalLoadOptions}; the worker answers `ready` (or `failed`),
 * then one `result` or `error` per `embed` request, by id; `log` messages carry warnings.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LivedexError } from '../core/errors.js';
import type { Logger } from '../core/types.js';
import { LocalEmbedder, type LocalLoadOptions } from './local.js';
import type { LocalWireError, LocalWorkerEvent, LocalWorkerRequest } from './local-wire.js';

const port = parentPort!;
const post = (event: LocalWorkerEvent, transfer: ArrayBuffer[] = []) => port.postMessage(event, transfer);

function wire(err: unknown): LocalWireError {
  if (err instanceof LivedexError) return { message: err.message, code: err.code, ...(err.field ? { field: err.field } : {}) };
  return { message: err instanceof Error ? err.message : String(err) };
}

const logger: Logger = {
  debug: () => {},
  info: (msg) => post({ kind: 'log', level: 'info', msg }),
  warn: (msg) => post({ kind: 'log', level: 'warn', msg }),
  error: (msg) => post({ kind: 'log', level: 'warn', msg }),
};

let embedder: LocalEmbedder | undefined;
try {
  embedder = await LocalEmbedder.load({ ...(workerData as LocalLoadOptions), logger });
  post({ kind: 'ready', modelKey: embedder.modelKey, dimensions: embedder.dimensions, dir: embedder.dir, dtype: embedder.dtype, maxTokens: embedder.maxTokens });
} catch (err) {
  post({ kind: 'failed', error: wire(err) });
}

port.on('message', async (req: LocalWorkerRequest) => {
  if (!embedder) return post({ kind: 'error', id: req.id, error: { message: 'the model did not load' } });
  try {
    const vectors = req.kind === 'query' ? [await embedder.embedQuery(req.texts[0] ?? '')] : await embedder.embed(req.texts);
    post({ kind: 'result', id: req.id, vectors }, vectors.map((v) => v.buffer as ArrayBuffer));
  } catch (err) {
    post({ kind: 'error', id: req.id, error: wire(err) });
  }
});
