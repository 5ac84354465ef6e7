// The spatial-token control of issue #19 (config `encoder.spatial`): the K tokens are tied to a
// grid of K rectangular regions of the patch grid, in raster order, and token k reads only the
// patches of region k. The encoder keeps its architecture; attention masks cut it into K
// independent local encoders: an image patch attends only the patches of its own region, and
// query k only those patches and itself. With schedule type 'all' (every token at every noise
// level) this is the 1D-sequence analogue of VQGAN-style spatial tokens: same K, codebook,
// decoder and budget as Selftok, but no global, coarse-to-fine order.
import { UserError } from '../util/errors.ts';

/** Regions rows × cols (rows·cols = K, each dividing the g × g patch grid), as square as possible; region of each patch (raster order). */
export function spatialRegions(K: number, g: number, where: string): { rows: number; cols: number; regionOf: Int32Array } {
  let best: [number, number] | null = null;
  for (let rows = 1; rows <= K; rows++) {
    const cols = K / rows;
    if (!Number.isInteger(cols) || g % rows || g % cols) continue;
    if (!best || Math.abs(Math.log(rows / cols)) < Math.abs(Math.log(best[0] / best[1]))) best = [rows, cols];
  }
  if (!best) throw new UserError(`${where}: K = ${K} tokens do not tile the ${g}×${g} patch grid in rectangles (need rows·cols = K with rows and cols dividing ${g})`);
  const [rows, cols] = best;
  const regionOf = new Int32Array(g * g);
  for (let y = 0; y < g; y++) for (let x = 0; x < g; x++) regionOf[y * g + x] = Math.floor(y / (g / rows)) * cols + Math.floor(x / (g / cols));
  return { rows, cols, regionOf };
}

/**
 * The encoder's attention masks (1 = may attend): image g²×g² (same region) and tokens
 * K×(g² + K) over [patches; queries] (its region's patches and itself).
 */
export function spatialMasks(K: number, g: number): { image: Float32Array; tokens: Float32Array } {
  const { regionOf } = spatialRegions(K, g, 'encoder.spatial');
  const P = g * g;
  const image = new Float32Array(P * P);
  for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) image[i * P + j] = regionOf[i] === regionOf[j] ? 1 : 0;
  const tokens = new Float32Array(K * (P + K));
  for (let k = 0; k < K; k++) {
    for (let j = 0; j < P; j++) tokens[k * (P + K) + j] = regionOf[j] === k ? 1 : 0;
    tokens[k * (P + K) + P + k] = 1;
  }
  return { image, tokens };
}
