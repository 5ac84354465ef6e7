// Visual RL (issue #19, item 5): the group advantage and the k3 KL estimator against hand-computed
// values; the GRPO loss against its formula; one update raises the probability of a positively
// rewarded sample and lowers that of a negatively rewarded one; rewards are the scorer's; a run
// killed after a checkpoint and resumed writes the same log as an uninterrupted one.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { numpy as np, valueAndGrad } from '@jax-js/jax';
import { wasm, microArConfig, tmp, runCli, expectOneLineError } from './helpers.ts';
import { ArModel, type TokenizerRef } from '../src/ar/ar-model.ts';
import { ArTrainer } from '../src/ar/train.ts';
import { textToImage, batchArrays } from '../src/ar/sequences.ts';
import { promptOf, renderScene, sceneForPrompt, toUnitRange, CATEGORIES, inSplit } from '../src/ar/scenes.ts';
import { scorePrompt } from '../src/ar/scorer.ts';
import { groupAdvantages, grpoLoss, klK3, visualLogProbs, visualOnlyBias, zeroVariance } from '../src/rl/grpo.ts';
import { GrpoTrainer, RL_DEFAULTS, readRlLog, rewardsOf, runRl, stepPrompts, type RlLog } from '../src/rl/train.ts';
import { loadSelftok, loadArModel } from '../src/node/models.ts';

before(wasm);

test('group advantages: (r − mean) / (std + ε) per group, Bessel std; an all-equal group gives zeros', () => {
  const a = groupAdvantages([1, 0, 0.5, 0.5, 0, 0, 1, 1], 4, 1e-4);
  // group 1: mean 0.5, std √((0.25 + 0.25 + 0 + 0) / 3) = 0.408248
  const s = Math.sqrt(0.5 / 3);
  const want = [0.5 / (s + 1e-4), -0.5 / (s + 1e-4), 0, 0, -0.5 / (Math.sqrt(1 / 3) + 1e-4), -0.5 / (Math.sqrt(1 / 3) + 1e-4), 0.5 / (Math.sqrt(1 / 3) + 1e-4), 0.5 / (Math.sqrt(1 / 3) + 1e-4)];
  want.forEach((w, i) => assert.ok(Math.abs(a[i] - w) < 1e-5, `A[${i}] = ${a[i]}, want ${w}`));
  assert.deepEqual(Array.from(groupAdvantages([0.25, 0.25, 0.25], 3)), [0, 0, 0]);
  assert.equal(zeroVariance([0.25, 0.25, 1, 0], 0, 2), true);
  assert.equal(zeroVariance([0.25, 0.25, 1, 0], 2, 2), false);
  assert.throws(() => groupAdvantages([1, 0, 1], 2), /do not split into groups of 2/);
});

test('k3 KL estimator: ρ − log ρ − 1 with ρ = π_ref/π; zero when equal, positive otherwise, its mean over π is KL(π‖π_ref)', () => {
  assert.ok(Math.abs(klK3(Math.log(0.2), Math.log(0.4)) - (0.5 - Math.log(0.5) - 1)) < 1e-12); // 0.193147
  assert.ok(Math.abs(klK3(Math.log(0.2), Math.log(0.4)) - 0.1931471806) < 1e-9);
  assert.equal(klK3(-1.3, -1.3), 0);
  assert.ok(klK3(-3, -1) > 0 && klK3(-1, -3) > 0);
  // unbiased: Σ π(x)·k3(x) = KL(π‖π_ref) for two small distributions
  const p = [0.5, 0.3, 0.2];
  const q = [0.2, 0.5, 0.3];
  const est = p.reduce((s, pi, i) => s + pi * klK3(Math.log(q[i]), Math.log(pi)), 0);
  const kl = p.reduce((s, pi, i) => s + pi * Math.log(pi / q[i]), 0);
  assert.ok(Math.abs(est - kl) < 1e-12, `${est} vs ${kl}`);
});

