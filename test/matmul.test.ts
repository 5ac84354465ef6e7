// The wasm matmul paths this repository patches in jax-js (docs/engine-profile.md, stop 34):
// batched products whose shared operand gets one pointer per column (attention's q·kᵀ and p·v),
// and x·Wᵀ, whose weight the jit copies once into the tiled matmul's order. Both are checked
// against a float64 loop on shapes that cross batch boundaries inside a micro-tile's alignment
// and on odd sizes that take the scalar tails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grad, jit, numpy as np, random } from '@jax-js/jax';
import { Rng } from '../src/util/rng.ts';
import { setupDevice } from '../src/node/device.ts';
import { traceStep } from '../src/engine/profile.ts';

await setupDevice('wasm');

/** Swap the last two axes (a view). */
const T = (a: np.Array) => np.moveaxis(a, -1, -2);

/** a [..., I, D] (or [..., D, I] when ta) times b [..., D, J] (or [..., J, D] when tb), in float64. */
function reference(A: Float32Array, Bv: Float32Array, batch: number, I: number, D: number, J: number, ta: boolean, tb: boolean): Float64Array {
  const out = new Float64Array(batch * I * J);
  for (let n = 0; n < batch; n++)
    for (let i = 0; i < I; i++)
      for (let j = 0; j < J; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) {
          const av = ta ? A[(n * D + d) * I + i] : A[(n * I + i) * D + d];
          const bv = tb ? Bv[(n * J + j) * D + d] : Bv[(n * D + d) * J + j];
          s += av * bv;
        }
        out[(n * I + i) * J + j] = s;
      }
  return out;
}

async function maxError(lead: number[], I: number, D: number, J: number, ta: boolean, tb: boolean, seed: number): Promise<number> {
  const [k1, k2] = random.split(random.key(seed), 2);
  const a = random.normal(k1, [...lead, ta ? D : I, ta ? I : D]);
  const b = random.normal(k2, [...lead, tb ? J : D, tb ? D : J]);
  const f = jit((x: np.Array, y: np.Array) => np.matmul(ta ? T(x) : x, tb ? T(y) : y));
  const got = (await f(a.ref, b.ref).data()) as Float32Array;
  f.dispose();
  const want = reference((await a.data()) as Float32Array, (await b.data()) as Float32Array, lead.reduce((p, x) => p * x, 1), I, D, J, ta, tb);
  assert.equal(got.length, want.length);
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err;
}

test('batched matmuls on wasm (attention-shaped, odd sizes, each operand plain or transposed) agree with a float64 loop', async () => {
  const shapes: [number[], number, number, number][] = [
    [[4, 5], 64, 32, 96], // heads of q·kᵀ: a batch boundary every 64 rows
    [[4, 5], 64, 96, 32], // p·v
    [[2, 3], 8, 4, 12],
    [[3, 2], 5, 8, 7], // no SIMD tile fits: the scalar path
    [[2, 1], 33, 12, 20],
    [[8, 2], 4, 64, 8],
  ];
  let seed = 0;
  for (const [lead, I, D, J] of shapes)
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const err = await maxError(lead, I, D, J, ta, tb, seed++);
        assert.ok(err < 2e-5, `[${lead}] ${I}×${D}×${J} ta=${ta} tb=${tb}: max error ${err}`);
      }
});

test('x·Wᵀ on wasm reads a copy of W in [in, out] order when W is read ≥ 128 times per element, and agrees with a float64 loop', async () => {
  const copies = async (M: number): Promise<number> => {
    const x = random.normal(random.key(1), [M, 160]);
    const w = random.normal(random.key(2), [96, 160]);
    const f = jit((a: np.Array, b: np.Array) => np.matmul(a, b.transpose()));
    await f(x.ref, w.ref).data(); // compile outside the trace
    const { kernels } = await traceStep(() => f(x.ref, w.ref).data());
    f.dispose();
    x.dispose();
    w.dispose();
    // the copy: an element-wise kernel of W's 96 × 160 elements that reads W and nothing else
    return kernels.filter((k) => !k.info.reduction && Number(k.info.size) === 96 * 160).length;
  };
  assert.equal(await copies(256), 1, 'a weight read 256 times is copied once');
  assert.equal(await copies(64), 0, 'a weight read 64 times is read in place');
  for (const M of [64, 256]) {
    const err = await maxError([], M, 160, 96, false, true, 10 + M);
    assert.ok(err < 5e-5, `${M}×160×96 x·Wᵀ: max error ${err}`);
  }
});

