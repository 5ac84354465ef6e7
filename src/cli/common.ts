// Shared CLI plumbing: device option, progress bars, one-line errors.
import { basename, extname, join } from 'node:path';
import { existsSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import { Selftok, type ModelPart } from '../tokenizer/model.ts';
import { UserError } from '../util/errors.ts';
import { PACKAGE_ROOT } from '../node/paths.ts';
import { loadSelftok } from '../node/models.ts';
import { DEVICE_CHOICES, setupDevice, type DeviceChoice } from '../node/device.ts';

export { PACKAGE_ROOT };
export const DEFAULT_MODEL = join(PACKAGE_ROOT, 'models', 'default');

export function deviceOption(cmd: Command): Command {
  return cmd.addOption(new Option('--device <device>', 'compute device').choices(DEVICE_CHOICES).default('auto'));
}

export function modelOption(cmd: Command): Command {
  return cmd.option('--model <dir>', 'model directory (config.json + model.safetensors)', DEFAULT_MODEL);
}

export async function startDevice(choice: string, quiet = false): Promise<string> {
  const d = await setupDevice(choice as DeviceChoice);
  if (!quiet) process.stderr.write(`selftok: device ${d}\n`);
  return d;
}

/** Load a model directory; `parts`: only what the command runs (see ModelPart). */
export function loadModel(dir: string, parts?: readonly ModelPart[]): Selftok {
  if (!existsSync(dir)) {
    throw new UserError(
      dir === DEFAULT_MODEL ? `${dir}: the default model is missing from this checkout` : `${dir}: no such model directory`,
    );
  }
  return loadSelftok(dir, parts);
}

export function parseInt10(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UserError(`${name} must be an integer ≥ ${min}, got '${v}'`);
    return n;
  };
}

/**
 * A float option parser: `> 0` by default (learning rates), `≥ 0` with `zeroOk` (guidance,
 * where 0 is meaningful: decode with no condition).
 */
export function parseFloatPos(name: string, zeroOk = false) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || (n === 0 && !zeroOk)) throw new UserError(`${name} must be ${zeroOk ? 'a number ≥ 0' : 'a positive number'}, got '${v}'`);
    return n;
  };
}

/**
 * The diffusion sampler's options (defaults: the model config's `sampler`): `--guidance W`,
 * classifier-free guidance, and `--temperature T`, the scale of the initial noise.
 */
export function guidanceOption(cmd: Command): Command {
  return cmd
    .option('--guidance <w>', "classifier-free guidance scale of the diffusion decoder, ≥ 0; 1 = none (default: the model's sampler.guidance)", parseFloatPos('--guidance', true))
    .option('--temperature <t>', "scale of the diffusion sampler's initial noise, ≥ 0; 1 = the reference sampler, lower = smoother and more faithful (default: the model's sampler.temperature)", parseFloatPos('--temperature', true));
}

/** `--workers N`: threads that share each batch (engine/data-parallel.ts). */
export function workersOption(cmd: Command): Command {
  return cmd.option('--workers <n>', 'threads that share each batch, one core each on wasm (data parallelism; 1 = this thread only)', parseInt10('--workers', 1), 1);
}

/** The options every training command shares (steps, batch, lr, seed, resume, intervals, workers). */
export function trainingOptions(cmd: Command): Command {
  return workersOption(cmd)
    .requiredOption('--data <source>', 'shapes | scenes | photos | photos+skimage | corpus | mnist | a folder of images')
    .requiredOption('--out <dir>', 'output model directory (checkpoints, samples, log)')
    .option('--steps <n>', 'total training steps', parseInt10('--steps', 1), 2000)
    .option('--batch <n>', 'batch size (default: from the config)', parseInt10('--batch', 1))
    .option('--lr <x>', 'learning rate (default: from the config)', parseFloatPos('--lr'))
    .option('--cooldown <n>', 'decay the learning rate linearly to 0 over the last N steps (default: the config\'s train.cooldownFraction of --steps; 0 = constant)', parseInt10('--cooldown'))
    .option('--seed <n>', 'random seed', parseInt10('--seed'), 0)
    .option('--resume', 'continue from the last checkpoint in --out', false)
    .option('--ckpt-every <n>', 'checkpoint interval (steps)', parseInt10('--ckpt-every', 1), 250)
    .option('--sample-every <n>', 'sample-grid interval (steps, 0 = only at the end)', parseInt10('--sample-every'), 500)
    .option('--log-every <n>', 'log interval (steps)', parseInt10('--log-every', 1), 25);
}

/** A progress bar on stderr (drawn only on a TTY; silent in CI logs). */
export function progressBar(label: string, total: number): { update: (n: number, extra?: string) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} {extra}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { extra: '' });
  return { update: (n, extra = '') => bar.update(n, { extra }), stop: () => bar.stop() };
}

/** Output file names for inputs: basename without extension, de-duplicated. */
export function outputNames(sources: string[], suffix: string): string[] {
  const seen = new Map<string, number>();
  return sources.map((s) => {
    const base = basename(s, extname(s)).replace(/[^A-Za-z0-9._@,-]+/g, '_') || 'image';
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return `${n ? `${base}-${n}` : base}${suffix}`;
  });
}