test('GRPO loss: equals its formula on a hand-made batch, and its gradient in the logits has the sign that favours a positive advantage', async () => {
  // B 2, T 2, V 4; visual words are ids 1..3 (id 0 is a text word, masked out of the softmax)
  const V = 4;
  const logits = Float32Array.from([0.1, 0.5, -0.2, 0.3, 0, 1, 2, 0, 0.4, 0.2, 0.2, -1, 3, 0, 0, 0]);
  const targets = Int32Array.from([2, 3, 1, 0]);
  const mask = Float32Array.from([1, 1, 1, 0]);
  const adv = Float32Array.from([1.5, -0.5]);
  const logpRef = Float32Array.from([-1.2, -0.9, -1.0, 0]);
  const beta = 0.04;
  const bias = visualOnlyBias(V, 1);
  const logp = visualLogProbs(logits, targets, mask, V, 1);
  let want = 0;
  for (let i = 0; i < 4; i++) if (mask[i]) want += -adv[Math.floor(i / 2)] * logp[i] + beta * klK3(logpRef[i], logp[i]);
  want /= 3;
  const f = (l: np.Array) => grpoLoss(l, np.array(targets, { dtype: np.int32 }).reshape([2, 2]), np.array(mask).reshape([2, 2]), np.array(adv), np.array(logpRef).reshape([2, 2]), np.array(bias), np.array(beta));
  const [value, grad] = valueAndGrad(f)(np.array(logits).reshape([2, 2, V]));
  const got = (await value.data())[0];
  assert.ok(Math.abs(got - want) < 1e-5, `loss ${got}, want ${want}`);
  const g = (await grad.data()) as Float32Array;
  // descending the loss raises the logit of a target with A > 0 and lowers it with A < 0
  assert.ok(g[0 * V + 2] < 0, `row 0 target (A = 1.5): dL/dlogit ${g[2]}`);
  assert.ok(g[2 * V + 1] > 0, `row 1 target (A = −0.5): dL/dlogit ${g[2 * V + 1]}`);
  // masked positions and the text word get no gradient
  for (let i = 0; i < V; i++) assert.ok(Math.abs(g[3 * V + i]) < 1e-7);
  assert.ok(Math.abs(g[0]) < 1e-7);
});

test('one GRPO update on a toy reward raises log π of the rewarded sample and lowers it for the other', async () => {
  const tok: TokenizerRef = { name: 'micro', fingerprint: 'f00d', K: 4, codebookSize: 8 };
  const cfg = microArConfig({ maxLen: 16 });
  const ref = ArModel.create(cfg, tok, 7);
  const policy = ArModel.create(cfg, tok, 7);
  const v = policy.vocab;
  const prompt = v.encode('a red circle');
  const good = [v.visual(1), v.visual(2), v.visual(3), v.visual(4)];
  const bad = [v.visual(5), v.visual(6), v.visual(7), v.visual(0)];
  const seqs = [textToImage(v, prompt, good), textToImage(v, prompt, bad)];
  const logpOf = async (m: ArModel): Promise<number[]> => {
    const T = 16;
    const { ids, targets, mask } = batchArrays(v, seqs, T);
    const lp = visualLogProbs(await m.logits(ids, 2), targets, mask, m.cfg.vocab, v.visualBase, v.visualBase + v.codebookSize);
    return [0, 1].map((b) => lp.subarray(b * T, (b + 1) * T).reduce((a, x) => a + x, 0));
  };
  const before = await logpOf(policy);
  const rl = new GrpoTrainer(ArTrainer.fromModel(policy, 0), ref, { ...RL_DEFAULTS, lr: 1e-2, warmup: 0, seed: 0 });
  // sampling log-probs = the policy's own (it equals the reference before any update)
  const { ids, targets, mask } = batchArrays(v, seqs, 16);
  const sampled = visualLogProbs(await policy.logits(ids, 2), targets, mask, policy.cfg.vocab, v.visualBase, v.visualBase + v.codebookSize).filter((_, i) => mask[i]);
  const r = await rl.update(seqs, groupAdvantages([1, 0], 2), Float32Array.from(sampled));
  assert.ok(Math.abs(r.kl) < 1e-6, `KL before the update: ${r.kl}`);
  const after = await logpOf(policy);
  assert.ok(after[0] > before[0] + 0.05, `rewarded: ${before[0]} → ${after[0]}`);
  assert.ok(after[1] < before[1] - 0.05, `unrewarded: ${before[1]} → ${after[1]}`);
  rl.dispose();
});

