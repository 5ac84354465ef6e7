// What a reconstruction is worth at its bit rate: baselines and the figures every decoder
// and baseline is scored on besides PSNR / SSIM.
//   thumbnail      downscale to s×s with a bicubic filter, keep 8-bit RGB (24 raw bits per
//                  pixel), upscale back bicubically; at the model's bits per image,
//                  s = round(√(bits/24)), and at 4× the bits
//   colour error   |mean colour of the reconstruction − mean colour of the original| per
//                  image, in 8-bit levels, averaged over the 3 channels and the images
//   feature dist.  the MobileNetV2 feature distance the renderer can train with
//                  (src/nn/mobilenet-v2.ts: an LPIPS-like substitute, uncalibrated; lower is closer)
import { jit, numpy as np, tree } from '@jax-js/jax';
import sharp from 'sharp';
import { MobileNetV2, mobilenetDistance, PERCEPTUAL_TAPS, type MobileNetWeights } from '../nn/mobilenet-v2.ts';
import { mean, psnr, ssim } from './metrics.ts';
import { toFloat, toUint8 } from '../io/pixels.ts';

/** Side of the square thumbnail whose raw 24-bit pixels hold `bits` bits (rounded). */
export function thumbnailSide(bits: number): number {
  return Math.max(1, Math.round(Math.sqrt(bits / 24)));
}

/** Bicubic down to s×s (8-bit), bicubic back up to size×size; HWC in [−1, 1]. */
export async function thumbnail(img: Float32Array, size: number, s: number): Promise<Float32Array> {
  const raw = { width: size, height: size, channels: 3 as const };
  const small = await sharp(toUint8(img), { raw }).resize(s, s, { kernel: 'cubic', fit: 'fill' }).raw().toBuffer();
  const up = await sharp(small, { raw: { width: s, height: s, channels: 3 } }).resize(size, size, { kernel: 'cubic', fit: 'fill' }).raw().toBuffer();
  return toFloat(new Uint8Array(up.buffer, up.byteOffset, up.length));
}

/** Mean absolute error of the per-image mean colour, 8-bit levels (both images 8-bit round-tripped). */
export function colourError(refs: Float32Array[], recs: Float32Array[]): number {
  const errs = refs.map((r, i) => {
    const a = toUint8(r);
    const b = toUint8(recs[i]);
    const d = [0, 0, 0];
    for (let j = 0; j < a.length; j++) d[j % 3] += a[j] - b[j];
    const n = a.length / 3;
    return (Math.abs(d[0]) + Math.abs(d[1]) + Math.abs(d[2])) / (3 * n);
  });
  return mean(errs);
}

/** Mean MobileNetV2 feature distance over image pairs (fixed-size chunks, one jit, current device). */
export async function featureDistance(refs: Float32Array[], recs: Float32Array[], size: number, chunk = 16): Promise<number> {
  const net = await MobileNetV2.load();
  const w = net.weights(PERCEPTUAL_TAPS[PERCEPTUAL_TAPS.length - 1]);
  const dist = jit((wt: MobileNetWeights, a: np.Array, b: np.Array) => {
    const d = mobilenetDistance(net, wt, a, b);
    tree.dispose(wt);
    return d;
  });
  const B = Math.min(chunk, refs.length);
  const n3 = size * size * 3;
  let total = 0;
  for (let s = 0; s < refs.length; s += B) {
    const n = Math.min(B, refs.length - s);
    // the last chunk is padded with identical pairs (distance 0): the chunk's sum is mean × B
    const a = new Float32Array(B * n3);
    const b = new Float32Array(B * n3);
    for (let i = 0; i < B; i++) {
      a.set(refs[s + (i < n ? i : 0)], i * n3);
      b.set(i < n ? recs[s + i] : refs[s], i * n3);
    }
    const d = dist(tree.ref(w), np.array(a).reshape([B, size, size, 3]), np.array(b).reshape([B, size, size, 3]));
    total += (await d.data())[0] * B;
  }
  dist.dispose();
  for (const v of Object.values(w)) v.dispose();
  return total / refs.length;
}

export type Scored = { psnr: number; ssim: number; featureDistance: number; colourError: number };
export type ThumbnailBaseline = Scored & { side: number; bits: number };
export type Baselines = { bitsPerImage: number; sameBits: ThumbnailBaseline; fourTimesBits: ThumbnailBaseline };

/** PSNR, SSIM, feature distance and colour error of reconstructions against the originals. */
export async function scoreAll(refs: Float32Array[], recs: Float32Array[], size: number): Promise<Scored> {
  return {
    psnr: mean(refs.map((r, i) => psnr(r, recs[i]))),
    ssim: mean(refs.map((r, i) => ssim(r, recs[i], size, size))),
    featureDistance: await featureDistance(refs, recs, size),
    colourError: colourError(refs, recs),
  };
}

/** The thumbnail baselines at the model's bits per image and at 4× that. */
export async function thumbnailBaselines(refs: Float32Array[], size: number, bitsPerImage: number): Promise<Baselines> {
  const one = async (bits: number): Promise<ThumbnailBaseline> => {
    const side = thumbnailSide(bits);
    const recs = await Promise.all(refs.map((r) => thumbnail(r, size, side)));
    return { side, bits: side * side * 24, ...(await scoreAll(refs, recs, size)) };
  };
  return { bitsPerImage, sameBits: await one(bitsPerImage), fourTimesBits: await one(4 * bitsPerImage) };
}
