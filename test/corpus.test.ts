// The photo corpus (src/data/corpus/) on a tiny package tree the test makes itself: the
// automatic checks, duplicates, licences from a DEP-5 copyright file, archives (zip, Qt rcc),
// the split by image, the manifest, and `--data corpus` reading it. CI never needs the real corpus.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { zipSync } from 'fflate';
import { buildCorpus, checkFailure, familyOf, imageFeatures } from '../src/data/corpus/build.ts';
import { licenceOf, parseCopyright } from '../src/data/corpus/copyright.ts';
import { readRcc } from '../src/data/corpus/rcc.ts';
import { CorpusSource } from '../src/data/corpus/source.ts';
import type { SourceRule } from '../src/data/corpus/sources.ts';
import { writeCorpusReport } from '../src/data/corpus/report.ts';
import { Rng } from '../src/util/rng.ts';
import { tmp } from './helpers.ts';

/** A photo-like image: smooth colour gradients plus per-pixel noise, different per seed. */
async function photo(seed: number, w = 320, h = 240): Promise<Buffer> {
  const rng = new Rng(seed);
  const c0 = [rng.int(20, 235), rng.int(20, 235), rng.int(20, 235)];
  const c1 = [rng.int(20, 235), rng.int(20, 235), rng.int(20, 235)];
  const fx = 1 + rng.int(0, 5);
  const buf = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const a = 0.5 + 0.5 * Math.sin((fx * Math.PI * x) / w + (3 * y) / h + seed);
      // a luminance pattern too, so that the grey difference hash has structure to see
      const lum = 50 * Math.sin((2 * Math.PI * y) / h + (fx * x) / w + seed);
      for (let c = 0; c < 3; c++) buf[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(c0[c] * a + c1[c] * (1 - a) + lum + 12 * rng.normal())));
    }
  }
  return sharp(buf, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

const flat = (): Promise<Buffer> => sharp({ create: { width: 300, height: 300, channels: 3, background: '#3060c0' } }).png().toBuffer();

const COPYRIGHT = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: src/pics/p1.jpg
Copyright: 2019 A Photographer
License: CC0-1.0
Comment: https://example.org/p1

Files: 16.04/p2_by_B.png
Copyright: B
License: CC-BY-4.0
`;

/** A minimal Qt resource file (version 1) holding one file at `dir/name`. */
function makeRcc(dir: string, name: string, data: Uint8Array): Uint8Array {
  const nameEntry = (s: string): Buffer => {
    const b = Buffer.alloc(6 + 2 * s.length);
    b.writeUInt16BE(s.length, 0);
    for (let i = 0; i < s.length; i++) b.writeUInt16BE(s.charCodeAt(i), 6 + 2 * i);
    return b;
  };
  const names = Buffer.concat([nameEntry(dir), nameEntry(name)]);
  const node = (nameOff: number, flags: number, a: number, b: number): Buffer => {
    const n = Buffer.alloc(14);
    n.writeUInt32BE(nameOff, 0);
    n.writeUInt16BE(flags, 4);
    n.writeUInt32BE(a, 6);
    n.writeUInt32BE(b, 10);
    return n;
  };
  // root (dir, 1 child at 1) → dir (dir, 1 child at 2) → file (data offset 0)
  const tree = Buffer.concat([node(0, 2, 1, 1), node(0, 2, 1, 2), node(6 + 2 * dir.length, 0, 0, 0)]);
  const payload = Buffer.alloc(4 + data.length);
  payload.writeUInt32BE(data.length, 0);
  payload.set(data, 4);
  const header = Buffer.alloc(20);
  header.write('qres', 0, 'latin1');
  header.writeUInt32BE(1, 4);
  const treeOff = 20, dataOff = treeOff + tree.length, namesOff = dataOff + payload.length;
  header.writeUInt32BE(treeOff, 8);
  header.writeUInt32BE(dataOff, 12);
  header.writeUInt32BE(namesOff, 16);
  return Buffer.concat([header, tree, payload, names]);
}

test('DEP-5 licences: last matching stanza, converted raster extensions, installed base names, the package default', () => {
  const st = parseCopyright(COPYRIGHT);
  assert.equal(st.length, 3);
  assert.deepEqual(
    { ...licenceOf(st, 'gcompris/src/pics/p1.webp')! },
    { license: 'CC0-1.0', copyright: '2019 A Photographer', comment: 'https://example.org/p1', pattern: 'src/pics/p1.jpg' },
  );
  assert.equal(licenceOf(st, 'usr/share/backgrounds/p2_by_B.png')!.license, 'CC-BY-4.0');
  assert.equal(licenceOf(st, 'usr/share/other.png')!.license, 'GPL-2+');
  assert.equal(licenceOf(st, 'usr/share/other.png')!.pattern, '*');
  // a wildcard .svg pattern does not swallow raster files once its extension is dropped
  assert.equal(licenceOf(parseCopyright('Files: *\nLicense: X\n\nFiles: images/*.svg\nLicense: Y\n'), 'a/images/b.png')!.license, 'X');
  // a source-tree path is matched whole: samples/data/ is not the top-level data/ folder
  const cv = parseCopyright('Files: *\nLicense: Apache-2.0 AND BSD-3-Clause\n\nFiles: data/*\nLicense: BSD-3-Clause\n');
  assert.equal(licenceOf(cv, 'samples/data/apple.jpg')!.license, 'BSD-3-Clause');
  assert.equal(licenceOf(cv, 'samples/data/apple.jpg', { anchored: true })!.license, 'Apache-2.0 AND BSD-3-Clause');
  assert.equal(licenceOf(cv, 'data/apple.jpg', { anchored: true })!.license, 'BSD-3-Clause');
});

test('the automatic checks: flat, greyscale, small and transparent images fail, photos pass', async () => {
  assert.equal(checkFailure(await imageFeatures(await photo(1))), undefined);
  assert.equal(checkFailure(await imageFeatures(await flat())), 'few colours');
  const grey = await sharp(await photo(2)).greyscale().png().toBuffer();
  assert.equal(checkFailure(await imageFeatures(grey)), 'greyscale');
  assert.equal(checkFailure(await imageFeatures(await photo(3, 150, 150))), 'small');
  const alpha = await sharp(await photo(4)).ensureAlpha(0.5).png().toBuffer();
  assert.equal(checkFailure(await imageFeatures(alpha)), 'transparent');
});

test('Qt rcc archives: files listed with their paths and bytes', () => {
  const files = readRcc(makeRcc('pics', 'a.png', Uint8Array.from([1, 2, 3])));
  assert.deepEqual(files.map((f) => f.path), ['pics/a.png']);
  assert.deepEqual([...files[0].bytes()], [1, 2, 3]);
  assert.throws(() => readRcc(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]), 'x.rcc'), /x\.rcc: not a Qt resource file/);
});

test('families: generic file names fall back to their folder', () => {
  assert.equal(familyOf('p', 'p', 'usr/share/wallpapers/Path/contents/images/2560x1600.jpg'), 'p:path');
  assert.equal(familyOf('npm', 'datasets-img-black-canyon', 'data/image.jpg'), 'npm:datasetsimgblackcanyon');
  assert.equal(familyOf('g', 'g', 'x.rcc!a/TajMahal_background.webp'), 'g:tajmahal');
});

test('build: checks, duplicates, archives, caps, licences, split by image; --data corpus reads it', async () => {
  const root = tmp('selftok-corpus-');
  const pkgs = join(root, 'pkgs');
  const pkg = join(pkgs, 'fakepkg');
  const bg = join(pkg, 'usr/share/backgrounds');
  mkdirSync(bg, { recursive: true });
  mkdirSync(join(pkg, 'usr/share/doc/fakepkg'), { recursive: true });
  writeFileSync(join(pkg, 'usr/share/doc/fakepkg/copyright'), COPYRIGHT);
  writeFileSync(join(pkg, '.version'), '1.0-1');
  for (let i = 0; i < 8; i++) writeFileSync(join(bg, `photo${i}.png`), await photo(100 + i));
  writeFileSync(join(bg, 'p2_by_B.png'), await photo(200));
  writeFileSync(join(bg, 'copy-of-photo0.jpg'), await sharp(await photo(100)).resize(400, 300).jpeg({ quality: 85 }).toBuffer());
  writeFileSync(join(bg, 'flat.png'), await flat());
  writeFileSync(join(bg, 'tiny.png'), await photo(300, 100, 80));
  writeFileSync(join(bg, 'icon.svg'), '<svg/>');
  // an archive of textures (a .pk3 is a zip) and a Qt resource file
  mkdirSync(join(pkg, 'usr/share/game'), { recursive: true });
  writeFileSync(join(pkg, 'usr/share/game/textures.pk3'), zipSync({ 'textures/rock.jpg': new Uint8Array(await sharp(await photo(400)).jpeg().toBuffer()), 'textures/readme.txt': new Uint8Array([65]) }));
  writeFileSync(join(pkg, 'usr/share/game/res.rcc'), makeRcc('pics', 'p1.jpg', new Uint8Array(await sharp(await photo(500)).jpeg().toBuffer())));
  const rules: SourceRule[] = [
    { id: 'bg', pkg: 'fakepkg', include: /backgrounds\/.*\.(png|jpg)$/, what: 'backgrounds' },
    { id: 'tex', pkg: 'fakepkg', archive: 'zip', include: /\.(jpg|png)$/, cap: 5, what: 'textures' },
    { id: 'rcc', pkg: 'fakepkg', archive: 'rcc', include: /\.(jpg|png)$/, trainOnly: true, what: 'resources' },
  ];
  const out = join(root, 'corpus');
  const m = await buildCorpus({ pkgsDir: pkgs, outDir: out, nodeModules: join(root, 'none'), rules, minVal: 1 });
  assert.equal(m.images.length, 11, JSON.stringify(m.images.map((i) => i.path)) + JSON.stringify(m.dropped)); // 8 photos + p2 + rock + p1; the copy, flat and tiny are out
  assert.deepEqual(m.dropped.bg, { duplicate: 1, 'few colours': 1, small: 1 });
  const byPath = new Map(m.images.map((i) => [i.path.split('/').pop()!, i]));
  assert.equal(byPath.get('p2_by_B.png')!.license, 'CC-BY-4.0');
  assert.equal(byPath.get('photo3.png')!.license, 'GPL-2+');
  assert.equal(byPath.get('photo3.png')!.packageVersion, '1.0-1');
  assert.equal(byPath.get('p1.jpg')!.license, 'CC0-1.0');
  assert.ok(m.images.some((i) => i.path === 'usr/share/game/textures.pk3!textures/rock.jpg'));
  const val = m.images.filter((i) => i.split === 'val');
  assert.ok(val.length >= 1 && val.length <= 3, `validation ${val.length}`);
  assert.ok(val.every((i) => i.source === 'bg'), 'train-only and small sources never validate');
  for (const im of m.images) {
    const meta = await sharp(join(out, im.file)).metadata();
    assert.equal(Math.min(meta.width!, meta.height!), Math.min(256, im.width, im.height), im.id);
  }
  // idempotent: a second build leaves the files alone
  const before = statSync(join(out, 'manifest.json')).mtimeMs;
  await buildCorpus({ pkgsDir: pkgs, outDir: out, nodeModules: join(root, 'none'), rules, minVal: 1 });
  assert.equal(statSync(join(out, 'manifest.json')).mtimeMs, before);
  // too few validation images is an error that names the count
  await assert.rejects(buildCorpus({ pkgsDir: pkgs, outDir: join(root, 'c2'), nodeModules: join(root, 'none'), rules, minVal: 40 }), /only \d+ validation images \(need ≥ 40\)/);

  const src = CorpusSource.open(32, [0.5, 1], out);
  const batch = await src.trainBatch(new Rng(0), 3);
  assert.equal(batch.length, 3 * 32 * 32 * 3);
  assert.ok(batch.every((v) => v >= -1 && v <= 1));
  const held = await src.heldOut(100);
  assert.deepEqual(held.names, val.map((v) => v.id).sort());

  const report = await writeCorpusReport(out, m);
  const md = readFileSync(report, 'utf8');
  assert.match(md, /\| bg \| fakepkg \| \d+ \| \d+ \| few colours 1, small 1, duplicate 1 \|/);
  assert.match(md, /\| CC-BY-4\.0 \|/);
  const sheet = await sharp(join(out, 'report', 'contact-sheet.png')).metadata();
  assert.equal(sheet.width, 32 * 48);
});