test('rewards are the scorer\'s fraction of requirements met, prompt by prompt', () => {
  const size = 64;
  const specs = [promptOf('train', 'color_attr', 0), promptOf('train', 'position', 3)];
  // image 0: a scene for prompt 0; image 1: a scene for prompt 1 scored against prompt 0;
  // images 2, 3: the same two scored against prompt 1
  const scenes = [sceneForPrompt(specs[0], 11, size), sceneForPrompt(specs[1], 12, size)];
  const px = new Float32Array(4 * size * size * 3);
  [0, 1, 0, 1].forEach((s, i) => px.set(toUnitRange(renderScene(scenes[s])), i * size * size * 3));
  const r = rewardsOf(specs, px, 2, size);
  const want = [0, 1, 0, 1].map((s, i) => scorePrompt(specs[Math.floor(i / 2)], renderScene(scenes[s]), size).fraction);
  assert.deepEqual(Array.from(r), want.map((x) => Math.fround(x)));
  assert.equal(r[0], 1);
  assert.equal(r[3], 1);
  assert.ok(r.every((x) => x >= 0 && x <= 1));
  // step prompts come from the training split only, deterministic by (seed, step)
  const p = stepPrompts(3, 17, 40);
  assert.ok(p.every((s) => inSplit(s, 'train')));
  assert.deepEqual(stepPrompts(3, 17, 40), p);
  assert.ok(new Set(p.map((s) => s.category)).size === CATEGORIES.length);
});

test('rl: a run killed after a checkpoint and resumed writes the same log as one uninterrupted run; bad input is one line', async () => {
  const dir = tmp('selftok-rl-');
  const tokenizer = loadSelftok('models/scenes', ['encode', 'render']);
  const cfg = { ...RL_DEFAULTS, steps: 4, group: 2, promptsPerStep: 1, seed: 5 };
  const strip = (l: RlLog[]) => l.map(({ ms, ...rest }) => (void ms, rest));
  const a = await runRl({ refDir: 'models/scenes-ar', tokenizer, out: join(dir, 'a'), cfg, resume: false, ckptEvery: 2 });
  a.trainer.dispose();
  await assert.rejects(
    runRl({ refDir: 'models/scenes-ar', tokenizer, out: join(dir, 'b'), cfg, resume: false, ckptEvery: 2, onStep: (l) => { if (l.step === 3) throw new Error('killed'); } }),
    /killed/,
  );
  assert.deepEqual(readRlLog(join(dir, 'b')).map((l) => l.step), [1, 2, 3]); // step 3 logged, not checkpointed
  const b = await runRl({ refDir: 'models/scenes-ar', tokenizer, out: join(dir, 'b'), cfg, resume: true, ckptEvery: 2 });
  b.trainer.dispose();
  assert.deepEqual(strip(readRlLog(join(dir, 'b'))), strip(readRlLog(join(dir, 'a'))));
  assert.equal(readRlLog(join(dir, 'a')).length, 4);
  // the saved policy is an AR model of the same tokenizer, at step 4, with a path to it from its own directory
  const saved = JSON.parse(readFileSync(join(dir, 'a', 'config.json'), 'utf8'));
  assert.equal(saved.tokenizer.fingerprint, await tokenizer.tokenFingerprint());
  assert.equal(loadArModel(join(dir, 'a')).step, 4);
  await assert.rejects(runRl({ refDir: 'models/scenes-ar', tokenizer, out: join(dir, 'a'), cfg, resume: false, ckptEvery: 2 }), /already holds an RL run .*--resume/);
  await assert.rejects(runRl({ refDir: 'models/scenes-ar', tokenizer, out: join(dir, 'c'), cfg: { ...cfg, group: 1 }, resume: false, ckptEvery: 2 }), /--group must be at least 2/);
  // the command, as a user runs it: the model, the log, the curves and the before/after samples
  const r = runCli(process.cwd(), ['rl', '--out', join(dir, 'cli'), '--steps', '2', '--group', '2', '--prompts-per-step', '1', '--device', 'wasm']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /rl .*cli: step 2; last 1 steps: reward \d\.\d{3}, KL \d\.\d{4}/);
  for (const f of ['config.json', 'model.safetensors', 'train-state.safetensors', 'rl-log.jsonl', 'curves.png', 'samples.png', 'samples.json']) assert.ok(existsSync(join(dir, 'cli', f)), f);
  assert.equal(JSON.parse(readFileSync(join(dir, 'cli', 'samples.json'), 'utf8')).rows.length, CATEGORIES.length);
  // the command: a tokenizer without a renderer is refused in one line
  expectOneLineError(runCli(process.cwd(), ['rl', '--model', 'models/scenes-ar', '--tokenizer', 'models/default', '--out', join(dir, 'd'), '--steps', '1', '--device', 'wasm']), /trained on the tokens of tokenizer scenes .*not on those of/);
});
