// Model folders on disk (Node): config.json + model.safetensors, loaded tensor by tensor (a model
// can be larger than one buffer) and written atomically. The models themselves are platform-free
// (a model is config + weights: Selftok.fromCheckpoint / stored, ArModel likewise); a page opens
// them by URL with Selftok.open / ArModel.open.
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { ArModel, type TokenizerRef } from '../ar/ar-model.ts';
import { openCheckpoint } from '../import/checkpoint.ts';
import type { StoredModel } from '../io/model-files.ts';
import type { WeightFormat } from '../io/weights.ts';
import { ALL_PARTS, Selftok, type ModelPart } from '../tokenizer/model.ts';
import { validateConfig } from '../tokenizer/config.ts';
import { UserError } from '../util/errors.ts';
import { fileFingerprint } from './files.ts';
import { readJsonFile, writeFileAtomic } from './fsx.ts';
import { writeSafetensorsStreamed } from './safetensors-files.ts';

/** The two files of a model folder, both present, or a one-line error saying which is missing. */
function folderPaths(dir: string, what: string): { cfgPath: string; wPath: string } {
  const cfgPath = join(dir, 'config.json');
  const wPath = join(dir, 'model.safetensors');
  for (const p of [cfgPath, wPath]) if (!existsSync(p)) throw new UserError(`${dir}: not ${what} (no ${p.slice(dir.length + 1)})`);
  return { cfgPath, wPath };
}

/** Write a stored model into `dir` (the weights streamed, each file atomically); returns the weights' fingerprint. */
export async function writeModelFolder(dir: string, m: StoredModel): Promise<string> {
  const wPath = join(dir, 'model.safetensors');
  await writeSafetensorsStreamed(wPath, m.weights, m.metadata);
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(m.config, null, 2) + '\n');
  return fileFingerprint(wPath);
}

/**
 * Load the Selftok model in `dir`, checking every tensor's name and shape; `parts` loads only
 * those parts' weights (the others stay lazy zeros). A model whose float32 weights cannot fit the
 * wasm device stops before loading.
 */
export function loadSelftok(dir: string, parts: readonly ModelPart[] = ALL_PARTS): Selftok {
  const { cfgPath, wPath } = folderPaths(dir, 'a model directory');
  const model = Selftok.fromCheckpoint(validateConfig(readJsonFile(cfgPath), cfgPath), openCheckpoint(wPath), dir, parts);
  model.fingerprint = fileFingerprint(wPath);
  return model;
}

/** Write a Selftok or AR model into `dir` (config.json + model.safetensors; `stored`'s options); updates its fingerprint. */
export async function saveModel(model: Selftok | ArModel, dir: string, opts: { format?: WeightFormat; inference?: boolean } = {}): Promise<void> {
  model.fingerprint = await writeModelFolder(dir, await model.stored(opts));
}

/** Load the AR model in `dir`; every tensor is shape-checked. */
export function loadArModel(dir: string): ArModel {
  const { cfgPath, wPath } = folderPaths(dir, 'an AR model directory');
  const model = ArModel.fromCheckpoint(readJsonFile(cfgPath), cfgPath, openCheckpoint(wPath));
  model.fingerprint = fileFingerprint(wPath);
  return model;
}

/**
 * An AR model and the tokenizer it speaks: `tokenizerDir`, or the directory its config
 * records (relative to the AR model's). A tokenizer with another fingerprint is refused.
 */
export async function loadArPair(dir: string, tokenizerDir?: string): Promise<{ ar: ArModel; tokenizer: Selftok }> {
  const ar = loadArModel(dir);
  const tdir = tokenizerDirOf(dir, ar.tokenizer, tokenizerDir);
  const tokenizer = loadSelftok(tdir);
  await ar.checkTokenizer(tokenizer, tdir);
  return { ar, tokenizer };
}

/** The tokenizer directory of the AR model in `dir`: `given`, else the one its config records (relative to `dir`); it must exist. */
export function tokenizerDirOf(dir: string, ref: TokenizerRef, given?: string): string {
  const tdir = given ?? (ref.path ? resolve(dir, ref.path) : null);
  if (!tdir) throw new UserError(`${dir}: the AR model does not record where its tokenizer is; give --tokenizer DIR`);
  if (!existsSync(tdir)) throw new UserError(`${tdir}: no such tokenizer directory (the AR model ${dir} needs ${ref.name}, ${ref.fingerprint})`);
  return tdir;
}

/** The tokenizer path an AR model saved in `arDir` records: `tokenizerDir` relative to it. */
export const tokenizerPathFrom = (arDir: string, tokenizerDir: string): string => relative(resolve(arDir), resolve(tokenizerDir));

/** Is DIR an AR model directory (its config.json has an 'ar' section)? */
export function isArModelDir(dir: string): boolean {
  try {
    return 'ar' in (readJsonFile(join(dir, 'config.json')) as object);
  } catch {
    return false;
  }
}
