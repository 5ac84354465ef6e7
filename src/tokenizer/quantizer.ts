// Cosine VQ with an EMA codebook (spec §4), one self-contained module with its own
// state. The differentiable part (normalise, nearest code, straight-through,
// commitment and entropy losses) runs in-graph; the codebook statistics (EMA with
// Laplace smoothing, k-means init, dead-code reset with "smart" re-activation) run on
// the host over the small B·K×d batch of normalised vectors, as the reference does
// inside its forward pass.
import { numpy as np, nn, lax } from '@jax-js/jax';
import { scaleGradient } from '../nn/layers.ts';
import { Rng } from '../util/rng.ts';

export type QuantizerConfig = {
  codebookSize: number;
  dim: number;
  decay: number;
  eps: number;
  kmeansIters: number;
  /** Relative to the expected count per code per step B·K/C (spec §4.4). */
  deadCodeThreshold: number;
  resetClusterSize: number;
  commitWeight: number;
  diversityWeight: number;
  /** The entropy term is switched off once usage perplexity exceeds this fraction of C (spec §4.5). */
  diversityGate: number;
  /** Temperature of the entropy softmax over cosine scores (reference: 10). */
  diversityTemperature: number;
  /** Weight positions by collapsed usage when re-activating dead codes (spec §4.4). */
  smartReactivation: boolean;
  /**
   * Bypass quantization for the first N training steps (the reference's `continuous`
   * option, spec §4.1): the decoder learns from continuous vectors while the encoder
   * becomes image-dependent, then k-means initialises the codebook on those vectors.
   * With adaLN-Zero the token stream starts as the bare learned queries, identical for
   * every image, so a codebook fitted at step 0 sees no image information.
   */
  continuousSteps: number;
};

// ---------------------------------------------------------------- in-graph part ----

export type QuantizeOut = {
  /** Straight-through quantized vectors: forward value = code, gradient to z. B×K×d */
  zq: np.Array;
  /** L2-normalised encoder outputs. B×K×d */
  z: np.Array;
  ids: np.Array;
  commit: np.Array;
  /** Entropy of the batch-averaged code distribution (to be maximised). */
  entropy: np.Array;
};

export function l2normalize(x: np.Array, eps = 1e-12): np.Array {
  const n = np.sqrt(np.square(x.ref).sum(-1, { keepdims: true })).add(eps);
  return x.div(n);
}

/**
 * Nearest unit code by cosine (spec §4.2). `codebook` (C×d, unit rows) is not
 * differentiated. `gradWeight` (K, or null): per-token backward-only gradient scale
 * (spec §4.6), forward identity.
 */
export function quantize(
  zRaw: np.Array,
  codebook: np.Array,
  cfg: Pick<QuantizerConfig, 'diversityTemperature'>,
  gradWeight: np.Array | null,
  withEntropy: boolean,
  /** Scalar 1 = quantize, 0 = pass z through (continuous warm-up); null = 1. */
  quantizeOn: np.Array | null = null,
): QuantizeOut {
  const [B, K, d] = zRaw.shape;
  const C = codebook.shape[0];
  const cb = lax.stopGradient(codebook);
  const z = l2normalize(zRaw);
  const scores = np.matmul(z.ref, cb.ref.transpose()); // B×K×C
  const ids = np.argmax(lax.stopGradient(scores.ref), -1);
  const codes = np.take(cb, ids.ref.reshape([B * K]), 0).reshape([B, K, d]);
  const delta = quantizeOn ? codes.ref.sub(z.ref).mul(quantizeOn.ref) : codes.ref.sub(z.ref);
  let zq = z.ref.add(lax.stopGradient(delta));
  if (gradWeight) zq = scaleGradient(zq, gradWeight.reshape([1, K, 1]));
  let commit = np.square(lax.stopGradient(codes).sub(z.ref)).mean();
  if (quantizeOn) commit = commit.mul(quantizeOn);
  let entropy: np.Array;
  if (withEntropy) {
    const p = nn.softmax(scores.mul(cfg.diversityTemperature), -1).reshape([B * K, C]).mean(0);
    entropy = p.ref.mul(np.log(p.add(1e-10))).sum().neg();
  } else {
    scores.dispose();
    entropy = np.zeros([]);
  }
  return { zq, z, ids, commit, entropy };
}

// ------------------------------------------------------------------ host part ------

export type QuantizerStats = {
  /** Codes used by this batch / C. */
  usage: number;
  /** exp(entropy) of this batch's code histogram. */
  perplexity: number;
  /** exp(entropy) of the never-reset EMA counts (gates the entropy loss). */
  emaPerplexity: number;
  deadReset: number;
};

