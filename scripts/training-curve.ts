// Validation PSNR / SSIM against training steps, from `selftok eval --json` files of checkpoints,
// with the thumbnail baselines of the same eval as horizontal lines: the curve of a model card.
//   node --import tsx scripts/training-curve.ts --out curve.png \
//     --diffusion 2600=a.json 4825=b.json ... [--renderer 500=r.json ...]
// The diffusion decoder's panels are against tokenizer steps, the renderer's against renderer
// training steps (a separate run, encoder and codebook frozen).
import { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { plotPng, type Series } from '../src/eval/plot.ts';

const o = new Command('training-curve')
  .requiredOption('--out <file.png>', 'PNG to write')
  .option('--diffusion <step=file...>', 'eval JSON of tokenizer checkpoints (diffusion decoder figures)', [])
  .option('--renderer <step=file...>', 'eval JSON of renderer checkpoints (renderer figures)', [])
  .parse()
  .opts();

type Point = { step: number; psnr: number; ssim: number; json: any };
function fail(msg: string): never {
  console.error(`training-curve: ${msg}`);
  process.exit(1);
}
function read(list: string[], what: string, pick: (j: any) => { psnr: number; ssim: number }): Point[] {
  return list
    .map((a) => {
      const [s, file] = a.split('=');
      if (!file || !Number.isFinite(Number(s))) fail(`${a}: expected STEP=FILE.json`);
      let json: any;
      try {
        json = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        fail(`${file}: not a readable eval JSON (${(e as Error).message.split('\n')[0]})`);
      }
      const fig = pick(json);
      if (!Number.isFinite(fig?.psnr) || !Number.isFinite(fig?.ssim)) fail(`${file}: no ${what} PSNR/SSIM in it`);
      return { step: Number(s), ...fig, json };
    })
    .sort((a, b) => a.step - b.step);
}
const diff = read(o.diffusion, 'diffusion', (j) => ({ psnr: j?.psnr, ssim: j?.ssim }));
const rend = read(o.renderer, 'renderer', (j) => ({ psnr: j?.renderer?.psnr, ssim: j?.renderer?.ssim }));
const all = [...diff, ...rend];
if (!all.length) fail('no eval files given (--diffusion STEP=FILE … and/or --renderer STEP=FILE …)');
const b = all[all.length - 1].json.baselines;
const flat = (name: string, color: string, pts: Point[], y: number): Series => ({
  name,
  color,
  xs: [pts[0].step, pts[pts.length - 1].step],
  ys: [y, y],
});
const panel = (pts: Point[], who: string, color: string, metric: 'psnr' | 'ssim', xlabel: string) => ({
  title: `${who}: validation ${metric === 'psnr' ? 'PSNR (dB)' : 'SSIM'}`,
  xlabel,
  series: [
    { name: who, color, xs: pts.map((p) => p.step), ys: pts.map((p) => p[metric]) },
    flat(`thumbnail ${b.sameBits.side}² (same bits)`, '#7f7f7f', pts, b.sameBits[metric]),
    flat(`thumbnail ${b.fourTimesBits.side}² (4× bits)`, '#2ca02c', pts, b.fourTimesBits[metric]),
  ],
});
const panels = [
  ...(diff.length ? (['psnr', 'ssim'] as const).map((m) => panel(diff, '50-step diffusion', '#1f77b4', m, 'tokenizer training step')) : []),
  ...(rend.length ? (['psnr', 'ssim'] as const).map((m) => panel(rend, 'renderer', '#d62728', m, 'renderer training step')) : []),
];
writeFileSync(o.out, await plotPng(panels, { cols: 2 }));
for (const p of diff) console.log(`diffusion step ${p.step}: ${p.psnr.toFixed(2)} dB, SSIM ${p.ssim.toFixed(3)}, colour error ${p.json.colourError.toFixed(2)}`);
for (const p of rend) console.log(`renderer step ${p.step}: ${p.psnr.toFixed(2)} dB, SSIM ${p.ssim.toFixed(3)}, colour error ${p.json.renderer.colourError.toFixed(2)}`);
console.log(`wrote ${o.out}`);
