// Token sequences of the AR model (issue #18, item 4) and their loss masks:
//   text → image   [BOS] prompt [BOV] v₁ … v_K [EOV] [EOS]      loss on v₁ … v_K
//   image only     [BOS] [BOV] v₁ … v_K [EOV] [EOS]             loss on v₁ … v_K (also the prompt-dropped text → image)
//   image → text   [BOS] [BOV] v₁ … v_K [EOV] question answer [EOS]   loss on answer [EOS]
//   dialogue       [BOS] [BOV] v₁ … v_K [EOV] q₁ a₁ [EOS] q₂ a₂ [EOS] …  loss on every aᵢ [EOS]
//                  (several questions about one image in one row; its first turn is exactly
//                  the image → text sequence, so the model is asked at test time as before)
// Visual tokens go in the model's order: 'ar' is the reversed encoder order (coarse first, as
// the official README says to feed an AR model), 'encoder' the order the encoder emits.
import type { Vocab } from './vocab.ts';

/**
 * A sequence and the spans [start, end) of its tokens that are predicted with loss; `maps`: its
 * image's scene maps, the reading probe's target (training with train.readProbe only).
 */
export type Sequence = { ids: number[]; spans: [number, number][]; maps?: Float32Array };

/** Encoder-order codes of one image → visual word ids in the model's order. */
export function visualWords(vocab: Vocab, codes: ArrayLike<number>, order: 'ar' | 'encoder'): number[] {
  const ids = Array.from(codes, (c) => vocab.visual(c));
  return order === 'ar' ? ids.reverse() : ids;
}

/** Visual word ids in the model's order → encoder-order codes (what the tokenizer decodes). */
export function codesOf(vocab: Vocab, words: ArrayLike<number>, order: 'ar' | 'encoder'): Int32Array {
  const codes = Int32Array.from(words, (w) => w - vocab.visualBase);
  return order === 'ar' ? codes.reverse() : codes;
}

/** The prefix the model continues with visual tokens: [BOS] prompt [BOV] (prompt null: unconditional). */
export function imagePrefix(vocab: Vocab, prompt: number[] | null): number[] {
  return [vocab.special('[BOS]'), ...(prompt ?? []), vocab.special('[BOV]')];
}

/** Text → image (prompt null: the image-only / prompt-dropped sequence). */
export function textToImage(vocab: Vocab, prompt: number[] | null, visual: number[]): Sequence {
  const head = imagePrefix(vocab, prompt);
  return { ids: [...head, ...visual, vocab.special('[EOV]'), vocab.special('[EOS]')], spans: [[head.length, head.length + visual.length]] };
}

/** The prefix the model continues with an answer: [BOS] [BOV] v… [EOV] question. */
export function questionPrefix(vocab: Vocab, visual: number[], question: number[]): number[] {
  return [vocab.special('[BOS]'), vocab.special('[BOV]'), ...visual, vocab.special('[EOV]'), ...question];
}

/** Image → text: a question about the image and its answer. */
export function imageToText(vocab: Vocab, visual: number[], question: number[], answer: number[]): Sequence {
  return dialogue(vocab, visual, [{ q: question, a: answer }]);
}

/** A question–answer turn as word ids. */
export type Turn = { q: number[]; a: number[] };

/** Image → text with several turns: each answer ends with [EOS] and is predicted with loss. */
export function dialogue(vocab: Vocab, visual: number[], turns: Turn[]): Sequence {
  const eos = vocab.special('[EOS]');
  const ids = questionPrefix(vocab, visual, []);
  const spans: [number, number][] = [];
  for (const { q, a } of turns) {
    ids.push(...q);
    spans.push([ids.length, ids.length + a.length + 1]);
    ids.push(...a, eos);
  }
  return { ids, spans };
}

/** Length of a turn in tokens (question, answer, [EOS]). */
export const turnLength = (t: Turn): number => t.q.length + t.a.length + 1;

/**
 * The index of each token in its image (model order): 0..K−1 for the visual tokens after a
 * [BOV], K for every other token (model.ts adds a learned embedding of it with
 * `visualPositions`). ids: B rows of T.
 */
export function visualIndices(vocab: Vocab, ids: ArrayLike<number>, B: number, K: number): Int32Array {
  const T = ids.length / B;
  const out = new Int32Array(ids.length);
  for (let b = 0; b < B; b++) {
    let next = -1;
    for (let t = 0; t < T; t++) [out[b * T + t], next] = visualIndexStep(vocab, K, next, ids[b * T + t]);
  }
  return out;
}

/**
 * One token of `visualIndices`: `next` is the index the next visual token would take (−1 outside
 * an image). Returns the token's index (K when it has none) and the `next` after it, so a decoder
 * that sees one token at a time keeps one number per row.
 */
export function visualIndexStep(vocab: Vocab, K: number, next: number, id: number): [index: number, next: number] {
  if (id === vocab.special('[BOV]')) return [K, 0];
  if (next >= 0 && next < K && vocab.isVisual(id)) return [next, next + 1];
  return [K, -1];
}

/**
 * A batch as the arrays the loss takes: ids B×T (padded with [PAD]), targets B×T (ids shifted
 * left by one) and mask B×T, 1 where the target is in one of the sequence's answer spans.
 */
export function batchArrays(vocab: Vocab, seqs: Sequence[], T: number): { ids: Int32Array; targets: Int32Array; mask: Float32Array } {
  const B = seqs.length;
  const pad = vocab.special('[PAD]');
  const ids = new Int32Array(B * T).fill(pad);
  const targets = new Int32Array(B * T).fill(pad);
  const mask = new Float32Array(B * T);
  seqs.forEach((s, b) => {
    if (s.ids.length > T) throw new Error(`internal: sequence of ${s.ids.length} tokens exceeds maxLen ${T}`);
    s.ids.forEach((id, t) => {
      ids[b * T + t] = id;
      if (t > 0) targets[b * T + t - 1] = id;
    });
    for (const [start, end] of s.spans) for (let t = start; t < end; t++) mask[b * T + t - 1] = 1;
  });
  return { ids, targets, mask };
}
