// The AR model (issue #18, items 4, 5, 9): vocabulary, sequences and their loss masks, cached
// sampling against the full forward, overfitting a few sequences, captions and questions.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { wasm, microArConfig } from './helpers.ts';
import { ArModel, sampleLogits, type TokenizerRef } from '../src/ar/ar-model.ts';
import { AR_STATE_FILE, ArTrainer } from '../src/ar/train.ts';
import { fineTuneArConfig, maskedNextTokenLoss, rope, ropeTables, validateArConfig, type ArConfig } from '../src/ar/model.ts';
import { oneHot } from '../src/nn/layers.ts';
import { batchArrays, codesOf, dialogue, imageToText, questionPrefix, textToImage, visualIndices, visualWords } from '../src/ar/sequences.ts';
import { POOL_FILE, ScenesArData } from '../src/ar/data.ts';
import { encodeSafetensors } from '../src/io/safetensors.ts';
import type { Selftok } from '../src/tokenizer/model.ts';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CAPTION_QUESTION, allCaptions, answerSet, caption, questions, relationStatements, whereQuestions } from '../src/ar/text.ts';
import { answerQuestions, captionImages } from '../src/ar/ask.ts';
import { answerTrie, beamAnswers } from '../src/ar/beam.ts';
import { nn, numpy as np, random } from '@jax-js/jax';
import { Vocab, SPECIALS, WORDS, FIRST_WORDS } from '../src/ar/vocab.ts';
import { loadArModel } from '../src/node/models.ts';
import { readSafetensors } from '../src/node/safetensors-files.ts';
import { MAX_OBJECTS, parsePrompt, randomScene, sceneMaps, type Scene } from '../src/ar/scenes.ts';
import { UserError } from '../src/util/errors.ts';
import { Rng } from '../src/util/rng.ts';
import { undoNearestUpscale } from '../src/io/pixels.ts';

before(wasm);

const TOK: TokenizerRef = { name: 'micro', fingerprint: 'f00d', K: 6, codebookSize: 16 };

function microAr(): ArConfig {
  return microArConfig({ maxLen: 24, train: { ...microArConfig().train, batch: 4, mix: { textToImage: 1, imageToText: 1, imageOnly: 0 }, pool: 8 } });
}

test('vocabMultiple: the table is padded to a multiple of it, a config whose vocab does not match is refused with one line', () => {
  const m = ArModel.create(microAr(), TOK, 0);
  const words = new Vocab(TOK.codebookSize).size;
  assert.equal(m.cfg.vocab, Math.ceil(words / 8) * 8);
  assert.ok(m.cfg.vocab > words, 'this vocabulary needs padding, so that the tests exercise it');
  assert.deepEqual(m.params.embed.shape, [m.cfg.vocab, m.cfg.dim]);
  const plain = ArModel.create({ ...microAr(), vocabMultiple: undefined }, TOK, 0);
  assert.equal(plain.cfg.vocab, words);
  // a model folder whose config says 69 rows where the multiple of 8 makes 72
  const ck = { close() {} } as unknown as Parameters<typeof ArModel.fromCheckpoint>[2];
  assert.throws(
    () => ArModel.fromCheckpoint({ ar: { ...microAr(), words: WORDS.length, vocab: words }, tokenizer: TOK }, 'm/config.json', ck),
    (e: unknown) => e instanceof UserError && e.message === `AR config micro-ar: vocab ${words}, but the words and 16 visual words make ${words} (${m.cfg.vocab} rounded up to a multiple of 8)`,
  );
  m.dispose();
  plain.dispose();
});

test('vocabulary: words and visual words share one id space; an unknown word is a one-line error that lists the words', () => {
  const v = new Vocab(16);
  assert.equal(v.size, v.visualBase + 16);
  assert.deepEqual(v.encode('two red circles').map((i) => v.words[i]), ['two', 'red', 'circles']);
  assert.equal(v.decode(v.encode('how many squares?')), 'how many squares?');
  assert.equal(v.words[v.encode('what colour is the circle?').at(-1)!], '?');
  assert.equal(v.visual(3), v.visualBase + 3);
  assert.ok(v.isVisual(v.visual(15)) && !v.isVisual(v.visual(16)) && !v.isVisual(v.encode('a')[0]));
  assert.throws(
    () => v.encode('a pink circle', 'prompt'),
    (e: unknown) => e instanceof UserError && /prompt "a pink circle": unknown word "pink"; the vocabulary is: .*circle/.test(e.message) && !e.message.includes('\n'),
  );
  // specials are not words a user can type
  assert.throws(() => v.encode('[BOS] a circle'), UserError);
  assert.equal(SPECIALS.length, 5);
});

