// The named configs (configs/*.json, shipped with the package) and config files, read from disk.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { validateConfig, type SelftokConfig } from '../tokenizer/config.ts';
import { UserError } from '../util/errors.ts';
import { readJsonFile } from './fsx.ts';
import { PACKAGE_ROOT } from './paths.ts';

export const CONFIG_DIR = PACKAGE_ROOT && join(PACKAGE_ROOT, 'configs');

export function namedConfigs(): string[] {
  return readdirSync(CONFIG_DIR).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
}

/** Load a config by name (configs/NAME.json) or from a JSON file path, and validate it. */
export function loadConfig(nameOrFile: string): SelftokConfig {
  let path: string;
  if (/^[a-z0-9-]+$/i.test(nameOrFile) && existsSync(join(CONFIG_DIR, `${nameOrFile}.json`))) {
    path = join(CONFIG_DIR, `${nameOrFile}.json`);
  } else if (existsSync(nameOrFile)) {
    path = nameOrFile;
  } else {
    throw new UserError(`--config ${nameOrFile}: no such named config (${namedConfigs().join(', ')}) or file`);
  }
  return validateConfig(readJsonFile(path), path);
}
