// An AR model directory: config.json (ArConfig + the tokenizer it speaks) and model.safetensors.
// The small public surface over model.ts: logits of whole sequences, image generation from a
// prompt (key/value cache, temperature, top-k, classifier-free guidance) and greedy answers.
import { jit, numpy as np, tree, type OwnedFunction } from '@jax-js/jax';
import { JitCache } from '../engine/jit-cache.ts';
import { Init, flattenParams, mapParams, type Params } from '../nn/params.ts';
import { asFloat32, type PendingTensor, type Tensor } from '../io/safetensors.ts';
import { readWeight, storeWeight, type WeightFormat } from '../io/weights.ts';
import type { CheckpointReader } from '../io/checkpoint.ts';
import { readModelFolder, type ModelFiles, type StoredModel } from '../io/model-files.ts';
import type { Selftok } from '../tokenizer/model.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { arForward, arPrefill, arStep, codebookEmbeddings, emptyCache, initAr, paddedVocab, ropeTables, validateArConfig, type ArConfig, type ArParams, type KvCache } from './model.ts';
import { batchArrays, codesOf, imagePrefix, questionPrefix, textToImage, visualIndexStep, visualIndices, visualWords } from './sequences.ts';
import { SPECIALS, Vocab, WORDS, modelWords } from './vocab.ts';

/** The tokenizer an AR model was trained on: its visual words are that tokenizer's codes. */
export type TokenizerRef = {
  name: string;
  fingerprint: string;
  K: number;
  codebookSize: number;
  /** Where the tokenizer directory was, relative to the AR model directory (a hint; the fingerprint decides). */
  path?: string;
};

/**
 * Default guidance weight. On models/scenes-ar the GenEval-style score rises with W from 0.22
 * (W 1) to 0.38–0.42 for W 14–40, but only by filling the image with extra objects: presence
 * prompts pass more often while colours and counts get worse (docs/scenes.md, the sweep).
 * W 3 keeps the colours and counts of W 1–2 and scores 0.25.
 */
export const DEFAULT_CFG = 3;

export type ImageSampling = { temperature: number; topK: number; cfg: number; seed: number };

/**
 * What sampling saw, per image and visual token in the model's order (n × K): the log-probability
 * of the sampled token and the entropy (nats) of the distribution it was drawn from (the guided,
 * tempered logits over the visual words, before top-k). RL reads the policy's own log-probs here.
 */
export type SampleStats = { logp: Float32Array; entropy: Float32Array };

export class ArModel {
  readonly vocab: Vocab;
  fingerprint = 'unsaved';
  step = 0;
  private jitCache = new JitCache();
  private rope: { cos: Float32Array; sin: Float32Array };

  private constructor(
    readonly cfg: ArConfig,
    public tokenizer: TokenizerRef,
    public params: ArParams,
  ) {
    this.vocab = new Vocab(tokenizer.codebookSize, modelWords(cfg.words));
    if (cfg.vocab !== paddedVocab(this.vocab.size, cfg)) {
      throw new UserError(`AR config ${cfg.name}: vocab ${cfg.vocab}, but the words and ${tokenizer.codebookSize} visual words make ${this.vocab.size}${cfg.vocabMultiple ? ` (${paddedVocab(this.vocab.size, cfg)} rounded up to a multiple of ${cfg.vocabMultiple})` : ''}`);
    }
    this.rope = ropeTables(cfg.maxLen, cfg.dim / cfg.heads, cfg.ropeBase);
  }

  /**
   * A fresh model for a tokenizer; `cfg.vocab` is filled in from the tokenizer's codebook. With
   * `training`, it also holds the config's training-only reading probe (initAr).
   */
  static create(cfg: ArConfig, tokenizer: TokenizerRef, seed: number, training = false): ArModel {
    const c = { ...cfg, words: cfg.words ?? WORDS.length };
    c.vocab = paddedVocab(new Vocab(tokenizer.codebookSize, modelWords(c.words)).size, c);
    return new ArModel(c, tokenizer, initAr(c, new Init(new Rng(seed ^ 0x1a7e)), tokenizer.K, training));
  }

