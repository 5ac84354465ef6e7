import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { grad, numpy as np, random, tree } from '@jax-js/jax';
import { join } from 'node:path';
import { wasm, microConfig, randomizeTree, tmp } from './helpers.ts';
import { loadSelftok, saveModel } from '../src/node/models.ts';
import { validateConfig } from '../src/tokenizer/config.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { decoderNet, embedNoisy } from '../src/tokenizer/decoder.ts';
import { encodeFeatures } from '../src/tokenizer/encoder.ts';
import { patchify, unpatchify } from '../src/tokenizer/patch.ts';
import { CodebookState, l2normalize, quantize } from '../src/tokenizer/quantizer.ts';
import { Rng } from '../src/util/rng.ts';

before(wasm);

const cfg = microConfig();
const B = 3;
const S = cfg.image.size;

function randn(seed: number, shape: number[]): np.Array {
  return random.normal(random.key(seed), shape);
}
async function arr(x: np.Array): Promise<Float32Array> {
  return Float32Array.from((await x.data()) as Float32Array);
}
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A model whose zero-initialised gates are randomised, so every path carries signal. */
function liveModel(): Selftok {
  const m = Selftok.create(cfg, 3);
  m.params = randomizeTree(m.params, 9, 0.2);
  return m;
}

function runDecoder(m: Selftok, tokens: np.Array, mask: Float32Array, drop: Float32Array | null, xt: np.Array): np.Array {
  return decoderNet(tree.ref(m.params.dec), m.cfg, {
    imageTokens: embedNoisy(m.params.dec, m.cfg, xt),
    t: np.array([0.9, 0.5, 0.1]),
    tokens,
    mask: np.array(mask).reshape([B, cfg.K]),
    drop: drop ? np.array(drop) : null,
    contextSeesImage: true,
  });
}

test('patchify and unpatchify are exact inverses; feature order is (row, col, channel)', async () => {
  const x = np.arange(2 * 8 * 8 * 3).astype(np.float32).reshape([2, 8, 8, 3]);
  const p = patchify(x.ref, 4);
  assert.deepEqual(p.shape, [2, 4, 48]);
  const pv = await arr(p.ref);
  // patch 1 of image 0 = columns 4..7 of rows 0..3; its 4th feature is pixel (0, 5) channel 0
  assert.equal(pv[1 * 48 + 3], (0 * 8 + 5) * 3 + 0);
  assert.equal(pv[1 * 48 + 12], (1 * 8 + 4) * 3 + 0);
  const back = await arr(unpatchify(p, 4, 8, 8, 3));
  assert.deepEqual(Array.from(back), Array.from(await arr(x)));
});

test('encoder and decoder shapes', async () => {
  const m = Selftok.create(cfg, 1);
  const x = randn(1, [B, S, S, 3]);
  const z = encodeFeatures(tree.ref(m.params.enc), cfg, x.ref);
  assert.deepEqual(z.shape, [B, cfg.K, cfg.quantizer.dim]);
  z.dispose();
  const h = randn(2, [B, cfg.K, cfg.quantizer.dim]);
  const v = runDecoder(m, h, new Float32Array(B * cfg.K).fill(1), null, x);
  assert.deepEqual(v.shape, [B, S, S, 3]);
  v.dispose();
  const ids = await m.encode(await arr(randn(3, [B, S, S, 3])), B);
  assert.equal(ids.length, B * cfg.K);
  for (const i of ids) assert.ok(i >= 0 && i < cfg.quantizer.codebookSize);
  m.dispose();
});

