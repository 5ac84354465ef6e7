import { Command } from 'commander';
import { join } from 'node:path';
import { gridPng, loadImage } from '../node/image.ts';
import { encodeAll } from '../eval/evaluate.ts';
import { psnr, ssim } from '../eval/metrics.ts';
import { OutputSet } from '../node/fsx.ts';
import { deviceOption, guidanceOption, loadModel, modelOption, outputNames, parseInt10, progressBar, startDevice } from './common.ts';

export function reconstructCommand(): Command {
  const cmd = new Command('reconstruct')
    .description('encode and decode images; write side-by-side PNGs and print PSNR/SSIM per image')
    .argument('<images...>', 'image files')
    .requiredOption('-o, --output <dir>', 'output folder')
    .option('--steps <n>', 'Euler steps', parseInt10('--steps', 1), 50)
    .option('--seed <n>', 'noise seed', parseInt10('--seed'), 0)
    .option('--renderer', 'decode with the one-step renderer', false)
    .addHelpText('after', '\nExample:\n  selftok reconstruct photo.jpg -o recon/\n');
  return deviceOption(guidanceOption(modelOption(cmd))).action(async (images: string[], o) => {
    await startDevice(o.device);
    const model = loadModel(o.model);
    const size = model.imageSize;
    const pix = await Promise.all(images.map((p) => loadImage(p, size)));
    const ids = await encodeAll(model, pix, Math.min(16, pix.length));
    let rec: Float32Array;
    if (o.renderer) rec = await model.render(ids, pix.length);
    else {
      const bar = progressBar('decode', o.steps);
      rec = await model.decode(ids, pix.length, { steps: o.steps, seed: o.seed, guidance: o.guidance, temperature: o.temperature, onStep: (i) => bar.update(i) });
      bar.stop();
    }
    const n = size * size * 3;
    const out = new OutputSet();
    const names = outputNames(images, '.png');
    const lines: string[] = [];
    let sp = 0;
    let ss = 0;
    for (let b = 0; b < pix.length; b++) {
      const r = rec.subarray(b * n, (b + 1) * n);
      const p = psnr(pix[b], r);
      const s = ssim(pix[b], r, size, size);
      sp += p;
      ss += s;
      lines.push(`${images[b]}: PSNR ${p.toFixed(2)} dB, SSIM ${s.toFixed(3)} → ${join(o.output, names[b])}`);
      out.add(join(o.output, names[b]), await gridPng([[pix[b], r]], size, Math.max(1, Math.round(128 / size))));
    }
    out.commit();
    for (const l of lines) console.log(l);
    console.log(`reconstructed ${pix.length} image(s) at ${size}×${size} with ${model.K} tokens (${model.bitsPerPixel.toFixed(3)} bpp): mean PSNR ${(sp / pix.length).toFixed(2)} dB, SSIM ${(ss / pix.length).toFixed(3)}`);
  });
}
