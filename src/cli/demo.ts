import { Command } from 'commander';
import { basename, join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { gridPng, loadImage } from '../node/image.ts';
import { encodeAll } from '../eval/evaluate.ts';
import { psnr, ssim, mean } from '../eval/metrics.ts';
import { OutputSet } from '../node/fsx.ts';
import { arDemo, DEFAULT_AR, DEFAULT_RL } from './ar.ts';
import { UserError } from '../util/errors.ts';
import { deviceOption, guidanceOption, loadModel, modelOption, PACKAGE_ROOT, parseInt10, progressBar, startDevice } from './common.ts';

export const SAMPLES_DIR = join(PACKAGE_ROOT, 'assets', 'samples');

export function demoCommand(): Command {
  const cmd = new Command('demo')
    .description('the main job: tokenize the bundled sample photos, decode them, print figures, write selftok-demo/')
    .option('-o, --output <dir>', 'output folder', 'selftok-demo')
    .option('--steps <n>', 'Euler steps of the diffusion decoder', parseInt10('--steps', 1), 50)
    .option('--images <dir>', 'folder of images to use instead of the bundled samples', SAMPLES_DIR)
    .option('--ar <dir>', 'the AR model whose captions of scenes the demo also shows', DEFAULT_AR)
    .option('--rl <dir>', 'the AR model that generates the demo images from prompts (default: the RL-tuned one, else --ar)', DEFAULT_RL)
    .option('--no-ar', 'skip the AR part')
    .addHelpText('after', '\nExample:\n  npm start            # = selftok demo\n');
  return deviceOption(guidanceOption(modelOption(cmd))).action(async (o) => {
    const t0 = performance.now();
    await startDevice(o.device);
    const model = loadModel(o.model);
    if (!existsSync(o.images)) throw new UserError(`${o.images}: no such folder`);
    const files = readdirSync(o.images).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort().map((f) => join(o.images, f));
    if (!files.length) throw new UserError(`${o.images}: no images`);
    const size = model.imageSize;
    const K = model.K;
    const pix = await Promise.all(files.map((f) => loadImage(f, size)));
    const B = pix.length;
    process.stderr.write(`selftok demo: ${B} photos at ${size}×${size}, model ${model.cfg.name} (${K} tokens × ${model.codebookSize} codes, ${model.bitsPerPixel.toFixed(3)} bpp)\n`);
    const ids = await encodeAll(model, pix, B);
    const keeps = [...new Set([K / 8, K / 4, K / 2, K].map((k) => Math.max(1, Math.round(k))))];
    const bar = progressBar('decode', o.steps * keeps.length);
    const prog = new Map<number, Float32Array>();
    for (const [j, k] of keeps.entries()) {
      prog.set(k, await model.decode(ids, B, { steps: o.steps, seed: 0, keep: k, guidance: o.guidance, temperature: o.temperature, onStep: (i) => bar.update(j * o.steps + i, `${k} tokens`) }));
    }
    bar.stop();
    const n = size * size * 3;
    const w = model.guidance(o.guidance);
    const tau = model.temperature(o.temperature);
    const how = `${o.steps}-step diffusion${w === 1 ? '' : `, guidance ${w}`}${tau === 1 ? '' : `, temperature ${tau}`}`;
    const diffusion = prog.get(K)!;
    const rendered = model.hasRenderer ? await model.render(ids, B) : null;
    const out = new OutputSet();
    const rows: Float32Array[][] = [];
    const strip: Float32Array[][] = [];
    const ps: number[] = [];
    const ss: number[] = [];
    for (let b = 0; b < B; b++) {
      const rec = (rendered ?? diffusion).subarray(b * n, (b + 1) * n);
      const p = psnr(pix[b], rec);
      const s = ssim(pix[b], rec, size, size);
      ps.push(p);
      ss.push(s);
      console.log(`${basename(files[b])}: ${K} tokens, ${(K * Math.log2(model.codebookSize)).toFixed(0)} bits, PSNR ${p.toFixed(2)} dB, SSIM ${s.toFixed(3)}${rendered ? ' (renderer)' : ` (${how})`}`);
      const row = [pix[b], diffusion.subarray(b * n, (b + 1) * n)];
      if (rendered) row.push(rendered.subarray(b * n, (b + 1) * n));
      rows.push(row);
      strip.push([pix[b], ...keeps.map((k) => prog.get(k)!.subarray(b * n, (b + 1) * n))]);
    }
    const scale = Math.max(1, Math.round(128 / size));
    out.add(join(o.output, 'reconstructions.png'), await gridPng(rows, size, scale));
    out.add(join(o.output, 'progressive.png'), await gridPng(strip, size, scale));
    const arLines = o.ar && existsSync(o.ar) ? await arDemo(o.ar, existsSync(o.rl) ? o.rl : o.ar, out, o.output, scale) : [];
    out.commit();
    for (const l of arLines) console.log(l);
    console.log(
      `demo: ${B} photos, mean PSNR ${mean(ps).toFixed(2)} dB, SSIM ${mean(ss).toFixed(3)}; wrote ${o.output}/reconstructions.png ` +
        `(original | ${how}${rendered ? ' | renderer' : ''}) and ${o.output}/progressive.png (original | ${keeps.join(', ')} tokens)${arLines.length ? `, ${o.output}/generated.png and ${o.output}/captions.png` : ''} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  });
}
