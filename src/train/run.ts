// `selftok train`: the loop around Trainer with logging, sample grids, periodic atomic
// checkpoints and resume.
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DataSource } from '../data/source.ts';
import { gridPng } from '../node/image.ts';
import type { SelftokConfig } from '../tokenizer/config.ts';
import { UserError } from '../util/errors.ts';
import { writeFileAtomic } from '../node/fsx.ts';
import { STATE_FILE, Trainer, type StepLog } from './trainer.ts';

export type TrainRunOptions = {
  cfg: SelftokConfig | null;
  /** With `resume`: continue under this config's train and sampler sections (the rest must match). */
  recipe?: SelftokConfig;
  /** Builds the trainer of a new run (default: a tokenizer from `cfg`). */
  makeTrainer?: () => Trainer;
  data: DataSource;
  dataSpec: string;
  out: string;
  steps: number;
  batch?: number;
  lr?: number;
  /** Final steps over which the learning rate decays linearly to 0 (default: config train.cooldownFraction of the steps). */
  cooldown?: number;
  seed: number;
  resume: boolean;
  ckptEvery: number;
  sampleEvery: number;
  logEvery: number;
  /** Threads that compute each batch (this one + workers − 1 worker threads); default 1. */
  workers?: number;
  onStart?: (t: Trainer) => void;
  onStep?: (log: StepLog, t: Trainer) => void;
  /** Asked before each step: true stops the run there, with a checkpoint of that step (src/node/stop.ts). */
  shouldStop?: () => Promise<boolean>;
};

export async function runTraining(o: TrainRunOptions): Promise<{ trainer: Trainer; last: StepLog | null; seconds: number; stopped: boolean }> {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new UserError(`--steps must be a positive integer, got ${o.steps}`);
  const statePath = join(o.out, STATE_FILE);
  let trainer: Trainer;
  if (o.resume && existsSync(statePath)) {
    trainer = Trainer.resume(o.out, { batch: o.batch, lr: o.lr, recipe: o.recipe });
  } else {
    if (!o.resume && existsSync(statePath)) {
      throw new UserError(`${o.out}: already holds a training run (${STATE_FILE}); use --resume to continue it or choose another --out`);
    }
    if (o.makeTrainer) trainer = o.makeTrainer();
    else if (o.cfg) trainer = Trainer.create(o.cfg, o.seed, o.batch, o.lr);
    else throw new UserError('--config is required for a new training run');
  }
  // before anything is written: a bad --workers is refused with an untouched --out
  await trainer.startWorkers(o.workers ?? 1);
  mkdirSync(o.out, { recursive: true });
  const logPath = join(o.out, 'train-log.jsonl');
  const samples = (await o.data.heldOut(8)).images;
  trainer.totalSteps = o.steps;
  trainer.cooldown = o.cooldown ?? Math.round((trainer.cfg.train.cooldownFraction ?? 0) * o.steps);
  o.onStart?.(trainer);
  const t0 = performance.now();
  let last: StepLog | null = null;
  // a resumed run's state is its checkpoint; a fresh one at step 0 needs none
  let saved = trainer.step;
  let stopped = false;
  while (trainer.step < o.steps) {
    if (await o.shouldStop?.()) {
      stopped = true;
      if (saved !== trainer.step) await trainer.checkpoint(o.out, { data: o.dataSpec });
      break;
    }
    last = await trainer.trainStep(o.data);
    o.onStep?.(last, trainer);
    if (trainer.step % o.logEvery === 0 || trainer.step === o.steps) appendFileSync(logPath, JSON.stringify(last) + '\n');
    if (trainer.step % o.ckptEvery === 0 || trainer.step === o.steps) {
      await trainer.checkpoint(o.out, { data: o.dataSpec });
      saved = trainer.step;
    }
    if (o.sampleEvery > 0 && (trainer.step % o.sampleEvery === 0 || trainer.step === o.steps)) {
      await writeSamples(trainer, samples, join(o.out, 'samples', `step-${String(trainer.step).padStart(6, '0')}.png`));
    }
  }
  await trainer.stopWorkers();
  return { trainer, last, seconds: (performance.now() - t0) / 1000, stopped };
}

/** Originals (top) and their reconstructions (bottom): a 25-step sampler, or the renderer. */
async function writeSamples(trainer: Trainer, images: Float32Array[], path: string): Promise<void> {
  const m = trainer.model;
  const { size, channels } = m.cfg.image;
  const n = size * size * channels;
  const batch = new Float32Array(images.length * n);
  images.forEach((im, i) => batch.set(im, i * n));
  const ids = await m.encode(batch, images.length);
  const rec = trainer.mode === 'renderer' ? await m.render(ids, images.length) : await m.decode(ids, images.length, { steps: 25, seed: 0 });
  const recs = images.map((_, i) => rec.subarray(i * n, (i + 1) * n));
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileAtomic(path, await gridPng([images, recs], size, 2));
}
