// What the AR model says about a scene (issue #18, item 5): the canonical caption and the
// questions with one-word answers. Both are functions of the scene alone, so the training
// targets and the evaluation's right answers are the same code.
import { COLOURS, COUNT_WORDS, HELD_OUT_COMBOS, MAX_OBJECTS, SHAPES, holds, withArticle, RELATIONS, type Colour, type Relation, type Scene, type SceneObject, type Shape } from './scenes.ts';

/** The question a caption answers (captions are asked like any other question). */
export const CAPTION_QUESTION = 'what is in the image?';

const NUMBER_WORDS = ['zero', 'one', ...COUNT_WORDS] as const;

/**
 * The canonical description: objects grouped by colour and shape, groups in a fixed order
 * (shape as in SHAPES, then colour as in COLOURS), joined by `and`:
 * `two red circles and a blue square`.
 */
export function caption(scene: Scene): string {
  const groups: string[] = [];
  for (const shape of SHAPES) {
    for (const colour of COLOURS) {
      const n = scene.objects.filter((o) => o.shape === shape && o.colour === colour).length;
      if (n === 1) groups.push(withArticle(`${colour} ${shape}`));
      else if (n > 1) groups.push(`${NUMBER_WORDS[n]} ${colour} ${shape}s`);
    }
  }
  return groups.join(' and ');
}

export type QA = { question: string; answer: string; kind: 'count' | 'colour' | 'relation' | 'where' };

/** Relations are asked only when the centroids are this fraction of the image apart on the axis, either way. */
export const RELATION_MARGIN = 1 / 8;

/**
 * Every question with an unambiguous one-word answer: `how many {shape}s?` for each shape
 * (zero included), `what colour is the {shape}?` where that shape is unique, and
 * `is the {shape} {rel} the {shape}?` for two unique shapes whose centroids are clearly apart
 * on the relation's axis (yes when it holds, no when the opposite holds).
 */
export function questions(scene: Scene): QA[] {
  const out: QA[] = [];
  const only = new Map<Shape, SceneObject>();
  for (const shape of SHAPES) {
    const of = scene.objects.filter((o) => o.shape === shape);
    out.push({ question: `how many ${shape}s?`, answer: NUMBER_WORDS[of.length], kind: 'count' });
    if (of.length === 1) {
      only.set(shape, of[0]);
      out.push({ question: `what colour is the ${shape}?`, answer: of[0].colour, kind: 'colour' });
    }
  }
  const m = RELATION_MARGIN * scene.size;
  for (const [sa, a] of only) {
    for (const [sb, b] of only) {
      if (sa === sb) continue;
      for (const rel of RELATIONS) {
        const answer = holds(rel, a, b, m) ? 'yes' : holds(opposite(rel), a, b, m) ? 'no' : null;
        if (answer) out.push({ question: `is the ${sa} ${rel} the ${sb}?`, answer, kind: 'relation' });
      }
    }
  }
  return out;
}

/**
 * `where is the {shape}?` for each unique shape, answered `{row} {column}` from its centroid on a
 * 3 × 3 grid (`top left` … `bottom right`, `middle centre`); not asked when the centroid lies
 * within size/16 of a grid line, so every answer is clear. A training signal for where objects
 * are beyond yes/no (config train.where); the evaluation asks only `questions`.
 */
export function whereQuestions(scene: Scene): QA[] {
  const out: QA[] = [];
  const third = (v: number): number | null => {
    const u = (3 * v) / scene.size;
    const cell = Math.min(2, Math.max(0, Math.floor(u)));
    return Math.min(Math.abs(u - 1), Math.abs(u - 2)) < 3 / 16 ? null : cell;
  };
  for (const shape of SHAPES) {
    const of = scene.objects.filter((o) => o.shape === shape);
    if (of.length !== 1) continue;
    const row = third(of[0].cy);
    const col = third(of[0].cx);
    if (row === null || col === null) continue;
    out.push({ question: `where is the ${shape}?`, answer: `${['top', 'middle', 'bottom'][row]} ${['left', 'centre', 'right'][col]}`, kind: 'where' });
  }
  return out;
}

