// The arithmetic peak of WebAssembly SIMD on this CPU, beside jax-js's matmul and PyTorch's
// (issue #21: what a wasm training step can reach against PyTorch's on the same cores).
//
//   npm run bench:peak [-- --torch PYTHON] [--json FILE]
//
// 1. wasm peak: a hand-assembled module whose loop updates 12 independent f32x4 accumulators,
//    acc ← acc · x + y (one mul and one add per lane: 96 flops an iteration), no memory
//    traffic: the most 128-bit SIMD (no FMA in wasm's base SIMD) gets from one core; and the
//    same loop with relaxed SIMD's f32x4.relaxed_madd (a fused multiply-add on x86 with FMA).
// 2. jax-js matmul: jit(matmul) on wasm at the shapes of photo64's largest products and a
//    square one, as A·B and as A·Bᵀ (the reduction contiguous in both operands, as in a linear
//    layer's forward pass), and its attention's batched q·kᵀ and p·v, GFLOP/s on one thread.
// 3. PyTorch (with --torch): the same products (a @ b, batched for attention), float32, 1 thread, GFLOP/s.
// The ratio of 2 to 3 is the floor of "× PyTorch" for any step whose time is mostly matmuls.
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Command } from 'commander';
import { jit, numpy as np } from '@jax-js/jax';
import { RELAXED_SIMD, setupDevice } from '../src/node/device.ts';

const ACC = 12;

/** unsigned LEB128 */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

const simd = (op: number) => [0xfd, ...leb(op)];
const F32X4_SPLAT = 0x13;
const F32X4_EXTRACT = 0x1f;
const F32X4_ADD = 0xe4;
const F32X4_MUL = 0xe6;
const F32X4_RELAXED_MADD = 0x105;
const f32const = (x: number) => [0x43, ...new Uint8Array(Float32Array.of(x).buffer)];
const get = (i: number) => [0x20, ...leb(i)];
const set = (i: number) => [0x21, ...leb(i)];

/**
 * (func (param i32 n) (result f32)): n iterations of ACC independent acc ← acc·x + y on f32x4,
 * as a mul and an add, or (`fused`) as one relaxed_madd of relaxed SIMD (a fused multiply-add
 * where the CPU has one).
 */
function peakModule(fused: boolean): Uint8Array {
  const X = ACC + 1;
  const Y = ACC + 2;
  const body: number[] = [];
  for (let i = 1; i <= ACC; i++) body.push(...f32const(i * 1e-3), ...simd(F32X4_SPLAT), ...set(i));
  body.push(...f32const(0.999999), ...simd(F32X4_SPLAT), ...set(X));
  body.push(...f32const(1e-6), ...simd(F32X4_SPLAT), ...set(Y));
  body.push(0x03, 0x40); // loop
  for (let i = 1; i <= ACC; i++) {
    if (fused) body.push(...get(i), ...get(X), ...get(Y), ...simd(F32X4_RELAXED_MADD), ...set(i));
    else body.push(...get(i), ...get(X), ...simd(F32X4_MUL), ...get(Y), ...simd(F32X4_ADD), ...set(i));
  }
  body.push(...get(0), 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b); // n ← n − 1; br_if loop (n ≠ 0); end
  body.push(...get(1));
  for (let i = 2; i <= ACC; i++) body.push(...get(i), ...simd(F32X4_ADD));
  body.push(...simd(F32X4_EXTRACT), 0, 0x0b);
  const locals = [1, ACC + 2, 0x7b]; // ACC + 2 v128 locals after the i32 parameter
  const fn = [...locals, ...body];
  const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
  const name = [...new TextEncoder().encode('run')];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 1, 0x7f, 1, 0x7d]),
    ...section(3, [1, 0]),
    ...section(7, [1, name.length, ...name, 0x00, 0]),
    ...section(10, [1, ...leb(fn.length), ...fn]),
  ]);
}

function wasmPeak(fused = false): { gflops: number; seconds: number } {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(peakModule(fused).buffer as ArrayBuffer));
  const run = inst.exports.run as (n: number) => number;
  run(1e6); // tier up
  const n = 2e8 / ACC;
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    run(n);
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return { gflops: (n * ACC * 8) / best / 1e9, seconds: best };
}

/** [M, K] × [K, N]: photo64's largest training products (tokens × width) and a square one. */
const SHAPES: [number, number, number][] = [
  [1024, 320, 160],
  [1024, 160, 480],
  [1024, 480, 160],
  [512, 512, 512],
];

/** A·B (b stored K × N) and A·Bᵀ (b stored N × K, the reduction contiguous in both: a linear layer's forward pass with W stored [out, in]). */
const FORMS = ['A·B', 'A·Bᵀ'] as const;

/**
 * photo64's attention products at batch 16 (16 × 5 heads, 64 queries, 96 keys, head width 32):
 * q·kᵀ (the reduction contiguous in both) and p·v, batched matmuls of small matrices.
 */
