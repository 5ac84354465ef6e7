// The released Selftok checkpoints (github selftok-team/SelftokTokenizer) as this project's
// model directories. nanoGPT's `from_pretrained` rule: build our model's parameter list, map
// the checkpoint's names onto it with an explicit table (plus the few tensors that need a
// transpose, a reshape or a crop), and check both sides before copying anything: a missing,
// unexpected or mis-shaped key is an error that names it (the official loader's
// `strict=False` would load silently). Tensors are then streamed one by one into the output.
//
// What the tables encode (spec §3–§5, §8; checked against the official code by the parity tests):
//   Linear            torch [out, in]            → ours [in, out] (x·W)
//   patch embeds      Conv2d [D, C, p, p]        → Linear over (row, col, channel) patches [p·p·C, D]
//   position tables   pos_embed [1, G·G, D]      → the centre g×g crop the official forward uses
//   encoder block l   attn.{qkv,proj}, mlp        → image stream (the last block's is never read)
//                     attn.{to_query_kv,query_linear,query_proj}, q_mlp, adaLN_modulation.1,
//                     t_embedder.mlp.{0,2}        → token stream
//   decoder block l   x_block.*                   → image stream; context_block.* → token stream
//                     (the last context block is pre-only: qkv + a time-modulated adaLN)
import { flattenParams, type Params } from '../nn/params.ts';
import type { SelftokConfig } from '../tokenizer/config.ts';
import type { VaeConfig } from '../vae/sd3-vae.ts';
import { UserError } from '../util/errors.ts';
import type { TensorInfo } from '../io/checkpoint.ts';

/** One tensor of our model and where it comes from. */
export type Mapped = { name: string; from: string; shape: number[]; convert: (x: Float32Array) => Float32Array };
/** A checkpoint's keys: mapped ones, knowingly unused ones (with the reason), and value checks. */
export type NameMap = { tensors: Mapped[]; ignored: Map<string, string>; checks: { key: string; check: (x: Float32Array) => string | undefined }[] };

// ---- tensor conversions ------------------------------------------------------------------

const copy = (x: Float32Array): Float32Array => x;

/** torch Linear [out, in] → [in, out]. */
function transpose(out: number, inp: number): (x: Float32Array) => Float32Array {
  return (x) => {
    const y = new Float32Array(x.length);
    for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) y[i * out + o] = x[o * inp + i];
    return y;
  };
}

/** Conv2d [D, C, p, p] → patch Linear [(kh·p + kw)·C + c, D]. */
function convToPatchLinear(D: number, C: number, p: number): (x: Float32Array) => Float32Array {
  return (x) => {
    const y = new Float32Array(x.length);
    for (let o = 0; o < D; o++) for (let c = 0; c < C; c++) for (let kh = 0; kh < p; kh++) for (let kw = 0; kw < p; kw++) y[((kh * p + kw) * C + c) * D + o] = x[((o * C + c) * p + kh) * p + kw];
    return y;
  };
}

/** PyTorch Conv2d O×I×kh×kw → kh×kw×I×O (the VAE's layout, sd3-vae.ts). */
function convToHwio(O: number, I: number, kh: number, kw: number): (x: Float32Array) => Float32Array {
  return (x) => {
    const y = new Float32Array(x.length);
    for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) y[((a * kw + b) * I + i) * O + o] = x[((o * I + i) * kh + a) * kw + b];
    return y;
  };
}

/** A [1, G·G, D] table → its centre g×g crop [g·g, D] (top = left = (G − g) // 2, as cropped_pos_embed). */
function centreCrop(G: number, g: number, D: number): (x: Float32Array) => Float32Array {
  const top = Math.floor((G - g) / 2);
  return (x) => {
    const y = new Float32Array(g * g * D);
    for (let r = 0; r < g; r++) y.set(x.subarray(((top + r) * G + top) * D, ((top + r) * G + top + g) * D), r * g * D);
    return y;
  };
}