  /**
   * Start the visual word embeddings from the tokenizer's codebook (config visualInit
   * 'codebook', model.ts codebookEmbeddings); the other rows stay as they are.
   */
  seedVisualEmbeddings(tokenizer: Selftok, seed: number): void {
    if (tokenizer.codebookSize !== this.tokenizer.codebookSize) throw new UserError(`the tokenizer has ${tokenizer.codebookSize} codes, this AR model ${this.tokenizer.codebookSize} visual words`);
    const D = this.cfg.dim;
    const rows = codebookEmbeddings(tokenizer.codebook.codebook, tokenizer.cfg.quantizer.dim, D, new Init(new Rng(seed ^ 0xc0de)));
    const table = this.params.embed;
    const data = Float32Array.from(table.ref.dataSync() as Float32Array);
    data.set(rows, this.vocab.visualBase * D);
    this.params.embed = np.array(data).reshape(table.shape);
    table.dispose();
  }

  /** What an AR model records of its tokenizer: the identity of its tokens (Selftok.tokenFingerprint), K and C. */
  static async tokenizerRef(t: Selftok): Promise<TokenizerRef> {
    return { name: t.cfg.name, fingerprint: await t.tokenFingerprint(), K: t.cfg.K, codebookSize: t.cfg.quantizer.codebookSize };
  }

  /** An AR model folder from an http(s) URL, or in Node a folder path (io/model-files.ts; a web page); Node's loadArModel reads a folder tensor by tensor. */
  static async open(location: string | ModelFiles): Promise<ArModel> {
    const f = await readModelFolder(location, 'an AR model');
    const model = ArModel.fromCheckpoint(f.config, f.configWhere, f.weights);
    model.fingerprint = f.fingerprint;
    return model;
  }

  /** From config.json's object (named `cfgWhere` in errors) and a reader over the weights (closed here); every tensor is shape-checked. */
  static fromCheckpoint(rawCfg: unknown, cfgWhere: string, ck: CheckpointReader): ArModel {
    try {
      const raw = (rawCfg ?? {}) as { ar?: unknown; tokenizer?: TokenizerRef };
      if (!raw.ar || !raw.tokenizer) throw new UserError(`${cfgWhere}: not an AR model config (needs 'ar' and 'tokenizer')`);
      const cfg = validateArConfig(raw.ar, cfgWhere);
      const model = new ArModel(cfg, raw.tokenizer, initAr(cfg, new Init(new Rng(0)), raw.tokenizer.K));
      const keys = ck.keys();
      model.loadWith((name, shape) => {
        const info = keys.get(name);
        if (!info) throw new UserError(`${ck.path}: missing tensor ${name}`);
        if (info.shape.join('x') !== shape.join('x')) throw new UserError(`${ck.path}: tensor ${name} has shape [${info.shape}], model expects [${shape}]`);
        return readWeight(ck, keys, name);
      });
      model.step = Number(ck.metadata().step ?? 0);
      return model;
    } finally {
      ck.close();
    }
  }

  /** Replace every parameter by `read(name, shape)`. */
  private loadWith(read: (name: string, shape: number[]) => Float32Array): void {
    const fresh = this.params as unknown as Params;
    const loaded = mapParams(fresh, (name, leaf) => np.array(read(name, leaf.shape)).reshape(leaf.shape));
    tree.dispose(fresh);
    this.params = loaded as unknown as ArParams;
  }

  /** Weights from in-memory tensors (a training checkpoint), shape-checked. */
  loadTensors(tensors: Map<string, Tensor>, where: string): void {
    this.loadWith((name, shape) => {
      const t = tensors.get(name);
      if (!t) throw new UserError(`${where}: missing tensor ${name}`);
      if (t.shape.join('x') !== shape.join('x')) throw new UserError(`${where}: tensor ${name} has shape [${t.shape}], model expects [${shape}]`);
      return asFloat32(t);
    });
  }

