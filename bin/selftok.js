#!/usr/bin/env node
// The `selftok` command. In a checkout it runs the TypeScript sources directly (tsx), so the
// checkout works right after `npm ci`; an installed package (npm pack, no src/) runs the
// compiled JavaScript in dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const fromSource = existsSync(fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)));
if (fromSource) {
  const { register } = await import('tsx/esm/api');
  register();
}
const root = fromSource ? '../src/' : '../dist/';
const ext = fromSource ? '.ts' : '.js';
// before jax-js loads: its wasm backend decides at import whether it may use threads
await import(`${root}engine/wasm-threads${ext}`);
await import(`${root}cli/main${ext}`);
