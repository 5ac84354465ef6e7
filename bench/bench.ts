// `npm run bench`: speed of the current device. Training step time and images/s for the
// named configs, encode images/s, 50-step decode images/s, renderer images/s (when a model
// has one), and peak device memory. Prints a table and writes JSON.
//   npm run bench -- [--device auto|webgpu|wasm] [--json FILE] [--configs tiny,small] [--steps N]
import { Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { DEVICE_CHOICES, setupDevice, type DeviceChoice } from '../src/engine/device.ts';
import { trackMemory } from '../src/engine/memory.ts';
import { ShapesSource } from '../src/data/source.ts';
import { loadConfig } from '../src/tokenizer/config.ts';
import { Trainer } from '../src/train/trainer.ts';
import { countParams, type Params } from '../src/nn/params.ts';

const program = new Command('bench')
  .addOption(new Option('--device <d>', 'device').choices(DEVICE_CHOICES).default('auto'))
  .option('--json <file>', 'write results here', 'bench/results.json')
  .option('--configs <list>', 'configs to measure', 'tiny,small')
  .option('--steps <n>', 'timed training steps per config (after 2 warm-up steps)', '5')
  .option('--batch <list>', 'batch per config on this device (default: the config batch on GPU; tiny 16 / small 8 on CPU)')
  .parse();
const o = program.opts();

const device = await setupDevice(o.device as DeviceChoice);
const mem = await trackMemory(device);
const steps = Number(o.steps);
const names: string[] = o.configs.split(',');
const batches: number[] | null = o.batch ? o.batch.split(',').map(Number) : null;

type Row = {
  config: string;
  params: number;
  batch: number;
  trainStepMs: number;
  trainImagesPerSecond: number;
  encodeImagesPerSecond: number;
  decode50ImagesPerSecond: number;
  rendererImagesPerSecond: number | null;
  peakMemoryMB: number;
};
const rows: Row[] = [];

async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn(); // compile
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return (performance.now() - t0) / reps;
}

for (const [i, name] of names.entries()) {
  const cfg = loadConfig(name);
  const B = batches?.[i] ?? (device === 'webgpu' ? cfg.train.batch : name === 'small' ? 8 : cfg.train.batch);
  mem.resetPeak();
  const t = Trainer.create(cfg, 0, B);
  const data = new ShapesSource(cfg.image.size);
  for (let s = 0; s < 2; s++) await t.trainStep(data);
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) await t.trainStep(data);
  const stepMs = (performance.now() - t0) / steps;
  const m = t.model;
  const evalB = Math.min(B, 16);
  const images = await data.trainBatch(t.rng, evalB);
  const encMs = await timeIt(() => m.encode(images, evalB), 3);
  const ids = await m.encode(images, evalB);
  const decMs = await timeIt(() => m.decode(ids, evalB, { steps: 50 }), 1);
  m.addRenderer(0);
  const renMs = await timeIt(() => m.render(ids, evalB), 3);
  rows.push({
    config: name,
    params: countParams({ enc: m.params.enc, dec: m.params.dec } as unknown as Params),
    batch: B,
    trainStepMs: stepMs,
    trainImagesPerSecond: (B / stepMs) * 1000,
    encodeImagesPerSecond: (evalB / encMs) * 1000,
    decode50ImagesPerSecond: (evalB / decMs) * 1000,
    rendererImagesPerSecond: (evalB / renMs) * 1000,
    peakMemoryMB: mem.peakBytes() / 2 ** 20,
  });
  t.dispose();
  console.error(`bench: ${name} done`);
}

const result = {
  device,
  machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
  node: process.version,
  date: new Date().toISOString(),
  note: 'decode and renderer throughput at batch min(B, 16); renderer measured on an untrained renderer (speed only)',
  rows,
};
const f = (x: number, d = 1) => x.toFixed(d);
console.log(`device ${device} (${result.machine})`);
console.log('| config | params | batch | train step ms | train img/s | encode img/s | 50-step decode img/s | renderer img/s | peak MB |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.config} | ${(r.params / 1e6).toFixed(2)} M | ${r.batch} | ${f(r.trainStepMs, 0)} | ${f(r.trainImagesPerSecond)} | ${f(r.encodeImagesPerSecond)} | ${f(r.decode50ImagesPerSecond, 2)} | ${r.rendererImagesPerSecond === null ? '–' : f(r.rendererImagesPerSecond)} | ${f(r.peakMemoryMB)} |`,
  );
}
writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
console.log(`wrote ${o.json}`);
process.exit(0);
