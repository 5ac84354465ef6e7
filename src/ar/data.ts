// Training data of the AR model: scenes tokenized once by the tokenizer (a "pool"), and
// batches of text→image, image→text and image-only sequences drawn from it (issue #18, item 4).
//   text → image: a training-split prompt of each category and a scene drawn for it
//   image → text: random scenes (never one that shows a composition hold-out combination, so
//                 no training text names one), asked for the caption or one of its questions
// The pool is saved beside the checkpoints (pool.safetensors) with the tokenizer's fingerprint,
// so a resumed run reads the same data and a pool from another tokenizer is refused.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafetensors } from '../io/safetensors.ts';
import type { Selftok } from '../tokenizer/model.ts';
import { UserError } from '../util/errors.ts';
import { writeFileAtomic } from '../node/fsx.ts';
import type { Rng } from '../util/rng.ts';
import type { ArConfig } from './model.ts';
import { CATEGORIES, promptOf, promptText, randomScene, renderScene, sceneForPrompt, sceneMaps, toUnitRange, type PromptSpec, type Scene } from './scenes.ts';
import { dialogue, textToImage, turnLength, visualWords, type Sequence, type Turn } from './sequences.ts';
import { CAPTION_QUESTION, caption, questions, showsHeldOutCombo, whereQuestions } from './text.ts';
import type { Vocab } from './vocab.ts';
import { readSafetensors } from '../node/safetensors-files.ts';

export const POOL_FILE = 'pool.safetensors';
/** Seed offsets of the training scenes (all below 2³¹, the held-out range's start). */
const PROMPT_SEED = 1_000_000;
const RANDOM_SEED = 2_000_000;

/** The i-th text→image training prompt (each category in turn); its scene is `promptScene(spec, i)`. */
export function trainingPrompt(i: number): PromptSpec {
  return promptOf('train', CATEGORIES[i % CATEGORIES.length], Math.floor(i / CATEGORIES.length));
}

/** The scene drawn for the i-th training prompt. */
export function promptScene(spec: PromptSpec, i: number, size: number): Scene {
  return sceneForPrompt(spec, PROMPT_SEED + i, size);
}

/** Tokenize scenes in batches (encoder order codes, n × K). */
export async function tokenizeScenes(tokenizer: Selftok, scenes: Scene[], onBatch?: (done: number) => void): Promise<Int32Array> {
  const size = tokenizer.cfg.image.size;
  const n = size * size * 3;
  const K = tokenizer.cfg.K;
  const out = new Int32Array(scenes.length * K);
  const B = 64;
  for (let s = 0; s < scenes.length; s += B) {
    const m = Math.min(B, scenes.length - s);
    const x = new Float32Array(m * n);
    for (let b = 0; b < m; b++) x.set(toUnitRange(renderScene(scenes[s + b])), b * n);
    out.set(await tokenizer.encode(x, m), s * K);
    onBatch?.(s + m);
  }
  return out;
}

export class ScenesArData {
  private qaCache = new Map<number, Turn[]>();

  private constructor(
    readonly vocab: Vocab,
    readonly K: number,
    readonly size: number,
    /** Text→image: prompt word ids and encoder-order codes. */
    readonly prompts: number[][],
    readonly promptCodes: Int32Array,
    /** Image→text: scene seeds and codes. */
    readonly seeds: number[],
    readonly sceneCodes: Int32Array,
  ) {}

  /** Load DIR/pool.safetensors if it was made by this tokenizer, else tokenize `pool` scenes of each kind and save it. */
  static async open(dir: string, tokenizer: Selftok, vocab: Vocab, pool: number, onProgress?: (done: number, total: number) => void): Promise<ScenesArData> {
    const size = tokenizer.cfg.image.size;
    const K = tokenizer.cfg.K;
    const path = join(dir, POOL_FILE);
    const fingerprint = await tokenizer.tokenFingerprint();
    const specs = Array.from({ length: pool }, (_, i) => trainingPrompt(i));
    const prompts = specs.map((spec) => vocab.encode(promptText(spec), 'prompt'));
    if (existsSync(path)) {
      const f = readSafetensors(path);
      if (f.metadata.tokenizer !== fingerprint) throw new UserError(`${path}: made with the tokens of ${f.metadata.tokenizer}, not ${fingerprint}; use another --out`);
      const pc = f.tensors.get('promptCodes');
      const sc = f.tensors.get('sceneCodes');
      const sd = f.tensors.get('seeds');
      if (!pc || !sc || !sd || pc.shape[0] !== pool || pc.shape[1] !== K) throw new UserError(`${path}: not a pool of ${pool} scenes × ${K} tokens`);
      return new ScenesArData(vocab, K, size, prompts, pc.data as Int32Array, Array.from(sd.data), sc.data as Int32Array);
    }
    const seeds: number[] = [];
    const scenes: Scene[] = [];
    for (let s = RANDOM_SEED; seeds.length < pool; s++) {
      const scene = randomScene(s, size);
      if (showsHeldOutCombo(scene)) continue;
      seeds.push(s);
      scenes.push(scene);
    }
    const total = 2 * pool;
    const promptCodes = await tokenizeScenes(tokenizer, specs.map((spec, i) => promptScene(spec, i, size)), (d) => onProgress?.(d, total));
    const sceneCodes = await tokenizeScenes(tokenizer, scenes, (d) => onProgress?.(pool + d, total));
    const tensors = new Map([
      ['promptCodes', { dtype: 'I32' as const, shape: [pool, K], data: promptCodes }],
      ['sceneCodes', { dtype: 'I32' as const, shape: [pool, K], data: sceneCodes }],
      ['seeds', { dtype: 'I32' as const, shape: [pool], data: Int32Array.from(seeds) }],
    ]);
    writeFileAtomic(path, encodeSafetensors(tensors, { format: 'selftok-ar-pool', tokenizer: fingerprint }));
    return new ScenesArData(vocab, K, size, prompts, promptCodes, seeds, sceneCodes);
  }

