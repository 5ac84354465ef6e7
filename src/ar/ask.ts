// Answering questions about images with the AR model (issue #18).
//
// Most questions are answered as the model was trained to: greedy words after the question
// (`[BOS] [BOV] v… [EOV] question` → answer). A relation question (`is the {shape} {rel} the
// {shape}?`) is answered by default through the same model's text → image side instead: yes when
// the image's tokens are more likely under the statement (`a circle left of a square`) than under
// its opposite (`a circle right of a square`), log P(image | text) from one teacher-forced forward
// each: Bayes' rule with equal priors on the two statements, no extra module or training. Why
// (docs/scenes.md, stop 36): every model trained here answers decoded relation questions at
// chance (0.49–0.51: the yes/no answer does not depend on the image), while it places shapes by
// relation when generating; its likelihoods answer 0.92 of the held-out relation questions.
//
// Decoded answers are chosen by default among the answers the question admits (text.ts
// answerSet), by a beam over them (beam.ts): the most likely caption rather than the greedy word
// path. `beam: 0` gives the free greedy words, as the models were evaluated up to stop 37.
import type { ArModel } from './ar-model.ts';
import type { Vocab } from './vocab.ts';
import { answerTrie, beamAnswers, type AnswerTrie } from './beam.ts';
import { CAPTION_QUESTION, answerSet, relationStatements, type AnswerSet } from './text.ts';

/** How relation questions are answered: by comparing likelihoods (default) or by decoding yes/no. */
export const RELATION_METHODS = ['likelihood', 'decode'] as const;
export type RelationMethod = (typeof RELATION_METHODS)[number];

/** The default beam width (docs/scenes.md, stop 38: width 1, 2, 4, 8 measured). */
export const DEFAULT_BEAM = 4;

/**
 * `beam`: decoded answers are the most likely within the question's answer set by a beam of this
 * width (default DEFAULT_BEAM); 0 = free greedy words (at most `maxWords`).
 */
export type AskOptions = { relations?: RelationMethod; beam?: number; maxWords?: number };

const tries = new WeakMap<Vocab, Map<AnswerSet['form'], AnswerTrie>>();
/** The prefix tree of a question form's answers in a vocabulary's word ids (built once per form). */
function trieFor(vocab: Vocab, set: AnswerSet): AnswerTrie {
  let byForm = tries.get(vocab);
  if (!byForm) tries.set(vocab, (byForm = new Map()));
  let t = byForm.get(set.form);
  if (!t) byForm.set(set.form, (t = answerTrie(set.answers.map((a) => vocab.encode(a, 'answer')))));
  return t;
}

/** One question about one image: `image` indexes the codes; `words` is what the model reads after [EOV] (default: the question's word ids). */
export type Asked = { image: number; question: string; words?: number[] };

/**
 * The answers to questions about images (codes: n × K, encoder order), one word or a caption
 * each. Decoded questions are batched by length (rows of one batch decode in lockstep).
 */
export async function answerQuestions(ar: ArModel, codes: Int32Array, asked: Asked[], o: AskOptions = {}): Promise<string[]> {
  const K = ar.tokenizer.K;
  const imageOf = (i: number) => codes.subarray(i * K, (i + 1) * K);
  const out = new Array<string>(asked.length);
  const byLikelihood: { i: number; yes: string; no: string }[] = [];
  // decoded questions by (length, constrained or not): rows of one batch decode in lockstep
  const groups = new Map<string, { i: number; words: number[]; trie: AnswerTrie | null }[]>();
  const likelihood = (o.relations ?? 'likelihood') === 'likelihood';
  const width = o.beam ?? DEFAULT_BEAM;
  asked.forEach((a, i) => {
    const st = likelihood ? relationStatements(a.question) : null;
    if (st) return void byLikelihood.push({ i, ...st });
    const words = a.words ?? ar.vocab.encode(a.question, 'question');
    const set = width > 0 ? answerSet(a.question) : null;
    const trie = set ? trieFor(ar.vocab, set) : null;
    const key = `${words.length} ${trie ? 'set' : 'free'}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push({ i, words, trie });
  });
  for (const group of groups.values()) {
    // a beam decodes width rows per question
    const per = group[0].trie ? Math.max(1, Math.floor(32 / width)) : 32;
    for (let g = 0; g < group.length; g += per) {
      const part = group.slice(g, g + per);
      const c = new Int32Array(part.length * K);
      part.forEach((p, j) => c.set(imageOf(asked[p.i].image), j * K));
      const got = part[0].trie
        ? (await beamAnswers(ar, c, part.map((p) => p.words), part.map((p) => p.trie!), width)).map((r) => ar.vocab.decode(r.words))
        : await ar.answerEach(c, part.map((p) => p.words), o.maxWords ?? 20);
      part.forEach((p, j) => (out[p.i] = got[j]));
    }
  }
  if (byLikelihood.length) {
    // rows: each question's image under its statement, then under the opposite
    const n = byLikelihood.length;
    const c = new Int32Array(2 * n * K);
    byLikelihood.forEach((r, j) => {
      c.set(imageOf(asked[r.i].image), j * K);
      c.set(imageOf(asked[r.i].image), (n + j) * K);
    });
    const prompts = [...byLikelihood.map((r) => ar.vocab.encode(r.yes)), ...byLikelihood.map((r) => ar.vocab.encode(r.no))];
    const logp = await ar.imageTokenLogProbs(prompts, c);
    const total = (row: number) => logp.subarray(row * K, (row + 1) * K).reduce((a, b) => a + b, 0);
    byLikelihood.forEach((r, j) => (out[r.i] = total(j) > total(n + j) ? 'yes' : 'no'));
  }
  return out;
}

/** The caption of each of n images (codes: n × K, encoder order): `what is in the image?` asked of each. */
export async function captionImages(ar: ArModel, codes: Int32Array, n: number, o: AskOptions = {}): Promise<string[]> {
  return answerQuestions(ar, codes, Array.from({ length: n }, (_, image) => ({ image, question: CAPTION_QUESTION })), o);
}
