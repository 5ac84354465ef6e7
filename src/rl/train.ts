// `selftok rl`: GRPO (grpo.ts) on an AR model's visual tokens, from prompts and the scorer only
// (issue #19; the paper §10.3–10.4). A step: P training-split prompts; G images sampled from the
// policy for each (temperature 1, no top-k, no guidance: the policy's own distribution); the
// tokenizer's one-step renderer draws them; the scorer's fraction of requirements met is the
// reward; one AdamW update on the GRPO loss, the KL measured against the frozen supervised model.
//
// Everything a step draws comes from an RNG seeded by (seed, step), so a resumed run repeats an
// uninterrupted one exactly: the checkpoint holds the weights, the AdamW moments and the step.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { jit, numpy as np, tree, valueAndGrad, type OwnedFunction } from '@jax-js/jax';
import { packTree } from '../nn/optim.ts';
import type { Params } from '../nn/params.ts';
import { ArModel, type SampleStats } from '../ar/ar-model.ts';
import { toBytes } from '../ar/evaluate.ts';
import { arForward, type ArParams } from '../ar/model.ts';
import { CATEGORIES, promptOf, promptText, type PromptSpec } from '../ar/scenes.ts';
import { scorePrompt, type Score } from '../ar/scorer.ts';
import { batchArrays, textToImage, visualWords, type Sequence } from '../ar/sequences.ts';
import { AR_STATE_FILE, ArTrainer } from '../ar/train.ts';
import type { Selftok } from '../tokenizer/model.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { groupAdvantages, grpoLoss, klK3, visualLogProbs, visualOnlyBias, zeroVariance } from './grpo.ts';
import { tokenizerPathFrom, loadArModel } from '../node/models.ts';

export type RlConfig = {
  /** RL steps (one update each). */
  steps: number;
  /** Images sampled per prompt (G). */
  group: number;
  /** Prompts per step (P); a batch is P·G sequences. */
  promptsPerStep: number;
  /** KL weight β. */
  kl: number;
  lr: number;
  /** Linear lr warm-up steps. */
  warmup: number;
  seed: number;
};

export const RL_DEFAULTS: Omit<RlConfig, 'seed'> = { steps: 300, group: 8, promptsPerStep: 4, kl: 0.04, lr: 1e-4, warmup: 10 };

export type RlLog = {
  step: number;
  /** Mean reward of the step's samples (before the update). */
  reward: number;
  /** Mean k3 KL(π‖π_ref) per sampled token. */
  kl: number;
  /** Mean entropy (nats) of the policy's distribution at each sampled token. */
  entropy: number;
  /** Fraction of the step's groups whose rewards are all equal (no signal). */
  zeroVariance: number;
  loss: number;
  lr: number;
  ms: number;
};

export const RL_LOG = 'rl-log.jsonl';
const FORMAT = 'selftok-rl-state';

/** The P prompts of RL step `step` (training split only, each category equally likely). */
export function stepPrompts(seed: number, step: number, P: number): PromptSpec[] {
  const rng = stepRng(seed, step);
  return Array.from({ length: P }, () => promptOf('train', rng.pick(CATEGORIES), rng.int(0, 1 << 20)));
}

const stepRng = (seed: number, step: number): Rng => new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0);

/** The scorer's verdict on decoded images (pixels in [−1, 1], G per prompt). */
export function scoresOf(specs: PromptSpec[], images: Float32Array, G: number, size: number): Score[] {
  const n = size * size * 3;
  return Array.from({ length: specs.length * G }, (_, i) => scorePrompt(specs[Math.floor(i / G)], toBytes(images.subarray(i * n, (i + 1) * n)), size));
}

/** Rewards: the fraction of a prompt's requirements the scorer finds met. */
export const rewardsOf = (specs: PromptSpec[], images: Float32Array, G: number, size: number): Float32Array => Float32Array.from(scoresOf(specs, images, G, size), (s) => s.fraction);

type LossArgs = { ids: np.Array; vpos: np.Array; targets: np.Array; mask: np.Array; adv: np.Array; logpRef: np.Array; bias: np.Array; beta: np.Array; cos: np.Array; sin: np.Array };

export class GrpoTrainer {
  private lossGrad: OwnedFunction<(p: ArParams, a: LossArgs) => [np.Array, np.Array[]]> | null = null;

  /** `tokenizer` (with a renderer) is what `trainStep` decodes samples with; `update` alone needs none. */
  constructor(
    readonly policy: ArTrainer,
    readonly ref: ArModel,
    readonly cfg: RlConfig,
    readonly tokenizer: Selftok | null = null,
  ) {}

  get step(): number {
    return this.policy.step;
  }

