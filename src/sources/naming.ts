/** @module sources/naming — how cloud and push sources name themselves and their document keys. */
import { z } from 'zod';

/**
 * The `name` option of a cloud source: its id, and the prefix of its document keys
 * (`${name}:${path-or-id}`). Letters, digits, `_` and `-`, starting with a letter, so a key's
 * prefix never reads as a path or a drive letter.
 */
export const sourceNameSchema = (defaultName: string) =>
  z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_-]{1,63}$/, 'a source name is 2 to 64 letters, digits, "_" or "-", starting with a letter')
    .default(defaultName);

/** Seconds between two polls of a cloud source (`poll_interval_s`, default 30). */
export const pollIntervalSchema = z.number().positive().max(86_400).default(30);

/** The document key of `inner` (an object key, a file id) in the source named `name`. */
export function documentKey(name: string, inner: string): string {
  return `${name}:${inner}`;
}

/** True when `key` belongs to the source named `name`. */
export function ownsKey(name: string, key: string): boolean {
  return key.startsWith(name + ':');
}

/**
 * True when `key` looks like a cloud or push key (`name:…`), which no relative folder path
 * of the folder source is taken for.
 */
export function isNamedKey(key: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_-]{1,63}:/.test(key);
}
