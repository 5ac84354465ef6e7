// The dual-stream Q-Former encoder `Enc-Qformer-Uni` (spec §3).
//  - image stream: patch embed + fixed 2D sin-cos, pre-LN self-attention + MLP blocks;
//    it never attends the queries ("Uni").
//  - token stream: K learned queries; each attends [image patches; all queries] (no
//    mask, not causal), with token-aware AdaLN from the token index (position 1000 + 8k),
//    adaLN-Zero so the stream starts as identity.
//  - head: Linear → L2-normalise → cosine VQ (quantizer.ts) → LayerNorm with affine.
// The encoder never sees t or the mask: tokens are a function of the clean image only.
import { numpy as np, nn } from '@jax-js/jax';
import { SCENE_MAP_CHANNELS } from '../ar/scenes.ts';
import {
  attention,
  chunk,
  initLayerNorm,
  initLinear,
  initMlp,
  initTimeEmbedder,
  layerNorm,
  layerNormAffine,
  linear,
  mlp,
  modulate,
  sincos2d,
  timeEmbedder,
  timestepFeatures,
  type LayerNormP,
  type Linear,
  type Mlp,
  type TimeEmbedder,
} from '../nn/layers.ts';
import { Init } from '../nn/params.ts';
import type { SelftokConfig } from './config.ts';
import { patchify } from './patch.ts';
import { spatialMasks } from './spatial.ts';

type ImageBlock = { qkv: Linear; proj: Linear; mlp: Mlp };
type TokenBlock = { pos: TimeEmbedder; ada: Linear; imgKv: Linear; qkv: Linear; proj: Linear; mlp: Mlp };
export type EncoderParams = {
  patch: Linear;
  /** Image-stream position table [patches, imageWidth] (encoder.posEmbed 'table'). */
  pos?: np.Array;
  queries: np.Array;
  img: ImageBlock[];
  tok: TokenBlock[];
  projIn: Linear;
  postLn: LayerNormP;
  /** Training-only layout probe (config train.probe; loss.ts). */
  probe?: Mlp;
  /** Training-only scene probe (config train.sceneProbe; loss.ts). */
  sceneProbe?: Mlp;
};

/** The encoder's training-only probes: trained with it, never used to tokenize, not exported. */
export const TRAINING_PROBES = ['probe', 'sceneProbe'] as const;

/** Whether an encoder parameter name (relative to the encoder: `probe.fc1.w`) is a training-only probe's. */
export function isTrainingProbe(name: string): boolean {
  return TRAINING_PROBES.some((p) => name.startsWith(`${p}.`));
}

/** The same for a model-level tensor name (`enc.probe.fc1.w`). */
export const isEncoderProbeTensor = (name: string): boolean => name.startsWith('enc.') && isTrainingProbe(name.slice(4));

/** Token position fed to the token-aware AdaLN (DiTi_cont.get_position, spec §3.4). */
export function tokenPositions(K: number): Float32Array {
  return Float32Array.from({ length: K }, (_, k) => 1000 + 8 * k);
}

export function initEncoder(cfg: SelftokConfig, init: Init): EncoderParams {
  const { imageWidth: Di, tokenWidth: Dq, depth, mlpRatio } = cfg.encoder;
  const { patch: p, channels: C } = cfg.image;
  const img: ImageBlock[] = [];
  const tok: TokenBlock[] = [];
  for (let l = 0; l < depth; l++) {
    // the last block's image update would never be read: it has no image half
    if (l < depth - 1) img.push({ qkv: initLinear(init, Di, 3 * Di), proj: initLinear(init, Di, Di), mlp: initMlp(init, Di, mlpRatio * Di) });
    tok.push({
      pos: initTimeEmbedder(init, Dq),
      ada: initLinear(init, Dq, 6 * Dq, { zero: true }),
      imgKv: initLinear(init, Di, 2 * Dq),
      qkv: initLinear(init, Dq, 3 * Dq),
      proj: initLinear(init, Dq, Dq),
      mlp: initMlp(init, Dq, mlpRatio * Dq),
    });
  }
  const g = cfg.image.size / p;
  return {
    patch: initLinear(init, p * p * C, Di),
    ...(cfg.encoder.posEmbed === 'table' ? { pos: np.array(sincos2d(g, g, Di)).reshape([g * g, Di]) } : {}),
    queries: init.normal([cfg.K, Dq], 0.02),
    img,
    tok,
    projIn: initLinear(init, Dq, cfg.quantizer.dim),
    postLn: initLayerNorm(init, cfg.quantizer.dim),
    ...(cfg.train.probe ? { probe: initMlp(init, cfg.K * cfg.quantizer.dim, cfg.train.probe.hidden, cfg.train.probe.size ** 2 * cfg.image.channels) } : {}),
    ...(cfg.train.sceneProbe ? { sceneProbe: initMlp(init, cfg.K * cfg.quantizer.dim, cfg.train.sceneProbe.hidden, SCENE_MAP_CHANNELS * cfg.train.sceneProbe.size ** 2) } : {}),
  };
}

