// Training the AR model: masked next-token cross-entropy (model.ts) under AdamW (nn/optim.ts),
// warm-up then constant lr with a linear cooldown, atomic checkpoints that hold everything a
// resumed run needs (weights, moments, step, RNG), a JSONL log.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { jit, numpy as np, tree, valueAndGrad, type OwnedFunction } from '@jax-js/jax';
import { adamInit, makeAdamUpdate, momentTensors, momentsFromTensors, packTree, paramLayout, type AdamState, type ParamLayout } from '../nn/optim.ts';
import type { Params } from '../nn/params.ts';
import { encodeSafetensors, type Tensor } from '../io/safetensors.ts';
import { NonFiniteLossError, UserError } from '../util/errors.ts';
import { writeFileAtomic } from '../node/fsx.ts';
import { Rng } from '../util/rng.ts';
import { ArModel, type TokenizerRef } from './ar-model.ts';
import { arForward, arForwardWithProbe, fineTuneArConfig, maskedNextTokenLoss, readProbeWidth, validateArConfig, type ArConfig, type ArParams } from './model.ts';
import { FIRST_WORDS } from './vocab.ts';
import { batchArrays, type Sequence } from './sequences.ts';
import { readSafetensors } from '../node/safetensors-files.ts';
import { saveModel } from '../node/models.ts';
import { GradientPeer, hostBuckets, hostGradients, meanGradients, meanLoss, paramsFromBuckets, shares, startPeers, type PeerGradients, type PeerHandler } from '../engine/data-parallel.ts';

export const AR_STATE_FILE = 'train-state.safetensors';

type Batch = { ids: np.Array; vpos: np.Array; targets: np.Array; mask: np.Array; cos: np.Array; sin: np.Array };
/** With the reading probe: each row's [EOV] position (B×T one-hot) and its scene maps (B×M). */
type ProbeBatch = Batch & { at: np.Array; maps: np.Array };

export class ArTrainer {
  private readonly layout: ParamLayout;
  private adam: AdamState;
  private readonly update: ReturnType<typeof makeAdamUpdate>;
  private lossGrad: OwnedFunction<(p: ArParams, b: Batch | ProbeBatch) => [np.Array, np.Array[]]> | null = null;
  totalSteps = 0;
  cooldown = 0;

  /** Worker threads that compute shares of each batch (startWorkers). */
  private peers: GradientPeer[] = [];

  /** The metadata of the checkpoint this trainer resumed from (empty for a fresh one). */
  metadata: Record<string, string> = {};

  private constructor(
    readonly model: ArModel,
    readonly rng: Rng,
    adam: ((layout: ParamLayout) => AdamState) | null,
  ) {
    const t = model.cfg.train;
    this.layout = paramLayout(model.params as unknown as Params);
    this.adam = adam ? adam(this.layout) : adamInit(this.layout);
    this.update = makeAdamUpdate({ lr: t.lr, beta1: t.beta1, beta2: t.beta2, weightDecay: t.weightDecay }, this.layout);
  }

  get step(): number {
    return this.model.step;
  }
  get cfg(): ArConfig {
    return this.model.cfg;
  }

  static create(cfg: ArConfig, tokenizer: TokenizerRef, seed: number): ArTrainer {
    return ArTrainer.fromModel(ArModel.create(cfg, tokenizer, seed, true), seed);
  }

  /** Go on training a loaded model (fine-tuning, RL) with fresh optimizer moments. */
  static fromModel(model: ArModel, seed: number): ArTrainer {
    return new ArTrainer(model, new Rng(seed ^ 0x5eed), null);
  }

  /**
   * Fine-tune a trained AR model under `recipe` (fineTuneArConfig: only the train section may
   * differ, e.g. another mix of text → image and image → text rows, a lower learning rate):
   * its weights, fresh optimizer moments, step 0. `tokenizer` is the reference the new run
   * records (its path relative to the run's folder).
   */
  static async fineTune(from: ArModel, recipe: ArConfig, tokenizer: TokenizerRef, where: string, seed: number): Promise<ArTrainer> {
    const cfg = fineTuneArConfig(from.cfg, recipe, where);
    if (cfg.train.readProbe) throw new UserError(`${where}: a fine-tune cannot start a reading probe (train.readProbe); drop it from the config`);
    const model = ArModel.create(cfg, tokenizer, seed, true);
    model.loadTensors(await from.tensors(), where);
    return ArTrainer.fromModel(model, seed);
  }

