// Device memory and the profiler (issue #21): a training step's peak stays within a bound
// derived from its shapes, the queued-jit behaviour it replaced does not, and the profiler
// sorts kernels by kind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { grad, jit, nn, numpy as np } from '@jax-js/jax';
import { wasm } from './helpers.ts';
import { trackMemory } from '../src/engine/memory.ts';
import { activeDevice } from '../src/engine/device.ts';
import { profileStep } from '../src/engine/profile.ts';
import { geluTanh } from '../src/nn/layers.ts';
import { ShapesSource } from '../src/data/source.ts';
import { Trainer } from '../src/train/trainer.ts';
import { countParams, type Params } from '../src/nn/params.ts';
import { loadConfig } from '../src/node/configs.ts';
import type { SelftokConfig } from '../src/tokenizer/config.ts';

before(wasm);
after(() => {
  delete process.env.JAX_JS_LAZY_JIT;
});

/**
 * What a training step of `cfg` at batch B may hold at once, in bytes. State: the parameters,
 * their gradients and Adam's two moments (float32). Activations the backward pass keeps, per
 * image and block: every head's attention scores and probabilities and their gradient (3 × q × k)
 * and about (8 + 3·mlpRatio) copies of the token stream (norm outputs, q, k, v, the attention
 * output, the MLP's hidden layer and its activation); the encoder's blocks over patches + queries,
 * the decoder's queries over patches and keys over patches + tokens. Doubled for everything
 * else (patch embedding, the VQ, the loss, gradients of the activations in flight).
 */
function stepMemoryBound(cfg: SelftokConfig, batch: number, params: number): number {
  const n = (cfg.image.size / cfg.image.patch) ** 2;
  const s = n + cfg.K;
  const e = cfg.encoder;
  const d = cfg.decoder;
  const encBlock = e.imageHeads * s * s * 3 + s * Math.max(e.imageWidth, e.tokenWidth) * (8 + 3 * e.mlpRatio);
  const decBlock = d.heads * n * s * 3 + s * d.width * (8 + 3 * d.mlpRatio);
  const activations = 4 * batch * (e.depth * encBlock + d.depth * decBlock);
  return 4 * 4 * params + 2 * activations;
}

async function measureStep(cfg: SelftokConfig, batch: number): Promise<{ peak: number; losses: number[]; params: number }> {
  const mem = await trackMemory(activeDevice());
  const t = Trainer.create(cfg, 0, batch);
  const data = new ShapesSource(cfg.image.size);
  const losses = [(await t.trainStep(data)).loss]; // compiles
  mem.resetPeak();
  losses.push((await t.trainStep(data)).loss);
  const peak = mem.peakBytes();
  const params = countParams({ enc: t.model.params.enc, dec: t.model.params.dec } as unknown as Params);
  t.dispose();
  return { peak, losses, params };
}

test('a tiny training step at batch 4 peaks within the bound from its shapes; the queued jit exceeds it', async () => {
  const cfg = loadConfig('tiny');
  const eager = await measureStep(cfg, 4);
  const bound = stepMemoryBound(cfg, 4, eager.params);
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
  assert.ok(eager.peak <= bound, `peak ${mb(eager.peak)} > bound ${mb(bound)}`);
  // the behaviour the bound guards against: every kernel of the jitted step queued before any
  // runs, so every intermediate buffer is alive at once (jax-js as published; patches/)
  process.env.JAX_JS_LAZY_JIT = '1';
  const queued = await measureStep(cfg, 4);
  delete process.env.JAX_JS_LAZY_JIT;
  assert.ok(queued.peak > bound, `queued peak ${mb(queued.peak)} ≤ bound ${mb(bound)}`);
  assert.ok(queued.peak > 2 * eager.peak, `${mb(queued.peak)} vs ${mb(eager.peak)}`);
  // the same kernels in the same order: the same numbers, bit for bit
  assert.deepEqual(eager.losses, queued.losses);
});

test('the profiler counts the kernels of a step and sorts them by kind', async () => {
  const x = np.ones([2, 4, 16, 8]);
  const w = np.ones([8, 32]);
  const f = jit((x: np.Array, w: np.Array) => {
    const h = np.matmul(x.ref, w); // [2, 4, 16, 32]: a batched matmul, rank 4 → attention-like
    const flat = np.matmul(x.reshape([128, 8]), np.ones([8, 8])); // rank 2 → matmul
    return [np.exp(h).sum(), flat];
  });
  await Promise.all(f(x.ref, w.ref).map((a: np.Array) => a.data())); // compile
  const p = await profileStep(async () => {
    const outs = f(x.ref, w.ref);
    await Promise.all(outs.map((a: np.Array) => a.data()));
  });
  assert.equal(p.byKind.attention.kernels, 1, JSON.stringify(p.top));
  assert.equal(p.byKind.matmul.kernels, 1, JSON.stringify(p.top));
  assert.ok(p.byKind.reduction.kernels + p.byKind['element-wise'].kernels >= 1);
  const sum = Object.values(p.byKind).reduce((a, k) => a + k.kernels, 0);
  assert.equal(p.dispatches, sum);
  assert.ok(p.wallMs > 0 && p.hostMs >= 0 && p.hostMs <= p.wallMs);
  x.dispose();
  w.dispose();
  f.dispose();
});

test('geluTanh: the value of nn.gelu exactly, its gradient within float rounding', async () => {
  const xs = Float32Array.from({ length: 401 }, (_, i) => (i - 200) / 25); // −8 … 8
  const x = np.array(xs);
  const ours = (await geluTanh(x.ref).data()) as Float32Array;
  const theirs = (await nn.gelu(x.ref, { approximate: true }).data()) as Float32Array;
  const differ = [...ours].filter((v, i) => v !== theirs[i]).length; // === : −0 and 0 are the same value
  assert.equal(differ, 0);
  const gOurs = (await grad((v: np.Array) => geluTanh(v).sum())(x.ref).data()) as Float32Array;
  const gTheirs = (await grad((v: np.Array) => nn.gelu(v, { approximate: true }).sum())(x).data()) as Float32Array;
  let worst = 0;
  for (let i = 0; i < xs.length; i++) worst = Math.max(worst, Math.abs(gOurs[i] - gTheirs[i]));
  assert.ok(worst < 2e-6, `largest gradient difference ${worst}`);
  // the slope where it matters: 0.5 at 0, → 1 for large x, → 0 for very negative x, > 1 near 1.5
  assert.ok(Math.abs(gOurs[200] - 0.5) < 1e-6 && Math.abs(gOurs[400] - 1) < 1e-4 && Math.abs(gOurs[0]) < 1e-4);
  assert.ok(gOurs[200 + 38] > 1.1, String(gOurs[238]));
});
