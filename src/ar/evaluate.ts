// Measuring the AR model on held-out data (issue #18):
//   geneval        held-out prompts → images → the scorer, per category and overall as GenEval
//                  reports them (a prompt's score is the mean over its images; a category's the
//                  mean over its prompts; overall the mean of the six categories), the
//                  composition hold-out separately
//   understanding  held-out scenes → caption exact match and question accuracy by kind
//   positionLoss   the validation cross-entropy of each visual token position (text → image)
import type { Selftok } from '../tokenizer/model.ts';
import { UserError } from '../util/errors.ts';
import type { ArModel, ImageSampling } from './ar-model.ts';
import { CATEGORIES, namesHeldOutCombo, promptOf, promptText, randomScene, sceneForPrompt, type Category, type Scene } from './scenes.ts';
import { scorePrompt } from './scorer.ts';
import { CAPTION_QUESTION, caption, questions, showsHeldOutCombo, whereQuestions, type QA } from './text.ts';
import { tokenizeScenes } from './data.ts';
import { answerQuestions, captionImages, DEFAULT_BEAM, type AskOptions, type RelationMethod } from './ask.ts';

/** Held-out scene seeds start here (training seeds are below 2³¹). */
export const HELD_OUT_SEED = 0x80000000;

export const toBytes = (x: Float32Array): Uint8Array => Uint8Array.from(x, (v) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5))));

export type Decoder = 'renderer' | 'diffusion';

/** The decoder to use: the one asked for, else the renderer when the tokenizer has one (one pass), else the diffusion decoder. */
export function pickDecoder(tokenizer: Selftok, asked?: Decoder): Decoder {
  if (asked === 'renderer' && !tokenizer.hasRenderer) throw new UserError(`tokenizer ${tokenizer.cfg.name} has no renderer; use --decoder diffusion`);
  return asked ?? (tokenizer.hasRenderer ? 'renderer' : 'diffusion');
}

/** Tokens → pixels in [−1, 1] by a decoder (the diffusion one with the tokenizer's sampler settings). */
export async function tokensToImages(tokenizer: Selftok, codes: Int32Array, B: number, decoder: Decoder = pickDecoder(tokenizer)): Promise<Float32Array> {
  return decoder === 'renderer' ? tokenizer.render(codes, B) : tokenizer.decode(codes, B, { seed: 0 });
}

export type GenevalResult = {
  overall: number;
  categories: Record<Category, number>;
  /** Prompts naming a composition hold-out combination, and their mean score. */
  composition: { prompts: number; score: number };
  /** Mean number of objects the scorer finds per image, per category and over all (a crowded image passes presence checks: see RL and high guidance). */
  objectsPerImage: Record<Category | 'overall', number>;
  prompts: { category: Category; prompt: string; score: number; heldOutCombo: boolean }[];
  /** Per category: the images, prompt by prompt (pixels in [−1, 1]), for the grids. */
  images: Record<Category, Float32Array[][]>;
  settings: ImageSampling & { perPrompt: number; promptsPerCategory: number; decoder: 'renderer' | 'diffusion' };
};

