// Layers as functions of (params, activations). Parameters are borrowed with
// `.ref`; activations are consumed (jax-js ownership).
import { lax, numpy as np, nn } from '@jax-js/jax';
import { Init, type Params } from './params.ts';

export type Linear = { w: np.Array; b?: np.Array };
export type LayerNormP = { g: np.Array; b: np.Array };

export function initLinear(init: Init, fanIn: number, fanOut: number, opts: { bias?: boolean; zero?: boolean; std?: number } = {}): Linear {
  const w = opts.zero ? init.zeros([fanIn, fanOut]) : opts.std !== undefined ? init.normal([fanIn, fanOut], opts.std) : init.xavier(fanIn, fanOut);
  return opts.bias === false ? { w } : { w, b: init.zeros([fanOut]) };
}

/** y = x·W + b over the last axis. */
export function linear(p: Linear, x: np.Array): np.Array {
  const y = np.matmul(x, p.w.ref);
  return p.b ? y.add(p.b.ref) : y;
}

export function initLayerNorm(init: Init, dim: number): LayerNormP {
  return { g: init.ones([dim]), b: init.zeros([dim]) };
}

/** LayerNorm without affine (the AdaLN streams modulate instead). */
export function layerNorm(x: np.Array, eps = 1e-6): np.Array {
  return nn.standardize(x, -1, { epsilon: eps });
}

/** LayerNorm with learnable affine. */
export function layerNormAffine(p: LayerNormP, x: np.Array, eps = 1e-6): np.Array {
  return layerNorm(x, eps).mul(p.g.ref).add(p.b.ref);
}

/** Forward identity, gradient × w (w broadcasts against x): y = w·x + sg(x − w·x). */
export function scaleGradient(x: np.Array, w: np.Array): np.Array {
  const wx = x.ref.mul(w);
  return wx.ref.add(lax.stopGradient(x.sub(wx)));
}

/** modulate(h, shift, scale) = h ⊙ (1 + scale) + shift (spec §0). */
export function modulate(h: np.Array, shift: np.Array, scale: np.Array): np.Array {
  return h.mul(scale.add(1)).add(shift);
}

