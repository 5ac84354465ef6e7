// The SD3 VAE (Stability AI's `sd3_impls.SDVAE`, spec §1.1): a KL autoencoder from RGB in
// [−1, 1] to 16 latent channels at 1/8 the resolution, and back. Its own module behind the
// model's latent seam (diffusers style): the tokenizer sees only latents.
//
//   encoder  conv_in 3→ch; per level (ch·mult): num_res_blocks ResnetBlocks, then a 3×3
//            stride-2 conv with (0,1,0,1) zero padding except at the last level; mid:
//            ResnetBlock, single-head AttnBlock, ResnetBlock; GroupNorm, SiLU, conv_out → 2z
//            (mean and log-variance). Encoding takes the posterior mean (the official
//            pipeline's `.mode()`).
//   decoder  conv_in z→ch·mult[-1]; mid as above; per level, deepest first: num_res_blocks+1
//            ResnetBlocks, then nearest ×2 upsampling + 3×3 conv except at level 0;
//            GroupNorm, SiLU, conv_out → 3.
//   GroupNorm: 32 groups, eps 1e-6, affine. ResnetBlock: x + conv2(SiLU(GN(conv1(SiLU(GN(x))))))
//            with a 1×1 conv on the shortcut when the width changes.
//   latent format (SD3LatentFormat): in = (z − 0.0609)·1.5305, out = z/1.5305 + 0.0609.
//
// Parameter names are the checkpoint's own (SAI layout without the `first_stage_model.`
// prefix); conv weights are stored kh×kw×I×O (the importer transposes PyTorch's O×I×kh×kw),
// because each tap's I×O matrix must be contiguous: a matmul that reads a strided slice of
// the kernel falls off jax-js's tiled SIMD path (measured on wasm, 3×3 conv 128→128 at 64×64:
// 1300 ms with O×I×kh×kw slices, 43 ms with kh×kw×I×O). Activations are NHWC; convolutions are
// sums of shifted matmuls.
import { jit, numpy as np, nn, tree } from '@jax-js/jax';
import { Init } from '../nn/params.ts';

export type VaeConfig = {
  /** Base width (SD3: 128) and per-level multipliers (SD3: 1, 2, 4, 4). Widths must be multiples of 32 (GroupNorm). */
  ch: number;
  chMult: number[];
  numResBlocks: number;
  zChannels: number;
  /** SD3LatentFormat. */
  shift: number;
  scale: number;
};

export const SD3_VAE: VaeConfig = { ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 16, shift: 0.0609, scale: 1.5305 };

const GROUPS = 32;
const EPS = 1e-6;

type Conv = { weight: np.Array; bias: np.Array };
type Norm = { weight: np.Array; bias: np.Array };
type Resnet = { norm1: Norm; conv1: Conv; norm2: Norm; conv2: Conv; nin_shortcut?: Conv };
type Attn = { norm: Norm; q: Conv; k: Conv; v: Conv; proj_out: Conv };
type Mid = { block_1: Resnet; attn_1: Attn; block_2: Resnet };
export type VaeEncoderParams = { conv_in: Conv; down: { block: Resnet[]; downsample?: { conv: Conv } }[]; mid: Mid; norm_out: Norm; conv_out: Conv };
export type VaeDecoderParams = { conv_in: Conv; mid: Mid; up: { block: Resnet[]; upsample?: { conv: Conv } }[]; norm_out: Norm; conv_out: Conv };
export type VaeParams = { encoder: VaeEncoderParams; decoder: VaeDecoderParams };

// ---- initialisation (PyTorch defaults: kaiming-uniform convs, unit GroupNorm) ----------------