  /** Refuse a tokenizer whose tokens differ from those this model was trained on (another encoder or codebook). */
  async checkTokenizer(t: Selftok, where: string): Promise<void> {
    const fp = await t.tokenFingerprint();
    if (fp !== this.tokenizer.fingerprint) {
      throw new UserError(`${where}: the AR model was trained on the tokens of tokenizer ${this.tokenizer.name} (${this.tokenizer.fingerprint}), not on those of ${t.cfg.name} (${fp})`);
    }
  }

  /** The weights as float32 tensors (training checkpoints). */
  async tensors(): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const [name, a] of flattenParams(this.params as unknown as Params)) out.set(name, { dtype: 'F32', shape: a.shape, data: Float32Array.from((await a.ref.data()) as Float32Array) });
    return out;
  }

  /** What the model's folder holds (a writer puts it on disk: src/node/models.ts); `format` as Selftok.stored (io/weights.ts). Never the training-only reading probe, so `inference` changes nothing. */
  async stored(opts: { format?: WeightFormat; inference?: boolean } = {}): Promise<StoredModel> {
    const format = opts.format ?? 'float32';
    const weights = new Map<string, PendingTensor>();
    for (const [name, t] of await this.tensors()) {
      if (name.startsWith('readProbe.')) continue;
      for (const [k, st] of storeWeight(name, t.data as Float32Array, t.shape, format)) weights.set(k, { dtype: st.dtype, shape: st.shape, data: () => st.bytes });
    }
    return { config: { ar: this.cfg, tokenizer: this.tokenizer }, weights, metadata: { format: 'selftok-ar', step: String(this.step), weights: format } };
  }

  private cached<F extends (...args: any[]) => any>(name: string, make: () => OwnedFunction<F>): OwnedFunction<F> {
    return this.jitCache.get(name, make);
  }

  disposeCompiled(): void {
    this.jitCache.dispose();
  }

  /** Rotary tables for positions from..from+T−1 (T × hd/2 each), cut from the host tables. */
  ropeArrays(T: number, from = 0): { cos: np.Array; sin: np.Array } {
    const half = this.cfg.dim / this.cfg.heads / 2;
    const rows = (t: Float32Array) => np.array(t.slice(from * half, (from + T) * half)).reshape([T, half]);
    return { cos: rows(this.rope.cos), sin: rows(this.rope.sin) };
  }

  /** What the forward pass takes besides the weights for whole sequences (ids B×T, row-major): ids, visual indices and rotary tables. */
  inputs(ids: Int32Array, B: number): { ids: np.Array; vpos: np.Array; cos: np.Array; sin: np.Array } {
    const T = ids.length / B;
    const vpos = np.array(visualIndices(this.vocab, ids, B, this.tokenizer.K), { dtype: np.int32 }).reshape([B, T]);
    return { ids: np.array(ids, { dtype: np.int32 }).reshape([B, T]), vpos, ...this.ropeArrays(T) };
  }

  /** Logits B×T×V of whole sequences (ids B×T, row-major) by the full causal forward. */
  async logits(ids: Int32Array, B: number): Promise<Float32Array> {
    const f = this.cached('forward', () =>
      jit((p: ArParams, x: np.Array, vpos: np.Array, cos: np.Array, sin: np.Array) => {
        const y = arForward(p, this.cfg, x, vpos, cos, sin);
        tree.dispose(p);
        return y;
      }),
    );
    const a = this.inputs(ids, B);
    const y = f(tree.ref(this.params), a.ids, a.vpos, a.cos, a.sin);
    return Float32Array.from((await y.data()) as Float32Array);
  }

  /**
   * log p of each visual token of each image given its prompt, teacher-forced by one full forward
   * per batch of 32: n × K in the model's token order (prompts: word ids per row, null for the
   * unconditional row; codes: n × K, encoder order). A row's sum is log P(image | prompt), the
   * text → image loss with its sign flipped: what the model thinks of an image under a text.
   */
  async imageTokenLogProbs(prompts: (number[] | null)[], codes: Int32Array): Promise<Float64Array> {
    const K = this.tokenizer.K;
    const V = this.cfg.vocab;
    const T = this.cfg.maxLen;
    const n = prompts.length;
    const out = new Float64Array(n * K);
    for (let s = 0; s < n; s += 32) {
      const m = Math.min(32, n - s);
      const seqs = Array.from({ length: m }, (_, b) =>
        textToImage(this.vocab, prompts[s + b], visualWords(this.vocab, codes.subarray((s + b) * K, (s + b + 1) * K), this.cfg.order)),
      );
      this.room(seqs.reduce((a, q) => Math.max(a, q.ids.length), 0) - 1, 1, 'image likelihood');
      const { ids, targets, mask } = batchArrays(this.vocab, seqs, T);
      const logits = await this.logits(ids, m);
      for (let b = 0; b < m; b++) {
        let k = 0;
        for (let t = 0; t < T; t++) {
          if (!mask[b * T + t]) continue;
          out[(s + b) * K + k++] = tokenStats(logits.subarray((b * T + t) * V, (b * T + t + 1) * V), 1, targets[b * T + t]).logp;
        }
      }
    }
    return out;
  }

  /**
   * Incremental decoding: feed one token per row at position `pos` (all rows at the same
   * position), get the next-token logits B×V. A Decoder owns its cache.
   */
  decoder(B: number): Decoder {
    const step = this.cached('step', () =>
      jit((p: ArParams, ids: np.Array, vpos: np.Array, cache: KvCache, at: np.Array, seen: np.Array, cos: np.Array, sin: np.Array) => {
        const r = arStep(p, this.cfg, ids, vpos, cache, at, seen, cos, sin);
        tree.dispose(p);
        return r;
      }),
    );
    const prefill = this.cached('prefill', () =>
      jit((p: ArParams, ids: np.Array, vpos: np.Array, cos: np.Array, sin: np.Array) => {
        const r = arPrefill(p, this.cfg, ids, vpos, cos, sin);
        tree.dispose(p);
        return r;
      }),
    );
    return new Decoder(this, B, step, prefill);
  }

  /** Positions left for generated tokens after a prefix; refuses a prefix that leaves none. */
  private room(prefix: number, need: number, where: string): void {
    if (prefix + need > this.cfg.maxLen) throw new UserError(`${where}: ${prefix} tokens of input leave no room for ${need} more in this model's ${this.cfg.maxLen}`);
  }

  /**
   * n images for a prompt (word ids; null = unconditional): K visual tokens sampled one by one
   * (only visual words allowed), with classifier-free guidance
   * l = l_uncond + W·(l_cond − l_uncond) when W ≠ 1. Returns the n × K codes in encoder order.
   */
  async generateImages(prompt: number[] | null, n: number, s: ImageSampling, stats?: SampleStats): Promise<Int32Array> {
    const K = this.tokenizer.K;
    const v = this.vocab;
    const cond = imagePrefix(v, prompt);
    this.room(cond.length, K, 'generate');
    const guided = s.cfg !== 1 && prompt !== null;
    const dc = this.decoder(n);
    const du = guided ? this.decoder(n) : null;
    try {
      let lc = await dc.prefill(cond);
      let lu = du ? await du.prefill(imagePrefix(v, null)) : null;
      const rng = new Rng(s.seed >>> 0);
      const words: number[][] = Array.from({ length: n }, () => []);
      const V = this.cfg.vocab; // the logits row: the words, the visual words and any padding (vocabMultiple)
      for (let k = 0; k < K; k++) {
        const next = new Int32Array(n);
        for (let b = 0; b < n; b++) {
          const row = lc.subarray(b * V, (b + 1) * V);
          const logit = new Float32Array(v.codebookSize);
          for (let c = 0; c < v.codebookSize; c++) {
            const l = row[v.visualBase + c];
            logit[c] = lu ? lu[b * V + v.visualBase + c] + s.cfg * (l - lu[b * V + v.visualBase + c]) : l;
          }
          const c = sampleLogits(logit, s.temperature, s.topK, rng);
          if (stats) {
            const { logp, entropy } = tokenStats(logit, s.temperature || 1, c);
            stats.logp[b * K + k] = logp;
            stats.entropy[b * K + k] = entropy;
          }
          next[b] = v.visual(c);
          words[b].push(next[b]);
        }
        if (k === K - 1) break;
        lc = await dc.feed(next);
        if (du) lu = await du.feed(next);
      }
      const out = new Int32Array(n * K);
      words.forEach((w, b) => out.set(codesOf(v, w, this.cfg.order), b * K));
      return out;
    } finally {
      dc.dispose();
      du?.dispose();
    }
  }

  /**
   * Greedy answers to a question (word ids) about each image (n × K codes, encoder order):
   * words until [EOS] (only words and [EOS] allowed), at most `maxWords`.
   */
  async answer(codes: Int32Array, n: number, question: number[], maxWords = 20): Promise<string[]> {
    return this.answerEach(codes, Array.from({ length: n }, () => question), maxWords);
  }

  /** As `answer`, one question per image (word ids; all of one length, so that they decode in lockstep). */
  async answerEach(codes: Int32Array, questions: number[][], maxWords = 20): Promise<string[]> {
    const K = this.tokenizer.K;
    const v = this.vocab;
    const n = questions.length;
    const prefixes = questions.map((q, b) => questionPrefix(v, visualWords(v, codes.subarray(b * K, (b + 1) * K), this.cfg.order), q));
    this.room(prefixes[0].length, 1, 'ask');
    const d = this.decoder(n);
    try {
      let logits = await d.prefillRows(prefixes);
      const out: number[][] = Array.from({ length: n }, () => []);
      const done = new Array(n).fill(false);
      const eos = v.special('[EOS]');
      for (let i = 0; i < maxWords && d.pos < this.cfg.maxLen; i++) {
        const next = new Int32Array(n);
        for (let b = 0; b < n; b++) {
          const row = logits.subarray(b * this.cfg.vocab, (b + 1) * this.cfg.vocab);
          let best = eos;
          for (let w = SPECIALS.length; w < v.visualBase; w++) if (row[w] > row[best]) best = w;
          next[b] = best;
          if (!done[b]) {
            if (best === eos) done[b] = true;
            else out[b].push(best);
          }
        }
        if (done.every(Boolean) || d.pos >= this.cfg.maxLen) break;
        logits = await d.feed(next);
      }
      return out.map((w) => v.decode(w));
    } finally {
      d.dispose();
    }
  }

  dispose(): void {
    this.disposeCompiled();
    tree.dispose(this.params as never);
  }
}

