/** @module core/push — the contract between the push routes and a source that takes pushed documents. */
import type { Metadata } from './types.js';

/** A document handed to a push source. */
export interface PushedDocument {
  /** The key as the client gave it, with or without the source's `name:` prefix. */
  key: string;
  bytes: Uint8Array;
  /** The `Content-Type` the client sent, kept in the metadata. */
  contentType: string | null;
  /** The extension whose parser reads the bytes, when the key's own does not say it. */
  extension: string | null;
  /** The client's metadata; the source's own fields (`path`, `source`, `size`…) win. */
  metadata: Metadata;
}

/** What the push routes need from a push source. */
export interface PushTarget {
  readonly id: string;
  /** The full document key for a client's key; throws `invalid_request` (field `key`) when it is not acceptable. */
  resolveKey(key: string): string;
  /** Stores the document durably, then queues it; resolves once the pipeline accepted it. */
  put(doc: PushedDocument): Promise<{ key: string; version: string; created: boolean }>;
  /** Forgets the document durably, then queues its deletion; false when there was none. */
  remove(key: string): Promise<boolean>;
}

/** True when `source` takes pushed documents (has the `PushTarget` methods). */
export function isPushTarget<T>(source: T): source is T & PushTarget {
  const s = source as Partial<PushTarget> | null;
  return typeof s?.resolveKey === 'function' && typeof s.put === 'function' && typeof s.remove === 'function';
}