export class CodebookState {
  readonly C: number;
  readonly d: number;
  readonly K: number;
  /** Unit-norm code vectors, C×d. */
  codebook: Float32Array;
  clusterSize: Float32Array;
  embedSum: Float32Array;
  clusterSizeNoReset: Float32Array;
  /** Per-position usage EMA P (K×C), for smart re-activation. */
  positionUsage: Float32Array;
  initialized = false;
  /** Absolute thresholds, fixed at the first training batch (spec §4.4). */
  threshold = -1;
  resetSize = -1;
  usageUpdates = 0;

  constructor(readonly cfg: QuantizerConfig, K: number, rng: Rng) {
    this.C = cfg.codebookSize;
    this.d = cfg.dim;
    this.K = K;
    this.codebook = new Float32Array(this.C * this.d);
    for (let i = 0; i < this.codebook.length; i++) this.codebook[i] = rng.normal();
    normalizeRows(this.codebook, this.d);
    this.clusterSize = new Float32Array(this.C);
    this.embedSum = new Float32Array(this.C * this.d);
    this.clusterSizeNoReset = new Float32Array(this.C);
    this.positionUsage = new Float32Array(K * this.C).fill(1 / this.C);
  }

  /** Gate of the entropy loss: 1 while usage perplexity < diversityGate·C. */
  diversityGate(): number {
    if (!this.initialized) return 1;
    return perplexityOf(this.clusterSizeNoReset) < this.cfg.diversityGate * this.C ? 1 : 0;
  }

  /** Spherical k-means on the first batch (spec §4.3): 10 iterations, empty clusters keep their centre. */
  kmeansInit(z: Float32Array, rng: Rng): void {
    const { C, d } = this;
    const N = z.length / d;
    const means = new Float32Array(C * d);
    for (let c = 0; c < C; c++) {
      const n = rng.int(0, N); // with replacement when N < C
      means.set(z.subarray(n * d, n * d + d), c * d);
    }
    const counts = new Float32Array(C);
    const assign = new Int32Array(N);
    for (let it = 0; it < this.cfg.kmeansIters; it++) {
      nearest(z, means, d, assign);
      const sums = new Float32Array(C * d);
      counts.fill(0);
      for (let n = 0; n < N; n++) {
        const c = assign[n];
        counts[c]++;
        for (let j = 0; j < d; j++) sums[c * d + j] += z[n * d + j];
      }
      for (let c = 0; c < C; c++) {
        if (counts[c] === 0) continue;
        let norm = 0;
        for (let j = 0; j < d; j++) norm += sums[c * d + j] ** 2;
        norm = Math.sqrt(norm) || 1;
        for (let j = 0; j < d; j++) means[c * d + j] = sums[c * d + j] / norm;
      }
    }
    this.codebook.set(means);
    for (let c = 0; c < C; c++) {
      this.clusterSize[c] = counts[c];
      this.clusterSizeNoReset[c] = counts[c];
      for (let j = 0; j < d; j++) this.embedSum[c * d + j] = means[c * d + j] * counts[c];
    }
    this.initialized = true;
  }

  /**
   * Continue training a trained codebook (a fine-tune from a model folder, which stores the code
   * vectors but not their EMA statistics): every code starts at the usage a uniform codebook
   * would have at batch B, so the EMA (spec §4.4) and the dead-code rule go on from there: a
   * code no one picks falls below the threshold after about ln(threshold)/ln(decay) steps, as
   * in a run from scratch, instead of being reset at the first batch that misses it.
   */
  warmStart(B: number): void {
    const expected = (B * this.K) / this.C;
    this.clusterSize.fill(expected);
    this.clusterSizeNoReset.fill(expected);
    for (let i = 0; i < this.embedSum.length; i++) this.embedSum[i] = this.codebook[i] * expected;
    this.initialized = true;
  }

