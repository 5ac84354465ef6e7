// A model is config + weights (diffusers style). Configs are plain JSON; the named
// ones live in configs/*.json and ship with the package (read in Node: src/node/configs.ts).
import { spatialRegions } from './spatial.ts';
import type { OptimizerSettings } from '../nn/optim.ts';
import { UserError } from '../util/errors.ts';
import type { QuantizerConfig } from './quantizer.ts';
import type { ScheduleConfig } from './schedule.ts';
import type { VaeConfig } from '../vae/sd3-vae.ts';

export type SelftokConfig = {
  name: string;
  /**
   * The decoder's data space. Pixels in [−1, 1] here; a latent autoencoder plugs in
   * through `channels` and x0 = (input − shift)·scale (spec §1.1, SD3 latent format).
   */
  image: { size: number; channels: number; patch: number; scale: number; shift: number };
  /**
   * The latent seam with an autoencoder (diffusers style, src/vae/): when present, the
   * tokenizer works on the VAE's scaled latents (image.size = the latent size, image.channels
   * = vae.zChannels) and users give and get pixels of image.size × the VAE's factor.
   */
  vae?: VaeConfig;
  K: number;
  schedule: ScheduleConfig;
  quantizer: QuantizerConfig;
  encoder: {
    depth: number;
    imageWidth: number;
    imageHeads: number;
    tokenWidth: number;
    tokenHeads: number;
    mlpRatio: number;
    /** Image-stream positions: 'sincos' (computed, default) or 'table' (a stored [patches, width] tensor, as the official encoder's cropped pos_embed). */
    posEmbed?: 'sincos' | 'table';
    /** The spatial-token control (issue #19; tokenizer/spatial.ts): token k reads only its own region of the patch grid. */
    spatial?: boolean;
  };
  decoder: {
    depth: number;
    width: number;
    heads: number;
    mlpRatio: number;
    condDrop: number;
    /** What the network outputs (flow.ts): 'velocity' as the reference, or 'x0' (x-prediction, velocity loss). */
    prediction: 'velocity' | 'x0';
    /** > 0: a pixel head (decoder.ts) reads this many features per pixel through a 3×3 conv; 0: none. */
    outChannels: number;
    /** Image-stream positions: 'sincos' (default) or 'table' (stored; the official decoder's crop of SD3's pos_embed). */
    posEmbed?: 'sincos' | 'table';
    /** Token-stream positions: 'sincos' of 1000 + 8k (default) or 'table' (stored, as the official checkpoint's context_pos_embed buffer, whatever precision it was saved in). */
    contextPosEmbed?: 'sincos' | 'table';
    /** Whether the renderer's canvas also gets the image-stream positions (default true; the official renderer: false). */
    rendererImagePos?: boolean;
    /** Blocks of the one-step renderer (default `depth`): the decoder's, plus fresh identity-initialised ones before the last (renderer.ts). */
    rendererDepth?: number;
  };
  train: OptimizerSettings & {
    /** Fraction of a run's steps at its end over which the lr decays linearly to 0 (default 0; `--cooldown` overrides in steps). */
    cooldownFraction?: number;
    /** Clip for the per-token gradient scale 1/P(visible)^power (spec §4.6, §12.16); 1 disables it. */
    tokenGradScaleMax: number;
    /** Exponent of that scale (default 1; 0 disables it; the reference's two compounded scalings are an effective 2.3–3.7, schedule.ts visibilityGradScale). */
    tokenGradScalePower?: number;
    /** x-prediction only: t is clipped at this value in the velocity loss (flow.ts, flowLoss). */
    lossTMin: number;
    /** The loss weighting the encoder learns under (default lossTMin): the tokens' gradient is scaled per sample (flow.ts, tokenGradScale). */
    encoderLossTMin?: number;
    /** Probability that a training sample also hides a random number of its lowest-index visible tokens (default 0; schedule.ts dropFinestTokens). */
    fineTokenDrop?: number;
    /** If set, the drop probability moves linearly from fineTokenDrop at step 0 to this value at the run's last step (schedule.ts fineTokenDropAt). */
    fineTokenDropEnd?: number;
    /**
     * Timestep shift s (default 1 = uniform t): training draws t = s·u / (1 + (s − 1)·u), u uniform,
     * SD3's shift (flow.ts, shiftTimestep). s > 1 spends more steps at high noise, where the decoder
     * needs the tokens, so the encoder gets more gradient per step.
     */
    tShift?: number;
    /**
     * Layout probe (off when absent; not in the paper): an MLP from the K quantized token
     * embeddings to the image average-pooled to size × size, its MSE added to the loss with
     * `weight`. It gives the encoder a direct gradient to say where things are, which the
     * diffusion loss alone gives it only through a decoder that first learns to ignore the
     * tokens (loss.ts). Its weights train with the encoder and are not used at inference.
     */
    probe?: { size: number; hidden: number; weight: number };
    /**
     * Scene probe (off when absent; scenes data only; not in the paper): an MLP from the K
     * quantized token embeddings to the scene's maps on a size × size grid (ar/scenes.ts
     * sceneMaps: how much of each cell each shape and each palette colour covers), its MSE added
     * to the loss with `weight`. The layout probe asks the tokens for colours where they are;
     * this one asks which shape is where, the content an AR model must read back to caption a
     * scene. Training only, like the layout probe.
     */
    sceneProbe?: { size: number; hidden: number; weight: number };
    /**
     * Edge weighting of the reconstruction loss (off when absent or 0; not in the paper): each
     * pixel's squared error is weighted 1 + edgeWeight·e, e ∈ [0, 1] its colour step to a
     * neighbour (train/loss.ts edgeWeights), normalised to mean 1 over the batch. On scenes the
     * objects' outlines are a few percent of the pixels, so the plain MSE barely asks for shapes.
     */
    edgeWeight?: number;
    /** Random crops for folder/photo data: scale range of the crop side relative to the shorter side. */
    cropScale: [number, number];
  };
  /**
   * Sampler defaults: Euler steps, and the classifier-free guidance scale (1 = none, as the
   * reference). `grid`: 'exact' (t_i = 1 − i/steps, τ_i exact integers; default) or 'float32'
   * (the official sampler's float32 torch.linspace grid, truncated τ, float32 step sizes).
   * `temperature`: scale of the initial noise (default 1, the reference; 0 starts every
   * sample at the noise's mode and makes the decoder deterministic).
   */
  sampler: { steps: number; guidance: number; grid?: 'exact' | 'float32'; temperature?: number };
};

