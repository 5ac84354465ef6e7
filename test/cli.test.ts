// The CLI as a user runs it: happy paths and every bad input of issue #2, each giving a
// one-line error naming the file, a non-zero exit, and no partial output.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { wasm, microConfig, tmp } from './helpers.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { encodePng } from '../src/io/image.ts';
import { renderShapes } from '../src/data/shapes.ts';

const BIN = resolve('bin/selftok.js');
let dir: string;
let model: string;
let other: string;
let img: string;
let img2: string;

function run(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args, '--device', 'wasm'], { encoding: 'utf8', cwd: dir, timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr.split('\n').filter((l) => l && !l.startsWith('selftok: device')).join('\n') };
}

function expectError(r: ReturnType<typeof run>, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `should fail: ${r.out}`);
  assert.equal(r.err.split('\n').length, 1, `one line: ${r.err}`);
  assert.match(r.err, pattern);
  assert.doesNotMatch(r.err, /internal error|at .*\.ts:\d+/);
}

before(async () => {
  await wasm();
  dir = tmp();
  model = join(dir, 'model');
  other = join(dir, 'other');
  const m = Selftok.create(microConfig(), 1);
  m.codebook.initialized = true;
  await m.save(model);
  const m2 = Selftok.create(microConfig(), 2);
  await m2.save(other);
  img = join(dir, 'a.png');
  img2 = join(dir, 'b.png');
  writeFileSync(img, await encodePng(renderShapes(1, 40), 40, 40));
  writeFileSync(img2, await encodePng(renderShapes(2, 24), 24, 24));
});

test('encode → decode round trip: JSON in both orders and .npy', () => {
  let r = run('encode', img, img2, '--model', model, '-o', 'tok.json');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /encoded 2 image\(s\) → tok\.json: 8 tokens each \(40 bits/);
  const enc = JSON.parse(readFileSync(join(dir, 'tok.json'), 'utf8'));
  assert.equal(enc.order, 'encoder');
  assert.equal(enc.K, 8);
  assert.equal(enc.images[0].ids.length, 8);
  r = run('encode', img, img2, '--model', model, '-o', 'tok-ar.json', '--order', 'ar');
  assert.equal(r.code, 0, r.err);
  const ar = JSON.parse(readFileSync(join(dir, 'tok-ar.json'), 'utf8'));
  assert.deepEqual(ar.images[1].ids, [...enc.images[1].ids].reverse());
  r = run('encode', img, img2, '--model', model, '-o', 'tok.npy');
  assert.equal(r.code, 0, r.err);
  r = run('decode', 'tok-ar.json', '--model', model, '-o', 'out-ar', '--steps', '3', '--seed', '4');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(join(dir, 'out-ar')).sort(), ['a.png', 'b.png']);
  r = run('decode', 'tok.json', '--model', model, '-o', 'out-enc', '--steps', '3', '--seed', '4');
  assert.equal(r.code, 0, r.err);
  // the same ids in either order decode to the same image
  assert.deepEqual(readFileSync(join(dir, 'out-ar', 'a.png')), readFileSync(join(dir, 'out-enc', 'a.png')));
  r = run('decode', 'tok.npy', '--model', model, '-o', 'out-npy', '--steps', '3', '--keep', '2');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /decoded 2 image\(s\).*first 2 tokens/);
});

test('reconstruct writes side-by-side PNGs and prints PSNR/SSIM per image', () => {
  const r = run('reconstruct', img, '--model', model, '-o', 'rec', '--steps', '2');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /a\.png: PSNR [\d.]+ dB, SSIM -?[\d.]+/);
  assert.ok(existsSync(join(dir, 'rec', 'a.png')));
});

test('a non-image or corrupt image: one-line error naming the file, no token file', () => {
  writeFileSync(join(dir, 'notes.png'), 'this is text');
  expectError(run('encode', img, 'notes.png', '--model', model, '-o', 'bad1.json'), /notes\.png: not a readable image/);
  assert.ok(!existsSync(join(dir, 'bad1.json')));
  const png = readFileSync(img);
  writeFileSync(join(dir, 'cut.png'), png.subarray(0, 60));
  expectError(run('encode', 'cut.png', '--model', model, '-o', 'bad2.json'), /cut\.png: not a readable image/);
  assert.ok(!existsSync(join(dir, 'bad2.json')));
  expectError(run('encode', 'missing.png', '--model', model, '-o', 'bad3.json'), /missing\.png: cannot read \(ENOENT\)/);
});

function tokenFile(name: string, mutate: (f: { images: { ids: number[] }[]; K: number; model: { fingerprint: string } }) => void): string {
  const f = JSON.parse(readFileSync(join(dir, 'tok.json'), 'utf8'));
  mutate(f);
  writeFileSync(join(dir, name), JSON.stringify(f));
  return name;
}

