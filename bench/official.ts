// `npm run bench:official`: the released Selftok architecture at full size (Enc-Qformer-Uni-XL/2,
// 512 tokens × 32768 codes, MMDiT_XL decoder and renderer, the SD3 VAE), random weights, one
// 256×256 image: time to encode, to decode with the 50-step sampler and with the renderer, and
// peak device memory. The architecture comes from the committed full-size key → shape
// manifests of the official code (test/fixtures/official/full), the same path the importer takes.
// Weights are random, uploaded from a pool of host draws (see below).
//   npm run bench:official -- [--device webgpu|wasm] [--steps 50] [--no-renderer] [--json FILE]
import '../src/engine/wasm-threads.ts';
import { Command, Option } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { numpy as np } from '@jax-js/jax';
import { trackMemory } from '../src/engine/memory.ts';
import { officialConfig, vaeConfigFrom, vaeNameMap } from '../src/import/official.ts';
import { openCheckpoint } from '../src/import/checkpoint.ts';
import type { DType, TensorInfo } from '../src/io/checkpoint.ts';
import { countParams, flattenParams, mapParams, type Params } from '../src/nn/params.ts';
import { validateConfig } from '../src/tokenizer/config.ts';
import { Selftok, ShapeInit } from '../src/tokenizer/model.ts';
import { PACKAGE_ROOT } from '../src/node/paths.ts';
import { DEVICE_CHOICES, setupDevice, type DeviceChoice } from '../src/node/device.ts';

const o = new Command('bench-official')
  .addOption(new Option('--device <d>', 'device').choices(DEVICE_CHOICES).default('auto'))
  .option('--steps <n>', 'sampler steps', '50')
  .option('--size <px>', 'image side', '256')
  .option('--no-renderer', 'skip the renderer (half the weights)')
  .option('--json <file>', 'write the figures here')
  .option('--tokenizer <file>', 'take the architecture from this checkpoint instead of the full-size manifests (a quick check)')
  .option('--vae <file>', 'with --tokenizer: the VAE checkpoint')
  .option('--stages <list>', 'with --tokenizer: DiTi stages')
  .option('--per-stage <list>', 'with --tokenizer: tokens per stage')
  .parse()
  .opts();

const FULL = join(PACKAGE_ROOT, 'test', 'fixtures', 'official', 'full');
function manifest(name: string): Map<string, TensorInfo> {
  const m = JSON.parse(readFileSync(join(FULL, name), 'utf8')) as Record<string, { shape: number[] }>;
  return new Map(Object.entries(m).map(([k, v]) => [k, { shape: v.shape, dtype: 'F32' as DType }]));
}

const device = await setupDevice(o.device as DeviceChoice);
const mem = await trackMemory(device);
const keysOf = (path: string): Map<string, TensorInfo> => {
  const r = openCheckpoint(path);
  const k = r.keys();
  r.close();
  return k;
};
const list = (v?: string): number[] | undefined => v?.split(',').map(Number);
const vae = vaeConfigFrom(vaeNameMap(o.tokenizer ? keysOf(o.vae) : manifest('manifest-vae-sdvae.json'), 'vae').renamed, 'vae');
const tokKeys = o.tokenizer ? keysOf(o.tokenizer) : manifest('manifest-tokenizer.json');
const cfg = validateConfig(officialConfig(tokKeys, { size: Number(o.size), vae, stages: list(o.stages), perStage: list(o.perStage) }, 'tokenizer'), 'tokenizer');
const t0 = performance.now();
const model = Selftok.create(cfg, 0, new ShapeInit());
if (o.renderer) model.addRenderer(0, new ShapeInit());
// random weights, uploaded tensor by tensor from one host buffer of N(0, 1) draws (scaled like a
// trained network's: std 1/√fan-in for matrices), so that the device holds exactly the weights
// a loaded model would: no generator state, no lazily kept draws
const pool = new Float32Array(1 << 24);
for (let i = 0; i < pool.length; i += 2) {
  const u = 1 - Math.random();
  const v = Math.random();
  const r = Math.sqrt(-2 * Math.log(u));
  pool[i] = r * Math.cos(2 * Math.PI * v);
  pool[i + 1] = r * Math.sin(2 * Math.PI * v);
}
let at = 0;
model.params = mapParams(model.params as unknown as Params, (_, leaf) => {
  const n = leaf.size;
  const fanIn = leaf.shape.length >= 2 ? leaf.shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
  const scale = leaf.shape.length >= 2 ? 1 / Math.sqrt(fanIn) : 0.1;
  if (at + n > pool.length) at = 0;
  const w = pool.slice(at, at + n).map((x) => x * scale);
  at = (at + 7919) % (pool.length - 1);
  leaf.dispose();
  const a = np.array(w).reshape(leaf.shape);
  return a;
}) as unknown as typeof model.params;
for (const a of flattenParams(model.params as unknown as Params).values()) await a.blockUntilReady();
const initS = (performance.now() - t0) / 1000;
const params = countParams(model.params as unknown as Params);
console.error(`bench-official: ${cfg.name} on ${device}: ${(params / 1e9).toFixed(2)} B parameters (${(mem.liveBytes() / 2 ** 30).toFixed(1)} GiB) drawn in ${initS.toFixed(1)} s`);

const P = model.imageSize;
const image = new Float32Array(P * P * 3).map((_, i) => Math.sin(i * 0.001));
async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; out: T }> {
  const s = performance.now();
  const out = await fn();
  return { ms: performance.now() - s, out };
}
mem.resetPeak();
const enc1 = await timed(() => model.encode(image, 1));
const enc2 = await timed(() => model.encode(image, 1));
const ids = enc2.out;
const steps = Number(o.steps);
const dec1 = await timed(() => model.decode(ids, 1, { steps, seed: 0 }));
const dec2 = await timed(() => model.decode(ids, 1, { steps, seed: 0 }));
let ren: { first: number; warm: number } | null = null;
if (o.renderer) {
  const r1 = await timed(() => model.render(ids, 1));
  const r2 = await timed(() => model.render(ids, 1));
  ren = { first: r1.ms, warm: r2.ms };
}
const result = {
  device,
  config: cfg.name,
  parameters: params,
  size: P,
  steps,
  encodeMs: { first: enc1.ms, warm: enc2.ms },
  decodeMs: { first: dec1.ms, warm: dec2.ms, perStepWarm: dec2.ms / steps },
  rendererMs: ren,
  peakDeviceMemoryGiB: mem.peakBytes() / 2 ** 30,
  initSeconds: initS,
  finite: Number.isFinite(dec2.out[0]),
};
console.log(JSON.stringify(result));
if (o.json) writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
