#!/usr/bin/env node
// Replays the Dockerfile's build and run steps without a Docker engine, so a broken step
// fails the test suite on machines that have no Docker.
//
// Usage: node scripts/docker-dry-run.mjs [--dir DIR] [--mount HOST:CONTAINER]... [--env K=V]...
//
// Every stage gets its own root under DIR; container paths (/app, /data…) live under it.
// COPY copies from the build context (the repository) or from an earlier stage, WORKDIR and
// ENV apply, RUN runs with `sh -c` in the stage's work dir. An instruction after a
// `# dry-run: host` comment provisions the system (apt, rustup, users) and is left to the
// host, which must already have what it installs. At the end it starts the last stage's
// ENTRYPOINT + CMD, runs the HEALTHCHECK command against it, waits for /readyz, asks
// /v1/retrieve once, prints one JSON line with what it saw, and stops the server.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import picomatch from 'picomatch';

const context = fileURLToPath(new URL('..', import.meta.url));

function fail(message) {
  process.stderr.write(`docker-dry-run: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const out = { dir: null, mounts: [], env: {} };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--dir') out.dir = value;
    else if (flag === '--mount') out.mounts.push(value.split(':'));
    else if (flag === '--env') {
      const eq = value.indexOf('=');
      out.env[value.slice(0, eq)] = value.slice(eq + 1);
    } else fail(`unknown argument ${flag}`);
    i++;
  }
  return out;
}

/** Instructions with their arguments; continuation lines joined; `host` marks host-provided steps. */
export function parseDockerfile(text) {
  const instructions = [];
  let pending = '';
  let host = false;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (pending === '' && /^\s*#/.test(line)) {
      if (/^\s*#\s*dry-run:\s*host\b/.test(line)) host = true;
      continue;
    }
    if (pending === '' && line.trim() === '') continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const match = /^(\w+)\s*(.*)$/s.exec(full);
    if (!match) fail(`cannot read the line: ${full}`);
    instructions.push({ op: match[1].toUpperCase(), args: match[2], host });
    host = false;
  }
  return instructions;
}

/** Paths of the build context that .dockerignore leaves out (its patterns, as Docker reads them). */
const ignorePatterns = existsSync(join(context, '.dockerignore'))
  ? readFileSync(join(context, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  : [];
const ignoreMatchers = ignorePatterns.map((p) => picomatch(p.replace(/^\/+|\/+$/g, ''), { dot: true }));
function ignored(rel) {
  // A pattern also covers everything under what it names.
  const parts = rel.split(sep);
  return parts.some((_, i) => ignoreMatchers.some((m) => m(parts.slice(0, i + 1).join('/'))));
}

/** `$VAR` and `${VAR}` from `vars`. */
const expand = (s, vars) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => vars[a ?? b] ?? '');

/** `K=V K2="v 2"` pairs (ENV, ARG). */
function pairs(args) {
  const out = [];
  const re = /(\w+)(?:=("(?:[^"\\]|\\.)*"|\S*))?/g;
  let m;
  while ((m = re.exec(args))) out.push([m[1], m[2] === undefined ? undefined : m[2].replace(/^"(.*)"$/s, '$1')]);
  return out;
}

const jsonOrShell = (args) => (args.trim().startsWith('[') ? JSON.parse(args) : ['sh', '-c', args]);

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'livedex-docker-'));
  const instructions = parseDockerfile(readFileSync(join(context, 'Dockerfile'), 'utf8'));
  const globalArgs = {};
  const stages = new Map();
  let stage = null;
  let n = 0;

  for (const ins of instructions) {
    if (ins.op === 'ARG' && !stage) {
      for (const [k, v] of pairs(ins.args)) globalArgs[k] = v ?? '';
      continue;
    }
    if (ins.op === 'FROM') {
      const [, alias] = /\bAS\s+(\S+)/i.exec(ins.args) ?? [];
      const root = join(dir, alias ?? `stage${n}`);
      n++;
      mkdirSync(root, { recursive: true });
      stage = { root, workdir: '/', env: {}, entrypoint: [], cmd: [], healthcheck: null, volumes: [] };
      if (alias) stages.set(alias, stage);
      stages.set(String(n - 1), stage);
      process.stderr.write(`FROM ${expand(ins.args, globalArgs)} → ${root}\n`);
      continue;
    }
    if (!stage) fail(`${ins.op} before FROM`);
    const inStage = (p) => join(stage.root, isAbsolute(p) ? p : join(stage.workdir, p));
    if (ins.host) {
      process.stderr.write(`(host) ${ins.op} ${ins.args.slice(0, 70)}\n`);
      continue;
    }
    switch (ins.op) {
      case 'ARG':
      case 'SHELL':
      case 'USER':
      case 'EXPOSE':
        break;
      case 'ENV':
        for (const [k, v] of pairs(ins.args)) stage.env[k] = expand(v ?? '', { ...process.env, ...stage.env });
        break;
      case 'WORKDIR':
        stage.workdir = expand(ins.args.trim(), stage.env);
        mkdirSync(join(stage.root, stage.workdir), { recursive: true });
        break;
      case 'VOLUME':
        for (const v of jsonOrShell(ins.args).slice(ins.args.trim().startsWith('[') ? 0 : 2).join(' ').split(/\s+/)) {
          stage.volumes.push(v);
          mkdirSync(join(stage.root, v), { recursive: true });
        }
        break;
      case 'COPY': {
        const words = ins.args.trim().split(/\s+/);
        const from = words[0].startsWith('--from=') ? words.shift().slice('--from='.length) : null;
        const dest = words.pop();
        const base = from ? (stages.get(from)?.root ?? fail(`COPY --from=${from}: no such stage`)) : context;
        for (const src of words) {
          const source = from ? join(base, src) : join(base, src);
          if (!existsSync(source)) fail(`COPY ${src}: not found in ${from ? `stage ${from}` : 'the build context'}`);
          const target = dest.endsWith('/') || words.length > 1 ? join(inStage(dest), src.split('/').pop()) : inStage(dest);
          mkdirSync(dirname(target), { recursive: true });
          // The build context honours .dockerignore; a stage's files are copied whole.
          cpSync(source, target, { recursive: true, filter: from ? () => true : (p) => !ignored(relative(context, p)) });
        }
        process.stderr.write(`COPY ${ins.args}\n`);
        break;
      }
      case 'RUN': {
        process.stderr.write(`RUN ${ins.args}\n`);
        const cwd = join(stage.root, stage.workdir);
        const res = spawnSync('sh', ['-c', ins.args], { cwd, stdio: ['ignore', 'inherit', 'inherit'], env: runEnv(stage) });
        if (res.status !== 0) fail(`RUN failed (exit ${res.status}): ${ins.args}`);
        break;
      }
      case 'HEALTHCHECK': {
        const m = /\bCMD\s+(.*)$/s.exec(ins.args);
        stage.healthcheck = m ? jsonOrShell(m[1]) : null;
        break;
      }
      case 'ENTRYPOINT':
        stage.entrypoint = jsonOrShell(ins.args);
        break;
      case 'CMD':
        stage.cmd = jsonOrShell(ins.args);
        break;
      default:
        fail(`instruction ${ins.op} is not replayed by this script; teach it or mark the line "# dry-run: host"`);
    }
  }
  return run(stage, opts);
}

/** The host environment with the stage's ENV on top; container paths in values point into the stage root. */
function runEnv(stage, extra = {}) {
  const env = { ...process.env };
  for (const [k, v] of Object.entries({ ...stage.env, ...extra })) env[k] = v.startsWith('/') && !v.includes(':') ? join(stage.root, v) : v;
  return env;
}

async function run(stage, opts) {
  for (const [hostPath, containerPath] of opts.mounts) cpSync(join(context, hostPath), join(stage.root, containerPath), { recursive: true });
  const env = runEnv(stage, opts.env);
  const argv = [...stage.entrypoint, ...stage.cmd];
  process.stderr.write(`run: ${argv.join(' ')}\n`);
  const child = spawn(argv[0], argv.slice(1), { cwd: join(stage.root, stage.workdir), env, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (code, report) => {
    child.kill('SIGTERM');
    const exitCode = await exited;
    process.stdout.write(`${JSON.stringify({ ...report, exitCode })}\n`);
    process.exit(code);
  };
  const dataDir = env.LIVEDEX_DATA_DIR;
  const deadline = Date.now() + 120_000;
  let url = null;
  while (!url) {
    if (child.exitCode !== null) return stop(1, { error: `the server exited with ${child.exitCode}` });
    if (Date.now() > deadline) return stop(1, { error: 'the server did not start' });
    try {
      url = JSON.parse(readFileSync(join(dataDir, 'server.json'), 'utf8')).url;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const port = new URL(url).port;
  const health = spawnSync(stage.healthcheck[0], stage.healthcheck.slice(1), { env: { ...env, LIVEDEX_PORT: port } });
  if (health.status !== 0) return stop(1, { error: `HEALTHCHECK failed (exit ${health.status})`, url });
  while ((await fetch(new URL('/readyz', url)).then((r) => r.status, () => 0)) !== 200) {
    if (Date.now() > deadline) return stop(1, { error: 'never ready', url });
    await new Promise((r) => setTimeout(r, 200));
  }
  const hits = await fetch(new URL('/v1/retrieve', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(env.LIVEDEX_AUTH_TOKEN ? { authorization: `Bearer ${env.LIVEDEX_AUTH_TOKEN}` } : {}) },
    body: JSON.stringify({ query: opts.env.DRY_RUN_QUERY ?? 'livedex', k: 3 }),
  }).then((r) => r.json());
  return stop(0, { url, healthcheck: 'ok', hits: hits.map((h) => h.metadata.path) });
}

main().catch?.((err) => fail(String(err?.stack ?? err)));