test('sequences: visual tokens in reversed encoder order; the loss mask covers exactly the answer', () => {
  const v = new Vocab(16);
  const codes = Int32Array.from([1, 2, 3, 4, 5, 6]);
  const words = visualWords(v, codes, 'ar');
  assert.deepEqual(words, [6, 5, 4, 3, 2, 1].map((c) => v.visual(c)));
  assert.deepEqual(Array.from(codesOf(v, words, 'ar')), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(visualWords(v, codes, 'encoder'), [1, 2, 3, 4, 5, 6].map((c) => v.visual(c)));

  const prompt = v.encode('a red circle');
  const t2i = textToImage(v, prompt, words);
  const name = (id: number) => (v.isVisual(id) ? 'v' : v.words[id]);
  assert.deepEqual(t2i.ids.map(name), ['[BOS]', 'a', 'red', 'circle', '[BOV]', 'v', 'v', 'v', 'v', 'v', 'v', '[EOV]', '[EOS]']);
  const i2t = imageToText(v, words, v.encode('how many circles?'), v.encode('one'));
  assert.deepEqual(i2t.ids.map(name), ['[BOS]', '[BOV]', 'v', 'v', 'v', 'v', 'v', 'v', '[EOV]', 'how', 'many', 'circles', '?', 'one', '[EOS]']);

  const T = 16;
  const a = batchArrays(v, [t2i, i2t], T);
  // row 0: the targets under the mask are the six visual tokens
  const masked = (row: number) => Array.from({ length: T }, (_, t) => t).filter((t) => a.mask[row * T + t] === 1).map((t) => a.targets[row * T + t]);
  assert.deepEqual(masked(0), words);
  // row 1: the answer and [EOS], nothing of the image or the question
  assert.deepEqual(masked(1).map(name), ['one', '[EOS]']);
  // each visual token's index in its image, K (6) elsewhere
  assert.deepEqual(Array.from(visualIndices(v, [...t2i.ids, ...i2t.ids.slice(0, t2i.ids.length)], 2, 6)), [
    ...[6, 6, 6, 6, 6, 0, 1, 2, 3, 4, 5, 6, 6],
    ...[6, 6, 0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6],
  ]);
  // targets are the ids shifted by one; padding is [PAD]
  assert.equal(a.targets[0], a.ids[1]);
  assert.equal(a.ids[T - 1], v.special('[PAD]'));
});

test('dialogue: several turns about one image; its first turn is the image → text sequence; the mask covers every answer and its [EOS]', () => {
  const v = new Vocab(16);
  const words = visualWords(v, Int32Array.from([1, 2, 3, 4, 5, 6]), 'ar');
  const name = (id: number) => (v.isVisual(id) ? 'v' : v.words[id]);
  const turns = [
    { q: v.encode('how many circles?'), a: v.encode('one') },
    { q: v.encode(CAPTION_QUESTION), a: v.encode('a red circle') },
  ];
  const d = dialogue(v, words, turns);
  const one = imageToText(v, words, turns[0].q, turns[0].a);
  assert.deepEqual(d.ids.slice(0, one.ids.length), one.ids);
  assert.deepEqual(d.ids.slice(one.ids.length).map(name), ['what', 'is', 'in', 'the', 'image', '?', 'a', 'red', 'circle', '[EOS]']);
  const T = 32;
  const a = batchArrays(v, [d], T);
  const masked = Array.from({ length: T }, (_, t) => t).filter((t) => a.mask[t] === 1).map((t) => name(a.targets[t]));
  assert.deepEqual(masked, ['one', '[EOS]', 'a', 'red', 'circle', '[EOS]']);
});

/** A training pool of `pool` random-code scenes (K 6, 16 codes) for a stand-in tokenizer, opened as ScenesArData. */
async function randomPool(pool: number, v: Vocab): Promise<ScenesArData> {
  const K = TOK.K;
  const dir = mkdtempSync(join(tmpdir(), 'selftok-pool-'));
  const rng = new Rng(1);
  const codes = () => Int32Array.from({ length: pool * K }, () => rng.int(0, TOK.codebookSize));
  const tensors = new Map([
    ['promptCodes', { dtype: 'I32' as const, shape: [pool, K], data: codes() }],
    ['sceneCodes', { dtype: 'I32' as const, shape: [pool, K], data: codes() }],
    ['seeds', { dtype: 'I32' as const, shape: [pool], data: Int32Array.from({ length: pool }, (_, i) => 2_000_000 + i) }],
  ]);
  writeFileSync(join(dir, POOL_FILE), encodeSafetensors(tensors, { format: 'selftok-ar-pool', tokenizer: TOK.fingerprint }));
  const tokenizer = { cfg: { image: { size: 64 }, K }, tokenFingerprint: async () => TOK.fingerprint } as unknown as Selftok;
  return ScenesArData.open(dir, tokenizer, v, pool);
}

test('training rows with train.turns: image → text rows hold several questions of their scene within maxLen, the caption only first; turns 1 keeps one', async () => {
  const v = new Vocab(16);
  const data = await randomPool(16, v);
  const base = microArConfig();
  const cfg = (turns: number): ArConfig => ({ ...base, maxLen: 40, train: { ...base.train, mix: { textToImage: 0, imageToText: 1, imageOnly: 0 }, turns } });
  const caption = v.encode(CAPTION_QUESTION);
  const startsWith = (ids: number[], at: number, w: number[]) => w.every((x, i) => ids[at + i] === x);
  let several = 0;
  for (const seq of data.batch(new Rng(2), 64, cfg(8))) {
    assert.ok(seq.ids.length <= 40, `row of ${seq.ids.length} tokens`);
    assert.ok(seq.spans.length >= 1 && seq.spans.length <= 8);
    if (seq.spans.length > 1) several++;
    // turns after the first never ask for the caption
    for (const [, end] of seq.spans.slice(0, -1)) assert.ok(!startsWith(seq.ids, end, caption));
    for (const [, end] of seq.spans) assert.equal(seq.ids[end - 1], v.special('[EOS]'));
  }
  assert.ok(several > 32, `${several} of 64 rows hold more than one turn`);
  for (const seq of data.batch(new Rng(2), 64, cfg(1))) assert.equal(seq.spans.length, 1);
});

/** A blue square, two red circles and an orange triangle at these centroids, on a plain grey 64 × 64. */
function fourObjects(square: [number, number], circles: [number, number][], triangle: [number, number]): Scene {
  const at = ([cx, cy]: [number, number]) => ({ cx, cy, r: 6 });
  return {
    size: 64,
    top: [200, 200, 200],
    bottom: [200, 200, 200],
    objects: [
      { shape: 'square', colour: 'blue', ...at(square) },
      ...circles.map((c) => ({ shape: 'circle' as const, colour: 'red' as const, ...at(c) })),
      { shape: 'triangle', colour: 'orange', ...at(triangle) },
    ],
  };
}

test('captions and questions: canonical order, unique-shape colour questions, clear relations only', () => {
  const scene = fourObjects([50, 20], [[10, 20], [30, 50]], [12, 45]);
  assert.equal(caption(scene), 'two red circles and a blue square and an orange triangle');
  const qa = new Map(questions(scene).map((q) => [q.question, q.answer]));
  assert.equal(qa.get('how many circles?'), 'two');
  assert.equal(qa.get('how many squares?'), 'one');
  assert.equal(qa.get('what colour is the square?'), 'blue');
  assert.equal(qa.get('what colour is the triangle?'), 'orange');
  assert.equal(qa.has('what colour is the circle?'), false, 'two circles: the colour question would be ambiguous');
  assert.equal(qa.get('is the triangle left of the square?'), 'yes');
  assert.equal(qa.get('is the square left of the triangle?'), 'no');
  assert.equal(qa.get('is the square above the triangle?'), 'yes');
  // relations never name a shape that appears twice
  assert.ok([...qa.keys()].every((q) => !/^is the circle|the circle\?$/.test(q)));
  const v = new Vocab(16);
  for (const [q, a] of qa) assert.doesNotThrow(() => v.encode(`${q} ${a}`));
  assert.doesNotThrow(() => v.encode(`${CAPTION_QUESTION} ${caption(scene)}`));
});

test('where questions (train.where): a 3 × 3 grid answer for each unique shape, none near a grid line; a model without `words` keeps the first 36 words', async () => {
  const scene = fourObjects([50, 10], [[10, 20], [30, 50]], [32, 32]);
  assert.deepEqual(whereQuestions(scene).map((q) => `${q.question} ${q.answer}`), ['where is the square? top right', 'where is the triangle? middle centre']);
  // 22 px is 0.03 of a third from the line at 21.3: not asked
  scene.objects[0].cx = 22;
  assert.deepEqual(whereQuestions(scene).map((q) => q.question), ['where is the triangle?']);
  // a new model's vocabulary has every word; one made before where questions (no `words`) keeps its 36, and its ids
  const fresh = ArModel.create(microAr(), TOK, 0);
  assert.equal(fresh.cfg.words, WORDS.length);
  assert.doesNotThrow(() => fresh.vocab.encode('where is the circle?'));
  // (the shipped models/scenes-ar has its `words` since stop 34: a copy of it without them stands for an older one)
  const olderDir = mkdtempSync(join(tmpdir(), 'selftok-ar-old-'));
  const shippedCfg = JSON.parse(readFileSync('models/scenes-ar/config.json', 'utf8'));
  delete shippedCfg.ar.words;
  shippedCfg.tokenizer.path = resolve('models/scenes');
  writeFileSync(join(olderDir, 'config.json'), JSON.stringify(shippedCfg));
  copyFileSync('models/scenes-ar/model.safetensors', join(olderDir, 'model.safetensors'));
  const old = loadArModel(olderDir);
  assert.equal(old.cfg.words, undefined);
  assert.equal(old.vocab.visualBase, SPECIALS.length + FIRST_WORDS);
  assert.throws(() => old.vocab.encode('where is the circle?', 'question'), /question "where is the circle\?": unknown word "where"/);
  // a training run begun before where questions (no `words` in its checkpoint) resumes with its own ids
  const dir = mkdtempSync(join(tmpdir(), 'selftok-ar-'));
  const early = ArTrainer.create({ ...microAr(), words: FIRST_WORDS }, TOK, 1);
  await early.checkpoint(dir);
  const state = readSafetensors(join(dir, AR_STATE_FILE));
  const cfgOld = JSON.parse(state.metadata.config);
  delete cfgOld.words;
  writeFileSync(join(dir, AR_STATE_FILE), encodeSafetensors(state.tensors, { ...state.metadata, config: JSON.stringify(cfgOld) }));
  const resumed = ArTrainer.resume(dir);
  assert.equal(resumed.model.vocab.visualBase, early.model.vocab.visualBase);
  assert.deepEqual(await resumed.model.params.embed.ref.data(), await early.model.params.embed.ref.data());
  early.dispose();
  resumed.dispose();
  assert.throws(() => validateArConfig({ ...microAr(), words: FIRST_WORDS, train: { ...microAr().train, where: true } }, 'c.json'), /c\.json: train\.where needs the words of where questions/);
  fresh.dispose();
  old.dispose();
});

for (const visualPositions of [false, true]) {
  test(`cached sampling${visualPositions ? ', with visual positions' : ''}: the step-by-step logits with the key/value cache, and after a one-pass prefill, equal the full causal forward`, async () => {
    const model = ArModel.create({ ...microAr(), visualPositions }, TOK, 3);
    assert.equal(model.params.visualPos !== undefined, visualPositions);
    const v = model.vocab;
    // a row of logits: every id of the table, its padding included (ArConfig.vocabMultiple)
    const V = model.cfg.vocab;
    const rng = new Rng(5);
    const B = 2;
    const T = 12;
    // real sequences (a prompt then an image; an image then a question), so that images start at different offsets
    const img = () => visualWords(v, Int32Array.from({ length: TOK.K }, () => rng.int(0, TOK.codebookSize)), 'ar');
    const rows = [textToImage(v, v.encode('a red circle'), img()).ids, imageToText(v, img(), v.encode('how many circles?'), v.encode('one')).ids];
    const ids = Int32Array.from(rows.flatMap((r) => r.slice(0, T)));
    const full = await model.logits(ids, B);
    const d = model.decoder(B);
    for (let t = 0; t < T; t++) {
      const step = await d.feed(Int32Array.from({ length: B }, (_, b) => ids[b * T + t]));
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < V; i++) {
          const want = full[(b * T + t) * V + i];
          assert.ok(Math.abs(step[b * V + i] - want) < 1e-4, `row ${b} position ${t} logit ${i}: ${step[b * V + i]} vs ${want}`);
        }
      }
    }
    d.dispose();
    // a prefill of the first 6 positions in one pass (row 0 stops inside its image), then the rest one by one: the same logits
    const d2 = model.decoder(B);
    const check = (got: Float32Array, t: number) => {
      for (let b = 0; b < B; b++) for (let i = 0; i < V; i++) assert.ok(Math.abs(got[b * V + i] - full[(b * T + t) * V + i]) < 1e-4, `prefill: row ${b} position ${t}`);
    };
    check(await d2.prefillRows([Array.from(ids.subarray(0, 6)), Array.from(ids.subarray(T, T + 6))]), 5);
    for (let t = 6; t < T; t++) check(await d2.feed(Int32Array.from({ length: B }, (_, b) => ids[b * T + t])), t);
    d2.dispose();
    // causality: changing a later token leaves earlier logits unchanged
    const ids2 = ids.slice();
    ids2[T - 1] = (ids2[T - 1] + 1) % v.size;
    const full2 = await model.logits(ids2, B);
    for (let i = 0; i < (T - 1) * V; i++) assert.ok(Math.abs(full2[i] - full[i]) < 1e-5);
    model.dispose();
  });
}