function initConv(init: Init, cin: number, cout: number, k: number): Conv {
  const bound = 1 / Math.sqrt(cin * k * k);
  const n = cout * cin * k * k;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = (init.rng.uniform() * 2 - 1) * bound;
  const b = new Float32Array(cout);
  for (let i = 0; i < cout; i++) b[i] = (init.rng.uniform() * 2 - 1) * bound;
  // drawn in PyTorch's O×I×kh×kw order (so a seed gives the same kernels), stored kh×kw×I×O
  return { weight: np.array(w).reshape([cout, cin, k, k]).transpose([2, 3, 1, 0]), bias: np.array(b) };
}
const initNorm = (init: Init, c: number): Norm => ({ weight: init.ones([c]), bias: init.zeros([c]) });
function initResnet(init: Init, cin: number, cout: number): Resnet {
  return {
    norm1: initNorm(init, cin),
    conv1: initConv(init, cin, cout, 3),
    norm2: initNorm(init, cout),
    conv2: initConv(init, cout, cout, 3),
    ...(cin !== cout ? { nin_shortcut: initConv(init, cin, cout, 1) } : {}),
  };
}
const initAttn = (init: Init, c: number): Attn => ({ norm: initNorm(init, c), q: initConv(init, c, c, 1), k: initConv(init, c, c, 1), v: initConv(init, c, c, 1), proj_out: initConv(init, c, c, 1) });
const initMid = (init: Init, c: number): Mid => ({ block_1: initResnet(init, c, c), attn_1: initAttn(init, c), block_2: initResnet(init, c, c) });

export function initVae(cfg: VaeConfig, init: Init): VaeParams {
  const { ch, chMult, numResBlocks: R, zChannels: z } = cfg;
  const L = chMult.length;
  const down: VaeEncoderParams['down'] = [];
  let cin = ch;
  for (let i = 0; i < L; i++) {
    const cout = ch * chMult[i];
    const block: Resnet[] = [];
    for (let r = 0; r < R; r++) {
      block.push(initResnet(init, cin, cout));
      cin = cout;
    }
    down.push(i < L - 1 ? { block, downsample: { conv: initConv(init, cin, cin, 3) } } : { block });
  }
  const encoder: VaeEncoderParams = { conv_in: initConv(init, 3, ch, 3), down, mid: initMid(init, cin), norm_out: initNorm(init, cin), conv_out: initConv(init, cin, 2 * z, 3) };
  const top = ch * chMult[L - 1];
  const up: VaeDecoderParams['up'] = new Array(L);
  let c = top;
  for (let i = L - 1; i >= 0; i--) {
    const cout = ch * chMult[i];
    const block: Resnet[] = [];
    for (let r = 0; r <= R; r++) {
      block.push(initResnet(init, c, cout));
      c = cout;
    }
    up[i] = i > 0 ? { block, upsample: { conv: initConv(init, c, c, 3) } } : { block };
  }
  const decoder: VaeDecoderParams = { conv_in: initConv(init, z, top, 3), mid: initMid(init, top), up, norm_out: initNorm(init, c), conv_out: initConv(init, c, 3, 3) };
  return { encoder, decoder };
}

// ---- layers -------------------------------------------------------------------------------

/**
 * 2-D convolution of NHWC `x` with a kh×kw×I×O kernel: zero padding (top, bottom, left,
 * right), stride s, as a sum over kernel taps of (strided window) × W[dy, dx].
 */
export function conv2d(p: Conv, x: np.Array, stride = 1, pad?: [number, number, number, number]): np.Array {
  const [B, H, W] = x.shape;
  const [kh, kw, I, O] = p.weight.shape;
  const [pt, pb, pl, pr] = pad ?? [(kh - 1) >> 1, kh >> 1, (kw - 1) >> 1, kw >> 1];
  const Ho = Math.floor((H + pt + pb - kh) / stride) + 1;
  const Wo = Math.floor((W + pl + pr - kw) / stride) + 1;
  // pad so that every tap's strided window [d, d + s·Ho) exists (extra rows are never read)
  const eb = Math.max(pb, (kh - 1) + stride * Ho - (H + pt));
  const er = Math.max(pr, (kw - 1) + stride * Wo - (W + pl));
  const padded = pt || eb || pl || er ? np.pad(x, [[0, 0], [pt, eb], [pl, er], [0, 0]]) : x;
  let out = p.bias.ref.reshape([1, 1, 1, O]);
  for (let dy = 0; dy < kh; dy++) {
    for (let dx = 0; dx < kw; dx++) {
      let win = padded.ref.slice([], [dy, dy + stride * Ho], [dx, dx + stride * Wo], []);
      if (stride > 1) win = win.reshape([B, Ho, stride, Wo, stride, I]).slice([], [], [0, 1], [], [0, 1], []).reshape([B, Ho, Wo, I]);
      out = out.add(np.matmul(win, p.weight.ref.slice(dy, dx)));
    }
  }
  padded.dispose();
  return out;
}

