// Parameters are plain nested objects of arrays (a jax-js JsTree), named by their
// dotted path when saved ("dec.blocks.0.ctx.qkv.w"). Layers borrow parameters
// (`p.w.ref`) and consume their activations; top-level jitted functions dispose
// the parameter tree they were given (jax-js ownership, engine.md).
import { numpy as np } from '@jax-js/jax';
import { Rng } from '../util/rng.ts';

export type Params = { [name: string]: np.Array | Params | Params[] };

/** Arrays and the tracers that stand in for them under jit/grad both carry an `aval`. */
export function isLeaf(node: unknown): node is np.Array {
  return !!node && typeof node === 'object' && 'aval' in node;
}

/** Host-side initialisers: deterministic from an Rng, uploaded once. */
export class Init {
  constructor(readonly rng: Rng) {}
  normal(shape: number[], std: number): np.Array {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = this.rng.normal() * std;
    return np.array(d).reshape(shape);
  }
  /** Xavier/Glorot uniform for a fanIn×fanOut matrix. */
  xavier(fanIn: number, fanOut: number): np.Array {
    const a = Math.sqrt(6 / (fanIn + fanOut));
    const d = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < d.length; i++) d[i] = (this.rng.uniform() * 2 - 1) * a;
    return np.array(d).reshape([fanIn, fanOut]);
  }
  zeros(shape: number[]): np.Array {
    return np.zeros(shape);
  }
  ones(shape: number[]): np.Array {
    return np.ones(shape);
  }
}

/** Flatten a parameter tree to dotted names (arrays keep their identity, no copies). */
export function flattenParams(tree: Params, prefix = ''): Map<string, np.Array> {
  const out = new Map<string, np.Array>();
  const walk = (node: unknown, path: string) => {
    if (isLeaf(node)) {
      out.set(path, node);
    } else if (Array.isArray(node)) {
      node.forEach((v, i) => walk(v, path ? `${path}.${i}` : String(i)));
    } else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) walk(v, path ? `${path}.${k}` : k);
    } else {
      throw new Error(`internal: bad parameter node at ${path}`);
    }
  };
  walk(tree, prefix);
  return out;
}

/**
 * Rebuild a tree with the same structure as `like`, taking each leaf from `get(name, shape)`.
 * Used to load weights: `like` is a freshly initialised model whose leaves are disposed.
 */
export function mapParams(like: Params, fn: (name: string, leaf: np.Array) => np.Array, prefix = ''): Params {
  const walk = (node: unknown, path: string): unknown => {
    if (isLeaf(node)) return fn(path, node);
    if (Array.isArray(node)) return node.map((v, i) => walk(v, `${path}.${i}`));
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node as object)) o[k] = walk(v, path ? `${path}.${k}` : k);
    return o;
  };
  return walk(like, prefix) as Params;
}

export function countParams(tree: Params): number {
  let n = 0;
  for (const a of flattenParams(tree).values()) n += a.size;
  return n;
}
