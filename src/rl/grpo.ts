// GRPO on visual tokens (issue #19; the paper §10.3, after DeepSeekMath's GRPO, Shao et al. 2024):
// for a prompt, G token sequences are sampled from the policy π and scored by a program reward
// r_i; each is weighed by its group-normalised advantage and pulled towards the frozen
// supervised model π_ref by a KL penalty:
//
//   A_i  = (r_i − mean r) / (std r + ε)                       within the group of G
//   loss = mean over tokens k of [ −A_i · log π(v_k) + β · KL_k ]
//   KL_k = π_ref(v_k)/π(v_k) − log(π_ref(v_k)/π(v_k)) − 1     (Schulman's k3 estimator: ≥ 0, unbiased)
//
// On-policy with one update per batch, so there is no importance ratio: the gradient of
// A_i · log π(v_k) is the REINFORCE gradient with a group baseline. The probabilities are those
// of the sampling distribution: a softmax over the visual words only (sampling never picks a text
// word), so the loss masks the text words out of the softmax too.
import { nn, numpy as np } from '@jax-js/jax';
import { tokenStats } from '../ar/ar-model.ts';
import { oneHot } from '../nn/layers.ts';

/** A group's advantages: (r − mean) / (std + ε), std with Bessel's correction (as TRL's GRPO); 0 for a group of equal rewards. */
export function groupAdvantages(rewards: ArrayLike<number>, G: number, eps = 1e-4): Float32Array {
  if (rewards.length % G) throw new Error(`internal: ${rewards.length} rewards do not split into groups of ${G}`);
  const out = new Float32Array(rewards.length);
  for (let g = 0; g < rewards.length; g += G) {
    let mean = 0;
    for (let i = 0; i < G; i++) mean += rewards[g + i];
    mean /= G;
    let ss = 0;
    for (let i = 0; i < G; i++) ss += (rewards[g + i] - mean) ** 2;
    const std = G > 1 ? Math.sqrt(ss / (G - 1)) : 0;
    for (let i = 0; i < G; i++) out[g + i] = (rewards[g + i] - mean) / (std + eps);
  }
  return out;
}

/** The k3 estimate of KL(π‖π_ref) at one sampled token: ρ − log ρ − 1 with ρ = π_ref/π (from log-probs). */
export function klK3(logpRef: number, logp: number): number {
  const d = logpRef - logp;
  return Math.exp(d) - d - 1;
}

/** Does a group give no learning signal (all its rewards equal)? */
export function zeroVariance(rewards: ArrayLike<number>, from: number, G: number): boolean {
  for (let i = 1; i < G; i++) if (rewards[from + i] !== rewards[from]) return false;
  return true;
}

/**
 * The GRPO loss of a batch (jax; differentiable in `logits`):
 *   logits B×T×V of the policy, targets B×T (the next tokens), mask B×T (1 on the sampled visual
 *   tokens), advantages B, logpRef B×T (log π_ref of the targets, 0 off the mask), visualBias V
 *   (0 on visual words, a large negative number on the rest), beta the KL weight.
 * Returns the scalar loss; every input is consumed.
 */
export function grpoLoss(logits: np.Array, targets: np.Array, mask: np.Array, advantages: np.Array, logpRef: np.Array, visualBias: np.Array, beta: np.Array): np.Array {
  const V = logits.shape[2];
  const logpAll = nn.logSoftmax(logits.add(visualBias), -1);
  // off the mask the target may be a text word (≈ −1e4 here); zero it before it meets exp()
  const logp = logpAll.mul(oneHot(targets, V)).sum(-1).mul(mask.ref);
  const [B] = advantages.shape;
  const pg = logp.ref.mul(advantages.reshape([B, 1])).mul(-1);
  const d = logpRef.sub(logp).mul(mask.ref);
  const kl = np.exp(d.ref).sub(d).sub(1);
  const perToken = pg.add(kl.mul(beta)).mul(mask.ref);
  return perToken.sum().div(np.maximum(mask.sum(), 1));
}

/** 0 on the visual words [visualBase, visualEnd), −1e4 on the others: added to logits, a softmax over visual words only. */
export function visualOnlyBias(V: number, visualBase: number, visualEnd = V): Float32Array {
  const b = new Float32Array(V);
  b.fill(-1e4, 0, visualBase);
  // ids past the visual words: the table's padding (ArConfig.vocabMultiple)
  b.fill(-1e4, visualEnd, V);
  return b;
}

/** log π of each target under a softmax over the visual words only, on the host (the frozen reference). */
export function visualLogProbs(logits: Float32Array, targets: Int32Array, mask: Float32Array, V: number, visualBase: number, visualEnd = V): Float32Array {
  const out = new Float32Array(targets.length);
  for (let i = 0; i < targets.length; i++) if (mask[i]) out[i] = tokenStats(logits.subarray(i * V + visualBase, i * V + visualEnd), 1, targets[i] - visualBase).logp;
  return out;
}
