// The public model: config + weights + codebook, with encode / decode (and render,
// see renderer.ts). The CLI and the demo are thin layers over this class.
import { jit, numpy as np, random, tree, type OwnedFunction } from '@jax-js/jax';
import { flattenParams, Init, mapParams, type Params } from '../nn/params.ts';
import { JitCache } from '../engine/jit-cache.ts';
import { readWeight, storeWeight, type WeightFormat } from '../io/weights.ts';
import { fromHalf, toHalf, type PendingTensor, type Tensor } from '../io/safetensors.ts';
import type { CheckpointReader } from '../io/checkpoint.ts';
import { readModelFolder, sha256Hex16, type ModelFiles, type StoredModel } from '../io/model-files.ts';
import { activeDevice } from '../engine/device.ts';
import { initVae, Sd3Vae, type VaeParams } from '../vae/sd3-vae.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { bitsPerPixel, pixelSize, validateConfig, type SelftokConfig } from './config.ts';
import { decoderNet, embedNoisy, initDecoder, type DecoderParams } from './decoder.ts';
import { encodeFeatures, initEncoder, isEncoderProbeTensor, isTrainingProbe, postNorm, TRAINING_PROBES, type EncoderParams } from './encoder.ts';
import { eulerGrid, SAMPLER_T_MIN, stepMask, toVelocity } from './flow.ts';
import { CodebookState, l2normalize } from './quantizer.ts';
import { TokenSchedule } from './schedule.ts';
import { initRenderer, renderNet, type RendererParams } from './renderer.ts';

/** `vae`: the autoencoder behind the latent seam (config `vae`), frozen. */
export type ModelParams = { enc: EncoderParams; dec: DecoderParams; ren?: RendererParams; vae?: VaeParams };

/** An Init whose arrays are lazy zeros (no memory, no host work): the shapes of a model to load into. */
export class ShapeInit extends Init {
  constructor() {
    super(new Rng(0));
  }
  override normal(shape: number[]): np.Array {
    return np.zeros(shape);
  }
  override xavier(fanIn: number, fanOut: number): np.Array {
    return np.zeros([fanIn, fanOut]);
  }
}

/**
 * What a command needs of a model: `encode` the encoder, codebook and VAE encoder; `decode`
 * the diffusion decoder and VAE decoder; `render` the renderer and VAE decoder. A large model
 * (the released 2-billion-parameter decoder) can then encode on a device that could not hold it all.
 */
export type ModelPart = 'encode' | 'decode' | 'render';
export const ALL_PARTS: readonly ModelPart[] = ['encode', 'decode', 'render'];

/** Whether parameter `name` belongs to a loaded part (the codebook and post-LN are needed by all three). */
function partOf(name: string, parts: readonly ModelPart[]): boolean {
  if (name === 'quantizer.codebook' || name.startsWith('enc.postLn.')) return true;
  if (name.startsWith('enc.') || name.startsWith('vae.encoder.')) return parts.includes('encode');
  if (name.startsWith('dec.')) return parts.includes('decode');
  if (name.startsWith('ren.')) return parts.includes('render');
  if (name.startsWith('vae.decoder.')) return parts.includes('decode') || parts.includes('render');
  return true;
}

/** Device memory above which the wasm device (4 GiB address space) cannot hold a model's float32 weights. */
const WASM_WEIGHT_LIMIT = 3.2 * 2 ** 30;

export type DecodeOptions = {
  steps?: number;
  seed?: number;
  /** Keep only the first `keep` encoder-order tokens (AND-ed with the per-step mask). */
  keep?: number;
  /**
   * Classifier-free guidance scale w (spec §7): v = v_uncond + w·(v_cond − v_uncond), the
   * unconditional pass with every token dropped as in training's condition drop. 1 (the
   * reference's setting, and the default) runs the conditional pass only.
   */
  guidance?: number;
  /** The initial noise (B×h×w×c in the decoder's data space, row-major) instead of drawing it from `seed`. */
  noise?: Float32Array;
  /** Scale of the initial noise (default 1): below 1 the sampler starts nearer the noise's mode and returns smoother, less varied images. */
  temperature?: number;
  onStep?: (i: number, n: number) => void;
};

