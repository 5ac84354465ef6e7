import { Command, Option } from 'commander';
import { basename } from 'node:path';
import { loadImage } from '../node/image.ts';
import { encodeNpyInt32, reverseRows, tokenFileJson, type TokenOrder } from '../io/tokens.ts';
import { encodeAll } from '../eval/evaluate.ts';
import { UserError } from '../util/errors.ts';
import { writeFileAtomic } from '../node/fsx.ts';
import { deviceOption, loadModel, modelOption, startDevice } from './common.ts';

export function encodeCommand(): Command {
  const cmd = new Command('encode')
    .description('tokenize images: each becomes K discrete tokens')
    .argument('<images...>', 'image files (png/jpg/webp); resized on the shorter side and centre-cropped')
    .requiredOption('-o, --output <file>', 'token file: .json (with model identity and order) or .npy (int32 B×K)')
    .addOption(new Option('--order <order>', 'token order written: encoder (index 0 = finest) or ar (reversed, coarse to fine)').choices(['encoder', 'ar']).default('encoder'))
    .addHelpText('after', '\nExample:\n  selftok encode photo1.jpg photo2.png -o tokens.json\n');
  return deviceOption(modelOption(cmd)).action(async (images: string[], o) => {
    if (!/\.(json|npy)$/i.test(o.output)) throw new UserError(`${o.output}: the output must end in .json or .npy`);
    await startDevice(o.device);
    const model = loadModel(o.model, ['encode']);
    const pix = await Promise.all(images.map((p) => loadImage(p, model.imageSize)));
    let ids = await encodeAll(model, pix, Math.min(16, pix.length));
    const K = model.K;
    const order = o.order as TokenOrder;
    if (order === 'ar') ids = reverseRows(ids, K);
    if (o.output.toLowerCase().endsWith('.npy')) {
      writeFileAtomic(o.output, encodeNpyInt32(ids, images.length, K));
    } else {
      writeFileAtomic(
        o.output,
        tokenFileJson({
          model: { name: model.cfg.name, fingerprint: model.fingerprint },
          K,
          codebookSize: model.codebookSize,
          order,
          images: images.map((p, b) => ({ source: basename(p), ids: Array.from(ids.subarray(b * K, (b + 1) * K)) })),
        }),
      );
    }
    const bits = K * Math.log2(model.codebookSize);
    console.log(`encoded ${images.length} image(s) → ${o.output}: ${K} tokens each (${bits.toFixed(0)} bits, ${model.bitsPerPixel.toFixed(3)} bpp), ${order} order`);
  });
}
