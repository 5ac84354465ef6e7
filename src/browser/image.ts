// Images in a page (the browser's side of the image seam; Node's is src/node/image.ts with
// sharp): decode with createImageBitmap, centre-crop and resize with the canvas, draw pixels on
// a canvas. Internally an image is HWC float32 in [−1, 1] (io/pixels.ts, spec §1.1).
import { toFloat, toUint8 } from '../io/pixels.ts';
import { UserError } from '../util/errors.ts';

/** What a page can give as an image: a file or blob, a URL, or anything the canvas draws. */
export type ImageInput = Blob | string | ImageBitmap | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | ImageData;

const nameOf = (input: ImageInput): string => (typeof input === 'string' ? input : input instanceof File ? input.name : 'the image');

/**
 * An image as a size × size centre crop, HWC floats in [−1, 1] (the file's own sRGB bytes: no
 * colour management). Resized by the canvas's high-quality smoothing, which differs from
 * sharp's lanczos3 in Node: tokens equal Node's for an image already at the model's size.
 */
export async function loadImage(input: ImageInput, size: number): Promise<Float32Array> {
  let source: ImageBitmap | Exclude<ImageInput, Blob | string>;
  try {
    const blob = typeof input === 'string' ? await (await fetch(input)).blob() : input;
    source = blob instanceof Blob ? await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' }) : blob;
  } catch (e) {
    throw new UserError(`${nameOf(input)}: not a readable image (${(e as Error).message})`);
  }
  const w = 'naturalWidth' in source ? source.naturalWidth : source.width;
  const h = 'naturalHeight' in source ? source.naturalHeight : source.height;
  if (!(w > 0 && h > 0)) throw new UserError(`${nameOf(input)}: an empty image (${w}×${h})`);
  const side = Math.min(w, h);
  const canvas = new OffscreenCanvas(size, size);
  const ctx = canvas.getContext('2d')!;
  ctx.imageSmoothingQuality = 'high';
  const drawable = source instanceof ImageData ? await createImageBitmap(source) : source;
  ctx.drawImage(drawable, Math.floor((w - side) / 2), Math.floor((h - side) / 2), side, side, 0, 0, size, size);
  return toFloat(rgbOf(ctx.getImageData(0, 0, size, size).data));
}

/** RGBA bytes → RGB bytes. */
function rgbOf(rgba: Uint8ClampedArray): Uint8Array {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

/** HWC floats in [−1, 1] → ImageData, 8-bit as every output of the library (toUint8: torchvision's rounding). */
export function toImageData(x: Float32Array, width: number, height = width): ImageData {
  const rgb = toUint8(x);
  const img = new ImageData(width, height);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    img.data[i] = rgb[j];
    img.data[i + 1] = rgb[j + 1];
    img.data[i + 2] = rgb[j + 2];
    img.data[i + 3] = 255;
  }
  return img;
}

/** Draw HWC floats in [−1, 1] on a canvas, sizing it to the image. */
export function drawImage(canvas: HTMLCanvasElement | OffscreenCanvas, x: Float32Array, width: number, height = width): void {
  canvas.width = width;
  canvas.height = height;
  (canvas.getContext('2d') as CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D).putImageData(toImageData(x, width, height), 0, 0);
}