export type Mlp = { fc1: Linear; fc2: Linear };
export function initMlp(init: Init, dim: number, hidden: number, out = dim): Mlp {
  return { fc1: initLinear(init, dim, hidden), fc2: initLinear(init, hidden, out) };
}
/** Linear → GELU(tanh) → Linear (spec §3.1, §5.1). */
export function mlp(p: Mlp, x: np.Array): np.Array {
  return linear(p.fc2, geluTanh(linear(p.fc1, x)));
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU(tanh), g(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (spec §3.1), with a backward pass that
 * keeps one buffer, the slope g′(x), instead of the eight or so intermediates that autodiff
 * through x³, tanh and their products keeps (issue #21: in `small` they were the largest part
 * of a training step's peak). The value is jax-js's nn.gelu exactly (the added term is
 * (x − x)·g′ = 0; only a −0 becomes 0); the gradient is g′(x) = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²), t the tanh.
 */
export function geluTanh(x: np.Array): np.Array {
  const x2 = lax.stopGradient(x.ref);
  // t and y in nn.gelu's order of operations, so that y is its value bit for bit
  const xx = x2.ref.mul(x2.ref);
  const t = np.tanh(x2.ref.mul(xx.ref.mul(0.044715).add(1)).mul(SQRT_2_OVER_PI));
  const onePlusT = t.ref.add(1);
  const y = x2.ref.mul(0.5).mul(onePlusT.ref);
  const du = xx.mul(3 * 0.044715).add(1).mul(SQRT_2_OVER_PI);
  const slope = onePlusT.mul(0.5).add(x2.ref.mul(0.5).mul(t.ref.mul(t).neg().add(1)).mul(du));
  return y.add(x.sub(x2).mul(slope));
}

/**
 * Multi-head attention core. q: B×L×(H·d), k, v: B×S×(H·d); keyMask: B×S (1 = may attend)
 * or null; or pairMask: L×S, the same for every sample. Every query row must have at least
 * one allowed key.
 */
export function attention(q: np.Array, k: np.Array, v: np.Array, heads: number, keyMask: np.Array | null, pairMask?: np.Array): np.Array {
  const [B, L, D] = q.shape;
  const S = k.shape[1];
  const hd = D / heads;
  const qh = q.reshape([B, L, heads, hd]);
  const kh = k.reshape([B, S, heads, hd]);
  const vh = v.reshape([B, S, heads, hd]);
  if (keyMask && pairMask) throw new Error('internal: attention takes a key mask or a pair mask, not both');
  const opts = keyMask ? { mask: keyMask.reshape([B, 1, 1, S]).greater(0.5) } : pairMask ? { mask: pairMask.reshape([1, 1, L, S]).greater(0.5) } : {};
  return nn.dotProductAttention(qh, kh, vh, opts).reshape([B, L, D]);
}

/**
 * One-hot rows (float32, …×n) of integer ids, by comparing each id with 0…n−1: one element-wise
 * kernel. jax-js's nn.oneHot takes rows of an n×n identity instead, a gather per element
 * (2.4 ms for scenes-ar's 2048 targets × 560 words on wasm, issue #21). The same values.
 */
export function oneHot(ids: np.Array, n: number): np.Array {
  return ids.reshape([...ids.shape, 1]).equal(np.arange(n)).astype(np.float32);
}

/** Split the last axis into n equal parts. */
export function chunk(x: np.Array, n: number): np.Array[] {
  return np.split(x, n, -1);
}

// ---- fixed sinusoidal tables (computed on the host) -------------------------------

/**
 * DiT/SD3 `TimestepEmbedder` features for scalar positions: [cos(p·f_i), sin(p·f_i)],
 * f_i = exp(−ln(10000)·i/half) (spec §3.4, §5.2: cos first).
 */
export function timestepFeatures(positions: ArrayLike<number>, dim = 256): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(positions.length * dim);
  for (let n = 0; n < positions.length; n++) {
    for (let i = 0; i < half; i++) {
      const a = positions[n] * Math.exp((-Math.log(10000) * i) / half);
      out[n * dim + i] = Math.cos(a);
      out[n * dim + half + i] = Math.sin(a);
    }
  }
  return out;
}

/** The same features computed in-graph for a B-vector of times τ (e.g. 1000·t). */
export function timestepFeaturesGraph(tau: np.Array, dim = 256): np.Array {
  const half = dim / 2;
  const f = new Float32Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.exp((-Math.log(10000) * i) / half);
  const args = tau.reshape([-1, 1]).mul(np.array(f).reshape([1, half]));
  return np.concatenate([np.cos(args.ref), np.sin(args)], -1);
}

/** 1D sin-cos table [sin(p·ω_i), cos(p·ω_i)], ω_i = 10000^(−i/(dim/2)) (spec §5.1, sin first). */
export function sincos1d(positions: ArrayLike<number>, dim: number): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(positions.length * dim);
  for (let n = 0; n < positions.length; n++) {
    for (let i = 0; i < half; i++) {
      const a = positions[n] * Math.pow(10000, -i / half);
      out[n * dim + i] = Math.sin(a);
      out[n * dim + half + i] = Math.cos(a);
    }
  }
  return out;
}

/**
 * 2D sin-cos table for an h×w grid, row-major: first half of the channels encodes the
 * column, second half the row (MAE/DiT convention, spec §3.5).
 */
export function sincos2d(h: number, w: number, dim: number): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(h * w * dim);
  const cols = sincos1d(Float32Array.from({ length: w }, (_, i) => i), half);
  const rows = sincos1d(Float32Array.from({ length: h }, (_, i) => i), half);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const o = (r * w + c) * dim;
      out.set(cols.subarray(c * half, (c + 1) * half), o);
      out.set(rows.subarray(r * half, (r + 1) * half), o + half);
    }
  }
  return out;
}

/** A `TimestepEmbedder`: 256 sinusoid features → Linear → SiLU → Linear (weights N(0, 0.02²)). */
export type TimeEmbedder = { fc1: Linear; fc2: Linear };
export function initTimeEmbedder(init: Init, dim: number, freqDim = 256): TimeEmbedder {
  return { fc1: initLinear(init, freqDim, dim, { std: 0.02 }), fc2: initLinear(init, dim, dim, { std: 0.02 }) };
}
export function timeEmbedder(p: TimeEmbedder, features: np.Array): np.Array {
  return linear(p.fc2, nn.silu(linear(p.fc1, features)));
}

export type { Params };