  /**
   * One training-step update from the batch's normalised vectors z (B·K×d, row b·K + k)
   * and their ids: EMA with Laplace smoothing, re-normalisation, dead-code reset.
   */
  update(z: Float32Array, ids: Int32Array, B: number, rng: Rng): QuantizerStats {
    const { C, d, K } = this;
    const g = this.cfg.decay;
    const eps = this.cfg.eps;
    const N = ids.length;
    if (this.threshold < 0) {
      const expected = (B * K) / C;
      this.threshold = this.cfg.deadCodeThreshold * expected;
      this.resetSize = this.cfg.resetClusterSize * expected;
    }
    const counts = new Float32Array(C);
    const sums = new Float32Array(C * d);
    for (let n = 0; n < N; n++) {
      const c = ids[n];
      counts[c]++;
      for (let j = 0; j < d; j++) sums[c * d + j] += z[n * d + j];
    }
    let total = 0;
    for (let c = 0; c < C; c++) {
      this.clusterSize[c] = g * this.clusterSize[c] + (1 - g) * counts[c];
      this.clusterSizeNoReset[c] = g * this.clusterSizeNoReset[c] + (1 - g) * counts[c];
      total += this.clusterSize[c];
      for (let j = 0; j < d; j++) this.embedSum[c * d + j] = g * this.embedSum[c * d + j] + (1 - g) * sums[c * d + j];
    }
    for (let c = 0; c < C; c++) {
      const smoothed = ((this.clusterSize[c] + eps) / (total + C * eps)) * total;
      for (let j = 0; j < d; j++) this.codebook[c * d + j] = this.embedSum[c * d + j] / smoothed;
    }
    normalizeRows(this.codebook, d);
    this.updatePositionUsage(ids, B);
    const deadReset = this.resetDeadCodes(z, B, rng);
    let used = 0;
    for (let c = 0; c < C; c++) if (counts[c] > 0) used++;
    return { usage: used / C, perplexity: perplexityOf(counts), emaPerplexity: perplexityOf(this.clusterSizeNoReset), deadReset };
  }

  private updatePositionUsage(ids: Int32Array, B: number): void {
    const { C, K } = this;
    const g = this.usageUpdates === 0 ? 0.3 : this.cfg.decay;
    this.usageUpdates++;
    for (let i = 0; i < this.positionUsage.length; i++) this.positionUsage[i] *= g;
    const inc = (1 - g) / B;
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) this.positionUsage[k * C + ids[b * K + k]] += inc;
  }

  /** Per-position sampling weights w_k = softmax(10·(1/π_k)/max_j(1/π_j)) (spec §4.4). */
  positionWeights(): Float64Array {
    const { C, K } = this;
    const inv = new Float64Array(K);
    for (let k = 0; k < K; k++) inv[k] = 1 / perplexityOf(this.positionUsage.subarray(k * C, (k + 1) * C));
    const m = Math.max(...inv);
    const w = new Float64Array(K);
    let s = 0;
    for (let k = 0; k < K; k++) s += w[k] = Math.exp(10 * (inv[k] / m) - 10);
    for (let k = 0; k < K; k++) w[k] /= s;
    return w;
  }

  private resetDeadCodes(z: Float32Array, B: number, rng: Rng): number {
    const { C, d, K } = this;
    const dead: number[] = [];
    for (let c = 0; c < C; c++) if (this.clusterSize[c] < this.threshold) dead.push(c);
    if (!dead.length) return 0;
    // cumulative distribution over batch vectors (b, k): w_k / B, or uniform
    const w = this.cfg.smartReactivation ? this.positionWeights() : new Float64Array(K).fill(1 / K);
    const cdf = new Float64Array(K);
    let acc = 0;
    for (let k = 0; k < K; k++) cdf[k] = acc += w[k];
    for (const c of dead) {
      const u = rng.uniform() * acc;
      let k = 0;
      while (k < K - 1 && cdf[k] < u) k++;
      const n = rng.int(0, B) * K + k;
      for (let j = 0; j < d; j++) {
        const v = z[n * d + j];
        this.codebook[c * d + j] = v;
        this.embedSum[c * d + j] = v * this.resetSize;
      }
      this.clusterSize[c] = this.resetSize;
    }
    return dead.length;
  }
}

export function normalizeRows(x: Float32Array, d: number): void {
  for (let r = 0; r < x.length / d; r++) {
    let n = 0;
    for (let j = 0; j < d; j++) n += x[r * d + j] ** 2;
    n = Math.sqrt(n) || 1;
    for (let j = 0; j < d; j++) x[r * d + j] /= n;
  }
}

export function perplexityOf(counts: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < counts.length; i++) s += counts[i];
  if (s <= 0) return 1;
  let h = 0;
  for (let i = 0; i < counts.length; i++) {
    const p = counts[i] / s;
    if (p > 0) h -= p * Math.log(p);
  }
  return Math.exp(h);
}

function nearest(z: Float32Array, codes: Float32Array, d: number, out: Int32Array): void {
  const N = z.length / d;
  const C = codes.length / d;
  for (let n = 0; n < N; n++) {
    let best = -Infinity;
    let bi = 0;
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += z[n * d + j] * codes[c * d + j];
      if (s > best) {
        best = s;
        bi = c;
      }
    }
    out[n] = bi;
  }
}
