// Pixels on every platform: an image is HWC float32 in [−1, 1] (pixel/127.5 − 1, spec §1.1);
// 8-bit RGB in and out. Decoding and encoding files is the platform's (src/node/image.ts with
// sharp, src/browser/image.ts with the canvas).

/** 8-bit RGB, row-major HWC. */
export type RawImage = { data: Uint8Array; width: number; height: number };


export function toFloat(u8: Uint8Array): Float32Array {
  const out = new Float32Array(u8.length);
  for (let i = 0; i < u8.length; i++) out[i] = u8[i] / 127.5 - 1;
  return out;
}

/** [−1, 1] floats → 8-bit, as torchvision save_image: clamp, ×255 + 0.5, truncate (spec §9). */
export function toUint8(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = Math.min(1, Math.max(-1, x[i])) * 0.5 + 0.5;
    out[i] = Math.min(255, Math.floor(v * 255 + 0.5));
  }
  return out;
}

/**
 * Tile equally sized HWC images into a grid (rows of images), with a pad of `gap`
 * white pixels between them. Returns 8-bit HWC.
 */
export function tile(rows: Float32Array[][], size: number, gap = 2): { data: Uint8Array; width: number; height: number } {
  const ncol = Math.max(...rows.map((r) => r.length));
  const width = ncol * size + (ncol + 1) * gap;
  const height = rows.length * size + (rows.length + 1) * gap;
  const data = new Uint8Array(width * height * 3).fill(255);
  rows.forEach((row, r) =>
    row.forEach((img, c) => {
      const u8 = toUint8(img);
      const x0 = gap + c * (size + gap);
      const y0 = gap + r * (size + gap);
      for (let y = 0; y < size; y++) data.set(u8.subarray(y * size * 3, (y + 1) * size * 3), ((y0 + y) * width + x0) * 3);
    }),
  );
  return { data, width, height };
}

/**
 * The size × size RGB image that a nearest-neighbour upscale by an integer factor made (what
 * `selftok generate --scale` writes), or null when `img` is not one: square, a multiple of
 * `size`, and every factor × factor block one colour. Nothing is resampled, so the result is
 * exactly the image before the upscale.
 */
export function undoNearestUpscale(img: RawImage, size: number): Uint8Array | null {
  const f = img.width / size;
  if (img.width !== img.height || !Number.isInteger(f) || f < 1) return null;
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const o = (Math.floor(y / f) * size + Math.floor(x / f)) * 3;
      const i = (y * img.width + x) * 3;
      for (let c = 0; c < 3; c++) {
        if (y % f === 0 && x % f === 0) out[o + c] = img.data[i + c];
        else if (img.data[i + c] !== out[o + c]) return null;
      }
    }
  }
  return out;
}
