// AdamW (decoupled weight decay), written here because @jax-js/optax is not on npm.
//
// The moments m, v and the gradients travel as "bucket" vectors in a layout (the parameters'
// dotted names in flattenParams order): by default one bucket per parameter, where packing a
// gradient is a reshape. Consecutive parameters can share a bucket (`paramLayout`'s cap); that
// was the default for models under 8 M parameters while jax-js kept every pending kernel of a
// jitted call on each output array (per-array dispatch cost ~130 ms per `tiny` step). Since the
// patch that dispatches a jitted program's kernels as it runs, per-array cost is small and the
// packing is what costs: jax-js lowers np.concatenate as a sum of zero-padded inputs, 43 ms of
// `photo64`'s step (bench/elementwise.ts). One bucket per parameter: `photo64` 462 -> 419 ms,
// `tiny` 129 -> 116-128 ms, the same numbers (the update is element-wise either way).
import { jit, numpy as np, type OwnedFunction } from '@jax-js/jax';
import { flattenParams, mapParams, type Params } from './params.ts';
import { asFloat32, type Tensor } from '../io/safetensors.ts';
import { UserError } from '../util/errors.ts';

/** Where each parameter lives: its bucket and the offset in it. */
export type ParamSlot = { name: string; shape: number[]; bucket: number; offset: number; size: number };
export type ParamLayout = { slots: ParamSlot[]; bucketSizes: number[] };

/** Adam state: first and second moments, one flat array per bucket of the layout. */
export type AdamState = { m: np.Array[]; v: np.Array[]; step: number };

/**
 * The layout of a parameter tree: consecutive parameters share a bucket while it stays within
 * `cap` elements (a parameter larger than the cap gets a bucket of its own). By default
 * (cap 0) one bucket per parameter.
 */
export function paramLayout(params: Params, cap = 0): ParamLayout {
  const slots: ParamSlot[] = [];
  const bucketSizes: number[] = [];
  for (const [name, a] of flattenParams(params)) {
    const last = bucketSizes.length - 1;
    if (last < 0 || bucketSizes[last] + a.size > cap) bucketSizes.push(0);
    const bucket = bucketSizes.length - 1;
    slots.push({ name, shape: [...a.shape], bucket, offset: bucketSizes[bucket], size: a.size });
    bucketSizes[bucket] += a.size;
  }
  return { slots, bucketSizes };
}

/**
 * A tree's leaves (consumed) as the layout's flat bucket vectors. Used inside jit on the
 * gradients. A one-parameter bucket is a reshape; larger ones are a tree of ≤8-input concats,
 * so each element is copied about log8(N) times rather than N/7 as in a chained concatenate.
 */
export function packTree(t: Params, layout: ParamLayout): np.Array[] {
  const leaves = flattenParams(t);
  const parts: np.Array[][] = layout.bucketSizes.map(() => []);
  for (const s of layout.slots) {
    const a = leaves.get(s.name);
    if (!a) throw new Error(`internal: packTree: no leaf ${s.name}`);
    parts[s.bucket].push(a.reshape([s.size]));
  }
  return parts.map((level) => {
    while (level.length > 1) {
      const next: np.Array[] = [];
      for (let i = 0; i < level.length; i += 8) {
        const group = level.slice(i, i + 8);
        next.push(group.length === 1 ? group[0] : np.concatenate(group));
      }
      level = next;
    }
    return level[0];
  });
}

/** Host side: the flat bucket vectors from per-name arrays (resume). */
export function packHost(layout: ParamLayout, get: (name: string, shape: number[]) => Float32Array): Float32Array[] {
  const out = layout.bucketSizes.map((n) => new Float32Array(n));
  for (const s of layout.slots) out[s.bucket].set(get(s.name, s.shape), s.offset);
  return out;
}

