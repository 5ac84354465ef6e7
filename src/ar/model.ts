// The autoregressive model (issue #18, item 4): a decoder-only transformer as in LLaMA
// (Touvron et al. 2023): pre-RMSNorm blocks, rotary positions on q and k, SwiGLU MLP, causal
// self-attention, and one embedding table shared by the input and the output head. Text words
// and Selftok visual words are one vocabulary (vocab.ts), so image generation and image
// understanding are both plain next-token prediction (the paper, §5).
//
// Two forward passes with the same math: `arForward` over whole sequences (training, scoring)
// and `arStep`, one token for a batch at one position against a fixed-length key/value cache
// (sampling). The cache is written at the position by a one-hot blend, so one compiled step
// serves every position.
import { numpy as np, nn } from '@jax-js/jax';
import { chunk, initLinear, linear, oneHot, type Linear } from '../nn/layers.ts';
import { Init } from '../nn/params.ts';
import type { OptimizerSettings } from '../nn/optim.ts';
import { UserError } from '../util/errors.ts';
import { firstDifferingKey } from '../util/json.ts';
import { FIRST_WORDS, WORDS } from './vocab.ts';
import { SCENE_MAP_CHANNELS } from './scenes.ts';

export type ArConfig = {
  name: string;
  /**
   * Vocabulary size: specials + words + visual words (vocab.ts), fixed by the tokenizer's
   * codebook, rounded up to a multiple of `vocabMultiple`.
   */
  vocab: number;
  /**
   * Round the embedding table's rows up to a multiple of this (default 1: none). The extra ids
   * are never in a sequence and never sampled. Why: jax-js's wasm backend vectorises a matmul
   * only when its output's contiguous axis is a multiple of 4; at 553 rows the table's gradient
   * ran scalar (0.15 s of scenes-ar's step), at 560 it is a SIMD matmul.
   */
  vocabMultiple?: number;
  dim: number;
  depth: number;
  heads: number;
  /** SwiGLU hidden width. */
  hidden: number;
  /** Longest sequence the model is trained for (rotary tables and the sampling cache). */
  maxLen: number;
  ropeBase: number;
  /** Order of the visual tokens in the sequence: 'ar' (reversed encoder order, the paper's) or 'encoder'. */
  order: 'ar' | 'encoder';
  /**
   * Add a learned embedding of each visual token's index in its image (0..K−1, in the model's
   * order) to its word embedding (default false: rotary positions only, as LLaMA). Why: a
   * Selftok code means different things at different indices (each index is one of the
   * encoder's learned queries), and the scenes tokenizer uses most codes at most indices (the
   * index tells 0.8 of the code's 5.8 nats); with relative positions alone the model has to
   * count from [BOV] to read a token.
   */
  visualPositions?: boolean;
  /**
   * How many of vocab.ts's WORDS the model's vocabulary holds (the rest are visual words after
   * them). Absent: the 36 of the models made before `where` questions; a new model takes all.
   */
  words?: number;
  /**
   * How a fresh model's visual word embeddings start: 'random' (default; small normal, as the
   * text words) or 'codebook': the tokenizer's code vector (unit, quantizer.dim wide) times a
   * random dim × D matrix of the same scale, so codes the tokenizer puts close together start
   * close together in the AR model (codebookEmbeddings). Only the start differs: the table is
   * trained and used the same way.
   */
  visualInit?: 'random' | 'codebook';
  train: ArTrainConfig;
};

export type ArTrainConfig = OptimizerSettings & {
  /** Fraction of the run's steps at its end over which the lr decays linearly to 0. */
  cooldownFraction: number;
  /** Probability that a text→image sequence drops its prompt (classifier-free guidance). */
  promptDrop: number;
  /** Mixture of the sequence kinds in a batch: text→image, image→text, image only. */
  mix: { textToImage: number; imageToText: number; imageOnly: number };
  /** Scenes tokenized once for training (text→image and image→text pools each). */
  pool: number;
  /**
   * Most question–answer turns in one image→text row (default 1: one question per row, the
   * issue's format). Above 1, a row goes on with more questions about the same image while they
   * fit in maxLen (sequences.ts `dialogue`): more answers per image for the same forward pass.
   */
  turns?: number;
  /** Also train on `where is the {shape}?` turns (text.ts whereQuestions; default false). */
  where?: boolean;
  /**
   * A reading probe (default none): an MLP from the final hidden state at each row's [EOV] to the
   * scene's maps (scenes.ts sceneMaps: how much of each cell of a size × size grid each shape
   * and each palette colour covers), its mean squared error times `weight` added to the loss.
   * Why: the answers give a few words of supervision per image and the model learns to read
   * shapes from the tokens slowly (docs/scenes.md); the maps ask the position that has seen the
   * whole image to say which shape and colour is where, a dense signal for the same skill. It
   * is training-only, as the tokenizer's layout probe: the model folder holds neither its
   * weights nor anything that uses them, and sampling never computes it.
   */
  readProbe?: { size: number; hidden: number; weight: number };
};

