/** @module sources/uris — turns the CLI's source arguments (paths and URIs) into config source blocks. */
import { LivedexError } from '../core/errors.js';

/** A source block as the config takes it: `{ plugin: options }`. */
export type SourceBlock = Record<string, Record<string, unknown>>;

export interface SourceArgOptions {
  /** `--poll-interval`: seconds between polls of every cloud source. */
  pollIntervalS?: number;
  /** Options every folder source gets (`--include`, `--exclude`). */
  folder?: Record<string, unknown>;
}

const USAGE = 'a folder path, s3://<bucket>/<prefix>, gdrive://<folder-id> or sharepoint://<site>/<drive>/<path>';

/** `scheme://rest` with a scheme of two letters or more (so `C:\docs` stays a path). */
const URI = /^([A-Za-z][A-Za-z0-9+.-]+):\/\/(.*)$/s;

function fail(arg: string, why: string): never {
  throw new LivedexError('config_error', `source ${JSON.stringify(arg)}: ${why} (a source is ${USAGE})`, { field: 'sources' });
}

function decode(arg: string, part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return fail(arg, `${JSON.stringify(part)} is not valid percent-encoding`);
  }
}

/**
 * Turns one CLI source argument into a config source block; `#name` at the end of a URI names
 * the source (its id and key prefix; default: the scheme).
 *
 * @example
 * parseSourceArg('s3://docs/team/', { pollIntervalS: 10 });
 * // → { s3: { bucket: 'docs', prefix: 'team/', poll_interval_s: 10 } }
 * parseSourceArg('./notes'); // → { fs: { path: './notes' } }
 */
export function parseSourceArg(arg: string, opts: SourceArgOptions = {}): SourceBlock {
  const m = URI.exec(arg);
  if (!m) {
    if (arg.trim() === '') fail(arg, 'it is empty');
    return { fs: { path: arg, ...opts.folder } };
  }
  const scheme = m[1]!.toLowerCase();
  let rest = m[2]!;
  let name: string | undefined;
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    name = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
    if (name === '') fail(arg, 'the name after "#" is empty');
  }
  const poll = opts.pollIntervalS === undefined ? {} : { poll_interval_s: opts.pollIntervalS };
  const named = name === undefined ? {} : { name };
  if (rest.includes('?')) fail(arg, 'query strings are not taken; put options in a config file');

  switch (scheme) {
    case 'file': {
      if (name !== undefined) fail(arg, 'a folder has no name');
      const path = decode(arg, rest);
      if (path === '') fail(arg, 'the folder path is empty');
      return { fs: { path, ...opts.folder } };
    }
    case 's3': {
      const slash = rest.indexOf('/');
      const bucket = slash < 0 ? rest : rest.slice(0, slash);
      const prefix = slash < 0 ? '' : decode(arg, rest.slice(slash + 1));
      if (bucket === '') fail(arg, 'the bucket is missing');
      return { s3: { bucket, ...(prefix ? { prefix } : {}), ...named, ...poll } };
    }
    case 'gdrive': {
      const folderId = decode(arg, rest.replace(/\/+$/, ''));
      if (folderId === '') fail(arg, 'the folder id is missing');
      if (folderId.includes('/')) fail(arg, 'a Drive folder is given by its id, not a path');
      return { gdrive: { folder_id: folderId, ...named, ...poll } };
    }
    case 'sharepoint': {
      const segments = rest.split('/').filter((s) => s !== '').map((s) => decode(arg, s));
      const [site, drive, ...path] = segments;
      if (!site) fail(arg, 'the site is missing');
      if (!drive) fail(arg, 'the drive (document library) is missing');
      return { sharepoint: { site, drive, ...(path.length > 0 ? { path: path.join('/') } : {}), ...named, ...poll } };
    }
    default:
      return fail(arg, `the scheme "${scheme}://" is not one livedex reads`);
  }
}

/**
 * Every CLI source argument as config blocks. Two cloud sources of one kind need distinct
 * names (`s3://a#docs s3://b#archive`): names prefix their document keys.
 */
export function parseSourceArgs(args: readonly string[], opts: SourceArgOptions = {}): SourceBlock[] {
  const blocks = args.map((arg) => parseSourceArg(arg, opts));
  const seen = new Map<string, string>();
  blocks.forEach((block, i) => {
    const [plugin, options] = Object.entries(block)[0]!;
    if (plugin === 'fs') return;
    const id = typeof options.name === 'string' ? options.name : plugin;
    const other = seen.get(id);
    if (other !== undefined) {
      throw new LivedexError(
        'config_error',
        `sources ${JSON.stringify(other)} and ${JSON.stringify(args[i])} are both named "${id}"; name one with "#<name>" at the end of its URI`,
        { field: 'sources' },
      );
    }
    seen.set(id, args[i]!);
  });
  return blocks;
}
