import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { numpy as np, tree } from '@jax-js/jax';
import { wasm, microConfig, tmp } from './helpers.ts';
import { trackMemory } from '../src/engine/memory.ts';
import { activeDevice } from '../src/engine/device.ts';
import { ShapesSource, type DataSource } from '../src/data/source.ts';
import { Trainer, STATE_FILE } from '../src/train/trainer.ts';
import { readSafetensors } from '../src/io/safetensors.ts';
import { NonFiniteLossError } from '../src/util/errors.ts';
import { flattenParams, type Params } from '../src/nn/params.ts';

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