/** One compiled Euler step: (decoder, x, t, Δt, tokens, mask, guidance) → next x. */
type EulerStep = (dec: DecoderParams, x: np.Array, t: np.Array, dt: np.Array, tokens: np.Array, mask: np.Array, w: np.Array) => np.Array;

export class Selftok {
  readonly schedule: TokenSchedule;
  /** sha256 of the weights file this model was loaded from or last saved to (16 hex). */
  fingerprint = 'unsaved';
  /** Training step the weights come from. */
  step = 0;
  /** The parts whose weights are loaded (loadSelftok or Selftok.open with `parts`); the others are lazy zeros. */
  parts: readonly ModelPart[] = ALL_PARTS;
  private jitCache = new JitCache();

  constructor(
    readonly cfg: SelftokConfig,
    public params: ModelParams,
    readonly codebook: CodebookState,
  ) {
    this.schedule = new TokenSchedule(cfg.K, cfg.schedule);
  }

  get K(): number {
    return this.cfg.K;
  }
  /** Side of the (square) images users give and get, in pixels. */
  get imageSize(): number {
    return pixelSize(this.cfg);
  }
  get codebookSize(): number {
    return this.cfg.quantizer.codebookSize;
  }
  get bitsPerPixel(): number {
    return bitsPerPixel(this.cfg);
  }
  /** The guidance scale a decode uses: `w` when given, else the config's sampler.guidance; checked. */
  guidance(w?: number): number {
    const g = w ?? this.cfg.sampler.guidance;
    if (!(Number.isFinite(g) && g >= 0)) throw new UserError(`--guidance must be a number ≥ 0, got ${g}`);
    return g;
  }

  /** The initial-noise scale a decode uses: `t` when given, else the config's sampler.temperature (default 1); checked. */
  temperature(t?: number): number {
    const v = t ?? this.cfg.sampler.temperature ?? 1;
    if (!(Number.isFinite(v) && v >= 0)) throw new UserError(`--temperature must be a number ≥ 0, got ${v}`);
    return v;
  }

  get hasRenderer(): boolean {
    return !!this.params.ren;
  }

  static create(cfg: SelftokConfig, seed = 0, init?: Init): Selftok {
    const rng = new Rng(seed);
    init ??= new Init(rng.fork());
    const params: ModelParams = { enc: initEncoder(cfg, init), dec: initDecoder(cfg, init) };
    if (cfg.vae) params.vae = initVae(cfg.vae, init);
    return new Selftok(cfg, params, new CodebookState(cfg.quantizer, cfg.K, rng.fork()));
  }

  /** Add a one-step renderer, initialised from the diffusion decoder where shapes match (spec §8.1). */
  addRenderer(seed = 0, init: Init = new Init(new Rng(seed))): void {
    if (this.params.ren) return;
    this.params.ren = initRenderer(this.cfg, init, this.params.dec);
  }

  /**
   * Take a copy of another model's renderer (same shapes), e.g. to fine-tune the renderer of a
   * tokenizer that was trained further instead of training a new one from the decoder.
   */
  adoptRenderer(other: Selftok, where: string): void {
    if (!other.params.ren) throw new UserError(`${where}: has no renderer to start from`);
    this.addRenderer(0);
    const mine = this.params.ren as unknown as Params;
    const theirs = flattenParams(other.params.ren as unknown as Params);
    const copy = mapParams(mine, (name, leaf) => {
      const t = theirs.get(name);
      if (!t || t.shape.join('x') !== leaf.shape.join('x')) {
        throw new UserError(`${where}: renderer tensor ${name} has shape [${t?.shape ?? 'none'}], this model expects [${leaf.shape}]`);
      }
      return t.ref;
    });
    tree.dispose(mine);
    this.params.ren = copy as unknown as RendererParams;
  }

  // ---------------------------------------------------------------- files -----------

