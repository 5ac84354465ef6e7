// Device setup: which jax-js backend computes (engine.md).
// `auto` = WebGPU when the platform gives an adapter (navigator.gpu in a browser; Dawn, the
// `webgpu` package, in Node: src/node/device.ts), else wasm.
import './polyfills.ts';
import { init, defaultDevice, type Device } from '@jax-js/jax';
import { UserError } from '../util/errors.ts';

export type DeviceChoice = 'auto' | 'webgpu' | 'wasm' | 'cpu';
export const DEVICE_CHOICES: DeviceChoice[] = ['auto', 'webgpu', 'wasm', 'cpu'];

let active: Device | null = null;

/**
 * How a platform without `navigator.gpu` provides one (Node: Dawn, src/node/device.ts). `quiet`
 * (for `auto`): give up without native warnings where no GPU can be reached. True when an
 * adapter is there.
 */
export type GpuInstaller = (quiet: boolean) => Promise<boolean>;

/** Initialise jax-js once and make `choice` the default device. Returns the device in use. */
export async function setupDevice(choice: DeviceChoice = 'auto', installGpu?: GpuInstaller): Promise<Device> {
  if (!DEVICE_CHOICES.includes(choice)) {
    throw new UserError(`--device: unknown device '${choice}' (choose ${DEVICE_CHOICES.join(', ')})`);
  }
  if (active) {
    if (choice !== 'auto' && choice !== active) {
      throw new UserError(`device already initialised as ${active}; cannot switch to ${choice} in one process`);
    }
    return active;
  }
  const g = globalThis as { navigator?: { gpu?: unknown } };
  const wantGpu = choice === 'webgpu' || choice === 'auto';
  const haveGpu = wantGpu && (g.navigator?.gpu ? true : installGpu ? await installGpu(choice === 'auto') : false);
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
