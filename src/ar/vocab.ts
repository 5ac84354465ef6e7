// One vocabulary for text and images (issue #18, item 4; the paper extends Llama3's vocabulary
// by the Selftok visual words, §5.1): the words of the scene prompts, captions and questions,
// five special tokens, then the C visual words, visual word c at id `visualBase + c`.
import { UserError } from '../util/errors.ts';
import { COLOURS, COUNT_WORDS, SHAPES } from './scenes.ts';

export const SPECIALS = ['[PAD]', '[BOS]', '[EOS]', '[BOV]', '[EOV]'] as const;
export type Special = (typeof SPECIALS)[number];

/**
 * Every word the scene grammar, the captions and the questions use, in a fixed order (the ids
 * are part of a trained model: append, never reorder).
 */
export const WORDS: readonly string[] = [
  'a', 'an', 'and', ...COUNT_WORDS, 'zero', 'one',
  ...COLOURS,
  ...SHAPES, ...SHAPES.map((s) => `${s}s`),
  'left', 'right', 'of', 'above', 'below',
  'how', 'many', 'what', 'colour', 'is', 'the', 'in', 'image', '?', 'yes', 'no',
  // `where is the {shape}?` (text.ts whereQuestions; models made before it have FIRST_WORDS)
  'where', 'top', 'middle', 'bottom', 'centre',
];

/** The words of the models made before `where` questions (an AR config without `words`). */
export const FIRST_WORDS = 36;

/** The first `n` words of WORDS: a model's text vocabulary (AR config `words`). */
export function modelWords(n: number = FIRST_WORDS): readonly string[] {
  return WORDS.slice(0, n);
}

export class Vocab {
  readonly words: readonly string[];
  readonly visualBase: number;
  readonly size: number;
  private readonly ids: Map<string, number>;

  constructor(readonly codebookSize: number, words: readonly string[] = WORDS) {
    this.words = [...SPECIALS, ...words];
    this.ids = new Map(this.words.map((w, i) => [w, i]));
    this.visualBase = this.words.length;
    this.size = this.visualBase + codebookSize;
  }

  special(s: Special): number {
    return this.ids.get(s)!;
  }

  /** Text → word ids: lower case, `?` split off as its own word; an unknown word is a one-line error listing the vocabulary. */
  encode(text: string, where = 'text'): number[] {
    const words = text.toLowerCase().replace(/\?/g, ' ? ').trim().split(/\s+/).filter(Boolean);
    return words.map((w) => {
      const id = this.ids.get(w);
      if (id === undefined || id < SPECIALS.length) {
        throw new UserError(`${where} "${text}": unknown word "${w}"; the vocabulary is: ${this.words.slice(SPECIALS.length).join(' ')}`);
      }
      return id;
    });
  }

  /** Word ids → text (specials and visual words are dropped; `?` joins the word before it). */
  decode(ids: ArrayLike<number>): string {
    const out: string[] = [];
    for (const id of Array.from(ids)) if (id >= SPECIALS.length && id < this.visualBase) out.push(this.words[id]);
    return out.join(' ').replace(/ \?/g, '?');
  }

  visual(code: number): number {
    return this.visualBase + code;
  }

  isVisual(id: number): boolean {
    return id >= this.visualBase && id < this.size;
  }
}
