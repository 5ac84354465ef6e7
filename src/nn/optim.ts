// AdamW (decoupled weight decay), written here because @jax-js/optax is not on npm.
//
// The moments m, v and the gradients travel as single flat vectors in a fixed layout (the
// parameters' dotted names in flattenParams order), not as trees of ~150 arrays. The numbers
// are the same; what changes is the count of arrays crossing a jit boundary: jax-js copies
// the pending-kernel list of a jitted call into every output array and walks it for every
// input, so per-array cost × (params + grads + m + v) was ~1M set operations, ~100 ms, per
// tiny training step on the CPU. Flat moments and grads cut the step by that much.
import { jit, numpy as np, type OwnedFunction } from '@jax-js/jax';
import { flattenParams, mapParams, type Params } from './params.ts';

/** Where each parameter lives in the flat vectors: dotted name, shape, offset, size. */
export type ParamLayout = { name: string; shape: number[]; offset: number; size: number }[];

export type AdamState = { m: np.Array; v: np.Array; step: number };

export function paramLayout(params: Params): ParamLayout {
  const layout: ParamLayout = [];
  let offset = 0;
  for (const [name, a] of flattenParams(params)) {
    layout.push({ name, shape: [...a.shape], offset, size: a.size });
    offset += a.size;
  }
  return layout;
}

export function layoutSize(layout: ParamLayout): number {
  const last = layout.at(-1);
  return last ? last.offset + last.size : 0;
}

/**
 * Concatenate a tree's leaves (consumed) into one flat vector in layout order. Used inside
 * jit on the gradients. The concatenation is a tree of ≤8-input concats, so each element is
 * copied about log8(N) times rather than N/7 times as in a chained concatenate.
 */
export function packTree(t: Params, layout: ParamLayout): np.Array {
  const leaves = flattenParams(t);
  let parts = layout.map((l) => {
    const a = leaves.get(l.name);
    if (!a) throw new Error(`internal: packTree: no leaf ${l.name}`);
    return a.reshape([l.size]);
  });
  while (parts.length > 1) {
    const next: np.Array[] = [];
    for (let i = 0; i < parts.length; i += 8) {
      const group = parts.slice(i, i + 8);
      next.push(group.length === 1 ? group[0] : np.concatenate(group));
    }
    parts = next;
  }
  return parts[0] ?? np.zeros([0]);
}

/** Host side: one flat Float32Array from per-name arrays (resume), checked against the layout. */
export function packHost(layout: ParamLayout, get: (name: string, shape: number[]) => Float32Array): Float32Array {
  const out = new Float32Array(layoutSize(layout));
  for (const l of layout) out.set(get(l.name, l.shape), l.offset);
  return out;
}

/** Host side: the per-name views of a flat Float32Array (checkpoints). */
export function unpackHost(layout: ParamLayout, flat: Float32Array): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map(layout.map((l) => [l.name, { shape: l.shape, data: flat.subarray(l.offset, l.offset + l.size) }]));
}

export function adamInit(layout: ParamLayout): AdamState {
  const n = layoutSize(layout);
  return { m: np.zeros([n]), v: np.zeros([n]), step: 0 };
}

export type AdamHyper = { lr: number; beta1: number; beta2: number; weightDecay: number; eps?: number };

/**
 * Returns a jitted update: (params, flat grads, m, v, lr, c1, c2) → {params, m, v} where
 * c1 = 1/(1 − β1^t), c2 = 1/(1 − β2^t) are the bias corrections (scalars as arrays so
 * one compiled kernel serves every step). The moments are updated as whole flat vectors;
 * each parameter reads its slice of them.
 */
export function makeAdamUpdate(
  h: AdamHyper,
  layout: ParamLayout,
): OwnedFunction<(p: Params, g: np.Array, m: np.Array, v: np.Array, lr: np.Array, c1: np.Array, c2: np.Array) => { p: Params; m: np.Array; v: np.Array }> {
  const { beta1: b1, beta2: b2, weightDecay: wd } = h;
  const eps = h.eps ?? 1e-8;
  const at = new Map(layout.map((l) => [l.name, l]));
  return jit((p: Params, g: np.Array, m: np.Array, v: np.Array, lr: np.Array, c1: np.Array, c2: np.Array) => {
    const mo = m.mul(b1).add(g.ref.mul(1 - b1));
    const vo = v.mul(b2).add(g.ref.mul(g).mul(1 - b2));
    const po = mapParams(p, (name, pi) => {
      const l = at.get(name);
      if (!l) throw new Error(`internal: makeAdamUpdate: no layout entry for ${name}`);
      const mi = mo.ref.slice([l.offset, l.offset + l.size]).reshape(l.shape);
      const vi = vo.ref.slice([l.offset, l.offset + l.size]).reshape(l.shape);
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
