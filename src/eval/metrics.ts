// Reconstruction metrics as the reference evaluator computes them (spec §9, engine.md):
//  PSNR: both images clamped to [−1, 1], written to 8 bits (×255 + 0.5, truncate), then
//        20·log10(255) − 10·log10(MSE) over all pixels and channels, per image.
//  SSIM: scikit-image `structural_similarity` defaults on the 8-bit images scaled to
//        [0, 1]: 7×7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance (N/(N−1)),
//        data_range = max − min of the reference, mean over the window centres at least
//        3 pixels from the border, averaged over channels.
import { toUint8 } from '../io/pixels.ts';

/** PSNR in dB of one HWC image pair in [−1, 1] after the 8-bit round trip (∞ if identical). */
export function psnr(ref: Float32Array, test: Float32Array): number {
  const a = toUint8(ref);
  const b = toUint8(test);
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Infinity : 20 * Math.log10(255) - 10 * Math.log10(mse);
}

export const SSIM_WINDOW = 7;

/** SSIM (skimage defaults, uniform 7×7 window) of one HWC pair in [−1, 1], 8-bit round-tripped. */
export function ssim(ref: Float32Array, test: Float32Array, width: number, height: number, channels = 3): number {
  const a8 = toUint8(ref);
  const b8 = toUint8(test);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a8.length; i++) {
    lo = Math.min(lo, a8[i]);
    hi = Math.max(hi, a8[i]);
  }
  const range = (hi - lo) / 255 || 1; // a flat reference would divide by zero in skimage too
  const w = SSIM_WINDOW;
  const pad = (w - 1) >> 1;
  const np = w * w;
  const covNorm = np / (np - 1);
  const C1 = (0.01 * range) ** 2;
  const C2 = (0.03 * range) ** 2;
  let total = 0;
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    let count = 0;
    for (let y = pad; y < height - pad; y++) {
      for (let x = pad; x < width - pad; x++) {
        let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
        for (let dy = -pad; dy <= pad; dy++) {
          for (let dx = -pad; dx <= pad; dx++) {
            const i = ((y + dy) * width + (x + dx)) * channels + c;
            const va = a8[i] / 255;
            const vb = b8[i] / 255;
            sa += va;
            sb += vb;
            saa += va * va;
            sbb += vb * vb;
            sab += va * vb;
          }
        }
        const ua = sa / np, ub = sb / np;
        const va = covNorm * (saa / np - ua * ua);
        const vb = covNorm * (sbb / np - ub * ub);
        const vab = covNorm * (sab / np - ua * ub);
        sum += ((2 * ua * ub + C1) * (2 * vab + C2)) / ((ua * ua + ub * ub + C1) * (va + vb + C2));
        count++;
      }
    }
    total += sum / count;
  }
  return total / channels;
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}