test('no image query attends an invisible token; visible tokens do matter', async () => {
  const m = liveModel();
  const mask = new Float32Array(B * cfg.K);
  const visible = [1, 4, 8]; // per-sample visible prefix lengths
  visible.forEach((n, b) => mask.fill(1, b * cfg.K, b * cfg.K + n));
  const h = await arr(randn(4, [B, cfg.K, cfg.quantizer.dim]));
  const xt = randn(5, [B, S, S, 3]);
  const base = await arr(runDecoder(m, np.array(h).reshape([B, cfg.K, -1]), mask, null, xt.ref));
  // change every invisible token drastically: the output must not move
  const h2 = h.slice();
  visible.forEach((n, b) => {
    for (let k = n; k < cfg.K; k++) for (let j = 0; j < cfg.quantizer.dim; j++) h2[(b * cfg.K + k) * cfg.quantizer.dim + j] += 50 * Math.sin(k + j);
  });
  const changed = await arr(runDecoder(m, np.array(h2).reshape([B, cfg.K, -1]), mask, null, xt.ref));
  assert.ok(maxAbsDiff(base, changed) < 1e-5, `invisible tokens leaked: ${maxAbsDiff(base, changed)}`);
  // change token 0 (visible everywhere): the output moves
  const h3 = h.slice();
  for (let b = 0; b < B; b++) for (let j = 0; j < cfg.quantizer.dim; j++) h3[b * cfg.K * cfg.quantizer.dim + j] += 3;
  const moved = await arr(runDecoder(m, np.array(h3).reshape([B, cfg.K, -1]), mask, null, xt));
  assert.ok(maxAbsDiff(base, moved) > 1e-3);
  m.dispose();
});

test('a fully dropped or fully masked sample gives finite output equal to the unconditional branch', async () => {
  const m = liveModel();
  const h = randn(6, [B, cfg.K, cfg.quantizer.dim]);
  const xt = randn(7, [B, S, S, 3]);
  const dropped = await arr(runDecoder(m, h.ref, new Float32Array(B * cfg.K).fill(1), new Float32Array(B).fill(1), xt.ref));
  const masked = await arr(runDecoder(m, h, new Float32Array(B * cfg.K), null, xt));
  assert.ok(dropped.every(Number.isFinite));
  assert.ok(masked.every(Number.isFinite));
  assert.ok(maxAbsDiff(dropped, masked) < 1e-5);
  m.dispose();
});

test('quantizer: nearest unit code by cosine, straight-through value and gradient', async () => {
  const C = 16;
  const d = 4;
  const cbData = await arr(l2normalize(randn(8, [C, d])));
  const zRaw = randn(9, [2, 3, d]);
  const q = quantize(zRaw.ref, np.array(cbData).reshape([C, d]), { diversityTemperature: 10 }, null, true);
  const ids = (await q.ids.data()) as Int32Array;
  const z = await arr(q.z);
  const zq = await arr(q.zq);
  for (let n = 0; n < 6; n++) {
    let best = -Infinity;
    let bi = -1;
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += z[n * d + j] * cbData[c * d + j];
      if (s > best) [best, bi] = [s, c];
    }
    assert.equal(ids[n], bi);
    for (let j = 0; j < d; j++) assert.ok(Math.abs(zq[n * d + j] - cbData[bi * d + j]) < 1e-6, 'forward value is the code');
  }
  const ent = (await q.entropy.data())[0];
  assert.ok(ent > 0 && ent <= Math.log(C) + 1e-5);
  q.commit.dispose();
  // gradient through the straight-through estimator = gradient of the identity at z,
  // scaled per token by gradWeight
  const coef = randn(10, [2, 3, d]);
  const w = np.array([1, 2.5, 4]);
  const gSte = grad((x: np.Array) => {
    const r = quantize(x, np.array(cbData).reshape([C, d]), { diversityTemperature: 10 }, w.ref, false);
    r.z.dispose();
    r.ids.dispose();
    r.commit.dispose();
    r.entropy.dispose();
    return r.zq.mul(coef.ref).sum();
  })(zRaw.ref);
  const gId = grad((x: np.Array) => l2normalize(x).mul(coef.ref).mul(w.ref.reshape([1, 3, 1])).sum())(zRaw);
  assert.ok(maxAbsDiff(await arr(gSte), await arr(gId)) < 1e-5);
});

