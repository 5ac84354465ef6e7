// Data parallelism over worker threads (issue #21 item 3): jax-js's wasm backend computes on
// one core, and its own thread pool, which splits every kernel over workers, pays a message
// round trip per kernel (~1,600 of them in a training step) and does not speed a step up here
// (docs/engine-profile.md). Splitting the *batch* instead costs one round trip per step: each
// worker thread holds its own jax-js (its own wasm heap) and the same jitted loss + gradient
// function; every step the main thread sends each peer the current parameters (the packed
// buckets of nn/optim.ts, a few MB) and its share of the batch, computes its own share at the
// same time, and averages the peers' packed gradients into its own, weighted by how much of
// the loss each share carries. Only the main thread keeps optimizer state, RNG and checkpoints,
// so a run draws the same batches with or without peers; the sums differ in rounding only.
//
// A peer runs `peer-worker.ts`, which imports a module named at start and calls its
// `createPeer(init)`: the trainer that wants peers provides that module (train/, ar/), so the
// engine knows nothing of models.
import { Worker } from 'node:worker_threads';
import { jit, numpy as np } from '@jax-js/jax';
import { flattenParams, mapParams, type Params } from '../nn/params.ts';
import { packHost, type ParamLayout } from '../nn/optim.ts';

/** What a peer module's `createPeer(init)` returns: one step's work on a message. */
export type PeerHandler = (msg: unknown) => Promise<{ reply: unknown; transfer?: ArrayBuffer[] }>;

/** The reply of a gradient peer: the loss of its share, its weight in the mean, its packed gradients. */
export type PeerGradients = { loss: number; weight: number; grads: Float32Array[]; aux?: Record<string, Float32Array | Int32Array | number> };

const FROM_SOURCE = import.meta.url.endsWith('.ts');

// Starts the worker: under tsx (running from the sources) the worker registers tsx's loader
// itself, because hooks registered in the main thread do not reach worker threads.
const BOOT = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})().catch((e) => { setImmediate(() => { throw e; }); });
`;

/** One worker thread that computes a share of each batch. */
export class GradientPeer {
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private next = 1;
  private failed: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: { id: number; ok: boolean; reply?: unknown; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.reply);
      else p.reject(new Error(`gradient worker: ${m.error}`));
    });
    const fail = (e: Error) => {
      this.failed = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', (e) => fail(new Error(`gradient worker: ${e.message}`)));
    worker.on('exit', (code) => fail(new Error(`gradient worker exited (code ${code})`)));
  }

  /** Start a worker that loads `module` (a URL; it exports createPeer) and calls createPeer(init). */
  static async start(module: URL, init: unknown, transfer: ArrayBuffer[] = []): Promise<GradientPeer> {
    const entry = new URL(`./peer-worker${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url).href;
    const tsx = FROM_SOURCE ? import.meta.resolve('tsx/esm/api') : null;
    const worker = new Worker(BOOT, { eval: true, workerData: { entry, tsx }, stdout: false, stderr: false });
    worker.unref();
    const peer = new GradientPeer(worker);
    await peer.call({ type: 'init', module: module.href, init }, transfer);
    return peer;
  }

  private call(msg: object, transfer: ArrayBuffer[]): Promise<unknown> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  /** Send one step's message (its ArrayBuffers in `transfer` move, not copy) and wait for the reply. */
  step<R>(msg: unknown, transfer: ArrayBuffer[] = []): Promise<R> {
    return this.call({ type: 'step', msg }, transfer) as Promise<R>;
  }

  async close(): Promise<void> {
    this.failed ??= new Error('gradient worker closed');
    await this.worker.terminate();
  }
}

/** Start `count` peers with the same module and init (the init is cloned for each). */
export async function startPeers(count: number, module: URL, init: unknown): Promise<GradientPeer[]> {
  return Promise.all(Array.from({ length: count }, () => GradientPeer.start(module, init)));
}

/** Split `n` rows into `parts` contiguous shares, as even as possible (the first ones larger). */
export function shares(n: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  let from = 0;
  for (let i = 0; i < parts; i++) {
    const size = Math.floor(n / parts) + (i < n % parts ? 1 : 0);
    out.push([from, from + size]);
    from += size;
  }
  return out;
}

/** The parameters as the layout's packed host buckets (what a peer receives every step). */
export async function hostBuckets(params: Params, layout: ParamLayout): Promise<Float32Array[]> {
  const leaves = flattenParams(params);
  const host = new Map<string, Float32Array>();
  for (const [name, a] of leaves) host.set(name, (await a.ref.data()) as Float32Array);
  return packHost(layout, (name) => host.get(name)!);
}

/** Peer side: packed gradients (consumed) as host arrays for the reply (their buffers move, not copy). */
export async function hostGradients(grads: np.Array[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const g of grads) out.push(Float32Array.from((await g.data()) as Float32Array));
  return out;
}

/** Peer side: a parameter tree shaped like `like` from packed host buckets (uploaded, new arrays). */
export function paramsFromBuckets(like: Params, layout: ParamLayout, buckets: Float32Array[]): Params {
  const at = new Map(layout.slots.map((s) => [s.name, s]));
  return mapParams(like, (name) => {
    const s = at.get(name);
    if (!s) throw new Error(`internal: no slot for parameter ${name}`);
    return np.array(buckets[s.bucket].subarray(s.offset, s.offset + s.size)).reshape(s.shape);
  });
}

/** One jitted weighted sum per count of peers: w₀·g₀ + Σ wᵢ·gᵢ per bucket (one dispatch, not four per bucket). */
const weightedSums = new Map<number, (mine: np.Array[], peers: np.Array[][], w: np.Array) => np.Array[]>();

/**
 * The weighted mean of packed gradients: own (device, consumed) with weight `own`, and each
 * peer's (host) with its weight; weights are normalised by their sum.
 */
export function meanGradients(mine: np.Array[], own: number, peers: PeerGradients[]): np.Array[] {
  const total = own + peers.reduce((s, p) => s + p.weight, 0);
  if (!(total > 0)) return mine;
  let sum = weightedSums.get(peers.length);
  if (!sum) {
    sum = jit((m: np.Array[], ps: np.Array[][], w: np.Array) => {
      const out = m.map((g, b) => ps.reduce((acc, p, i) => acc.add(p[b].mul(w.ref.slice(i + 1))), g.mul(w.ref.slice(0))));
      w.dispose();
      return out;
    }) as unknown as (mine: np.Array[], peers: np.Array[][], w: np.Array) => np.Array[];
    weightedSums.set(peers.length, sum);
  }
  const w = np.array(Float32Array.from([own, ...peers.map((p) => p.weight)].map((x) => x / total)));
  return sum(mine, peers.map((p) => p.grads.map((g) => np.array(g))), w);
}

/** The weighted mean of the shares' losses. */
export function meanLoss(own: number, ownWeight: number, peers: PeerGradients[]): number {
  const total = ownWeight + peers.reduce((s, p) => s + p.weight, 0);
  if (!(total > 0)) return own;
  return (own * ownWeight + peers.reduce((s, p) => s + p.loss * p.weight, 0)) / total;
}
