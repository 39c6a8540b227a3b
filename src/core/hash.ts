/** @module core/hash — the one text hash: chunk identity, the embedding cache and call-cache keys all use it. */
import { createHash } from 'node:crypto';

/** Hex SHA-256 of bytes or of a string's UTF-8. */
export const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');
