// The importer's checks (src/import/): the full-size key → shape manifests of the official
// models (made with ../shared/reference/cpu-harness/build_full.py, committed) map key for
// key; a missing, unexpected or mis-shaped key, an untrained quantizer and a truncated file
// are one-line errors that name the problem; the diffusers VAE layout imports to the same
// weights as the SAI layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../src/import/checkpoint.ts';
import { importOfficial } from '../src/import/import.ts';
import { officialConfig, parameterShapes, rendererNameMap, tokenizerNameMap, vaeConfigFrom, vaeNameMap, verifyMap } from '../src/import/official.ts';
import { writeSafetensorsStreamed } from '../src/node/safetensors-files.ts';
import type { PendingTensor } from '../src/io/safetensors.ts';
import type { DType, TensorInfo } from '../src/io/checkpoint.ts';
import type { Params } from '../src/nn/params.ts';
import { countParams } from '../src/nn/params.ts';
import { validateConfig } from '../src/tokenizer/config.ts';
import { Selftok, ShapeInit } from '../src/tokenizer/model.ts';
import { tmp, wasm } from './helpers.ts';

const DIR = join(import.meta.dirname, 'fixtures', 'official');
const FULL = join(DIR, 'full');
const facts = JSON.parse(readFileSync(join(DIR, 'facts.json'), 'utf8'));

function manifest(name: string): Map<string, TensorInfo> {
  const m = JSON.parse(readFileSync(join(FULL, name), 'utf8')) as Record<string, { shape: number[]; dtype: string }>;
  return new Map(Object.entries(m).map(([k, v]) => [k, { shape: v.shape, dtype: (v.dtype === 'float32' ? 'F32' : 'F16') as DType }]));
}

test('full size: every key of the tokenizer, the renderer and both VAE layouts maps, with its shape', async () => {
  await wasm();
  const tok = manifest('manifest-tokenizer.json');
  const ren = manifest('manifest-renderer-full.json');
  const sai = vaeNameMap(manifest('manifest-vae-sdvae.json'), 'sd3 (SAI)');
  const diff = vaeNameMap(manifest('manifest-vae-diffusers-derived.json'), 'sd3 (diffusers)');
  assert.equal(sai.layout, 'sai');
  assert.equal(diff.layout, 'diffusers');
  const vae = vaeConfigFrom(sai.renamed, 'vae');
  assert.deepEqual(vae, { ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 16, shift: 0.0609, scale: 1.5305 });
  assert.deepEqual(vaeConfigFrom(diff.renamed, 'vae'), vae);
  const cfg = validateConfig(officialConfig(tok, { size: 256, vae }, 'tokenizer'), 'tokenizer');
  assert.equal(cfg.K, 512);
  assert.deepEqual([cfg.encoder.depth, cfg.encoder.imageWidth, cfg.encoder.imageHeads, cfg.encoder.tokenWidth, cfg.encoder.tokenHeads], [16, 64, 4, 512, 8]);
  assert.deepEqual([cfg.decoder.depth, cfg.decoder.width, cfg.decoder.heads, cfg.image.size, cfg.image.patch], [24, 1536, 24, 32, 2]);
  assert.deepEqual(cfg.schedule, { type: 'diti', stages: [200, 400, 600, 800, 1000], perStage: [192, 184, 72, 48, 16] });
  const model = Selftok.create(cfg, 0, new ShapeInit());
  model.addRenderer(0, new ShapeInit());
  const ours = parameterShapes(model.params as unknown as Params);
  ours.set('quantizer.codebook', [cfg.quantizer.codebookSize, cfg.quantizer.dim]);
  const tmap = tokenizerNameMap(cfg, tok);
  verifyMap(tmap, tok, ours, 'tokenizer', /^(enc|dec)\.|^quantizer\./);
  const rmap = rendererNameMap(cfg, ren);
  verifyMap(rmap, ren, ours, 'renderer', /^ren\./);
  verifyMap(sai.map, manifest('manifest-vae-sdvae.json'), ours, 'vae', /^vae\./);
  verifyMap(diff.map, manifest('manifest-vae-diffusers-derived.json'), ours, 'vae', /^vae\./);
  // 100%: every checkpoint key is mapped or knowingly ignored, and the counts add up
  assert.equal(tmap.tensors.length + tmap.ignored.size, tok.size);
  assert.equal(rmap.tensors.length + rmap.ignored.size, ren.size);
  assert.equal(sai.map.tensors.length, 244);
  assert.equal(diff.map.tensors.length, 244);
  // parameter counts as the reference reports them (build_full.py)
  const report = JSON.parse(readFileSync(join(FULL, 'report-full.json'), 'utf8'));
  const vaeParams = countParams(model.params.vae as unknown as Params);
  assert.equal(vaeParams, report.vae.encoder_params + report.vae.decoder_params);
  const decParams = countParams(model.params.dec as unknown as Params);
  console.log(`# full size: encoder ${(countParams(model.params.enc as unknown as Params) / 1e6).toFixed(1)} M, decoder ${(decParams / 1e6).toFixed(1)} M, VAE ${(vaeParams / 1e6).toFixed(1)} M parameters in our layout`);
});

