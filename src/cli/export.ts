import { Command, Option } from 'commander';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { WeightFormat } from '../io/weights.ts';
import { deviceOption, loadModel, modelOption, startDevice } from './common.ts';
import { ArModel } from '../ar/ar-model.ts';
import { isArModelDir, loadArPair, tokenizerDirOf, tokenizerPathFrom, saveModel } from '../node/models.ts';

export function exportCommand(): Command {
  const cmd = new Command('export')
    .description('write a tokenizer or an AR model for shipping: config.json + model.safetensors (float16 by default), without training state')
    .requiredOption('--out <dir>', 'output model directory')
    .addOption(new Option('--weights <format>', 'weight storage: float16, int8 (per-column scales; the codebook stays float16) or float32').choices(['float16', 'int8', 'float32']).default('float16'))
    .option('--float32', 'the same as --weights float32', false)
    .option('--name <name>', "the exported model's name (its config's name; default: kept)")
    .option('--tokenizer <dir>', "an AR model's tokenizer as it will sit beside the export (checked by its tokens' fingerprint; default: where the AR model's config says)")
    .addHelpText('after', '\nExample:\n  selftok export --model runs/photo64 --out models/default\n');
  return deviceOption(modelOption(cmd)).action(async (o) => {
    await startDevice(o.device, true);
    const format: WeightFormat = o.float32 ? 'float32' : o.weights;
    // an AR model directory (config.json with an 'ar' section) or a tokenizer
    const model = isArModelDir(o.model) ? await arForExport(o.model, o.out, o.tokenizer) : loadModel(o.model);
    if (o.name) model.cfg.name = o.name;
    await saveModel(model, o.out, { format, inference: true });
    const bytes = statSync(join(o.out, 'model.safetensors')).size;
    console.log(`exported ${o.model} (step ${model.step}) → ${o.out}: ${(bytes / 2 ** 20).toFixed(2)} MiB ${format}, fingerprint ${model.fingerprint}`);
  });
}

/** An AR model whose recorded tokenizer path is made relative to the export directory. */
async function arForExport(dir: string, out: string, tokenizerDir?: string): Promise<ArModel> {
  const { ar, tokenizer } = await loadArPair(dir, tokenizerDir);
  ar.tokenizer.path = tokenizerPathFrom(out, tokenizerDirOf(dir, ar.tokenizer, tokenizerDir));
  ar.tokenizer.name = tokenizer.cfg.name;
  return ar;
}