test('sampleLogits: temperature 0 is argmax, top-k 1 is argmax at any temperature, top-k keeps the k largest', () => {
  const l = Float32Array.from([0.1, 2, -1, 1.9, 0]);
  const rng = new Rng(1);
  assert.equal(sampleLogits(l, 0, 0, rng), 1);
  for (let i = 0; i < 50; i++) assert.equal(sampleLogits(l, 5, 1, rng), 1);
  const seen = new Set<number>();
  for (let i = 0; i < 400; i++) seen.add(sampleLogits(l, 1, 2, rng));
  assert.deepEqual([...seen].sort(), [1, 3]);
});

/** Train `steps` steps on the same sequences; the first and last losses. */
async function trainLosses(trainer: ArTrainer, seqs: Parameters<ArTrainer['trainStep']>[0], steps: number): Promise<{ first: number; last: number }> {
  let first = 0;
  let last = 0;
  for (let s = 0; s < steps; s++) {
    const { loss } = await trainer.trainStep(seqs);
    if (s === 0) first = loss;
    last = loss;
  }
  return { first, last };
}

test('overfit: the AR model learns four sequences (an image from a prompt, an answer from an image), and samples them back', async () => {
  const trainer = ArTrainer.create(microAr(), TOK, 1);
  const v = trainer.model.vocab;
  const imgA = [3, 1, 4, 1, 5, 9];
  const imgB = [2, 7, 1, 8, 2, 8];
  const seqs = [
    textToImage(v, v.encode('a red circle'), visualWords(v, imgA, 'ar')),
    textToImage(v, v.encode('two blue squares'), visualWords(v, imgB, 'ar')),
    imageToText(v, visualWords(v, imgA, 'ar'), v.encode(CAPTION_QUESTION), v.encode('a red circle')),
    imageToText(v, visualWords(v, imgB, 'ar'), v.encode(CAPTION_QUESTION), v.encode('two blue squares')),
  ];
  const { first, last } = await trainLosses(trainer, seqs, 150);
  assert.ok(first > 2, `initial loss ${first} should be near ln(${v.size})`);
  assert.ok(last < 0.05, `loss after 150 steps ${last}`);
  const m = trainer.model;
  const gen = await m.generateImages(v.encode('two blue squares'), 2, { temperature: 1, topK: 0, cfg: 1, seed: 4 });
  assert.deepEqual(Array.from(gen), [...imgB, ...imgB]);
  const guided = await m.generateImages(v.encode('a red circle'), 1, { temperature: 1, topK: 0, cfg: 3, seed: 4 });
  assert.deepEqual(Array.from(guided), imgA);
  const answers = await m.answer(Int32Array.from([...imgA, ...imgB]), 2, v.encode(CAPTION_QUESTION));
  assert.deepEqual(answers, ['a red circle', 'two blue squares']);
  trainer.dispose();
});