/**
 * Encoder body: image x0 (B×H×W×C, already in the model's data space) → pre-quantizer
 * features B×K×d (before L2 normalisation).
 */
export function encodeFeatures(p: EncoderParams, cfg: SelftokConfig, x0: np.Array): np.Array {
  const { size, patch } = cfg.image;
  const { tokenHeads, imageHeads, tokenWidth: Dq } = cfg.encoder;
  const B = x0.shape[0];
  const g = size / patch;
  const K = cfg.K;
  const pos = p.pos ? p.pos.ref.reshape([1, g * g, -1]) : np.array(sincos2d(g, g, cfg.encoder.imageWidth)).reshape([1, g * g, -1]);
  let x = linear(p.patch, patchify(x0, patch)).add(pos);
  let q = np.broadcastTo(p.queries.ref.reshape([1, K, Dq]), [B, K, Dq]);
  const posFeat = timestepFeatures(tokenPositions(K));
  // the spatial-token control: K local encoders (spatial.ts); Selftok's encoder attends globally
  const masks = cfg.encoder.spatial ? spatialMasks(K, g) : null;
  const imageMask = () => (masks ? np.array(masks.image).reshape([g * g, g * g]) : undefined);
  const tokenMask = () => (masks ? np.array(masks.tokens).reshape([K, g * g + K]) : undefined);
  for (let l = 0; l < p.tok.length; l++) {
    const tb = p.tok[l];
    const a = layerNorm(x.ref);
    // token stream reads this block's pre-update image tokens (spec §3.3)
    const mods = linear(tb.ada, nn.silu(timeEmbedder(tb.pos, np.array(posFeat).reshape([K, 256])))).reshape([1, K, 6 * Dq]);
    const [shMsa, scMsa, gMsa, shMlp, scMlp, gMlp] = chunk(mods, 6);
    const u = modulate(layerNorm(q.ref), shMsa, scMsa);
    const [qq, kq, vq] = chunk(linear(tb.qkv, u), 3);
    const [ki, vi] = chunk(linear(tb.imgKv, a.ref), 2);
    const att = attention(qq, np.concatenate([ki, kq], 1), np.concatenate([vi, vq], 1), tokenHeads, null, tokenMask());
    q = q.add(gMsa.mul(linear(tb.proj, att)));
    q = q.ref.add(gMlp.mul(mlp(tb.mlp, modulate(layerNorm(q), shMlp, scMlp))));
    // image stream: plain pre-LN transformer block, never sees the queries
    const ib = p.img[l];
    if (!ib) {
      a.dispose();
      continue;
    }
    const [qi, kk, vv] = chunk(linear(ib.qkv, a), 3);
    x = x.add(linear(ib.proj, attention(qi, kk, vv, imageHeads, null, imageMask())));
    x = x.ref.add(mlp(ib.mlp, layerNorm(x)));
  }
  x.dispose();
  return linear(p.projIn, q);
}

/** Post-quantization LayerNorm (affine), also applied when decoding from ids (spec §4.2, §12.12). */
export function postNorm(p: EncoderParams, zq: np.Array): np.Array {
  return layerNormAffine(p.postLn, zq);
}