// ---- the configuration a checkpoint implies ---------------------------------------------

function need(keys: Map<string, TensorInfo>, key: string, where: string): number[] {
  const t = keys.get(key);
  if (!t) throw new UserError(`${where}: missing key ${key} (not a Selftok tokenizer checkpoint?)`);
  return t.shape;
}

function countIndexed(keys: Map<string, TensorInfo>, prefix: string): number {
  let n = 0;
  while ([...keys.keys()].some((k) => k.startsWith(`${prefix}${n}.`))) n++;
  return n;
}

/** The official eval schedule (configs/res256/256-eval.yml) for K = 512. */
export const OFFICIAL_SCHEDULE_512 = { stages: [200, 400, 600, 800, 1000], perStage: [192, 184, 72, 48, 16] };

export type OfficialOptions = {
  /** Image side in pixels (the official pipeline: 256). */
  size: number;
  /** DiTi_cont stages and per-stage counts; default the 512-token eval config's. */
  stages?: number[];
  perStage?: number[];
  vae: VaeConfig;
  name?: string;
};

/**
 * Our config for an official tokenizer checkpoint: every width, depth and count from the
 * tensors' shapes; head counts from the official family's head sizes (image stream 16, token
 * stream and decoder 64: Enc-Qformer-Uni-XL/2 and MMDiT_XL); the schedule from options.
 */
export function officialConfig(keys: Map<string, TensorInfo>, o: OfficialOptions, where: string): SelftokConfig {
  const [, K, Dq] = need(keys, 'encoder.query_tokens', where);
  const [Di, C, p] = need(keys, 'encoder.x_embedder.proj.weight', where);
  const [, codebookSize, dim] = need(keys, 'encoder.quantizer._codebook.embed', where);
  const [D, , pd] = need(keys, 'model.x_embedder.proj.weight', where);
  const encDepth = countIndexed(keys, 'encoder.blocks.');
  const decDepth = countIndexed(keys, 'model.joint_blocks.');
  const [mlpHidden] = need(keys, 'encoder.blocks.0.q_mlp.fc1.weight', where);
  const [decHidden] = need(keys, 'model.joint_blocks.0.x_block.mlp.fc1.weight', where);
  const factor = 2 ** (o.vae.chMult.length - 1);
  if (o.size % factor) throw new UserError(`--size ${o.size}: must be a multiple of the VAE's factor ${factor}`);
  const latent = o.size / factor;
  if (latent % p || latent % pd) throw new UserError(`--size ${o.size}: the ${latent}×${latent} latent is not a whole number of ${p}×${p} patches`);
  if (o.vae.zChannels !== C) throw new UserError(`${where}: the tokenizer reads ${C} latent channels, the VAE makes ${o.vae.zChannels}`);
  let schedule = o.stages && o.perStage ? { stages: o.stages, perStage: o.perStage } : K === 512 ? OFFICIAL_SCHEDULE_512 : null;
  if (!schedule) throw new UserError(`${where}: K = ${K} tokens: give the DiTi schedule with --stages and --per-stage (the released configs document it only for K = 512)`);
  schedule = { stages: [...schedule.stages], perStage: [...schedule.perStage] };
  const headsOf = (width: number, hd: number, what: string): number => {
    if (width % hd) throw new UserError(`${where}: ${what} width ${width} is not a multiple of the official head size ${hd}`);
    return width / hd;
  };
  return {
    name: o.name ?? `selftok-official-${K}`,
    image: { size: latent, channels: C, patch: pd, scale: 1, shift: 0 },
    vae: o.vae,
    K,
    schedule: { type: 'diti', ...schedule },
    quantizer: {
      codebookSize, dim, decay: 0.99, eps: 1e-5, kmeansIters: 10, deadCodeThreshold: 0.2, resetClusterSize: 0.2,
      commitWeight: 1, diversityWeight: 1, diversityGate: 0.6, diversityTemperature: 10, smartReactivation: true, continuousSteps: 0,
    },
    encoder: { depth: encDepth, imageWidth: Di, imageHeads: headsOf(Di, 16, 'encoder image'), tokenWidth: Dq, tokenHeads: headsOf(Dq, 64, 'encoder token'), mlpRatio: mlpHidden / Dq, posEmbed: 'table' },
    decoder: { depth: decDepth, width: D, heads: headsOf(D, 64, 'decoder'), mlpRatio: decHidden / D, condDrop: 0.1, prediction: 'velocity', outChannels: 0, posEmbed: 'table', contextPosEmbed: 'table', rendererImagePos: false },
    train: { batch: 1, lr: 5e-5, beta1: 0.9, beta2: 0.99, weightDecay: 0, warmup: 0, tokenGradScaleMax: 1, lossTMin: 1, cropScale: [1, 1], cooldownFraction: 0 },
    sampler: { steps: 50, guidance: 1, grid: 'float32' },
  };
}