test('codebook EMA keeps unit-norm codes and resets dead codes from the batch', () => {
  const qc = { ...cfg.quantizer, codebookSize: 8, dim: 4 };
  const K = 2;
  const st = new CodebookState(qc, K, new Rng(1));
  const rng = new Rng(2);
  const Bn = 16;
  const z = new Float32Array(Bn * K * 4);
  for (let i = 0; i < z.length; i++) z[i] = rng.normal();
  for (let n = 0; n < Bn * K; n++) {
    const v = z.subarray(n * 4, n * 4 + 4);
    const l = Math.hypot(...v);
    for (let j = 0; j < 4; j++) v[j] /= l;
  }
  st.kmeansInit(z, rng);
  // every vector maps to code 0: the other codes decay below the threshold and are reset
  const ids = new Int32Array(Bn * K).fill(0);
  st.clusterSize.fill(0);
  st.clusterSize[0] = 100;
  const stats = st.update(z, ids, Bn, rng);
  assert.equal(stats.deadReset, 7);
  assert.ok(Math.abs(st.threshold - 0.2 * (Bn * K) / 8) < 1e-9);
  for (let c = 0; c < 8; c++) {
    const v = st.codebook.subarray(c * 4, c * 4 + 4);
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5, `code ${c} is unit norm`);
    if (c > 0) {
      // a reset code is one of the batch vectors
      let found = false;
      for (let n = 0; n < Bn * K && !found; n++) found = maxAbsDiff(v, z.subarray(n * 4, n * 4 + 4)) < 1e-6;
      assert.ok(found, `code ${c} was reset from the batch`);
      assert.ok(Math.abs(st.clusterSize[c] - st.resetSize) < 1e-6);
    }
  }
  assert.equal(stats.usage, 1 / 8);
});

test('encode and decode do not leave live device arrays behind', async () => {
  const { trackMemory } = await import('../src/engine/memory.ts');
  const { activeDevice } = await import('../src/engine/device.ts');
  const mem = await trackMemory(activeDevice());
  const m = Selftok.create(cfg, 2);
  const x = await arr(randn(11, [B, S, S, 3]));
  const once = async () => {
    const ids = await m.encode(x, B);
    await m.decode(ids, B, { steps: 3, keep: 5 });
    await m.decode(ids, B, { steps: 2, guidance: 2 });
  };
  await once(); // compile
  const live = mem.liveBuffers();
  await once();
  await once();
  assert.equal(mem.liveBuffers(), live);
  m.dispose();
});

test('classifier-free guidance: w = 0 is the unconditional decoder, and the step is linear in w', async () => {
  const m = liveModel();
  const ids = Int32Array.from({ length: B * cfg.K }, (_, i) => (i * 7) % cfg.quantizer.codebookSize);
  // w = 0 keeps only the condition-dropped pass: the same images as decoding with no tokens
  const w0 = await m.decode(ids, B, { steps: 3, seed: 4, guidance: 0 });
  const none = await m.decode(ids, B, { steps: 3, seed: 4, keep: 0 });
  assert.ok(maxAbsDiff(w0, none) < 1e-5, `w = 0 vs no tokens: ${maxAbsDiff(w0, none)}`);
  const w1 = await m.decode(ids, B, { steps: 3, seed: 4 });
  assert.ok(maxAbsDiff(w0, w1) > 1e-3, 'the tokens change the decoding');
  // one step from t = 1 with x-prediction lands on x̂0 = x̂0_u + w·(x̂0_c − x̂0_u): linear in w
  const [a, b, c] = await Promise.all([0, 1, 2.5].map((w) => m.decode(ids, B, { steps: 1, seed: 4, guidance: w })));
  let checked = 0;
  for (let i = 0; i < a.length; i++) {
    if ([a[i], b[i], c[i]].some((v) => Math.abs(v) > 0.999)) continue; // clipped to [−1, 1]
    assert.ok(Math.abs(c[i] - (a[i] + 2.5 * (b[i] - a[i]))) < 1e-4, `entry ${i}: ${c[i]} vs ${a[i] + 2.5 * (b[i] - a[i])}`);
    checked++;
  }
  assert.ok(checked >= 50, `only ${checked} of ${a.length} entries unclipped`);
  await assert.rejects(m.decode(ids, B, { steps: 1, guidance: -1 }), /--guidance must be a number ≥ 0/);
  m.dispose();
});