  /**
   * A fresh run from the supervised model `ref` (the policy starts as its copy), or the run saved
   * in `out` (its reference must be the same model: the fingerprint is checked).
   */
  static async open(refDir: string, tokenizer: Selftok, out: string, cfg: RlConfig, resume: boolean): Promise<GrpoTrainer> {
    if (!tokenizer.hasRenderer) throw new UserError(`tokenizer ${tokenizer.cfg.name} has no renderer: RL decodes every sample in one pass (train one with selftok train-renderer)`);
    const ref = loadArModel(refDir);
    await ref.checkTokenizer(tokenizer, refDir);
    const state = join(out, AR_STATE_FILE);
    if (existsSync(state)) {
      if (!resume) throw new UserError(`${out}: already holds an RL run (${AR_STATE_FILE}); use --resume to continue it or choose another --out`);
      const policy = ArTrainer.resume(out);
      const md = policy.metadata;
      if (md.rl === undefined) throw new UserError(`${state}: an AR training run, not an RL run`);
      if (md.reference !== ref.fingerprint) throw new UserError(`${out}: the RL run started from the model ${md.reference}, not from ${refDir} (${ref.fingerprint})`);
      const saved = JSON.parse(md.rl) as RlConfig;
      return new GrpoTrainer(policy, ref, { ...saved, steps: cfg.steps }, tokenizer);
    }
    if (resume) throw new UserError(`${out}: nothing to resume (no ${AR_STATE_FILE})`);
    const policy = ArTrainer.fromModel(loadArModel(refDir), cfg.seed);
    policy.model.step = 0;
    const recorded = ref.tokenizer.path;
    // the tokenizer the reference records, re-rooted at the output directory
    if (recorded !== undefined) policy.model.tokenizer = { ...policy.model.tokenizer, path: tokenizerPathFrom(out, resolve(refDir, recorded)) };
    return new GrpoTrainer(policy, ref, cfg, tokenizer);
  }

  lrNow(): number {
    return this.cfg.lr * (this.cfg.warmup > 0 ? Math.min(1, (this.step + 1) / this.cfg.warmup) : 1);
  }

  private compile(): OwnedFunction<(p: ArParams, a: LossArgs) => [np.Array, np.Array[]]> {
    if (this.lossGrad) return this.lossGrad;
    const cfg = this.policy.model.cfg;
    const layout = this.policy.packedLayout;
    const loss = (p: ArParams, a: LossArgs): np.Array => {
      const logits = arForward(p, cfg, a.ids, a.vpos, a.cos, a.sin);
      tree.dispose(p as never);
      return grpoLoss(logits, a.targets, a.mask, a.adv, a.logpRef, a.bias, a.beta);
    };
    const vg = valueAndGrad(loss as never) as unknown as (p: ArParams, a: LossArgs) => [np.Array, Params];
    this.lossGrad = jit(((p: ArParams, a: LossArgs) => {
      const [value, grads] = vg(p, a);
      return [value, packTree(grads, layout)];
    }) as never) as never;
    return this.lossGrad!;
  }

  /**
   * One GRPO update on sampled text → image sequences: their advantages (one per sequence) and
   * the log-probs sampling gave their visual tokens (n × K, the policy before the update).
   * Returns the loss, the lr and the mean k3 KL to the reference at the sampled tokens.
   */
  async update(seqs: Sequence[], adv: Float32Array, sampledLogp: Float32Array): Promise<{ loss: number; lr: number; kl: number }> {
    const model = this.policy.model;
    const v = model.vocab;
    const K = model.tokenizer.K;
    const T = Math.ceil(Math.max(...seqs.map((s) => s.ids.length)) / 8) * 8;
    const B = seqs.length;
    const { ids, targets, mask } = batchArrays(v, seqs, T);
    const logpRef = visualLogProbs(await this.ref.logits(ids, B), targets, mask, model.cfg.vocab, v.visualBase, v.visualBase + v.codebookSize);
    let kl = 0;
    let n = 0;
    for (let b = 0; b < B; b++) {
      let k = 0;
      for (let t = 0; t < T; t++) if (mask[b * T + t]) kl += klK3(logpRef[b * T + t], sampledLogp[b * K + k++]);
      n += k;
    }
    const args: LossArgs = {
      ...model.inputs(ids, B),
      targets: np.array(targets, { dtype: np.int32 }).reshape([B, T]),
      mask: np.array(mask).reshape([B, T]),
      adv: np.array(adv),
      logpRef: np.array(logpRef).reshape([B, T]),
      bias: np.array(visualOnlyBias(model.cfg.vocab, v.visualBase, v.visualBase + v.codebookSize)),
      beta: np.array(this.cfg.kl),
    };
    const [lossArr, grads] = this.compile()(tree.ref(model.params), args);
    const loss = (await lossArr.data())[0];
    const lr = this.lrNow();
    await this.policy.applyGradients(loss, grads, lr);
    return { loss, lr, kl: kl / n };
  }

