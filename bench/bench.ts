// `npm run bench`: speed of the current device. Training step time and images/s for the
// named configs, encode images/s, 50-step decode images/s, renderer images/s (when a model
// has one), and peak device memory. Prints a table and writes JSON.
//   npm run bench -- [--device auto|webgpu|wasm] [--json FILE] [--configs tiny,small] [--steps N]
//                    [--torch PYTHON]   also time bench/torch_step.py (the same step in PyTorch)
//                                       on the same shapes: CUDA when the device is webgpu,
//                                       else the CPU with as many threads as jax-js has
//                                       (1, or SELFTOK_THREADS)
//                    [--workers N]      data parallelism: each batch in N shares, this thread and
//                                       N − 1 worker threads (PyTorch then gets N threads)
//                    [--profile]        one more step under jax-js's profiler: kernels dispatched,
//                                       time by kind, host time, the largest buffers at the peak
import '../src/engine/wasm-threads.ts';
import { Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { spawnSync } from 'node:child_process';
import { trackMemory, type PeakBuffers } from '../src/engine/memory.ts';
import { profileStep, KERNEL_KINDS, type StepProfile } from '../src/engine/profile.ts';
import { WASM_THREADS } from '../src/engine/wasm-threads.ts';
import { ShapesSource } from '../src/data/source.ts';
import { Trainer } from '../src/train/trainer.ts';
import { countParams, type Params } from '../src/nn/params.ts';
import { loadConfig } from '../src/node/configs.ts';
import { DEVICE_CHOICES, setupDevice, type DeviceChoice } from '../src/node/device.ts';

const program = new Command('bench')
  .addOption(new Option('--device <d>', 'device').choices(DEVICE_CHOICES).default('auto'))
  .option('--json <file>', 'write results here', 'bench/results.json')
  .option('--configs <list>', 'configs to measure', 'tiny,small')
  .option('--steps <n>', 'timed training steps per config (after 2 warm-up steps)', '5')
  .option('--batch <list>', 'batch per config on this device (default: the config batch on GPU; tiny 16 / small 4 on CPU)')
  .option('--torch <python>', 'also time the same training step in PyTorch (bench/torch_step.py) with this Python')
  .option('--train-only', 'measure the training step only (no encode, decode or renderer figures)')
  .option('--workers <n>', 'threads that share each training batch (data parallelism; the PyTorch step gets as many threads)', '1')
  .option('--profile', 'profile one more training step: kernels, time by kind, the largest buffers alive at the peak')
  .option('--child', 'internal: measure the given configs in this process and print rows as JSON')
  .parse();
const o = program.opts();

// Each config is measured in a fresh process: jax-js's wasm heap never shrinks and its
// allocator reuses memory only within a size class, so one config's free buffers would count
// against the next (measured: `small` after `tiny` ran out of the 4 GiB wasm address space).
if (!o.child) {
  const allRows: unknown[] = [];
  let meta: Record<string, unknown> = {};
  const list: string[] = o.configs.split(',');
  for (const [i, name] of list.entries()) {
    const args = ['--import', 'tsx', 'bench/bench.ts', '--child', '--device', o.device, '--configs', name, '--steps', o.steps];
    if (o.profile) args.push('--profile');
    if (o.trainOnly) args.push('--train-only');
    args.push('--workers', o.workers);
    if (o.batch) args.push('--batch', o.batch.split(',')[i]);
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !line.startsWith('{')) {
      console.error(`bench: ${name} failed (exit ${r.status})`);
      process.exit(1);
    }
    const part = JSON.parse(line);
    if (o.torch) {
      for (const row of part.rows) {
        row.torch = torchStep(o.torch, row.config, row.batch, part.device, Math.max(WASM_THREADS, Number(o.workers)));
        row.slowerThanTorch = row.trainStepMs / row.torch.stepMs;
      }
    }
    allRows.push(...part.rows);
    meta = part;
  }
  const result = { ...meta, rows: allRows };
  printTable(result as never);
  writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${o.json}`);
  process.exit(0);
}

const device = await setupDevice(o.device as DeviceChoice);
const mem = await trackMemory(device);
const steps = Number(o.steps);
const names: string[] = o.configs.split(',');
const batches: number[] | null = o.batch ? o.batch.split(',').map(Number) : null;

type Row = {
  config: string;
  params: number;
  batch: number;
  /** Threads sharing each batch (data parallelism); the peak memory is this thread's heap only. */
  workers: number;
  trainStepMs: number;
  trainImagesPerSecond: number;
  /** null with --train-only */
  encodeImagesPerSecond: number | null;
  decode50ImagesPerSecond: number | null;
  rendererImagesPerSecond: number | null;
  /** The most device memory alive at once in the timed training steps, and in the whole config's run. */
  trainPeakMemoryMB: number;
  peakMemoryMB: number;
  profile?: StepProfile & { peakMB: number; peakBuffers: PeakBuffers[] };
  /** With --torch: the same step in PyTorch, and how many times longer ours takes. */
  torch?: { device: string; threads: number; version: string; stepMs: number; imagesPerSecond: number; peakMB: number; peakKind: string };
  slowerThanTorch?: number;
};

/**
 * Time the PyTorch mirror of the training step (bench/torch_step.py) for one config. A failure
 * (no such Python, no torch, no CUDA) ends the bench with one line, before any JSON is written.
 */
function torchStep(python: string, config: string, batch: number, device: string, threads: number): NonNullable<Row['torch']> {
  const args = ['bench/torch_step.py', '--config', `configs/${config}.json`, '--batch', String(batch)];
  args.push(...(device === 'webgpu' ? ['--device', 'cuda'] : ['--device', 'cpu', '--threads', String(threads)]));
  const r = spawnSync(python, args, { encoding: 'utf8' });
  const line = r.stdout?.trim().split('\n').pop() ?? '';
  if (r.error || r.status !== 0 || !line.startsWith('{')) {
    const why = r.error ? r.error.message : `exit ${r.status}: ${r.stderr.trim().split('\n').pop()}`;
    console.error(`bench: --torch ${python}: the PyTorch step for ${config} failed (${why})`);
    process.exit(1);
  }
  const t = JSON.parse(line);
  return { device: t.device, threads: t.threads, version: t.torch, stepMs: t.msPerStep, imagesPerSecond: t.imagesPerSecond, peakMB: t.peakMB, peakKind: t.peakKind };
}
const rows: Row[] = [];

async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn(); // compile
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - t0) / reps;
}

for (const [i, name] of names.entries()) {
  const cfg = loadConfig(name);
  const B = batches?.[i] ?? (device === 'webgpu' ? cfg.train.batch : name === 'small' ? 4 : cfg.train.batch);
  mem.resetPeak();
  const t = Trainer.create(cfg, 0, B);
  await t.startWorkers(Number(o.workers));
  const data = new ShapesSource(cfg.image.size);
  for (let s = 0; s < 2; s++) await t.trainStep(data);
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) await t.trainStep(data);
  const stepMs = (performance.now() - t0) / steps;
  const trainPeakMemoryMB = mem.peakBytes() / 2 ** 20;
  let profile: Row['profile'];
  if (o.profile) {
    mem.attributePeak(12);
    mem.resetPeak();
    const p = await profileStep(() => t.trainStep(data));
    profile = { ...p, peakMB: mem.peakBytes() / 2 ** 20, peakBuffers: mem.peakBuffers() };
    mem.attributePeak(0);
  }
  const m = t.model;
  let [encodeImagesPerSecond, decode50ImagesPerSecond, rendererImagesPerSecond]: (number | null)[] = [null, null, null];
  if (!o.trainOnly) {
    const evalB = Math.min(B, 16);
    const images = await data.trainBatch(t.rng, evalB);
    encodeImagesPerSecond = (evalB / (await timeIt(() => m.encode(images, evalB), 3))) * 1000;
    const ids = await m.encode(images, evalB);
    decode50ImagesPerSecond = (evalB / (await timeIt(() => m.decode(ids, evalB, { steps: 50, guidance: 1 }), 1))) * 1000;
    m.addRenderer(0);
    rendererImagesPerSecond = (evalB / (await timeIt(() => m.render(ids, evalB), 3))) * 1000;
  }
  rows.push({
    config: name,
    params: countParams({ enc: m.params.enc, dec: m.params.dec } as unknown as Params),
    batch: B,
    workers: t.workers,
    trainStepMs: stepMs,
    trainImagesPerSecond: (B / stepMs) * 1000,
    encodeImagesPerSecond,
    decode50ImagesPerSecond,
    rendererImagesPerSecond,
    trainPeakMemoryMB,
    peakMemoryMB: mem.peakBytes() / 2 ** 20,
    profile,
  });
  await t.stopWorkers();
  t.dispose();
  console.error(`bench: ${name} measured`);
}

const result = {
  device,
  machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
  node: process.version,
  date: new Date().toISOString(),
  note: 'decode and renderer throughput at batch min(B, 16); decode without guidance (a guidance scale other than 1 runs the decoder twice per step); renderer measured on an untrained renderer (speed only)',
  rows,
};
console.log(JSON.stringify(result));
process.exit(0);

function printTable(res: { device: string; machine: string; rows: Row[] }): void {
  const f = (x: number, d = 1) => x.toFixed(d);
  const opt = (x: number | null, d = 1) => (x === null ? '–' : f(x, d));
  console.log(`device ${res.device} (${res.machine})`);
  console.log('| config | params | batch | workers | train step ms | train img/s | encode img/s | 50-step decode img/s | renderer img/s | train peak MB | PyTorch step ms | × PyTorch time | PyTorch peak MB | × PyTorch memory |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of res.rows) {
    const tr = r.torch ? `${f(r.torch.stepMs, 0)} (${r.torch.device}${r.torch.device === 'cpu' ? `, ${r.torch.threads} thread` : ''}) | ${f(r.trainStepMs / r.torch.stepMs, 2)} | ${f(r.torch.peakMB)} | ${f(r.trainPeakMemoryMB / r.torch.peakMB, 2)}` : '– | – | – | –';
    console.log(
      `| ${r.config} | ${(r.params / 1e6).toFixed(2)} M | ${r.batch} | ${r.workers ?? 1} | ${f(r.trainStepMs, 0)} | ${f(r.trainImagesPerSecond)} | ${opt(r.encodeImagesPerSecond)} | ${opt(r.decode50ImagesPerSecond, 2)} | ${opt(r.rendererImagesPerSecond)} | ${f(r.trainPeakMemoryMB)} | ${tr} |`,
    );
  }
  for (const r of res.rows) if (r.profile) printProfile(r.config, r.batch, r.profile);
}

function printProfile(config: string, batch: number, p: NonNullable<Row['profile']>): void {
  const f = (x: number, d = 1) => x.toFixed(d);
  const pct = (ms: number) => `${f((100 * ms) / p.wallMs, 0)}%`;
  console.log(`\nprofile: ${config} at batch ${batch}, one training step ${f(p.wallMs, 0)} ms under the profiler, ${p.dispatches} kernels dispatched, peak ${f(p.peakMB)} MB`);
  console.log('| kind | kernels | ms | share of the step |');
  console.log('| --- | --- | --- | --- |');
  for (const k of KERNEL_KINDS) console.log(`| ${k} | ${p.byKind[k].kernels} | ${f(p.byKind[k].ms)} | ${pct(p.byKind[k].ms)} |`);
  console.log(`| host-side work and dispatch | – | ${f(p.hostMs)} | ${pct(p.hostMs)} |`);
  console.log('slowest kernels (summed over identical ones):');
  for (const t of p.top) console.log(`  ${f(t.ms).padStart(8)} ms  ${String(t.kernels).padStart(4)}×  ${t.label}`);
  console.log('what is alive at the peak, by the kernel that wrote it:');
  for (const b of p.peakBuffers) console.log(`  ${f(b.bytes / 2 ** 20).padStart(8)} MB  ${String(b.buffers).padStart(5)} buffers  ${b.madeBy}`);
}