/** Row-major strides of a shape. */
const stridesOf = (shape: number[]): number[] => shape.map((_, i) => shape.slice(i + 1).reduce((p, x) => p * x, 1));

/** out[idx] = src[map(idx)] (or 0 where map gives −1) over out's shape, in float64. */
function gatherHost(src: Float32Array, outShape: number[], map: (idx: number[]) => number): Float32Array {
  const out = new Float32Array(outShape.reduce((p, x) => p * x, 1));
  const st = stridesOf(outShape);
  for (let g = 0; g < out.length; g++) {
    const idx = st.map((s, i) => Math.floor(g / s) % outShape[i]);
    const at = map(idx);
    out[g] = at < 0 ? 0 : src[at];
  }
  return out;
}

test('strided copies on wasm (transposes, head splits, slices, pads, flips) read exactly the right elements', async () => {
  const cases: { name: string; shape: number[]; f: (a: np.Array) => np.Array; outShape: number[]; map: (idx: number[]) => number }[] = [];
  {
    const shape = [16, 5, 96, 32];
    const s = stridesOf(shape);
    cases.push({ name: 'kᵀ', shape, f: (a) => np.moveaxis(a, -1, -2), outShape: [16, 5, 32, 96], map: ([b, h, d, j]) => b * s[0] + h * s[1] + j * s[2] + d });
  }
  {
    const shape = [16, 96, 160];
    const s = stridesOf(shape);
    cases.push({ name: 'heads', shape, f: (a) => a.reshape([16, 96, 5, 32]).transpose([0, 2, 1, 3]), outShape: [16, 5, 96, 32], map: ([b, h, t, d]) => b * s[0] + t * s[1] + h * 32 + d });
  }
  {
    const shape = [4, 66, 66, 8];
    const s = stridesOf(shape);
    cases.push({ name: 'slice', shape, f: (a) => a.slice([], [1, 65], [1, 65]), outShape: [4, 64, 64, 8], map: ([b, y, x, c]) => b * s[0] + (y + 1) * s[1] + (x + 1) * s[2] + c });
  }
  {
    const shape = [4, 64, 64, 8];
    const s = stridesOf(shape);
    const pads: [number, number][] = [[0, 0], [1, 1], [1, 1], [0, 0]];
    cases.push({ name: 'pad', shape, f: (a) => np.pad(a, pads), outShape: [4, 66, 66, 8], map: ([b, y, x, c]) => (y < 1 || y > 64 || x < 1 || x > 64 ? -1 : b * s[0] + (y - 1) * s[1] + (x - 1) * s[2] + c) });
  }
  {
    const shape = [16, 64, 160];
    const s = stridesOf(shape);
    cases.push({ name: 'flip', shape, f: (a) => np.flip(a, 1), outShape: [16, 64, 160], map: ([b, t, c]) => b * s[0] + (63 - t) * s[1] + c });
  }
  {
    const shape = [320, 160];
    cases.push({ name: 'transpose', shape, f: (a) => a.transpose(), outShape: [160, 320], map: ([i, j]) => j * 160 + i });
  }
  let seed = 20;
  for (const c of cases) {
    const a = random.normal(random.key(seed++), c.shape);
    // ×2 is exact, and makes the view a kernel of its own rather than a view of the input
    const f = jit((x: np.Array) => c.f(x).mul(2));
    const got = (await f(a.ref).data()) as Float32Array;
    f.dispose();
    const want = gatherHost((await a.data()) as Float32Array, c.outShape, c.map).map((v) => 2 * v);
    assert.equal(got.length, want.length, c.name);
    let bad = 0;
    for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) bad++;
    assert.equal(bad, 0, `${c.name}: ${bad} of ${got.length} elements differ`);
  }
});