type StepFn = OwnedFunction<(p: ArParams, ids: np.Array, vpos: np.Array, cache: KvCache, at: np.Array, seen: np.Array, cos: np.Array, sin: np.Array) => { logits: np.Array; cache: KvCache }>;
type PrefillFn = OwnedFunction<(p: ArParams, ids: np.Array, vpos: np.Array, cos: np.Array, sin: np.Array) => { logits: np.Array; cache: KvCache }>;

/** A batch of sequences decoded in lockstep against one key/value cache. */
export class Decoder {
  pos = 0;
  private cache: KvCache;
  /** Per row, the index the next visual token takes in its image (−1 outside one): see visualIndexStep. */
  private nextIndex: Int32Array;
  constructor(
    private readonly model: ArModel,
    readonly B: number,
    private readonly step: StepFn,
    private readonly prefillFn: PrefillFn,
  ) {
    this.cache = emptyCache(model.cfg, B);
    this.nextIndex = new Int32Array(B).fill(-1);
  }

  /** Feed one token per row at the next position; the next-token logits B×V. */
  async feed(ids: Int32Array): Promise<Float32Array> {
    const S = this.model.cfg.maxLen;
    if (this.pos >= S) throw new Error(`internal: decoder past maxLen ${S}`);
    const at = new Float32Array(S);
    at[this.pos] = 1;
    const seen = new Float32Array(S);
    seen.fill(1, 0, this.pos + 1);
    const { cos, sin } = this.model.ropeArrays(1, this.pos);
    const K = this.model.tokenizer.K;
    const vpos = Int32Array.from(ids, (id, b) => {
      const [index, next] = visualIndexStep(this.model.vocab, K, this.nextIndex[b], id);
      this.nextIndex[b] = next;
      return index;
    });
    const r = this.step(tree.ref(this.model.params), np.array(ids, { dtype: np.int32 }), np.array(vpos, { dtype: np.int32 }), this.cache, np.array(at), np.array(seen), cos, sin);
    this.cache = r.cache;
    this.pos += 1;
    return Float32Array.from((await r.logits.data()) as Float32Array);
  }

