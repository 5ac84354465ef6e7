// `selftok ar-train`: the loop around ArTrainer: the tokenized pool, periodic atomic
// checkpoints, a JSONL log, resume after a kill.
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Selftok } from '../tokenizer/model.ts';
import { UserError } from '../util/errors.ts';
import { readJsonFile } from '../node/fsx.ts';
import { ArModel } from './ar-model.ts';
import { ScenesArData } from './data.ts';
import { validateArConfig, type ArConfig } from './model.ts';
import { AR_STATE_FILE, ArTrainer } from './train.ts';
import { PACKAGE_ROOT } from '../node/paths.ts';
import { tokenizerPathFrom } from '../node/models.ts';

export const AR_CONFIG_DIR = join(PACKAGE_ROOT, 'configs', 'ar');

/** An AR config by name (configs/ar/NAME.json) or from a JSON file. */
export function loadArConfig(nameOrFile: string): ArConfig {
  const named = join(AR_CONFIG_DIR, `${nameOrFile}.json`);
  const path = /^[a-z0-9-]+$/i.test(nameOrFile) && existsSync(named) ? named : nameOrFile;
  if (!existsSync(path)) throw new UserError(`--config ${nameOrFile}: no such AR config (configs/ar/) or file`);
  return validateArConfig(readJsonFile(path), path);
}

export type ArRunOptions = {
  tokenizer: Selftok;
  tokenizerDir: string;
  cfg: ArConfig;
  out: string;
  steps: number;
  seed: number;
  resume: boolean;
  ckptEvery: number;
  logEvery: number;
  /** Threads that compute each batch (this one + workers − 1 worker threads); default 1. */
  workers?: number;
  onPool?: (done: number, total: number) => void;
  onStart?: (t: ArTrainer) => void;
  onStep?: (log: { step: number; loss: number; lr: number; ms: number }) => void;
  /** Asked before each step: true stops the run there, with a checkpoint of that step (src/node/stop.ts). */
  shouldStop?: () => Promise<boolean>;
  /** Fine-tune this trained model (its weights, a fresh optimizer, step 0) instead of starting fresh; `where` names it in errors. Consumed: disposed once its weights are copied. */
  init?: { model: ArModel; where: string };
};

export async function runArTraining(o: ArRunOptions): Promise<{ trainer: ArTrainer; loss: number | null; seconds: number; stopped: boolean }> {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new UserError(`--steps must be a positive integer, got ${o.steps}`);
  const state = join(o.out, AR_STATE_FILE);
  let trainer: ArTrainer;
  if (existsSync(state)) {
    if (!o.resume) throw new UserError(`${o.out}: already holds a training run (${AR_STATE_FILE}); use --resume to continue it or choose another --out`);
    trainer = ArTrainer.resume(o.out);
    await trainer.model.checkTokenizer(o.tokenizer, o.tokenizerDir);
  } else {
    const ref = { ...(await ArModel.tokenizerRef(o.tokenizer)), path: tokenizerPathFrom(o.out, o.tokenizerDir) };
    if (o.init) {
      await o.init.model.checkTokenizer(o.tokenizer, o.tokenizerDir);
      trainer = await ArTrainer.fineTune(o.init.model, o.cfg, ref, o.init.where, o.seed);
      o.init.model.dispose();
    } else {
      trainer = ArTrainer.create(o.cfg, ref, o.seed);
      if (o.cfg.visualInit === 'codebook') trainer.model.seedVisualEmbeddings(o.tokenizer, o.seed);
    }
  }
  // before anything is written: a bad --workers is refused with an untouched --out
  await trainer.startWorkers(o.workers ?? 1);
  mkdirSync(o.out, { recursive: true });
  const cfg = trainer.cfg;
  const data = await ScenesArData.open(o.out, o.tokenizer, trainer.model.vocab, cfg.train.pool, o.onPool);
  trainer.totalSteps = o.steps;
  trainer.cooldown = Math.round(cfg.train.cooldownFraction * o.steps);
  o.onStart?.(trainer);
  const logPath = join(o.out, 'train-log.jsonl');
  const t0 = performance.now();
  let loss: number | null = null;
  // a resumed run's state is its checkpoint; a fresh one at step 0 needs none
  let saved = trainer.step;
  let stopped = false;
  while (trainer.step < o.steps) {
    if (await o.shouldStop?.()) {
      stopped = true;
      if (saved !== trainer.step) await trainer.checkpoint(o.out);
      break;
    }
    const s0 = performance.now();
    const r = await trainer.trainStep(data.batch(trainer.rng, cfg.train.batch, cfg));
    loss = r.loss;
    const log = { step: trainer.step, loss: r.loss, lr: r.lr, ms: performance.now() - s0 };
    o.onStep?.(log);
    if (trainer.step % o.logEvery === 0 || trainer.step === o.steps) appendFileSync(logPath, JSON.stringify(log) + '\n');
    if (trainer.step % o.ckptEvery === 0 || trainer.step === o.steps) {
      await trainer.checkpoint(o.out);
      saved = trainer.step;
    }
  }
  await trainer.stopWorkers();
  return { trainer, loss, seconds: (performance.now() - t0) / 1000, stopped };
}
