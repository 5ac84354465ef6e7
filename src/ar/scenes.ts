// Captioned procedural scenes (issue #18): a low-saturation background and 1–4 non-overlapping
// objects, each a shape in a palette colour, with prompts in GenEval's six categories.
// Everything is deterministic by seed; training and held-out scenes come from disjoint seed
// ranges, and held-out prompts from a disjoint set of prompt texts (see promptSplit; the
// categories with only 3 and 6 texts share them and hold out scenes).
import { Rng } from '../util/rng.ts';
import { UserError } from '../util/errors.ts';

export const PALETTE = {
  red: [215, 40, 40],
  green: [40, 170, 70],
  blue: [40, 90, 215],
  yellow: [235, 200, 35],
  purple: [140, 60, 180],
  orange: [240, 130, 30],
} as const;
export type Colour = keyof typeof PALETTE;
export const COLOURS = Object.keys(PALETTE) as Colour[];
export const SHAPES = ['circle', 'square', 'triangle'] as const;
/** Channels of sceneMaps: the shapes, then the colours. */
export const SCENE_MAP_CHANNELS = SHAPES.length + COLOURS.length;
export type Shape = (typeof SHAPES)[number];
export const RELATIONS = ['left of', 'right of', 'above', 'below'] as const;
export type Relation = (typeof RELATIONS)[number];
export const COUNT_WORDS = ['two', 'three', 'four'] as const;
export const CATEGORIES = ['single_object', 'colors', 'two_object', 'counting', 'position', 'color_attr'] as const;
export type Category = (typeof CATEGORIES)[number];

/**
 * Colour–shape combinations that no training prompt names (they still appear, unnamed, in
 * training images): the composition hold-out of the benchmark.
 */
export const HELD_OUT_COMBOS: readonly [Colour, Shape][] = [
  ['blue', 'triangle'],
  ['yellow', 'circle'],
  ['purple', 'square'],
];

/** One object: its centre and half-size r in pixels (circle radius; square half-side; triangle circumradius). */
export type SceneObject = { shape: Shape; colour: Colour; cx: number; cy: number; r: number };
export type Scene = { size: number; top: [number, number, number]; bottom: [number, number, number]; objects: SceneObject[] };

/** A requirement on the objects of a scene: `count` objects of this shape (and colour, if named). */
export type Need = { shape: Shape; colour?: Colour; count: number };
/** A parsed prompt: what must be there, and for `position` where the second is relative to the first. */
export type PromptSpec = { category: Category; needs: Need[]; relation?: Relation; exact: boolean };

// ---- geometry -------------------------------------------------------------------------------

/** The radius of the circle around an object's shape: what must not overlap. */
const outerRadius = (o: Pick<SceneObject, 'shape' | 'r'>): number => (o.shape === 'square' ? o.r * Math.SQRT2 : o.r);

/** Does pixel centre (x, y) lie inside the object? The triangle points up, equilateral. */
export function inside(o: SceneObject, x: number, y: number): boolean {
  const dx = x - o.cx;
  const dy = y - o.cy;
  if (o.shape === 'circle') return dx * dx + dy * dy <= o.r * o.r;
  if (o.shape === 'square') return Math.abs(dx) <= o.r && Math.abs(dy) <= o.r;
  // equilateral triangle with circumradius r: apex at (0, −r), base at y = r/2, half-width r·√3/2
  if (dy < -o.r || dy > o.r / 2) return false;
  const halfWidth = ((dy + o.r) / (1.5 * o.r)) * ((o.r * Math.sqrt(3)) / 2);
  return Math.abs(dx) <= halfWidth;
}

/** Render a scene as HWC RGB bytes (4×4 supersampling: edges are anti-aliased). */
export function renderScene(scene: Scene): Uint8Array {
  const { size } = scene;
  const out = new Uint8Array(size * size * 3);
  const S = 4;
  for (let y = 0; y < size; y++) {
    const f = y / Math.max(1, size - 1);
    const bg = [0, 1, 2].map((c) => scene.top[c] * (1 - f) + scene.bottom[c] * f);
    for (let x = 0; x < size; x++) {
      const acc = [0, 0, 0];
      for (let sy = 0; sy < S; sy++)
        for (let sx = 0; sx < S; sx++) {
          const px = x + (sx + 0.5) / S;
          const py = y + (sy + 0.5) / S;
          let col: readonly number[] = bg;
          for (const o of scene.objects) if (inside(o, px, py)) col = PALETTE[o.colour];
          for (let c = 0; c < 3; c++) acc[c] += col[c];
        }
      for (let c = 0; c < 3; c++) out[(y * size + x) * 3 + c] = Math.round(acc[c] / (S * S));
    }
  }
  return out;
}