test('visualInit codebook: visual rows are the code vectors through one random projection (equal codes equal rows, opposite codes opposite rows); text rows untouched', () => {
  const d = 4;
  const codebook = new Float32Array(TOK.codebookSize * d);
  const rng = new Rng(3);
  for (let c = 0; c < TOK.codebookSize; c++) {
    const v = Array.from({ length: d }, () => rng.normal());
    const n = Math.hypot(...v);
    v.forEach((x, j) => (codebook[c * d + j] = x / n));
  }
  codebook.set(codebook.subarray(0, d), 1 * d); // code 1 = code 0
  codebook.set(codebook.subarray(0, d).map((x) => -x), 2 * d); // code 2 = −code 0
  const m = ArModel.create({ ...microAr(), visualInit: 'codebook' }, TOK, 0);
  const D = m.cfg.dim;
  const before = m.params.embed.ref.dataSync() as Float32Array;
  m.seedVisualEmbeddings({ codebookSize: TOK.codebookSize, codebook: { codebook }, cfg: { quantizer: { dim: d } } } as unknown as Selftok, 5);
  const after = m.params.embed.ref.dataSync() as Float32Array;
  const base = m.vocab.visualBase;
  const row = (c: number) => Array.from(after.subarray((base + c) * D, (base + c + 1) * D));
  assert.deepEqual(Array.from(after.subarray(0, base * D)), Array.from(before.subarray(0, base * D)), 'text and special rows unchanged');
  assert.deepEqual(row(1), row(0));
  row(2).forEach((x, k) => assert.ok(Math.abs(x + row(0)[k]) < 1e-7));
  const vis = after.subarray(base * D, (base + TOK.codebookSize) * D);
  const std = Math.sqrt(vis.reduce((s, x) => s + x * x, 0) / vis.length);
  assert.ok(std > 0.012 && std < 0.03, `entries' std ${std}, the other embeddings' 0.02`);
  assert.throws(() => validateArConfig({ ...microAr(), visualInit: 'kmeans' }, 'c.json'), /c\.json: visualInit must be 'random' or 'codebook'/);
  m.dispose();
});