/** Rewrite a checkpoint as safetensors with `edit` applied (name → values+shape, or undefined to drop). */
async function rewrite(src: string, dst: string, edit: (name: string, shape: number[], x: Float32Array) => { shape: number[]; x: Float32Array } | undefined, extra: Record<string, { shape: number[]; x: Float32Array }> = {}): Promise<void> {
  const ck = openCheckpoint(src);
  const out = new Map<string, PendingTensor>();
  for (const [name, info] of ck.keys()) {
    const r = edit(name, info.shape, ck.read(name));
    if (r) out.set(name, { dtype: 'F32', shape: r.shape, data: () => new Uint8Array(r.x.buffer) });
  }
  for (const [name, r] of Object.entries(extra)) out.set(name, { dtype: 'F32', shape: r.shape, data: () => new Uint8Array(r.x.buffer) });
  ck.close();
  await writeSafetensorsStreamed(dst, out);
}

test('bad checkpoints: missing, unexpected and mis-shaped keys, an untrained quantizer, a truncated file', async () => {
  await wasm();
  const d = tmp('selftok-badck-');
  const base = { vae: join(DIR, 'vae.safetensors'), dtype: 'float32' as const, size: facts.size, stages: facts.stages, perStage: facts.per_stage };
  const tok = join(d, 'tok.safetensors');
  await rewrite(join(DIR, 'tokenizer.pth'), tok, (_, shape, x) => ({ shape, x }));
  const run = (over: Partial<Parameters<typeof importOfficial>[0]>) => importOfficial({ ...base, tokenizer: tok, out: join(d, `out-${Math.random()}`), ...over });

  const missing = join(d, 'missing.safetensors');
  await rewrite(join(DIR, 'renderer.safetensors'), missing, (n, shape, x) => (n === 'model.final_layer.linear.bias' ? undefined : { shape, x }));
  await assert.rejects(run({ renderer: missing }), /missing\.safetensors: missing key model\.final_layer\.linear\.bias$/);

  const unexpected = join(d, 'unexpected.safetensors');
  await rewrite(join(DIR, 'renderer.safetensors'), unexpected, (_, shape, x) => ({ shape, x }), { 'model.extra_head.weight': { shape: [2], x: new Float32Array(2) } });
  await assert.rejects(run({ renderer: unexpected }), /unexpected\.safetensors: unexpected key model\.extra_head\.weight/);

  const misshaped = join(d, 'misshaped.safetensors');
  await rewrite(join(DIR, 'renderer.safetensors'), misshaped, (n, shape, x) => (n === 'model.mask_token' ? { shape: [1, 1, shape[2] + 1], x: new Float32Array(shape[2] + 1) } : { shape, x }));
  await assert.rejects(run({ renderer: misshaped }), /misshaped\.safetensors: model\.mask_token has shape \[1,1,129\], expected \[1,1,128\]/);

  const untrained = join(d, 'untrained.safetensors');
  await rewrite(tok, untrained, (n, shape, x) => ({ shape, x: n === 'encoder.quantizer._codebook.initted' ? new Float32Array([0]) : x }));
  await assert.rejects(run({ tokenizer: untrained }), /untrained\.safetensors: encoder\.quantizer\._codebook\.initted is 0: the codebook was never initialised/);

  const warm = join(d, 'warmup.safetensors');
  await rewrite(tok, warm, (n, shape, x) => ({ shape, x: n === 'encoder.quantizer.continuous' ? new Float32Array([1]) : x }));
  await assert.rejects(run({ tokenizer: warm }), /encoder\.quantizer\.continuous is 1: the quantizer is still in its continuous warm-up/);

  const cut = join(d, 'cut.safetensors');
  copyFileSync(join(DIR, 'renderer.safetensors'), cut);
  truncateSync(cut, Math.floor(statSync(cut).size * 0.7));
  await assert.rejects(run({ renderer: cut }), /cut\.safetensors: truncated \(tensor .* ends at byte \d+, the file has \d+\)/);

  const cutPth = join(d, 'cut.pth');
  copyFileSync(join(DIR, 'tokenizer.pth'), cutPth);
  truncateSync(cutPth, Math.floor(statSync(cutPth).size * 0.7));
  await assert.rejects(run({ tokenizer: cutPth }), /cut\.pth: not a PyTorch zip checkpoint/);

  await assert.rejects(run({ renderer: join(DIR, 'vae.safetensors') }), /vae\.safetensors: missing key model\.mask_token/);
});