/**
 * The scene as maps on a size × size grid of cells (the AR model's reading probe, model.ts
 * ArTrainConfig.readProbe): for each shape of SHAPES, then each colour of COLOURS, the fraction
 * of each cell the objects of that shape (colour) cover, from 4 × 4 samples per cell; channel-
 * major, (SHAPES + COLOURS) × size × size, values in [0, 1].
 */
export function sceneMaps(scene: Scene, size: number): Float32Array {
  const cells = size * size;
  const out = new Float32Array(SCENE_MAP_CHANNELS * cells);
  const cell = scene.size / size;
  const S = 4;
  for (const o of scene.objects) {
    const sc = SHAPES.indexOf(o.shape) * cells;
    const cc = (SHAPES.length + COLOURS.indexOf(o.colour)) * cells;
    for (let gy = 0; gy < size; gy++)
      for (let gx = 0; gx < size; gx++) {
        let hit = 0;
        for (let sy = 0; sy < S; sy++) for (let sx = 0; sx < S; sx++) if (inside(o, (gx + (sx + 0.5) / S) * cell, (gy + (sy + 0.5) / S) * cell)) hit++;
        if (!hit) continue;
        out[sc + gy * size + gx] += hit / (S * S);
        out[cc + gy * size + gx] += hit / (S * S);
      }
  }
  return out;
}

/** Bytes → HWC floats in [−1, 1], the tokenizer's input. */
export function toUnitRange(rgb: Uint8Array): Float32Array {
  return Float32Array.from(rgb, (v) => v / 127.5 - 1);
}

// ---- random scenes ---------------------------------------------------------------------------

/** A light, low-saturation background: a plain colour or a soft vertical gradient. */
function background(rng: Rng): [[number, number, number], [number, number, number]] {
  const tone = (): [number, number, number] => {
    const l = 175 + rng.uniform() * 60;
    return [0, 1, 2].map(() => Math.round(Math.min(245, l + (rng.uniform() - 0.5) * 24))) as [number, number, number];
  };
  const top = tone();
  return [top, rng.uniform() < 0.5 ? top : tone()];
}

/**
 * An object's half-size r as a fraction of the image side, drawn uniformly in this range
 * (8.3–12.8 px at 64²). Smaller objects (0.08–0.14, 5–9 px) came back from the tokenizer as
 * blobs: a shape then spans one or two of the decoder's 8 × 8 patches (docs/scenes.md).
 */
export const OBJECT_SCALE: readonly [number, number] = [0.13, 0.2];

/**
 * Place objects one by one, each at a random position where it overlaps nothing (and, for a
 * relation, where it lies clearly on the named side of the first). Returns undefined when a
 * placement fails; callers draw again.
 */
function place(rng: Rng, size: number, kinds: { shape: Shape; colour: Colour }[], relation?: Relation): SceneObject[] | undefined {
  const objects: SceneObject[] = [];
  for (const [i, k] of kinds.entries()) {
    let ok = false;
    for (let attempt = 0; attempt < 200 && !ok; attempt++) {
      const r = size * (OBJECT_SCALE[0] + rng.uniform() * (OBJECT_SCALE[1] - OBJECT_SCALE[0]));
      const R = outerRadius({ shape: k.shape, r });
      const cx = R + 1 + rng.uniform() * (size - 2 * R - 2);
      const cy = R + 1 + rng.uniform() * (size - 2 * R - 2);
      const o: SceneObject = { ...k, cx, cy, r };
      if (objects.some((p) => Math.hypot(p.cx - cx, p.cy - cy) < outerRadius(p) + R + 2)) continue;
      if (relation && i === 1 && !holds(relation, objects[0], o, size / 4)) continue;
      objects.push(o);
      ok = true;
    }
    if (!ok) return undefined;
  }
  return objects;
}

/**
 * `a` is `rel` `b` (e.g. a left of b), with centroids at least `margin` apart on that axis.
 * Image y grows downwards.
 */
