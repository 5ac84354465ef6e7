// Parity with the official Selftok code (test/fixtures/official, written by
// scripts/make-official-fixtures.py through the official SelftokPipeline with PyTorch; CI
// only reads the files): the importer turns the official checkpoints (a torch.save .pth, a
// safetensors renderer, an SAI-layout VAE) into a model directory, and that model computes
// the official numbers: token ids identical; the VAE both ways, encoder features, one decoder
// velocity and the renderer within 1e-4 (max abs, float32); a 3-step decode from the same
// noise within 1e-3; the sampler's float32 grid bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { numpy as np, tree } from '@jax-js/jax';
import { openCheckpoint } from '../src/import/checkpoint.ts';
import { importOfficial } from '../src/import/import.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { decoderNet, embedNoisy } from '../src/tokenizer/decoder.ts';
import { encodeFeatures } from '../src/tokenizer/encoder.ts';
import { renderNet } from '../src/tokenizer/renderer.ts';
import { eulerGrid } from '../src/tokenizer/flow.ts';
import { encodeLatents, decodeLatents, vaeEncoder } from '../src/vae/sd3-vae.ts';
import { tmp, wasm } from './helpers.ts';
import { loadSelftok } from '../src/node/models.ts';

const DIR = join(import.meta.dirname, 'fixtures', 'official');
const facts = JSON.parse(readFileSync(join(DIR, 'facts.json'), 'utf8'));
const io = openCheckpoint(join(DIR, 'io.safetensors'));
const ioShape = (k: string): number[] => io.keys().get(k)!.shape;
const ioArray = (k: string): np.Array => np.array(io.read(k)).reshape(ioShape(k));

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function within(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  const d = maxAbs(got, want);
  console.log(`# parity ${name}: max |Δ| ${d.toExponential(2)} (tolerance ${tol})`);
  assert.ok(d <= tol, `${name}: max |Δ| ${d} > ${tol}`);
}

let dir = '';
let model: Selftok;

test('import: the official checkpoints become a model directory', async () => {
  await wasm();
  dir = tmp('selftok-official-');
  const r = await importOfficial({
    tokenizer: join(DIR, 'tokenizer.pth'),
    renderer: join(DIR, 'renderer.safetensors'),
    vae: join(DIR, 'vae.safetensors'),
    out: dir,
    dtype: 'float32',
    size: facts.size,
    stages: facts.stages,
    perStage: facts.per_stage,
  });
  assert.equal(r.cfg.K, facts.K);
  assert.equal(r.cfg.quantizer.codebookSize, facts.codebook);
  assert.equal(r.vaeLayout, 'sai');
  assert.deepEqual(r.cfg.vae!.chMult, facts.vae.ch_mult);
  model = loadSelftok(dir);
  assert.equal(model.imageSize, facts.size);
  assert.ok(model.hasRenderer);
});

test('parity: the VAE both ways (posterior mean, SD3 latent format)', async () => {
  const vae = model.params.vae!;
  const cfg = model.cfg.vae!;
  within('vae moments', (await vaeEncoder(tree.ref(vae.encoder), ioArray('image')).data()) as Float32Array, io.read('vae_moments'), 1e-4);
  within('scaled latent', (await encodeLatents(cfg, tree.ref(vae.encoder), ioArray('image')).data()) as Float32Array, io.read('latent'), 1e-4);
  within('vae decode', (await decodeLatents(cfg, tree.ref(vae.decoder), ioArray('latent')).data()) as Float32Array, io.read('vae_decoded'), 1e-4);
});

test('parity: token ids identical, encoder features and token embeddings within 1e-4', async () => {
  const ids = await model.encode(io.read('image'), 1);
  assert.deepEqual([...ids], facts.tokens[0]);
  assert.deepEqual([...ids], [...io.read('tokens')]);
  const feats = (await encodeFeatures(tree.ref(model.params.enc), model.cfg, ioArray('latent')).data()) as Float32Array;
  within('encoder features (project_in)', feats, io.read('encoder_projected'), 1e-4);
  within('token embeddings (post-LN)', (await model.embedIds(ids, 1).data()) as Float32Array, io.read('token_embeddings'), 1e-4);
});

test('parity: one decoder velocity at t = 0.6 with its DiTi mask', async () => {
  const B = 1;
  const mask = io.read('dec_mask');
  // the official schedule gives the same visible prefix at τ = 600
  const ours = model.schedule.mask(new Float32Array([600]), model.K);
  assert.deepEqual([...ours], [...mask]);
  const h = np.array(io.read('token_embeddings')).reshape([B, model.K, model.cfg.quantizer.dim]);
  const xt = ioArray('dec_x_t');
  const v = decoderNet(tree.ref(model.params.dec), model.cfg, {
    imageTokens: embedNoisy(tree.ref(model.params.dec), model.cfg, xt),
    t: np.array(io.read('dec_t')),
    tokens: h,
    mask: np.array(mask).reshape([B, model.K]),
    drop: null,
    contextSeesImage: true,
  });
  within('decoder velocity', (await v.data()) as Float32Array, io.read('dec_v'), 1e-4);
});

test('parity: the sampler grid is the official float32 one, bit for bit', () => {
  const g = eulerGrid(50, 'float32');
  assert.deepEqual(g.map((s) => s.t), [...io.read('flow50_scheduled_t')]);
  assert.deepEqual(g.map((s) => s.tau), [...io.read('flow50_timestep_map')].map(Math.trunc));
  const prev = io.read('flow50_scheduled_t_prev');
  assert.deepEqual(g.map((s) => s.dt), g.map((s, i) => Math.fround(s.t - prev[i])));
});

test('parity: a 3-step decode from the recorded noise within 1e-3, the renderer within 1e-4', async () => {
  const ids = Int32Array.from(io.read('tokens'));
  const rec = await model.decode(ids, 1, { steps: facts.steps, noise: io.read('decoding_noise') });
  // the pipeline returns norm_ip(x) = (clamp(x, −1, 1) + 1) / 2
  within(`${facts.steps}-step decode`, rec.map((v) => (v + 1) / 2), io.read('decoding_recon'), 1e-3);
  const lat = renderNet(tree.ref(model.params.ren!), model.cfg, model.embedIds(ids, 1));
  within('renderer latent', (await lat.data()) as Float32Array, io.read('renderer_latent'), 1e-4);
  const img = await model.render(ids, 1);
  within('renderer image', img.map((v) => (v + 1) / 2), io.read('renderer_recon'), 1e-4);
});