test('concatenations, gradients of slices and row-broadcast reads on wasm (one loop per row segment, pointers set per row) give exact values, −0 and NaN included', async () => {
  const specials = [-0, 0, NaN, Infinity, -Infinity, 1e-40, -3.5];
  const rng = new Rng(7);
  const fill = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? specials[rng.int(0, specials.length)] : rng.normal()));
  const cases: { name: string; shapes: number[][]; axis: number }[] = [
    { name: 'q, k, v gradients', shapes: [[32, 64, 128], [32, 64, 128], [32, 64, 128]], axis: 2 }, // four lanes at a time
    { name: 'odd widths', shapes: [[5, 7, 3], [5, 7, 6]], axis: 2 }, // segments of 3 and 6: one lane at a time
    { name: 'joint keys', shapes: [[16, 32, 160], [16, 64, 160]], axis: 1 }, // a test per row
    { name: 'batches', shapes: [[3, 5, 12], [2, 5, 12]], axis: 0 },
  ];
  for (const c of cases) {
    const srcs = c.shapes.map((s) => fill(s.reduce((p, x) => p * x, 1)));
    const outShape = c.shapes[0].map((d, i) => (i === c.axis ? c.shapes.reduce((p, s) => p + s[i], 0) : d));
    const want = new Float32Array(outShape.reduce((p, x) => p * x, 1));
    const st = stridesOf(outShape);
    for (let g = 0; g < want.length; g++) {
      const idx = st.map((s, i) => Math.floor(g / s) % outShape[i]);
      let k = 0;
      while (idx[c.axis] >= c.shapes[k][c.axis]) idx[c.axis] -= c.shapes[k++][c.axis];
      const ss = stridesOf(c.shapes[k]);
      want[g] = srcs[k][idx.reduce((p, x, i) => p + x * ss[i], 0)] + 0; // the masked terms sum with zeros: −0 reads +0
    }
    const f = jit((...xs: np.Array[]) => np.concatenate(xs, c.axis).add(0));
    const got = (await f(...srcs.map((d, k) => np.array(d).reshape(c.shapes[k]))).data()) as Float32Array;
    f.dispose();
    assert.equal(got.length, want.length);
    const bad = [...want.keys()].filter((i) => !Object.is(got[i], want[i]));
    assert.equal(bad.length, 0, `${c.name}: ${bad.length} elements differ, first at ${bad[0]}: ${got[bad[0]]} ≠ ${want[bad[0]]}`);
  }
  // element-wise kernels whose reads move along the row or stay (a bias, a per-row maximum): pointers set once per row
  const [R, C] = [16 * 64, 48];
  const x = fill(R * C);
  const bias = fill(C);
  const rowMax = Array.from({ length: R }, (_, r) => x.subarray(r * C, (r + 1) * C).reduce((m, v) => (Number.isNaN(m) || Number.isNaN(v) ? NaN : Math.max(m, v)), -Infinity));
  const h = jit((a: np.Array, b: np.Array) => [a.ref.add(b), a.ref.sub(a.max(-1, { keepdims: true }))]);
  const [sum, centred] = h(np.array(x).reshape([16, 64, C]), np.array(bias)) as np.Array[];
  h.dispose();
  const sums = (await sum.data()) as Float32Array;
  const diffs = (await centred.data()) as Float32Array;
  for (let i = 0; i < R * C; i++) {
    assert.ok(Object.is(sums[i], Math.fround(x[i] + bias[i % C])), `bias at ${i}: ${sums[i]}`);
    assert.ok(Object.is(diffs[i], Math.fround(x[i] - rowMax[Math.floor(i / C)])), `row maximum at ${i}: ${diffs[i]}`);
  }
  // the gradient of a slice is the cotangent padded with zeros
  const w = fill(8 * 8);
  const g = jit(grad((x: np.Array) => x.slice([], [2, 10], [4, 12]).mul(np.array(w).reshape([1, 8, 8])).sum()));
  const got = (await g(np.zeros([3, 12, 16])).data()) as Float32Array;
  g.dispose();
  const want = gatherHost(w, [3, 12, 16], ([, y, x]) => (y >= 2 && y < 10 && x >= 4 && x < 12 ? (y - 2) * 8 + (x - 4) : -1));
  assert.deepEqual([...got].map((v) => v + 0), [...want].map((v) => v + 0));
});
