/** @module init — `livedex init <template> [dir]`: copies an app template and says how to run it. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LivedexError } from './core/errors.js';

/** The templates shipped with this package (`templates/` beside `dist/` or `src/`). */
export const TEMPLATES_DIR = fileURLToPath(new URL('../templates/', import.meta.url));

export interface TemplateInfo {
  name: string;
  /** The first line of its README after the title. */
  summary: string;
}

/** Every template: a folder with an `app.yaml`. */
export function listTemplates(root = TEMPLATES_DIR): TemplateInfo[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'app.yaml')))
    .map((d) => {
      const readme = join(root, d.name, 'README.md');
      const lines = existsSync(readme) ? readFileSync(readme, 'utf8').split('\n') : [];
      const summary = lines.find((l, i) => i > 0 && l.trim() !== '' && !l.startsWith('#')) ?? '';
      return { name: d.name, summary: summary.trim() };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Copies template `name` into `dir` (default: a folder named like the template) and returns
 * the command to run next. Refuses a non-empty target so nothing is overwritten.
 *
 * @example
 * const { next } = await initTemplate('document-store', 'demo'); // "cd demo && livedex serve --config app.yaml"
 */
export async function initTemplate(name: string, dir?: string, root = TEMPLATES_DIR): Promise<{ dir: string; next: string; files: string[] }> {
  const templates = listTemplates(root);
  if (!templates.some((t) => t.name === name)) {
    throw new LivedexError('config_error', `unknown template "${name}" (available: ${templates.map((t) => t.name).join(', ') || 'none'})`, { field: 'template' });
  }
  const target = resolve(dir ?? name);
  if (existsSync(target) && (await readdir(target)).length > 0) {
    throw new LivedexError('config_error', `${target} exists and is not empty; choose another directory`, { field: 'dir' });
  }
  await mkdir(target, { recursive: true });
  await cp(join(root, name), target, { recursive: true, filter: (src) => !/\/\.livedex(\/|$)/.test(src) });
  const files = (await readdir(target, { recursive: true })).map(String).sort();
  const where = relative(process.cwd(), target) || '.';
  const next = `${where === '.' ? '' : `cd ${where.includes(' ') ? JSON.stringify(where) : where} && `}livedex serve --config app.yaml`;
  return { dir: target, next, files };
}
