// The renderer objective (spec §8.2): encoder and codebook frozen, the one-step renderer
// R is trained with  L = MSE(x0, R(V)) + λ_p·P(x0, R(V))  (+ λ_g·GAN in the paper; not
// implemented here: λ_g = 0).
//
// P stands in for LPIPS, whose AlexNet/VGG weights cannot be had offline (engine.md). Two
// choices, both labelled as substitutes:
//   mobilenet  (default) an LPIPS-like distance in the features of a pretrained MobileNetV2
//              (ImageNet backbone, from the nsfwjs package; src/nn/mobilenet-v2.ts), without
//              LPIPS's learned per-channel weights: a learned feature space, uncalibrated.
//   gradients  an L1 distance between image-gradient pyramids (horizontal and vertical
//              differences at scales 1, 1/2, 1/4): penalises blurred edges like LPIPS does,
//              but it is a hand-made feature, not a learned one.
import { numpy as np, tree } from '@jax-js/jax';
import { mobilenetDistance, PERCEPTUAL_TAPS, type MobileNetV2, type MobileNetWeights } from '../nn/mobilenet-v2.ts';
import type { SelftokConfig } from '../tokenizer/config.ts';
import { renderNet, type RendererParams } from '../tokenizer/renderer.ts';

/** 2×2 average pooling of B×H×W×C. */
function pool2(x: np.Array): np.Array {
  const [B, H, W, C] = x.shape;
  return x.reshape([B, H / 2, 2, W / 2, 2, C]).mean([2, 4]);
}

function gradients(x: np.Array): [np.Array, np.Array] {
  const [, H, W] = x.shape;
  const dx = x.ref.slice([], [], [1, W], []).sub(x.ref.slice([], [], [0, W - 1], []));
  const dy = x.ref.slice([], [1, H], [], []).sub(x.slice([], [0, H - 1], [], []));
  return [dx, dy];
}

/** L1 between gradient pyramids (the perceptual substitute). */
export function gradientPyramidLoss(a: np.Array, b: np.Array, levels = 3): np.Array {
  let total = np.zeros([]);
  for (let l = 0; l < levels; l++) {
    const [ax, ay] = gradients(a.ref);
    const [bx, by] = gradients(b.ref);
    total = total.add(np.abs(ax.sub(bx)).mean()).add(np.abs(ay.sub(by)).mean());
    if (l < levels - 1 && a.shape[1] % 2 === 0 && a.shape[1] >= 8) {
      a = pool2(a);
      b = pool2(b);
    } else {
      break;
    }
  }
  a.dispose();
  b.dispose();
  return total;
}

export const PERCEPTUAL_KINDS = ['mobilenet', 'gradients', 'none'] as const;
export type PerceptualKind = (typeof PERCEPTUAL_KINDS)[number];

/** The perceptual term: the MobileNetV2 feature distance (its net), the gradient pyramid, or none (MSE alone). */
export type Perceptual = { kind: 'mobilenet'; net: MobileNetV2 } | { kind: 'gradients' } | { kind: 'none' };

/** `features`: the MobileNetV2 weights when the perceptual term is `mobilenet` (not trained). */
export type RendererBatch = { tokens: np.Array; x0: np.Array; lambdaP: np.Array; features?: MobileNetWeights };
export type RendererAux = { mse: np.Array; perceptual: np.Array };

export function rendererLoss(cfg: SelftokConfig, p: { ren: RendererParams }, b: RendererBatch, perceptual: Perceptual): [np.Array, RendererAux] {
  const out = renderNet(p.ren, cfg, b.tokens);
  tree.dispose(p);
  const mse = np.square(out.ref.sub(b.x0.ref)).mean();
  let pl: np.Array;
  if (perceptual.kind === 'mobilenet') {
    // mean over the taps, so that λ_p weighs one layer's normalised feature distance
    pl = mobilenetDistance(perceptual.net, b.features!, out, b.x0).mul(1 / PERCEPTUAL_TAPS.length);
    tree.dispose(b.features!);
  } else if (perceptual.kind === 'gradients') {
    pl = gradientPyramidLoss(out, b.x0);
  } else {
    out.dispose();
    b.x0.dispose();
    pl = np.zeros([]);
  }
  const loss = mse.ref.add(pl.ref.mul(b.lambdaP));
  return [loss, { mse, perceptual: pl }];
}

/** λ_p schedule (spec §8.2: 0.1 for the first 30k iterations, then 0.5), scaled to the run: 0.1 for the first 30%. */
export function perceptualWeight(step: number, total: number): number {
  return step < 0.3 * total ? 0.1 : 0.5;
}
