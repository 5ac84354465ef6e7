// The training loop: data → jitted loss+grads → AdamW → host codebook EMA, with
// atomic checkpoints (train-state.safetensors holds everything needed to resume:
// weights, Adam moments, codebook statistics, step, host RNG) and NaN/Inf guard.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { jit, numpy as np, random, tree, valueAndGrad, type OwnedFunction } from '@jax-js/jax';
import { adamInit, makeAdamUpdate, momentTensors, momentsFromTensors, packTree, paramLayout, type AdamState, type ParamLayout } from '../nn/optim.ts';
import { flattenParams, mapParams, type Params } from '../nn/params.ts';
import { asFloat32, encodeSafetensors, type Tensor } from '../io/safetensors.ts';
import type { DataSource } from '../data/source.ts';
import { NonFiniteLossError, UserError } from '../util/errors.ts';
import { firstDifferingKey } from '../util/json.ts';
import { writeFileAtomic } from '../node/fsx.ts';
import { Rng } from '../util/rng.ts';
import { validateConfig, type SelftokConfig } from '../tokenizer/config.ts';
import { encodeFeatures, isEncoderProbeTensor } from '../tokenizer/encoder.ts';
import { shiftTimestep, tokenGradScale } from '../tokenizer/flow.ts';
import { dropFinestTokens, fineTokenDropAt } from '../tokenizer/schedule.ts';
import { l2normalize, type QuantizerStats } from '../tokenizer/quantizer.ts';
import { Selftok, type ModelParams } from '../tokenizer/model.ts';
import { edgeWeights, selftokLoss, type LossAux, type TrainBatch } from './loss.ts';
import { perceptualWeight, rendererLoss, type Perceptual, type PerceptualKind, type RendererAux, type RendererBatch } from './renderer-loss.ts';
import { MobileNetV2, PERCEPTUAL_TAPS, type MobileNetWeights } from '../nn/mobilenet-v2.ts';
import type { RendererParams } from '../tokenizer/renderer.ts';
import { readSafetensors, readSafetensorsMetadata } from '../node/safetensors-files.ts';
import { saveModel } from '../node/models.ts';
import { GradientPeer, hostBuckets, hostGradients, meanGradients, meanLoss, paramsFromBuckets, shares, startPeers, type PeerGradients, type PeerHandler } from '../engine/data-parallel.ts';

export const STATE_FILE = 'train-state.safetensors';

