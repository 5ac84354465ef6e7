import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setupDevice } from '../src/engine/device.ts';
import { loadConfig, type SelftokConfig } from '../src/tokenizer/config.ts';

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
  c.sampler.guidance = 1;
  over(c);
  return c;
}

export function tmp(prefix = 'selftok-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
