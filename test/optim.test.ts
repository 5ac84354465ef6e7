import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jit, numpy as np } from '@jax-js/jax';
import { wasm, microConfig, tmp } from './helpers.ts';
import { makeAdamUpdate, packHost, packTree, paramLayout, unpackHost, adamInit } from '../src/nn/optim.ts';
import { flattenParams, type Params } from '../src/nn/params.ts';
import { ShapesSource } from '../src/data/source.ts';
import { Trainer, STATE_FILE } from '../src/train/trainer.ts';
import { encodeSafetensors, readSafetensors } from '../src/io/safetensors.ts';

before(wasm);

const vals = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.3 + i * 1.7));

function smallTree(seed: number): Params {
  // nested objects and lists, as the model's parameter trees are
  return {
    enc: { w: np.array(vals(6, seed)).reshape([2, 3]), b: np.array(vals(3, seed + 1)) },
    blocks: [{ s: np.array(vals(4, seed + 2)).reshape([4]) }, { s: np.array(vals(4, seed + 3)).reshape([2, 2]) }],
  } as unknown as Params;
}

test('param layout: contiguous offsets in flattenParams order; packTree and the host pack/unpack agree', async () => {
  const t = smallTree(1);
  const layout = paramLayout(t);
  assert.deepEqual(layout.map((l) => [l.name, l.offset, l.size]), [
    ['enc.w', 0, 6],
    ['enc.b', 6, 3],
    ['blocks.0.s', 9, 4],
    ['blocks.1.s', 13, 4],
  ]);
  assert.deepEqual(layout[3].shape, [2, 2]);
  const host = new Map<string, Float32Array>();
  for (const [k, a] of flattenParams(t)) host.set(k, Float32Array.from((await a.ref.data()) as Float32Array));
  const packed = (await jit((x: Params) => packTree(x, layout))(t).data()) as Float32Array;
  const expected = packHost(layout, (name) => host.get(name)!);
  assert.deepEqual(Float32Array.from(packed), expected);
  for (const [name, { data, shape }] of unpackHost(layout, expected)) {
    assert.deepEqual(Float32Array.from(data), host.get(name));
    assert.deepEqual(shape, layout.find((l) => l.name === name)!.shape);
  }
});

test('packTree handles more leaves than one concatenate takes (tree of ≤8-input concats)', async () => {
  const leaves = Array.from({ length: 21 }, (_, i) => np.array(vals(i + 1, i)));
  const t = { l: leaves } as unknown as Params;
  const layout = paramLayout(t);
  const expected = packHost(layout, (_, shape) => vals(shape[0], Number(_.split('.')[1])));
  const packed = (await jit((x: Params) => packTree(x, layout))(t).data()) as Float32Array;
  assert.equal(packed.length, (21 * 22) / 2);
  assert.deepEqual(Float32Array.from(packed), expected);
});

test('flat AdamW matches a float32 host reference over 3 steps, with weight decay', async () => {
  const h = { lr: 0.01, beta1: 0.9, beta2: 0.99, weightDecay: 0.05, eps: 1e-8 };
  let p = smallTree(3);
  const layout = paramLayout(p);
  const n = 17;
  const update = makeAdamUpdate(h, layout);
  let state = adamInit(layout);
  // reference, leaf by leaf on the host
  const f = Math.fround;
  const hp = new Float32Array(n);
  {
    let off = 0;
    for (const a of flattenParams(p).values()) {
      hp.set((await a.ref.data()) as Float32Array, off);
      off += a.size;
    }
  }
  const hm = new Float32Array(n);
  const hv = new Float32Array(n);
  for (let step = 1; step <= 3; step++) {
    const g = vals(n, 10 + step);
    const c1 = 1 / (1 - h.beta1 ** step);
    const c2 = 1 / (1 - h.beta2 ** step);
    for (let i = 0; i < n; i++) {
      hm[i] = f(f(hm[i] * f(h.beta1)) + f(g[i] * f(1 - h.beta1)));
      hv[i] = f(f(hv[i] * f(h.beta2)) + f(f(g[i] * g[i]) * f(1 - h.beta2)));
      const upd = f(f(hm[i] * f(c1)) / f(f(Math.sqrt(f(hv[i] * f(c2)))) + f(h.eps)));
      hp[i] = f(hp[i] - f(f(upd + f(hp[i] * f(h.weightDecay))) * f(h.lr)));
    }
    const out = update(p, np.array(g), state.m, state.v, np.array(h.lr), np.array(c1), np.array(c2));
    p = out.p;
    state = { m: out.m, v: out.v, step };
  }
  const got = new Float32Array(n);
  let off = 0;
  for (const a of flattenParams(p).values()) {
    assert.deepEqual(a.shape, layout.find((l) => l.offset === off)!.shape);
    got.set((await a.ref.data()) as Float32Array, off);
    off += a.size;
  }
  for (let i = 0; i < n; i++) assert.ok(Math.abs(got[i] - hp[i]) <= 1e-6 * Math.max(1, Math.abs(hp[i])), `param ${i}: ${got[i]} vs ${hp[i]}`);
  const gm = (await state.m.data()) as Float32Array;
  const gv = (await state.v.data()) as Float32Array;
  for (let i = 0; i < n; i++) {
    assert.ok(Math.abs(gm[i] - hm[i]) <= 1e-7, `m ${i}`);
    assert.ok(Math.abs(gv[i] - hv[i]) <= 1e-7, `v ${i}`);
  }
  update.dispose();
});

test('checkpoints keep the Adam moments per parameter name; a mis-shaped moment names the file', async () => {
  const cfg = microConfig();
  const t = Trainer.create(cfg, 2);
  const data = new ShapesSource(cfg.image.size);
  await t.trainStep(data);
  const dir = tmp();
  await t.checkpoint(dir);
  const names = [...flattenParams({ enc: t.model.params.enc, dec: t.model.params.dec } as unknown as Params).entries()];
  t.dispose();
  const path = join(dir, STATE_FILE);
  const file = readSafetensors(path);
  for (const [name, a] of names) {
    const m = file.tensors.get(`adam.m.${name}`);
    assert.ok(m, `adam.m.${name} saved`);
    assert.deepEqual(m.shape, a.shape);
  }
  // after one step m = (1 − β1)·g is nonzero somewhere
  assert.ok([...file.tensors].some(([k, v]) => k.startsWith('adam.m.') && (v.data as Float32Array).some((x) => x !== 0)));
  const [victim] = names[0];
  file.tensors.set(`adam.v.${victim}`, { dtype: 'F32', shape: [1], data: new Float32Array(1) });
  writeFileSync(path, encodeSafetensors(file.tensors, file.metadata));
  assert.throws(() => Trainer.resume(dir), new RegExp(`${STATE_FILE.replace('.', '\\.')}: missing or mis-shaped adam\\.v\\.${victim.replaceAll('.', '\\.')}`));
});