  /**
   * A model folder (config.json + model.safetensors) from an http(s) URL, or in Node a folder
   * path (io/model-files.ts): how a web page loads a model. The weights file is read whole;
   * Node's loadSelftok (src/node/models.ts) reads a folder tensor by tensor instead.
   */
  static async open(location: string | ModelFiles, parts: readonly ModelPart[] = ALL_PARTS): Promise<Selftok> {
    const f = await readModelFolder(location, 'a model');
    const model = Selftok.fromCheckpoint(validateConfig(f.config, f.configWhere), f.weights, f.where, parts);
    model.fingerprint = f.fingerprint;
    return model;
  }

  /**
   * A model from a config and a reader over its weights file (closed here), checking every tensor's
   * name and shape; tensors are read one at a time (a model can be larger than memory allows for
   * one buffer), and a model whose float32 weights cannot fit the wasm device stops before loading.
   */
  static fromCheckpoint(cfg: SelftokConfig, ck: CheckpointReader, where: string, parts: readonly ModelPart[]): Selftok {
    const wPath = ck.path;
    try {
      const keys = ck.keys();
      const model = Selftok.create(cfg, 0, new ShapeInit());
      if (keys.has('ren.canvas')) model.addRenderer(0, new ShapeInit());
      let count = 0;
      for (const [name, a] of flattenParams(model.params as unknown as Params)) if (partOf(name, parts)) count += a.size;
      const bytes = 4 * count;
      if (activeDevice() === 'wasm' && bytes > WASM_WEIGHT_LIMIT) {
        throw new UserError(
          `${where}: the weights for ${parts.join(' + ')} take ${(bytes / 2 ** 30).toFixed(1)} GiB as float32 and the wasm device addresses 4 GiB in all: run it with --device webgpu`,
        );
      }
      // every tensor's name and shape is checked from the header, also those of parts not loaded
      const expected = new Map([...flattenParams(model.params as unknown as Params)].map(([k, a]) => [k, a.shape]));
      expected.set('quantizer.codebook', [cfg.quantizer.codebookSize, cfg.quantizer.dim]);
      for (const [name, shape] of expected) {
        const info = keys.get(name);
        if (!info) throw new UserError(`${wPath}: missing tensor ${name}`);
        if (info.shape.join('x') !== shape.join('x')) throw new UserError(`${wPath}: tensor ${name} has shape [${info.shape}], model expects [${shape}]`);
      }
      const read = (name: string): Float32Array => readWeight(ck, keys, name);
      model.loadWith(read, wPath, parts);
      model.step = Number(ck.metadata().step ?? 0);
      return model;
    } finally {
      ck.close();
    }
  }

  /**
   * The identity of the tokens this model makes: sha256 (16 hex) over K, the codebook and the
   * encoder's weights as float32 (not the layout probe, which only trains it). Two model
   * directories with the same encoder and codebook — one with a renderer added, one exported
   * with an int8 decoder — tokenize alike and share it; an AR model records it.
   */
  async tokenFingerprint(): Promise<string> {
    this.need('encode');
    const parts: (Uint8Array | string)[] = [`K=${this.K};C=${this.codebookSize};`];
    for (const [name, a] of flattenParams(this.params.enc as unknown as Params)) {
      if (isTrainingProbe(name)) continue;
      parts.push(name, new Uint8Array(Float32Array.from((await a.ref.data()) as Float32Array).buffer));
    }
    parts.push(new Uint8Array(this.codebook.codebook.slice().buffer));
    return sha256Hex16(parts);
  }

  /** Replace weights and codebook from tensors (shape-checked; every parameter must be present). */
  loadTensors(tensors: Map<string, Tensor>, where: string): void {
    this.loadWith((name, shape) => {
      const t = tensors.get(name);
      if (!t) throw new UserError(`${where}: missing tensor ${name}`);
      if (t.shape.join('x') !== shape.join('x')) throw new UserError(`${where}: tensor ${name} has shape [${t.shape}], model expects [${shape}]`);
      return t.dtype === 'F16' ? fromHalf(t.data as Uint16Array) : Float32Array.from(t.data);
    }, where);
  }

