// MobileNetV2 as a fixed, pretrained feature network: the renderer's perceptual loss
// (spec §8.2 uses LPIPS, whose AlexNet/VGG weights cannot be had offline; engine.md).
//
// The weights are those of the `nsfwjs` npm package (MIT): a Keras MobileNetV2 whose
// ImageNet-initialised backbone was frozen (`trainable: false` on every conv and BN layer)
// while a 5-class head (Drawing, Hentai, Neutral, Porn, Sexy) was trained on top. They ship
// as a TF.js layers model with uint8-quantised weights inside JavaScript files. This file
// reads that model (topology + weights) without TensorFlow.js and runs it with jax-js:
// a small interpreter over the Keras layer graph, limited to the layer types the model has.
// The whole network, head included, is checked against TensorFlow.js in test/mobilenet.test.ts.
//
// Input: B×H×W×3 RGB in [0, 1] (nsfwjs divides bytes by 255; no mean/std normalisation).
import { numpy as np } from '@jax-js/jax';
import { UserError } from '../util/errors.ts';

type InboundNode = [string, number, number, object][];
type KerasLayer = { name: string; class_name: string; config: Record<string, unknown>; inbound_nodes: InboundNode[] };
type WeightSpec = { name: string; shape: number[]; dtype: string; quantization?: { min: number; scale: number; dtype: string } };

/** Flat weight table: "Conv1/kernel", BN layers folded to "<bn>/scale" and "<bn>/shift". */
export type MobileNetWeights = { [name: string]: np.Array };

/** Layer outputs used by the perceptual loss: strides 2, 4, 8, 16 (32, 24, 32, 64 channels). */
export const PERCEPTUAL_TAPS = ['Conv1_relu', 'block_2_add', 'block_5_add', 'block_9_add'];
export const NSFW_CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'];

function dequantize(specs: WeightSpec[], bytes: Buffer): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let off = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    if (s.quantization) {
      if (s.quantization.dtype !== 'uint8') throw new Error(`${s.name}: ${s.quantization.dtype} quantisation not supported`);
      const { min, scale } = s.quantization;
      for (let i = 0; i < n; i++) v[i] = min + scale * bytes[off + i];
      off += n;
    } else {
      for (let i = 0; i < n; i++) v[i] = bytes.readFloatLE(off + 4 * i);
      off += 4 * n;
    }
    out.set(s.name, v);
  }
  if (off !== bytes.length) throw new Error(`weights: ${bytes.length} bytes, manifest describes ${off}`);
  return out;
}

/** Square windows of a B×H×W×C map for a k×k, stride-s convolution, with TF's 'same'/'valid' padding. */
function windows(x: np.Array, k: number, s: number, padding: string): { take: (dy: number, dx: number) => np.Array; done: () => void } {
  const [B, H, W, C] = x.shape;
  let Ho: number, Wo: number, pt = 0, pl = 0;
  if (padding === 'same') {
    Ho = Math.ceil(H / s);
    Wo = Math.ceil(W / s);
    pt = Math.floor(Math.max((Ho - 1) * s + k - H, 0) / 2);
    pl = Math.floor(Math.max((Wo - 1) * s + k - W, 0) / 2);
  } else {
    Ho = Math.floor((H - k) / s) + 1;
    Wo = Math.floor((W - k) / s) + 1;
  }
  // Rows dy + s·i (i < Ho) are taken as the first of each group of s rows of the slice
  // [dy, dy + s·Ho): pad the end so that slice exists (the extra rows are never taken).
  const pb = k - 1 + s * Ho - (H + pt);
  const pr = k - 1 + s * Wo - (W + pl);
  const padded = pt || pl || pb > 0 || pr > 0 ? np.pad(x, [[0, 0], [pt, Math.max(pb, 0)], [pl, Math.max(pr, 0)], [0, 0]]) : x;
  return {
    take: (dy, dx) => {
      const w = padded.ref.slice([], [dy, dy + s * Ho], [dx, dx + s * Wo], []);
      if (s === 1) return w;
      return w.reshape([B, Ho, s, Wo, s, C]).slice([], [], [0, 1], [], [0, 1], []).reshape([B, Ho, Wo, C]);
    },
    done: () => padded.dispose(),
  };
}

export class MobileNetV2 {
  private constructor(
    readonly layers: KerasLayer[],
    /** Host copies of the weights; `weights()` uploads them. */
    private readonly host: Map<string, { data: Float32Array; shape: number[] }>,
  ) {}

