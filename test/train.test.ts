import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { numpy as np, random, tree, valueAndGrad } from '@jax-js/jax';
import { wasm, microConfig, randomizeTree, shapesPixels, tmp } from './helpers.ts';
import { trackMemory } from '../src/engine/memory.ts';
import { activeDevice } from '../src/engine/device.ts';
import { ScenesSource, ShapesSource, type DataSource } from '../src/data/source.ts';
import { randomScene, SCENE_MAP_CHANNELS, sceneMaps } from '../src/ar/scenes.ts';
import { Rng } from '../src/util/rng.ts';
import { Trainer, STATE_FILE } from '../src/train/trainer.ts';
import { NonFiniteLossError } from '../src/util/errors.ts';
import { flattenParams, type Params } from '../src/nn/params.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { validateConfig, type SelftokConfig } from '../src/tokenizer/config.ts';
import { tokenGradScale } from '../src/tokenizer/flow.ts';
import { edgeWeights, selftokLoss } from '../src/train/loss.ts';
import { readSafetensors } from '../src/node/safetensors-files.ts';
import { loadSelftok } from '../src/node/models.ts';

before(wasm);
const cfg = microConfig();

async function paramValues(t: Trainer): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const a of flattenParams(t.model.params as unknown as Params).values()) out.push(Float32Array.from((await a.ref.data()) as Float32Array));
  return out;
}

test('a training step does not grow the number of live device arrays', async () => {
  const mem = await trackMemory(activeDevice());
  const t = Trainer.create(cfg, 0);
  const data = new ShapesSource(cfg.image.size);
  await t.trainStep(data); // compiles, k-means
  await t.trainStep(data);
  const live = mem.liveBuffers();
  for (let i = 0; i < 3; i++) await t.trainStep(data);
  assert.equal(mem.liveBuffers(), live);
  t.dispose();
});

test('resume after a checkpoint continues bit-identically', async () => {
  const data = new ShapesSource(cfg.image.size);
  const straight = Trainer.create(cfg, 5);
  for (let i = 0; i < 4; i++) await straight.trainStep(data);
  const dir = tmp();
  const first = Trainer.create(cfg, 5);
  for (let i = 0; i < 2; i++) await first.trainStep(data);
  await first.checkpoint(dir);
  first.dispose();
  assert.ok(existsSync(join(dir, STATE_FILE)) && existsSync(join(dir, 'model.safetensors')) && existsSync(join(dir, 'config.json')));
  const resumed = Trainer.resume(dir);
  assert.equal(resumed.step, 2);
  for (let i = 0; i < 2; i++) await resumed.trainStep(data);
  const a = await paramValues(straight);
  const b = await paramValues(resumed);
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.deepEqual(b[i], a[i]);
  assert.deepEqual(resumed.model.codebook.codebook, straight.model.codebook.codebook);
  straight.dispose();
  resumed.dispose();
});

test('resume under a new recipe: train and sampler sections change, the architecture may not', async () => {
  const data = new ShapesSource(cfg.image.size);
  const dir = tmp();
  const first = Trainer.create(cfg, 5);
  await first.trainStep(data);
  await first.checkpoint(dir);
  first.dispose();
  const recipe = microConfig((c) => {
    c.train.lossTMin = 1;
    c.train.lr = 3e-4;
    c.sampler.guidance = 2;
  });
  const t = Trainer.resume(dir, { recipe });
  assert.equal(t.cfg.train.lossTMin, 1);
  assert.equal(t.lr, 3e-4);
  await t.trainStep(data);
  await t.checkpoint(dir);
  t.dispose();
  const again = Trainer.resume(dir);
  assert.equal(again.cfg.sampler.guidance, 2, 'the new recipe is saved with the run');
  again.dispose();
  const wider = microConfig((c) => (c.decoder.width = 48));
  assert.throws(() => Trainer.resume(dir, { recipe: wider }), /--config may change only the train and sampler sections of a resumed run; 'decoder' differs/);
});

test('NaN in the loss stops training with the last good checkpoint intact', async () => {
  const dir = tmp();
  const good = new ShapesSource(cfg.image.size);
  const t = Trainer.create(cfg, 1);
  await t.trainStep(good);
  await t.checkpoint(dir);
  const bad: DataSource = {
    name: 'nan',
    trainBatch: async (_r, B) => new Float32Array(B * cfg.image.size * cfg.image.size * 3).fill(NaN),
    heldOut: good.heldOut.bind(good),
  };
  await assert.rejects(t.trainStep(bad), (e: Error) => e instanceof NonFiniteLossError && /loss is NaN/.test(e.message) && /step 1\) is intact/.test(e.message));
  assert.equal(readSafetensors(join(dir, STATE_FILE)).metadata.step, '1');
  t.dispose();
});