  /** Fill the parameters of `parts` (all by default) and the codebook from `read(name, expected shape)`. */
  private loadWith(read: (name: string, shape: number[]) => Float32Array, where: string, parts: readonly ModelPart[] = ALL_PARTS): void {
    const C = this.codebookSize;
    const d = this.cfg.quantizer.dim;
    const cb = read('quantizer.codebook', [C, d]);
    const fresh = this.params as unknown as Params;
    const loaded = mapParams(fresh, (name, leaf) => (partOf(name, parts) ? np.array(read(name, leaf.shape)).reshape(leaf.shape) : leaf.ref));
    tree.dispose(fresh);
    this.params = loaded as unknown as ModelParams;
    this.codebook.codebook.set(cb);
    this.codebook.initialized = true;
    this.parts = parts;
    void where;
  }

  private need(part: ModelPart): void {
    if (!this.parts.includes(part)) throw new Error(`internal: the model was loaded without its ${part} weights`);
  }

  /** Weights and codebook as named tensors (float32, or float16 for shipping). */
  async tensors(half = false): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    const put = (name: string, shape: number[], data: Float32Array) =>
      out.set(name, half ? { dtype: 'F16', shape, data: toHalf(data) } : { dtype: 'F32', shape, data });
    for (const [name, a] of flattenParams(this.params as unknown as Params)) {
      put(name, a.shape, (await a.ref.data()) as Float32Array);
    }
    put('quantizer.codebook', [this.codebookSize, this.cfg.quantizer.dim], this.codebook.codebook.slice());
    return out;
  }

  /**
   * What the model's folder holds (a writer puts it on disk: src/node/models.ts): config.json's
   * object and the weights. `format`: their storage (io/weights.ts; default float32); the encoder
   * and the codebook are never int8 (they decide the tokens, and are small). `inference`
   * (export): without the training-only layout probe, in the weights and the config.
   */
  async stored(opts: { format?: WeightFormat; inference?: boolean } = {}): Promise<StoredModel> {
    const format = opts.format ?? 'float32';
    const weights = new Map<string, PendingTensor>();
    const cfg = opts.inference ? structuredClone(this.cfg) : this.cfg;
    if (opts.inference) for (const p of TRAINING_PROBES) delete cfg.train[p];
    for (const [name, t] of await this.tensors(false)) {
      if (opts.inference && isEncoderProbeTensor(name)) continue;
      for (const [k, st] of storeWeight(name, t.data as Float32Array, t.shape, format, name === 'quantizer.codebook' || name.startsWith('enc.'))) weights.set(k, { dtype: st.dtype, shape: st.shape, data: () => st.bytes });
    }
    return { config: cfg, weights, metadata: { format: 'selftok', step: String(this.step), config: cfg.name, weights: format } };
  }

  // ------------------------------------------------------------- compute -----------

  private cached<F extends (...args: any[]) => any>(name: string, make: () => OwnedFunction<F>): OwnedFunction<F> {
    return this.jitCache.get(name, make);
  }

  /** Free compiled functions (after training changes shapes or when done). */
  disposeCompiled(): void {
    this.jitCache.dispose();
    this.vaeRunner?.disposeCompiled();
    this.vaeRunner = null;
  }

  /** Pixels in [−1, 1] → the decoder's data space (the latent-autoencoder seam). */
  toData(pixels: np.Array): np.Array {
    const { scale, shift } = this.cfg.image;
    return scale === 1 && shift === 0 ? pixels : pixels.sub(shift).mul(scale);
  }
  fromData(x: np.Array): np.Array {
    const { scale, shift } = this.cfg.image;
    return scale === 1 && shift === 0 ? x : x.div(scale).add(shift);
  }

  codebookArray(): np.Array {
    return np.array(this.codebook.codebook).reshape([this.codebookSize, this.cfg.quantizer.dim]);
  }

  /** Images B×P×P×3 in [−1, 1] (flat; P = imageSize) → token ids B×K in encoder order. */
  async encode(images: Float32Array, B: number): Promise<Int32Array> {
    this.need('encode');
    const P = this.imageSize;
    const inChannels = this.cfg.vae ? 3 : this.cfg.image.channels;
    if (images.length !== B * P * P * inChannels) throw new Error(`internal: encode got ${images.length} values for ${B} images`);
    const pixels = np.array(images).reshape([B, P, P, inChannels]);
    const data = this.cfg.vae ? await this.vae().encode(pixels) : pixels;
    const f = this.cached('encode', () =>
      jit((enc: EncoderParams, codebook: np.Array, x: np.Array) => {
        const z = l2normalize(encodeFeatures(enc, this.cfg, this.cfg.vae ? x : this.toData(x)));
        const ids = np.argmax(np.matmul(z, codebook.transpose()), -1);
        tree.dispose(enc);
        return ids;
      }),
    );
    const ids = f(tree.ref(this.params.enc), this.codebookArray(), data);
    return Int32Array.from((await ids.data()) as Int32Array);
  }

  private vaeRunner: Sd3Vae | null = null;
  /** The VAE behind the latent seam, run stage by stage (sd3-vae.ts). */
  private vae(): Sd3Vae {
    if (!this.cfg.vae || !this.params.vae) throw new Error('internal: this model has no vae');
    this.vaeRunner ??= new Sd3Vae(this.cfg.vae, this.params.vae);
    return this.vaeRunner;
  }

  /** The decoder's data space → pixels in [−1, 1] (clamped). */
  private async dataToPixels(x: np.Array): Promise<Float32Array> {
    const px = this.cfg.vae ? await this.vae().decode(x) : this.fromData(x);
    return Float32Array.from((await np.clip(px, -1, 1).data()) as Float32Array);
  }

  /** Post-LN token embeddings for ids (B×K): LayerNorm(codebook[ids]) (spec §4.2). */
  embedIds(ids: Int32Array, B: number): np.Array {
    const f = this.cached('embed', () =>
      jit((enc: EncoderParams, codebook: np.Array, idx: np.Array) => {
        // shapes come from the arguments: one cached function serves every batch size
        const [n, k] = idx.shape;
        const h = postNorm(enc, np.take(codebook, idx.reshape([n * k]), 0).reshape([n, k, -1]));
        tree.dispose(enc);
        return h;
      }),
    );
    return f(tree.ref(this.params.enc), this.codebookArray(), np.array(ids, { dtype: np.int32 }).reshape([B, this.K]));
  }

  checkIds(ids: Int32Array, B: number, where: string): void {
    if (ids.length !== B * this.K) throw new UserError(`${where}: expected ${this.K} tokens per image, got ${ids.length / B}`);
    for (let i = 0; i < ids.length; i++) {
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= this.codebookSize) {
        throw new UserError(`${where}: token id ${ids[i]} at position ${i % this.K} is out of range 0..${this.codebookSize - 1}`);
      }
    }
  }

  /**
   * 50-step (by default) Euler rectified-flow decoding (spec §7): the token mask is
   * recomputed at every step from τ_i, AND-ed with `keep`. Returns B×H×W×C pixels.
   */
  async decode(ids: Int32Array, B: number, opts: DecodeOptions = {}): Promise<Float32Array> {
    const steps = opts.steps ?? this.cfg.sampler.steps;
    const keep = opts.keep ?? this.K;
    const w = this.guidance(opts.guidance);
    if (!Number.isInteger(steps) || steps < 1) throw new UserError(`--steps must be a positive integer, got ${steps}`);
    this.need('decode');
    if (!Number.isInteger(keep) || keep < 0 || keep > this.K) throw new UserError(`--keep must be an integer in 0..${this.K}, got ${keep}`);
    this.checkIds(ids, B, 'tokens');
    const { size, channels } = this.cfg.image;
    const h = this.embedIds(ids, B);
    const stepFn = w === 1 ? this.eulerStep() : this.guidedEulerStep();
    let x: np.Array;
    if (opts.noise) {
      if (opts.noise.length !== B * size * size * channels) throw new UserError(`--noise: expected ${B}×${size}×${size}×${channels} = ${B * size * size * channels} values, got ${opts.noise.length}`);
      x = np.array(opts.noise).reshape([B, size, size, channels]);
    } else {
      x = random.normal(random.key(opts.seed ?? 0), [B, size, size, channels]);
      const temperature = this.temperature(opts.temperature);
      if (temperature !== 1) x = x.mul(temperature);
    }
    const grid = eulerGrid(steps, this.cfg.sampler.grid);
    for (let i = 0; i < grid.length; i++) {
      const s = grid[i];
      const mask = np.array(stepMask(this.schedule, B, s.tau, keep)).reshape([B, this.K]);
      x = stepFn(tree.ref(this.params.dec), x, np.full([B], s.t), np.array(s.dt), h.ref, mask, np.array(w));
      // jax-js is lazy: without a flush per step, all steps queue up with their
      // intermediates alive (measured: 700 MB of wasm heap for 10 steps at B = 32)
      await x.blockUntilReady();
      opts.onStep?.(i + 1, grid.length);
    }
    h.dispose();
    return this.dataToPixels(x);
  }

  /** The decoder's velocity at (x, t) given tokens and mask (B×K), as the sampler uses it. */
  private velocity(dec: DecoderParams, x: np.Array, t: np.Array, tokens: np.Array, mask: np.Array, drop: np.Array | null): np.Array {
    const out = decoderNet(dec, this.cfg, { imageTokens: embedNoisy(dec, this.cfg, x.ref), t: t.ref, tokens, mask, drop, contextSeesImage: true });
    return toVelocity(out, x, t, this.cfg.decoder.prediction, SAMPLER_T_MIN);
  }

  /** x ← x − Δt·v̂ (spec §7); w is unused (guidance 1). */
  private eulerStep(): OwnedFunction<EulerStep> {
    return this.cached('euler', () =>
      jit((dec: DecoderParams, x: np.Array, t: np.Array, dt: np.Array, tokens: np.Array, mask: np.Array, w: np.Array) => {
        w.dispose();
        const v = this.velocity(dec, x.ref, t, tokens, mask, null);
        tree.dispose(dec);
        return x.sub(v.mul(dt));
      }),
    );
  }

  /**
   * The Euler step with guidance: one network pass over the batch twice, the second copy
   * with the condition dropped (zeroed context, cleared mask: the branch training's 10%
   * drop teaches), then v = v_u + w·(v_c − v_u).
   */
  private guidedEulerStep(): OwnedFunction<EulerStep> {
    return this.cached('euler-guided', () =>
      jit((dec: DecoderParams, x: np.Array, t: np.Array, dt: np.Array, tokens: np.Array, mask: np.Array, w: np.Array) => {
        const B = x.shape[0];
        const drop = np.concatenate([np.zeros([B]), np.ones([B])], 0);
        const v2 = this.velocity(
          dec,
          np.concatenate([x.ref, x.ref], 0),
          np.concatenate([t.ref, t], 0),
          np.concatenate([tokens.ref, tokens], 0),
          np.concatenate([mask.ref, mask], 0),
          drop,
        );
        const vc = v2.ref.slice([0, B]);
        const vu = v2.slice([B, 2 * B]);
        const v = vu.ref.add(vc.sub(vu).mul(w));
        tree.dispose(dec);
        return x.sub(v.mul(dt));
      }),
    );
  }

  /** One-step renderer decoding (spec §8): deterministic, all tokens visible, predicts x̂0. */
  async render(ids: Int32Array, B: number): Promise<Float32Array> {
    if (!this.params.ren) throw new UserError('this model has no renderer (train one with `selftok train-renderer`)');
    this.need('render');
    this.checkIds(ids, B, 'tokens');
    const h = this.embedIds(ids, B);
    const f = this.cached('render', () =>
      jit((ren: RendererParams, tokens: np.Array) => {
        const out = renderNet(ren, this.cfg, tokens);
        tree.dispose(ren);
        return out;
      }),
    );
    return this.dataToPixels(f(tree.ref(this.params.ren), h));
  }

  dispose(): void {
    this.disposeCompiled();
    tree.dispose(this.params as unknown as Params);
  }
}
