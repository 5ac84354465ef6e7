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
import type { ArModel } from './ar-model.ts';
import { relationStatements } from './text.ts';

/** How relation questions are answered: by comparing likelihoods (default) or by decoding yes/no. */
export const RELATION_METHODS = ['likelihood', 'decode'] as const;
export type RelationMethod = (typeof RELATION_METHODS)[number];

/** One question about one image: `image` indexes the codes; `words` is what the model reads after [EOV] (default: the question's word ids). */
export type Asked = { image: number; question: string; words?: number[] };

/**
 * The answers to questions about images (codes: n × K, encoder order), one word or a caption
 * each. Decoded questions are batched by length (rows of one batch decode in lockstep).
 */
export async function answerQuestions(ar: ArModel, codes: Int32Array, asked: Asked[], o: { relations?: RelationMethod; maxWords?: number } = {}): Promise<string[]> {
  const K = ar.tokenizer.K;
  const imageOf = (i: number) => codes.subarray(i * K, (i + 1) * K);
  const out = new Array<string>(asked.length);
  const byLikelihood: { i: number; yes: string; no: string }[] = [];
  const byLength = new Map<number, { i: number; words: number[] }[]>();
  const likelihood = (o.relations ?? 'likelihood') === 'likelihood';
  asked.forEach((a, i) => {
    const st = likelihood ? relationStatements(a.question) : null;
    if (st) return void byLikelihood.push({ i, ...st });
    const words = a.words ?? ar.vocab.encode(a.question, 'question');
    byLength.set(words.length, [...(byLength.get(words.length) ?? []), { i, words }]);
  });
  for (const group of byLength.values()) {
    for (let g = 0; g < group.length; g += 32) {
      const part = group.slice(g, g + 32);
      const c = new Int32Array(part.length * K);
      part.forEach((p, j) => c.set(imageOf(asked[p.i].image), j * K));
      const got = await ar.answerEach(c, part.map((p) => p.words), o.maxWords ?? 3);
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