test('learning rate: linear warm-up, constant, then a linear cooldown to 0 over the last N steps', () => {
  const t = Trainer.create(cfg, 0); // warmup 10
  t.totalSteps = 100;
  t.cooldown = 20;
  const at = (s: number) => {
    t.model.step = s;
    return t.lrNow();
  };
  assert.ok(Math.abs(at(0) - t.lr * 0.1) < 1e-12);
  assert.equal(at(9), t.lr);
  assert.equal(at(50), t.lr);
  assert.equal(at(80), t.lr);
  assert.ok(Math.abs(at(90) - t.lr * 0.5) < 1e-12);
  assert.ok(Math.abs(at(99) - t.lr * 0.05) < 1e-12);
  t.cooldown = 0;
  assert.equal(at(99), t.lr);
  t.dispose();
});

test('encoder loss weighting: the per-sample token gradient scale averages 1 and reaches the encoder only', async () => {
  // equal tMin: no re-weighting
  assert.deepEqual(Array.from(tokenGradScale(Float32Array.of(0.05, 0.5, 1), 0.3, 0.3)), [1, 1, 1]);
  // decoder x̂0 loss (tMin 1), encoder velocity-like (tMin 0.3): w = 1/max(t, 0.3)², mean over t = 2/0.3 − 1
  const s = tokenGradScale(Float32Array.of(0.1, 0.3, 0.6, 1), 1, 0.3);
  const z = 2 / 0.3 - 1;
  const want = [1 / 0.09 / z, 1 / 0.09 / z, 1 / 0.36 / z, 1 / z];
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(s[i] - want[i]) < 1e-3, `t-scale ${i}: ${s[i]} vs ${want[i]}`);
  const grid = Float32Array.from({ length: 1000 }, (_, i) => (i + 0.5) / 1000);
  assert.ok(Math.abs(tokenGradScale(grid, 1, 0.3).reduce((a, v) => a + v, 0) / 1000 - 1) < 1e-3);

  // scaling every sample by 2 doubles the encoder's flow gradient and leaves the decoder's alone
  const c = microConfig((c) => (c.quantizer.commitWeight = 0));
  const m = Selftok.create(c, 3);
  // randomise the zero-initialised gates, or the tokens would not reach the output yet
  m.params = randomizeTree(m.params, 11, 0.1);
  const S = c.image.size;
  const pix = shapesPixels(S, 1, 2);
  const grads = async (w: number) => {
    const [, g] = valueAndGrad((p: { enc: Params; dec: Params }) => selftokLoss(c, p as never, {
      x0: np.array(pix).reshape([2, S, S, 3]),
      t: np.array([0.3, 0.9]),
      mask: np.array(m.schedule.mask([300, 900])).reshape([2, c.K]),
      drop: np.zeros([2]),
      key: random.key(3),
      codebook: m.codebookArray(),
      gradWeight: np.ones([c.K]),
      sampleGradWeight: np.array([w, w]),
      divWeight: np.array(0),
      quantizeOn: np.array(1),
    }), { hasAux: true })(tree.ref({ enc: m.params.enc, dec: m.params.dec }) as never);
    const out = new Map<string, Float32Array>();
    for (const [name, a] of flattenParams(g as unknown as Params)) out.set(name, Float32Array.from((await a.data()) as Float32Array));
    return out;
  };
  const one = await grads(1);
  const two = await grads(2);
  let encNorm = 0;
  for (const [name, g1] of one) {
    const g2 = two.get(name)!;
    const ratio = name.startsWith('dec.') ? 1 : 2;
    for (let i = 0; i < g1.length; i++) assert.ok(Math.abs(g2[i] - ratio * g1[i]) <= 1e-5 + 1e-4 * Math.abs(g1[i]), `${name}[${i}]: ${g2[i]} vs ${ratio}×${g1[i]}`);
    if (!name.startsWith('dec.')) encNorm += g1.reduce((a, v) => a + v * v, 0);
  }
  assert.ok(encNorm > 0, 'the encoder gets a flow gradient');
  m.dispose();
});

