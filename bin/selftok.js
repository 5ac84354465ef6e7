#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so a checkout works right after `npm ci`.
import { register } from 'tsx/esm/api';
register();
// before jax-js loads: its wasm backend decides at import whether it may use threads
await import('../src/engine/wasm-threads.ts');
await import('../src/cli/main.ts');
