// The DiTi token schedule (spec §2): at noise level τ = 1000·t the decoder sees the
// encoder-order prefix ids[0..k(τ)] (k + 1 tokens). More noise, more tokens.
// Code time convention: t = 1 is pure noise (spec §0, §12.1).

export type ScheduleConfig =
  | { type: 'diti'; stages: number[]; perStage: number[] }
  | { type: 'uniform' }
  /** No schedule: every token at every noise level (the spatial-token control of issue #19). */
  | { type: 'all' };

export class TokenSchedule {
  readonly K: number;
  /** Stage upper bounds s_1..s_S in τ units (s_0 = 0 implicit, s_S = 1000). */
  readonly stages: number[];
  /** Tokens added per stage n_1..n_S (sum = K). */
  readonly perStage: number[];
  /** Every token visible at every τ (schedule type 'all'). */
  readonly all: boolean;

  constructor(K: number, cfg: ScheduleConfig) {
    if (!Number.isInteger(K) || K < 1) throw new Error(`schedule: K must be a positive integer, got ${K}`);
    this.K = K;
    this.all = cfg.type === 'all';
    if (cfg.type === 'all') {
      this.stages = [1000];
      this.perStage = [K];
    } else if (cfg.type === 'uniform') {
      // k = floor(K·τ/1000): a single stage (spec §2.5).
      this.stages = [1000];
      this.perStage = [K];
    } else {
      const { stages, perStage } = cfg;
      if (stages.length !== perStage.length || stages.length === 0) {
        throw new Error('schedule: stages and perStage must have the same, non-zero length');
      }
      if (stages[stages.length - 1] !== 1000) throw new Error('schedule: the last stage must end at τ = 1000');
      for (let i = 0; i < stages.length; i++) {
        if (!(stages[i] > (i ? stages[i - 1] : 0))) throw new Error('schedule: stages must increase from above 0');
        if (!Number.isInteger(perStage[i]) || perStage[i] < 0) throw new Error('schedule: perStage must be non-negative integers');
      }
      const sum = perStage.reduce((a, b) => a + b, 0);
      if (sum !== K) throw new Error(`schedule: perStage sums to ${sum}, expected K = ${K}`);
      this.stages = [...stages];
      this.perStage = [...perStage];
    }
  }

  /**
   * Index of the last visible token at τ ∈ [0, 1000] (spec §2.1, `DiTi_cont.to_indices`):
   * piecewise linear in τ, floored, clamped to K − 1.
   */
  lastVisible(tau: number): number {
    if (this.all) return this.K - 1;
    let lo = 0;
    let cum = 0;
    for (let i = 0; i < this.stages.length; i++) {
      const hi = this.stages[i];
      if (tau < hi || i === this.stages.length - 1) {
        const k = Math.floor(cum + (this.perStage[i] * (Math.max(tau, lo) - lo)) / (hi - lo));
        return Math.max(0, Math.min(k, this.K - 1));
      }
      lo = hi;
      cum += this.perStage[i];
    }
    return this.K - 1;
  }

  /** Number of visible tokens at τ: k(τ) + 1 (the mask is inclusive, spec §12.3). */
  visibleCount(tau: number): number {
    return this.lastVisible(tau) + 1;
  }

  /** First τ at which token j is visible (spec §2.1). */
  firstVisibleTau(j: number): number {
    if (this.all) return 0;
    let lo = 0;
    let cum = 0;
    for (let i = 0; i < this.stages.length; i++) {
      const n = this.perStage[i];
      if (j < cum + n) return lo + ((j - cum) * (this.stages[i] - lo)) / n;
      lo = this.stages[i];
      cum += n;
    }
    return 1000;
  }

  /** Fraction of uniformly drawn training t in which token j is visible: 1 − τ_j/1000. */
  visibleFraction(j: number): number {
    return 1 - this.firstVisibleTau(j) / 1000;
  }

  /**
   * Backward-only gradient scale per token, min(max, P_j^−power) with P_j = visibleFraction(j)
   * (spec §4.6): rarely visible (coarse) tokens get few diffusion gradients. power 1 is the
   * quantizer's 1/P_k; the reference compounds it with the decoder input's K/(K − k), an
   * effective power of about 2.4–3.7 on the spec's schedule and 2.3–2.7 on `tiny`'s (unclipped).
   */
  visibilityGradScale(max: number, power: number): Float32Array {
    return Float32Array.from({ length: this.K }, (_, j) => Math.min(max, Math.max(this.visibleFraction(j), 1e-6) ** -power));
  }

  /**
   * Per-sample boolean key mask, flattened B×K (1 = visible): `j ≤ k(1000·t_b)`,
   * AND-ed with an optional encoder-order prefix limit `keep` (spec §2.4, ReconInsuffEval).
   */
  mask(taus: ArrayLike<number>, keep = this.K): Float32Array {
    const B = taus.length;
    const out = new Float32Array(B * this.K);
    for (let b = 0; b < B; b++) {
      const n = Math.min(this.visibleCount(taus[b]), keep);
      out.fill(1, b * this.K, b * this.K + n);
    }
    return out;
  }
}

/**
 * Nested dropout from the fine end (not in the reference; `train.fineTokenDrop`): with
 * probability p per sample, also hide a random number (1 … n − 1, uniform) of the n visible
 * tokens, lowest index first, so the sample sees ids[j0..k]. The highest-index (coarse)
 * tokens must then reconstruct without the fine ones, which pushes global content towards
 * them: the paper's coarse/fine split (spec §2.4) that the plain x̂0 loss otherwise leaves to
 * chance. Edits `mask` (B×K, from `TokenSchedule.mask`) in place; p = 0 draws nothing.
 */
export function dropFinestTokens(mask: Float32Array, K: number, p: number, uniform: () => number): void {
  if (!(p > 0)) return;
  for (let b = 0; b < mask.length / K; b++) {
    const row = mask.subarray(b * K, (b + 1) * K);
    const n = row.reduce((a, v) => a + v, 0);
    if (uniform() >= p || n < 2) continue;
    row.fill(0, 0, 1 + Math.floor(uniform() * (n - 1)));
  }
}

/**
 * The fine-end drop probability at `step` of a `total`-step run: `start` throughout, or, with
 * an `end`, linear from `start` at step 0 to `end` at the last step (a strong early drop sets
 * the coarse/fine split, a weaker late one lets the fine tokens add detail).
 */
export function fineTokenDropAt(start: number, end: number | undefined, step: number, total: number): number {
  if (end === undefined || !(total > 1)) return start;
  const f = Math.min(1, Math.max(0, step / (total - 1)));
  return start + (end - start) * f;
}

/**
 * The sampler's τ grid (spec §2.2, §7): t_i = 1 − i/steps, i = 0..steps−1, as exact
 * integers τ_i = floor(1000·t_i) (the reference truncates a float32 product; we take
 * the exact value, which can differ by one token, spec §12.6).
 */
export function samplerTaus(steps: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < steps; i++) out.push(Math.floor((1000 * (steps - i)) / steps + 1e-9));
  return out;
}