/** The reading probe's MLP (ArTrainConfig.readProbe). */
export type ReadProbe = { fc1: Linear; fc2: Linear };

type Block = { attnNorm: np.Array; qkv: Linear; proj: Linear; mlpNorm: np.Array; gate: Linear; up: Linear; down: Linear };
export type ArParams = { embed: np.Array; blocks: Block[]; norm: np.Array; visualPos?: np.Array; readProbe?: ReadProbe };

export function validateArConfig(raw: unknown, where: string): ArConfig {
  const c = raw as ArConfig;
  const fail = (msg: string): never => {
    throw new UserError(`${where}: ${msg}`);
  };
  if (!c || typeof c !== 'object' || !c.train) fail('an AR config is an object with a train section');
  for (const k of ['dim', 'depth', 'heads', 'hidden', 'maxLen'] as const) if (!(Number.isInteger(c[k]) && c[k] > 0)) fail(`${k} must be a positive integer`);
  if (c.dim % c.heads || (c.dim / c.heads) % 2) fail('dim / heads must be an even integer (rotary pairs)');
  if (c.order !== 'ar' && c.order !== 'encoder') fail(`order must be 'ar' or 'encoder'`);
  c.ropeBase ??= 10000;
  if (c.visualPositions !== undefined && typeof c.visualPositions !== 'boolean') fail('visualPositions must be true or false');
  if (c.visualInit !== undefined && c.visualInit !== 'random' && c.visualInit !== 'codebook') fail(`visualInit must be 'random' or 'codebook'`);
  if (c.vocabMultiple !== undefined && !(Number.isInteger(c.vocabMultiple) && c.vocabMultiple > 0)) fail('vocabMultiple must be a positive integer');
  const t = c.train;
  if (!(t.promptDrop >= 0 && t.promptDrop < 1)) fail('train.promptDrop must be in [0, 1)');
  const mix = t.mix;
  if (!mix || !(mix.textToImage >= 0 && mix.imageToText >= 0 && mix.imageOnly >= 0) || mix.textToImage + mix.imageToText + mix.imageOnly <= 0) {
    fail('train.mix needs non-negative textToImage, imageToText, imageOnly with a positive sum');
  }
  if (t.turns !== undefined && !(Number.isInteger(t.turns) && t.turns >= 1)) fail('train.turns must be a positive integer');
  if (c.words !== undefined && !(Number.isInteger(c.words) && c.words >= FIRST_WORDS && c.words <= WORDS.length)) fail(`words must be an integer from ${FIRST_WORDS} to ${WORDS.length}`);
  if (t.where !== undefined && typeof t.where !== 'boolean') fail('train.where must be true or false');
  const rp = t.readProbe;
  if (rp !== undefined && !(rp && Number.isInteger(rp.size) && rp.size > 0 && Number.isInteger(rp.hidden) && rp.hidden > 0 && rp.weight >= 0)) fail('train.readProbe needs a positive integer size and hidden and a non-negative weight');
  if (t.where && (c.words ?? WORDS.length) < WORDS.length) fail(`train.where needs the words of where questions: words ${c.words} < ${WORDS.length}`);
  return c;
}

/**
 * The config of a fine-tune: the trained model's, with the recipe's train section. Everything
 * that shapes the weights or what they mean must agree (width, depth, heads, order, positions,
 * the table's padding); the vocabulary (`words`, `vocab`) is the model's, and `name` and
 * `visualInit` (a fresh model's start) do not matter. A mismatch is one line naming the field.
 */
export function fineTuneArConfig(model: ArConfig, recipe: ArConfig, where: string): ArConfig {
  // absent and default are the same model
  const a: Record<string, unknown> = { ...model, vocabMultiple: model.vocabMultiple ?? 1, visualPositions: model.visualPositions ?? false };
  const b: Record<string, unknown> = { ...recipe, vocabMultiple: recipe.vocabMultiple ?? 1, visualPositions: recipe.visualPositions ?? false };
  const k = firstDifferingKey(a, b, ['train', 'name', 'words', 'vocab', 'visualInit']);
  if (k) throw new UserError(`${where}: the model's ${k} is ${JSON.stringify(a[k])}, the config's ${JSON.stringify(b[k])}; only the train section may differ when fine-tuning`);
  return { ...model, train: recipe.train };
}

