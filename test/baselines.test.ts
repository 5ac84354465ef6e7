// Baselines at equal bits (src/eval/baselines.ts): thumbnail sizes, the thumbnail round
// trip, the mean-colour error and the MobileNetV2 feature distance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { colourError, featureDistance, thumbnail, thumbnailSide } from '../src/eval/baselines.ts';
import { psnr } from '../src/eval/metrics.ts';
import { Rng } from '../src/util/rng.ts';
import { wasm } from './helpers.ts';

test('thumbnail side holds the bits: s = round(√(bits/24))', () => {
  assert.equal(thumbnailSide(320), 4); // 384 bits
  assert.equal(thumbnailSide(4 * 320), 7); // 1176 bits
  assert.equal(thumbnailSide(1024), 7);
  assert.equal(thumbnailSide(4 * 1024), 13);
  assert.equal(thumbnailSide(1), 1);
});

test('thumbnail round trip: a constant image comes back, a detailed one loses detail', async () => {
  const size = 32;
  const flat = new Float32Array(size * size * 3).map((_, i) => [0.2, -0.4, 0.6][i % 3]);
  assert.ok(psnr(flat, await thumbnail(flat, size, 4)) > 45);
  const rng = new Rng(3);
  const noisy = new Float32Array(size * size * 3).map(() => rng.uniform() * 2 - 1);
  const small = await thumbnail(noisy, size, 4);
  const big = await thumbnail(noisy, size, 16);
  assert.ok(psnr(noisy, small) < psnr(noisy, big), 'more pixels, closer');
  assert.ok(psnr(noisy, small) < 15);
});

test('colour error: the mean-colour shift in 8-bit levels', () => {
  const a = new Float32Array(4 * 4 * 3).fill(0); // level 128 after the 8-bit round trip
  const b = new Float32Array(4 * 4 * 3).map((_, i) => (i % 3 === 0 ? 12 / 127.5 : 0)); // red +12 levels
  assert.ok(Math.abs(colourError([a], [b]) - 4) < 0.5, `${colourError([a], [b])}`); // (12 + 0 + 0) / 3
  assert.equal(colourError([a, b], [a, b]), 0);
});

test('feature distance: zero for identical images, larger for a worse reconstruction', async () => {
  await wasm();
  const size = 32;
  const rng = new Rng(5);
  const ref = Array.from({ length: 3 }, () => new Float32Array(size * size * 3).map(() => rng.uniform() * 2 - 1));
  const near = ref.map((r) => r.map((v) => v * 0.9));
  const far = ref.map((r) => r.map(() => 0));
  assert.ok(await featureDistance(ref, ref, size, 2) < 1e-5);
  const dn = await featureDistance(ref, near, size, 2);
  const df = await featureDistance(ref, far, size, 2);
  assert.ok(dn > 0 && dn < df, `${dn} < ${df}`);
});
