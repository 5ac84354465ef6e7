// Weight storage for shipping (io/weights.ts): int8 with per-column scales, read back as
// float32 by both model kinds; the file shrinks and the outputs barely move.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { wasm, microConfig, microArConfig, randomizeTree, shapesPixels, tmp } from './helpers.ts';
import { quantizeColumns, storeWeight, INT8_MIN_SIZE } from '../src/io/weights.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { ArModel } from '../src/ar/ar-model.ts';
import { Rng } from '../src/util/rng.ts';
import { isArModelDir, saveModel, loadSelftok, loadArModel } from '../src/node/models.ts';

before(wasm);

test('int8 per-column: the largest |w| of each column maps to ±127 and every value comes back within half a step', () => {
  const rng = new Rng(3);
  const rows = 40;
  const cols = 7;
  const w = Float32Array.from({ length: rows * cols }, (_, i) => rng.normal() * (1 + (i % cols)));
  const { q, scale } = quantizeColumns(w, [rows, cols]);
  for (let j = 0; j < cols; j++) {
    let maxQ = 0;
    for (let i = 0; i < rows; i++) {
      maxQ = Math.max(maxQ, Math.abs(q[i * cols + j]));
      assert.ok(Math.abs(q[i * cols + j] * scale[j] - w[i * cols + j]) <= scale[j] / 2 + 1e-7);
    }
    assert.equal(maxQ, 127);
  }
  // a zero column gets scale 1, not a division by zero
  assert.deepEqual(Array.from(quantizeColumns(new Float32Array(6), [3, 2]).scale), [1, 1]);
  // vectors, small matrices and kept tensors stay float16
  assert.equal(storeWeight('b', new Float32Array(INT8_MIN_SIZE), [INT8_MIN_SIZE], 'int8')[0][1].dtype, 'F16');
  assert.equal(storeWeight('w', new Float32Array(INT8_MIN_SIZE - 16), [8, (INT8_MIN_SIZE - 16) / 8], 'int8')[0][1].dtype, 'F16');
  assert.equal(storeWeight('c', new Float32Array(INT8_MIN_SIZE), [64, 64], 'int8', true)[0][1].dtype, 'F16');
  assert.deepEqual(storeWeight('w', new Float32Array(INT8_MIN_SIZE), [64, 64], 'int8').map(([k, t]) => [k, t.dtype]), [['w', 'I8'], ['w:scale', 'F32']]);
});

test('a tokenizer saved as int8 loads back: smaller file, the same token fingerprint and tokens, renderer output within 0.02', async () => {
  const dir = tmp();
  const cfg = microConfig();
  const m = Selftok.create(cfg, 5);
  m.codebook.initialized = true;
  m.addRenderer(6);
  // random gates too, so that every weight reaches the output
  m.params = randomizeTree(m.params, 9, 0.1);
  await saveModel(m, join(dir, 'f16'), { format: 'float16' });
  await saveModel(m, join(dir, 'i8'), { format: 'int8' });
  const a = loadSelftok(join(dir, 'f16'));
  const b = loadSelftok(join(dir, 'i8'));
  const size = (d: string) => statSync(join(dir, d, 'model.safetensors')).size;
  // the encoder and codebook stay float16 (they decide the tokens): the decoder and renderer shrink by half
  assert.ok(size('i8') < 0.75 * size('f16'), `int8 ${size('i8')} bytes vs float16 ${size('f16')}`);
  // the tokens' identity: the same encoder and codebook (float16 in both files) give the same one
  assert.equal(await a.tokenFingerprint(), await b.tokenFingerprint());
  assert.notEqual(a.fingerprint, b.fingerprint);
  const other = Selftok.create(cfg, 6);
  assert.notEqual(await other.tokenFingerprint(), await a.tokenFingerprint());
  const px = shapesPixels(cfg.image.size, 1, 2, 3, 4);
  const ids = await a.encode(px, 4);
  const idsB = await b.encode(px, 4);
  const same = ids.filter((v, i) => v === idsB[i]).length / ids.length;
  assert.ok(same >= 0.9, `token agreement ${same}`);
  const ra = await a.render(ids, 4);
  const rb = await b.render(ids, 4);
  let max = 0;
  for (let i = 0; i < ra.length; i++) max = Math.max(max, Math.abs(ra[i] - rb[i]));
  assert.ok(max < 0.02 && max > 0, `renderer max difference ${max}`);
});

test('an AR model saved as int8 loads back with logits within 0.05 of float32, and its directory is told apart from a tokenizer\'s', async () => {
  const dir = tmp();
  const m = ArModel.create(microArConfig(), { name: 't', fingerprint: 'x', K: 6, codebookSize: 16 }, 2);
  await saveModel(m, join(dir, 'f32'));
  await saveModel(m, join(dir, 'i8'), { format: 'int8' });
  const a = loadArModel(join(dir, 'f32'));
  const b = loadArModel(join(dir, 'i8'));
  const rng = new Rng(1);
  const ids = Int32Array.from({ length: 2 * 12 }, () => rng.int(0, a.vocab.size));
  const la = await a.logits(ids, 2);
  const lb = await b.logits(ids, 2);
  let max = 0;
  for (let i = 0; i < la.length; i++) max = Math.max(max, Math.abs(la[i] - lb[i]));
  assert.ok(max < 0.05 && max > 0, `logit max difference ${max}`);
  assert.equal(isArModelDir(join(dir, 'i8')), true);
  assert.equal(isArModelDir(dir), false);
});
