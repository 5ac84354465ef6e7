// The device in Node: jax-js with WebGPU through Dawn (the `webgpu` package), else wasm.
// engine/device.ts decides; this module gives it Node's GPU and the navigator jax-js reads.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import type { Device } from '@jax-js/jax';
import { setupDevice as setupCoreDevice, type DeviceChoice } from '../engine/device.ts';

export { activeDevice, DEVICE_CHOICES, type DeviceChoice } from '../engine/device.ts';

/**
 * WebAssembly's relaxed SIMD (a finished standard, on by default in Chrome 114+ and Node 22+)
 * has a fused multiply-add, f32x4.relaxed_madd, which jax-js's wasm matmul uses where the
 * engine validates it; Node 20's V8 has it behind a flag. Set here, before jax-js compiles its
 * first kernel, for this process and its worker threads. SELFTOK_RELAXED_SIMD=0 keeps the
 * separate multiply and add (the numbers of a Node 20 without the flag).
 */
export const RELAXED_SIMD = process.env.SELFTOK_RELAXED_SIMD !== '0';
if (RELAXED_SIMD) setFlagsFromString('--experimental-wasm-relaxed-simd');

/**
 * On Linux, Dawn reaches GPUs only through the Vulkan loader; without libvulkan.so.1 it can
 * find no adapter and prints a native warning. `auto` skips it quietly in that case.
 */
function vulkanLoaderMissing(): boolean {
  if (process.platform !== 'linux') return false;
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib', '/usr/local/lib',
  ];
  return !dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')));
}

/** Put Dawn's GPU on globalThis.navigator; false where it finds no adapter (or `quiet` and no Vulkan loader). */
async function installNodeWebGPU(quiet: boolean): Promise<boolean> {
  if (quiet && vulkanLoaderMissing()) return false;
  const g = globalThis as { navigator?: { gpu?: unknown; userAgent?: string } };
  try {
    const mod = (await import('webgpu')) as { create: (o: string[]) => unknown; globals: object };
    Object.assign(globalThis, mod.globals);
    const gpu = mod.create([]) as { requestAdapter: () => Promise<unknown> };
    const adapter = await gpu.requestAdapter();
    if (!adapter) return false;
    Object.defineProperty(globalThis, 'navigator', {
      value: { ...(g.navigator ?? {}), gpu, userAgent: 'node' },
      configurable: true,
      writable: true,
    });
    return true;
  } catch {
    return false;
  }
}

/** Initialise jax-js once and make `choice` the default device (WebGPU through Dawn). Returns the device in use. */
export async function setupDevice(choice: DeviceChoice = 'auto'): Promise<Device> {
  const g = globalThis as { navigator?: object };
  // jax-js reads navigator (Node 20 has none)
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: { userAgent: 'node' }, configurable: true, writable: true });
  return setupCoreDevice(choice, installNodeWebGPU);
}
