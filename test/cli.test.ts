// The CLI as a user runs it: happy paths and every bad input of issue #2, each giving a
// one-line error naming the file, a non-zero exit, and no partial output.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { wasm, microConfig, tmp, runCli, runCliSignalled, expectOneLineError, type CliResult } from './helpers.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { encodePng } from '../src/node/image.ts';
import { renderShapes } from '../src/data/shapes.ts';
import { saveModel } from '../src/node/models.ts';

let dir: string;
let model: string;
let other: string;
let img: string;
let img2: string;

function run(...args: string[]): CliResult {
  return runCli(dir, [...args, '--device', 'wasm']);
}

/** Commands that compute nothing (import, corpus) take no --device. */
function runPlain(...args: string[]): CliResult {
  return runCli(dir, args, /^import: /);
}

const expectError = expectOneLineError;

before(async () => {
  await wasm();
  dir = tmp();
  model = join(dir, 'model');
  other = join(dir, 'other');
  const m = Selftok.create(microConfig(), 1);
  m.codebook.initialized = true;
  await saveModel(m, model);
  const m2 = Selftok.create(microConfig(), 2);
  await saveModel(m2, other);
  img = join(dir, 'a.png');
  img2 = join(dir, 'b.png');
  writeFileSync(img, await encodePng(renderShapes(1, 40), 40, 40));
  writeFileSync(img2, await encodePng(renderShapes(2, 24), 24, 24));
  writeFileSync(join(dir, 'micro.json'), JSON.stringify(microConfig()));
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
  expectError(run('encode', img, '--model', missing, '-o', 'x.json'), /nomodel: not a model directory \(no model\.safetensors\)/);
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

test('unknown config or data source, --steps 0, a bad --guidance, --resume with --init-renderer or --init, an existing run without --resume', () => {
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
  expectError(run('train', '--init', model, '--data', 'shapes', '--out', 'r4', '--resume'), /--init \S+: cannot start a resumed run \(r4\) from a model/);
  expectError(run('train', '--init', join(dir, 'nowhere'), '--data', 'shapes', '--out', 'r5'), /nowhere: no such model directory/);
  for (const o of ['r1', 'r2', 'r3', 'r4', 'r5', 'o5', 'o6', 'o7', 'o8', 'e.md', 'e2.md']) assert.ok(!existsSync(join(dir, o)), `${o} must not exist`);
  // a model directory that holds a training run is not overwritten by a new one
  mkdirSync(join(dir, 'run'));
  copyFileSync(join(model, 'model.safetensors'), join(dir, 'run', 'train-state.safetensors'));
  expectError(run('train', '--config', 'tiny', '--data', 'shapes', '--out', 'run', '--steps', '1'), /run: already holds a training run \(train-state\.safetensors\); use --resume/);
});

test('train: Ctrl-C (SIGINT) stops after the running step with a checkpoint of it (exit 130), and --resume goes on from there', async () => {
  const r = await runCliSignalled(dir, ['train', '--config', 'micro.json', '--data', 'shapes', '--out', 'stopped', '--steps', '100000', '--ckpt-every', '1000', '--sample-every', '0', '--log-every', '1', '--device', 'wasm'], /^step 2:/m, 'SIGINT');
  assert.equal(r.code, 130, r.err);
  const m = /train stopped: stopped by SIGINT at step (\d+), checkpoint written; continue with --resume/.exec(r.err);
  assert.ok(m, r.err);
  const at = Number(m[1]);
  assert.ok(at >= 2 && at < 1000, `stopped at ${at}`);
  assert.doesNotMatch(r.out, /trained stopped/);
  const resumed = run('train', '--data', 'shapes', '--out', 'stopped', '--steps', String(at + 1), '--resume', '--sample-every', '0');
  assert.equal(resumed.code, 0, resumed.err);
  assert.match(resumed.err, new RegExp(`from step ${at} to ${at + 1}`));
  assert.match(resumed.out, new RegExp(`trained stopped: step ${at + 1}, loss \\d`));
});

test('train --init: fine-tunes a model folder under a new recipe; another architecture is refused with nothing written', () => {
  const recipe = microConfig((c) => (c.train.lr = 3e-4));
  writeFileSync(join(dir, 'recipe.json'), JSON.stringify(recipe));
  let r = run('train', '--init', model, '--config', 'recipe.json', '--data', 'shapes', '--out', 'ft', '--steps', '2', '--sample-every', '0');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /lr 0\.0003, from step 0 to 2, fine-tuning \S*model \(step 0\)/);
  assert.match(r.out, /trained ft: step 2, loss \d/);
  assert.ok(existsSync(join(dir, 'ft', 'train-state.safetensors')) && existsSync(join(dir, 'ft', 'model.safetensors')));
  r = run('train', '--data', 'shapes', '--out', 'ft', '--steps', '3', '--resume', '--sample-every', '0');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /trained ft: step 3/);
  writeFileSync(join(dir, 'wide.json'), JSON.stringify(microConfig((c) => (c.decoder.width = 48))));
  expectError(run('train', '--init', model, '--config', 'wide.json', '--data', 'shapes', '--out', 'ft2', '--steps', '2'), /wide\.json: --config may change only the train and sampler sections .*'decoder' differs/);
  assert.ok(!existsSync(join(dir, 'ft2')));
});