export function holds(rel: Relation, a: { cx: number; cy: number }, b: { cx: number; cy: number }, margin: number): boolean {
  if (rel === 'left of') return b.cx - a.cx >= margin;
  if (rel === 'right of') return a.cx - b.cx >= margin;
  if (rel === 'above') return b.cy - a.cy >= margin;
  return a.cy - b.cy >= margin;
}

/** The most objects a scene holds (random scenes have 1 to this many; prompts name at most this many). */
export const MAX_OBJECTS = 4;

/** A random scene: 1–4 objects, random shapes and colours (the tokenizer's training data). */
export function randomScene(seed: number, size: number): Scene {
  const rng = new Rng(seed);
  const [top, bottom] = background(rng);
  for (;;) {
    const n = rng.int(1, MAX_OBJECTS + 1);
    const kinds = Array.from({ length: n }, () => ({ shape: rng.pick(SHAPES), colour: rng.pick(COLOURS) }));
    const objects = place(rng, size, kinds);
    if (objects) return { size, top, bottom, objects };
  }
}

/** A scene that satisfies a prompt: exactly the named objects, unnamed colours drawn at random. */
export function sceneForPrompt(spec: PromptSpec, seed: number, size: number): Scene {
  const rng = new Rng(seed);
  const [top, bottom] = background(rng);
  for (;;) {
    const kinds: { shape: Shape; colour: Colour }[] = [];
    for (const need of spec.needs) for (let i = 0; i < need.count; i++) kinds.push({ shape: need.shape, colour: need.colour ?? rng.pick(COLOURS) });
    const objects = place(rng, size, kinds, spec.relation);
    if (objects) return { size, top, bottom, objects };
  }
}

// ---- prompts ---------------------------------------------------------------------------------

const article = (word: string): string => (/^[aeiou]/.test(word) ? 'an' : 'a');
/** `orange circle` → `an orange circle`. */
export const withArticle = (words: string): string => `${article(words)} ${words}`;
const phrase = (shape: Shape, colour?: Colour): string => withArticle(colour ? `${colour} ${shape}` : shape);

/** The prompt text of a spec, word for word in the issue's templates. */
export function promptText(spec: PromptSpec): string {
  const [a, b] = spec.needs;
  switch (spec.category) {
    case 'single_object':
    case 'colors':
      return phrase(a.shape, a.colour);
    case 'two_object':
    case 'color_attr':
      return `${phrase(a.shape, a.colour)} and ${phrase(b.shape, b.colour)}`;
    case 'counting':
      return `${COUNT_WORDS[a.count - 2]} ${a.colour ? `${a.colour} ` : ''}${a.shape}s`;
    case 'position':
      return `${phrase(a.shape, a.colour)} ${spec.relation} ${phrase(b.shape, b.colour)}`;
  }
}

/** Parse a prompt of the six templates; anything else is a one-line error listing the vocabulary. */
export function parsePrompt(text: string): PromptSpec {
  const t = text.trim().toLowerCase().replace(/\s+/g, ' ');
  const C = COLOURS.join('|');
  const S = SHAPES.join('|');
  const R = RELATIONS.join('|');
  const obj = `(?:an? )(?:(${C}) )?(${S})`;
  let m: RegExpExecArray | null;
  const need = (shape: string, colour?: string, count = 1): Need => ({ shape: shape as Shape, ...(colour ? { colour: colour as Colour } : {}), count });
  const checkArticle = (): void => {
    for (const a of t.matchAll(new RegExp(`\\b(an?) ((?:${C}|${S}))\\b`, 'g'))) {
      if (a[1] !== article(a[2])) throw new UserError(`prompt "${text}": "${a[1]} ${a[2]}" should be "${article(a[2])} ${a[2]}"`);
    }
  };
  if ((m = new RegExp(`^(${COUNT_WORDS.join('|')}) (?:(${C}) )?(${S})s$`).exec(t))) {
    return { category: 'counting', needs: [need(m[3], m[2], COUNT_WORDS.indexOf(m[1] as (typeof COUNT_WORDS)[number]) + 2)], exact: true };
  }
  checkArticle();
  if ((m = new RegExp(`^${obj} (${R}) ${obj}$`).exec(t))) {
    const colours = Boolean(m[1]) === Boolean(m[4]);
    if (!colours) throw new UserError(`prompt "${text}": name the colours of both objects or of neither`);
    return { category: 'position', needs: [need(m[2], m[1]), need(m[5], m[4])], relation: m[3] as Relation, exact: false };
  }
  if ((m = new RegExp(`^${obj} and ${obj}$`).exec(t))) {
    if (Boolean(m[1]) !== Boolean(m[3])) throw new UserError(`prompt "${text}": name the colours of both objects or of neither`);
    return { category: m[1] ? 'color_attr' : 'two_object', needs: [need(m[2], m[1]), need(m[4], m[3])], exact: false };
  }
  if ((m = new RegExp(`^${obj}$`).exec(t))) return { category: m[1] ? 'colors' : 'single_object', needs: [need(m[2], m[1])], exact: false };
  throw new UserError(
    `prompt "${text}": not one of the templates (a {shape}; a {colour} {shape}; a {shape} and a {shape}; {count} [{colour}] {shape}s; a [{colour}] {shape} {rel} a [{colour}] {shape}); words: ${[...SHAPES, ...COLOURS, ...RELATIONS, ...COUNT_WORDS, 'a', 'an', 'and'].join(', ')}`,
  );
}