  /** Resume from DIR/train-state.safetensors. */
  static resume(dir: string): ArTrainer {
    const path = join(dir, AR_STATE_FILE);
    if (!existsSync(path)) throw new UserError(`${dir}: nothing to resume (no ${AR_STATE_FILE})`);
    const file = readSafetensors(path);
    const md = file.metadata;
    let cfg: ArConfig;
    let tok: TokenizerRef;
    try {
      cfg = validateArConfig(JSON.parse(md.config ?? ''), path);
      tok = JSON.parse(md.tokenizer ?? '');
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`${path}: no AR config or tokenizer in the checkpoint metadata`);
    }
    // a run begun before `where` questions has no `words`: its vocabulary is the first words (create would give all)
    cfg.words ??= FIRST_WORDS;
    const model = ArModel.create(cfg, tok, 0, true);
    const weights = new Map<string, Tensor>();
    for (const [k, v] of file.tensors) if (k.startsWith('param.')) weights.set(k.slice(6), v);
    model.loadTensors(weights, path);
    model.step = Number(md.step);
    const rng = new Rng(0);
    rng.state = Number(md.rngState) >>> 0;
    const t = new ArTrainer(model, rng, (layout) => ({ m: momentsFromTensors(layout, file.tensors, 'adam.m.', path), v: momentsFromTensors(layout, file.tensors, 'adam.v.', path), step: Number(md.adamStep) }));
    t.metadata = md;
    return t;
  }

  /** Warm-up, constant, then a linear decay to 0 over the last `cooldown` steps of `totalSteps`. */
  lrNow(): number {
    const t = this.cfg.train;
    const warm = t.warmup > 0 ? Math.min(1, (this.step + 1) / t.warmup) : 1;
    const cool = this.cooldown > 0 && this.totalSteps > 0 ? Math.min(1, Math.max(0, this.totalSteps - this.step) / this.cooldown) : 1;
    return t.lr * warm * cool;
  }

  private compile(): void {
    if (this.lossGrad) return;
    const cfg = this.cfg;
    const probeWeight = this.model.params.readProbe ? cfg.train.readProbe!.weight : 0;
    const loss = (p: ArParams, b: Batch | ProbeBatch): np.Array => {
      const probed = 'maps' in b;
      const out = probed ? arForwardWithProbe(p, cfg, b.ids, b.vpos, b.cos, b.sin, b.at) : { logits: arForward(p, cfg, b.ids, b.vpos, b.cos, b.sin), maps: null };
      tree.dispose(p as never);
      const answers = maskedNextTokenLoss(out.logits, b.targets, b.mask, cfg.vocab);
      if (!probed || !out.maps) return answers;
      // plus the reading probe's mean squared error on the scene maps
      const err = out.maps.sub(b.maps);
      return answers.add(np.mean(err.ref.mul(err)).mul(probeWeight));
    };
    const vg = valueAndGrad(loss as never) as unknown as (p: ArParams, b: Batch | ProbeBatch) => [np.Array, Params];
    this.lossGrad = jit(((p: ArParams, b: Batch | ProbeBatch) => {
      const [value, grads] = vg(p, b);
      return [value, packTree(grads, this.layout)];
    }) as never) as never;
  }

  /**
   * The loss arrays of a batch of sequences, padded to the longest rounded up to a multiple of
   * 8 (a few compiled shapes instead of one at maxLen: text→image rows are ~30% shorter).
   */
  private arrays(seqs: Sequence[]): Batch | ProbeBatch {
    const longest = Math.max(...seqs.map((s) => s.ids.length));
    const T = Math.min(this.cfg.maxLen, Math.ceil(longest / 8) * 8);
    const B = seqs.length;
    const a = batchArrays(this.model.vocab, seqs, T);
    const batch = { ...this.model.inputs(a.ids, B), targets: np.array(a.targets, { dtype: np.int32 }).reshape([B, T]), mask: np.array(a.mask).reshape([B, T]) };
    if (!this.model.params.readProbe) return batch;
    const M = readProbeWidth(this.cfg.train.readProbe!.size);
    const at = new Float32Array(B * T);
    const maps = new Float32Array(B * M);
    const eov = this.model.vocab.special('[EOV]');
    seqs.forEach((s, b) => {
      const t = s.ids.indexOf(eov);
      if (t < 0 || !s.maps || s.maps.length !== M) throw new Error('internal: a reading-probe row needs an image and its scene maps');
      at[b * T + t] = 1;
      maps.set(s.maps, b * M);
    });
    return { ...batch, at: np.array(at).reshape([B, T]), maps: np.array(maps).reshape([B, M]) };
  }

  /**
   * Compute every batch in `workers` shares at once: this thread and `workers − 1` worker threads
   * (engine/data-parallel.ts). The batches drawn and the update are the same; the gradient is
   * the mean of the shares' gradients weighted by their answer tokens, equal to the whole
   * batch's up to rounding.
   */
  async startWorkers(workers: number): Promise<void> {
    if (workers <= 1 || this.peers.length) return;
    if (this.cfg.train.batch < workers) throw new UserError(`--workers ${workers}: more workers than the batch (${this.cfg.train.batch}) has sequences`);
    this.peers = await startPeers(workers - 1, new URL(import.meta.url), { cfg: this.cfg, tokenizer: this.model.tokenizer } satisfies PeerInit);
  }

  async stopWorkers(): Promise<void> {
    await Promise.all(this.peers.splice(0).map((p) => p.close()));
  }

  get workers(): number {
    return this.peers.length + 1;
  }

  /** One AdamW step on a batch; returns the loss and the lr used. */
  async trainStep(seqs: Sequence[]): Promise<{ loss: number; lr: number }> {
    this.compile();
    const lr = this.lrNow();
    if (!this.peers.length) {
      const [loss, grads] = this.lossGrad!(tree.ref(this.model.params), this.arrays(seqs));
      const v = (await loss.data())[0];
      await this.applyGradients(v, grads, lr);
      return { loss: v, lr };
    }
    const parts = shares(seqs.length, this.peers.length + 1);
    const params = await hostBuckets(this.model.params as unknown as Params, this.layout);
    // the peers start on their shares before this thread computes its own
    const remote = this.peers.map((p, i) => p.step<PeerGradients>({ params, seqs: seqs.slice(...parts[i + 1]) }));
    const mine = seqs.slice(...parts[0]);
    const [loss, grads] = this.lossGrad!(tree.ref(this.model.params), this.arrays(mine));
    const own = (await loss.data())[0];
    const replies = await Promise.all(remote);
    const v = meanLoss(own, answerTokens(mine), replies);
    await this.applyGradients(v, meanGradients(grads, answerTokens(mine), replies), lr);
    return { loss: v, lr };
  }

  /** Peer side: the loss and packed gradients of `seqs` at the parameters in `params` (host buckets). */
  async shareGradients(params: Float32Array[], seqs: Sequence[]): Promise<PeerGradients> {
    const old = this.model.params;
    this.model.params = paramsFromBuckets(old as unknown as Params, this.layout, params) as unknown as ArParams;
    tree.dispose(old as never);
    this.compile();
    const [loss, grads] = this.lossGrad!(tree.ref(this.model.params), this.arrays(seqs));
    return { loss: (await loss.data())[0], weight: answerTokens(seqs), grads: await hostGradients(grads) };
  }

  /**
   * One AdamW step with gradients packed by this trainer's layout (`packedLayout`), unless the
   * loss they come from is not finite (then nothing changes and NonFiniteLossError is thrown).
   */
  async applyGradients(loss: number, grads: np.Array[], lr: number): Promise<void> {
    if (!Number.isFinite(loss)) {
      tree.dispose(grads as never);
      throw new NonFiniteLossError(`step ${this.step + 1}: loss is ${loss}; training stopped, the last checkpoint is intact`);
    }
    this.adam.step += 1;
    const t = this.cfg.train;
    const out = this.update(this.model.params as unknown as Params, grads, this.adam.m, this.adam.v, np.array(lr), np.array(1 / (1 - t.beta1 ** this.adam.step)), np.array(1 / (1 - t.beta2 ** this.adam.step)));
    this.model.params = out.p as unknown as ArParams;
    this.adam.m = out.m;
    this.adam.v = out.v;
    this.model.step += 1;
  }

  /** The layout gradients must be packed in for `applyGradients` (nn/optim.ts packTree). */
  get packedLayout(): ParamLayout {
    return this.layout;
  }

  /** DIR/train-state.safetensors (everything to resume), then the inference model (config.json + model.safetensors). */
  async checkpoint(dir: string, extra: Record<string, string> = {}): Promise<void> {
    const tensors = new Map<string, Tensor>();
    for (const [k, v] of await this.model.tensors()) tensors.set(`param.${k}`, v);
    for (const [k, v] of await momentTensors(this.layout, this.adam.m, 'adam.m.')) tensors.set(k, v);
    for (const [k, v] of await momentTensors(this.layout, this.adam.v, 'adam.v.')) tensors.set(k, v);
    const meta = {
      format: 'selftok-ar-train-state',
      config: JSON.stringify(this.cfg),
      tokenizer: JSON.stringify(this.model.tokenizer),
      step: String(this.step),
      adamStep: String(this.adam.step),
      rngState: String(this.rng.state),
      totalSteps: String(this.totalSteps),
      ...extra,
    };
    writeFileAtomic(join(dir, AR_STATE_FILE), encodeSafetensors(tensors, meta));
    await saveModel(this.model, dir);
  }

  dispose(): void {
    for (const p of this.peers.splice(0)) void p.close();
    this.lossGrad?.dispose();
    this.update.dispose();
    tree.dispose([this.adam.m, this.adam.v] as never);
    this.model.dispose();
  }
}

/** The tokens a sequence's loss is taken over (its answer spans): the weight of its share. */
function answerTokens(seqs: Sequence[]): number {
  return seqs.reduce((n, s) => n + s.spans.reduce((m, [a, b]) => m + b - a, 0), 0);
}

type PeerInit = { cfg: ArConfig; tokenizer: TokenizerRef };

/** Worker side of `startWorkers` (engine/peer-worker.ts loads this module and calls it). */
export async function createPeer(init: PeerInit): Promise<PeerHandler> {
  const trainer = ArTrainer.create(init.cfg, init.tokenizer, 0);
  return async (msg) => {
    const { params, seqs } = msg as { params: Float32Array[]; seqs: Sequence[] };
    const reply = await trainer.shareGradients(params, seqs);
    return { reply, transfer: reply.grads.map((g) => g.buffer as ArrayBuffer) };
  };
}