  /** The same prefix on every row; the logits after its last token. */
  async prefill(prefix: number[]): Promise<Float32Array> {
    return this.prefillRows(Array.from({ length: this.B }, () => prefix));
  }

  /**
   * One prefix per row (all the same length), in one causal pass that fills the cache (a fresh
   * decoder; later tokens go through `feed`); the logits after their last tokens.
   */
  async prefillRows(prefixes: number[][]): Promise<Float32Array> {
    const L = prefixes[0].length;
    if (prefixes.some((p) => p.length !== L)) throw new Error('internal: prefixes of one batch must have one length');
    if (this.pos !== 0) throw new Error('internal: prefill on a decoder that has already decoded');
    if (L > this.model.cfg.maxLen) throw new Error(`internal: prefix of ${L} tokens exceeds maxLen`);
    const ids = new Int32Array(this.B * L);
    prefixes.forEach((p, b) => ids.set(p, b * L));
    const K = this.model.tokenizer.K;
    this.nextIndex = Int32Array.from(prefixes, (p) => p.reduce((next, id) => visualIndexStep(this.model.vocab, K, next, id)[1], -1));
    const a = this.model.inputs(ids, this.B);
    tree.dispose(this.cache as never);
    const r = this.prefillFn(tree.ref(this.model.params), a.ids, a.vpos, a.cos, a.sin);
    this.cache = r.cache;
    this.pos = L;
    return Float32Array.from((await r.logits.data()) as Float32Array);
  }

