// Captioned scenes and their scorer (issue #18, items 1–2): the prompt grammar, the split, and
// the GenEval-style scorer on rendered ground truth and on scenes that do not fit the prompt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CATEGORIES,
  HELD_OUT_COMBOS,
  PALETTE,
  namesHeldOutCombo,
  parsePrompt,
  promptOf,
  promptSplit,
  SHARED_TEXT_CATEGORIES,
  promptText,
  randomScene,
  renderScene,
  sceneForPrompt,
  type Scene,
} from '../src/ar/scenes.ts';
import { detect, scorePrompt } from '../src/ar/scorer.ts';
import { openSource } from '../src/data/source.ts';
import { Rng } from '../src/util/rng.ts';
import { UserError } from '../src/util/errors.ts';

const SIZE = 64;

test('prompts follow the templates word for word, and parse back to the same spec', () => {
  const examples: [string, string][] = [
    ['a circle', 'single_object'],
    ['an orange triangle', 'colors'],
    ['a square and a triangle', 'two_object'],
    ['three circles', 'counting'],
    ['four yellow squares', 'counting'],
    ['a circle left of a square', 'position'],
    ['an orange square below a green circle', 'position'],
    ['a red circle and an orange square', 'color_attr'],
  ];
  for (const [text, category] of examples) {
    const spec = parsePrompt(text);
    assert.equal(spec.category, category, text);
    assert.equal(promptText(spec), text);
  }
  assert.deepEqual(parsePrompt('three red circles').needs, [{ shape: 'circle', colour: 'red', count: 3 }]);
  assert.equal(parsePrompt('a square above a triangle').relation, 'above');
  for (const cat of CATEGORIES) {
    for (let i = 0; i < 50; i++) {
      const spec = promptOf('train', cat, i);
      assert.equal(spec.category, cat);
      assert.deepEqual(parsePrompt(promptText(spec)), spec, promptText(spec));
    }
  }
});

test('bad prompts are one-line errors: wrong article, unknown words, half-named colours', () => {
  const bad = ['a orange circle', 'an red square', 'a hexagon', 'five circles', 'a red circle and a square', 'a circle near a square', ''];
  for (const text of bad) {
    assert.throws(() => parsePrompt(text), (e: unknown) => e instanceof UserError && !e.message.includes('\n') && e.message.includes(`"${text}"`), text);
  }
  assert.throws(() => parsePrompt('a hexagon'), /words: circle, square, triangle, red, green/);
});

test('scenes are deterministic by seed; training and held-out images differ', async () => {
  assert.deepEqual(randomScene(7, SIZE), randomScene(7, SIZE));
  assert.notDeepEqual(randomScene(7, SIZE), randomScene(8, SIZE));
  const src = await openSource('scenes', SIZE);
  const a = await src.heldOut(3);
  const b = await src.heldOut(3);
  assert.deepEqual(a.images, b.images);
  const batch = await src.trainBatch(new Rng(0), 3);
  assert.equal(batch.length, 3 * SIZE * SIZE * 3);
  for (let i = 0; i < 3; i++) assert.notDeepEqual(batch.subarray(i * SIZE * SIZE * 3, (i + 1) * SIZE * SIZE * 3), a.images[i]);
  for (let s = 0; s < 200; s++) {
    const sc = randomScene(s, SIZE);
    assert.ok(sc.objects.length >= 1 && sc.objects.length <= 4);
    // the background is light and unsaturated: no palette colour is near it
    for (const bg of [sc.top, sc.bottom]) assert.ok(Math.max(...bg) - Math.min(...bg) <= 24 && Math.min(...bg) >= 160, String(bg));
  }
});

test('the held-out colour–shape combinations are never named by a training prompt; held-out prompts are disjoint except in the few-text categories', () => {
  const train = new Set<string>();
  for (const cat of CATEGORIES) for (let i = 0; i < 300; i++) {
    const spec = promptOf('train', cat, i);
    assert.equal(namesHeldOutCombo(spec), false, promptText(spec));
    train.add(promptText(spec));
  }
  let combos = 0;
  for (const cat of CATEGORIES) for (let i = 0; i < 100; i++) {
    const spec = promptOf('heldout', cat, i);
    if (SHARED_TEXT_CATEGORIES.includes(cat)) {
      assert.equal(promptSplit(spec), 'both');
      assert.ok(train.has(promptText(spec)), promptText(spec));
      continue;
    }
    assert.equal(promptSplit(spec), 'heldout');
    assert.ok(!train.has(promptText(spec)), promptText(spec));
    if (namesHeldOutCombo(spec)) combos++;
  }
  assert.ok(combos > 50, `held-out prompts naming ${HELD_OUT_COMBOS.map((c) => c.join(' ')).join(', ')}: ${combos}`);
  // the few-text categories: every text is drawn on both sides (3 single objects, 6 ordered pairs)
  for (const [cat, n] of [['single_object', 3], ['two_object', 6]] as const) {
    for (const split of ['train', 'heldout'] as const) {
      const texts = new Set(Array.from({ length: 200 }, (_, i) => promptText(promptOf(split, cat, i))));
      assert.equal(texts.size, n, `${cat} ${split}: ${[...texts].join(', ')}`);
    }
  }
});