/** The VAE architecture a checkpoint implies (SAI layout names, after vaeNameMap's renaming). */
export function vaeConfigFrom(keys: Map<string, TensorInfo>, where: string): VaeConfig {
  // conv weights in our layout: kh×kw×I×O
  const ch = need(keys, 'encoder.conv_in.weight', where)[3];
  const levels = countIndexed(keys, 'encoder.down.');
  const chMult: number[] = [];
  for (let i = 0; i < levels; i++) chMult.push(need(keys, `encoder.down.${i}.block.0.conv1.weight`, where)[3] / ch);
  const numResBlocks = countIndexed(keys, 'encoder.down.0.block.');
  const z2 = need(keys, 'encoder.conv_out.weight', where)[3];
  return { ch, chMult, numResBlocks, zChannels: z2 / 2, shift: 0.0609, scale: 1.5305 };
}

// ---- name tables ---------------------------------------------------------------------------

class Table {
  readonly tensors: Mapped[] = [];
  readonly ignored = new Map<string, string>();
  readonly checks: NameMap['checks'] = [];
  constructor(private readonly keys: Map<string, TensorInfo>) {}
  shape(key: string): number[] | undefined {
    return this.keys.get(key)?.shape;
  }
  add(name: string, from: string, shape: number[], convert = copy): void {
    this.tensors.push({ name, from, shape, convert });
  }
  linear(name: string, from: string, fanIn: number, fanOut: number): void {
    this.add(`${name}.w`, `${from}.weight`, [fanOut, fanIn], transpose(fanOut, fanIn));
    this.add(`${name}.b`, `${from}.bias`, [fanOut]);
  }
  ignore(key: string, why: string): void {
    this.ignored.set(key, why);
  }
  ignorePrefix(prefix: string, why: string): void {
    for (const k of this.keys.keys()) if (k.startsWith(prefix)) this.ignored.set(k, why);
  }
}

function mlp(t: Table, name: string, from: string, D: number, hidden: number): void {
  t.linear(`${name}.fc1`, `${from}.fc1`, D, hidden);
  t.linear(`${name}.fc2`, `${from}.fc2`, hidden, D);
}
function timeEmbedder(t: Table, name: string, from: string, D: number): void {
  t.linear(`${name}.fc1`, `${from}.mlp.0`, 256, D);
  t.linear(`${name}.fc2`, `${from}.mlp.2`, D, D);
}

