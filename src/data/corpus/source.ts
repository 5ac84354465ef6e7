// `--data corpus`: the photo corpus that scripts/photo-corpus.sh builds (manifest.json +
// images/ in .cache/corpus, or SELFTOK_CORPUS_DIR). Training draws random multi-scale crops
// of the training images; the held-out split is the validation images (never trained on,
// split by image), each as its whole centre square resized to the model's size: what a user
// gets when they give the model their own photo.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { centreCrop } from '../../node/image.ts';
import { UserError } from '../../util/errors.ts';
import { PACKAGE_ROOT } from '../../node/paths.ts';
import type { Rng } from '../../util/rng.ts';
import { cropBatch, ImageCache } from '../folder.ts';
import type { DataSource, HeldOut } from '../source.ts';
import type { Manifest } from './build.ts';

export function corpusDir(): string {
  return process.env.SELFTOK_CORPUS_DIR ?? join(PACKAGE_ROOT, '.cache', 'corpus');
}

export function readManifest(dir: string): Manifest {
  const path = join(dir, 'manifest.json');
  if (!existsSync(path)) throw new UserError(`${path}: no photo corpus here (run scripts/photo-corpus.sh)`);
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch (e) {
    throw new UserError(`${path}: not a corpus manifest (${(e as Error).message})`);
  }
  if (!Array.isArray(m.images)) throw new UserError(`${path}: not a corpus manifest (no images list)`);
  return m;
}

export class CorpusSource implements DataSource {
  readonly name = 'corpus';
  // every training image stays decoded (≤ 256 px on the shorter side: ~0.2 MB each)
  private cache = new ImageCache(100_000);
  private constructor(
    readonly train: string[],
    readonly val: { id: string; path: string }[],
    readonly size: number,
    readonly cropScale: [number, number],
  ) {}

  static open(size: number, cropScale: [number, number], dir = corpusDir()): CorpusSource {
    const m = readManifest(dir);
    const train = m.images.filter((i) => i.split === 'train').map((i) => join(dir, i.file));
    const val = m.images.filter((i) => i.split === 'val').sort((a, b) => (a.id < b.id ? -1 : 1)).map((i) => ({ id: i.id, path: join(dir, i.file) }));
    if (!train.length || !val.length) throw new UserError(`${join(dir, 'manifest.json')}: the corpus needs training and validation images`);
    return new CorpusSource(train, val, size, cropScale);
  }

  trainBatch(rng: Rng, B: number): Promise<Float32Array> {
    return cropBatch(this.train, this.cache, rng, B, this.size, this.cropScale);
  }

  async heldOut(n: number): Promise<HeldOut> {
    const take = this.val.slice(0, n);
    const images = await Promise.all(take.map(async (v) => centreCrop(await this.cache.get(v.path), this.size)));
    return { images, names: take.map((v) => v.id) };
  }
}
