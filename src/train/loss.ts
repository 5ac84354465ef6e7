// The Selftok training objective (spec §6.1), one jitted function of the parameters:
//   t ~ U(0,1) per sample, m = (j ≤ k(1000·t)) (computed on the host from the same t),
//   x_t = t·ε + (1 − t)·x0,  L = mean (v̂ − (ε − x0))² + w_commit·L_commit − w_div·g·H,
// with 10% condition drop. There is no separate self-consistency term.
import { lax, numpy as np, random, tree } from '@jax-js/jax';
import type { SelftokConfig } from '../tokenizer/config.ts';
import { decoderNet, embedNoisy } from '../tokenizer/decoder.ts';
import { encodeFeatures, postNorm } from '../tokenizer/encoder.ts';
import { mlp, scaleGradient, type Mlp } from '../nn/layers.ts';
import { flowLoss, noisy } from '../tokenizer/flow.ts';
import type { ModelParams } from '../tokenizer/model.ts';
import { quantize } from '../tokenizer/quantizer.ts';

export type TrainBatch = {
  /** Clean images in the data space, B×H×W×C. */
  x0: np.Array;
  t: np.Array;
  mask: np.Array;
  drop: np.Array;
  /** PRNG key for ε. */
  key: np.Array;
  /** Unit codebook C×d (not trained by gradients). */
  codebook: np.Array;
  /** Per-token gradient scale (K). */
  gradWeight: np.Array;
  /** Per-sample gradient scale of the token embeddings (B): the encoder's loss weighting (flow.ts, tokenGradScale). */
  sampleGradWeight: np.Array;
  /** w_div · gate (scalar). */
  divWeight: np.Array;
  /** 1 = quantize, 0 = continuous warm-up (scalar). */
  quantizeOn: np.Array;
  /** Per-pixel loss weight B×H×W×1, mean 1 (train.edgeWeight; absent = uniform). */
  pixelWeight?: np.Array;
  /** The scenes' maps B×(channels·size²) (train.sceneProbe). */
  sceneMaps?: np.Array;
};

export type LossAux = { fm: np.Array; commit: np.Array; entropy: np.Array; z: np.Array; ids: np.Array; sceneProbe?: np.Array };

export function selftokLoss(cfg: SelftokConfig, params: { enc: ModelParams['enc']; dec: ModelParams['dec'] }, b: TrainBatch): [np.Array, LossAux] {
  const q = quantize(encodeFeatures(params.enc, cfg, b.x0.ref), b.codebook, cfg.quantizer, b.gradWeight, true, b.quantizeOn);
  const tokens = postNorm(params.enc, q.zq);
  const probe = params.enc.probe && cfg.train.probe ? layoutProbeLoss(params.enc.probe, cfg, tokens.ref, b.x0.ref) : null;
  const sceneProbe = params.enc.sceneProbe && b.sceneMaps ? probeMse(params.enc.sceneProbe, tokens.ref, b.sceneMaps) : null;
  const h = scaleGradient(tokens, b.sampleGradWeight.reshape([-1, 1, 1]));
  const eps = random.normal(b.key, b.x0.shape);
  const xt = noisy(b.x0.ref, eps.ref, b.t.ref);
  const out = decoderNet(params.dec, cfg, {
    imageTokens: embedNoisy(params.dec, cfg, xt.ref),
    t: b.t.ref,
    tokens: h,
    mask: b.mask,
    drop: b.drop,
    contextSeesImage: true,
  });
  tree.dispose(params);
  const fm = flowLoss(out, b.x0, eps, xt, b.t, cfg.decoder.prediction, cfg.train.lossTMin, b.pixelWeight);
  let loss = fm.ref.add(q.commit.ref.mul(cfg.quantizer.commitWeight)).sub(q.entropy.ref.mul(b.divWeight));
  if (probe) loss = loss.add(probe.mul(cfg.train.probe!.weight));
  if (sceneProbe) loss = loss.add(sceneProbe.ref.mul(cfg.train.sceneProbe!.weight));
  return [loss, { fm, commit: q.commit, entropy: q.entropy, z: lax.stopGradient(q.z), ids: q.ids, ...(sceneProbe ? { sceneProbe: lax.stopGradient(sceneProbe) } : {}) }];
}

/**
 * The layout probe's loss (config train.probe): MLP(tokens flattened) vs the image average-pooled
 * to s × s, mean squared error. The tokens are the quantized ones (straight-through), so the
 * gradient reaches the encoder as the decoder's does.
 */
function layoutProbeLoss(probe: Mlp, cfg: SelftokConfig, tokens: np.Array, x0: np.Array): np.Array {
  const [B, H, W, C] = x0.shape;
  const s = cfg.train.probe!.size;
  const target = x0.reshape([B, s, H / s, s, W / s, C]).mean([2, 4]).reshape([B, s * s * C]);
  return probeMse(probe, tokens, target);
}

/**
 * A probe's loss: MLP(the K quantized tokens flattened) against a target per image, mean squared
 * error. The layout probe's target is the pooled image; the scene probe's (train.sceneProbe) the
 * scene's shape and colour maps, which says which shape is where, not just which colour.
 */
function probeMse(probe: Mlp, tokens: np.Array, target: np.Array): np.Array {
  const pred = mlp(probe, tokens.reshape([tokens.shape[0], -1]));
  return np.square(pred.sub(target)).mean();
}

/**
 * The edge weighting of train.edgeWeight α: w = 1 + α·e per pixel, e = min(1, the largest L1
 * colour step (over channels, images in [−1, 1]) between the pixel and a 4-neighbour), scaled to
 * mean 1 over the batch. A step of 1 (a quarter of the full range summed over channels) already
 * counts as a full edge; smooth gradients (steps ~0.01) count as none. HWC pixels, B images.
 */
export function edgeWeights(pixels: Float32Array, B: number, H: number, W: number, C: number, alpha: number): Float32Array {
  const w = new Float32Array(B * H * W);
  const step = (a: number, b: number): number => {
    let d = 0;
    for (let c = 0; c < C; c++) d += Math.abs(pixels[a * C + c] - pixels[b * C + c]);
    return d;
  };
  let sum = 0;
  for (let b = 0; b < B; b++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = (b * H + y) * W + x;
        let e = 0;
        if (x > 0) e = Math.max(e, step(i, i - 1));
        if (x < W - 1) e = Math.max(e, step(i, i + 1));
        if (y > 0) e = Math.max(e, step(i, i - W));
        if (y < H - 1) e = Math.max(e, step(i, i + W));
        w[i] = 1 + alpha * Math.min(1, e);
        sum += w[i];
      }
    }
  }
  const mean = sum / w.length;
  for (let i = 0; i < w.length; i++) w[i] /= mean;
  return w;
}