/** GroupNorm over NHWC: statistics per sample and group of C/32 channels, over H, W and the group. */
export function groupNorm(p: Norm, x: np.Array, groups = GROUPS, eps = EPS): np.Array {
  const [B, H, W, C] = x.shape;
  const g = x.reshape([B, H * W, groups, C / groups]);
  const mean = g.ref.mean([1, 3], { keepdims: true });
  const centred = g.sub(mean);
  const variance = np.square(centred.ref).mean([1, 3], { keepdims: true });
  return centred.div(np.sqrt(variance.add(eps))).reshape([B, H, W, C]).mul(p.weight.ref).add(p.bias.ref);
}

function resnet(p: Resnet, x: np.Array): np.Array {
  let h = conv2d(p.conv1, nn.silu(groupNorm(p.norm1, x.ref)));
  h = conv2d(p.conv2, nn.silu(groupNorm(p.norm2, h)));
  const skip = p.nin_shortcut ? conv2d(p.nin_shortcut, x) : x;
  return skip.add(h);
}

/** Single-head self-attention over the H·W positions, 1×1 conv projections (scale C^−½). */
function attnBlock(p: Attn, x: np.Array): np.Array {
  const [B, H, W, C] = x.shape;
  const h = groupNorm(p.norm, x.ref);
  const q = conv2d(p.q, h.ref, 1, [0, 0, 0, 0]).reshape([B, H * W, 1, C]);
  const k = conv2d(p.k, h.ref, 1, [0, 0, 0, 0]).reshape([B, H * W, 1, C]);
  const v = conv2d(p.v, h, 1, [0, 0, 0, 0]).reshape([B, H * W, 1, C]);
  const a = nn.dotProductAttention(q, k, v).reshape([B, H, W, C]);
  return x.add(conv2d(p.proj_out, a, 1, [0, 0, 0, 0]));
}

const mid = (p: Mid, x: np.Array): np.Array => resnet(p.block_2, attnBlock(p.attn_1, resnet(p.block_1, x)));

/** Nearest-neighbour ×2 upsampling of NHWC. */
function upsample2(x: np.Array): np.Array {
  return np.repeat(np.repeat(x, 2, 1), 2, 2);
}

/** RGB B×H×W×3 in [−1, 1] → posterior moments B×(H/f)×(W/f)×2z (mean, then log-variance). */
export function vaeEncoder(p: VaeEncoderParams, x: np.Array): np.Array {
  let h = conv2d(p.conv_in, x);
  for (const level of p.down) {
    for (const b of level.block) h = resnet(b, h);
    if (level.downsample) h = conv2d(level.downsample.conv, h, 2, [0, 1, 0, 1]);
  }
  h = mid(p.mid, h);
  return conv2d(p.conv_out, nn.silu(groupNorm(p.norm_out, h)));
}

/** Latent B×h×w×z (VAE space, before the latent format) → RGB B×H×W×3 (unclamped). */
export function vaeDecoder(p: VaeDecoderParams, z: np.Array): np.Array {
  let h = mid(p.mid, conv2d(p.conv_in, z));
  for (let i = p.up.length - 1; i >= 0; i--) {
    for (const b of p.up[i].block) h = resnet(b, h);
    const u = p.up[i].upsample;
    if (u) h = conv2d(u.conv, upsample2(h));
  }
  return conv2d(p.conv_out, nn.silu(groupNorm(p.norm_out, h)));
}

/** Images B×H×W×3 in [−1, 1] → scaled latents B×h×w×z: (posterior mean − shift)·scale (SD3LatentFormat.process_in). */
export function encodeLatents(cfg: VaeConfig, p: VaeEncoderParams, x: np.Array): np.Array {
  return vaeEncoder(p, x).slice([], [], [], [0, cfg.zChannels]).sub(cfg.shift).mul(cfg.scale);
}

/** Scaled latents → images B×H×W×3 (unclamped): decoder(z/scale + shift) (process_out). */
export function decodeLatents(cfg: VaeConfig, p: VaeDecoderParams, z: np.Array): np.Array {
  return vaeDecoder(p, z.div(cfg.scale).add(cfg.shift));
}