test('bad token files: ids out of range, wrong count, another model; nothing written', () => {
  expectError(run('decode', tokenFile('range.json', (f) => (f.images[0].ids[3] = 9999)), '--model', model, '-o', 'o1', '--steps', '2'), /range\.json: token id 9999 at position 3 is out of range 0\.\.31/);
  expectError(run('decode', tokenFile('count.json', (f) => f.images[1].ids.pop()), '--model', model, '-o', 'o2', '--steps', '2'), /count\.json: image 1 has 7 tokens, the file says K = 8/);
  expectError(run('decode', 'tok.json', '--model', other, '-o', 'o3', '--steps', '2'), /tok\.json: tokens were made by model micro \([0-9a-f]+\), not by this model/);
  writeFileSync(join(dir, 'garbage.json'), '{not json');
  expectError(run('decode', 'garbage.json', '--model', model, '-o', 'o4'), /garbage\.json: not a token file/);
  for (const o of ['o1', 'o2', 'o3', 'o4']) assert.ok(!existsSync(join(dir, o)), `${o} must not exist`);
});

test('bad checkpoints: missing, truncated, shape-mismatched', () => {
  const missing = join(dir, 'nomodel');
  mkdirSync(missing);
  copyFileSync(join(model, 'config.json'), join(missing, 'config.json'));
  expectError(run('encode', img, '--model', missing, '-o', 'x.json'), /nomodel: no model\.safetensors/);
  const cut = join(dir, 'cutmodel');
  mkdirSync(cut);
  copyFileSync(join(model, 'config.json'), join(cut, 'config.json'));
  const w = readFileSync(join(model, 'model.safetensors'));
  writeFileSync(join(cut, 'model.safetensors'), w.subarray(0, w.length - 100));
  expectError(run('encode', img, '--model', cut, '-o', 'x.json'), /cutmodel\/model\.safetensors: truncated/);
  const wide = join(dir, 'widemodel');
  mkdirSync(wide);
  const cfg = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
  cfg.decoder.width = 48;
  writeFileSync(join(wide, 'config.json'), JSON.stringify(cfg));
  copyFileSync(join(model, 'model.safetensors'), join(wide, 'model.safetensors'));
  expectError(run('encode', img, '--model', wide, '-o', 'x.json'), /widemodel\/model\.safetensors: tensor dec\.\S+ has shape \[[\d,]+\], model expects \[[\d,]+\]/);
  expectError(run('encode', img, '--model', join(dir, 'nowhere'), '-o', 'x.json'), /nowhere: no such model directory/);
  assert.ok(!existsSync(join(dir, 'x.json')));
});

test('unknown config or data source, --steps 0, a bad --guidance, --resume with --init-renderer, an existing run without --resume', () => {
  expectError(run('train', '--config', 'nope', '--data', 'shapes', '--out', 'r1'), /--config nope: no such named config/);
  expectError(run('train', '--config', 'tiny', '--data', 'nowhere', '--out', 'r2'), /--data nowhere: not a built-in source/);
  expectError(run('train', '--config', 'tiny', '--data', 'shapes', '--out', 'r3', '--steps', '0'), /--steps must be an integer ≥ 1, got '0'/);
  expectError(run('decode', 'tok.json', '--model', model, '-o', 'o5', '--steps', '0'), /--steps must be an integer ≥ 1, got '0'/);
  expectError(run('decode', 'tok.json', '--model', model, '-o', 'o6', '--keep', '9'), /--keep 9: the model has only K = 8 tokens/);
  expectError(run('decode', 'tok.json', '--model', model, '-o', 'o7', '--renderer'), /this model has no renderer/);
  expectError(run('decode', 'tok.json', '--model', model, '-o', 'o8', '--guidance', '-1'), /--guidance must be a number ≥ 0, got '-1'/);
  expectError(run('eval', '--model', model, '--data', 'shapes', '--report', 'e2.md', '--guidance', 'x'), /--guidance must be a number ≥ 0, got 'x'/);
  expectError(run('eval', '--model', model, '--data', 'nowhere', '--report', 'e.md'), /--data nowhere/);
  expectError(run('train-renderer', '--model', model, '--data', 'shapes', '--out', 'r4', '--resume', '--init-renderer', other), /--init-renderer \S+: cannot start a resumed run \(r4\) from another renderer/);
  for (const o of ['r1', 'r2', 'r3', 'r4', 'o5', 'o6', 'o7', 'o8', 'e.md', 'e2.md']) assert.ok(!existsSync(join(dir, o)), `${o} must not exist`);
  // a model directory that holds a training run is not overwritten by a new one
  mkdirSync(join(dir, 'run'));
  copyFileSync(join(model, 'model.safetensors'), join(dir, 'run', 'train-state.safetensors'));
  expectError(run('train', '--config', 'tiny', '--data', 'shapes', '--out', 'run', '--steps', '1'), /run: already holds a training run \(train-state\.safetensors\); use --resume/);
});