  private static loading: Promise<MobileNetV2> | null = null;

  /**
   * Read the model from the installed nsfwjs package (no network). Read once per process:
   * the host weights are immutable, so the CLI's up-front check and the trainer share them.
   */
  static load(): Promise<MobileNetV2> {
    MobileNetV2.loading ??= MobileNetV2.read().catch((e: unknown) => {
      MobileNetV2.loading = null; // a failed read is not remembered
      throw e;
    });
    return MobileNetV2.loading;
  }

  private static async read(): Promise<MobileNetV2> {
    let model: { modelTopology: { model_config: { config: { layers: KerasLayer[] } } }; weightsManifest: { weights: WeightSpec[] }[] };
    let shard: string;
    try {
      const { MobileNetV2Model } = (await import('nsfwjs/models/mobilenet_v2')) as unknown as {
        MobileNetV2Model: { modelJson: () => Promise<{ default: typeof model }>; weightBundles: (() => Promise<{ default: string }>)[] };
      };
      model = (await MobileNetV2Model.modelJson()).default;
      shard = (await MobileNetV2Model.weightBundles[0]()).default;
    } catch (e) {
      throw new UserError(
        `nsfwjs: cannot load its MobileNetV2 weights (${(e as Error).message.split('\n')[0]}); run npm ci (on the GPU machine: pack node_modules/nsfwjs/dist/models/mobilenet_v2, see README)`,
      );
    }
    const layers = model.modelTopology.model_config.config.layers;
    const raw = dequantize(model.weightsManifest[0].weights, Buffer.from(shard, 'base64'));
    const shapes = new Map(model.weightsManifest[0].weights.map((w) => [w.name, w.shape]));
    const host = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const l of layers) {
      if (l.class_name === 'BatchNormalization') {
        // Inference-mode BN folded to y = x·scale + shift.
        const eps = Number(l.config.epsilon);
        const g = raw.get(`${l.name}/gamma`)!;
        const b = raw.get(`${l.name}/beta`)!;
        const m = raw.get(`${l.name}/moving_mean`)!;
        const v = raw.get(`${l.name}/moving_variance`)!;
        const scale = new Float32Array(g.length);
        const shift = new Float32Array(g.length);
        for (let i = 0; i < g.length; i++) {
          scale[i] = g[i] / Math.sqrt(v[i] + eps);
          shift[i] = b[i] - m[i] * scale[i];
        }
        host.set(`${l.name}/scale`, { data: scale, shape: [g.length] });
        host.set(`${l.name}/shift`, { data: shift, shape: [g.length] });
      } else {
        for (const suffix of ['kernel', 'depthwise_kernel', 'bias']) {
          const key = `${l.name}/${suffix}`;
          if (raw.has(key)) host.set(key, { data: raw.get(key)!, shape: shapes.get(key)! });
        }
      }
    }
    return new MobileNetV2(layers, host);
  }

  /** Upload the weights a forward pass up to `lastLayer` needs (all, by default). */
  weights(lastLayer?: string): MobileNetWeights {
    const end = lastLayer ? this.layers.findIndex((l) => l.name === lastLayer) : this.layers.length - 1;
    const needed = new Set(this.layers.slice(0, end + 1).map((l) => l.name));
    const out: MobileNetWeights = {};
    for (const [key, { data, shape }] of this.host) {
      if (needed.has(key.slice(0, key.lastIndexOf('/')))) out[key] = np.array(data).reshape(shape);
    }
    return out;
  }

  /**
   * Run the layer graph on x (B×H×W×3 in [0, 1]) and return the outputs of `taps`, in that
   * order; layers after the last tap are not run. Borrows `w` (the caller disposes it).
   */
  forward(w: MobileNetWeights, x: np.Array, taps: string[]): np.Array[] {
    const lastIndex = Math.max(...taps.map((t) => this.layers.findIndex((l) => l.name === t)));
    if (lastIndex < 0 || taps.some((t) => !this.layers.some((l) => l.name === t))) throw new Error(`unknown layer in ${taps.join(', ')}`);
    const layers = this.layers.slice(0, lastIndex + 1);
    // Reference counts, so that each output is consumed by its last user (jax-js ownership).
    const uses = new Map<string, number>();
    for (const l of layers) for (const node of l.inbound_nodes) for (const [src] of node) uses.set(src, (uses.get(src) ?? 0) + 1);
    for (const t of taps) uses.set(t, (uses.get(t) ?? 0) + 1);
    const values = new Map<string, np.Array>();
    const input = (name: string): np.Array => {
      const v = values.get(name)!;
      const left = uses.get(name)! - 1;
      uses.set(name, left);
      if (left > 0) return v.ref;
      values.delete(name);
      return v;
    };
    for (const l of layers) {
      const c = l.config;
      const ins = (l.inbound_nodes[0] ?? []).map(([src]) => input(src));
      let y: np.Array;
      switch (l.class_name) {
        case 'InputLayer':
          y = x;
          break;
        case 'ZeroPadding2D': {
          const [[t, b], [le, r]] = c.padding as number[][];
          y = np.pad(ins[0], [[0, 0], [t, b], [le, r], [0, 0]]);
          break;
        }
        case 'Conv2D':
        case 'DepthwiseConv2D': {
          const depthwise = l.class_name === 'DepthwiseConv2D';
          const kernel = w[`${l.name}/${depthwise ? 'depthwise_kernel' : 'kernel'}`];
          const [k] = c.kernel_size as number[];
          const [s] = c.strides as number[];
          if (!depthwise && k === 1 && s === 1) {
            y = np.matmul(ins[0], kernel.ref.reshape([kernel.shape[2], kernel.shape[3]]));
          } else {
            const win = windows(ins[0], k, s, c.padding as string);
            y = np.zeros([]);
            for (let dy = 0; dy < k; dy++) {
              for (let dx = 0; dx < k; dx++) {
                const tap = kernel.ref.slice(dy, dx); // Cin×Cout, or C×1 for depthwise
                y = y.add(depthwise ? win.take(dy, dx).mul(tap.reshape([-1])) : np.matmul(win.take(dy, dx), tap));
              }
            }
            win.done();
          }
          if (c.use_bias) y = y.add(w[`${l.name}/bias`].ref);
          break;
        }
        case 'BatchNormalization':
          y = ins[0].mul(w[`${l.name}/scale`].ref).add(w[`${l.name}/shift`].ref);
          break;
        case 'ReLU':
          y = c.max_value != null ? np.clip(ins[0], 0, Number(c.max_value)) : np.maximum(ins[0], 0);
          break;
        case 'Add':
          y = ins.reduce((a, b) => a.add(b));
          break;
        case 'AveragePooling2D': {
          const [p] = c.pool_size as number[];
          const [B, H, W, C] = ins[0].shape;
          y = ins[0].reshape([B, H / p, p, W / p, p, C]).mean([2, 4]);
          break;
        }
        case 'Flatten':
          y = ins[0].reshape([ins[0].shape[0], -1]);
          break;
        case 'Dropout':
          y = ins[0];
          break;
        case 'Dense': {
          y = np.matmul(ins[0], w[`${l.name}/kernel`].ref);
          if (c.use_bias) y = y.add(w[`${l.name}/bias`].ref);
          if (c.activation === 'relu') y = np.maximum(y, 0);
          else if (c.activation === 'softmax') {
            const e = np.exp(y.ref.sub(y.max(-1, { keepdims: true })));
            y = e.ref.div(e.sum(-1, { keepdims: true }));
          } else if (c.activation !== 'linear') throw new Error(`${l.name}: activation ${String(c.activation)}`);
          break;
        }
        default:
          throw new Error(`${l.name}: layer type ${l.class_name} not supported`);
      }
      values.set(l.name, y);
    }
    const out = taps.map((t) => input(t));
    for (const v of values.values()) v.dispose();
    return out;
  }
}

/**
 * LPIPS-like distance (uncalibrated: no learned per-channel weights): at each tap, unit-
 * normalise the feature vector of every position over channels, then take the squared
 * difference, summed over channels and averaged over positions and images; summed over taps.
 * a, b: B×H×W×3 in [−1, 1]. Borrows `w`.
 */
export function mobilenetDistance(net: MobileNetV2, w: MobileNetWeights, a: np.Array, b: np.Array, taps = PERCEPTUAL_TAPS): np.Array {
  const B = a.shape[0];
  const both = np.concatenate([a, b], 0).add(1).mul(0.5);
  const feats = net.forward(w, both, taps);
  let total = np.zeros([]);
  for (const f of feats) {
    const n = f.ref.div(np.sqrt(np.square(f.ref).sum(-1, { keepdims: true }).add(1e-10)));
    const fa = n.ref.slice([0, B], [], [], []);
    const fb = n.slice([B, 2 * B], [], [], []);
    total = total.add(np.square(fa.sub(fb)).sum(-1).mean());
  }
  return total;
}
