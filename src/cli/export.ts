import { Command } from 'commander';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { deviceOption, loadModel, modelOption, startDevice } from './common.ts';

export function exportCommand(): Command {
  const cmd = new Command('export')
    .description('write a model for shipping: config.json + model.safetensors (float16 by default), without training state')
    .requiredOption('--out <dir>', 'output model directory')
    .option('--float32', 'keep float32 weights', false)
    .addHelpText('after', '\nExample:\n  selftok export --model runs/photo64 --out models/default\n');
  return deviceOption(modelOption(cmd)).action(async (o) => {
    await startDevice(o.device, true);
    const model = loadModel(o.model);
    await model.save(o.out, { half: !o.float32 });
    const bytes = statSync(join(o.out, 'model.safetensors')).size;
    console.log(`exported ${o.model} (step ${model.step}) → ${o.out}: ${(bytes / 2 ** 20).toFixed(2)} MiB ${o.float32 ? 'float32' : 'float16'}, fingerprint ${model.fingerprint}`);
  });
}