test('import → encode → decode --noise on the official fixtures; bad import inputs are one-line errors with nothing written', async () => {
  const F = resolve('test/fixtures/official');
  const facts = JSON.parse(readFileSync(join(F, 'facts.json'), 'utf8'));
  let r = runPlain('import', '--tokenizer', join(F, 'tokenizer.pth'), '--renderer', join(F, 'renderer.safetensors'), '--vae', join(F, 'vae.safetensors'), '--out', 'off', '--size', '128', '--stages', '200,400,600,800,1000', '--per-stage', '6,6,2,1,1');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /imported 328 tensors, 3\.6 M parameters .* VAE layout sai/);
  // the fixture's image, as the pipeline read it, through the CLI
  const { openCheckpoint } = await import('../src/import/checkpoint.ts');
  const io = openCheckpoint(join(F, 'io.safetensors'));
  writeFileSync(join(dir, 'fixture.png'), await encodePng(io.read('image'), 128, 128));
  r = run('encode', 'fixture.png', '--model', 'off', '-o', 'off-tok.json');
  assert.equal(r.code, 0, r.err);
  // the PNG's 8-bit rounding may move a token; most must match the pipeline's
  const ids: number[] = JSON.parse(readFileSync(join(dir, 'off-tok.json'), 'utf8')).images[0].ids;
  assert.ok(ids.filter((v, i) => v === facts.tokens[0][i]).length >= 12, `${ids} vs ${facts.tokens[0]}`);
  // decode the pipeline's own tokens from its recorded noise (B×C×h×w, PyTorch layout)
  const noise = io.read('decoding_noise'); // NHWC in the fixture: write it back as NCHW
  const nchw = new Float32Array(noise.length);
  for (let c = 0; c < 16; c++) for (let i = 0; i < 256; i++) nchw[c * 256 + i] = noise[i * 16 + c];
  const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 16, 16, 16), }";
  const pad = 64 - ((10 + header.length + 1) % 64);
  const npy = Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY'), Buffer.from([1, 0]), Buffer.alloc(2), Buffer.from(header + ' '.repeat(pad) + '\n', 'latin1'), Buffer.from(nchw.buffer)]);
  npy.writeUInt16LE(header.length + pad + 1, 8);
  writeFileSync(join(dir, 'noise.npy'), npy);
  writeFileSync(join(dir, 'pipe-tok.npy'), Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY'), Buffer.from([1, 0]), (() => { const b = Buffer.alloc(2); b.writeUInt16LE(118); return b; })(), Buffer.from("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 16), }".padEnd(117) + '\n', 'latin1'), Buffer.from(Int32Array.from(facts.tokens[0]).buffer)]));
  r = run('decode', 'pipe-tok.npy', '--model', 'off', '-o', 'off-dec', '--steps', '3', '--noise', 'noise.npy');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /3 steps, noise noise\.npy, guidance 1/);
  r = run('decode', 'pipe-tok.npy', '--model', 'off', '-o', 'off-dec2', '--steps', '3', '--noise', 'pipe-tok.npy');
  expectError(r, /pipe-tok\.npy: unsupported dtype <i4 \(expected float32 or float64\)/);
  assert.ok(!existsSync(join(dir, 'off-dec2')));
  r = runPlain('import', '--tokenizer', join(F, 'tokenizer.pth'), '--vae', join(F, 'vae.safetensors'), '--out', 'off2', '--size', '128');
  expectError(r, /K = 16 tokens: give the DiTi schedule with --stages and --per-stage/);
  r = runPlain('import', '--tokenizer', resolve('test/fixtures/import/runs-code.pth'), '--vae', join(F, 'vae.safetensors'), '--out', 'off3');
  expectError(r, /runs-code\.pth: refuses global posix\.system/);
  r = runPlain('import', '--tokenizer', join(F, 'tokenizer.pth'), '--vae', join(F, 'vae.safetensors'), '--out', 'off', '--size', '128');
  expectError(r, /--out off: exists and is not empty/);
  assert.ok(!existsSync(join(dir, 'off2')) && !existsSync(join(dir, 'off3')));
});

test('a model too large for the wasm device stops before loading, with the reason; its small encoder is allowed to load (and the empty file is then refused)', async () => {
  const big = join(dir, 'big');
  const cfg = microConfig((c) => {
    c.decoder.width = 2048;
    c.decoder.heads = 16;
    c.decoder.depth = 24;
  });
  mkdirSync(big, { recursive: true });
  writeFileSync(join(big, 'config.json'), JSON.stringify(cfg));
  // a weights file with no tensors: the refusal must come before any tensor is read
  const { writeSafetensorsStreamed } = await import('../src/node/safetensors-files.ts');
  await writeSafetensorsStreamed(join(big, 'model.safetensors'), new Map());
  const r = run('decode', 'tok.json', '--model', big, '-o', 'big-out');
  expectError(r, /big: the weights for decode take \d+\.\d GiB as float32 and the wasm device addresses 4 GiB in all: run it with --device webgpu/);
  const e = run('encode', img, '--model', big, '-o', 'big.json');
  expectError(e, /big\/model\.safetensors: missing tensor enc\.patch\.w/);
});
