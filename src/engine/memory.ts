// Live device-buffer accounting, for leak tests and the benchmark's peak-memory
// figure. jax-js keeps its buffer table private, so we mirror the backend's
// reference counts by wrapping malloc/incRef/decRef on the backend instance.
// The backend chunk is a hashed file inside the pinned @jax-js/jax; we find the
// exported function named `getBackend` in it rather than trusting a minified alias.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Device } from '@jax-js/jax';
import { kernelLabel, type KernelInfo } from './profile.ts';

type KernelSource = { exp?: unknown; reduction?: { op: string; size: number }; size?: number; name?: string };
type Backend = {
  malloc: (size: number, init?: Uint8Array) => number;
  incRef: (slot: number) => void;
  decRef: (slot: number) => void;
  dispatch: (exe: { source: KernelSource }, inputs: number[], outputs: number[]) => void;
};

/** The buffers alive at the peak that one kind of kernel wrote (by kernel label): how many, how large. */
export type PeakBuffers = { madeBy: string; buffers: number; bytes: number };

export type MemoryTracker = {
  /** Buffers currently alive on the device. */
  liveBuffers(): number;
  /** Bytes currently alive, and the most that were alive at once since the last reset. */
  liveBytes(): number;
  peakBytes(): number;
  resetPeak(): void;
  /**
   * From now on, remember which kernel wrote each buffer and, at each new peak, which buffers
   * are alive (a profiling aid: it costs a pass over the live buffers per new peak). 0: off.
   */
  attributePeak(groups: number): void;
  /** The buffers alive at the peak since the last reset, grouped by the kernel that wrote them, largest groups first. */
  peakBuffers(): PeakBuffers[];
};

const infoCache = new WeakMap<KernelSource, string>();
function describe(source: KernelSource): string {
  let label = infoCache.get(source);
  if (label === undefined) {
    const info: KernelInfo =
      source.exp !== undefined
        ? { exp: `${source.exp}`, reduction: source.reduction ? `${source.reduction.op}:${source.reduction.size}` : undefined, size: source.size }
        : { routine: source.name ?? '?' };
    label = kernelLabel(info);
    infoCache.set(source, label);
  }
  return label;
}

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
  let attributeTop = 0;
  const madeBy = new Map<number, string>();
  let atPeak = new Map<number, number>(); // slot → bytes, every buffer alive at the peak
  const snapshot = (): void => {
    atPeak = new Map([...refs.entries()].map(([slot, r]) => [slot, r.size]));
  };
  const malloc = backend.malloc.bind(backend);
  const incRef = backend.incRef.bind(backend);
  const decRef = backend.decRef.bind(backend);
  backend.malloc = (size, init) => {
    const slot = malloc(size, init);
    refs.set(slot, { ref: 1, size });
    bytes += size;
    if (bytes > peak) {
      peak = bytes;
      if (attributeTop > 0) snapshot();
    }
    return slot;
  };
  const dispatch = backend.dispatch.bind(backend);
  backend.dispatch = (exe, inputs, outputs) => {
    if (attributeTop > 0) for (const slot of outputs) if (!madeBy.has(slot)) madeBy.set(slot, describe(exe.source));
    dispatch(exe, inputs, outputs);
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
      if (!atPeak.has(slot)) madeBy.delete(slot);
    }
  };
  const tracker: MemoryTracker = {
    liveBuffers: () => refs.size,
    liveBytes: () => bytes,
    peakBytes: () => peak,
    resetPeak: () => {
      peak = bytes;
      if (attributeTop > 0) snapshot();
    },
    attributePeak: (n) => {
      attributeTop = n;
      snapshot();
    },
    peakBuffers: () => {
      const groups = new Map<string, PeakBuffers>();
      for (const [slot, size] of atPeak) {
        const label = madeBy.get(slot) ?? 'uploaded from the host (parameters, optimizer state, data)';
        const g = groups.get(label) ?? { madeBy: label, buffers: 0, bytes: 0 };
        g.buffers++;
        g.bytes += size;
        groups.set(label, g);
      }
      return [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, attributeTop);
    },
  };
  trackers.set(device, tracker);
  return tracker;
}
