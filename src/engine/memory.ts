// Live device-buffer accounting, for leak tests and the benchmark's peak-memory
// figure. jax-js keeps its buffer table private, so we mirror the backend's
// reference counts by wrapping malloc/incRef/decRef on the backend instance.
// The backend chunk is a hashed file inside the pinned @jax-js/jax; we find the
// exported function named `getBackend` in it rather than trusting a minified alias.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Device } from '@jax-js/jax';

type Backend = {
  malloc: (size: number, init?: Uint8Array) => number;
  incRef: (slot: number) => void;
  decRef: (slot: number) => void;
};

export type MemoryTracker = {
  /** Buffers currently alive on the device. */
  liveBuffers(): number;
  /** Bytes currently alive, and the most that were alive at once since the last reset. */
  liveBytes(): number;
  peakBytes(): number;
  resetPeak(): void;
};

const trackers = new Map<Device, MemoryTracker>();

async function getBackendFn(): Promise<(d: Device) => Backend> {
  const index = fileURLToPath(import.meta.resolve('@jax-js/jax'));
  const dir = dirname(index);
  for (const f of readdirSync(dir).filter((n) => /^backend-.*\.js$/.test(n))) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as Record<string, unknown>;
    for (const v of Object.values(mod)) {
      if (typeof v === 'function' && v.name === 'getBackend') return v as (d: Device) => Backend;
    }
  }
  throw new Error('internal: getBackend not found in @jax-js/jax (version changed?)');
}

/** Start (or return) accounting for `device`. Call after setupDevice(). */
export async function trackMemory(device: Device): Promise<MemoryTracker> {
  const existing = trackers.get(device);
  if (existing) return existing;
  const backend = (await getBackendFn())(device);
  const refs = new Map<number, { ref: number; size: number }>();
  let bytes = 0;
  let peak = 0;
  const malloc = backend.malloc.bind(backend);
  const incRef = backend.incRef.bind(backend);
  const decRef = backend.decRef.bind(backend);
  backend.malloc = (size, init) => {
    const slot = malloc(size, init);
    refs.set(slot, { ref: 1, size });
    bytes += size;
    if (bytes > peak) peak = bytes;
    return slot;
  };
  backend.incRef = (slot) => {
    incRef(slot);
    const r = refs.get(slot);
    if (r) r.ref++;
  };
  backend.decRef = (slot) => {
    decRef(slot);
    const r = refs.get(slot);
    if (r && --r.ref === 0) {
      refs.delete(slot);
      bytes -= r.size;
    }
  };
  const tracker: MemoryTracker = {
    liveBuffers: () => refs.size,
    liveBytes: () => bytes,
    peakBytes: () => peak,
    resetPeak: () => {
      peak = bytes;
    },
  };
  trackers.set(device, tracker);
  return tracker;
}
