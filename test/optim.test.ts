import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jit, numpy as np } from '@jax-js/jax';
import { wasm, microConfig, tmp } from './helpers.ts';
import { adamInit, makeAdamUpdate, packHost, packTree, paramLayout, unpackHost, type ParamLayout } from '../src/nn/optim.ts';
import { flattenParams, type Params } from '../src/nn/params.ts';
import { ShapesSource } from '../src/data/source.ts';
import { Trainer, STATE_FILE } from '../src/train/trainer.ts';
import { encodeSafetensors } from '../src/io/safetensors.ts';
import { readSafetensors } from '../src/node/safetensors-files.ts';

before(wasm);

const vals = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.3 + i * 1.7));

function smallTree(seed: number): Params {
  // nested objects and lists, as the model's parameter trees are
  return {
    enc: { w: np.array(vals(6, seed)).reshape([2, 3]), b: np.array(vals(3, seed + 1)) },
    blocks: [{ s: np.array(vals(4, seed + 2)).reshape([4]) }, { s: np.array(vals(4, seed + 3)).reshape([2, 2]) }],
  } as unknown as Params;
}

async function hostLeaves(t: Params): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, a] of flattenParams(t)) out.set(k, Float32Array.from((await a.ref.data()) as Float32Array));
  return out;
}

async function packed(t: Params, layout: ParamLayout): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const b of jit((x: Params) => packTree(x, layout))(t)) out.push(Float32Array.from((await b.data()) as Float32Array));
  return out;
}

test('param layout: buckets of consecutive parameters in flattenParams order; packTree and the host pack/unpack agree', async () => {
  const slot = (l: ParamLayout) => l.slots.map((s) => [s.name, s.bucket, s.offset, s.size]);
  // no cap: one bucket for all 17 parameters
  const one = paramLayout(smallTree(1), Infinity);
  assert.deepEqual(slot(one), [
    ['enc.w', 0, 0, 6],
    ['enc.b', 0, 6, 3],
    ['blocks.0.s', 0, 9, 4],
    ['blocks.1.s', 0, 13, 4],
  ]);
  assert.deepEqual(one.bucketSizes, [17]);
  assert.deepEqual(one.slots[3].shape, [2, 2]);
  // a cap of 9 elements: enc.w + enc.b fill the first bucket, the two 4-element ones the second
  assert.deepEqual(slot(paramLayout(smallTree(1), 9)), [
    ['enc.w', 0, 0, 6],
    ['enc.b', 0, 6, 3],
    ['blocks.0.s', 1, 0, 4],
    ['blocks.1.s', 1, 4, 4],
  ]);
  // by default (cap 0): one bucket per parameter
  assert.deepEqual(paramLayout(smallTree(1)).bucketSizes, [6, 3, 4, 4]);
  for (const cap of [Infinity, 9, 0]) {
    const t = smallTree(1);
    const layout = paramLayout(t, cap);
    const host = await hostLeaves(t);
    const expected = packHost(layout, (name) => host.get(name)!);
    assert.deepEqual(await packed(t, layout), expected, `cap ${cap}`);
    for (const [name, { data, shape }] of unpackHost(layout, expected)) {
      assert.deepEqual(Float32Array.from(data), host.get(name));
      assert.deepEqual(shape, layout.slots.find((s) => s.name === name)!.shape);
    }
  }
});

test('packTree handles more leaves than one concatenate takes (tree of ≤8-input concats)', async () => {
  const t = { l: Array.from({ length: 21 }, (_, i) => np.array(vals(i + 1, i))) } as unknown as Params;
  const layout = paramLayout(t, Infinity);
  const expected = packHost(layout, (name, shape) => vals(shape[0], Number(name.split('.')[1])));
  const got = await packed(t, layout);
  assert.equal(got.length, 1);
  assert.equal(got[0].length, (21 * 22) / 2);
  assert.deepEqual(got, expected);
});

test('AdamW on bucketed moments matches a float32 host reference over 3 steps, with weight decay, whatever the bucketing', async () => {
  const h = { lr: 0.01, beta1: 0.9, beta2: 0.99, weightDecay: 0.05, eps: 1e-8 };
  const f = Math.fround;
  const n = 17;
  // reference on the host, element by element in float32
  const start = await hostLeaves(smallTree(3));
  const hp = Float32Array.from([...start.values()].flatMap((a) => [...a]));
  const hm = new Float32Array(n);
  const hv = new Float32Array(n);
  const grads: Float32Array[] = [];
  for (let step = 1; step <= 3; step++) {
    const g = vals(n, 10 + step);
    grads.push(g);
    const c1 = 1 / (1 - h.beta1 ** step);
    const c2 = 1 / (1 - h.beta2 ** step);
    for (let i = 0; i < n; i++) {
      hm[i] = f(f(hm[i] * f(h.beta1)) + f(g[i] * f(1 - h.beta1)));
      hv[i] = f(f(hv[i] * f(h.beta2)) + f(f(g[i] * g[i]) * f(1 - h.beta2)));
      const upd = f(f(hm[i] * f(c1)) / f(f(Math.sqrt(f(hv[i] * f(c2)))) + f(h.eps)));
      hp[i] = f(hp[i] - f(f(upd + f(hp[i] * f(h.weightDecay))) * f(h.lr)));
    }
  }
  const results: Float32Array[] = [];
  for (const cap of [Infinity, 9, 0]) {
    let p = smallTree(3);
    const layout = paramLayout(p, cap);
    const update = makeAdamUpdate(h, layout);
    let state = adamInit(layout);
    for (let step = 1; step <= 3; step++) {
      // the flat gradient in layout order, cut into the layout's buckets
      const g = grads[step - 1];
      const gb = layout.bucketSizes.map((_, b) => {
        const mine = layout.slots.filter((s) => s.bucket === b);
        return np.array(Float32Array.from(mine.flatMap((s) => [...g.subarray(s.offset + sum(layout, s.bucket), s.offset + sum(layout, s.bucket) + s.size)])));
      });
      const out = update(p, gb, state.m, state.v, np.array(h.lr), np.array(1 / (1 - h.beta1 ** step)), np.array(1 / (1 - h.beta2 ** step)));
      p = out.p;
      state = { m: out.m, v: out.v, step };
    }
    const got = Float32Array.from([...(await hostLeaves(p)).values()].flatMap((a) => [...a]));
    for (let i = 0; i < n; i++) assert.ok(Math.abs(got[i] - hp[i]) <= 1e-6 * Math.max(1, Math.abs(hp[i])), `cap ${cap}, param ${i}: ${got[i]} vs ${hp[i]}`);
    const ms: number[] = [];
    const vs: number[] = [];
    for (const b of state.m) ms.push(...((await b.data()) as Float32Array));
    for (const b of state.v) vs.push(...((await b.data()) as Float32Array));
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(ms[i] - hm[i]) <= 1e-7, `cap ${cap}, m ${i}`);
      assert.ok(Math.abs(vs[i] - hv[i]) <= 1e-7, `cap ${cap}, v ${i}`);
    }
    results.push(got);
    flattenParams(p).forEach((a) => a.dispose());
    update.dispose();
  }
  // the bucketing changes where numbers live, not the numbers
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[2], results[0]);
});

/** Elements in the buckets before bucket b (the layout is in order, so slot offsets plus this are global). */
function sum(layout: ParamLayout, b: number): number {
  return layout.bucketSizes.slice(0, b).reduce((x, y) => x + y, 0);
}

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
