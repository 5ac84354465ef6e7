import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { wasm, microConfig } from './helpers.ts';
import { renderShapes } from '../src/data/shapes.ts';
import type { DataSource } from '../src/data/source.ts';
import { Trainer } from '../src/train/trainer.ts';
import { psnr, mean } from '../src/eval/metrics.ts';
import type { Selftok } from '../src/tokenizer/model.ts';

before(wasm);

// shared with the renderer test below: the micro tokenizer trained on the 4 images
let trained: { trainer: Trainer; images: Float32Array[]; data: DataSource } | null = null;

const STEPS = Number(process.env.SELFTOK_OVERFIT_STEPS ?? 500);

test(`overfit: a micro model trained ${STEPS} steps on 4 images beats its no-token PSNR widely, and the progressive curve rises`, async () => {
  const cfg = microConfig((c) => {
    c.train.lr = 2e-3;
    c.quantizer.continuousSteps = 150;
  });
  const S = cfg.image.size;
  const n = S * S * 3;
  const images = [11, 22, 33, 44].map((s) => renderShapes(s, S));
  const data: DataSource = {
    name: 'four',
    trainBatch: async (rng, B) => {
      const out = new Float32Array(B * n);
      for (let b = 0; b < B; b++) out.set(images[rng.int(0, 4)], b * n);
      return out;
    },
    heldOut: async () => ({ images, names: ['a', 'b', 'c', 'd'] }),
  };
  const t = Trainer.create(cfg, 3);
  const t0 = performance.now();
  for (let i = 0; i < STEPS; i++) await t.trainStep(data);
  const m = t.model;
  const batch = new Float32Array(4 * n);
  images.forEach((im, i) => batch.set(im, i * n));
  const ids = await m.encode(batch, 4);
  const score = async (keep: number) => {
    const rec = await m.decode(ids, 4, { steps: 25, seed: 1, keep });
    return mean(images.map((im, i) => psnr(im, rec.subarray(i * n, (i + 1) * n))));
  };
  const curve = new Map<number, number>();
  for (const k of [0, 2, 4, 8]) curve.set(k, await score(k));
  const info = `train ${((performance.now() - t0) / 1000).toFixed(0)} s; PSNR by kept tokens ${JSON.stringify(Object.fromEntries([...curve].map(([k, v]) => [k, +v.toFixed(2)])))}`;
  console.log(info);
  assert.ok(curve.get(8)! - curve.get(0)! > 6, `tokens should add > 6 dB: ${info}`);
  // with 4 memorised images the first tokens already identify the image, so past that the
  // curve is nearly flat: require the rise from 0 to 2 tokens and no drop (0.1 dB slack,
  // a different seed's sampling noise) after it; the strict K/4 < K/2 < K check is the eval's
  assert.ok(curve.get(2)! - curve.get(0)! > 3, `the first tokens should add > 3 dB: ${info}`);
  assert.ok(curve.get(4)! >= curve.get(2)! - 0.1 && curve.get(8)! >= curve.get(4)! - 0.1, `progressive curve should not fall: ${info}`);
  trained = { trainer: t, images, data };
});

test('renderer: trained briefly with the tokenizer frozen it beats the mean image, and it is deterministic', async () => {
  assert.ok(trained, 'needs the overfit test');
  const { trainer, images, data } = trained!;
  const m: Selftok = trainer.model;
  const cb = m.codebook.codebook.slice();
  const enc = await m.tensors();
  const tokenizerSteps = m.step;
  const r = Trainer.forRenderer(m, 1, 8, 2e-3);
  assert.equal(r.step, 0, 'a renderer run counts its own steps');
  assert.equal(r.trainedOnStep, tokenizerSteps);
  r.totalSteps = 150;
  for (let i = 0; i < 150; i++) await r.trainStep(data);
  assert.equal(r.step, 150);
  // encoder, codebook and diffusion decoder are untouched
  assert.deepEqual(m.codebook.codebook, cb);
  const after = await m.tensors();
  for (const [name, t] of enc) assert.deepEqual(after.get(name)!.data, t.data, `${name} changed`);
  const S = m.cfg.image.size;
  const n = S * S * 3;
  const batch = new Float32Array(4 * n);
  images.forEach((im, i) => batch.set(im, i * n));
  const ids = await m.encode(batch, 4);
  const a = await m.render(ids, 4);
  const b = await m.render(ids, 4);
  assert.deepEqual(a, b, 'same tokens → same image');
  const meanImg = new Float32Array(n);
  images.forEach((im) => im.forEach((v, j) => (meanImg[j] += v / 4)));
  const pRender = mean(images.map((im, i) => psnr(im, a.subarray(i * n, (i + 1) * n))));
  const pMean = mean(images.map((im) => psnr(im, meanImg)));
  console.log(`renderer PSNR ${pRender.toFixed(2)} dB, mean image ${pMean.toFixed(2)} dB`);
  assert.ok(pRender > pMean + 3, `renderer ${pRender} vs mean image ${pMean}`);
  r.dispose();
});