test('edge weighting (train.edgeWeight): 1 + α·edge per pixel, mean 1, uniform weights leave the loss as it is and edge weights change it', async () => {
  // one 3×3 image, one channel: a single bright pixel in the middle of a flat field
  const px = Float32Array.of(-1, -1, -1, -1, 1, -1, -1, -1, -1);
  const w = edgeWeights(px, 1, 3, 3, 1, 3);
  // the centre and its 4 neighbours step by 2 (≥ 1: a full edge, weight 4); the corners are flat (1)
  const raw = [1, 4, 1, 4, 4, 4, 1, 4, 1];
  const mean = raw.reduce((a, v) => a + v, 0) / 9;
  raw.forEach((r, i) => assert.ok(Math.abs(w[i] - r / mean) < 1e-6, `pixel ${i}: ${w[i]} vs ${r / mean}`));
  // a smooth ramp has no edges: uniform weights
  assert.deepEqual(Array.from(edgeWeights(Float32Array.from({ length: 9 }, (_, i) => i * 0.01), 1, 3, 3, 1, 10)), new Array(9).fill(1));
  // in the loss: weights of ones change nothing; edge weights move the loss towards the edge pixels' error
  const c = microConfig();
  const m = Selftok.create(c, 3);
  m.params = randomizeTree(m.params, 11, 0.1);
  const S = c.image.size;
  const pix = shapesPixels(S, 1, 2);
  const loss = async (pixelWeight?: Float32Array) => {
    const [l, aux] = selftokLoss(c, tree.ref({ enc: m.params.enc, dec: m.params.dec }) as never, {
      x0: np.array(pix).reshape([2, S, S, 3]),
      t: np.array([1, 1]),
      mask: np.ones([2, c.K]),
      drop: np.zeros([2]),
      key: random.key(3),
      codebook: m.codebookArray(),
      gradWeight: np.ones([c.K]),
      sampleGradWeight: np.ones([2]),
      divWeight: np.array(0),
      quantizeOn: np.array(1),
      ...(pixelWeight ? { pixelWeight: np.array(pixelWeight).reshape([2, S, S, 1]) } : {}),
    });
    l.dispose();
    tree.dispose([aux.commit, aux.entropy, aux.z, aux.ids]);
    return (await aux.fm.data())[0];
  };
  const plain = await loss();
  assert.ok(Math.abs((await loss(new Float32Array(2 * S * S).fill(1))) - plain) < 1e-6);
  const edged = await loss(edgeWeights(pix, 2, S, S, 3, 10));
  assert.ok(Number.isFinite(edged) && Math.abs(edged - plain) > 1e-4 * plain, `edge-weighted ${edged} vs plain ${plain}`);
  assert.throws(() => validateConfig({ ...structuredClone(c), train: { ...c.train, edgeWeight: -1 } }, 'c.json'), /c\.json: train\.edgeWeight must be a number ≥ 0/);
  m.dispose();
});

test('a fine-tune from a model folder (train --init): its weights and codebook at step 0, quantizing from the first step, a fresh probe; another architecture is refused', async () => {
  const base = microConfig((c) => (c.quantizer.continuousSteps = 2));
  const data = new ShapesSource(base.image.size);
  const dir = tmp();
  const first = Trainer.create(base, 3);
  for (let i = 0; i < 3; i++) await first.trainStep(data); // k-means at step 2
  await first.checkpoint(dir);
  first.dispose();
  const from = loadSelftok(dir);
  const recipe = microConfig((c) => {
    c.quantizer.continuousSteps = 2;
    c.train.probe = { size: 4, hidden: 16, weight: 1 };
    c.train.lr = 2e-4;
  });
  const t = Trainer.fromModel(from, recipe, dir, 0);
  assert.equal(t.step, 0);
  assert.equal(t.lr, 2e-4);
  assert.ok(t.cfg.train.probe, 'the recipe (with its probe) is the run\'s');
  assert.ok(!t.model.hasRenderer);
  assert.deepEqual(t.model.codebook.codebook, from.codebook.codebook);
  const mine = flattenParams(t.model.params as unknown as Params);
  const theirs = flattenParams({ enc: from.params.enc, dec: from.params.dec } as unknown as Params);
  assert.equal(mine.size, theirs.size + [...mine.keys()].filter((k) => k.startsWith('enc.probe.')).length);
  assert.ok([...mine.keys()].some((k) => k.startsWith('enc.probe.')));
  for (const [k, a] of theirs) assert.deepEqual(await mine.get(k)!.ref.data(), await a.ref.data(), k);
  // the warm codebook: every code at the usage of a uniform one, so none is reset at once
  const expected = (t.batch * base.K) / base.quantizer.codebookSize;
  assert.ok(t.model.codebook.clusterSize.every((v) => v === expected));
  const log = await t.trainStep(data);
  assert.ok(log.perplexity > 1 && log.usage > 0, 'quantizes at step 0 < continuousSteps');
  assert.equal(log.deadReset, 0);
  // the codebook moved by one EMA step from the model's, not re-initialised by k-means
  let moved = 0;
  for (let i = 0; i < from.codebook.codebook.length; i++) moved = Math.max(moved, Math.abs(t.model.codebook.codebook[i] - from.codebook.codebook[i]));
  assert.ok(moved > 0 && moved < 0.5, `codebook moved by ${moved}`);
  const out = tmp();
  await t.checkpoint(out);
  t.dispose();
  const resumed = Trainer.resume(out);
  assert.equal(resumed.initFrom, `${dir} (step 3)`);
  assert.equal(resumed.step, 1);
  resumed.dispose();
  // a fine-tune of that fine-tune keeps its probe; a recipe with a probe of another size starts one afresh
  const tuned = loadSelftok(out);
  const probeOf = (tr: Trainer) => flattenParams(tr.model.params as unknown as Params).get('enc.probe.fc2.w')!;
  const again = Trainer.fromModel(tuned, recipe, out, 0);
  assert.deepEqual(await probeOf(again).ref.data(), await flattenParams(tuned.params as unknown as Params).get('enc.probe.fc2.w')!.ref.data());
  const finer = Trainer.fromModel(tuned, microConfig((c) => {
    c.quantizer.continuousSteps = 2;
    c.train.probe = { size: 8, hidden: 16, weight: 1 };
  }), out, 0);
  assert.deepEqual(probeOf(finer).shape, [16, 8 * 8 * 3]);
  again.dispose();
  finer.dispose();
  tuned.dispose();
  const wider = microConfig((c) => {
    c.quantizer.continuousSteps = 2;
    c.decoder.width = 48;
  });
  assert.throws(() => Trainer.fromModel(from, wider, dir, 0), /may change only the train and sampler sections .*'decoder' differs/);
  from.dispose();
});

