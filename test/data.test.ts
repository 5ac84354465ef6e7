import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { tmp } from './helpers.ts';
import { openSource } from '../src/data/source.ts';
import { PhotosSource } from '../src/data/photos.ts';
import { Rng } from '../src/util/rng.ts';

test('photos+skimage: extra training photos, the same held-out split as photos; a missing folder is a one-line error', async () => {
  const dir = tmp();
  // a flat red image: any crop of it is pure red, so its crops can be told apart from the photos'
  writeFileSync(join(dir, 'red.png'), await sharp({ create: { width: 80, height: 60, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer());
  const before = process.env.SELFTOK_SKIMAGE_DIR;
  process.env.SELFTOK_SKIMAGE_DIR = dir;
  try {
    const plain = (await openSource('photos', 16, [0.5, 1])) as PhotosSource;
    const mixed = (await openSource('photos+skimage', 16, [0.5, 1])) as PhotosSource;
    assert.equal(mixed.name, 'photos+skimage');
    assert.equal(mixed.train.length, plain.train.length + 1);
    assert.deepEqual((await mixed.heldOut(6)).names, (await plain.heldOut(6)).names);
    const n = 16 * 16 * 3;
    const batch = await mixed.trainBatch(new Rng(3), 64);
    let red = 0;
    for (let b = 0; b < 64; b++) {
      const im = batch.subarray(b * n, (b + 1) * n);
      if (im.every((v, i) => Math.abs(v - (i % 3 === 0 ? 1 : -1)) < 1e-6)) red++;
    }
    assert.ok(red > 0 && red < 64, `${red} of 64 crops from the extra photo`);
    process.env.SELFTOK_SKIMAGE_DIR = join(dir, 'nope');
    await assert.rejects(openSource('photos+skimage', 16), /nope: no scikit-image sample photos here \(run scripts\/skimage-data\.sh\)/);
  } finally {
    if (before === undefined) delete process.env.SELFTOK_SKIMAGE_DIR;
    else process.env.SELFTOK_SKIMAGE_DIR = before;
  }
});