test('sampler temperature: 0 starts from the noise mode (the seed no longer matters), 1 is the default, and it scales the noise', async () => {
  const m = liveModel();
  const ids = Int32Array.from({ length: B * cfg.K }, (_, i) => (i * 5) % cfg.quantizer.codebookSize);
  const a = await m.decode(ids, B, { steps: 3, seed: 1, temperature: 0 });
  const b = await m.decode(ids, B, { steps: 3, seed: 2, temperature: 0 });
  assert.equal(maxAbsDiff(a, b), 0);
  const d1 = await m.decode(ids, B, { steps: 3, seed: 1 });
  const t1 = await m.decode(ids, B, { steps: 3, seed: 1, temperature: 1 });
  assert.equal(maxAbsDiff(d1, t1), 0);
  // the same noise scaled by 0.5 by hand through `noise`
  const { random: jr } = await import('@jax-js/jax');
  const { size, channels } = cfg.image;
  const eps = (await jr.normal(jr.key(1), [B, size, size, channels]).mul(0.5).data()) as Float32Array;
  const half = await m.decode(ids, B, { steps: 3, seed: 1, temperature: 0.5 });
  const byHand = await m.decode(ids, B, { steps: 3, noise: Float32Array.from(eps) });
  assert.ok(maxAbsDiff(half, byHand) < 1e-6, `${maxAbsDiff(half, byHand)}`);
  await assert.rejects(m.decode(ids, B, { steps: 1, temperature: -1 }), /--temperature must be a number ≥ 0/);
  m.dispose();
});

test('config validation: sampler.guidance defaults to 1; bad values name the file', async () => {
  const raw = () => JSON.parse(JSON.stringify(microConfig())) as Record<string, any>;
  const noGuidance = raw();
  delete noGuidance.sampler.guidance;
  assert.equal(validateConfig(noGuidance, 'c.json').sampler.guidance, 1);
  // one bad value at a time: [section, key, value, expected message]
  const cases: [string, string, number, RegExp][] = [
    ['sampler', 'guidance', -0.5, /c\.json: sampler\.guidance must be a number ≥ 0/],
    ['sampler', 'temperature', -1, /c\.json: sampler\.temperature must be a number ≥ 0/],
    ['train', 'cooldownFraction', 2, /c\.json: train\.cooldownFraction must be in \[0, 1\]/],
    ['train', 'tokenGradScalePower', -1, /c\.json: train\.tokenGradScalePower must be a number ≥ 0/],
    ['train', 'fineTokenDrop', 1.5, /c\.json: train\.fineTokenDrop must be in \[0, 1\]/],
    ['train', 'fineTokenDropEnd', -0.1, /c\.json: train\.fineTokenDropEnd must be in \[0, 1\]/],
    ['train', 'fineTokenDropEnd', 0.1, /c\.json: train\.fineTokenDropEnd needs train\.fineTokenDrop/],
    ['train', 'tokenGradScaleMax', 0.5, /c\.json: train\.tokenGradScaleMax must be a number ≥ 1/],
  ];
  for (const [section, key, value, message] of cases) {
    const bad = raw();
    bad[section][key] = value;
    assert.throws(() => validateConfig(bad, 'c.json'), message);
  }
});

