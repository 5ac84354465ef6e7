// The AR commands as a user runs them (issue #18, item 6): ar-train (checkpoints, resume, refusal
// of an existing run), generate, caption, ask, geneval, and each bad input refused with one line
// and nothing written. A micro tokenizer and AR model: this checks the plumbing, not quality.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { wasm, microConfig, microArConfig, tmp, runCli, runCliSignalled, expectOneLineError, type CliResult } from './helpers.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { encodePng } from '../src/node/image.ts';
import { randomScene, renderScene } from '../src/ar/scenes.ts';
import { allCaptions } from '../src/ar/text.ts';
import { renderShapes } from '../src/data/shapes.ts';
import { fileFingerprint } from '../src/node/files.ts';
import { saveModel } from '../src/node/models.ts';

let dir: string;

function run(...args: string[]): CliResult {
  return runCli(dir, [...args, '--device', 'wasm'], /^(selftok: device|selftok: micro-ar|step \d+)/);
}

const expectError = expectOneLineError;

before(async () => {
  await wasm();
  dir = tmp('selftok-ar-cli-');
  const cfg = microConfig((c) => {
    c.name = 'micro-scenes';
    c.image.size = 32;
  });
  const tok = Selftok.create(cfg, 1);
  tok.codebook.initialized = true;
  await saveModel(tok, join(dir, 'tok'));
  const other = Selftok.create(cfg, 2);
  other.codebook.initialized = true;
  await saveModel(other, join(dir, 'other'));
  writeFileSync(join(dir, 'scene.png'), await encodePng(renderScene(randomScene(0x80000001, 32)), 32, 32));
  writeFileSync(join(dir, 'small.png'), await encodePng(renderShapes(3, 24), 24, 24));
  writeFileSync(join(dir, 'micro-ar.json'), JSON.stringify(microArConfig({ train: { ...microArConfig().train, lr: 0.002, warmup: 2 } })));
});

