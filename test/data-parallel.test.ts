// Data parallelism over worker threads (issue #21 item 3, engine/data-parallel.ts): each batch
// in shares, this thread and worker threads, the gradients averaged by the weight of each share.
// A step with workers must match the step without them (up to rounding) wherever the loss has
// no noise of its own; where it has (the tokenizer's ε), what the encoder gives must.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { wasm, microArConfig, microConfig } from './helpers.ts';
import { shares } from '../src/engine/data-parallel.ts';
import type { TokenizerRef } from '../src/ar/ar-model.ts';
import { ArTrainer } from '../src/ar/train.ts';
import { textToImage, imageToText, visualWords } from '../src/ar/sequences.ts';
import { CAPTION_QUESTION } from '../src/ar/text.ts';
import { Trainer } from '../src/train/trainer.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { ShapesSource } from '../src/data/source.ts';
import { flattenParams, type Params } from '../src/nn/params.ts';
import { NonFiniteLossError, UserError } from '../src/util/errors.ts';

before(wasm);

async function values(p: Params): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for (const a of flattenParams(p).values()) parts.push(Float32Array.from((await a.ref.data()) as Float32Array));
  const out = new Float32Array(parts.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of parts) (out.set(x, at), (at += x.length));
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('shares: contiguous, as even as possible, covering every row once', () => {
  assert.deepEqual(shares(7, 3), [[0, 3], [3, 5], [5, 7]]);
  assert.deepEqual(shares(8, 2), [[0, 4], [4, 8]]);
  assert.deepEqual(shares(2, 2), [[0, 1], [1, 2]]);
});

test('AR: a step over 2 workers equals the step on one thread (shares weighted by their answer tokens)', async (t) => {
  const TOK: TokenizerRef = { name: 'micro', fingerprint: 'f00d', K: 6, codebookSize: 16 };
  const cfg = microArConfig({ maxLen: 24, train: { ...microArConfig().train, batch: 4 } });
  const one = ArTrainer.create(cfg, TOK, 3);
  const two = ArTrainer.create(cfg, TOK, 3);
  await two.startWorkers(2);
  t.after(async () => {
    await two.stopWorkers();
    one.dispose();
    two.dispose();
  });
  assert.equal(two.workers, 2);
  const v = one.model.vocab;
  const img = [3, 1, 4, 1, 5, 9];
  // the first share holds two long answers (images), the second two short ones (words): an
  // unweighted mean of the shares' losses would differ from the batch's
  const seqs = [
    textToImage(v, v.encode('a red circle'), visualWords(v, img, 'ar')),
    textToImage(v, v.encode('two blue squares'), visualWords(v, [2, 7, 1, 8, 2, 8], 'ar')),
    imageToText(v, visualWords(v, img, 'ar'), v.encode(CAPTION_QUESTION), v.encode('a red circle')),
    imageToText(v, visualWords(v, img, 'ar'), v.encode('how many circles?'), v.encode('one')),
  ];
  for (let s = 0; s < 3; s++) {
    const a = await one.trainStep(seqs);
    const b = await two.trainStep(seqs);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-5 * Math.max(1, a.loss), `step ${s}: loss ${a.loss} vs ${b.loss} over 2 workers`);
  }
  const d = maxAbsDiff(await values(one.model.params as unknown as Params), await values(two.model.params as unknown as Params));
  assert.ok(d < 1e-5, `parameters after 3 steps differ by ${d}`);
  await assert.rejects(ArTrainer.create(cfg, TOK, 3).startWorkers(5), (e: unknown) => e instanceof UserError && /--workers 5: more workers than the batch \(4\)/.test(e.message));
});

test('renderer: a step over 2 workers equals the step on one thread', async (t) => {
  const cfg = microConfig((c) => (c.train.batch = 4));
  const data = new ShapesSource(cfg.image.size);
  const make = () => Trainer.forRenderer(Selftok.create(cfg, 7), 11, 4, 1e-3, 'none');
  const one = make();
  const two = make();
  await two.startWorkers(2);
  t.after(async () => {
    await two.stopWorkers();
    one.dispose();
    two.dispose();
  });
  for (let s = 0; s < 2; s++) {
    const a = await one.trainStep(data);
    const b = await two.trainStep(data);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-5 * Math.max(1, a.loss) && Math.abs(a.fm - b.fm) < 1e-5, `step ${s}: ${a.loss}/${a.fm} vs ${b.loss}/${b.fm}`);
  }
  const d = maxAbsDiff(await values(one.model.params.ren as unknown as Params), await values(two.model.params.ren as unknown as Params));
  assert.ok(d < 1e-5, `renderer parameters after 2 steps differ by ${d}`);
});

