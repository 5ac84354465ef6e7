// Rectified flow, separate from the network (diffusers style). Code time convention
// (spec §0, §12.1): t = 1 is pure noise, t = 0 the clean image,
//   x_t = t·ε + (1 − t)·x0,   target v = ε − x0,   x̂0 = x_t − t·v̂,
// and the Euler sampler steps towards smaller t: x ← x − Δt·v̂.
import { numpy as np } from '@jax-js/jax';
import { samplerTaus, TokenSchedule } from './schedule.ts';

/** x_t for per-sample t (B) and images/noise B×H×W×C. */
export function noisy(x0: np.Array, eps: np.Array, t: np.Array): np.Array {
  const tb = t.reshape([-1, 1, 1, 1]);
  return eps.mul(tb.ref).add(x0.mul(np.ones([1, 1, 1, 1]).sub(tb)));
}

/** Velocity target ε − x0. */
export function velocityTarget(x0: np.Array, eps: np.Array): np.Array {
  return eps.sub(x0);
}

/**
 * What the decoder network outputs, turned into the velocity the loss and the sampler use.
 *  - 'velocity' (the reference, spec §5.7): v̂ is the output.
 *  - 'x0': the network predicts x̂0 and v̂ = (x_t − x̂0)/t (since v = ε − x0 = (x_t − x0)/t),
 *    with t clipped at `tMin`. Same velocity loss and sampler; the network no longer has to
 *    emit full-rank noise. In pixel space with patch dim ≥ width (our small configs) the
 *    velocity parameterisation cannot pass ε through the bottleneck and does not learn
 *    (JiT, "Back to Basics: Let Denoising Generative Models Denoise", 2025).
 */
export type Prediction = 'velocity' | 'x0';

export function toVelocity(out: np.Array, xt: np.Array, t: np.Array, prediction: Prediction, tMin: number): np.Array {
  if (prediction === 'velocity') {
    xt.dispose();
    t.dispose();
    return out;
  }
  return xt.sub(out).div(np.maximum(t, tMin).reshape([-1, 1, 1, 1]));
}

/** The sampler divides by the true t (≥ 1/steps); the clip only guards against t = 0. */
export const SAMPLER_T_MIN = 1e-4;

/**
 * The training loss (spec §6.1): mean (v̂ − (ε − x0))². With x-prediction the velocity is
 * taken with t clipped at `lossTMin` in both v̂ and the target, i.e. (x̂0 − x0)²/max(t, tMin)²:
 * exactly the velocity loss for t ≥ tMin, and down-weighted below it. Unclipped, the 1/t²
 * weight of nearly clean samples swamps the gradient, and the decoder learns to use the tokens
 * far more slowly (measured: 4-image overfit, PSNR with tokens 13.8 dB at tMin = 0.05 against
 * 19.7 dB at tMin = 0.3 after 600 steps).
 */
export function flowLoss(out: np.Array, x0: np.Array, eps: np.Array, xt: np.Array, t: np.Array, prediction: Prediction, lossTMin: number, pixelWeight?: np.Array): np.Array {
  let err: np.Array;
  if (prediction === 'velocity') {
    xt.dispose();
    t.dispose();
    err = np.square(out.sub(velocityTarget(x0, eps)));
  } else {
    eps.dispose();
    xt.dispose();
    const w = np.maximum(t, lossTMin).reshape([-1, 1, 1, 1]);
    err = np.square(out.sub(x0).div(w));
  }
  // pixelWeight: B×H×W×1 with mean 1 (train.edgeWeight), so the loss keeps its scale
  return (pixelWeight ? err.mul(pixelWeight) : err).mean();
}

/** Weight of the x̂0 error at time t in the clipped velocity loss: 1/max(t, tMin)². */
function x0ErrorWeight(t: number, tMin: number): number {
  return 1 / Math.max(t, tMin) ** 2;
}

