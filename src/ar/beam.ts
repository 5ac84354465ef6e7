// Constrained beam search for answers (issue #18, item 5): the answer to a question about an
// image is the most likely word sequence, under the model, among the answers the question admits
// (text.ts answerSet: every canonical caption, a number, a colour, yes/no), not the greedy word
// path. Why (docs/scenes.md, stop 38): free greedy captions go wrong in ways no scene can have —
// `a yellow triangle and a yellow triangle` for `two yellow triangles`, groups out of order,
// `two purple circles and a purple circle` — because one early word commits the rest; a beam
// over the set keeps `two …` alive beside `a …` and compares the whole captions.
//
// Scores are the model's own log-probabilities (log-softmax over its whole vocabulary, [EOS]
// included), summed over the answer: log P(answer | image, question). The set only limits which
// continuations are tried.
import type { ArModel } from './ar-model.ts';
import { questionPrefix, visualWords } from './sequences.ts';

/** A finite set of word-id sequences as a prefix tree: `end` when the path so far is an answer. */
export type AnswerTrie = { next: Map<number, AnswerTrie>; end: boolean };

export function answerTrie(answers: number[][]): AnswerTrie {
  const root: AnswerTrie = { next: new Map(), end: false };
  for (const words of answers) {
    let node = root;
    for (const w of words) {
      let child = node.next.get(w);
      if (!child) node.next.set(w, (child = { next: new Map(), end: false }));
      node = child;
    }
    node.end = true;
  }
  return root;
}

type Beam = { node: AnswerTrie; words: number[]; score: number; done: boolean };

const logSumExp = (row: Float32Array): number => {
  let max = -Infinity;
  for (const l of row) if (l > max) max = l;
  let z = 0;
  for (const l of row) z += Math.exp(l - max);
  return max + Math.log(z);
};

/**
 * For each image (codes: n × K, encoder order) and its question (word ids; all of one length, so
 * that the rows decode in lockstep), the answer in `tries[i]` with the highest log-probability
 * found by a beam of `width` (1 = greedy within the set), and that log-probability.
 */
export async function beamAnswers(ar: ArModel, codes: Int32Array, questions: number[][], tries: AnswerTrie[], width: number): Promise<{ words: number[]; logp: number }[]> {
  const K = ar.tokenizer.K;
  const v = ar.vocab;
  const V = ar.cfg.vocab;
  const n = questions.length;
  const W = Math.max(1, Math.floor(width));
  const eos = v.special('[EOS]');
  const prefixes = questions.map((q, b) => questionPrefix(v, visualWords(v, codes.subarray(b * K, (b + 1) * K), ar.cfg.order), q));
  if (prefixes[0].length + 1 > ar.cfg.maxLen) throw new Error(`internal: a question of ${prefixes[0].length} tokens leaves no room in ${ar.cfg.maxLen}`);
  // rows b·W … b·W + W − 1 hold image b's beams; one beam to start (the others would repeat it)
  let beams: Beam[][] = tries.map((node) => [{ node, words: [], score: 0, done: false }]);
  const d = ar.decoder(n * W);
  try {
    let logits = await d.prefillRows(prefixes.flatMap((p) => Array.from({ length: W }, () => p)));
    for (;;) {
      const from = new Int32Array(n * W);
      const feed = new Int32Array(n * W).fill(eos);
      const room = d.pos < ar.cfg.maxLen;
      beams = beams.map((bs, b) => {
        const cands: (Beam & { row: number })[] = [];
        bs.forEach((beam, j) => {
          const row = b * W + j;
          if (beam.done) return void cands.push({ ...beam, row });
          const l = logits.subarray(row * V, (row + 1) * V);
          const logZ = logSumExp(l);
          if (beam.node.end) cands.push({ node: beam.node, words: beam.words, score: beam.score + l[eos] - logZ, done: true, row });
          // without room for another word, an unfinished answer cannot grow (kept as it is, scored without [EOS])
          if (!room) return void cands.push({ ...beam, done: true, row });
          for (const [w, node] of beam.node.next) cands.push({ node, words: [...beam.words, w], score: beam.score + l[w] - logZ, done: false, row });
        });
        cands.sort((a, c) => c.score - a.score);
        const kept = cands.slice(0, W);
        kept.forEach((c, j) => {
          from[b * W + j] = c.row;
          if (!c.done) feed[b * W + j] = c.words[c.words.length - 1];
        });
        for (let j = kept.length; j < W; j++) from[b * W + j] = b * W;
        // scores only fall as words are added: once the best is finished nothing can pass it
        return kept[0].done ? kept.filter((c) => c.done) : kept;
      });
      if (beams.every((bs) => bs.every((c) => c.done))) break;
      d.reorder(from);
      logits = await d.feed(feed);
    }
    return beams.map((bs) => ({ words: bs[0].words, logp: bs[0].score }));
  } finally {
    d.dispose();
  }
}