export function validateConfig(raw: unknown, where: string): SelftokConfig {
  const c = raw as SelftokConfig;
  const fail = (msg: string): never => {
    throw new UserError(`${where}: ${msg}`);
  };
  if (!c || typeof c !== 'object') fail('config must be a JSON object');
  for (const key of ['image', 'schedule', 'quantizer', 'encoder', 'decoder', 'train', 'sampler'] as const) {
    if (!c[key] || typeof c[key] !== 'object') fail(`missing section '${key}'`);
  }
  const { size, patch, channels } = c.image;
  if (!Number.isInteger(size) || !Number.isInteger(patch) || size % patch !== 0) fail(`image.size ${size} must be a multiple of image.patch ${patch}`);
  if (!Number.isInteger(channels) || channels < 1) fail('image.channels must be a positive integer');
  if (!Number.isInteger(c.K) || c.K < 1) fail('K must be a positive integer');
  const C = c.quantizer.codebookSize;
  if (!Number.isInteger(C) || C < 2) fail('quantizer.codebookSize must be an integer ≥ 2');
  if (c.encoder.tokenWidth % c.encoder.tokenHeads || c.encoder.imageWidth % c.encoder.imageHeads) fail('encoder widths must be divisible by their head counts');
  if (c.decoder.width % c.decoder.heads) fail('decoder.width must be divisible by decoder.heads');
  c.decoder.prediction ??= 'velocity';
  c.train.lossTMin ??= 0.05;
  // encoderLossTMin stays optional (absent = lossTMin, resolved where it is used), so a recipe that changes lossTMin moves both
  for (const k of ['lossTMin', 'encoderLossTMin'] as const) {
    const v = c.train[k];
    if (v !== undefined && !(v > 0 && v <= 1)) fail(`train.${k} must be in (0, 1]`);
  }
  if (c.train.encoderLossTMin !== undefined && c.decoder.prediction === 'velocity') fail('train.encoderLossTMin needs decoder.prediction x0 (the velocity loss has no tMin)');
  if (!(c.train.tokenGradScaleMax >= 1 && Number.isFinite(c.train.tokenGradScaleMax))) fail('train.tokenGradScaleMax must be a number ≥ 1');
  const power = c.train.tokenGradScalePower;
  if (power !== undefined && !(power >= 0 && Number.isFinite(power))) fail('train.tokenGradScalePower must be a number ≥ 0');
  const fineDrop = c.train.fineTokenDrop;
  if (fineDrop !== undefined && !(fineDrop >= 0 && fineDrop <= 1)) fail('train.fineTokenDrop must be in [0, 1]');
  const fineDropEnd = c.train.fineTokenDropEnd;
  if (fineDropEnd !== undefined && !(fineDropEnd >= 0 && fineDropEnd <= 1)) fail('train.fineTokenDropEnd must be in [0, 1]');
  if (fineDropEnd !== undefined && fineDrop === undefined) fail('train.fineTokenDropEnd needs train.fineTokenDrop');
  // the training-only probes: the layout probe pools the image, so its grid must divide it
  for (const key of ['probe', 'sceneProbe'] as const) {
    const p = c.train[key];
    if (p === undefined) continue;
    const pooled = key === 'probe';
    if (!(Number.isInteger(p.size) && p.size > 0 && (!pooled || size % p.size === 0))) fail(pooled ? `train.probe.size must divide image.size ${size}` : `train.${key}.size must be a positive integer`);
    if (!(Number.isInteger(p.hidden) && p.hidden > 0)) fail(`train.${key}.hidden must be a positive integer`);
    if (!(p.weight >= 0 && Number.isFinite(p.weight))) fail(`train.${key}.weight must be a number ≥ 0`);
  }
  const ew = c.train.edgeWeight;
  if (ew !== undefined && !(Number.isFinite(ew) && ew >= 0)) fail('train.edgeWeight must be a number ≥ 0');
  if (ew && c.vae) fail('train.edgeWeight weights pixels: it needs a pixel-space model (no vae)');
  if (c.train.tShift !== undefined && !(c.train.tShift > 0 && Number.isFinite(c.train.tShift))) fail('train.tShift must be a number > 0');
  c.decoder.outChannels ??= 0;
  const rd = c.decoder.rendererDepth;
  if (rd !== undefined && !(Number.isInteger(rd) && rd >= c.decoder.depth)) fail(`decoder.rendererDepth must be an integer ≥ decoder.depth ${c.decoder.depth}`);
  c.quantizer.continuousSteps ??= 0;
  c.train.cooldownFraction ??= 0;
  c.sampler.guidance ??= 1;
  if (!(Number.isFinite(c.sampler.guidance) && c.sampler.guidance >= 0)) fail('sampler.guidance must be a number ≥ 0');
  if (!(c.train.cooldownFraction >= 0 && c.train.cooldownFraction <= 1)) fail('train.cooldownFraction must be in [0, 1]');
  if (c.decoder.prediction !== 'velocity' && c.decoder.prediction !== 'x0') fail(`decoder.prediction must be 'velocity' or 'x0'`);
  for (const [key, v] of [['encoder.posEmbed', c.encoder.posEmbed], ['decoder.posEmbed', c.decoder.posEmbed], ['decoder.contextPosEmbed', c.decoder.contextPosEmbed]] as const) {
    if (v !== undefined && v !== 'sincos' && v !== 'table') fail(`${key} must be 'sincos' or 'table'`);
  }
  if (c.sampler.temperature !== undefined && !(Number.isFinite(c.sampler.temperature) && c.sampler.temperature >= 0)) fail('sampler.temperature must be a number ≥ 0');
  if (c.sampler.grid !== undefined && c.sampler.grid !== 'exact' && c.sampler.grid !== 'float32') fail(`sampler.grid must be 'exact' or 'float32'`);
  if (c.vae) {
    const v = c.vae;
    if (!(Number.isInteger(v.ch) && v.ch % 32 === 0 && v.ch > 0)) fail('vae.ch must be a positive multiple of 32 (GroupNorm has 32 groups)');
    if (!Array.isArray(v.chMult) || !v.chMult.length || v.chMult.some((m) => !(Number.isInteger(m) && m > 0))) fail('vae.chMult must be a list of positive integers');
    if (!(Number.isInteger(v.numResBlocks) && v.numResBlocks > 0)) fail('vae.numResBlocks must be a positive integer');
    if (v.zChannels !== channels) fail(`vae.zChannels ${v.zChannels} must equal image.channels ${channels}`);
    if (c.image.scale !== 1 || c.image.shift !== 0) fail('with a vae, image.scale must be 1 and image.shift 0 (the latent format is vae.scale and vae.shift)');
    if (!(Number.isFinite(v.scale) && v.scale > 0 && Number.isFinite(v.shift))) fail('vae.scale must be a positive number and vae.shift a number');
  }
  if (c.schedule.type === 'diti') {
    const sum = c.schedule.perStage.reduce((a, b) => a + b, 0);
    if (sum !== c.K) fail(`schedule.perStage sums to ${sum}, expected K = ${c.K}`);
  } else if (c.schedule.type !== 'uniform' && c.schedule.type !== 'all') fail(`schedule.type must be 'diti', 'uniform' or 'all'`);
  if (c.encoder.spatial) spatialRegions(c.K, c.image.size / c.image.patch, 'encoder.spatial');
  return c;
}

/** Side of the images users give and get: image.size, or with a VAE the latent size × its factor. */
export function pixelSize(c: SelftokConfig): number {
  return c.vae ? c.image.size * 2 ** (c.vae.chMult.length - 1) : c.image.size;
}

/** Bits per pixel of a token sequence: K·log2(C) / (H·W) of the pixel image (issue #2). */
export function bitsPerPixel(c: SelftokConfig): number {
  return (c.K * Math.log2(c.quantizer.codebookSize)) / pixelSize(c) ** 2;
}
