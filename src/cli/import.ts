import { Command, Option } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { importOfficial, type ImportDType } from '../import/import.ts';
import { UserError } from '../util/errors.ts';
import { parseInt10 } from './common.ts';

const intList = (name: string) => (v: string): number[] => {
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (!xs.length || xs.some((x) => !Number.isInteger(x) || x < 0)) throw new UserError(`${name} must be a comma-separated list of integers, got '${v}'`);
  return xs;
};

export function importCommand(): Command {
  return new Command('import')
    .description('convert the released Selftok checkpoints (tokenizer, renderer) and the SD3 VAE into a model directory; no Python, nothing in the files is executed')
    .requiredOption('--tokenizer <file>', 'the Selftok tokenizer checkpoint (.pth/.pt from torch.save, or .safetensors)')
    .option('--renderer <file>', 'the Selftok renderer checkpoint (.pth/.pt or .safetensors)')
    .requiredOption('--vae <file>', "the SD3 VAE: sd3_medium.safetensors/.pt (first_stage_model.*) or diffusers' vae/diffusion_pytorch_model.safetensors")
    .requiredOption('--out <dir>', 'output model directory')
    .addOption(new Option('--dtype <dtype>', 'weight storage').choices(['float32', 'float16', 'bfloat16']).default('float32'))
    .option('--size <px>', 'image side in pixels', parseInt10('--size', 8), 256)
    .option('--stages <list>', 'DiTi stages (default for K = 512: 200,400,600,800,1000)', intList('--stages'))
    .option('--per-stage <list>', 'tokens per DiTi stage (default for K = 512: 192,184,72,48,16)', intList('--per-stage'))
    .addHelpText(
      'after',
      '\nExample:\n  selftok import --tokenizer tokenizer_512_ckpt.pth --renderer renderer_512_ckpt.pth \\\n      --vae sd3_medium.safetensors --out models/selftok-512\n  selftok reconstruct photo.jpg --model models/selftok-512 -o recon/ --device webgpu\n',
    )
    .action(async (o) => {
      if (existsSync(o.out) && readdirSync(o.out).length) throw new UserError(`--out ${o.out}: exists and is not empty`);
      const t0 = performance.now();
      const r = await importOfficial({
        tokenizer: o.tokenizer,
        renderer: o.renderer,
        vae: o.vae,
        out: o.out,
        dtype: o.dtype as ImportDType,
        size: o.size,
        stages: o.stages,
        perStage: o.perStage,
        log: (s) => process.stderr.write(`${s}\n`),
      });
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      console.log(
        `imported ${r.tensors} tensors, ${(r.parameters / 1e6).toFixed(1)} M parameters (${(r.bytes / 2 ** 30).toFixed(2)} GiB ${o.dtype}) → ${o.out} in ${s} s; ` +
          `VAE layout ${r.vaeLayout}; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
      );
    });
}
