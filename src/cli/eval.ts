import { Command } from 'commander';
import { dirname, join } from 'node:path';
import { openSource } from '../data/source.ts';
import { evaluate, reportMarkdown } from '../eval/evaluate.ts';
import { UserError } from '../util/errors.ts';
import { OutputSet } from '../node/fsx.ts';
import { tokenizerCeiling, ceilingMarkdown } from '../ar/ceiling.ts';
import { deviceOption, guidanceOption, loadModel, modelOption, parseInt10, progressBar, startDevice } from './common.ts';

export function evalCommand(): Command {
  const cmd = new Command('eval')
    .description("reconstruction quality on a data source's held-out split: PSNR, SSIM, no-token baseline, progressive curve, bpp, PNG grids")
    .requiredOption('--data <source>', 'shapes | scenes | photos | photos+skimage | corpus | mnist | a folder of images')
    .requiredOption('--report <file.md>', 'markdown report (PNG grids are written next to it)')
    .option('--json <file>', 'also write the figures as JSON')
    .option('--limit <n>', 'number of held-out images', parseInt10('--limit', 2), 64)
    .option('--steps <n>', 'Euler steps', parseInt10('--steps', 1), 50)
    .option('--seed <n>', 'noise seed', parseInt10('--seed'), 0)
    .option('--renderer', 'also measure the one-step renderer (the model must have one)', false)
    .option('--ceiling <n>', 'with --data scenes: held-out prompt scenes per category for the tokenizer ceiling', parseInt10('--ceiling', 1), 32)
    .option('--no-probes', 'skip the no-token decode, the progressive curve and the token-swap probe (a quick checkpoint figure)')
    .addHelpText('after', '\nExample:\n  selftok eval --model runs/tiny --data shapes --limit 64 --report runs/tiny/eval.md --json runs/tiny/eval.json\n');
  return deviceOption(guidanceOption(modelOption(cmd))).action(async (o) => {
    if (!o.report.endsWith('.md')) throw new UserError(`--report ${o.report}: must be a .md file`);
    await startDevice(o.device);
    const model = loadModel(o.model);
    if (o.renderer && !model.hasRenderer) throw new UserError(`${o.model}: --renderer given but this model has no renderer`);
    const data = await openSource(o.data, model.imageSize);
    const bar = progressBar('eval', 1);
    const { result, pngs } = await evaluate(model, data, {
      limit: o.limit,
      steps: o.steps,
      seed: o.seed,
      guidance: model.guidance(o.guidance),
      renderer: o.renderer || model.hasRenderer,
      probes: o.probes,
      temperature: model.temperature(o.temperature),
      onProgress: (d, t, what) => {
        bar.update(d, what);
      },
    });
    bar.stop();
    // scenes: the tokenizer ceiling of the AR benchmark (the scorer on reconstructions of held-out prompt scenes)
    const ceiling = data.name === 'scenes' ? await tokenizerCeiling(model, { perCategory: o.ceiling, decoder: model.hasRenderer ? 'renderer' : 'diffusion', steps: o.steps }) : null;
    const out = new OutputSet();
    const dir = dirname(o.report);
    for (const [name, png] of pngs) out.add(join(dir, name), png);
    out.add(o.report, reportMarkdown(result, data.name) + (ceiling ? ceilingMarkdown(ceiling) : ''));
    if (o.json) out.add(o.json, JSON.stringify(ceiling ? { ...result, ceiling } : result, null, 2) + '\n');
    out.commit();
    const prog = result.progressive.map((p) => `${p.tokens}:${p.psnr.toFixed(2)}`).join(' ');
    const b = result.baselines;
    console.log(
      `eval ${result.images} images: PSNR ${result.psnr.toFixed(2)} dB${result.psnrNoTokens === undefined ? '' : ` (no tokens ${result.psnrNoTokens.toFixed(2)})`}, SSIM ${result.ssim.toFixed(3)}, colour error ${result.colourError.toFixed(2)}, ` +
        `${result.bitsPerPixel.toFixed(3)} bpp, progressive ${prog}` +
        (result.renderer ? `, renderer PSNR ${result.renderer.psnr.toFixed(2)} SSIM ${result.renderer.ssim.toFixed(3)} colour error ${result.renderer.colourError.toFixed(2)}` : '') +
        `; thumbnails ${b.sameBits.side}² ${b.sameBits.psnr.toFixed(2)} dB / ${b.sameBits.ssim.toFixed(3)}, ${b.fourTimesBits.side}² ${b.fourTimesBits.psnr.toFixed(2)} dB / ${b.fourTimesBits.ssim.toFixed(3)}` +
        (ceiling ? `; scenes ceiling ${ceiling.overall.toFixed(3)} (${ceiling.decoder})` : '') +
        ` → ${o.report}`,
    );
  });
}
