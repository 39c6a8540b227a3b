#!/usr/bin/env node
// Builds the Rust engine (src/engine, a napi-rs crate) into build/livedex-engine.node.
// Run by `npm run build:engine` (and so by `npm install` through `prepare`).
//
// Uses the local @napi-rs/cli; honours CARGO_TARGET_DIR (default: src/engine/target).
// The only network it needs is crates.io, through cargo, on the first build.
// LIVEDEX_SKIP_ENGINE_BUILD=1 skips the build (when a prebuilt addon is already in place).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const manifest = join(root, 'src', 'engine', 'Cargo.toml');
const outDir = join(root, 'build');
const addon = join(outDir, 'livedex-engine.node');

function fail(msg) {
  console.error(`\nbuild-engine: ${msg}\n`);
  process.exit(1);
}

if (process.env.LIVEDEX_SKIP_ENGINE_BUILD === '1') {
  console.log(`build-engine: skipped (LIVEDEX_SKIP_ENGINE_BUILD=1)${existsSync(addon) ? '' : `; note: ${relative(root, addon)} does not exist`}`);
  process.exit(0);
}

const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
if (cargo.error || cargo.status !== 0) {
  fail(
    'cargo was not found (or does not run). The livedex engine is a Rust crate built from source at install.\n' +
      'Install a Rust toolchain (1.89 or newer), e.g. from https://rustup.rs, make sure `cargo` is on PATH,\n' +
      'then run `npm run build:engine`.' +
      (cargo.error ? `\n(${cargo.error.message})` : `\n${cargo.stderr ?? ''}`),
  );
}

const require = createRequire(import.meta.url);
let cli;
try {
  const pkg = require.resolve('@napi-rs/cli/package.json');
  const { bin } = require('@napi-rs/cli/package.json');
  cli = join(dirname(pkg), typeof bin === 'string' ? bin : bin.napi);
} catch (err) {
  fail(`@napi-rs/cli is not installed (a devDependency): run \`npm install\` first.\n(${err.message})`);
}

mkdirSync(outDir, { recursive: true });
const args = [
  cli,
  'build',
  '--release',
  '--manifest-path',
  manifest,
  '--package-json-path',
  join(root, 'package.json'),
  '--output-dir',
  outDir,
];
if (process.env.CARGO_TARGET_DIR) args.push('--target-dir', process.env.CARGO_TARGET_DIR);

const started = Date.now();
console.log(`build-engine: cargo ${cargo.stdout.trim().replace(/^cargo /, '')}; building ${relative(root, manifest)} (release)…`);
const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: process.env });
if (res.error) fail(`could not run @napi-rs/cli: ${res.error.message}`);
if (res.status !== 0) fail(`the engine build failed (exit ${res.status}); see the cargo output above.`);
if (!existsSync(addon)) fail(`the build finished but ${relative(root, addon)} is missing.`);

// The CLI may also emit a type-definition or loader file; the typed face is src/engine/index.ts.
for (const name of readdirSync(outDir)) {
  if (/^index\.(d\.ts|js|cjs|mjs)$/.test(name)) rmSync(join(outDir, name));
}
// (@napi-rs/cli warns that napi-derive's `type-def` feature is off: deliberate, it would only
// generate a .d.ts we do not use.)
const size = (statSync(addon).size / 1024 / 1024).toFixed(1);
console.log(`build-engine: ${relative(root, addon)} (${size} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