  private codes(all: Int32Array, i: number): Int32Array {
    return all.subarray(i * this.K, (i + 1) * this.K);
  }

  /** The caption (as a question) and every question of the i-th image→text scene (with `where`: its where questions too), as word ids. */
  private qa(i: number, where: boolean): Turn[] {
    let qa = this.qaCache.get(i);
    if (!qa) {
      const scene = randomScene(this.seeds[i], this.size);
      const asked = [{ question: CAPTION_QUESTION, answer: caption(scene) }, ...questions(scene), ...(where ? whereQuestions(scene) : [])];
      qa = asked.map((x) => ({ q: this.vocab.encode(x.question), a: this.vocab.encode(x.answer) }));
      this.qaCache.set(i, qa);
    }
    return qa;
  }

  /**
   * A batch of sequences in the config's mix. An image→text row opens with the caption in a third
   * of rows, else with one of the questions; with `train.turns` above 1 it goes on with the
   * scene's other questions in random order while they fit in maxLen.
   */
  batch(rng: Rng, B: number, cfg: ArConfig): Sequence[] {
    const probe = cfg.train.readProbe;
    const rows = this.rows(rng, B, cfg);
    if (probe) for (const r of rows) r.seq.maps = sceneMaps(r.scene(), probe.size);
    return rows.map((r) => r.seq);
  }

  /** The rows of `batch`, each with the scene its image shows (drawn again only when asked). */
  private rows(rng: Rng, B: number, cfg: ArConfig): { seq: Sequence; scene: () => Scene }[] {
    const { textToImage: wt, imageToText: wi, imageOnly: wo } = cfg.train.mix;
    const total = wt + wi + wo;
    const n = this.prompts.length;
    const promptSceneAt = (i: number) => () => promptScene(trainingPrompt(i), i, this.size);
    const randomSceneAt = (i: number) => () => randomScene(this.seeds[i], this.size);
    return Array.from({ length: B }, () => {
      const u = rng.uniform() * total;
      if (u < wt + wo) {
        const i = rng.int(0, n);
        const v = visualWords(this.vocab, this.codes(this.promptCodes, i), cfg.order);
        const drop = u >= wt || rng.uniform() < cfg.train.promptDrop;
        if (drop) {
          // image only: half from the prompt scenes, half from the random ones
          const j = rng.int(0, n);
          return rng.uniform() < 0.5
            ? { seq: textToImage(this.vocab, null, v), scene: promptSceneAt(i) }
            : { seq: textToImage(this.vocab, null, visualWords(this.vocab, this.codes(this.sceneCodes, j), cfg.order)), scene: randomSceneAt(j) };
        }
        return { seq: textToImage(this.vocab, this.prompts[i], v), scene: promptSceneAt(i) };
      }
      const i = rng.int(0, n);
      const qa = this.qa(i, cfg.train.where ?? false);
      const first = rng.uniform() < 1 / 3 ? 0 : rng.int(1, qa.length);
      const turns = [qa[first]];
      const most = cfg.train.turns ?? 1;
      if (most > 1) {
        // the other questions (never the caption after a question), shuffled, while they fit
        const rest = qa.slice(1).filter((_, j) => j + 1 !== first);
        for (let k = rest.length - 1; k > 0; k--) {
          const j = rng.int(0, k + 1);
          [rest[k], rest[j]] = [rest[j], rest[k]];
        }
        let room = cfg.maxLen - (this.K + 3) - turnLength(qa[first]);
        for (const t of rest) {
          if (turns.length >= most) break;
          if (turnLength(t) > room) continue;
          turns.push(t);
          room -= turnLength(t);
        }
      }
      return { seq: dialogue(this.vocab, visualWords(this.vocab, this.codes(this.sceneCodes, i), cfg.order), turns), scene: randomSceneAt(i) };
    });
  }
}
