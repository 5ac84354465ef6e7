import { setupDevice } from './src/engine/device.ts';
import { microConfig } from './test/helpers.ts';
import { renderShapes } from './src/data/shapes.ts';
import { Trainer } from './src/train/trainer.ts';
import { psnr, mean } from './src/eval/metrics.ts';
await setupDevice('wasm');
const v = JSON.parse(process.argv[2]);
const cfg = microConfig((c) => { c.train.lr = v.lr ?? 2e-3; c.decoder.condDrop = v.drop ?? 0.1; c.decoder.prediction = v.pred ?? 'x0'; Object.assign(c.decoder, v.dec ?? {}); c.train.batch = v.batch ?? 8; c.train.warmup = v.warmup ?? 10; });
const S = cfg.image.size, n = S * S * 3;
const images = [11, 22, 33, 44].map((s) => renderShapes(s, S));
const data = { name: 'four', trainBatch: async (rng: any, B: number) => { const out = new Float32Array(B * n); for (let b = 0; b < B; b++) out.set(images[rng.int(0, 4)], b * n); return out; }, heldOut: async () => ({ images, names: [] }) };
const t = Trainer.create(cfg, 3); const t0 = performance.now();
const fms: number[] = [];
const m = t.model; const x0h = new Float32Array(4 * n); images.forEach((im, i) => x0h.set(im, i * n));
const res: string[] = [];
for (let i = 1; i <= (v.steps ?? 400); i++) {
  fms.push((await t.trainStep(data as any)).fm);
  if (i % (v.every ?? 200) === 0) {
    const ids = await m.encode(x0h, 4);
    const sc: number[] = [];
    for (const keep of [0, 8]) { const rec = await m.decode(ids, 4, { steps: 25, seed: 1, keep }); sc.push(mean(images.map((im, j) => psnr(im, rec.subarray(j * n, (j + 1) * n))))); }
    res.push(`@${i} fm ${mean(fms.slice(-50)).toFixed(3)} psnr none ${sc[0].toFixed(2)} tok ${sc[1].toFixed(2)}`);
  }
}
console.log(JSON.stringify(v), res.join(' | '), `${((performance.now() - t0) / 1000).toFixed(0)}s`);
process.exit(0);
