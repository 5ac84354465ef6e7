// The pretrained MobileNetV2 of the nsfwjs package, run by our jax-js interpreter, against
// TensorFlow.js: the check values below were printed by TF.js 4.22 (`nsfwjs.load('MobileNetV2')`,
// `model.predict`, and a sub-model ending at block_5_add) on the same 224×224 inputs (sharp
// resize with fit 'fill', bytes / 255). Matching the 5 class probabilities to 1e-5 checks every
// layer, the weight dequantisation and the BN folding end to end.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { numpy as np, grad, tree } from '@jax-js/jax';
import sharp from 'sharp';
import { wasm, microConfig } from './helpers.ts';
import { MobileNetV2, mobilenetDistance, NSFW_CLASSES } from '../src/nn/mobilenet-v2.ts';
import { PACKAGE_ROOT } from '../src/node/paths.ts';
import { ShapesSource } from '../src/data/source.ts';
import { Trainer } from '../src/train/trainer.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { trackMemory } from '../src/engine/memory.ts';
import { activeDevice } from '../src/engine/device.ts';

before(wasm);

const TFJS = [
  { file: 'cat-stride.jpg', probs: [0.002304, 0.001642, 0.969513, 0.025088, 0.001452], featSum: 325.805, first: [2.22138, 3.55351, -1.65244, -3.09666] },
  { file: 'pastoral-sheep.jpg', probs: [0.000069, 0.000046, 0.989712, 0.010126, 0.000047], featSum: 10419.8998, first: [3.78504, 12.49279, -1.9883, -5.25691] },
];

async function input224(file: string): Promise<np.Array> {
  const { data } = await sharp(join(PACKAGE_ROOT, 'test', 'fixtures', 'mobilenet', file)).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  return np.array(Float32Array.from(data, (v) => v / 255)).reshape([1, 224, 224, 3]);
}

let net: MobileNetV2;

test('MobileNetV2 from nsfwjs matches TensorFlow.js: class probabilities and block_5 features', async () => {
  net = await MobileNetV2.load();
  const w = net.weights();
  for (const ref of TFJS) {
    const [feat, probs] = net.forward(w, await input224(ref.file), ['block_5_add', 'dense_3']);
    const p = Array.from((await probs.data()) as Float32Array);
    const f = (await feat.data()) as Float32Array;
    assert.deepEqual(feat.shape, [1, 28, 28, 32]);
    for (let i = 0; i < 5; i++) assert.ok(Math.abs(p[i] - ref.probs[i]) < 1e-5, `${ref.file} ${NSFW_CLASSES[i]}: ${p[i]} vs TF.js ${ref.probs[i]}`);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(f[i] - ref.first[i]) < 1e-3, `${ref.file} feature ${i}: ${f[i]} vs ${ref.first[i]}`);
    const sum = f.reduce((a, b) => a + b, 0); // 25 088 values of either sign, summed in float32 by TF.js
    assert.ok(Math.abs(sum - ref.featSum) < 0.02, `${ref.file} feature sum ${sum} vs ${ref.featSum}`);
  }
  tree.dispose(w);
});

test('the MobileNetV2 feature distance is 0 for equal images, grows with the difference, and has a gradient', async () => {
  const w = net.weights('block_9_add');
  const data = new ShapesSource(32);
  const a = np.array(await data.trainBatch(new (await import('../src/util/rng.ts')).Rng(1), 2)).reshape([2, 32, 32, 3]);
  const same = (await mobilenetDistance(net, w, a.ref, a.ref).data())[0];
  const noisy = (await mobilenetDistance(net, w, a.ref, a.ref.mul(0.9).add(0.05)).data())[0];
  const far = (await mobilenetDistance(net, w, a.ref, a.ref.mul(-1)).data())[0];
  assert.ok(Math.abs(same) < 1e-6, `same: ${same}`);
  assert.ok(noisy > 1e-5 && far > noisy, `noisy ${noisy}, inverted ${far}`);
  const g = grad((x: np.Array) => mobilenetDistance(net, tree.ref(w), x, a.ref.mul(-1)))(a.ref);
  const gv = (await g.data()) as Float32Array;
  assert.ok(gv.every(Number.isFinite) && gv.some((v) => v !== 0), 'gradient finite and non-zero');
  a.dispose();
  tree.dispose(w);
});

test('renderer training with the MobileNetV2 perceptual term: finite loss, no live-array growth, kept on resume', async () => {
  const cfg = microConfig();
  const model = Selftok.create(cfg, 1);
  const t = Trainer.forRenderer(model, 0, 4, 1e-3, 'mobilenet');
  t.totalSteps = 10;
  const mem = await trackMemory(activeDevice());
  const data = new ShapesSource(cfg.image.size);
  const l1 = await t.trainStep(data);
  const l2 = await t.trainStep(data);
  const live = mem.liveBuffers(); // after the compile and the first optimiser steps
  for (let i = 0; i < 2; i++) await t.trainStep(data);
  assert.equal(mem.liveBuffers(), live);
  for (const l of [l1, l2]) {
    assert.ok(Number.isFinite(l.loss) && l.perceptual! > 0, `loss ${l.loss}, perceptual ${l.perceptual}`);
    assert.ok(Math.abs(l.loss - (l.fm + l.lambdaP! * l.perceptual!)) < 1e-4 * Math.max(1, l.loss));
  }
  const dir = (await import('./helpers.ts')).tmp();
  await t.checkpoint(dir);
  t.dispose();
  assert.equal(Trainer.resume(dir).perceptual, 'mobilenet');
});