test('scorer on rendered ground truth: at least 0.98 in every category (held-out prompts)', () => {
  for (const cat of CATEGORIES) {
    let sum = 0;
    const N = 150;
    for (let i = 0; i < N; i++) {
      const spec = promptOf('heldout', cat, i);
      sum += scorePrompt(spec, renderScene(sceneForPrompt(spec, i, SIZE)), SIZE).score;
    }
    assert.ok(sum / N >= 0.98, `${cat}: ${sum / N}`);
  }
});

test('scorer finds each object with its colour, shape and position', () => {
  const scene: Scene = {
    size: SIZE,
    top: [210, 210, 205],
    bottom: [200, 200, 200],
    objects: [
      { shape: 'circle', colour: 'red', cx: 14, cy: 14, r: 8 },
      { shape: 'square', colour: 'blue', cx: 48, cy: 16, r: 7 },
      { shape: 'triangle', colour: 'yellow', cx: 20, cy: 46, r: 10 },
      { shape: 'triangle', colour: 'purple', cx: 48, cy: 48, r: 9 },
    ],
  };
  const found = detect(renderScene(scene), SIZE).sort((a, b) => a.cy * 100 + a.cx - (b.cy * 100 + b.cx));
  assert.deepEqual(found.map((o) => `${o.colour} ${o.shape}`), ['red circle', 'blue square', 'yellow triangle', 'purple triangle']);
  for (const [i, o] of found.entries()) {
    const truth = scene.objects[i];
    // the equilateral triangle's centroid is its circumcentre; pixels move it by a pixel or two
    assert.ok(Math.abs(o.cx - truth.cx) < 1.5 && Math.abs(o.cy - truth.cy) < 3, `${o.colour}: ${o.cx},${o.cy}`);
  }
  assert.equal(Object.keys(PALETTE).length, 6);
});

test('scorer says 0 when the scene does not fit: wrong colour, wrong count, reversed relation, missing object', () => {
  const one = (text: string, seedText: string, seed = 1) =>
    scorePrompt(parsePrompt(text), renderScene(sceneForPrompt(parsePrompt(seedText), seed, SIZE)), SIZE);
  assert.equal(one('a red circle', 'a red circle').score, 1);
  assert.equal(one('a blue circle', 'a red circle').score, 0);
  assert.equal(one('a blue circle', 'a red circle').fraction, 0.5); // the circle is there, its colour is not
  assert.equal(one('three squares', 'three squares').score, 1);
  assert.equal(one('two squares', 'three squares').score, 0);
  assert.equal(one('four squares', 'three squares').score, 0);
  assert.equal(one('a circle left of a square', 'a circle left of a square').score, 1);
  const rev = one('a circle right of a square', 'a circle left of a square');
  assert.equal(rev.score, 0);
  assert.deepEqual(rev.requirements.map((r) => r.ok), [true, true, false]);
  assert.equal(one('a circle above a square', 'a circle below a square').score, 0);
  assert.equal(one('a triangle and a circle', 'a square and a circle').score, 0);
  assert.equal(one('an orange triangle and a green square', 'an orange triangle and a green square').score, 1);
  assert.equal(one('a green triangle and an orange square', 'an orange triangle and a green square').score, 0);
});

test('tokenizer ceiling: a lossless tokenizer scores the ground truth, a blank one scores 0', async () => {
  const { tokenizerCeiling } = await import('../src/ar/ceiling.ts');
  // stand-ins for a Selftok: "tokens" carry the image itself (lossless) or nothing (blank)
  const fake = (lossless: boolean) => {
    let last = new Float32Array(0);
    return {
      cfg: { image: { size: SIZE } },
      encode: async (x: Float32Array, B: number) => ((last = x.slice()), new Int32Array(B * 32)),
      render: async () => (lossless ? last : last.map(() => 0.6)),
      decode: async () => last,
    } as unknown as import('../src/tokenizer/model.ts').Selftok;
  };
  const perfect = await tokenizerCeiling(fake(true), { perCategory: 20, decoder: 'renderer' });
  assert.deepEqual(perfect.categories, perfect.groundTruth);
  assert.ok(perfect.overall >= 0.98, String(perfect.overall));
  assert.ok(perfect.composition.prompts > 0);
  const blank = await tokenizerCeiling(fake(false), { perCategory: 20, decoder: 'renderer' });
  assert.equal(blank.overall, 0);
  assert.equal(blank.failures.length, 24);
});