test('every named config validates and loads under its own name; tiny and small keep ≤ 0.2 bpp', async () => {
  const { bitsPerPixel } = await import('../src/tokenizer/config.ts');
  const { loadConfig, namedConfigs } = await import('../src/node/configs.ts');
  const names = namedConfigs();
  assert.deepEqual(names, ['photo64', 'photo64-probe16', 'photo64-probe8', 'scenes', 'scenes-read', 'scenes-spatial', 'small', 'tiny']);
  for (const n of names) assert.equal(loadConfig(n).name, n);
  assert.equal(bitsPerPixel(loadConfig('tiny')), (16 * 9) / (32 * 32));
  assert.ok(bitsPerPixel(loadConfig('small')) <= 0.2);
});

test('adoptRenderer copies another model\'s renderer and refuses other shapes', async () => {
  const a = liveModel(); // every weight random, the renderer's output layer included
  a.addRenderer(5);
  a.params.ren = randomizeTree(a.params.ren!, 3, 0.2);
  const b = liveModel(); // same encoder and codebook as a, no renderer
  b.adoptRenderer(a, 'a/');
  const ids = Int32Array.from({ length: B * cfg.K }, (_, i) => (i * 5) % cfg.quantizer.codebookSize);
  const ra = await a.render(ids, B);
  assert.ok(maxAbsDiff(ra, new Float32Array(ra.length)) > 0.1, 'the renderer output is not trivial');
  assert.equal(maxAbsDiff(ra, await b.render(ids, B)), 0);
  const wide = Selftok.create(microConfig((c) => (c.decoder.width = 48)), 1);
  assert.throws(() => wide.adoptRenderer(a, 'a/'), /a\/: renderer tensor \S+ has shape \[[\d,]+\], this model expects \[[\d,]+\]/);
  assert.throws(() => wide.adoptRenderer(Selftok.create(cfg, 2), 'plain/'), /plain\/: has no renderer to start from/);
  a.dispose();
  b.dispose();
});

test('decoder.rendererDepth: the deeper renderer starts as the decoder\'s copy (identity blocks), its own blocks change the output, and a model folder keeps them', async () => {
  const deepCfg = microConfig((c) => (c.decoder.rendererDepth = c.decoder.depth + 2));
  const plain = Selftok.create(microConfig(), 4);
  const deep = Selftok.create(deepCfg, 4); // same seed: same encoder, codebook and decoder
  for (const m of [plain, deep]) {
    m.codebook.initialized = true;
    m.params.dec = randomizeTree(m.params.dec, 6, 0.2); // a decoder whose output is not trivial
    m.addRenderer(5);
  }
  assert.equal(deep.params.ren!.net.blocks.length, cfg.decoder.depth + 2);
  assert.ok(!('pos' in deep.params.ren!.net.blocks.at(-1)!.ctx), 'the last block stays the key/value-only one');
  const ids = Int32Array.from({ length: B * cfg.K }, (_, i) => (i * 7) % cfg.quantizer.codebookSize);
  const rp = await plain.render(ids, B);
  assert.ok(maxAbsDiff(rp, new Float32Array(rp.length)) > 0.01, 'the renderer output is not trivial');
  assert.ok(maxAbsDiff(rp, await deep.render(ids, B)) < 1e-5, 'fresh blocks are identities at init');
  // the new blocks are the model's: randomized, they change the output, and a folder keeps them
  deep.params.ren = randomizeTree(deep.params.ren!, 8, 0.2);
  const rd = await deep.render(ids, B);
  assert.ok(maxAbsDiff(rd, rp) > 0.01);
  const dir = join(tmp(), 'deep');
  await saveModel(deep, dir);
  const back = loadSelftok(dir);
  assert.equal(maxAbsDiff(rd, await back.render(ids, B)), 0);
  assert.throws(() => validateConfig({ ...structuredClone(deepCfg), decoder: { ...deepCfg.decoder, rendererDepth: 1 } }, 'c.json'), /c\.json: decoder\.rendererDepth must be an integer ≥ decoder\.depth 2/);
  for (const m of [plain, deep, back]) m.dispose();
});
