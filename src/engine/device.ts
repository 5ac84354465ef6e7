// Device setup: which jax-js backend computes (engine.md).
// `auto` = WebGPU when Dawn (the `webgpu` package in Node, navigator.gpu in a
// browser) gives an adapter, else wasm.
import './polyfills.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { init, defaultDevice, type Device } from '@jax-js/jax';
import { UserError } from '../util/errors.ts';

export type DeviceChoice = 'auto' | 'webgpu' | 'wasm' | 'cpu';
export const DEVICE_CHOICES: DeviceChoice[] = ['auto', 'webgpu', 'wasm', 'cpu'];

let active: Device | null = null;

/**
 * On Linux, Dawn reaches GPUs only through the Vulkan loader; without libvulkan.so.1 it can
 * find no adapter and prints a native warning. `auto` skips it quietly in that case.
 */
function vulkanLoaderMissing(): boolean {
  if (typeof process === 'undefined' || process.platform !== 'linux') return false;
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib', '/usr/local/lib',
  ];
  return !dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')));
}

async function installNodeWebGPU(): Promise<boolean> {
  const g = globalThis as { navigator?: { gpu?: unknown; userAgent?: string } };
  if (g.navigator?.gpu) return true;
  if (typeof process === 'undefined' || !process.versions?.node) return false;
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

/** Initialise jax-js once and make `choice` the default device. Returns the device in use. */
export async function setupDevice(choice: DeviceChoice = 'auto'): Promise<Device> {
  if (!DEVICE_CHOICES.includes(choice)) {
    throw new UserError(`--device: unknown device '${choice}' (choose ${DEVICE_CHOICES.join(', ')})`);
  }
  if (active) {
    if (choice !== 'auto' && choice !== active) {
      throw new UserError(`device already initialised as ${active}; cannot switch to ${choice} in one process`);
    }
    return active;
  }
  const g = globalThis as { navigator?: object };
  const wantGpu = choice === 'webgpu' || (choice === 'auto' && !vulkanLoaderMissing());
  const haveGpu = wantGpu ? await installNodeWebGPU() : false;
  if (!g.navigator) {
    Object.defineProperty(globalThis, 'navigator', { value: { userAgent: 'node' }, configurable: true, writable: true });
  }
  // the wasm worker pool (threads) is decided when jax-js is imported: see wasm-threads.ts
  const available = await init();
  let device: Device;
  if (choice === 'auto') device = haveGpu && available.includes('webgpu') ? 'webgpu' : 'wasm';
  else device = choice;
  if (!available.includes(device)) {
    throw new UserError(
      `--device ${choice}: no ${device} backend here (available: ${available.join(', ')})` +
        (device === 'webgpu' ? '; no WebGPU adapter was found' : ''),
    );
  }
  defaultDevice(device);
  active = device;
  return device;
}

export function activeDevice(): Device {
  if (!active) throw new Error('internal: setupDevice() was not called');
  return active;
}
