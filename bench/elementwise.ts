// Where a training step's element-wise time goes on wasm (issue #21): one step of a config under
// jax-js's profiler, its element-wise kernels (no reduction) grouped by what they do:
//   pack        the optimizer's gradient bucket: sums of ≥ 3 zero-padded flat inputs, which is
//               how jax-js lowers np.concatenate (src/nn/optim.ts packTree)
//   copy        a lone read through a view (transpose, reshape of a non-contiguous view, slice)
//   transcendental  uses Exp, Log, Sin, Cos, Erf or a reciprocal: outside jax-js's wasm SIMD set
//               as released, so the whole kernel ran one lane at a time (exp and 1/x are on
//               f32x4 with this repository's patch, docs/engine-profile.md)
//   simd        the rest: adds, products, selects (jax-js's SIMD path where the reads allow)
//
//   node --import tsx bench/elementwise.ts [CONFIG] [BATCH] [--json FILE]
import { writeFileSync } from 'node:fs';
import { setupDevice } from '../src/node/device.ts';
import { loadConfig } from '../src/node/configs.ts';
import { Trainer } from '../src/train/trainer.ts';
import { ShapesSource } from '../src/data/source.ts';
import { kernelKind, traceStep } from '../src/engine/profile.ts';

const args = process.argv.slice(2);
const jsonAt = args.indexOf('--json');
const json = jsonAt >= 0 ? args.splice(jsonAt, 2)[1] : undefined;
const [name = 'photo64', batch = '16'] = args;

const GROUPS = ['pack', 'copy', 'transcendental', 'simd'] as const;
type Group = (typeof GROUPS)[number];
const SCALAR_OPS = /\b(Exp|Log|Sin|Cos|Erf|Erfc)\(|1\//;

function group(exp: string): Group {
  const reads = exp.match(/GV_\d+<\w+>\{[^}]*\}/g) ?? [];
  if (reads.length >= 3 && reads.every((r) => /^GV_\d+<\w+>\{\d+:1:nc\}$/.test(r)) && /^\(*GV_0<\w+>\{\d+:1:nc\}\[[^\]]*\]( \+ |\) \+ )/.test(exp)) return 'pack';
  if (/^GV_\d+<\w+>\{[^}]*\}\[[^\]]*\]$/.test(exp)) return 'copy';
  if (SCALAR_OPS.test(exp)) return 'transcendental';
  return 'simd';
}

await setupDevice('wasm');
const cfg = loadConfig(name);
const trainer = Trainer.create(cfg, 0, Number(batch));
const data = new ShapesSource(cfg.image.size);
for (let s = 0; s < 2; s++) await trainer.trainStep(data);
const { wallMs, kernels } = await traceStep(() => trainer.trainStep(data));

const figures = Object.fromEntries(GROUPS.map((g) => [g, { kernels: 0, ms: 0 }])) as Record<Group, { kernels: number; ms: number }>;
let kernelMs = 0;
for (const { info, ms } of kernels) {
  kernelMs += ms;
  if (kernelKind(info) !== 'element-wise') continue;
  const f = figures[group(String(info.exp))];
  f.kernels++;
  f.ms += ms;
}
const ew = GROUPS.reduce((s, g) => s + figures[g].ms, 0);
console.log(`${name} at batch ${batch}, one step on wasm: ${wallMs.toFixed(0)} ms wall, ${kernelMs.toFixed(0)} ms in kernels, ${ew.toFixed(0)} ms element-wise`);
console.log('| element-wise group | kernels | ms |\n| --- | --- | --- |');
for (const g of GROUPS) console.log(`| ${g} | ${figures[g].kernels} | ${figures[g].ms.toFixed(1)} |`);
if (json) writeFileSync(json, JSON.stringify({ config: name, batch: Number(batch), wallMs, kernelMs, elementwiseMs: ew, groups: figures }, null, 1) + '\n');