/** The vocabulary size of a config: the words and visual words, rounded up to `vocabMultiple`. */
export function paddedVocab(words: number, cfg: Pick<ArConfig, 'vocabMultiple'>): number {
  const m = cfg.vocabMultiple ?? 1;
  return Math.ceil(words / m) * m;
}

/**
 * Fresh parameters; K (the tokenizer's tokens per image) sizes the visual position table. With
 * `training`, also the reading probe of `train.readProbe` (drawn last, so the model's own
 * parameters are those of a run without it).
 */
export function initAr(cfg: ArConfig, init: Init, K: number, training = false): ArParams {
  const { dim: D, hidden: H, depth } = cfg;
  // GPT-2/LLaMA-style: small normal embeddings; residual outputs scaled down by depth
  const resid = 0.02 / Math.sqrt(2 * depth);
  const p: ArParams = {
    embed: init.normal([cfg.vocab, D], 0.02),
    blocks: Array.from({ length: depth }, () => ({
      attnNorm: init.ones([D]),
      qkv: initLinear(init, D, 3 * D, { bias: false, std: 0.02 }),
      proj: initLinear(init, D, D, { bias: false, std: resid }),
      mlpNorm: init.ones([D]),
      gate: initLinear(init, D, H, { bias: false, std: 0.02 }),
      up: initLinear(init, D, H, { bias: false, std: 0.02 }),
      down: initLinear(init, H, D, { bias: false, std: resid }),
    })),
    norm: init.ones([D]),
  };
  if (cfg.visualPositions) p.visualPos = init.normal([K, D], 0.02);
  const rp = cfg.train.readProbe;
  if (training && rp) p.readProbe = { fc1: initLinear(init, D, rp.hidden), fc2: initLinear(init, rp.hidden, readProbeWidth(rp.size)) };
  return p;
}

/** Outputs of the reading probe: the shape maps and colour maps of scenes.ts sceneMaps. */
export const readProbeWidth = (size: number): number => SCENE_MAP_CHANNELS * size * size;

/**
 * Visual word embeddings from the tokenizer's codebook (config visualInit 'codebook'): row c =
 * code_c · R, R a random d × D normal matrix with the std of the other embeddings. The code
 * vectors have unit norm (cosine VQ, spec §4.2), so each entry has that std too; the rows lie in
 * a d-dimensional subspace whose geometry is the codebook's.
 */
export function codebookEmbeddings(codebook: Float32Array, d: number, D: number, init: Init, std = 0.02): Float32Array {
  const C = codebook.length / d;
  const R = init.rng;
  const proj = Float32Array.from({ length: d * D }, () => R.normal() * std);
  const out = new Float32Array(C * D);
  for (let c = 0; c < C; c++) {
    for (let j = 0; j < d; j++) {
      const v = codebook[c * d + j];
      for (let k = 0; k < D; k++) out[c * D + k] += v * proj[j * D + k];
    }
  }
  return out;
}

/** RMSNorm (Zhang & Sennrich 2019): x / sqrt(mean(x²) + ε) · g. */
function rmsNorm(x: np.Array, g: np.Array, eps = 1e-5): np.Array {
  const ms = np.mean(x.ref.mul(x.ref), -1, { keepdims: true });
  return x.mul(np.reciprocal(np.sqrt(ms.add(eps)))).mul(g.ref);
}