  /** Sample, score and update once. */
  async trainStep(): Promise<RlLog> {
    const tokenizer = this.tokenizer;
    if (!tokenizer) throw new Error('internal: trainStep needs the tokenizer');
    const t0 = performance.now();
    const { group: G, promptsPerStep: P, seed } = this.cfg;
    const model = this.policy.model;
    const v = model.vocab;
    const K = model.tokenizer.K;
    const size = tokenizer.cfg.image.size;
    const step = this.step;
    const specs = stepPrompts(seed, step, P);
    const rng = stepRng(seed ^ 0x51ed, step);
    const codes = new Int32Array(P * G * K);
    const words = specs.map((s) => v.encode(promptText(s), 'prompt'));
    const stats: SampleStats = { logp: new Float32Array(P * G * K), entropy: new Float32Array(P * G * K) };
    for (let j = 0; j < P; j++) {
      // this prompt's rows of the step's statistics (views: sampling writes them in place)
      const rows = (a: Float32Array) => a.subarray(j * G * K, (j + 1) * G * K);
      codes.set(await model.generateImages(words[j], G, { temperature: 1, topK: 0, cfg: 1, seed: rng.nextU32() }, { logp: rows(stats.logp), entropy: rows(stats.entropy) }), j * G * K);
    }
    const rewards = rewardsOf(specs, await tokenizer.render(codes, P * G), G, size);
    const adv = groupAdvantages(rewards, G);

    const seqs = Array.from({ length: P * G }, (_, i) => textToImage(v, words[Math.floor(i / G)], visualWords(v, codes.subarray(i * K, (i + 1) * K), model.cfg.order)));
    const { loss, lr, kl } = await this.update(seqs, adv, stats.logp);
    let zero = 0;
    for (let g = 0; g < P; g++) if (zeroVariance(rewards, g * G, G)) zero++;
    return {
      step: this.step,
      reward: mean(rewards),
      kl,
      entropy: mean(stats.entropy),
      zeroVariance: zero / P,
      loss,
      lr,
      ms: performance.now() - t0,
    };
  }

  /** out/train-state.safetensors (resume) and the policy as an AR model directory. */
  async checkpoint(out: string): Promise<void> {
    await this.policy.checkpoint(out, { format: FORMAT, rl: JSON.stringify(this.cfg), reference: this.ref.fingerprint });
  }

  dispose(): void {
    this.lossGrad?.dispose();
    this.policy.dispose();
    this.ref.dispose();
  }
}

const mean = (x: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s / x.length;
};

/** The log lines of a run up to and including `step` (a resumed run drops what it will redo). */
export function readRlLog(out: string, upTo = Infinity): RlLog[] {
  const path = join(out, RL_LOG);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as RlLog)
    .filter((r) => r.step <= upTo);
}

export type RlRunOptions = {
  refDir: string;
  tokenizer: Selftok;
  out: string;
  cfg: RlConfig;
  resume: boolean;
  ckptEvery: number;
  onStart?: (t: GrpoTrainer) => void;
  onStep?: (log: RlLog) => void;
  /** Asked before each step: true stops the run there, with a checkpoint of that step (src/node/stop.ts). */
  shouldStop?: () => Promise<boolean>;
};

/** The RL loop: steps, a JSONL log line per step, atomic checkpoints, resume after a kill. */
export async function runRl(o: RlRunOptions): Promise<{ trainer: GrpoTrainer; log: RlLog[]; seconds: number; stopped: boolean }> {
  for (const [k, x] of [['--steps', o.cfg.steps], ['--group', o.cfg.group], ['--prompts-per-step', o.cfg.promptsPerStep]] as const) {
    if (!Number.isInteger(x) || x < 1) throw new UserError(`${k} must be a positive integer, got ${x}`);
  }
  if (o.cfg.group < 2) throw new UserError(`--group must be at least 2 (advantages are relative to the group), got ${o.cfg.group}`);
  const trainer = await GrpoTrainer.open(o.refDir, o.tokenizer, o.out, o.cfg, o.resume);
  mkdirSync(o.out, { recursive: true });
  // lines logged after the last checkpoint are redone by this run
  const log = readRlLog(o.out, trainer.step);
  writeFileSync(join(o.out, RL_LOG), log.map((l) => JSON.stringify(l) + '\n').join(''));
  o.onStart?.(trainer);
  const t0 = performance.now();
  // a resumed run's state is its checkpoint; a fresh one at step 0 needs none
  let saved = trainer.step;
  let stopped = false;
  while (trainer.step < trainer.cfg.steps) {
    if (await o.shouldStop?.()) {
      stopped = true;
      if (saved !== trainer.step) await trainer.checkpoint(o.out);
      break;
    }
    const line = await trainer.trainStep();
    log.push(line);
    writeFileSync(join(o.out, RL_LOG), JSON.stringify(line) + '\n', { flag: 'a' });
    o.onStep?.(line);
    if (trainer.step % o.ckptEvery === 0 || trainer.step === trainer.cfg.steps) {
      await trainer.checkpoint(o.out);
      saved = trainer.step;
    }
  }
  return { trainer, log, seconds: (performance.now() - t0) / 1000, stopped };
}
