import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { wasm, microConfig } from './helpers.ts';
import { renderShapes } from '../src/data/shapes.ts';
import type { DataSource } from '../src/data/source.ts';
import { Trainer } from '../src/train/trainer.ts';
import { psnr, mean } from '../src/eval/metrics.ts';

before(wasm);

const STEPS = Number(process.env.SELFTOK_OVERFIT_STEPS ?? 400);

test(`overfit: a micro model trained ${STEPS} steps on 4 images beats its no-token PSNR widely, and the progressive curve rises`, async () => {
  const cfg = microConfig((c) => {
    c.train.lr = 2e-3;
    c.decoder.condDrop = 0.1;
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
  assert.ok(curve.get(2)! < curve.get(4)! && curve.get(4)! < curve.get(8)!, `progressive curve should rise: ${info}`);
  t.dispose();
});