test('sceneMaps: the fraction of each cell each shape and colour covers', () => {
  const scene: Scene = { size: 64, top: [200, 200, 200], bottom: [200, 200, 200], objects: [{ shape: 'square', colour: 'blue', cx: 20, cy: 20, r: 8 }] };
  const s = 8;
  const maps = sceneMaps(scene, s);
  assert.equal(maps.length, (3 + 6) * s * s);
  const channel = (k: number) => maps.subarray(k * s * s, (k + 1) * s * s);
  const square = channel(1);
  // the square spans x, y ∈ [12, 28]: cells 2 covered, cells 1 and 3 half (4 × 4 samples per 8-px cell)
  assert.equal(square[2 * s + 2], 1);
  assert.equal(square[1 * s + 2], 0.5);
  assert.equal(square[1 * s + 1], 0.25);
  assert.equal(square.reduce((a, b) => a + b, 0), (16 * 16) / 64);
  assert.deepEqual(Array.from(channel(3 + 2)), Array.from(square), 'blue is the third colour');
  for (const k of [0, 2, 3, 4, 6, 7, 8]) assert.ok(channel(k).every((x) => x === 0), `channel ${k} empty`);
});

test('reading probe (train.readProbe): rows carry their scene maps; the probe learns them from the [EOV] state; the model folder holds no probe; a resumed run keeps it', async () => {
  const probe = { size: 4, hidden: 32, weight: 1 };
  const cfg: ArConfig = { ...microAr(), train: { ...microAr().train, readProbe: probe } };
  // batch rows from a pool: every row has its scene's maps
  const dir = mkdtempSync(join(tmpdir(), 'selftok-probe-'));
  const data = await randomPool(8, new Vocab(16));
  const rows = data.batch(new Rng(2), 16, { ...cfg, maxLen: 40 });
  const width = 9 * probe.size * probe.size;
  for (const r of rows) {
    assert.equal(r.maps?.length, width);
    const sum = (a: number, b: number) => r.maps!.subarray(a * 16, b * 16).reduce((x, y) => x + y, 0);
    assert.ok(sum(0, 3) > 0.2 && Math.abs(sum(0, 3) - sum(3, 9)) < 1e-4, 'each object is in one shape map and one colour map');
  }
  assert.ok(data.batch(new Rng(2), 4, microAr()).every((r) => r.maps === undefined), 'no maps without the probe');
  // overfit: two images, two different map targets
  const trainer = ArTrainer.create(cfg, TOK, 1);
  assert.ok(trainer.model.params.readProbe);
  const v = trainer.model.vocab;
  const target = (k: number) => Float32Array.from({ length: width }, (_, i) => ((i + k) % 5 === 0 ? 1 : 0));
  const seqs = [
    { ...imageToText(v, visualWords(v, [3, 1, 4, 1, 5, 9], 'ar'), v.encode(CAPTION_QUESTION), v.encode('a red circle')), maps: target(0) },
    { ...textToImage(v, v.encode('two blue squares'), visualWords(v, [2, 7, 1, 8, 2, 8], 'ar')), maps: target(2) },
  ];
  const { first, last } = await trainLosses(trainer, seqs, 200);
  // the loss holds the probe's MSE (0.2 of the target entries are 1): it must fall with the answers'
  assert.ok(first > 2 && last < 0.02, `loss ${first} → ${last}`);
  await trainer.checkpoint(dir);
  const folder = readSafetensors(join(dir, 'model.safetensors'));
  assert.ok([...folder.tensors.keys()].every((k) => !k.startsWith('readProbe')), 'no probe in the model folder');
  assert.ok([...readSafetensors(join(dir, AR_STATE_FILE)).tensors.keys()].some((k) => k.startsWith('param.readProbe.')));
  const loaded = await loadArModel(dir);
  assert.equal(loaded.params.readProbe, undefined);
  assert.deepEqual(await loaded.answer(Int32Array.from([3, 1, 4, 1, 5, 9]), 1, v.encode(CAPTION_QUESTION)), ['a red circle']);
  const resumed = ArTrainer.resume(dir);
  assert.ok(resumed.model.params.readProbe);
  const again = await resumed.trainStep(seqs);
  assert.ok(again.loss < 0.05, `resumed loss ${again.loss}`);
  for (const m of [trainer, resumed]) m.dispose();
  loaded.dispose();
});