/** The MMDiT decoder (`model.*`) as `prefix` (dec or ren.net), shared by the tokenizer and the renderer. */
function decoderTable(t: Table, cfg: SelftokConfig, prefix: string): void {
  const { width: D, depth, mlpRatio } = cfg.decoder;
  const { patch: p, channels: C, size } = cfg.image;
  const g = size / p;
  const H = D * mlpRatio;
  const peShape = t.shape('model.pos_embed');
  const G = peShape ? Math.round(Math.sqrt(peShape[1])) : g;
  if (prefix === 'dec') {
    t.add(`${prefix}.xEmbed.w`, 'model.x_embedder.proj.weight', [D, C, p, p], convToPatchLinear(D, C, p));
    t.add(`${prefix}.xEmbed.b`, 'model.x_embedder.proj.bias', [D]);
    t.add(`${prefix}.pos`, 'model.pos_embed', [1, G * G, D], centreCrop(G, g, D));
  } else {
    // the renderer has no x_t: its canvas replaces the patch embedding and the SD3 positions
    t.ignore('model.pos_embed', 'the renderer canvas carries its own positions (MMDiT_Renderer never adds pos_embed)');
  }
  timeEmbedder(t, `${prefix}.tEmbed`, 'model.t_embedder', D);
  t.linear(`${prefix}.ctxEmbed`, 'model.context_embedder', cfg.quantizer.dim, D);
  t.add(`${prefix}.ctxPos`, 'model.context_pos_embed', [1, cfg.K, D]);
  t.ignorePrefix('model.y_embedder.', 'the pooled-vector embedder: y is None in every Selftok forward (sd3_cond_pooling: None)');
  for (let l = 0; l < depth; l++) {
    const src = `model.joint_blocks.${l}`;
    const dst = `${prefix}.blocks.${l}`;
    t.linear(`${dst}.x.ada`, `${src}.x_block.adaLN_modulation.1`, D, 6 * D);
    t.linear(`${dst}.x.qkv`, `${src}.x_block.attn.qkv`, D, 3 * D);
    t.linear(`${dst}.x.proj`, `${src}.x_block.attn.proj`, D, D);
    mlp(t, `${dst}.x.mlp`, `${src}.x_block.mlp`, D, H);
    if (l < depth - 1) {
      t.linear(`${dst}.ctx.ada`, `${src}.context_block.adaLN_modulation.1`, D, 6 * D);
      t.linear(`${dst}.ctx.qkv`, `${src}.context_block.attn.qkv`, D, 3 * D);
      t.linear(`${dst}.ctx.proj`, `${src}.context_block.attn.proj`, D, D);
      mlp(t, `${dst}.ctx.mlp`, `${src}.context_block.mlp`, D, H);
      timeEmbedder(t, `${dst}.ctx.pos`, `${src}.context_block.t_embedder`, D);
    } else {
      // pre-only: (shift, scale) from the diffusion-time embedding; its t_embedder is never called
      t.linear(`${dst}.ctx.ada`, `${src}.context_block.adaLN_modulation.1`, D, 2 * D);
      t.linear(`${dst}.ctx.qkv`, `${src}.context_block.attn.qkv`, D, 3 * D);
      t.ignorePrefix(`${src}.context_block.t_embedder.`, 'the pre-only last context block is modulated by the diffusion time, not by token position');
    }
  }
  t.linear(`${prefix}.final.ada`, 'model.final_layer.adaLN_modulation.1', D, 2 * D);
  t.linear(`${prefix}.final.out`, 'model.final_layer.linear', D, p * p * C);
}