test('the diffusers VAE layout imports to the same weights as the SAI layout', async () => {
  await wasm();
  const d = tmp('selftok-diffusers-');
  const sai = openCheckpoint(join(DIR, 'vae.safetensors'));
  const up = 4; // levels of the fixture VAE
  const toDiffusers = (k: string): string =>
    k
      .replace(/^first_stage_model\./, '')
      .replace(/^(encoder|decoder)\.norm_out\./, '$1.conv_norm_out.')
      .replace(/^encoder\.down\.(\d+)\.block\.(\d+)\.nin_shortcut\./, 'encoder.down_blocks.$1.resnets.$2.conv_shortcut.')
      .replace(/^encoder\.down\.(\d+)\.block\.(\d+)\./, 'encoder.down_blocks.$1.resnets.$2.')
      .replace(/^encoder\.down\.(\d+)\.downsample\.conv\./, 'encoder.down_blocks.$1.downsamplers.0.conv.')
      .replace(/^decoder\.up\.(\d+)\.block\.(\d+)\.nin_shortcut\./, (_, i, j) => `decoder.up_blocks.${up - 1 - Number(i)}.resnets.${j}.conv_shortcut.`)
      .replace(/^decoder\.up\.(\d+)\.block\.(\d+)\./, (_, i, j) => `decoder.up_blocks.${up - 1 - Number(i)}.resnets.${j}.`)
      .replace(/^decoder\.up\.(\d+)\.upsample\.conv\./, (_, i) => `decoder.up_blocks.${up - 1 - Number(i)}.upsamplers.0.conv.`)
      .replace(/^(encoder|decoder)\.mid\.block_(\d)\./, (_, s, n) => `${s}.mid_block.resnets.${Number(n) - 1}.`)
      .replace(/^(encoder|decoder)\.mid\.attn_1\.norm\./, '$1.mid_block.attentions.0.group_norm.')
      .replace(/^(encoder|decoder)\.mid\.attn_1\.(q|k|v)\./, '$1.mid_block.attentions.0.to_$2.')
      .replace(/^(encoder|decoder)\.mid\.attn_1\.proj_out\./, '$1.mid_block.attentions.0.to_out.0.');
  const out = new Map<string, PendingTensor>();
  for (const [k, info] of sai.keys()) {
    const name = toDiffusers(k);
    const x = sai.read(k);
    // diffusers stores the attention projections as Linear [C, C]
    const shape = /to_(q|k|v|out\.0)\.weight$/.test(name) ? info.shape.slice(0, 2) : info.shape;
    out.set(name, { dtype: 'F32', shape, data: () => new Uint8Array(x.buffer) });
  }
  sai.close();
  const diffusers = join(d, 'diffusion_pytorch_model.safetensors');
  await writeSafetensorsStreamed(diffusers, out);
  const common = { tokenizer: join(DIR, 'tokenizer.pth'), dtype: 'float32' as const, size: facts.size, stages: facts.stages, perStage: facts.per_stage };
  const a = await importOfficial({ ...common, vae: join(DIR, 'vae.safetensors'), out: join(d, 'a') });
  const b = await importOfficial({ ...common, vae: diffusers, out: join(d, 'b') });
  assert.equal(b.vaeLayout, 'diffusers');
  const ma = openCheckpoint(join(d, 'a', 'model.safetensors'));
  const mb = openCheckpoint(join(d, 'b', 'model.safetensors'));
  assert.deepEqual([...ma.keys().keys()], [...mb.keys().keys()]);
  for (const k of ma.keys().keys()) if (k.startsWith('vae.')) assert.deepEqual(ma.read(k), mb.read(k), k);
  assert.equal(a.parameters, b.parameters);
  ma.close();
  mb.close();
});