test('fine-tuning (ar-train --init): the trained weights with the recipe\'s train section, step 0, fresh moments; another architecture or a reading probe is refused with one line', async () => {
  const trained = ArModel.create(microAr(), TOK, 3);
  trained.step = 120;
  const recipe: ArConfig = { ...microAr(), name: 'recipe', train: { ...microAr().train, lr: 5e-4, mix: { textToImage: 0.2, imageToText: 0.75, imageOnly: 0.05 } } };
  const ft = await ArTrainer.fineTune(trained, recipe, TOK, 'runs/trained', 0);
  assert.equal(ft.step, 0);
  assert.equal(ft.cfg.train.lr, 5e-4);
  assert.deepEqual(ft.cfg.train.mix, recipe.train.mix);
  // the model's name and vocabulary, not the recipe's
  assert.equal(ft.cfg.name, trained.cfg.name);
  assert.equal(ft.cfg.words, trained.cfg.words);
  const want = await trained.tensors();
  for (const [name, t] of await ft.model.tensors()) assert.deepEqual(t.data, want.get(name)!.data, name);
  assert.equal(ft.lrNow(), 5e-4 / microAr().train.warmup);
  assert.throws(() => fineTuneArConfig(trained.cfg, { ...recipe, depth: 3 }, 'runs/trained'), /^UserError: runs\/trained: the model's depth is 2, the config's 3; only the train section may differ when fine-tuning$/);
  assert.throws(() => fineTuneArConfig(trained.cfg, { ...recipe, visualPositions: true }, 'runs/trained'), /the model's visualPositions is false, the config's true/);
  await assert.rejects(ArTrainer.fineTune(trained, { ...recipe, train: { ...recipe.train, readProbe: { size: 4, hidden: 32, weight: 1 } } }, TOK, 'runs/trained', 0), /runs\/trained: a fine-tune cannot start a reading probe/);
  ft.dispose();
  trained.dispose();
});

test('relation questions: the two position statements a question decides between, word for word; other questions have none', () => {
  assert.deepEqual(relationStatements('is the circle left of the square?'), { yes: 'a circle left of a square', no: 'a circle right of a square' });
  assert.deepEqual(relationStatements('is the  triangle below the circle ?'), { yes: 'a triangle below a circle', no: 'a triangle above a circle' });
  assert.equal(relationStatements('is the circle left of the circle?'), null);
  assert.equal(relationStatements('how many circles?'), null);
  assert.equal(relationStatements('is the circle near the square?'), null);
  // every relation question the scenes ask has statements in the training prompts' own words
  const scene = fourObjects([40, 40], [], [12, 12]);
  for (const qa of questions(scene).filter((q) => q.kind === 'relation')) {
    const st = relationStatements(qa.question)!;
    assert.ok(st, qa.question);
    assert.doesNotThrow(() => parsePrompt(st.yes));
  }
});