test('ar-train: SIGTERM stops after the running step with a checkpoint of it (exit 143), and --resume continues there over 2 workers', async () => {
  // signalled once a few steps ran: long before the periodic checkpoint at step 1000
  const { code, out, err } = await runCliSignalled(dir, ['ar-train', '--tokenizer', 'tok', '--data', 'scenes', '--out', 'stopped', '--config', 'micro-ar.json', '--steps', '100000', '--ckpt-every', '1000', '--log-every', '1', '--device', 'wasm'], /^step 3:/m);
  assert.equal(code, 143, err);
  const m = /ar-train stopped: stopped by SIGTERM at step (\d+), checkpoint written; continue with --resume/.exec(err);
  assert.ok(m, err);
  const at = Number(m[1]);
  assert.ok(at >= 3 && at < 1000, `stopped at ${at}`);
  assert.doesNotMatch(out, /ar-train stopped: step/);
  const log = readFileSync(join(dir, 'stopped', 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.equal(log.at(-1), at);

  const r = runCli(dir, ['ar-train', '--tokenizer', 'tok', '--data', 'scenes', '--out', 'stopped', '--config', 'micro-ar.json', '--steps', String(at + 2), '--resume', '--workers', '2', '--device', 'wasm']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, new RegExp(`over 2 workers, lr [\\d.e-]+, from step ${at} to ${at + 2}`));
  assert.match(r.out, new RegExp(`ar-train stopped: step ${at + 2}, loss \\d+\\.\\d+`));
});

test('ar-train: checkpoints, a log, the pool; resumes after a stop; refuses to overwrite a run; a JSON config error is one line', () => {
  let r = run('ar-train', '--tokenizer', 'tok', '--data', 'scenes', '--out', 'ar', '--config', 'micro-ar.json', '--steps', '6', '--ckpt-every', '3', '--log-every', '2');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /ar-train ar: step 6, loss \d+\.\d+/);
  for (const f of ['config.json', 'model.safetensors', 'train-state.safetensors', 'pool.safetensors', 'train-log.jsonl']) assert.ok(existsSync(join(dir, 'ar', f)), f);
  const log = readFileSync(join(dir, 'ar', 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(log.map((l) => l.step), [2, 4, 6]);
  const saved = JSON.parse(readFileSync(join(dir, 'ar', 'config.json'), 'utf8'));
  assert.equal(saved.tokenizer.path, '../tok');
  assert.equal(saved.ar.order, 'ar');

  r = run('ar-train', '--tokenizer', 'tok', '--data', 'scenes', '--out', 'ar', '--config', 'micro-ar.json', '--steps', '8', '--resume');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /step 8/);
  expectError(run('ar-train', '--tokenizer', 'tok', '--data', 'scenes', '--out', 'ar', '--config', 'micro-ar.json', '--steps', '9'), /ar: already holds a training run .*--resume/);
  expectError(run('ar-train', '--tokenizer', 'other', '--data', 'scenes', '--out', 'ar', '--config', 'micro-ar.json', '--steps', '9', '--resume'), /trained on the tokens of tokenizer micro-scenes \(\w+\), not on those of micro-scenes/);
  expectError(run('ar-train', '--tokenizer', 'tok', '--data', 'shapes', '--out', 'ar2', '--config', 'micro-ar.json'), /--data shapes: .*only 'scenes' has captions/);
  // a fine-tune of the trained model: from its weights at step 0, under the config's train section
  r = run('ar-train', '--tokenizer', 'tok', '--data', 'scenes', '--init', 'ar', '--out', 'ft', '--config', 'micro-ar.json', '--steps', '2', '--log-every', '1');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /ar-train ft: step 2, loss \d+\.\d+/);
  assert.deepEqual(readFileSync(join(dir, 'ft', 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step), [1, 2]);
  expectError(run('ar-train', '--tokenizer', 'tok', '--data', 'scenes', '--init', 'ar', '--out', 'ft', '--config', 'micro-ar.json', '--steps', '3', '--resume'), /--init ar: cannot start a resumed run \(ft\) from a model; drop --resume or --init/);
  expectError(run('ar-train', '--tokenizer', 'other', '--data', 'scenes', '--init', 'ar', '--out', 'ft2', '--config', 'micro-ar.json', '--steps', '2'), /trained on the tokens of tokenizer micro-scenes \(\w+\), not on those of micro-scenes/);
  writeFileSync(join(dir, 'bad-ar.json'), '{"dim": 33');
  expectError(run('ar-train', '--tokenizer', 'tok', '--data', 'scenes', '--out', 'ar2', '--config', 'bad-ar.json'), /bad-ar\.json: not valid JSON/);
  assert.equal(existsSync(join(dir, 'ar2')), false);
});

test('generate: PNGs, a grid and a token file of the tokenizer; an unknown word lists the vocabulary and writes nothing', () => {
  let r = run('generate', 'a red circle left of a blue square', '--model', 'ar', '-n', '2', '-o', 'gen', '--seed', '3', '--cfg', '2', '--top-k', '50');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /generated 2 image\(s\) for "a red circle left of a blue square" → gen \(cfg 2, temperature 1, top-k 50, seed 3\)/);
  assert.deepEqual(readdirSync(join(dir, 'gen')).sort(), ['grid.png', 'image-0.png', 'image-1.png', 'tokens.json']);
  const t = JSON.parse(readFileSync(join(dir, 'gen', 'tokens.json'), 'utf8'));
  // the token file names the tokenizer's weights file, as `selftok encode` does, so `selftok decode` takes it
  assert.equal(t.model.fingerprint, fileFingerprint(join(dir, 'tok', 'model.safetensors')));
  assert.equal(t.images.length, 2);
  assert.ok(t.images.every((im: { ids: number[] }) => im.ids.length === 8 && im.ids.every((v) => v >= 0 && v < 32)));
  // the same seed gives the same tokens
  r = run('generate', 'a red circle left of a blue square', '--model', 'ar', '-n', '2', '-o', 'gen2', '--seed', '3', '--cfg', '2', '--top-k', '50');
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'gen2', 'tokens.json'), 'utf8')).images.map((i: { ids: number[] }) => i.ids), t.images.map((i: { ids: number[] }) => i.ids));

  expectError(run('generate', 'a pink circle', '--model', 'ar', '-o', 'gen3'), /prompt "a pink circle": unknown word "pink"; the vocabulary is: a an and .* circle /);
  assert.equal(existsSync(join(dir, 'gen3')), false);
  expectError(run('generate', 'a circle', '--model', 'ar', '--tokenizer', 'other', '-o', 'gen3'), /other: the AR model was trained on the tokens of tokenizer micro-scenes/);
  expectError(run('generate', 'a circle', '--model', 'nowhere', '-o', 'gen3'), /nowhere: not an AR model directory/);
  assert.equal(existsSync(join(dir, 'gen3')), false);
});