/** Rotary tables for positions 0..n−1: cos and sin, each n × (headDim/2), θ_i = base^(−2i/headDim). */
export function ropeTables(n: number, headDim: number, base: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(n * half);
  const sin = new Float32Array(n * half);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * base ** ((-2 * i) / headDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/**
 * Rotate the (first half, second half) pairs of each head (the "rotate half" form of RoPE,
 * Su et al. 2021, as in LLaMA's Hugging Face port). x: B×T×H×hd; cos, sin: T×hd/2.
 * (x₁, x₂) → (x₁·c − x₂·s, x₂·c + x₁·s), written as x·c + flip(x)·s·(−1, +1) over a pair axis:
 * the same operations on the same values (so the same bits) without slicing the halves and
 * concatenating them again, which jax-js lowers as a sum of zero-padded reads (issue #21).
 */
export function rope(x: np.Array, cos: np.Array, sin: np.Array): np.Array {
  const [B, T, H, hd] = x.shape;
  const half = hd / 2;
  const pairs = x.reshape([B, T, H, 2, half]);
  const c = cos.reshape([1, T, 1, 1, half]);
  const s = sin.reshape([1, T, 1, 1, half]);
  const swapped = np.flip(pairs.ref, 3);
  const sign = np.array([-1, 1]).reshape([1, 1, 1, 2, 1]);
  return pairs.mul(c).add(swapped.mul(s).mul(sign)).reshape([B, T, H, hd]);
}

/**
 * Token ids B×T (int32) → embeddings B×T×D, as a one-hot product so the gradient reaches the
 * table; plus, with visual positions, the embedding of each visual token's index in its image
 * (`vpos` B×T: 0..K−1, or K for a token that is not in an image, which adds nothing).
 */
function embed(p: ArParams, ids: np.Array, vpos: np.Array, vocab: number): np.Array {
  const x = np.matmul(oneHot(ids, vocab), p.embed.ref);
  if (!p.visualPos) {
    vpos.dispose();
    return x;
  }
  const K = p.visualPos.shape[0];
  const at = oneHot(vpos, K + 1).slice([], [], [0, K]); // vpos is B×T
  return x.add(np.matmul(at, p.visualPos.ref));
}

function mlpBlock(b: Block, x: np.Array): np.Array {
  const h = rmsNorm(x, b.mlpNorm);
  return linear(b.down, nn.silu(linear(b.gate, h.ref)).mul(linear(b.up, h)));
}

/**
 * Output head tied to the embedding: logits = RMSNorm(x) · Eᵀ. The normalised x goes through a
 * product with the identity first (D² per token, ~1% of the step): that makes it a kernel's
 * output, so the table's gradient Σₙ ∂logitsₙᵀ · x̂ₙ is a product of two arrays, jax-js's tiled
 * matmul. Without it jax-js fuses RMSNorm's arithmetic into that reduction over every token of
 * the batch, a loop that took half of scenes-ar's training step (0.45 of 0.9 s).
 */
function head(p: ArParams, x: np.Array): np.Array {
  const D = x.shape[x.ndim - 1];
  const xn = np.matmul(rmsNorm(x, p.norm), np.eye(D));
  return np.matmul(xn, p.embed.ref.transpose());
}

/**
 * Whole sequences: ids B×T (int32), their visual indices B×T (int32, `visualIndices`), rotary
 * tables T×hd/2 → logits B×T×V (causal: position i sees 0..i). Parameters are borrowed.
 */
export function arForward(p: ArParams, cfg: ArConfig, ids: np.Array, vpos: np.Array, cos: np.Array, sin: np.Array): np.Array {
  return forwardKv(p, cfg, ids, vpos, cos, sin, null);
}

/**
 * A prefix of L tokens in one causal pass, for sampling: the logits after its last token (B×V)
 * and a cache of maxLen positions holding the prefix's keys and values (decoding goes on at L).
 */
export function arPrefill(p: ArParams, cfg: ArConfig, ids: np.Array, vpos: np.Array, cos: np.Array, sin: np.Array): { logits: np.Array; cache: KvCache } {
  const [B, L] = ids.shape;
  const kv: KvCache = { k: [], v: [] };
  const logits = forwardKv(p, cfg, ids, vpos, cos, sin, kv);
  const hd = cfg.dim / cfg.heads;
  const pad = (a: np.Array) => (L === cfg.maxLen ? a : np.concatenate([a, np.zeros([B, cfg.maxLen - L, cfg.heads, hd])], 1));
  const last = logits.slice([], [L - 1, L], []).reshape([B, cfg.vocab]);
  return { logits: last, cache: { k: kv.k.map(pad), v: kv.v.map(pad) } };
}

function forwardKv(p: ArParams, cfg: ArConfig, ids: np.Array, vpos: np.Array, cos: np.Array, sin: np.Array, kv: KvCache | null): np.Array {
  return head(p, trunk(p, cfg, ids, vpos, cos, sin, kv));
}

/**
 * Training with the reading probe: the logits B×T×V and the probe's maps B×M read from the final
 * hidden state (after the final RMSNorm) at the position `at` marks (B×T one-hot: each row's [EOV]).
 */
export function arForwardWithProbe(p: ArParams, cfg: ArConfig, ids: np.Array, vpos: np.Array, cos: np.Array, sin: np.Array, at: np.Array): { logits: np.Array; maps: np.Array } {
  if (!p.readProbe) throw new Error('internal: arForwardWithProbe without a reading probe');
  const x = trunk(p, cfg, ids, vpos, cos, sin, null);
  const [B, T, D] = x.shape;
  const h = np.matmul(at.reshape([B, 1, T]), rmsNorm(x.ref, p.norm)).reshape([B, D]);
  const maps = linear(p.readProbe.fc2, nn.gelu(linear(p.readProbe.fc1, h)));
  return { logits: head(p, x), maps };
}

/** The blocks: embeddings → the final hidden states B×T×D (before the final norm). */
function trunk(p: ArParams, cfg: ArConfig, ids: np.Array, vpos: np.Array, cos: np.Array, sin: np.Array, kv: KvCache | null): np.Array {
  const [B, T] = ids.shape;
  const { dim: D, heads } = cfg;
  const hd = D / heads;
  let x = embed(p, ids, vpos, cfg.vocab);
  for (const b of p.blocks) {
    const [q, k, v] = chunk(linear(b.qkv, rmsNorm(x.ref, b.attnNorm)), 3);
    const qh = rope(q.reshape([B, T, heads, hd]), cos.ref, sin.ref);
    const kh = rope(k.reshape([B, T, heads, hd]), cos.ref, sin.ref);
    const vh = v.reshape([B, T, heads, hd]);
    if (kv) {
      kv.k.push(kh.ref);
      kv.v.push(vh.ref);
    }
    const att = nn.dotProductAttention(qh, kh, vh, { isCausal: true }).reshape([B, T, D]);
    x = x.add(linear(b.proj, att));
    x = x.ref.add(mlpBlock(b, x));
  }
  cos.dispose();
  sin.dispose();
  return x;
}

/** Key/value cache: per block, B × maxLen × heads × headDim. */
export type KvCache = { k: np.Array[]; v: np.Array[] };

export function emptyCache(cfg: ArConfig, B: number): KvCache {
  const shape = [B, cfg.maxLen, cfg.heads, cfg.dim / cfg.heads];
  const zeros = () => np.zeros(shape);
  return { k: Array.from({ length: cfg.depth }, zeros), v: Array.from({ length: cfg.depth }, zeros) };
}

/**
 * One token per row at position `pos` (the same for the batch): ids B (int32) and their visual
 * indices B (int32, K for none); `at`: one-hot of
 * pos over maxLen; `seen`: 1 for positions ≤ pos; cos, sin: 1×hd/2 for pos. Returns the logits
 * B×V and the cache with this position's keys and values written. Consumes the cache.
 */
export function arStep(p: ArParams, cfg: ArConfig, ids: np.Array, vpos: np.Array, cache: KvCache, at: np.Array, seen: np.Array, cos: np.Array, sin: np.Array): { logits: np.Array; cache: KvCache } {
  const B = ids.shape[0];
  const { dim: D, heads, maxLen: S } = cfg;
  const hd = D / heads;
  let x = embed(p, ids.reshape([B, 1]), vpos.reshape([B, 1]), cfg.vocab);
  const write = at.reshape([1, S, 1, 1]);
  const keep = write.ref.mul(-1).add(1);
  const mask = seen.reshape([1, 1, 1, S]).greater(0.5);
  const k: np.Array[] = [];
  const v: np.Array[] = [];
  p.blocks.forEach((b, l) => {
    const [q, kn, vn] = chunk(linear(b.qkv, rmsNorm(x.ref, b.attnNorm)), 3);
    const qh = rope(q.reshape([B, 1, heads, hd]), cos.ref, sin.ref);
    const kh = rope(kn.reshape([B, 1, heads, hd]), cos.ref, sin.ref);
    const kc = cache.k[l].mul(keep.ref).add(kh.mul(write.ref));
    const vc = cache.v[l].mul(keep.ref).add(vn.reshape([B, 1, heads, hd]).mul(write.ref));
    const att = nn.dotProductAttention(qh, kc.ref, vc.ref, { mask: mask.ref }).reshape([B, 1, D]);
    k.push(kc);
    v.push(vc);
    x = x.add(linear(b.proj, att));
    x = x.ref.add(mlpBlock(b, x));
  });
  for (const a of [write, keep, mask, cos, sin]) a.dispose();
  return { logits: head(p, x).reshape([B, cfg.vocab]), cache: { k, v } };
}

/**
 * Next-token cross-entropy on the positions the mask selects (the answer part, issue #18):
 * logits B×T×V predict ids shifted by one; mask B×T weighs the prediction of ids[:, t+1] at t.
 * Returns the mean over the selected predictions.
 */
export function maskedNextTokenLoss(logits: np.Array, targets: np.Array, mask: np.Array, vocab: number): np.Array {
  const logp = nn.logSoftmax(logits, -1);
  const nll = logp.mul(oneHot(targets, vocab)).sum(-1).mul(-1);
  const total = mask.ref.sum();
  return nll.mul(mask).sum().div(np.maximum(total, 1));
}