test('answers by likelihood: log P(image | text) per token matches the training loss; a relation question is yes when its statement makes the image likelier, whatever the model decodes', async () => {
  const trainer = ArTrainer.create(microAr(), TOK, 1);
  const v = trainer.model.vocab;
  const left = [3, 1, 4, 1, 5, 9];
  const right = [2, 7, 1, 8, 2, 8];
  const ask = 'is the circle left of the square?';
  const seqs = [
    textToImage(v, v.encode('a circle left of a square'), visualWords(v, left, 'ar')),
    textToImage(v, v.encode('a circle right of a square'), visualWords(v, right, 'ar')),
    // the decoded answer is taught wrong for one image, so that the two methods must disagree there
    imageToText(v, visualWords(v, left, 'ar'), v.encode(ask), v.encode('yes')),
    imageToText(v, visualWords(v, right, 'ar'), v.encode(ask), v.encode('yes')),
  ];
  await trainLosses(trainer, seqs, 150);
  const m = trainer.model;
  const codes = Int32Array.from([...left, ...right]);
  // the per-token log-probabilities are the text → image loss, computed apart in jax
  const prompts = [v.encode('a circle left of a square'), null];
  const logp = await m.imageTokenLogProbs(prompts, codes);
  assert.equal(logp.length, 2 * TOK.K);
  const T = m.cfg.maxLen;
  const batch = batchArrays(v, [textToImage(v, prompts[0], visualWords(v, left, 'ar')), textToImage(v, null, visualWords(v, right, 'ar'))], T);
  const logits = np.array(await m.logits(batch.ids, 2)).reshape([2, T, m.cfg.vocab]);
  const loss = (await maskedNextTokenLoss(logits, np.array(batch.targets).reshape([2, T]), np.array(batch.mask).reshape([2, T]), m.cfg.vocab).data())[0];
  assert.ok(Math.abs(-logp.reduce((a, b) => a + b, 0) / (2 * TOK.K) - loss) < 1e-4, `mean −log p ${-logp.reduce((a, b) => a + b, 0) / (2 * TOK.K)} vs loss ${loss}`);
  const asked = [
    { image: 0, question: ask },
    { image: 1, question: ask },
    { image: 1, question: 'is the circle right of the square?' },
    { image: 0, question: CAPTION_QUESTION },
  ];
  const byLikelihood = await answerQuestions(m, codes, asked);
  assert.deepEqual(byLikelihood.slice(0, 3), ['yes', 'no', 'yes']);
  const decoded = await answerQuestions(m, codes, asked, { relations: 'decode' });
  assert.deepEqual(decoded.slice(0, 2), ['yes', 'yes']);
  // questions that are not relations are decoded either way: by default a canonical caption
  // (beam.ts), with decoding 'greedy' the free words of ArModel.answerEach
  assert.equal(byLikelihood[3], decoded[3]);
  assert.ok(allCaptions().includes(decoded[3]), `a caption a scene can have: "${decoded[3]}"`);
  const greedy = await answerQuestions(m, codes, asked, { relations: 'decode', beam: 0 });
  assert.deepEqual([greedy[3]], await m.answerEach(Int32Array.from(left), [v.encode(CAPTION_QUESTION)], 20));
  trainer.dispose();
});

test('answer sets: every caption a scene can have (7,314, one per multiset of 1–4 objects), and each question form\'s answers; the truth of 2000 random scenes is always in its set', () => {
  const all = allCaptions();
  assert.equal(all.length, 7314);
  assert.equal(new Set(all).size, all.length);
  assert.ok(all.includes('two red circles and a blue square') && all.includes('four orange triangles') && all.includes('an orange circle'));
  assert.ok(!all.includes('a red circle and a red circle') && !all.includes('a blue square and a red circle'), 'no repeated or out-of-order group');
  const captions = new Set(answerSet(CAPTION_QUESTION)!.answers);
  for (let seed = 0; seed < 2000; seed++) {
    const scene = randomScene(seed, 64);
    assert.ok(scene.objects.length <= MAX_OBJECTS);
    assert.ok(captions.has(caption(scene)), caption(scene));
    for (const qa of [...questions(scene), ...whereQuestions(scene)]) assert.ok(answerSet(qa.question)!.answers.includes(qa.answer), `${qa.question} ${qa.answer}`);
  }
  assert.deepEqual(answerSet('how many circles ?')!.answers, ['zero', 'one', 'two', 'three', 'four']);
  assert.deepEqual(answerSet('is the circle above the square?')!.answers, ['yes', 'no']);
  assert.equal(answerSet('what is the circle?'), null);
});

test('Decoder.reorder: rows take the cache of the rows named, and decode on as those rows would', async () => {
  const model = ArModel.create(microAr(), TOK, 4);
  const v = model.vocab;
  const prefixes = [[1, 2, 3], [4, 5, 6], [7, 8, 9]].map((c) => questionPrefix(v, visualWords(v, [...c, 0, 1, 2], 'ar'), v.encode('how many circles?')));
  const next = Int32Array.from([v.encode('two')[0], v.encode('one')[0], v.encode('zero')[0]]);
  const d = model.decoder(3);
  await d.prefillRows(prefixes);
  d.reorder(Int32Array.from([2, 0, 0]));
  const got = await d.feed(next);
  d.dispose();
  const e = model.decoder(3);
  await e.prefillRows([prefixes[2], prefixes[0], prefixes[0]]);
  const want = await e.feed(next);
  e.dispose();
  assert.equal(got.length, want.length);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `logit ${i}: ${got[i]} vs ${want[i]}`);
  model.dispose();
});