/**
 * The two position prompts a relation question decides between: `is the circle left of the
 * square?` → `a circle left of a square` (yes) and `a circle right of a square` (no), in the
 * position template word for word. null for any other question.
 */
export function relationStatements(question: string): { yes: string; no: string } | null {
  const m = new RegExp(`^is the (${SHAPES.join('|')}) (${RELATIONS.join('|')}) the (${SHAPES.join('|')}) ?\\?$`).exec(question.trim().replace(/\s+/g, ' '));
  if (!m || m[1] === m[3]) return null;
  const rel = m[2] as Relation;
  const say = (r: Relation) => `${withArticle(m[1])} ${r} ${withArticle(m[3])}`;
  return { yes: say(rel), no: say(opposite(rel)) };
}

function opposite(rel: Relation): Relation {
  return ({ 'left of': 'right of', 'right of': 'left of', above: 'below', below: 'above' } as const)[rel];
}

/** Does the scene hold a colour–shape combination of the composition hold-out? (kept out of training captions) */
export function showsHeldOutCombo(scene: Scene): boolean {
  return scene.objects.some((o) => HELD_OUT_COMBOS.some(([c, s]) => o.colour === c && o.shape === s));
}

/**
 * Every caption a scene can have: `caption` of each multiset of 1 to MAX_OBJECTS colour–shape
 * objects (7,314 of them), held-out combinations included. What constrained decoding chooses from.
 */
export function allCaptions(): string[] {
  const kinds = SHAPES.flatMap((shape) => COLOURS.map((colour) => ({ shape, colour })));
  const out: string[] = [];
  const walk = (from: number, chosen: { shape: Shape; colour: Colour }[]) => {
    if (chosen.length) out.push(caption({ size: 0, top: [0, 0, 0], bottom: [0, 0, 0], objects: chosen.map((k) => ({ ...k, cx: 0, cy: 0, r: 0 })) }));
    if (chosen.length === MAX_OBJECTS) return;
    for (let i = from; i < kinds.length; i++) walk(i, [...chosen, kinds[i]]);
  };
  walk(0, []);
  return out;
}

const GRID_ANSWERS = ['top', 'middle', 'bottom'].flatMap((row) => ['left', 'centre', 'right'].map((col) => `${row} ${col}`));
let captionsMemo: string[] | undefined;

/** A question form and the answers it admits (`form` names the set: one set per form). */
export type AnswerSet = { form: 'caption' | 'count' | 'colour' | 'yes/no' | 'where'; answers: readonly string[] };

/**
 * The answers a question admits, by its form (the forms of `questions`, `whereQuestions` and
 * CAPTION_QUESTION): every caption, a number word from zero to MAX_OBJECTS, a colour, yes or no,
 * a grid cell. null for any other question (answered unconstrained).
 */
export function answerSet(question: string): AnswerSet | null {
  const q = question.trim().replace(/\s+/g, ' ').replace(/ \?$/, '?');
  if (q === CAPTION_QUESTION) return { form: 'caption', answers: (captionsMemo ??= allCaptions()) };
  const shape = `(${SHAPES.join('|')})`;
  if (new RegExp(`^how many ${shape}s\\?$`).test(q)) return { form: 'count', answers: NUMBER_WORDS.slice(0, MAX_OBJECTS + 1) };
  if (new RegExp(`^what colour is the ${shape}\\?$`).test(q)) return { form: 'colour', answers: COLOURS };
  if (new RegExp(`^is the ${shape} (${RELATIONS.join('|')}) the ${shape}\\?$`).test(q)) return { form: 'yes/no', answers: ['yes', 'no'] };
  if (new RegExp(`^where is the ${shape}\\?$`).test(q)) return { form: 'where', answers: GRID_ANSWERS };
  return null;
}
