/**
 * A tiny but real transformers.js model, written by the test: a BERT-style `config.json`, a
 * WordPiece `tokenizer.json` and `onnx/model.onnx` — an ONNX graph (encoded here, protobuf by
 * hand) whose one node gathers each token's row from an embedding table we design, so that
 * chosen synonyms get near vectors and unrelated words orthogonal ones.
 *
 * Mean pooling over such a model is a bag of word vectors: "car" and "automobile" meet,
 * "banana" stays away. [CLS] and [SEP] share a short row of their own, so they barely pull
 * texts together; [PAD] is zero.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Groups of words that share a meaning: each group has an axis of its own. */
export const TINY_SYNONYMS: readonly (readonly string[])[] = [
  ['car', 'automobile', 'vehicle'],
  ['doctor', 'physician'],
  ['banana', 'fruit'],
  ['river', 'stream'],
  ['guitar'],
  ['invoice', 'bill'],
  ['quantum'],
];
/** Words that each stand alone on an axis, a little shorter than the meaning words. */
export const TINY_FILLER = ['the', 'a', 'is', 'this', 'note', 'about', 'my', 'red', 'old', 'parked', 'outside', 'yellow', 'sweet', 'visited', 'yesterday', 'flows', 'fast', 'plays', 'loud', 'paid', 'physics'];
const SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

export interface TinyModel {
  dir: string;
  /** Length of the vectors. */
  dimensions: number;
  vocab: Map<string, number>;
}

/**
 * Writes the model into `dir` (created). `variant` changes every weight a little (another
 * model with the same words); `onnxName` picks the weights file (`model.onnx` is fp32 to
 * transformers.js, `model_quantized.onnx` q8). `maxSeqLength` writes a sentence-transformers
 * `sentence_bert_config.json` with that truncation length.
 */
export async function makeTinyModel(dir: string, opts: { variant?: number; onnxName?: string; maxSeqLength?: number } = {}): Promise<TinyModel> {
  const words = [...SPECIAL, ...TINY_SYNONYMS.flat(), ...TINY_FILLER];
  const vocab = new Map(words.map((w, i) => [w, i]));
  // Axes: one per synonym group, one per word (its own nuance, [UNK] included), one shared by [CLS] and [SEP].
  const groupAxis = new Map<string, number>();
  TINY_SYNONYMS.forEach((group, g) => { for (const w of group) groupAxis.set(w, g); });
  const specialAxis = TINY_SYNONYMS.length;
  const wordAxisBase = specialAxis + 1;
  const dimensions = wordAxisBase + words.length;
  const table = new Float32Array(words.length * dimensions);
  const variant = opts.variant ?? 0;
  words.forEach((word, id) => {
    const row = id * dimensions;
    if (word === '[PAD]' || word === '[MASK]') return;
    // Small, so that texts without a common word stay nearly orthogonal, but an empty text still has a direction.
    if (word === '[CLS]' || word === '[SEP]') {
      table[row + specialAxis] = 0.05;
      return;
    }
    const group = groupAxis.get(word);
    if (group !== undefined) {
      table[row + group] = 1;
      table[row + wordAxisBase + id] = 0.25 + 0.01 * variant;
    } else {
      // Filler words weigh less than meaning words, as a trained model learns to do.
      table[row + wordAxisBase + id] = 0.5 + 0.01 * variant;
    }
  });

  await mkdir(join(dir, 'onnx'), { recursive: true });
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['BertModel'],
      model_type: 'bert',
      hidden_size: dimensions,
      vocab_size: words.length,
      max_position_embeddings: 512,
      num_attention_heads: 1,
      num_hidden_layers: 1,
      intermediate_size: dimensions,
      type_vocab_size: 2,
      pad_token_id: 0,
    }),
  );
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(wordPieceTokenizer(vocab)));
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({
      tokenizer_class: 'BertTokenizer',
      do_lower_case: true,
      model_max_length: 512,
      cls_token: '[CLS]',
      sep_token: '[SEP]',
      pad_token: '[PAD]',
      unk_token: '[UNK]',
      mask_token: '[MASK]',
    }),
  );
  if (opts.maxSeqLength !== undefined) await writeFile(join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: opts.maxSeqLength, do_lower_case: false }));
  await writeFile(join(dir, 'onnx', opts.onnxName ?? 'model.onnx'), gatherModel(table, words.length, dimensions));
  return { dir, dimensions, vocab };
}