test('tokenizer: over 2 workers the codebook sees every image of the batch in order; the loss is that of the same batch', async (t) => {
  // quantizing from the first step: k-means on the whole batch (this thread), then the codebook
  // EMA from the encoder outputs of both shares, concatenated; the encoder has no noise, so the
  // statistics match the one-thread step's
  const cfg = microConfig((c) => {
    c.train.batch = 6;
    c.quantizer.continuousSteps = 0;
  });
  const data = new ShapesSource(cfg.image.size);
  const one = Trainer.create(cfg, 4);
  const two = Trainer.create(cfg, 4);
  await two.startWorkers(2);
  t.after(async () => {
    await two.stopWorkers();
    one.dispose();
    two.dispose();
  });
  const a = await one.trainStep(data);
  const b = await two.trainStep(data);
  const [ca, cb] = [one.model.codebook, two.model.codebook];
  assert.ok(maxAbsDiff(ca.positionUsage, cb.positionUsage) < 1e-6, 'per-position usage');
  assert.ok(maxAbsDiff(ca.clusterSize, cb.clusterSize) < 1e-5, 'cluster sizes');
  assert.ok(maxAbsDiff(ca.embedSum, cb.embedSum) < 1e-4, 'embedding sums');
  assert.equal(b.usage, a.usage);
  assert.ok(Math.abs(a.commit - b.commit) < 1e-4 * Math.max(1e-3, a.commit), `commitment ${a.commit} vs ${b.commit}`);
  // ε differs in the second share (its own key), so the flow loss is close, not equal
  assert.ok(Number.isFinite(b.loss) && Math.abs(a.loss - b.loss) < 0.25 * a.loss, `loss ${a.loss} vs ${b.loss}`);
  for (let s = 0; s < 2; s++) assert.ok(Number.isFinite((await two.trainStep(data)).loss));
});

test('a worker that dies fails the step with one line instead of hanging it', async (t) => {
  const TOK: TokenizerRef = { name: 'micro', fingerprint: 'f00d', K: 6, codebookSize: 16 };
  const cfg = microArConfig({ maxLen: 24, train: { ...microArConfig().train, batch: 2 } });
  const trainer = ArTrainer.create(cfg, TOK, 3);
  await trainer.startWorkers(2);
  t.after(async () => {
    await trainer.stopWorkers();
    trainer.dispose();
  });
  const v = trainer.model.vocab;
  const seq = textToImage(v, v.encode('a red circle'), visualWords(v, [3, 1, 4, 1, 5, 9], 'ar'));
  assert.ok(Number.isFinite((await trainer.trainStep([seq, seq])).loss));
  // the worker thread ends under the trainer (as a crash or an out-of-memory kill would end it)
  await (trainer as unknown as { peers: { worker: { terminate(): Promise<number> } }[] }).peers[0].worker.terminate();
  await assert.rejects(trainer.trainStep([seq, seq]), /gradient worker exited/);
});

test('a non-finite loss in the share of a worker stops training as one in this thread does', async (t) => {
  const cfg = microConfig((c) => (c.train.batch = 4));
  // the last image of each batch (the worker's share) holds a NaN
  class Poisoned extends ShapesSource {
    override async trainBatch(...args: Parameters<ShapesSource['trainBatch']>): Promise<Float32Array> {
      const px = await super.trainBatch(...args);
      px[px.length - 1] = NaN;
      return px;
    }
  }
  const trainer = Trainer.forRenderer(Selftok.create(cfg, 7), 11, 4, 1e-3, 'none');
  await trainer.startWorkers(2);
  t.after(async () => {
    await trainer.stopWorkers();
    trainer.dispose();
  });
  await assert.rejects(trainer.trainStep(new Poisoned(cfg.image.size)), (e: unknown) => e instanceof NonFiniteLossError && /step 1: loss is NaN/.test(e.message));
});