const ATTENTION: { form: string; a: number[]; b: number[]; transposeB: boolean }[] = [
  { form: 'q·kᵀ', a: [80, 64, 32], b: [80, 96, 32], transposeB: true },
  { form: 'p·v', a: [80, 64, 96], b: [80, 96, 32], transposeB: false },
];

type Case = { form: string; a: number[]; b: number[]; transposeB: boolean; shape: number[]; flops: number };
function cases(): Case[] {
  const out: Case[] = [];
  for (const form of FORMS)
    for (const [M, K, N] of SHAPES)
      out.push({ form, a: [M, K], b: form === 'A·B' ? [K, N] : [N, K], transposeB: form === 'A·Bᵀ', shape: [M, K, N], flops: 2 * M * K * N });
  for (const c of ATTENTION) {
    const [H, M, K] = c.a;
    const N = c.transposeB ? c.b[1] : c.b[2];
    out.push({ ...c, shape: [H, M, K, N], flops: 2 * H * M * K * N });
  }
  return out;
}

async function jaxMatmul(): Promise<{ form: string; shape: number[]; gflops: number }[]> {
  const out: { form: string; shape: number[]; gflops: number }[] = [];
  for (const c of cases()) {
    const mm = jit((a: np.Array, b: np.Array) => np.matmul(a, c.transposeB ? np.moveaxis(b, -1, -2) : b));
    const a = np.ones(c.a).mul(0.5);
    const b = np.ones(c.b).mul(0.25);
    await mm(a.ref, b.ref).data(); // compile
    const reps = 10;
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) await mm(a.ref, b.ref).data();
    const s = (performance.now() - t0) / 1000 / reps;
    a.dispose();
    b.dispose();
    mm.dispose();
    out.push({ form: c.form, shape: c.shape, gflops: c.flops / s / 1e9 });
  }
  return out;
}

function torchMatmul(python: string): { form: string; shape: number[]; gflops: number }[] {
  const code = `
import json, time, torch
torch.set_num_threads(1)
out = []
for c in json.loads(${JSON.stringify(JSON.stringify(cases()))}):
    a = torch.rand(*c["a"]); b = torch.rand(*c["b"])
    if c["transposeB"]: b = b.transpose(-1, -2)
    for _ in range(5): a @ b
    reps = 50; t0 = time.perf_counter()
    for _ in range(reps): a @ b
    s = (time.perf_counter() - t0) / reps
    out.append({"form": c["form"], "shape": c["shape"], "gflops": c["flops"] / s / 1e9})
print(json.dumps(out))`;
  return JSON.parse(execFileSync(python, ['-c', code], { encoding: 'utf8' }).trim().split('\n').at(-1)!);
}

const o = new Command()
  .option('--torch <python>', 'also time torch.mm at the same shapes on 1 thread with this Python')
  .option('--json <file>', 'write the figures as JSON')
  .parse()
  .opts<{ torch?: string; json?: string }>();

await setupDevice('wasm');
const plain = wasmPeak();
const fused = RELAXED_SIMD ? wasmPeak(true) : null;
// jax-js's matmul uses relaxed_madd where the engine has it (src/node/device.ts), so its
// percentages are of the fused peak then
const peak = fused ?? plain;
const jax = await jaxMatmul();
const torch = o.torch ? torchMatmul(o.torch) : null;
console.log(`wasm SIMD peak, one core (12 × f32x4 mul + add, no memory): ${plain.gflops.toFixed(1)} GFLOP/s`);
if (fused) console.log(`with relaxed SIMD (12 × f32x4.relaxed_madd): ${fused.gflops.toFixed(1)} GFLOP/s; jax-js's matmul uses it (SELFTOK_RELAXED_SIMD=0: not)`);
console.log('| matmul | (heads ×) M × K × N | jax-js wasm GFLOP/s | % of the wasm peak |' + (torch ? ' PyTorch 1 thread GFLOP/s | PyTorch ÷ jax-js |' : ''));
console.log('| --- | --- | --- | --- |' + (torch ? ' --- | --- |' : ''));
jax.forEach((j, i) => {
  const t = torch?.[i];
  console.log(`| ${j.form} | ${j.shape.join(' × ')} | ${j.gflops.toFixed(1)} | ${((100 * j.gflops) / peak.gflops).toFixed(0)}% |` + (t ? ` ${t.gflops.toFixed(1)} | ${(t.gflops / j.gflops).toFixed(2)} |` : ''));
});
if (torch) {
  const best = Math.max(...torch.map((t) => t.gflops));
  console.log(`PyTorch's best matmul ÷ the wasm SIMD peak: ${(best / peak.gflops).toFixed(2)}× (a matmul-bound wasm step cannot come closer to PyTorch's than this)`);
}
if (o.json) writeFileSync(o.json, JSON.stringify({ wasmPeakGflops: plain.gflops, relaxedMaddPeakGflops: fused?.gflops ?? null, relaxedSimd: RELAXED_SIMD, jax, torch }, null, 1) + '\n');