/** The tokenizer checkpoint (encoder, quantizer, MMDiT decoder) → enc.*, quantizer.codebook, dec.*. */
export function tokenizerNameMap(cfg: SelftokConfig, keys: Map<string, TensorInfo>): NameMap {
  const t = new Table(keys);
  const { imageWidth: Di, tokenWidth: Dq, depth, mlpRatio } = cfg.encoder;
  const { patch: p, channels: C, size } = cfg.image;
  const g = size / p;
  const K = cfg.K;
  const d = cfg.quantizer.dim;
  t.add('enc.patch.w', 'encoder.x_embedder.proj.weight', [Di, C, p, p], convToPatchLinear(Di, C, p));
  t.add('enc.patch.b', 'encoder.x_embedder.proj.bias', [Di]);
  const pe = keys.get('encoder.pos_embed')?.shape;
  const G = pe ? Math.round(Math.sqrt(pe[1])) : g;
  t.add('enc.pos', 'encoder.pos_embed', [1, G * G, Di], centreCrop(G, g, Di));
  t.add('enc.queries', 'encoder.query_tokens', [1, K, Dq]);
  for (let l = 0; l < depth; l++) {
    const src = `encoder.blocks.${l}`;
    if (l < depth - 1) {
      t.linear(`enc.img.${l}.qkv`, `${src}.attn.qkv`, Di, 3 * Di);
      t.linear(`enc.img.${l}.proj`, `${src}.attn.proj`, Di, Di);
      mlp(t, `enc.img.${l}.mlp`, `${src}.mlp`, Di, Di * mlpRatio);
    } else {
      for (const part of ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2']) {
        t.ignore(`${src}.${part}.weight`, "the last block's image update is never read (only the token stream leaves the encoder)");
        t.ignore(`${src}.${part}.bias`, "the last block's image update is never read (only the token stream leaves the encoder)");
      }
    }
    timeEmbedder(t, `enc.tok.${l}.pos`, `${src}.t_embedder`, Dq);
    t.linear(`enc.tok.${l}.ada`, `${src}.adaLN_modulation.1`, Dq, 6 * Dq);
    t.linear(`enc.tok.${l}.imgKv`, `${src}.attn.to_query_kv`, Di, 2 * Dq);
    t.linear(`enc.tok.${l}.qkv`, `${src}.attn.query_linear`, Dq, 3 * Dq);
    t.linear(`enc.tok.${l}.proj`, `${src}.attn.query_proj`, Dq, Dq);
    mlp(t, `enc.tok.${l}.mlp`, `${src}.q_mlp`, Dq, Dq * mlpRatio);
  }
  t.linear('enc.projIn', 'encoder.quantizer.project_in', Dq, d);
  t.add('enc.postLn.g', 'encoder.final_layer_norm3.weight', [d]);
  t.add('enc.postLn.b', 'encoder.final_layer_norm3.bias', [d]);
  t.ignorePrefix('encoder.final_layer_norm.', 'pre_norm: False (never applied)');
  t.ignorePrefix('encoder.final_layer_norm2.', 'never applied by the encoder forward');
  t.add('quantizer.codebook', 'encoder.quantizer._codebook.embed', [1, cfg.quantizer.codebookSize, d]);
  for (const k of ['embed_avg', 'cluster_size', 'cluster_size_wo_react', 'timestep_p_over_c']) t.ignore(`encoder.quantizer._codebook.${k}`, 'EMA training state of the codebook');
  for (const k of ['steps', 'count']) t.ignore(`encoder.quantizer.${k}`, 'training counters');
  const one = (what: string) => (x: Float32Array) => (x.length === 1 && x[0] === 1 ? undefined : `is ${x[0]}: the codebook was never ${what} (an untrained quantizer)`);
  t.checks.push({ key: 'encoder.quantizer._codebook.initted', check: one('initialised by k-means') });
  t.checks.push({ key: 'encoder.quantizer._codebook.tpc_initted', check: one('given its per-position usage') });
  t.checks.push({ key: 'encoder.quantizer.continuous', check: (x) => (x[0] === 0 ? undefined : `is ${x[0]}: the quantizer is still in its continuous warm-up (tokens would not be discrete)`) });
  for (const k of ['encoder.quantizer._codebook.initted', 'encoder.quantizer._codebook.tpc_initted', 'encoder.quantizer.continuous']) t.ignore(k, 'quantizer state, checked');
  t.ignorePrefix('diffusion.', "the training sampler's buffers (the grid is recomputed, sampler.grid 'float32')");
  decoderTable(t, cfg, 'dec');
  return t;
}