test('scene probe (train.sceneProbe): scenes come with their maps; the probe\'s gradient reaches the encoder; a source without scenes is refused; export drops it', async () => {
  const size = 16;
  const scenes = new ScenesSource(size);
  // the same images as trainBatch draws from the same RNG state, with 9 maps of 4 × 4 per image
  const { pixels, maps } = await scenes.trainBatchWithMaps(new Rng(5), 3, 4);
  assert.deepEqual(pixels, await scenes.trainBatch(new Rng(5), 3));
  assert.equal(maps.length, 3 * SCENE_MAP_CHANNELS * 16);
  const seed0 = new Rng(5).nextU32() & 0x7fffffff;
  assert.deepEqual(maps.subarray(0, SCENE_MAP_CHANNELS * 16), sceneMaps(randomScene(seed0, size), 4));
  // every object's pixels are covered by its shape's and its colour's channel: each sums the same
  const shapeMass = maps.subarray(0, 3 * 16).reduce((a, b) => a + b, 0);
  const colourMass = maps.subarray(3 * 16, SCENE_MAP_CHANNELS * 16).reduce((a, b) => a + b, 0);
  assert.ok(shapeMass > 0.5 && Math.abs(shapeMass - colourMass) < 1e-4, `${shapeMass} vs ${colourMass}`);

  const withProbe = (weight: number) => microConfig((c) => (c.train.sceneProbe = { size: 4, hidden: 16, weight }));
  assert.throws(() => validateConfig(withProbe(-1), 'c.json'), /c\.json: train\.sceneProbe\.weight must be a number ≥ 0/);
  const refused = Trainer.create(withProbe(1), 0);
  await assert.rejects(refused.trainStep(new ShapesSource(size)), /--data shapes: train\.sceneProbe needs a source that knows its scenes/);
  refused.dispose();
  // one step from the same start and batch, probe weight 0 against 1: only the probe's gradient differs
  const encoderAfterStep = async (weight: number) => {
    const t = Trainer.create(withProbe(weight), 0);
    const log = await t.trainStep(scenes);
    assert.ok(log.sceneProbe! > 0 && Number.isFinite(log.sceneProbe!), `probe MSE ${log.sceneProbe}`);
    const w = Float32Array.from((await flattenParams(t.model.params as unknown as Params).get('enc.queries')!.ref.data()) as Float32Array);
    return { t, w, mse: log.sceneProbe! };
  };
  const off = await encoderAfterStep(0);
  const on = await encoderAfterStep(1);
  assert.equal(on.mse, off.mse, 'the same start, batch and probe');
  let moved = 0;
  for (let i = 0; i < on.w.length; i++) moved = Math.max(moved, Math.abs(on.w[i] - off.w[i]));
  assert.ok(moved > 1e-7, 'the probe\'s gradient reaches the token queries');
  // the probe is training-only: not in the tokens' fingerprint, not in an exported folder
  const stored = await on.t.model.stored({ inference: true });
  assert.ok(![...stored.weights.keys()].some((k) => k.startsWith('enc.sceneProbe.')));
  assert.equal((stored.config as SelftokConfig).train.sceneProbe, undefined);
  assert.ok(on.t.cfg.train.sceneProbe, 'the training run keeps its recipe');
  const fp = await on.t.model.tokenFingerprint();
  const full = on.t.model.params;
  const { sceneProbe, ...encoder } = full.enc;
  assert.ok(sceneProbe);
  on.t.model.params = { ...full, enc: encoder };
  assert.equal(await on.t.model.tokenFingerprint(), fp);
  on.t.model.params = full;
  off.t.dispose();
  on.t.dispose();
});
