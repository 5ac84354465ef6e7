// Where one step's time goes (issue #21, item 1): every kernel jax-js dispatches, grouped by
// kind, from jax-js's own profiler (`profiler.startTrace`, which records a `performance.measure`
// per dispatched kernel with its expression: on wasm the kernel's wall time, on WebGPU its
// GPU time from timestamp queries). What the kernels do not account for is host-side work:
// tracing and jit-cache lookups, dispatch, the optimizer's host part, data.
import { profiler } from '@jax-js/jax';

/**
 * What a kernel computes, read from its fused expression:
 * - `matmul`: a sum over a product of two inputs (a linear layer, a convolution as a matmul);
 * - `attention`: the same over a batch × heads grid (q·kᵀ and p·v; output rank ≥ 4);
 * - `reduction`: any other sum, max, … (norms, softmax denominators, losses, gradient sums);
 * - `element-wise`: no reduction (activations, the optimizer update, fused adds);
 * - `routine`: jax-js's hand-written routines (sort, scatter, …), by name.
 */
export type KernelKind = 'matmul' | 'attention' | 'reduction' | 'element-wise' | 'routine';
export const KERNEL_KINDS: readonly KernelKind[] = ['matmul', 'attention', 'reduction', 'element-wise', 'routine'];

/** A kernel as jax-js's trace describes it: its expression and reduction, or a routine's name. */
export type KernelInfo = { exp?: string; reduction?: string; size?: string | number; routine?: string };

// `(GV_0<float32>{16,64,192,64:…}[…, $ridx] * GV_1<float32>{…}[…, $ridx])`: the reduced
// product of two global reads, with the reduction index in both
const PRODUCT = /^\(GV_\d+<\w+>\{([\d,]+):[^}]*\}\[[^\]]*\$ridx[^\]]*\] \* GV_\d+<\w+>\{[\d,]+:[^}]*\}\[[^\]]*\$ridx[^\]]*\]\)$/;

export function kernelKind(k: KernelInfo): KernelKind {
  if (k.routine !== undefined) return 'routine';
  if (!k.reduction) return 'element-wise';
  const m = PRODUCT.exec(k.exp ?? '');
  if (!m) return 'reduction';
  const outputRank = m[1].split(',').length - 1;
  return outputRank >= 4 ? 'attention' : 'matmul';
}

/** A short label: kind, output shape where the expression shows it, reduction. */
export function kernelLabel(k: KernelInfo): string {
  if (k.routine !== undefined) return `routine ${k.routine}`;
  const kind = kernelKind(k);
  const dims = /^\(?\w*\(?GV_\d+<\w+>\{([\d,]+):/.exec(k.exp ?? '')?.[1].split(',').map(Number);
  const shape = dims ? (k.reduction ? dims.slice(0, -1) : dims) : undefined;
  const red = k.reduction ? ` ${k.reduction.toLowerCase()}` : '';
  return `${kind} ${shape ? `[${shape.join(', ')}]` : `${k.size} elements`}${red}`;
}

export type KindFigures = { kernels: number; ms: number };
export type StepProfile = {
  wallMs: number;
  /** Kernels and routines dispatched in the step. */
  dispatches: number;
  byKind: Record<KernelKind, KindFigures>;
  /** Wall time not spent in a kernel: host-side work and dispatch (on WebGPU also the GPU's idle time). */
  hostMs: number;
  /** The slowest kernels, by total time over identical labels. */
  top: { label: string; kernels: number; ms: number }[];
};

type TraceProperties = [string, string][];

/** One dispatched kernel or routine of a traced step and its time. */
export type TracedKernel = { info: KernelInfo; ms: number };

/**
 * Run `step` once under jax-js's profiler and return every kernel it dispatched. The caller
 * warms `step` up first (jit compilation would otherwise count as host time).
 */
export async function traceStep(step: () => Promise<unknown>): Promise<{ wallMs: number; kernels: TracedKernel[] }> {
  performance.clearMeasures();
  profiler.startTrace();
  const t0 = performance.now();
  try {
    await step();
  } finally {
    profiler.stopTrace();
  }
  const wallMs = performance.now() - t0;
  const kernels: TracedKernel[] = [];
  for (const e of performance.getEntriesByType('measure') as PerformanceMeasure[]) {
    const devtools = (e.detail as { devtools?: { trackGroup?: string; properties?: TraceProperties } } | null)?.devtools;
    if (devtools?.trackGroup !== 'JAX Profiler') continue;
    const p = Object.fromEntries(devtools.properties ?? []);
    kernels.push({ info: e.name.startsWith('Kernel[') ? { exp: p.exp, reduction: p.reduction, size: p.size } : { routine: e.name }, ms: e.duration });
  }
  performance.clearMeasures();
  return { wallMs, kernels };
}

/** `traceStep`, summed by kind and by label. */
export async function profileStep(step: () => Promise<unknown>, topN = 8): Promise<StepProfile> {
  const { wallMs, kernels } = await traceStep(step);
  const byKind = Object.fromEntries(KERNEL_KINDS.map((k) => [k, { kernels: 0, ms: 0 }])) as Record<KernelKind, KindFigures>;
  const byLabel = new Map<string, { kernels: number; ms: number }>();
  let kernelMs = 0;
  for (const { info, ms } of kernels) {
    const kind = kernelKind(info);
    byKind[kind].kernels++;
    byKind[kind].ms += ms;
    const label = kernelLabel(info);
    const l = byLabel.get(label) ?? { kernels: 0, ms: 0 };
    l.kernels++;
    l.ms += ms;
    byLabel.set(label, l);
    kernelMs += ms;
  }
  const dispatches = kernels.length;
  const top = [...byLabel.entries()].map(([label, v]) => ({ label, ...v })).sort((a, b) => b.ms - a.ms).slice(0, topN);
  return { wallMs, dispatches, byKind, hostMs: Math.max(0, wallMs - kernelMs), top };
}
