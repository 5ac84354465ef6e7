// Image files in and out (sharp). Internally an image is HWC float32 in [−1, 1]
// (pixel/127.5 − 1, spec §1.1).
import sharp from 'sharp';
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';

export const IMAGE_EXTS = ['.png', '.jpg', '.jpeg', '.webp'];

export type RawImage = { data: Uint8Array; width: number; height: number };

/** Decode any image file to 8-bit RGB; a one-line UserError names the file otherwise. */
export async function readRgb(path: string): Promise<RawImage> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const { data, info } = await sharp(bytes).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    throw new UserError(`${path}: not a readable image (${(e as Error).message.split('\n')[0]})`);
  }
}

/**
 * Crop a square of side `side` at (left, top) from an RGB image and resize it to size×size
 * (area-averaging when shrinking), returning HWC floats in [−1, 1].
 */
export async function cropResize(img: RawImage, left: number, top: number, side: number, size: number): Promise<Float32Array> {
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .extract({ left, top, width: side, height: side })
    .resize(size, size, { kernel: side > size ? 'lanczos3' : 'cubic' })
    .raw()
    .toBuffer();
  return toFloat(new Uint8Array(buf.buffer, buf.byteOffset, buf.length));
}

/** Resize the shorter side to `size`, then centre-crop (the reference evaluation transform). */
export async function centreCrop(img: RawImage, size: number): Promise<Float32Array> {
  const side = Math.min(img.width, img.height);
  return cropResize(img, Math.floor((img.width - side) / 2), Math.floor((img.height - side) / 2), side, size);
}

/** A random square crop whose side is a random fraction (scale range) of the shorter side. */
export async function randomCrop(img: RawImage, size: number, rng: Rng, scale: [number, number]): Promise<Float32Array> {
  const short = Math.min(img.width, img.height);
  const side = Math.max(Math.min(size, short), Math.round(short * (scale[0] + rng.uniform() * (scale[1] - scale[0]))));
  const left = rng.int(0, img.width - side + 1);
  const top = rng.int(0, img.height - side + 1);
  return cropResize(img, left, top, side, size);
}

/** Load an image file as a size×size centre crop. */
export async function loadImage(path: string, size: number): Promise<Float32Array> {
  return centreCrop(await readRgb(path), size);
}

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

/** Encode HWC [−1, 1] floats (or 8-bit) as PNG bytes. */
export async function encodePng(x: Float32Array | Uint8Array, width: number, height: number, scale = 1): Promise<Uint8Array> {
  const u8 = x instanceof Float32Array ? toUint8(x) : x;
  let s = sharp(Buffer.from(u8.buffer, u8.byteOffset, u8.length), { raw: { width, height, channels: 3 } });
  if (scale !== 1) s = s.resize(width * scale, height * scale, { kernel: 'nearest' });
  return new Uint8Array(await s.png().toBuffer());
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

export async function gridPng(rows: Float32Array[][], size: number, scale = 1): Promise<Uint8Array> {
  const g = tile(rows, size);
  return encodePng(g.data, g.width, g.height, scale);
}
