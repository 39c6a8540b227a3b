/** @module models/local-wire — the messages between a local model's worker thread (models/local-worker) and the main thread (models/local). */

/** A request from the main thread. */
export interface LocalWorkerRequest {
  id: number;
  kind: 'document' | 'query';
  texts: string[];
}

/** An error as it crosses the thread boundary. */
export interface LocalWireError {
  message: string;
  code?: string;
  field?: string;
}

/** What the worker says. */
export type LocalWorkerEvent =
  | { kind: 'ready'; modelKey: string; dimensions: number; dir: string; dtype: string; maxTokens: number }
  | { kind: 'failed'; error: LocalWireError }
  | { kind: 'result'; id: number; vectors: Float32Array[] }
  | { kind: 'error'; id: number; error: LocalWireError }
  | { kind: 'log'; level: 'warn' | 'info'; msg: string };
