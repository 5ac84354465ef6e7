// The spatial-token control (issue #19, item 3): tokens tied to a raster grid of regions, every
// token visible at every noise level.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tree, numpy as np } from '@jax-js/jax';
import { wasm, microConfig, randomizeTree } from './helpers.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { encodeFeatures } from '../src/tokenizer/encoder.ts';
import { spatialRegions } from '../src/tokenizer/spatial.ts';
import { TokenSchedule } from '../src/tokenizer/schedule.ts';
import { validateConfig } from '../src/tokenizer/config.ts';
import { UserError } from '../src/util/errors.ts';
import { loadConfig } from '../src/node/configs.ts';

before(wasm);

test('regions: K rectangles of the patch grid in raster order, as square as the grid allows; an impossible K is one line', () => {
  const r = spatialRegions(8, 4, 'x'); // 4×4 patches, 8 tokens: 2 rows × 4 cols of 2×1 patches
  assert.deepEqual([r.rows, r.cols], [2, 4]);
  assert.deepEqual(Array.from(r.regionOf), [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]);
  const s = spatialRegions(32, 8, 'x');
  assert.equal(s.rows * s.cols, 32);
  assert.ok(Array.from({ length: 32 }, (_, k) => s.regionOf.filter((x) => x === k).length).every((n) => n === 2));
  assert.throws(() => spatialRegions(7, 4, 'cfg.json'), (e: unknown) => e instanceof UserError && /cfg\.json: K = 7 tokens do not tile the 4×4 patch grid/.test(e.message));
  assert.equal(validateConfig(loadConfig('scenes-spatial'), 'scenes-spatial').encoder.spatial, true);
});

test("schedule 'all': every token visible at every noise level", () => {
  const s = new TokenSchedule(8, { type: 'all' });
  for (const tau of [0, 1, 200, 999, 1000]) assert.equal(s.visibleCount(tau), 8);
  assert.deepEqual(Array.from(s.visibilityGradScale(8, 1)), new Array(8).fill(1));
});

test('spatial encoder: changing the pixels of one region changes only that token; the Selftok encoder changes them all', async () => {
  for (const spatial of [true, false]) {
    const cfg = microConfig((c) => {
      c.encoder.spatial = spatial; // 16×16 image, patch 4: a 4×4 grid; K 8: regions of 2×1 patches
      if (spatial) c.schedule = { type: 'all' };
    });
    const m = Selftok.create(cfg, 3);
    m.params.enc = randomizeTree(m.params.enc, 4, 0.2);
    const S = cfg.image.size;
    const x = new Float32Array(S * S * 3).map((_, i) => Math.sin(i * 0.37));
    const y = x.slice();
    // region of token 5: grid row 2–3, column 1 → pixels y 8..15, x 4..7
    for (let py = 8; py < 16; py++) for (let px = 4; px < 8; px++) for (let c = 0; c < 3; c++) y[(py * S + px) * 3 + c] += 0.5;
    const feats = async (img: Float32Array) => (await encodeFeatures(tree.ref(m.params.enc), cfg, np.array(img).reshape([1, S, S, 3])).data()) as Float32Array;
    const a = await feats(x);
    const b = await feats(y);
    const d = cfg.quantizer.dim;
    const changed = Array.from({ length: cfg.K }, (_, k) => Math.max(...Array.from({ length: d }, (_, i) => Math.abs(a[k * d + i] - b[k * d + i]))) > 1e-6);
    if (spatial) assert.deepEqual(changed, [false, false, false, false, false, true, false, false]);
    else assert.ok(changed.every(Boolean), `Selftok tokens changed: ${changed}`);
    m.dispose();
  }
});
