// Patchify / unpatchify for NHWC images. A patch's features are ordered
// (row-in-patch, col-in-patch, channel), channel fastest (spec §5.1, §12.23); the two
// functions are exact inverses.
import { numpy as np } from '@jax-js/jax';

/** B×H×W×C → B×(H/p·W/p)×(p·p·C), patches row-major. */
export function patchify(x: np.Array, p: number): np.Array {
  const [B, H, W, C] = x.shape;
  const h = H / p;
  const w = W / p;
  return x.reshape([B, h, p, w, p, C]).transpose([0, 1, 3, 2, 4, 5]).reshape([B, h * w, p * p * C]);
}

/** Inverse of patchify. */
export function unpatchify(x: np.Array, p: number, H: number, W: number, C: number): np.Array {
  const B = x.shape[0];
  const h = H / p;
  const w = W / p;
  return x.reshape([B, h, w, p, p, C]).transpose([0, 1, 3, 2, 4, 5]).reshape([B, H, W, C]);
}
