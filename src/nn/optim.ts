// AdamW (decoupled weight decay), written here because @jax-js/optax is not on npm.
import { jit, numpy as np, tree, type OwnedFunction } from '@jax-js/jax';
import type { Params } from './params.ts';

export type AdamState = { m: Params; v: Params; step: number };

export function adamInit(params: Params): AdamState {
  return {
    m: tree.map((p: np.Array) => np.zerosLike(p.ref), params) as Params,
    v: tree.map((p: np.Array) => np.zerosLike(p.ref), params) as Params,
    step: 0,
  };
}

export type AdamHyper = { lr: number; beta1: number; beta2: number; weightDecay: number; eps?: number };

/**
 * Returns a jitted update: (params, grads, m, v, lr, c1, c2) → {params, m, v} where
 * c1 = 1/(1 − β1^t), c2 = 1/(1 − β2^t) are the bias corrections (scalars as arrays so
 * one compiled kernel serves every step).
 */
export function makeAdamUpdate(h: AdamHyper): OwnedFunction<(p: Params, g: Params, m: Params, v: Params, lr: np.Array, c1: np.Array, c2: np.Array) => { p: Params; m: Params; v: Params }> {
  const { beta1: b1, beta2: b2, weightDecay: wd } = h;
  const eps = h.eps ?? 1e-8;
  return jit((p: Params, g: Params, m: Params, v: Params, lr: np.Array, c1: np.Array, c2: np.Array) => {
    const [pl, def] = tree.flatten(p);
    const gl = tree.leaves(g) as np.Array[];
    const ml = tree.leaves(m) as np.Array[];
    const vl = tree.leaves(v) as np.Array[];
    const po: np.Array[] = [];
    const mo: np.Array[] = [];
    const vo: np.Array[] = [];
    (pl as np.Array[]).forEach((pi, i) => {
      const gi = gl[i];
      const mi = ml[i].mul(b1).add(gi.ref.mul(1 - b1));
      const vi = vl[i].mul(b2).add(gi.ref.mul(gi).mul(1 - b2));
      const upd = mi.ref.mul(c1.ref).div(np.sqrt(vi.ref.mul(c2.ref)).add(eps));
      const decay = wd ? pi.ref.mul(wd) : null;
      po.push(pi.sub((decay ? upd.add(decay) : upd).mul(lr.ref)));
      mo.push(mi);
      vo.push(vi);
    });
    lr.dispose();
    c1.dispose();
    c2.dispose();
    return { p: tree.unflatten(def, po) as Params, m: tree.unflatten(def, mo) as Params, v: tree.unflatten(def, vo) as Params };
  });
}
