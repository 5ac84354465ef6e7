// Token sequences of the AR model (issue #18, item 4) and their loss masks:
//   text → image   [BOS] prompt [BOV] v₁ … v_K [EOV] [EOS]      loss on v₁ … v_K
//   image only     [BOS] [BOV] v₁ … v_K [EOV] [EOS]             loss on v₁ … v_K (also the prompt-dropped text → image)
//   image → text   [BOS] [BOV] v₁ … v_K [EOV] question answer [EOS]   loss on answer [EOS]
// Visual tokens go in the model's order: 'ar' is the reversed encoder order (coarse first, as
// the official README says to feed an AR model), 'encoder' the order the encoder emits.
import type { Vocab } from './vocab.ts';

/** A sequence and the span [start, end) of its tokens that are predicted with loss. */
export type Sequence = { ids: number[]; answer: [number, number] };

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
  return { ids: [...head, ...visual, vocab.special('[EOV]'), vocab.special('[EOS]')], answer: [head.length, head.length + visual.length] };
}

/** The prefix the model continues with an answer: [BOS] [BOV] v… [EOV] question. */
export function questionPrefix(vocab: Vocab, visual: number[], question: number[]): number[] {
  return [vocab.special('[BOS]'), vocab.special('[BOV]'), ...visual, vocab.special('[EOV]'), ...question];
}

/** Image → text: a question about the image and its answer. */
export function imageToText(vocab: Vocab, visual: number[], question: number[], answer: number[]): Sequence {
  const head = questionPrefix(vocab, visual, question);
  return { ids: [...head, ...answer, vocab.special('[EOS]')], answer: [head.length, head.length + answer.length + 1] };
}

/**
 * A batch as the arrays the loss takes: ids B×T (padded with [PAD]), targets B×T (ids shifted
 * left by one) and mask B×T, 1 where the target is in the sequence's answer span.
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
    for (let t = s.answer[0]; t < s.answer[1]; t++) mask[b * T + t - 1] = 1;
  });
  return { ids, targets, mask };
}
