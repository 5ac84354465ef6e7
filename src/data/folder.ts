// A folder of png/jpg/webp images. Training draws random crops (side a random fraction
// of the shorter side, config train.cropScale); `heldOut(n)` returns the first n files,
// sorted by name, as centre crops. A user's folder is used whole by both: pass a
// different folder to `eval` to evaluate on images that training never saw.
import { readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { centreCrop, IMAGE_EXTS, randomCrop, readRgb } from '../node/image.ts';
import { UserError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';
import type { DataSource, HeldOut } from './source.ts';
import { type RawImage } from '../io/pixels.ts';

export function listImages(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => IMAGE_EXTS.includes(extname(f).toLowerCase()))
    .sort()
    .map((f) => join(dir, f));
}

/** Decoded images kept in memory (bounded), so random crops do not re-read files. */
export class ImageCache {
  private map = new Map<string, RawImage>();
  constructor(private readonly limit = 256) {}
  async get(path: string): Promise<RawImage> {
    let img = this.map.get(path);
    if (!img) {
      img = await readRgb(path);
      if (this.map.size >= this.limit) this.map.delete(this.map.keys().next().value!);
      this.map.set(path, img);
    }
    return img;
  }
}

export async function cropBatch(
  files: string[],
  cache: ImageCache,
  rng: Rng,
  B: number,
  size: number,
  scale: [number, number],
): Promise<Float32Array> {
  const n = size * size * 3;
  const out = new Float32Array(B * n);
  for (let b = 0; b < B; b++) out.set(await randomCrop(await cache.get(rng.pick(files)), size, rng, scale), b * n);
  return out;
}

export class FolderSource implements DataSource {
  private cache = new ImageCache();
  private constructor(
    readonly name: string,
    readonly files: string[],
    readonly size: number,
    readonly cropScale: [number, number],
  ) {}

  static async open(dir: string, size: number, cropScale: [number, number]): Promise<FolderSource> {
    const files = listImages(dir);
    if (!files.length) throw new UserError(`${dir}: no .png/.jpg/.jpeg/.webp images in this folder`);
    return new FolderSource(dir, files, size, cropScale);
  }

  trainBatch(rng: Rng, B: number): Promise<Float32Array> {
    return cropBatch(this.files, this.cache, rng, B, this.size, this.cropScale);
  }

  async heldOut(n: number): Promise<HeldOut> {
    const files = this.files.slice(0, n);
    return { images: await Promise.all(files.map(async (f) => centreCrop(await this.cache.get(f), this.size))), names: files };
  }
}
