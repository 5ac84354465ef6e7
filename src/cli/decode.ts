import { Command, Option } from 'commander';
import { join } from 'node:path';
import { encodePng } from '../io/image.ts';
import { readTokens, type TokenOrder } from '../io/tokens.ts';
import { UserError } from '../util/errors.ts';
import { OutputSet } from '../util/fsx.ts';
import { deviceOption, guidanceOption, loadModel, modelOption, outputNames, parseInt10, progressBar, startDevice } from './common.ts';
import type { Selftok } from '../tokenizer/model.ts';

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

export function decodeCommand(): Command {
  const cmd = new Command('decode')
    .description('decode token files back to images (50-step diffusion, or the one-step renderer)')
    .argument('<tokens>', 'token file (.json or .npy)')
    .requiredOption('-o, --output <dir>', 'output folder for PNGs')
    .option('--steps <n>', 'Euler steps of the diffusion decoder', parseInt10('--steps', 1), 50)
    .option('--seed <n>', 'noise seed', parseInt10('--seed'), 0)
    .option('--keep <n>', 'keep only the first N encoder-order tokens (AND-ed with the per-step schedule mask)', parseInt10('--keep'))
    .option('--renderer', 'decode in one deterministic step with the renderer', false)
    .addOption(new Option('--order <order>', 'order of ids in a .npy file (JSON files say their own)').choices(['encoder', 'ar']).default('encoder'))
    .addHelpText('after', '\nExample:\n  selftok decode tokens.json -o out/ --steps 50 --seed 1\n');
  return deviceOption(guidanceOption(modelOption(cmd))).action(async (file: string, o) => {
    await startDevice(o.device);
    const model = loadModel(o.model);
    const t = tokensFor(model, file, o.order);
    if (o.keep !== undefined && o.keep > model.K) throw new UserError(`--keep ${o.keep}: the model has only K = ${model.K} tokens`);
    const size = model.imageSize;
    let pix: Float32Array;
    if (o.renderer) {
      pix = await model.render(t.ids, t.B);
    } else {
      const bar = progressBar('decode', o.steps);
      pix = await model.decode(t.ids, t.B, { steps: o.steps, seed: o.seed, keep: o.keep, guidance: o.guidance, onStep: (i) => bar.update(i) });
      bar.stop();
    }
    const n = size * size * 3;
    const out = new OutputSet();
    const names = outputNames(t.names, '.png');
    for (let b = 0; b < t.B; b++) out.add(join(o.output, names[b]), await encodePng(pix.subarray(b * n, (b + 1) * n), size, size));
    out.commit();
    console.log(`decoded ${t.B} image(s) → ${o.output} (${o.renderer ? 'renderer, 1 step' : `${o.steps} steps, seed ${o.seed}, guidance ${model.guidance(o.guidance)}`}${o.keep !== undefined ? `, first ${o.keep} tokens` : ''})`);
  });
}