function wordPieceTokenizer(vocab: Map<string, number>): unknown {
  const special = (content: string) => ({ id: vocab.get(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const cls = vocab.get('[CLS]')!;
  const sep = vocab.get('[SEP]')!;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [cls], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [sep], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab) },
  };
}

// ───────────── ONNX, encoded by hand (field numbers from onnx/onnx.proto) ─────────────

const FLOAT = 1;
const INT64 = 7;

/**
 * A model with inputs `input_ids`, `attention_mask`, `token_type_ids` ([batch, sequence] int64)
 * and output `last_hidden_state` = Gather(table, input_ids) ([batch, sequence, dimensions]).
 * The mask and type ids are declared (transformers.js feeds what a BERT takes) but unused.
 */
export function gatherModel(table: Float32Array, vocabSize: number, dimensions: number): Uint8Array {
  const ids = ['batch', 'sequence'];
  const graph = concat(
    // GraphProto.node = 1: NodeProto { input = 1, output = 2, name = 3, op_type = 4, attribute = 5 }
    bytesField(1, concat(stringField(1, 'embeddings'), stringField(1, 'input_ids'), stringField(2, 'last_hidden_state'), stringField(3, 'lookup'), stringField(4, 'Gather'), bytesField(5, intAttribute('axis', 0)))),
    stringField(2, 'tiny-livedex-test-model'),
    // GraphProto.initializer = 5: TensorProto { dims = 1, data_type = 2, name = 8, raw_data = 9 }
    bytesField(5, concat(varintField(1, vocabSize), varintField(1, dimensions), varintField(2, FLOAT), stringField(8, 'embeddings'), bytesField(9, new Uint8Array(table.buffer, table.byteOffset, table.byteLength)))),
    // GraphProto.input = 11, output = 12: ValueInfoProto
    bytesField(11, valueInfo('input_ids', INT64, ids)),
    bytesField(11, valueInfo('attention_mask', INT64, ids)),
    bytesField(11, valueInfo('token_type_ids', INT64, ids)),
    bytesField(12, valueInfo('last_hidden_state', FLOAT, [...ids, dimensions])),
  );
  // ModelProto { ir_version = 1, producer_name = 2, graph = 7, opset_import = 8: { domain = 1, version = 2 } }
  return concat(varintField(1, 7), stringField(2, 'livedex tests'), bytesField(7, graph), bytesField(8, concat(stringField(1, ''), varintField(2, 13))));
}

/** ValueInfoProto { name = 1, type = 2: TypeProto { tensor_type = 1: { elem_type = 1, shape = 2: { dim = 1: { dim_value = 1 | dim_param = 2 } } } } } */
function valueInfo(name: string, elemType: number, dims: Array<string | number>): Uint8Array {
  const shape = concat(...dims.map((d) => bytesField(1, typeof d === 'number' ? varintField(1, d) : stringField(2, d))));
  const tensorType = concat(varintField(1, elemType), bytesField(2, shape));
  return concat(stringField(1, name), bytesField(2, bytesField(1, tensorType)));
}

/** AttributeProto { name = 1, i = 3, type = 20 (INT = 2) } */
function intAttribute(name: string, value: number): Uint8Array {
  return concat(stringField(1, name), varintField(3, value), varintField(20, 2));
}

function varint(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint: ${n}`);
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

const key = (field: number, wireType: number) => varint(field * 8 + wireType);
const varintField = (field: number, value: number) => concat(key(field, 0), varint(value));
const bytesField = (field: number, bytes: Uint8Array) => concat(key(field, 2), varint(bytes.length), bytes);
const stringField = (field: number, s: string) => bytesField(field, new TextEncoder().encode(s));

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