export async function geneval(
  ar: ArModel,
  tokenizer: Selftok,
  o: { perPrompt: number; promptsPerCategory: number; sampling: ImageSampling; decoder?: Decoder; onPrompt?: (done: number, total: number) => void },
): Promise<GenevalResult> {
  const size = tokenizer.cfg.image.size;
  const n = size * size * 3;
  const decoder = pickDecoder(tokenizer, o.decoder);
  const categories = {} as Record<Category, number>;
  const images = {} as Record<Category, Float32Array[][]>;
  const prompts: GenevalResult['prompts'] = [];
  const objectsPerImage = {} as GenevalResult['objectsPerImage'];
  let allObjects = 0;
  const total = CATEGORIES.length * o.promptsPerCategory;
  let done = 0;
  for (const cat of CATEGORIES) {
    let sum = 0;
    let objects = 0;
    images[cat] = [];
    for (let i = 0; i < o.promptsPerCategory; i++) {
      const spec = promptOf('heldout', cat, i);
      const text = promptText(spec);
      const codes = await ar.generateImages(ar.vocab.encode(text, 'prompt'), o.perPrompt, { ...o.sampling, seed: o.sampling.seed + 7919 * (done + 1) });
      const px = await tokensToImages(tokenizer, codes, o.perPrompt, decoder);
      const row: Float32Array[] = [];
      let s = 0;
      for (let b = 0; b < o.perPrompt; b++) {
        const img = px.subarray(b * n, (b + 1) * n);
        row.push(img.slice());
        const sc = scorePrompt(spec, toBytes(img), size);
        s += sc.score;
        objects += sc.objects.length;
      }
      images[cat].push(row);
      const score = s / o.perPrompt;
      prompts.push({ category: cat, prompt: text, score, heldOutCombo: namesHeldOutCombo(spec) });
      sum += score;
      o.onPrompt?.(++done, total);
    }
    categories[cat] = sum / o.promptsPerCategory;
    objectsPerImage[cat] = objects / (o.promptsPerCategory * o.perPrompt);
    allObjects += objects;
  }
  objectsPerImage.overall = allObjects / (CATEGORIES.length * o.promptsPerCategory * o.perPrompt);
  const comp = prompts.filter((p) => p.heldOutCombo);
  return {
    overall: CATEGORIES.reduce((a, c) => a + categories[c], 0) / CATEGORIES.length,
    categories,
    composition: { prompts: comp.length, score: comp.length ? comp.reduce((a, p) => a + p.score, 0) / comp.length : NaN },
    objectsPerImage,
    prompts,
    images,
    settings: { ...o.sampling, perPrompt: o.perPrompt, promptsPerCategory: o.promptsPerCategory, decoder },
  };
}

export type UnderstandingResult = {
  scenes: number;
  captionExact: number;
  questionAccuracy: number;
  /** Per kind; `where` only for a model trained on where questions (not in questionAccuracy). */
  byKind: Record<Exclude<QA['kind'], 'where'>, { n: number; accuracy: number }> & { where?: { n: number; accuracy: number } };
  /** The same on held-out scenes that show a composition hold-out combination (never named in training text). */
  heldOutCombos: { scenes: number; captionExact: number; questionAccuracy: number };
  /** How relation questions were answered (ask.ts): likelihood of the image under the two statements, or decoded yes/no. */
  relationsBy: RelationMethod;
  /** How decoded answers and captions were chosen (ask.ts): a beam of `beam` within the answer set, or free greedy words. */
  decoding: { method: 'beam'; beam: number } | { method: 'greedy' };
  /** With relationsBy 'likelihood': the same relation questions answered by decoding yes/no. */
  relationDecoded?: { n: number; accuracy: number };
  examples: { caption: string; predicted: string }[];
};

/**
 * Caption exact match and question accuracy on the first `n` held-out random scenes.
 * `afterCaption`: ask each question as a second turn, after the model's own caption
 * (`… [EOV] what is in the image? <its caption> [EOS] question`): the answer can then read the
 * text the model wrote as well as the image (a model trained with `train.turns` > 1 has seen
 * questions after the caption). `relations`: how relation questions are answered (ask.ts;
 * default by likelihood; the caption turn does not enter a likelihood answer).
 */
