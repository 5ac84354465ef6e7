import { Command, Option } from 'commander';
import { join } from 'node:path';
import { decodeNpyFloat } from '../io/npy.ts';
import { encodePng } from '../node/image.ts';
import type { TokenOrder } from '../io/tokens.ts';
import { UserError } from '../util/errors.ts';
import { OutputSet, readBytes } from '../node/fsx.ts';
import { deviceOption, guidanceOption, loadModel, modelOption, outputNames, parseInt10, progressBar, startDevice } from './common.ts';
import type { Selftok } from '../tokenizer/model.ts';
import { readTokens } from '../node/files.ts';

/** Check that a token file belongs to this model; returns its ids in encoder order. */
export function tokensFor(model: Selftok, path: string, npyOrder: TokenOrder) {
  const t = readTokens(path, npyOrder);
  if (t.model && t.model.fingerprint !== model.fingerprint) {
    throw new UserError(`${path}: tokens were made by model ${t.model.name} (${t.model.fingerprint}), not by this model (${model.cfg.name}, ${model.fingerprint})`);
  }
  if (t.codebookSize !== null && t.codebookSize !== model.codebookSize) {
    throw new UserError(`${path}: codebook size ${t.codebookSize} does not match the model's ${model.codebookSize}`);
  }
  if (t.K !== model.K) throw new UserError(`${path}: ${t.K} tokens per image, the model uses K = ${model.K}`);
  model.checkIds(t.ids, t.B, path);
  return t;
}

/** Read `--noise`: B×C×h×w (as PyTorch draws it) or B×h×w×C, returned as B×h×w×C. */
function noiseFile(path: string, model: Selftok, B: number): Float32Array {
  const bytes = readBytes(path);
  const { values, shape } = decodeNpyFloat(bytes, path);
  const { size: h, channels: c } = model.cfg.image;
  const dims = shape.length === 3 ? [1, ...shape] : shape;
  const nchw = dims.length === 4 && dims[0] === B && dims[1] === c && dims[2] === h && dims[3] === h;
  const nhwc = dims.length === 4 && dims[0] === B && dims[1] === h && dims[2] === h && dims[3] === c;
  if (!nchw && !nhwc) throw new UserError(`${path}: noise of shape [${shape}]; this model and ${B} image(s) need [${B}, ${c}, ${h}, ${h}] or [${B}, ${h}, ${h}, ${c}]`);
  if (!nchw || nhwc) return values;
  const out = new Float32Array(values.length);
  for (let b = 0; b < B; b++) for (let ch = 0; ch < c; ch++) for (let i = 0; i < h * h; i++) out[(b * h * h + i) * c + ch] = values[(b * c + ch) * h * h + i];
  return out;
}

export function decodeCommand(): Command {
  const cmd = new Command('decode')
    .description('decode token files back to images (50-step diffusion, or the one-step renderer)')
    .argument('<tokens>', 'token file (.json or .npy)')
    .requiredOption('-o, --output <dir>', 'output folder for PNGs')
    .option('--steps <n>', 'Euler steps of the diffusion decoder', parseInt10('--steps', 1), 50)
    .option('--seed <n>', 'noise seed', parseInt10('--seed'), 0)
    .option('--keep <n>', 'keep only the first N encoder-order tokens (AND-ed with the per-step schedule mask)', parseInt10('--keep'))
    .option('--renderer', 'decode in one deterministic step with the renderer', false)
    .option('--noise <file.npy>', "the initial noise, float32 in the decoder's data space: B×C×h×w (PyTorch layout) or B×h×w×C, instead of --seed (to compare with another implementation)")
    .addOption(new Option('--order <order>', 'order of ids in a .npy file (JSON files say their own)').choices(['encoder', 'ar']).default('encoder'))
    .addHelpText('after', '\nExample:\n  selftok decode tokens.json -o out/ --steps 50 --seed 1\n');
  return deviceOption(guidanceOption(modelOption(cmd))).action(async (file: string, o) => {
    await startDevice(o.device);
    const model = loadModel(o.model, [o.renderer ? 'render' : 'decode']);
    const t = tokensFor(model, file, o.order);
    if (o.keep !== undefined && o.keep > model.K) throw new UserError(`--keep ${o.keep}: the model has only K = ${model.K} tokens`);
    const size = model.imageSize;
    const noise = o.noise ? noiseFile(o.noise, model, t.B) : undefined;
    let pix: Float32Array;
    if (o.renderer) {
      pix = await model.render(t.ids, t.B);
    } else {
      const bar = progressBar('decode', o.steps);
      pix = await model.decode(t.ids, t.B, { steps: o.steps, seed: o.seed, keep: o.keep, guidance: o.guidance, temperature: o.temperature, noise, onStep: (i) => bar.update(i) });
      bar.stop();
    }
    const n = size * size * 3;
    const out = new OutputSet();
    const names = outputNames(t.names, '.png');
    for (let b = 0; b < t.B; b++) out.add(join(o.output, names[b]), await encodePng(pix.subarray(b * n, (b + 1) * n), size, size));
    out.commit();
    console.log(`decoded ${t.B} image(s) → ${o.output} (${o.renderer ? 'renderer, 1 step' : `${o.steps} steps, ${noise ? `noise ${o.noise}` : `seed ${o.seed}`}, guidance ${model.guidance(o.guidance)}, temperature ${model.temperature(o.temperature)}`}${o.keep !== undefined ? `, first ${o.keep} tokens` : ''})`);
  });
}
