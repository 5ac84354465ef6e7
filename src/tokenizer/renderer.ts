// The one-step renderer (spec §8): the decoder network with x_t replaced by a learned
// canvas (one vector repeated over the patch grid + a learned position table), time
// fixed at the pure-noise level t = 1, all tokens visible, context rows not attending
// the canvas, and x̂0 as the output. Its network is a copy of the diffusion decoder,
// fine-tuned with the encoder and codebook frozen (train-renderer).
import { numpy as np, tree } from '@jax-js/jax';
import { Init } from '../nn/params.ts';
import type { SelftokConfig } from './config.ts';
import { decoderNet, initDecoderBlock, type DecoderParams } from './decoder.ts';

export type RendererParams = { canvas: np.Array; canvasPos: np.Array; net: DecoderParams };

export function initRenderer(cfg: SelftokConfig, init: Init, from: DecoderParams): RendererParams {
  const D = cfg.decoder.width;
  const g = cfg.image.size / cfg.image.patch;
  return {
    canvas: init.normal([D], 1 / Math.sqrt(D)),
    canvasPos: init.normal([g * g, D], 1 / Math.sqrt(D)),
    net: deepen(cfg, init, rendererNet(cfg, tree.map((a: np.Array) => a.ref.add(0), from) as DecoderParams)), // a copy, not an alias
  };
}

/**
 * decoder.rendererDepth > depth: more capacity for the one pass than the diffusion decoder has.
 * Fresh blocks go before the last one (whose token stream is key/value only); their AdaLN gates
 * are zero, so the renderer starts as the decoder's copy and grows from there.
 */
function deepen(cfg: SelftokConfig, init: Init, net: DecoderParams): DecoderParams {
  const extra = (cfg.decoder.rendererDepth ?? cfg.decoder.depth) - cfg.decoder.depth;
  if (extra <= 0) return net;
  const blocks = [...net.blocks];
  blocks.splice(blocks.length - 1, 0, ...Array.from({ length: extra }, () => initDecoderBlock(cfg, init, false)));
  return { ...net, blocks };
}

/** The decoder parameters a renderer uses: no x_t patch embedding, and no image positions when its canvas carries them. */
function rendererNet(cfg: SelftokConfig, net: DecoderParams): DecoderParams {
  const { xEmbed, pos, ...rest } = net;
  tree.dispose(xEmbed);
  const keepPos = (cfg.decoder.rendererImagePos ?? true) && pos;
  if (pos && !keepPos) pos.dispose();
  return keepPos ? { ...rest, pos } : rest;
}

/** tokens: post-LN embeddings B×K×d → x̂0 B×H×W×C (data space). */
export function renderNet(ren: RendererParams, cfg: SelftokConfig, tokens: np.Array): np.Array {
  const B = tokens.shape[0];
  const D = cfg.decoder.width;
  const g = cfg.image.size / cfg.image.patch;
  const canvas = np.broadcastTo(ren.canvas.ref.reshape([1, 1, D]).add(ren.canvasPos.ref.reshape([1, g * g, D])), [B, g * g, D]);
  return decoderNet(ren.net, cfg, {
    imageTokens: canvas,
    t: np.ones([B]),
    tokens,
    mask: np.ones([B, cfg.K]),
    drop: null,
    contextSeesImage: false,
    imagePos: cfg.decoder.rendererImagePos ?? true,
  });
}