/**
 * Per-sample backward-only scale for the token embeddings (B), so that the encoder learns
 * under the loss weighting of `encoderLossTMin` while the decoder trains under `lossTMin`:
 * s(t) = w(t; encoderLossTMin) / w(t; lossTMin) / Z, w(t; m) = 1/max(t, m)², Z the mean of
 * that ratio over uniform t (so s averages 1 and the commitment term keeps its weight).
 * Why: which tokens carry the global layout is decided by the encoder, and the velocity-like
 * weighting (small tMin, the reference's loss) makes the always-visible low-index tokens hold
 * the detail that nearly clean steps need (spec §2.4); the decoder reconstructs best under the
 * plain x̂0 loss (tMin = 1). The tokens' gradient comes only through the decoder, so scaling it
 * per sample gives the encoder the first weighting and leaves the decoder the second.
 */
export function tokenGradScale(t: Float32Array, lossTMin: number, encoderLossTMin: number): Float32Array {
  const ratio = (x: number) => x0ErrorWeight(x, encoderLossTMin) / x0ErrorWeight(x, lossTMin);
  const n = 4096;
  let z = 0;
  for (let i = 0; i < n; i++) z += ratio((i + 0.5) / n);
  z /= n;
  return t.map((x) => ratio(x) / z);
}

/**
 * SD3's timestep shift (Esser et al. 2024, eq. 23): t' = s·t / (1 + (s − 1)·t). s = 1 is the
 * identity; s > 1 moves training time toward pure noise (t = 1), where x_t says little and the
 * decoder must read the tokens. Monotone, fixes 0 and 1.
 */
export function shiftTimestep(t: number, s: number): number {
  return (s * t) / (1 + (s - 1) * t);
}

/** One step of the sampler grid: t_i, the step size to t_{i+1}, and τ_i for the token mask. */
export type SamplerStep = { t: number; dt: number; tau: number };

/**
 * Uniform grid t_i = 1 − i/steps (spec §7). `float32` reproduces the official sampler
 * (rectified_flow.py make_schedule + p_sample_loop) bit for bit: t_i from torch.linspace(1, 0,
 * steps + 1) in float32 (start + step·i for the first half, end − step·(steps − i) for the
 * second, step = float32(−1/steps)), τ_i = int64(float32(t_i·1000)), Δt_i = float32(t_i − t_{i+1}).
 */
export function eulerGrid(steps: number, grid: 'exact' | 'float32' = 'exact'): SamplerStep[] {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`sampler steps must be a positive integer, got ${steps}`);
  if (grid === 'float32') {
    const t = torchLinspace32(1, 0, steps + 1);
    return Array.from({ length: steps }, (_, i) => ({ t: t[i], dt: Math.fround(t[i] - t[i + 1]), tau: Math.trunc(Math.fround(t[i] * 1000)) }));
  }
  const taus = samplerTaus(steps);
  return taus.map((tau, i) => ({ t: 1 - i / steps, dt: 1 / steps, tau }));
}

/**
 * torch.linspace(start, end, n) for float32 (ATen's RangeFactoriesKernel: symmetric halves,
 * start + step·i for the first, end − step·(n − 1 − i) for the second, step = float32((end −
 * start)/(n − 1)); each value rounded to float32 once, as its fused multiply-add does; checked
 * against torch 2.13 on all 51 points of the 50-step grid).
 */
export function torchLinspace32(start: number, end: number, n: number): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const step = f((f(end) - f(start)) / (n - 1));
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? f(f(start) + step * i) : f(f(end) - step * (n - i - 1));
  return out;
}

/**
 * Per-step visible-token mask (B×K, recomputed at every step, spec §7), AND-ed with an
 * encoder-order prefix limit `keep` (the progressive "super mask").
 */
export function stepMask(schedule: TokenSchedule, B: number, tau: number, keep: number): Float32Array {
  return schedule.mask(new Float32Array(B).fill(tau), keep);
}