/** The config of the run in DIR if it has a checkpoint to resume (header read only), else null. */
export function resumableConfig(dir: string): SelftokConfig | null {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readSafetensorsMetadata(path).config ?? '');
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${path}: no config in the checkpoint metadata`);
  }
  return validateConfig(raw, path);
}

/**
 * Continue a run under a new training recipe: `train` and `sampler` come from `recipe`; every
 * other section (the architecture, the quantizer, the schedule) must be unchanged.
 */
export function adoptRecipe(cfg: SelftokConfig, recipe: SelftokConfig, where: string): void {
  const key = firstDifferingKey(cfg, recipe, ['train', 'sampler', 'name']);
  if (key) throw new UserError(`${where}: --config may change only the train and sampler sections of a resumed run; '${key}' differs`);
  cfg.train = structuredClone(recipe.train);
  cfg.sampler = structuredClone(recipe.sampler);
}

/** A fine-tune's config: the model's architecture with `recipe`'s train and sampler sections (adoptRecipe's rule). */
export function fineTuneConfig(model: SelftokConfig, recipe: SelftokConfig, where: string): SelftokConfig {
  const cfg = structuredClone(model);
  adoptRecipe(cfg, recipe, where);
  return cfg;
}

export type StepLog = {
  step: number;
  loss: number;
  /** Tokenizer: flow-matching loss. Renderer: pixel MSE. */
  fm: number;
  commit: number;
  entropy: number;
  /** Renderer only: the perceptual (substitute) term and its weight. */
  perceptual?: number;
  lambdaP?: number;
  /** Tokenizer with train.sceneProbe: the probe's MSE. */
  sceneProbe?: number;
  lr: number;
  ms: number;
} & QuantizerStats;

/**
 * 'tokenizer': encoder + codebook + diffusion decoder (spec §6).
 * 'renderer': only the one-step renderer, encoder and codebook frozen (spec §8.2).
 */
export type TrainMode = 'tokenizer' | 'renderer';

type Trainable = { enc: ModelParams['enc']; dec: ModelParams['dec'] } | { ren: NonNullable<ModelParams['ren']> };

export class Trainer {
  private adam: AdamState;
  /** Jitted loss + gradients; the gradients come back as the layout's flat buckets (optim.ts). */
  private lossGrad: OwnedFunction<(p: Trainable, b: TrainBatch) => [[np.Array, LossAux], np.Array[]]> | null = null;
  private renderGrad: OwnedFunction<(p: Trainable, b: RendererBatch) => [[np.Array, RendererAux], np.Array[]]> | null = null;
  /** Where each trainable parameter sits in the flat gradient and Adam moment buckets. */
  private readonly layout: ParamLayout;
  /** Renderer mode: total steps of the run, for the λ_p schedule. */
  totalSteps = 0;
  /** Renderer mode: the perceptual term (train-state metadata `perceptual`). */
  perceptual: PerceptualKind = 'mobilenet';
  private perceptualWeights: MobileNetWeights | null = null;
  /** Length of the final linear decay of the learning rate to 0 (warmup-stable-decay); 0 = constant. */
  cooldown = 0;
  private update: ReturnType<typeof makeAdamUpdate>;
  private gradWeight: Float32Array;
  /** Worker threads that compute shares of each batch (startWorkers). */
  private peers: GradientPeer[] = [];

  private constructor(
    readonly model: Selftok,
    readonly rng: Rng,
    public batch: number,
    public lr: number,
    adam: ((layout: ParamLayout) => AdamState) | null,
    readonly mode: TrainMode = 'tokenizer',
  ) {
    const cfg = model.cfg;
    // the VAE seam is for running released models; training here is in pixel space
    if (cfg.vae) throw new UserError(`config ${cfg.name}: training a model with a vae (latent seam) is not supported; train in pixel space (no 'vae' section)`);
    if (mode === 'renderer' && !model.hasRenderer) model.addRenderer(rng.nextU32());
    this.layout = paramLayout(this.trainable() as unknown as Params);
    this.adam = adam ? adam(this.layout) : adamInit(this.layout);
    this.update = makeAdamUpdate({ lr, beta1: cfg.train.beta1, beta2: cfg.train.beta2, weightDecay: cfg.train.weightDecay }, this.layout);
    // per-token gradient scale ≈ 1/P(visible)^power, clipped (spec §4.6): coarse tokens are
    // visible in few samples and would otherwise learn slowly
    this.gradWeight = model.schedule.visibilityGradScale(cfg.train.tokenGradScaleMax, cfg.train.tokenGradScalePower ?? 1);
  }

  get cfg(): SelftokConfig {
    return this.model.cfg;
  }
  get step(): number {
    return this.model.step;
  }

  private trainable(): Trainable {
    const p = this.model.params;
    return this.mode === 'renderer' ? { ren: p.ren! } : { enc: p.enc, dec: p.dec };
  }

  /** Train a renderer for an existing model (its encoder, codebook and decoder stay as they are). */
  static forRenderer(model: Selftok, seed: number, batch: number, lr: number, perceptual: PerceptualKind = 'mobilenet'): Trainer {
    // a renderer run counts its own steps; the tokenizer's stay in the checkpoint metadata
    const t = new Trainer(model, new Rng(seed ^ 0x4e4d), batch, lr, null, 'renderer');
    t.perceptual = perceptual;
    t.trainedOnStep = model.step;
    model.step = 0;
    return t;
  }

  /** Renderer mode: the step of the tokenizer the renderer was trained on. */
  trainedOnStep = 0;

  static create(cfg: SelftokConfig, seed: number, batch?: number, lr?: number): Trainer {
    const model = Selftok.create(cfg, seed);
    return new Trainer(model, new Rng(seed ^ 0x7a11), batch ?? cfg.train.batch, lr ?? cfg.train.lr, null);
  }

  /**
   * Fine-tune a trained model's tokenizer (encoder, codebook and diffusion decoder) under `cfg`,
   * whose architecture must be the model's (its train section may differ: a new recipe, a layout
   * probe). Fresh optimizer moments and step count; the codebook starts warm (no continuous
   * phase, no k-means); the training-time probe is kept where the model has one of its size, else
   * starts fresh; a renderer is not carried over (it was trained on the old tokens).
   */
  static fromModel(from: Selftok, recipe: SelftokConfig, where: string, seed: number, batch?: number, lr?: number): Trainer {
    const cfg = fineTuneConfig(from.cfg, recipe, where);
    const model = Selftok.create(cfg, seed);
    const theirs = flattenParams({ enc: from.params.enc, dec: from.params.dec } as unknown as Params);
    const mine = { enc: model.params.enc, dec: model.params.dec } as unknown as Params;
    const copied = mapParams(mine, (name, leaf) => {
      const t = theirs.get(name);
      // the probe is the recipe's (training only): absent or of another size, it starts fresh
      if (isEncoderProbeTensor(name) && (!t || t.shape.join('x') !== leaf.shape.join('x'))) return leaf.ref;
      if (!t) throw new UserError(`${where}: has no tensor ${name} to start from`);
      if (t.shape.join('x') !== leaf.shape.join('x')) throw new UserError(`${where}: tensor ${name} has shape [${t.shape}], the config expects [${leaf.shape}]`);
      return t.ref;
    }) as unknown as { enc: ModelParams['enc']; dec: ModelParams['dec'] };
    tree.dispose(mine);
    model.params = { ...model.params, ...copied };
    model.codebook.codebook.set(from.codebook.codebook);
    const B = batch ?? cfg.train.batch;
    model.codebook.warmStart(B);
    const t = new Trainer(model, new Rng(seed ^ 0x7a11), B, lr ?? cfg.train.lr, null);
    t.initFrom = `${where} (step ${from.step})`;
    return t;
  }

  /** A fine-tune: the model folder it started from (train-state metadata `initFrom`). */
  initFrom = '';

  /** Resume from DIR/train-state.safetensors. */
  static resume(dir: string, overrides: { batch?: number; lr?: number; recipe?: SelftokConfig } = {}): Trainer {
    const path = join(dir, STATE_FILE);
    if (!existsSync(path)) throw new UserError(`${dir}: nothing to resume (no ${STATE_FILE})`);
    const file = readSafetensors(path);
    const md = file.metadata;
    let cfgRaw: unknown;
    try {
      cfgRaw = JSON.parse(md.config ?? '');
    } catch {
      throw new UserError(`${path}: no config in the checkpoint metadata`);
    }
    const cfg = validateConfig(cfgRaw, path);
    if (overrides.recipe) adoptRecipe(cfg, overrides.recipe, path);
    const model = Selftok.create(cfg, 0);
    const mode = (md.mode ?? 'tokenizer') as TrainMode;
    if (mode === 'renderer' || file.tensors.has('param.ren.canvas')) model.addRenderer(0);
    const prefixed = (prefix: string) => {
      const m = new Map<string, Tensor>();
      for (const [k, v] of file.tensors) if (k.startsWith(prefix)) m.set(k.slice(prefix.length), v);
      return m;
    };
    const weights = prefixed('param.');
    const cbT = file.tensors.get('quantizer.codebook');
    if (cbT) weights.set('quantizer.codebook', cbT);
    model.loadTensors(weights, path);
    model.step = Number(md.step);
    const cb = model.codebook;
    const q = (name: string, into: Float32Array) => {
      const t = file.tensors.get(`quantizer.${name}`);
      if (!t || t.data.length !== into.length) throw new UserError(`${path}: missing or mis-shaped quantizer.${name}`);
      into.set(asFloat32(t));
    };
    q('clusterSize', cb.clusterSize);
    q('embedSum', cb.embedSum);
    q('clusterSizeNoReset', cb.clusterSizeNoReset);
    q('positionUsage', cb.positionUsage);
    cb.initialized = md.codebookInitialized === 'true';
    cb.threshold = Number(md.deadThreshold);
    cb.resetSize = Number(md.resetSize);
    cb.usageUpdates = Number(md.usageUpdates);
    // the moments are saved per parameter name (adam.m.<name>) and packed into the flat layout here
    const adam = (layout: ParamLayout): AdamState => ({ m: momentsFromTensors(layout, file.tensors, 'adam.m.', path), v: momentsFromTensors(layout, file.tensors, 'adam.v.', path), step: Number(md.adamStep) });
    const rng = new Rng(0);
    rng.state = Number(md.rngState) >>> 0;
    const t = new Trainer(model, rng, overrides.batch ?? overrides.recipe?.train.batch ?? Number(md.batch), overrides.lr ?? overrides.recipe?.train.lr ?? Number(md.lr), adam, mode);
    t.totalSteps = Number(md.totalSteps ?? 0);
    t.trainedOnStep = Number(md.tokenizerStep ?? 0);
    t.initFrom = md.initFrom ?? '';
    if (mode === 'renderer') t.perceptual = (md.perceptual ?? 'gradients') as PerceptualKind;
    return t;
  }

  /**
   * Learning rate at the current step: linear warm-up, then constant (spec §6.3); with a
   * cooldown of N steps, the last N steps before totalSteps decay linearly to 0. The
   * cooldown is decided per run (WSD schedule), so a long constant-lr run can be resumed
   * and cooled down whenever it is stopped.
   */
  lrNow(): number {
    const w = this.cfg.train.warmup;
    const warm = w > 0 ? Math.min(1, (this.step + 1) / w) : 1;
    const cool = this.cooldown > 0 && this.totalSteps > 0 ? Math.min(1, Math.max(0, this.totalSteps - this.step) / this.cooldown) : 1;
    return this.lr * warm * cool;
  }

  private compile(): void {
    if (this.lossGrad) return;
    const cfg = this.cfg;
    this.lossGrad = this.packedLossGrad((p: Trainable, b: TrainBatch) => selftokLoss(cfg, p as { enc: ModelParams['enc']; dec: ModelParams['dec'] }, b));
  }

  /** jit(valueAndGrad(loss)) with the gradients packed into the layout's buckets inside the jit (optim.ts). */
  private packedLossGrad<B, A>(loss: (p: Trainable, b: B) => [np.Array, A]): OwnedFunction<(p: Trainable, b: B) => [[np.Array, A], np.Array[]]> {
    const vg = valueAndGrad(loss as never, { hasAux: true }) as unknown as (p: Trainable, b: B) => [[np.Array, A], Params];
    const packed = (p: Trainable, b: B) => {
      const [value, grads] = vg(p, b);
      return [value, packTree(grads, this.layout)];
    };
    return jit(packed as never) as never;
  }

  /** Normalised encoder outputs for k-means initialisation of the codebook. */
  private async encoderVectors(x0: np.Array): Promise<Float32Array> {
    const f = jit((enc: ModelParams['enc'], x: np.Array) => {
      const z = l2normalize(encodeFeatures(enc, this.cfg, x));
      tree.dispose(enc);
      return z;
    });
    const z = f(tree.ref(this.model.params.enc), x0);
    const out = Float32Array.from((await z.data()) as Float32Array);
    f.dispose();
    return out;
  }

  /** One optimisation step on a batch from `data`. */
  async trainStep(data: DataSource): Promise<StepLog> {
    return this.mode === 'renderer' ? this.rendererStep(data) : this.tokenizerStep(data);
  }

  private async rendererStep(data: DataSource): Promise<StepLog> {
    const t0 = performance.now();
    const B = this.batch;
    const host: RendererHostBatch = { B, pixels: await data.trainBatch(this.rng, B), lambdaP: perceptualWeight(this.step, this.totalSteps || this.step + 1) };
    const { loss: lossV, grads, aux } = await this.shardedGradients(host, (h, from, to) => rendererRows(this.cfg, h, from, to), (h) => this.rendererShare(h));
    const lr = this.applyGrads(grads);
    this.model.step += 1;
    return { step: this.step, loss: lossV, fm: aux.mse as number, commit: 0, entropy: 0, perceptual: aux.perceptual as number, lambdaP: host.lambdaP, lr, ms: performance.now() - t0, usage: 0, perplexity: 0, emaPerplexity: 0, deadReset: 0 };
  }

  /** The renderer's loss and packed gradients on a share of a batch (this thread or a peer). */
  private async rendererShare(h: RendererHostBatch): Promise<ShareResult> {
    const cfg = this.cfg;
    const { size, channels } = cfg.image;
    const ids = await this.model.encode(h.pixels, h.B); // frozen encoder + codebook
    if (!this.renderGrad) {
      let perceptual: Perceptual = { kind: this.perceptual === 'none' ? 'none' : 'gradients' };
      if (this.perceptual === 'mobilenet') {
        const net = await MobileNetV2.load();
        this.perceptualWeights = net.weights(PERCEPTUAL_TAPS.at(-1));
        perceptual = { kind: 'mobilenet', net };
      }
      this.renderGrad = this.packedLossGrad((p: Trainable, b: RendererBatch) => rendererLoss(cfg, p as { ren: RendererParams }, b, perceptual));
    }
    const batch: RendererBatch = {
      tokens: this.model.embedIds(ids, h.B),
      x0: this.model.toData(np.array(h.pixels).reshape([h.B, size, size, channels])),
      lambdaP: np.array(h.lambdaP),
      ...(this.perceptualWeights ? { features: tree.ref(this.perceptualWeights) } : {}),
    };
    const [[loss, aux], grads] = this.renderGrad!(tree.ref(this.trainable()), batch);
    const lossV = await this.checkFinite(loss, [aux, grads]);
    return { loss: lossV, weight: h.B, grads, aux: { mse: (await aux.mse.data())[0], perceptual: (await aux.perceptual.data())[0] } };
  }

  private async checkFinite(loss: np.Array, rest: unknown[]): Promise<number> {
    const v = (await loss.data())[0];
    if (!Number.isFinite(v)) {
      tree.dispose(rest as never);
      throw new NonFiniteLossError(`step ${this.step + 1}: loss is ${v}; training stopped, the last checkpoint (step ${this.lastSaved}) is intact`);
    }
    return v;
  }

  /** AdamW on the trainable parameters; returns the learning rate used. */
  private applyGrads(grads: np.Array[]): number {
    const cfg = this.cfg;
    const lr = this.lrNow();
    this.adam.step += 1;
    const c1 = 1 / (1 - cfg.train.beta1 ** this.adam.step);
    const c2 = 1 / (1 - cfg.train.beta2 ** this.adam.step);
    const out = this.update(this.trainable() as unknown as Params, grads, this.adam.m, this.adam.v, np.array(lr), np.array(c1), np.array(c2));
    this.model.params = { ...this.model.params, ...(out.p as unknown as Trainable) };
    this.adam.m = out.m;
    this.adam.v = out.v;
    return lr;
  }

  private async tokenizerStep(data: DataSource): Promise<StepLog> {
    const t0 = performance.now();
    const cfg = this.cfg;
    const B = this.batch;
    const sceneProbe = cfg.train.sceneProbe;
    let pixels: Float32Array;
    let maps: Float32Array | undefined;
    if (sceneProbe) {
      if (!data.trainBatchWithMaps) throw new UserError(`--data ${data.name}: train.sceneProbe needs a source that knows its scenes (scenes)`);
      ({ pixels, maps } = await data.trainBatchWithMaps(this.rng, B, sceneProbe.size));
    } else pixels = await data.trainBatch(this.rng, B);
    const t = new Float32Array(B);
    const drop = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      t[b] = shiftTimestep(this.rng.uniform(), cfg.train.tShift ?? 1);
      drop[b] = this.rng.uniform() < cfg.decoder.condDrop ? 1 : 0;
    }
    // the mask uses the unshifted t, τ = 1000·t (spec §2.2, §12.5)
    const mask = this.model.schedule.mask(t.map((v) => 1000 * v));
    const pDrop = fineTokenDropAt(cfg.train.fineTokenDrop ?? 0, cfg.train.fineTokenDropEnd, this.step, this.totalSteps);
    dropFinestTokens(mask, cfg.K, pDrop, () => this.rng.uniform());
    // a fine-tune's codebook is trained already (warmStart): it quantizes from its first step
    const quantizing = this.step >= cfg.quantizer.continuousSteps || this.model.codebook.initialized;
    if (quantizing && !this.model.codebook.initialized) {
      this.model.codebook.kmeansInit(await this.encoderVectors(this.pixelsToData(pixels, B)), this.rng);
    }
    const { size, channels } = cfg.image;
    const host: TokenizerHostBatch = {
      B,
      pixels,
      t,
      mask,
      drop,
      keySeed: this.rng.nextU32() & 0x7fffffff,
      codebook: this.model.codebook.codebook,
      sampleGradWeight: tokenGradScale(t, cfg.train.lossTMin, cfg.train.encoderLossTMin ?? cfg.train.lossTMin),
      divWeight: quantizing ? cfg.quantizer.diversityWeight * this.model.codebook.diversityGate() : 0,
      quantizeOn: quantizing ? 1 : 0,
      pixelWeight: cfg.train.edgeWeight ? edgeWeights(pixels, B, size, size, channels, cfg.train.edgeWeight) : undefined,
      maps,
    };
    const { loss: lossV, grads, aux } = await this.shardedGradients(host, (h, from, to, share) => tokenizerRows(cfg, h, from, to, share), (h) => this.tokenizerShare(h));
    const lr = this.applyGrads(grads);
    const stats = quantizing
      ? this.model.codebook.update(aux.z as Float32Array, aux.ids as Int32Array, B, this.rng)
      : { usage: 0, perplexity: 0, emaPerplexity: 0, deadReset: 0 };
    this.model.step += 1;
    return {
      step: this.step, loss: lossV, fm: aux.fm as number, commit: aux.commit as number, entropy: aux.entropy as number,
      ...(aux.sceneProbe !== undefined ? { sceneProbe: aux.sceneProbe as number } : {}),
      lr, ms: performance.now() - t0, ...stats,
    };
  }

  private pixelsToData(pixels: Float32Array, B: number): np.Array {
    const { size, channels } = this.cfg.image;
    return this.model.toData(np.array(pixels).reshape([B, size, size, channels]));
  }

  /** The tokenizer's loss and packed gradients on a share of a batch (this thread or a peer). */
  private async tokenizerShare(h: TokenizerHostBatch): Promise<ShareResult> {
    const cfg = this.cfg;
    const { size } = cfg.image;
    const B = h.B;
    this.compile();
    const batch: TrainBatch = {
      x0: this.pixelsToData(h.pixels, B),
      t: np.array(h.t),
      mask: np.array(h.mask).reshape([B, cfg.K]),
      drop: np.array(h.drop),
      key: random.key(h.keySeed),
      codebook: np.array(h.codebook).reshape([this.model.codebookSize, cfg.quantizer.dim]),
      gradWeight: np.array(this.gradWeight),
      sampleGradWeight: np.array(h.sampleGradWeight),
      divWeight: np.array(h.divWeight),
      quantizeOn: np.array(h.quantizeOn),
      ...(h.pixelWeight ? { pixelWeight: np.array(h.pixelWeight).reshape([B, size, size, 1]) } : {}),
      ...(h.maps ? { sceneMaps: np.array(h.maps).reshape([B, -1]) } : {}),
    };
    const [[loss, aux], grads] = this.lossGrad!(tree.ref(this.trainable()), batch);
    const lossV = await this.checkFinite(loss, [aux, grads]);
    const z = Float32Array.from((await aux.z.data()) as Float32Array);
    const ids = Int32Array.from((await aux.ids.data()) as Int32Array);
    const [fm, commit, entropy] = [(await aux.fm.data())[0], (await aux.commit.data())[0], (await aux.entropy.data())[0]];
    const figures: ShareResult['aux'] = { fm, commit, entropy, z, ids };
    if (aux.sceneProbe) figures.sceneProbe = (await aux.sceneProbe.data())[0];
    return { loss: lossV, weight: B, grads, aux: figures };
  }

  /**
   * Loss and gradients of a batch computed in shares: this thread takes the first share and each
   * peer one of the others (engine/data-parallel.ts); the gradients and scalar figures are the
   * shares' means weighted by their samples, and arrays (the encoder outputs, the ids) are
   * concatenated in batch order. Without peers, the whole batch here. Every share is a mean over
   * its samples, so the mean of the shares is the batch's, up to rounding, except the
   * codebook's entropy term (spec §4.5), a function of each share's mean code distribution.
   */
  private async shardedGradients<H extends { B: number }>(
    host: H,
    rows: (h: H, from: number, to: number, share: number) => H,
    local: (h: H) => Promise<ShareResult>,
  ): Promise<{ loss: number; grads: np.Array[]; aux: Record<string, number | Float32Array | Int32Array> }> {
    if (!this.peers.length) {
      const r = await local(host);
      return { loss: r.loss, grads: r.grads, aux: r.aux };
    }
    const parts = shares(host.B, this.peers.length + 1);
    const params = await hostBuckets(this.trainable() as unknown as Params, this.layout);
    // the peers start on their shares before this thread computes its own
    const remote = this.peers.map((p, i) => p.step<PeerGradients>({ params, host: rows(host, ...parts[i + 1], i + 1) }));
    const own = await local(rows(host, ...parts[0], 0));
    const replies = await Promise.all(remote);
    const loss = meanLoss(own.loss, own.weight, replies);
    if (!Number.isFinite(loss)) {
      tree.dispose(own.grads as never);
      throw new NonFiniteLossError(`step ${this.step + 1}: loss is ${loss}; training stopped, the last checkpoint (step ${this.lastSaved}) is intact`);
    }
    const aux: Record<string, number | Float32Array | Int32Array> = {};
    for (const [k, v] of Object.entries(own.aux)) {
      const all = [v, ...replies.map((r) => r.aux![k])];
      if (typeof v === 'number') aux[k] = meanLoss(v, own.weight, replies.map((r) => ({ ...r, loss: r.aux![k] as number })));
      else aux[k] = concatTyped(all as (Float32Array | Int32Array)[]);
    }
    return { loss, grads: meanGradients(own.grads, own.weight, replies), aux };
  }

  /**
   * Compute every batch in `workers` shares at once: this thread and `workers − 1` worker threads
   * (engine/data-parallel.ts). The batches drawn, the RNG and the update stay as they are.
   */
  async startWorkers(workers: number): Promise<void> {
    if (workers <= 1 || this.peers.length) return;
    if (this.batch < workers) throw new UserError(`--workers ${workers}: more workers than the batch (${this.batch}) has images`);
    const tensors = await this.model.tensors(false);
    const init: PeerInit = { cfg: this.cfg, mode: this.mode, perceptual: this.perceptual, tensors };
    this.peers = await startPeers(workers - 1, new URL(import.meta.url), init);
  }

  async stopWorkers(): Promise<void> {
    await Promise.all(this.peers.splice(0).map((p) => p.close()));
  }

  get workers(): number {
    return this.peers.length + 1;
  }

  /** Peer side: a share's loss, gradients and figures at the trainable parameters in `params` (host buckets). */
  async peerShare(params: Float32Array[], host: TokenizerHostBatch | RendererHostBatch): Promise<PeerGradients> {
    const old = this.trainable();
    const fresh = paramsFromBuckets(old as unknown as Params, this.layout, params) as unknown as Trainable;
    this.model.params = { ...this.model.params, ...fresh };
    tree.dispose(old as never);
    let r: ShareResult;
    try {
      r = this.mode === 'renderer' ? await this.rendererShare(host as RendererHostBatch) : await this.tokenizerShare(host as TokenizerHostBatch);
    } catch (e) {
      // a non-finite loss is the main thread's to report: one line, the last checkpoint intact
      if (e instanceof NonFiniteLossError) return { loss: NaN, weight: host.B, grads: [] };
      throw e;
    }
    return { loss: r.loss, weight: r.weight, grads: await hostGradients(r.grads), aux: r.aux };
  }

  /** A trainer for a peer thread: the model from the main thread's tensors, no optimizer use. */
  static forPeer(init: PeerInit): Trainer {
    const model = Selftok.create(init.cfg, 0);
    if (init.mode === 'renderer' || init.tensors.has('ren.canvas')) model.addRenderer(0);
    model.loadTensors(init.tensors, 'gradient worker');
    const t = new Trainer(model, new Rng(0), 1, 0, null, init.mode);
    t.perceptual = init.perceptual;
    return t;
  }

  lastSaved = 0;

  /** Write DIR/train-state.safetensors (everything to resume), then the inference model. */
  async checkpoint(dir: string, extraMeta: Record<string, string> = {}): Promise<void> {
    const tensors = new Map<string, Tensor>();
    for (const [k, v] of await this.model.tensors(false)) tensors.set(k === 'quantizer.codebook' ? k : `param.${k}`, v);
    for (const [k, v] of await momentTensors(this.layout, this.adam.m, 'adam.m.')) tensors.set(k, v);
    for (const [k, v] of await momentTensors(this.layout, this.adam.v, 'adam.v.')) tensors.set(k, v);
    const cb = this.model.codebook;
    const f32 = (name: string, data: Float32Array, shape: number[]) => tensors.set(`quantizer.${name}`, { dtype: 'F32', shape, data: data.slice() });
    f32('clusterSize', cb.clusterSize, [cb.C]);
    f32('embedSum', cb.embedSum, [cb.C, cb.d]);
    f32('clusterSizeNoReset', cb.clusterSizeNoReset, [cb.C]);
    f32('positionUsage', cb.positionUsage, [cb.K, cb.C]);
    const meta: Record<string, string> = {
      format: 'selftok-train-state',
      config: JSON.stringify(this.cfg),
      step: String(this.step),
      adamStep: String(this.adam.step),
      rngState: String(this.rng.state),
      batch: String(this.batch),
      lr: String(this.lr),
      codebookInitialized: String(cb.initialized),
      deadThreshold: String(cb.threshold),
      resetSize: String(cb.resetSize),
      usageUpdates: String(cb.usageUpdates),
      mode: this.mode,
      totalSteps: String(this.totalSteps),
      tokenizerStep: String(this.trainedOnStep),
      ...(this.initFrom ? { initFrom: this.initFrom } : {}),
      ...(this.mode === 'renderer' ? { perceptual: this.perceptual } : {}),
      ...extraMeta,
    };
    writeFileAtomic(join(dir, STATE_FILE), encodeSafetensors(tensors, meta));
    await saveModel(this.model, dir);
    this.lastSaved = this.step;
  }

  dispose(): void {
    for (const p of this.peers.splice(0)) void p.close();
    this.lossGrad?.dispose();
    this.renderGrad?.dispose();
    if (this.perceptualWeights) tree.dispose(this.perceptualWeights);
    this.perceptualWeights = null;
    this.update.dispose();
    tree.dispose([this.adam.m, this.adam.v] as never);
    this.model.dispose();
  }
}

/** What one share of a batch gives: its loss, weight (samples), packed gradients, figures. */
type ShareResult = { loss: number; weight: number; grads: np.Array[]; aux: Record<string, number | Float32Array | Int32Array> };

/** A tokenizer step's inputs on the host, one row per sample (shares are row ranges). */
type TokenizerHostBatch = {
  B: number;
  pixels: Float32Array;
  t: Float32Array;
  mask: Float32Array;
  drop: Float32Array;
  /** ε's PRNG key (share i draws with keySeed + i). */
  keySeed: number;
  codebook: Float32Array;
  sampleGradWeight: Float32Array;
  divWeight: number;
  quantizeOn: number;
  pixelWeight?: Float32Array;
  /** The scenes' maps, one row per sample (train.sceneProbe). */
  maps?: Float32Array;
};

type RendererHostBatch = { B: number; pixels: Float32Array; lambdaP: number };

type PeerInit = { cfg: SelftokConfig; mode: TrainMode; perceptual: PerceptualKind; tensors: Map<string, Tensor> };

function tokenizerRows(cfg: SelftokConfig, h: TokenizerHostBatch, from: number, to: number, share: number): TokenizerHostBatch {
  const px = cfg.image.size * cfg.image.size;
  const rows = (a: Float32Array, n: number) => a.slice(from * n, to * n);
  return {
    ...h,
    B: to - from,
    pixels: rows(h.pixels, px * cfg.image.channels),
    t: rows(h.t, 1),
    mask: rows(h.mask, cfg.K),
    drop: rows(h.drop, 1),
    keySeed: (h.keySeed + share) & 0x7fffffff,
    sampleGradWeight: rows(h.sampleGradWeight, 1),
    pixelWeight: h.pixelWeight ? rows(h.pixelWeight, px) : undefined,
    maps: h.maps ? rows(h.maps, h.maps.length / h.B) : undefined,
  };
}

function rendererRows(cfg: SelftokConfig, h: RendererHostBatch, from: number, to: number): RendererHostBatch {
  const n = cfg.image.size * cfg.image.size * cfg.image.channels;
  return { ...h, B: to - from, pixels: h.pixels.slice(from * n, to * n) };
}

function concatTyped<T extends Float32Array | Int32Array>(parts: T[]): T {
  const out = new (parts[0].constructor as new (n: number) => T)(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Worker side of `startWorkers` (engine/peer-worker.ts loads this module and calls it). */
export async function createPeer(init: PeerInit): Promise<PeerHandler> {
  const trainer = Trainer.forPeer(init);
  return async (msg) => {
    const { params, host } = msg as { params: Float32Array[]; host: TokenizerHostBatch | RendererHostBatch };
    const reply = await trainer.peerShare(params, host);
    return { reply, transfer: reply.grads.map((g) => g.buffer as ArrayBuffer) };
  };
}