/** A random prompt of a category (two-object and position prompts name two different kinds). */
export function randomPrompt(category: Category, rng: Rng): PromptSpec {
  const kind = (withColour: boolean): Need => ({ shape: rng.pick(SHAPES), ...(withColour ? { colour: rng.pick(COLOURS) } : {}), count: 1 });
  const pair = (withColour: boolean): Need[] => {
    for (;;) {
      const a = kind(withColour);
      const b = kind(withColour);
      if (a.shape !== b.shape || (withColour && a.colour !== b.colour)) return [a, b];
    }
  };
  switch (category) {
    case 'single_object':
      return { category, needs: [kind(false)], exact: false };
    case 'colors':
      return { category, needs: [kind(true)], exact: false };
    case 'two_object':
      return { category, needs: pair(false), exact: false };
    case 'color_attr':
      return { category, needs: pair(true), exact: false };
    case 'counting':
      return { category, needs: [{ ...kind(rng.uniform() < 0.5), count: rng.int(2, 5) }], exact: true };
    case 'position':
      return { category, needs: pair(rng.uniform() < 0.5), relation: rng.pick(RELATIONS), exact: false };
  }
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Does the prompt name a held-out colour–shape combination? */
export const namesHeldOutCombo = (spec: PromptSpec): boolean =>
  spec.needs.some((n) => HELD_OUT_COMBOS.some(([c, s]) => n.colour === c && n.shape === s));

/**
 * Categories with too few distinct prompt texts for a text hold-out: single object has 3
 * (`a circle`, `a square`, `a triangle`), two objects 6. Holding one text out made each a
 * zero-shot test of one prompt (`a triangle`: 16 × 4 samples of a word pair never seen), which
 * the composition hold-out already measures. Their texts are in both splits and what is held
 * out is the scene, as in GenEval, whose object classes every model has seen.
 */
export const SHARED_TEXT_CATEGORIES: readonly Category[] = ['single_object', 'two_object'];

/**
 * Which split a prompt text belongs to: every prompt naming a held-out combination, and one in
 * five of the others (by a hash of the text), are held out; the rest are for training; the
 * texts of SHARED_TEXT_CATEGORIES are in both.
 */
export function promptSplit(spec: PromptSpec): 'train' | 'heldout' | 'both' {
  if (namesHeldOutCombo(spec)) return 'heldout';
  if (SHARED_TEXT_CATEGORIES.includes(spec.category)) return 'both';
  return fnv1a(promptText(spec)) % 5 === 0 ? 'heldout' : 'train';
}

/** May this prompt text be drawn for the split? */
export function inSplit(spec: PromptSpec, split: 'train' | 'heldout'): boolean {
  const s = promptSplit(spec);
  return s === split || s === 'both';
}

/** The n-th prompt of a split and category (deterministic; drawn until the split matches). */
export function promptOf(split: 'train' | 'heldout', category: Category, index: number): PromptSpec {
  const rng = new Rng((fnv1a(`${split}/${category}`) ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0);
  for (;;) {
    const spec = randomPrompt(category, rng);
    if (inSplit(spec, split)) return spec;
  }
}