/** The renderer checkpoint: its MMDiT_Renderer → ren.*; its copy of the frozen encoder is compared, not imported. */
export function rendererNameMap(cfg: SelftokConfig, keys: Map<string, TensorInfo>): NameMap {
  const t = new Table(keys);
  const D = cfg.decoder.width;
  const g = cfg.image.size / cfg.image.patch;
  t.add('ren.canvas', 'model.mask_token', [1, 1, D]);
  t.add('ren.canvasPos', 'model.positional_embedding', [g * g, D]);
  decoderTable(t, cfg, 'ren.net');
  // MMDiT_Renderer still builds x_embedder (unused by its forward): accept it when present
  t.ignorePrefix('model.x_embedder.', 'the renderer has no x_t to embed');
  t.ignorePrefix('encoder.', "the renderer's copy of the frozen tokenizer encoder (fix_encoder: True); compared with the tokenizer's");
  t.ignorePrefix('diffusion.', "the training sampler's buffers");
  return t;
}

/** The SD3 VAE in either layout → vae.* (SAI names). */
export function vaeNameMap(keys: Map<string, TensorInfo>, where: string): { map: NameMap; layout: 'sai' | 'diffusers'; renamed: Map<string, TensorInfo> } {
  const sai = [...keys.keys()].some((k) => k.startsWith('first_stage_model.'));
  const diffusers = !sai && keys.has('encoder.conv_norm_out.weight');
  if (!sai && !diffusers) throw new UserError(`${where}: not an SD3 VAE (no first_stage_model.* keys, and not the diffusers AutoencoderKL layout)`);
  const rename = new Map<string, { from: string; convert: (x: Float32Array) => Float32Array; shape: number[] }>();
  const t = new Table(keys);
  for (const [k, info] of keys) {
    if (sai) {
      if (k.startsWith('first_stage_model.encoder.') || k.startsWith('first_stage_model.decoder.')) rename.set(k.slice('first_stage_model.'.length), { from: k, convert: copy, shape: info.shape });
      else t.ignore(k, 'not part of the VAE (the SD3 checkpoint also holds the MMDiT and text encoders)');
      continue;
    }
    const ours = diffusersToSai(k, keys);
    if (!ours) {
      t.ignore(k, 'not used by the SD3 VAE encoder or decoder');
      continue;
    }
    // diffusers' attention projections are Linear [C, C]; SAI's are 1×1 convs [C, C, 1, 1]
    rename.set(ours, { from: k, convert: copy, shape: info.shape });
  }
  const renamed = new Map<string, TensorInfo>();
  for (const [ours, r] of rename) {
    // SAI: conv weights O×I×kh×kw; diffusers' attention projections are Linear O×I (a 1×1 conv)
    const conv = r.shape.length === 4 ? r.shape : r.shape.length === 2 && /\.(q|k|v|proj_out)\.weight$/.test(ours) ? [...r.shape, 1, 1] : null;
    renamed.set(ours, { dtype: 'F32', shape: conv ? [conv[2], conv[3], conv[1], conv[0]] : r.shape });
    t.add(`vae.${ours}`, r.from, r.shape, conv ? convToHwio(conv[0], conv[1], conv[2], conv[3]) : r.convert);
  }
  return { map: t, layout: sai ? 'sai' : 'diffusers', renamed };
}

