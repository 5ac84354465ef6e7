import { mkdtempSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import type { ArConfig } from '../src/ar/model.ts';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { numpy as np, tree } from '@jax-js/jax';
import { renderShapes } from '../src/data/shapes.ts';
import { Rng } from '../src/util/rng.ts';
import { type SelftokConfig } from '../src/tokenizer/config.ts';
import { loadConfig } from '../src/node/configs.ts';
import { setupDevice } from '../src/node/device.ts';

export async function wasm(): Promise<void> {
  await setupDevice('wasm');
}

/** A very small config for unit tests: 16×16 images, K = 8, widths 32. */
export function microConfig(over: (c: SelftokConfig) => void = () => {}): SelftokConfig {
  const c = loadConfig('tiny');
  c.name = 'micro';
  c.image.size = 16;
  c.K = 8;
  c.schedule = { type: 'diti', stages: [250, 500, 750, 1000], perStage: [3, 3, 1, 1] };
  c.quantizer.codebookSize = 32;
  c.quantizer.dim = 8;
  c.encoder = { depth: 2, imageWidth: 32, imageHeads: 2, tokenWidth: 32, tokenHeads: 2, mlpRatio: 2 };
  c.decoder = { depth: 2, width: 32, heads: 2, mlpRatio: 2, condDrop: 0.1, prediction: 'x0', outChannels: 8 };
  c.train.batch = 8;
  c.train.warmup = 10;
  // pinned, so that the tests do not move when tiny's recipe does
  c.train.lossTMin = 0.3;
  c.train.cooldownFraction = 0;
  c.train.tokenGradScaleMax = 8;
  delete c.train.tokenGradScalePower;
  delete c.train.fineTokenDrop;
  delete c.train.fineTokenDropEnd;
  c.sampler.guidance = 1;
  over(c);
  return c;
}

export function tmp(prefix = 'selftok-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Every array of a parameter tree replaced by N(0, std²) draws (consumes the old arrays), so the
 * zero-initialised gates no longer hide paths from a test.
 */
export function randomizeTree<T>(params: T, seed: number, std: number): T {
  const rng = new Rng(seed);
  return tree.map((p: np.Array) => {
    const d = Float32Array.from({ length: p.size }, () => rng.normal() * std);
    const shape = p.shape;
    p.dispose();
    return np.array(d).reshape(shape);
  }, params as never) as T;
}

/** Procedural shapes images of the given seeds, S×S×3 each, back to back (B×S×S×3 pixels). */
export function shapesPixels(S: number, ...seeds: number[]): Float32Array {
  const pix = new Float32Array(seeds.length * S * S * 3);
  seeds.forEach((seed, b) => pix.set(renderShapes(seed, S), b * S * S * 3));
  return pix;
}

export type CliResult = { code: number; out: string; err: string };

/**
 * Run the CLI (bin/selftok.js) in `cwd` as a user would; stderr lines matching `quiet` (progress
 * and device notes) are left out of `err`, so that a failure's `err` is what the user reads.
 */
export function runCli(cwd: string, args: string[], quiet: RegExp = /^selftok: device/): CliResult {
  const r = spawnSync(process.execPath, [resolve('bin/selftok.js'), ...args], { encoding: 'utf8', cwd, timeout: 300_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr.split('\n').filter((l) => l && !quiet.test(l)).join('\n') };
}

/**
 * Runs the CLI and sends it `signal` once its stderr matches `when` (a training command's step line):
 * the graceful stop of src/node/stop.ts. A run that ignores the signal is killed after 2 minutes.
 */
export async function runCliSignalled(cwd: string, args: string[], when: RegExp, signal: NodeJS.Signals = 'SIGTERM'): Promise<CliResult> {
  const child = spawn(process.execPath, [resolve('bin/selftok.js'), ...args], { cwd });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => {
    err += d;
    if (when.test(err) && !child.killed) child.kill(signal);
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((done) => child.on('close', done));
  clearTimeout(guard);
  return { code: code ?? -1, out, err };
}

/** A failed run with one line of error that matches `pattern` and no stack trace. */
export function expectOneLineError(r: CliResult, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `should fail: ${r.out}`);
  assert.equal(r.err.split('\n').length, 1, `one line: ${r.err}`);
  assert.match(r.err, pattern);
  assert.doesNotMatch(r.err, /internal error|at .*\.ts:\d+/);
}

/** A micro AR config for unit tests (2 × 32, maxLen 40: captions of 4 objects fit with K = 8). */
export function microArConfig(over: Partial<ArConfig> = {}): ArConfig {
  return {
    name: 'micro-ar',
    vocab: 0,
    // as configs/ar/scenes.json: the table padded (the extra ids must never come out)
    vocabMultiple: 8,
    dim: 32,
    depth: 2,
    heads: 2,
    hidden: 64,
    maxLen: 40,
    ropeBase: 10000,
    order: 'ar',
    train: { batch: 8, lr: 3e-3, beta1: 0.9, beta2: 0.98, weightDecay: 0, warmup: 5, cooldownFraction: 0, promptDrop: 0.1, mix: { textToImage: 0.5, imageToText: 0.4, imageOnly: 0.1 }, pool: 24 },
    ...over,
  };
}