  /**
   * Rows of the cache by index: row r becomes what row `from[r]` was (beam search keeps the
   * continuations of some rows in several rows and drops others).
   */
  reorder(from: Int32Array): void {
    if (from.length !== this.B) throw new Error(`internal: reorder of ${from.length} rows in a decoder of ${this.B}`);
    const idx = np.array(from, { dtype: np.int32 });
    const take = (a: np.Array) => np.take(a, idx.ref, 0);
    this.cache = { k: this.cache.k.map(take), v: this.cache.v.map(take) };
    idx.dispose();
    this.nextIndex = Int32Array.from(from, (r) => this.nextIndex[r]);
  }

  dispose(): void {
    tree.dispose(this.cache as never);
  }
}

/** Sample an index from logits: temperature 0 = argmax; top-k keeps the k largest (0 = all). */
export function sampleLogits(logits: Float32Array, temperature: number, topK: number, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (temperature === 0) return best;
  let cutoff = -Infinity;
  if (topK > 0 && topK < logits.length) cutoff = Float32Array.from(logits).sort().reverse()[topK - 1];
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = logits[i] >= cutoff ? Math.exp((logits[i] - logits[best]) / temperature) : 0;
    sum += p[i];
  }
  let u = rng.uniform() * sum;
  for (let i = 0; i < p.length; i++) {
    u -= p[i];
    if (u <= 0 && p[i] > 0) return i;
  }
  return best;
}

/** log p(chosen) and the entropy of softmax(logits / temperature), in float64. */
export function tokenStats(logits: Float32Array, temperature: number, chosen: number): { logp: number; entropy: number } {
  let max = -Infinity;
  for (const l of logits) max = Math.max(max, l / temperature);
  let z = 0;
  let ez = 0;
  for (const l of logits) {
    const a = l / temperature - max;
    const e = Math.exp(a);
    z += e;
    ez += e * a;
  }
  const logZ = Math.log(z);
  return { logp: logits[chosen] / temperature - max - logZ, entropy: logZ - ez / z };
}