test('beam answers: with a width of at least the set\'s size, the answer of highest log P(answer, [EOS] | image, question), as scored by the full forward; narrower beams return answers of the set, no likelier', async () => {
  const model = ArModel.create(microAr(), TOK, 9);
  const v = model.vocab;
  const T = model.cfg.maxLen;
  const V = model.cfg.vocab;
  const eos = v.special('[EOS]');
  const set = ['a red circle', 'a red circle and a blue square', 'a red circle and a red square', 'two red circles', 'two red circles and a blue square', 'a blue square', 'three blue squares'].map((a) => v.encode(a));
  const trie = answerTrie(set);
  const images = [[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], [0, 0, 7, 7, 9, 9]];
  const codes = Int32Array.from(images.flat());
  const question = v.encode(CAPTION_QUESTION);
  // every answer scored by one teacher-forced forward: log-softmax of each word and of [EOS]
  const scored = await Promise.all(
    images.map(async (img) => {
      const prefix = questionPrefix(v, visualWords(v, img, 'ar'), question);
      const rows = set.map((a) => [...prefix, ...a, eos]);
      const ids = new Int32Array(set.length * T);
      rows.forEach((r, i) => ids.set(r, i * T));
      const logits = await model.logits(ids, set.length);
      return rows.map((r, i) => {
        let sum = 0;
        for (let t = prefix.length - 1; t < r.length - 1; t++) {
          const l = logits.subarray((i * T + t) * V, (i * T + t + 1) * V);
          const max = Math.max(...l);
          sum += l[r[t + 1]] - max - Math.log(l.reduce((z, x) => z + Math.exp(x - max), 0));
        }
        return sum;
      });
    }),
  );
  const exact = await beamAnswers(model, codes, images.map(() => question), images.map(() => trie), set.length);
  exact.forEach((r, b) => {
    const best = scored[b].indexOf(Math.max(...scored[b]));
    assert.deepEqual(r.words, set[best], `image ${b}: ${v.decode(r.words)} vs ${v.decode(set[best])}`);
    assert.ok(Math.abs(r.logp - scored[b][best]) < 1e-4, `image ${b}: log p ${r.logp} vs ${scored[b][best]}`);
  });
  for (const width of [1, 2]) {
    const got = await beamAnswers(model, codes, images.map(() => question), images.map(() => trie), width);
    got.forEach((r, b) => {
      const i = set.findIndex((a) => a.join() === r.words.join());
      assert.ok(i >= 0, `width ${width}, image ${b}: "${v.decode(r.words)}" is in the set`);
      assert.ok(Math.abs(r.logp - scored[b][i]) < 1e-4 && r.logp <= exact[b].logp + 1e-6);
    });
  }
  // the library's path: captions from the set of every caption
  const caps = await captionImages(model, codes, images.length, { beam: 3 });
  assert.equal(caps.length, 3);
  for (const c of caps) assert.ok(allCaptions().includes(c), c);
  model.dispose();
});

test('undoNearestUpscale: the exact image under a nearest-neighbour upscale (generate\'s PNGs); anything else is null', () => {
  const rng = new Rng(3);
  const size = 8;
  const small = Uint8Array.from({ length: size * size * 3 }, () => rng.int(0, 256));
  const f = 3;
  const big = new Uint8Array(size * f * size * f * 3);
  for (let y = 0; y < size * f; y++) for (let x = 0; x < size * f; x++) for (let c = 0; c < 3; c++) big[(y * size * f + x) * 3 + c] = small[(Math.floor(y / f) * size + Math.floor(x / f)) * 3 + c];
  assert.deepEqual(undoNearestUpscale({ data: big, width: size * f, height: size * f }, size), small);
  assert.deepEqual(undoNearestUpscale({ data: small, width: size, height: size }, size), small);
  const touched = big.slice();
  touched[((2 * size * f) + 4) * 3 + 1] ^= 1; // one channel of one pixel inside a block
  assert.equal(undoNearestUpscale({ data: touched, width: size * f, height: size * f }, size), null);
  assert.equal(undoNearestUpscale({ data: big.subarray(0, size * f * (size * f - 3) * 3), width: size * f, height: size * f - 3 }, size), null);
  assert.equal(undoNearestUpscale({ data: new Uint8Array(20 * 20 * 3), width: 20, height: 20 }, size), null);
});

test('rope and oneHot as the step computes them (issue #21): bit for bit the slice-and-concatenate rotation and jax-js\'s nn.oneHot', async () => {
  const [B, T, H, hd] = [2, 5, 3, 8];
  const half = hd / 2;
  const tables = ropeTables(T, hd, 10000);
  const x = random.normal(random.key(3), [B, T, H, hd]);
  const xs = (await x.ref.data()) as Float32Array;
  const table = (t: Float32Array) => np.array(t).reshape([T, half]);
  const got = (await rope(x.ref, table(tables.cos), table(tables.sin)).data()) as Float32Array;
  const c = table(tables.cos).reshape([1, T, 1, half]);
  const s = table(tables.sin).reshape([1, T, 1, half]);
  const x1 = x.ref.slice([], [], [], [0, half]);
  const x2 = x.slice([], [], [], [half, hd]);
  const want = (await np.concatenate([x1.ref.mul(c.ref).sub(x2.ref.mul(s.ref)), x2.mul(c).add(x1.mul(s))], -1).data()) as Float32Array;
  assert.equal(got.length, B * T * H * hd);
  assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer));
  // position 0 is left as it is (cos 1, sin 0); position 1 is rotated
  const at = (t: number) => [...Array(H * hd).keys()].map((j) => j + t * H * hd);
  assert.deepEqual(at(0).map((i) => got[i]), at(0).map((i) => xs[i]));
  assert.ok(at(1).some((i) => Math.abs(got[i] - xs[i]) > 1e-3));

  const ids = np.array([0, 9, 3, 3, 7, 1], { dtype: np.int32 }).reshape([2, 3]);
  const mine = oneHot(ids.ref, 10);
  assert.deepEqual(mine.shape, [2, 3, 10]);
  const rows = (await mine.data()) as Float32Array;
  assert.deepEqual([...rows], [...((await nn.oneHot(ids, 10).data()) as Float32Array)]);
  assert.deepEqual([...rows.slice(10, 20)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
});