test('caption and ask: images of the tokenizer\'s size (or generate\'s upscales of one) or its token files; a wrong size or another tokenizer\'s tokens are refused', async () => {
  let r = run('caption', 'scene.png', 'gen/tokens.json', '--model', 'ar', '--json');
  assert.equal(r.code, 0, r.err);
  const caps = JSON.parse(r.out);
  assert.deepEqual(caps.map((c: { image: string }) => c.image), ['scene.png', 'gen/tokens.json:image-0.png', 'gen/tokens.json:image-1.png']);
  // by default a caption a scene can have (a beam within every canonical caption, src/ar/beam.ts)
  const captions = new Set(allCaptions());
  assert.ok(caps.every((c: { caption: string }) => captions.has(c.caption)), JSON.stringify(caps));
  // --beam 0: the free greedy words (any string, possibly empty, from a model this small)
  r = run('caption', 'scene.png', '--model', 'ar', '--json', '--beam', '0');
  assert.equal(r.code, 0, r.err);
  assert.equal(typeof JSON.parse(r.out)[0].caption, 'string');
  expectError(run('caption', 'scene.png', '--model', 'ar', '--beam', 'wide'), /--beam must be an integer ≥ 0, got 'wide'/);
  r = run('ask', 'scene.png', 'how many circles?', '--model', 'ar');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out.trim(), /^(zero|one|two|three|four)$/);
  // a relation question: yes or no by either method
  for (const how of ['likelihood', 'decode']) {
    r = run('ask', 'scene.png', 'is the circle left of the square?', '--model', 'ar', '--relations', how);
    assert.equal(r.code, 0, r.err);
    if (how === 'likelihood') assert.match(r.out.trim(), /^(yes|no)$/);
  }
  expectError(run('ask', 'scene.png', 'is the circle left of the square?', '--model', 'ar', '--relations', 'guess'), /--relations <how>' argument 'guess' is invalid/);

  expectError(run('caption', 'small.png', '--model', 'ar'), /small\.png: the image is 24×24; this tokenizer reads 32×32/);
  // generate's PNGs are 4× nearest-neighbour upscales: read back exactly; a smooth 64 × 64 image is not one
  r = run('ask', 'gen/image-0.png', 'how many circles?', '--model', 'ar');
  assert.equal(r.code, 0, r.err);
  writeFileSync(join(dir, 'smooth.png'), await encodePng(renderShapes(5, 64), 64, 64));
  expectError(run('caption', 'smooth.png', '--model', 'ar'), /smooth\.png: the image is 64×64; this tokenizer reads 32×32 \(or a nearest-neighbour upscale of it/);
  const enc = run('encode', 'scene.png', '--model', 'other', '-o', 'other-tok.json');
  assert.equal(enc.code, 0, enc.err);
  expectError(run('caption', 'other-tok.json', '--model', 'ar'), /other-tok\.json: tokens were made by model micro-scenes \(\w+\), not by this model/);
  expectError(run('ask', 'scene.png', 'how many hexagons?', '--model', 'ar'), /question "how many hexagons\?": unknown word "hexagons"/);
  expectError(run('ask', 'gen/tokens.json', 'how many circles?', '--model', 'ar'), /gen\/tokens\.json: holds 2 images; ask about one/);
});

test('geneval: the report, the grids and the JSON with overall, categories, ceiling, understanding and the loss by position', () => {
  const r = run('geneval', '--model', 'ar', '--report', 'ev/geneval.md', '--json', 'ev/geneval.json', '--prompts', '1', '--per-prompt', '2', '--scenes', '3');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^geneval ar: overall \d\.\d{3} \(single_object \d\.\d\d, colors .*\); composition .*; ceiling \d\.\d{3}; \d+\.\d\d objects per image; caption exact \d\.\d{3}, questions \d\.\d{3}; \d+ s/);
  const j = JSON.parse(readFileSync(join(dir, 'ev', 'geneval.json'), 'utf8'));
  assert.deepEqual(Object.keys(j.categories), ['single_object', 'colors', 'two_object', 'counting', 'position', 'color_attr']);
  assert.ok(j.overall >= 0 && j.overall <= 1);
  assert.ok(j.ceiling.overall >= 0 && j.ceiling.overall <= 1);
  assert.equal(j.prompts.length, 6);
  assert.deepEqual(Object.keys(j.objectsPerImage), [...Object.keys(j.categories), 'overall']);
  assert.ok(Object.values(j.objectsPerImage).every((x) => typeof x === 'number' && x >= 0));
  assert.equal(j.positionLoss.perPosition.length, 8);
  assert.ok(j.positionLoss.perPosition.every((x: number) => x > 0 && Number.isFinite(x)));
  assert.ok(j.understanding.scenes + j.understanding.heldOutCombos.scenes === 3);
  assert.equal(j.understanding.relationsBy, 'likelihood');
  assert.equal(j.understanding.relationDecoded.n, j.understanding.byKind.relation.n);
  for (const c of Object.keys(j.categories)) assert.ok(existsSync(join(dir, 'ev', `geneval-${c}.png`)), c);
  assert.match(readFileSync(join(dir, 'ev', 'geneval.md'), 'utf8'), /\| \*\*overall\*\* \|/);
  expectError(run('geneval', '--model', 'ar', '--report', 'ev/x.txt', '--json', 'ev/x.json'), /--report ev\/x\.txt: must be a \.md file/);
});