/** Host side: the per-name views of the flat bucket vectors (checkpoints). */
export function unpackHost(layout: ParamLayout, buckets: Float32Array[]): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map(layout.slots.map((s) => [s.name, { shape: s.shape, data: buckets[s.bucket].subarray(s.offset, s.offset + s.size) }]));
}

/** Checkpoint side: the moments as per-parameter float32 tensors named PREFIX + parameter name. */
export async function momentTensors(layout: ParamLayout, buckets: np.Array[], prefix: string): Promise<Map<string, Tensor>> {
  const host: Float32Array[] = [];
  for (const b of buckets) host.push(Float32Array.from((await b.ref.data()) as Float32Array));
  const out = new Map<string, Tensor>();
  for (const [k, a] of unpackHost(layout, host)) out.set(prefix + k, { dtype: 'F32', shape: a.shape, data: a.data });
  return out;
}

/** Resume side: the moments of PREFIX + parameter name from checkpoint tensors, packed into the layout. */
export function momentsFromTensors(layout: ParamLayout, tensors: Map<string, Tensor>, prefix: string, where: string): np.Array[] {
  return packHost(layout, (name, shape) => {
    const t = tensors.get(prefix + name);
    if (!t || t.shape.join('x') !== shape.join('x')) throw new UserError(`${where}: missing or mis-shaped ${prefix}${name}`);
    return asFloat32(t);
  }).map((b) => np.array(b));
}

export function adamInit(layout: ParamLayout): AdamState {
  return { m: layout.bucketSizes.map((n) => np.zeros([n])), v: layout.bucketSizes.map((n) => np.zeros([n])), step: 0 };
}

/** What every training recipe sets for AdamW and its schedule (tokenizer and AR configs). */
export type OptimizerSettings = {
  batch: number;
  lr: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  /** Linear warm-up of the learning rate, in steps. */
  warmup: number;
};

export type AdamHyper = { lr: number; beta1: number; beta2: number; weightDecay: number; eps?: number };

/**
 * Returns a jitted update: (params, packed grads, m, v, lr, c1, c2) → {params, m, v} where
 * c1 = 1/(1 − β1^t), c2 = 1/(1 − β2^t) are the bias corrections (scalars as arrays so
 * one compiled kernel serves every step). The moments are updated bucket by bucket as flat
 * vectors; each parameter reads its slice of them.
 */
export function makeAdamUpdate(
  h: AdamHyper,
  layout: ParamLayout,
): OwnedFunction<(p: Params, g: np.Array[], m: np.Array[], v: np.Array[], lr: np.Array, c1: np.Array, c2: np.Array) => { p: Params; m: np.Array[]; v: np.Array[] }> {
  const { beta1: b1, beta2: b2, weightDecay: wd } = h;
  const eps = h.eps ?? 1e-8;
  const at = new Map(layout.slots.map((s) => [s.name, s]));
  return jit((p: Params, g: np.Array[], m: np.Array[], v: np.Array[], lr: np.Array, c1: np.Array, c2: np.Array) => {
    const mo = m.map((mb, b) => mb.mul(b1).add(g[b].ref.mul(1 - b1)));
    const vo = v.map((vb, b) => vb.mul(b2).add(g[b].ref.mul(g[b]).mul(1 - b2)));
    const po = mapParams(p, (name, pi) => {
      const s = at.get(name);
      if (!s) throw new Error(`internal: makeAdamUpdate: no layout slot for ${name}`);
      const mi = mo[s.bucket].ref.slice([s.offset, s.offset + s.size]).reshape(s.shape);
      const vi = vo[s.bucket].ref.slice([s.offset, s.offset + s.size]).reshape(s.shape);
      const upd = mi.mul(c1.ref).div(np.sqrt(vi.mul(c2.ref)).add(eps));
      const decay = wd ? pi.ref.mul(wd) : null;
      return pi.sub((decay ? upd.add(decay) : upd).mul(lr.ref));
    });
    lr.dispose();
    c1.dispose();
    c2.dispose();
    return { p: po, m: mo, v: vo };
  });
}