export async function understanding(ar: ArModel, tokenizer: Selftok, n: number, o: { afterCaption?: boolean } & Pick<AskOptions, 'relations' | 'beam'> = {}): Promise<UnderstandingResult> {
  const size = tokenizer.cfg.image.size;
  const K = tokenizer.cfg.K;
  const scenes = Array.from({ length: n }, (_, i) => randomScene((HELD_OUT_SEED + i) >>> 0, size));
  const codes = await tokenizeScenes(tokenizer, scenes);
  const tally = (s: { ok: number; n: number }, ok: boolean) => {
    s.n++;
    if (ok) s.ok++;
  };
  const main = { cap: { ok: 0, n: 0 }, q: { ok: 0, n: 0 } };
  const combo = { cap: { ok: 0, n: 0 }, q: { ok: 0, n: 0 } };
  const kinds: Record<string, { ok: number; n: number }> = { count: { ok: 0, n: 0 }, colour: { ok: 0, n: 0 }, relation: { ok: 0, n: 0 } };
  const where = ar.cfg.train.where ?? false;
  if (where) kinds.where = { ok: 0, n: 0 };
  const examples: UnderstandingResult['examples'] = [];
  const relations = o.relations ?? 'likelihood';
  const beam = o.beam ?? DEFAULT_BEAM;
  const decoded = { ok: 0, n: 0 };
  const B = 16;
  for (let s = 0; s < n; s += B) {
    const m = Math.min(B, n - s);
    const batch = codes.subarray(s * K, (s + m) * K);
    const caps = await captionImages(ar, batch, m, { beam });
    for (let b = 0; b < m; b++) {
      const scene = scenes[s + b];
      const into = showsHeldOutCombo(scene) ? combo : main;
      const want = caption(scene);
      tally(into.cap, caps[b] === want);
      if (examples.length < 12) examples.push({ caption: want, predicted: caps[b] });
    }
    // every question of these scenes (ask.ts); with afterCaption, after the caption turn where it
    // leaves room for the question and a 3-word answer (else asked directly)
    const turn = (b: number, q: number[]) => {
      const t = o.afterCaption ? [...ar.vocab.encode(CAPTION_QUESTION), ...ar.vocab.encode(caps[b]), ar.vocab.special('[EOS]')] : [];
      return K + 3 + t.length + q.length + 3 <= ar.cfg.maxLen ? [...t, ...q] : q;
    };
    const asked = (scene: Scene) => [...questions(scene), ...(where ? whereQuestions(scene) : [])];
    const asks = scenes.slice(s, s + m).flatMap((scene, b) => asked(scene).map((qa) => ({ image: b, qa, question: qa.question, words: turn(b, ar.vocab.encode(qa.question)) })));
    const got = await answerQuestions(ar, batch, asks, { relations, beam });
    asks.forEach((a, i) => {
      const into = showsHeldOutCombo(scenes[s + a.image]) ? combo : main;
      // where questions are a training aid, scored apart from the question set
      if (a.qa.kind !== 'where') tally(into.q, got[i] === a.qa.answer);
      if (into === main) tally(kinds[a.qa.kind], got[i] === a.qa.answer);
    });
    if (relations === 'likelihood') {
      // the same relation questions decoded, for the record beside the likelihood answers
      const rel = asks.filter((a) => a.qa.kind === 'relation' && !showsHeldOutCombo(scenes[s + a.image]));
      const dec = await answerQuestions(ar, batch, rel, { relations: 'decode', beam });
      rel.forEach((a, i) => tally(decoded, dec[i] === a.qa.answer));
    }
  }
  const rate = (s: { ok: number; n: number }) => (s.n ? s.ok / s.n : NaN);
  return {
    scenes: main.cap.n,
    captionExact: rate(main.cap),
    questionAccuracy: rate(main.q),
    byKind: Object.fromEntries(Object.entries(kinds).map(([k, s]) => [k, { n: s.n, accuracy: rate(s) }])) as UnderstandingResult['byKind'],
    heldOutCombos: { scenes: combo.cap.n, captionExact: rate(combo.cap), questionAccuracy: rate(combo.q) },
    relationsBy: relations,
    decoding: beam > 0 ? { method: 'beam', beam } : { method: 'greedy' },
    ...(relations === 'likelihood' ? { relationDecoded: { n: decoded.n, accuracy: rate(decoded) } } : {}),
    examples,
  };
}

/**
 * Validation cross-entropy (nats) of each visual token position, in the model's sequence
 * order (position 0 = the first visual token generated), on held-out prompts and scenes.
 */
export async function positionLoss(ar: ArModel, tokenizer: Selftok, perCategory: number): Promise<{ perPosition: number[]; mean: number; sequences: number }> {
  const size = tokenizer.cfg.image.size;
  const K = tokenizer.cfg.K;
  const specs = CATEGORIES.flatMap((cat) => Array.from({ length: perCategory }, (_, i) => promptOf('heldout', cat, i)));
  const codes = await tokenizeScenes(tokenizer, specs.map((s, i) => sceneForPrompt(s, (HELD_OUT_SEED + i) >>> 0, size)));
  const logp = await ar.imageTokenLogProbs(specs.map((s) => ar.vocab.encode(promptText(s))), codes);
  const perPosition = Array.from({ length: K }, (_, k) => {
    let sum = 0;
    for (let i = 0; i < specs.length; i++) sum -= logp[i * K + k];
    return sum / specs.length;
  });
  return { perPosition, mean: perPosition.reduce((a, b) => a + b, 0) / K, sequences: specs.length };
}
