// `npm run bench:ar`: the AR model's training step (issue #18's budget): time per step on
// real sequences (a 64-scene pool tokenized by the given tokenizer), optionally over worker
// threads and under jax-js's profiler. Prints a line and writes JSON.
//   npm run bench:ar -- [--config scenes] [--tokenizer models/scenes] [--steps 10] [--workers N]
//                       [--profile] [--json bench/results-ar.json]
import { Command } from 'commander';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setupDevice } from '../src/node/device.ts';
import { loadModel } from '../src/cli/common.ts';
import { loadArConfig } from '../src/ar/run.ts';
import { ArModel } from '../src/ar/ar-model.ts';
import { ArTrainer } from '../src/ar/train.ts';
import { ScenesArData } from '../src/ar/data.ts';
import { profileStep, KERNEL_KINDS } from '../src/engine/profile.ts';
import { countParams, type Params } from '../src/nn/params.ts';

const o = new Command('bench:ar')
  .option('--config <name|file>', 'AR config', 'scenes')
  .option('--tokenizer <dir>', 'the tokenizer whose tokens the sequences hold', 'models/scenes')
  .option('--steps <n>', 'timed steps (after 6 warm-up steps)', '10')
  .option('--workers <n>', 'threads that share each batch', '1')
  .option('--profile', 'profile one more step: time by kernel kind and the slowest kernels')
  .option('--json <file>', 'write the figures here', 'bench/results-ar.json')
  .parse()
  .opts();

const device = await setupDevice('wasm');
const tokenizer = loadModel(o.tokenizer, ['encode']);
const cfg = loadArConfig(o.config);
const trainer = ArTrainer.create(cfg, await ArModel.tokenizerRef(tokenizer), 0);
const dir = mkdtempSync(join(tmpdir(), 'selftok-bench-ar-'));
const data = await ScenesArData.open(dir, tokenizer, trainer.model.vocab, 64);
await trainer.startWorkers(Number(o.workers));
const B = trainer.cfg.train.batch;
const batch = () => data.batch(trainer.rng, B, trainer.cfg);
// warm-up: each padded length (a multiple of 8) compiles once
for (let s = 0; s < 6; s++) await trainer.trainStep(batch());
let tokens = 0;
const t0 = performance.now();
for (let s = 0; s < Number(o.steps); s++) {
  const seqs = batch();
  tokens += seqs.reduce((n, q) => n + q.ids.length, 0);
  await trainer.trainStep(seqs);
}
const stepMs = (performance.now() - t0) / Number(o.steps);
const result: Record<string, unknown> = {
  device,
  config: trainer.cfg.name,
  params: countParams(trainer.model.params as unknown as Params),
  vocab: trainer.cfg.vocab,
  batch: B,
  workers: trainer.workers,
  stepMs,
  tokensPerSecond: (tokens / Number(o.steps) / stepMs) * 1000,
  date: new Date().toISOString(),
};
console.log(`${trainer.cfg.name}: ${(result.params as number / 1e6).toFixed(2)} M params, vocab ${trainer.cfg.vocab}, batch ${B} over ${trainer.workers} worker(s): ${stepMs.toFixed(0)} ms per step, ${(result.tokensPerSecond as number).toFixed(0)} tokens/s`);
if (o.profile) {
  const p = await profileStep(() => trainer.trainStep(batch()));
  result.profile = p;
  console.log(`profile: ${p.dispatches} kernels, ${p.wallMs.toFixed(0)} ms under the profiler; ` + KERNEL_KINDS.map((k) => `${k} ${p.byKind[k].ms.toFixed(0)} ms`).join(', ') + `, host ${p.hostMs.toFixed(0)} ms`);
  for (const t of p.top) console.log(`  ${t.ms.toFixed(1).padStart(8)} ms  ${String(t.kernels).padStart(4)}×  ${t.label}`);
}
writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
await trainer.stopWorkers();
trainer.dispose();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