/** A diffusers AutoencoderKL key → its SAI (sd3_impls) name, or undefined if unused. */
function diffusersToSai(k: string, keys: Map<string, TensorInfo>): string | undefined {
  const up = countIndexed(keys, 'decoder.up_blocks.');
  const rules: [RegExp, (m: RegExpMatchArray) => string][] = [
    [/^(encoder|decoder)\.conv_in\.(weight|bias)$/, (m) => `${m[1]}.conv_in.${m[2]}`],
    [/^(encoder|decoder)\.conv_out\.(weight|bias)$/, (m) => `${m[1]}.conv_out.${m[2]}`],
    [/^(encoder|decoder)\.conv_norm_out\.(weight|bias)$/, (m) => `${m[1]}.norm_out.${m[2]}`],
    [/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(norm1|conv1|norm2|conv2)\.(weight|bias)$/, (m) => `encoder.down.${m[1]}.block.${m[2]}.${m[3]}.${m[4]}`],
    [/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.conv_shortcut\.(weight|bias)$/, (m) => `encoder.down.${m[1]}.block.${m[2]}.nin_shortcut.${m[3]}`],
    [/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)$/, (m) => `encoder.down.${m[1]}.downsample.conv.${m[2]}`],
    [/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(norm1|conv1|norm2|conv2)\.(weight|bias)$/, (m) => `decoder.up.${up - 1 - Number(m[1])}.block.${m[2]}.${m[3]}.${m[4]}`],
    [/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.conv_shortcut\.(weight|bias)$/, (m) => `decoder.up.${up - 1 - Number(m[1])}.block.${m[2]}.nin_shortcut.${m[3]}`],
    [/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)$/, (m) => `decoder.up.${up - 1 - Number(m[1])}.upsample.conv.${m[2]}`],
    [/^(encoder|decoder)\.mid_block\.resnets\.(0|1)\.(norm1|conv1|norm2|conv2)\.(weight|bias)$/, (m) => `${m[1]}.mid.block_${Number(m[2]) + 1}.${m[3]}.${m[4]}`],
    [/^(encoder|decoder)\.mid_block\.resnets\.(0|1)\.conv_shortcut\.(weight|bias)$/, (m) => `${m[1]}.mid.block_${Number(m[2]) + 1}.nin_shortcut.${m[3]}`],
    [/^(encoder|decoder)\.mid_block\.attentions\.0\.group_norm\.(weight|bias)$/, (m) => `${m[1]}.mid.attn_1.norm.${m[2]}`],
    [/^(encoder|decoder)\.mid_block\.attentions\.0\.to_(q|k|v)\.(weight|bias)$/, (m) => `${m[1]}.mid.attn_1.${m[2]}.${m[3]}`],
    [/^(encoder|decoder)\.mid_block\.attentions\.0\.to_out\.0\.(weight|bias)$/, (m) => `${m[1]}.mid.attn_1.proj_out.${m[2]}`],
  ];
  for (const [re, f] of rules) {
    const m = k.match(re);
    if (m) return f(m);
  }
  return undefined;
}

/**
 * Check a table against its checkpoint and against our model's parameter list: every
 * checkpoint key is mapped or knowingly ignored, every mapped key exists with its shape, and
 * every parameter of ours comes from exactly one key. Throws a one-line UserError naming the
 * first key that does not fit.
 */
export function verifyMap(map: NameMap, keys: Map<string, TensorInfo>, ours: Map<string, number[]>, where: string, oursPrefix: RegExp): void {
  const used = new Set<string>();
  for (const m of map.tensors) {
    const info = keys.get(m.from);
    if (!info) throw new UserError(`${where}: missing key ${m.from}`);
    if (info.shape.join('x') !== m.shape.join('x')) throw new UserError(`${where}: ${m.from} has shape [${info.shape}], expected [${m.shape}]`);
    used.add(m.from);
  }
  for (const k of keys.keys()) {
    if (!used.has(k) && !map.ignored.has(k)) throw new UserError(`${where}: unexpected key ${k} (not part of the architecture this checkpoint's shapes describe)`);
  }
  const produced = new Map<string, number>();
  for (const m of map.tensors) produced.set(m.name, (produced.get(m.name) ?? 0) + 1);
  for (const [name, n] of produced) {
    if (n > 1) throw new Error(`internal: ${name} is mapped ${n} times`);
    if (!ours.has(name)) throw new Error(`internal: ${name} is not a parameter of the model`);
  }
  for (const name of ours.keys()) if (oursPrefix.test(name) && !produced.has(name)) throw new Error(`internal: no checkpoint key maps to ${name}`);
}

/** Our model's parameter names and shapes (a model built with lazy zeros). */
export function parameterShapes(params: Params): Map<string, number[]> {
  return new Map([...flattenParams(params)].map(([k, a]) => [k, a.shape]));
}
