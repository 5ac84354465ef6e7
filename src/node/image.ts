// Image files in and out in Node (sharp): decode, crop and resize, PNG. Internally an image is
// HWC float32 in [−1, 1] (pixel/127.5 − 1, spec §1.1; io/pixels.ts). A page uses the canvas instead
// (src/browser/image.ts).
import sharp from 'sharp';
import { readBytes } from './fsx.ts';
import { UserError } from '../util/errors.ts';
import { tile, toFloat, toUint8, type RawImage } from '../io/pixels.ts';
import type { Rng } from '../util/rng.ts';

export const IMAGE_EXTS = ['.png', '.jpg', '.jpeg', '.webp'];

/** Decode any image file to 8-bit RGB; a one-line UserError names the file otherwise. */
export async function readRgb(path: string): Promise<RawImage> {
  const bytes = readBytes(path);
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

/** Encode HWC [−1, 1] floats (or 8-bit) as PNG bytes. */
export async function encodePng(x: Float32Array | Uint8Array, width: number, height: number, scale = 1): Promise<Uint8Array> {
  const u8 = x instanceof Float32Array ? toUint8(x) : x;
  let s = sharp(Buffer.from(u8.buffer, u8.byteOffset, u8.length), { raw: { width, height, channels: 3 } });
  if (scale !== 1) s = s.resize(width * scale, height * scale, { kernel: 'nearest' });
  return new Uint8Array(await s.png().toBuffer());
}

export async function gridPng(rows: Float32Array[][], size: number, scale = 1): Promise<Uint8Array> {
  const g = tile(rows, size);
  return encodePng(g.data, g.width, g.height, scale);
}
