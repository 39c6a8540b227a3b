import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfigFile, parseConfigText } from '../../src/config-file.js';
import { LivedexError } from '../../src/core/errors.js';
import { builtinRegistry } from '../../src/plugins.js';

const registry = builtinRegistry();

/** The config_error message a YAML text produces. */
function errorOf(text: string, env: Record<string, string> = {}): string {
  try {
    parseConfigText(text, 'app.yaml', { env, registry });
  } catch (err) {
    assert.ok(err instanceof LivedexError, String(err));
    assert.equal(err.code, 'config_error');
    return err.message;
  }
  assert.fail('the config was accepted');
}

describe('YAML app files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'livedex-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads plugin blocks, nested settings and defaults', async () => {
    const file = path.join(dir, 'app.yaml');
    await writeFile(
      file,
      [
        'data_dir: ./state',
        'port: 9100',
        'sources:',
        '  - fs:',
        '      path: ./docs',
        '      include: ["*.md"]',
        'embedder: hashing',
        'retrieval:',
        '  default_k: 5',
      ].join('\n'),
    );
    const config = await loadConfigFile(file, { registry });
    assert.equal(config.data_dir, path.join(dir, 'state'));
    assert.equal(config.port, 9100);
    assert.deepEqual(config.sources, [{ name: 'fs', options: { path: path.join(dir, 'docs'), include: ['*.md'] } }]);
    assert.deepEqual(config.embedder, { name: 'hashing', options: {} });
    assert.equal(config.retrieval.default_k, 5);
    assert.equal(config.retrieval.max_k, 1000, 'unset settings keep their defaults');
  });

  it('reads ./ and ../ paths as beside the file, and keeps names and absolute paths', async () => {
    const sub = path.join(dir, 'app');
    await mkdir(sub, { recursive: true });
    const file = path.join(sub, 'app.yaml');
    await writeFile(file, 'data_dir: ./state\nsources:\n  - fs: { path: ../docs }\n  - fs: { path: /srv/docs }\n  - fs: { path: plain }\nembedder: hashing\n');
    const config = await loadConfigFile(file, { registry });
    assert.equal(config.data_dir, path.join(sub, 'state'));
    assert.deepEqual(config.sources.map((s) => s.options.path), [path.join(dir, 'docs'), '/srv/docs', 'plain']);
    assert.deepEqual(config.embedder, { name: 'hashing', options: {} });
  });

  it('interpolates ${VAR} and ${VAR:-default}, typing a bare interpolation like YAML would', () => {
    const config = parseConfigText(
      ['port: ${PORT:-8123}', 'host: ${HOST}', 'data_dir: "${ROOT}/data"', 'sources:', '  - fs: { path: "$${LITERAL}" }'].join('\n'),
      'app.yaml',
      { env: { HOST: '0.0.0.0', ROOT: '/srv' }, registry },
    );
    assert.equal(config.port, 8123);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.data_dir, '/srv/data');
    assert.deepEqual(config.sources[0]!.options, { path: '${LITERAL}' });
    // A set variable wins over the default; a quoted one stays a string (and then fails as one).
    assert.equal(parseConfigText('port: ${PORT:-8123}', 'app.yaml', { env: { PORT: '9000' } }).port, 9000);
    assert.match(errorOf('port: "${PORT:-8123}"'), /app\.yaml:1:7: port: .*expected number.*\(found string "8123"\)/);
  });

  it('names the variable and the line of an unset ${VAR}', () => {
    assert.equal(
      errorOf('data_dir: ./d\nsources:\n  - fs:\n      path: ${DOCS_DIR}\n'),
      'app.yaml:4:13: ${DOCS_DIR} is not set in the environment (set it, or write ${DOCS_DIR:-default})',
    );
  });

  it('names file, line, path, expectation and finding for a wrong value', () => {
    const message = errorOf('sources:\n  - fs: { path: ./docs }\n  - fs:\n      path: 42\n');
    assert.match(message, /^app\.yaml:4:13: sources\[1\]\.fs\.path: .*expected string.* \(found number 42\)$/);
  });

  it('rejects a typo in a setting name or a plugin option, naming where it is', () => {
    assert.equal(errorOf('retrieval:\n  default_k: 3\n  default_kk: 3\n'), 'app.yaml:3:3: retrieval: Unrecognized key: "default_kk"');
    assert.match(errorOf('embeder: hashing\n'), /^app\.yaml:1:1: \(root\): .*"embeder"/);
    assert.match(errorOf('sources:\n  - fs:\n      path: d\n      includ: ["*.md"]\n'), /^app\.yaml:4:7: sources\[0\]\.fs: .*"includ"$/);
  });

  it('names an unknown plugin with the known ones', () => {
    assert.match(errorOf('sources:\n  - ftp: { host: x }\n'), /^app\.yaml:2:5: sources\[0\]: unknown source "ftp" \(known: .*fs.*\)/);
    assert.match(errorOf('embedder:\n  nope: {}\n'), /^app\.yaml:2:3: embedder: unknown embedder "nope"/);
  });

  it('reports YAML syntax errors with their position, and a file that is not a mapping', async () => {
    assert.match(errorOf('sources: [\n  - fs\n'), /^app\.yaml:\d+:\d+: YAML syntax error: /);
    assert.match(errorOf('- just\n- a list\n'), /^app\.yaml: the config must be a mapping/);
    await assert.rejects(loadConfigFile(path.join(dir, 'absent.yaml')), /absent\.yaml: cannot read the config file \(ENOENT\)/);
  });
});