type Jitted<A extends unknown[]> = (...args: A) => np.Array;

/**
 * The autoencoder run stage by stage: each ResnetBlock, attention block, resampling conv and
 * end layer is its own compiled function, so that only one stage's intermediates are alive
 * at a time. One compiled graph for the whole encoder keeps them all (measured: the full SD3
 * encoder at 256×256 ran out of the wasm device's 4 GiB that way).
 */
export class Sd3Vae {
  private readonly jits = new Map<string, Jitted<never[]>>();
  constructor(
    readonly cfg: VaeConfig,
    readonly params: VaeParams,
  ) {}

  /** Downsampling factor (8 for SD3). */
  get factor(): number {
    return 2 ** (this.cfg.chMult.length - 1);
  }

  private stage<P extends object>(name: string, f: (p: P, x: np.Array) => np.Array): (p: P, x: np.Array) => Promise<np.Array> {
    let j = this.jits.get(name) as Jitted<[P, np.Array]> | undefined;
    if (!j) {
      j = jit((p: P, x: np.Array) => {
        const y = f(p, x);
        tree.dispose(p as never);
        return y;
      }) as unknown as Jitted<[P, np.Array]>;
      this.jits.set(name, j as unknown as Jitted<never[]>);
    }
    const fn = j;
    return async (p, x) => {
      const y = fn(tree.ref(p as never) as P, x);
      await y.blockUntilReady();
      return y;
    };
  }

  private async mid(p: Mid, h: np.Array): Promise<np.Array> {
    h = await this.stage('resnet', resnet)(p.block_1, h);
    h = await this.stage('attn', attnBlock)(p.attn_1, h);
    return this.stage('resnet', resnet)(p.block_2, h);
  }

  /** Images B×H×W×3 in [−1, 1] → scaled latents B×h×w×z (posterior mean, SD3LatentFormat.process_in). */
  async encode(x: np.Array): Promise<np.Array> {
    const p = this.params.encoder;
    const { zChannels, shift, scale } = this.cfg;
    let h = await this.stage('conv', (c: Conv, v: np.Array) => conv2d(c, v))(p.conv_in, x);
    for (const level of p.down) {
      for (const b of level.block) h = await this.stage('resnet', resnet)(b, h);
      if (level.downsample) h = await this.stage('down', (c: Conv, v: np.Array) => conv2d(c, v, 2, [0, 1, 0, 1]))(level.downsample.conv, h);
    }
    h = await this.mid(p.mid, h);
    return this.stage('enc-out', (q: { norm_out: Norm; conv_out: Conv }, v: np.Array) =>
      conv2d(q.conv_out, nn.silu(groupNorm(q.norm_out, v))).slice([], [], [], [0, zChannels]).sub(shift).mul(scale),
    )({ norm_out: p.norm_out, conv_out: p.conv_out }, h);
  }

  /** Scaled latents → images B×H×W×3 (unclamped). */
  async decode(z: np.Array): Promise<np.Array> {
    const p = this.params.decoder;
    const { shift, scale } = this.cfg;
    let h = await this.stage('dec-in', (c: Conv, v: np.Array) => conv2d(c, v.div(scale).add(shift)))(p.conv_in, z);
    h = await this.mid(p.mid, h);
    for (let i = p.up.length - 1; i >= 0; i--) {
      for (const b of p.up[i].block) h = await this.stage('resnet', resnet)(b, h);
      const u = p.up[i].upsample;
      if (u) h = await this.stage('up', (c: Conv, v: np.Array) => conv2d(c, upsample2(v)))(u.conv, h);
    }
    return this.stage('dec-out', (q: { norm_out: Norm; conv_out: Conv }, v: np.Array) => conv2d(q.conv_out, nn.silu(groupNorm(q.norm_out, v))))(
      { norm_out: p.norm_out, conv_out: p.conv_out },
      h,
    );
  }

  /** Free the compiled stages (the parameters belong to whoever gave them). */
  disposeCompiled(): void {
    for (const j of this.jits.values()) (j as unknown as { dispose?: () => void }).dispose?.();
    this.jits.clear();
  }
}
