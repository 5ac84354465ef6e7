// The figures of an RL run (issue #19, item 2): its curves (mean reward, KL to the supervised
// model, token entropy against the step) and samples of the same held-out prompts and seeds
// before and after RL.
import { plotPng, type Series } from '../eval/plot.ts';
import { gridPng } from '../node/image.ts';
import type { ArModel, ImageSampling } from '../ar/ar-model.ts';
import { tokensToImages } from '../ar/evaluate.ts';
import { CATEGORIES, promptOf, promptText } from '../ar/scenes.ts';
import type { Selftok } from '../tokenizer/model.ts';
import { scoresOf, type RlLog } from './train.ts';

/** A trailing moving average over `w` points (the per-step reward is noisy: P·G samples). */
export function movingAverage(ys: number[], w: number): number[] {
  let s = 0;
  return ys.map((y, i) => {
    s += y;
    if (i >= w) s -= ys[i - w];
    return s / Math.min(i + 1, w);
  });
}

/** reward | KL | entropy against the RL step, as one PNG. */
export async function rlCurvesPng(log: RlLog[], title = ''): Promise<Uint8Array> {
  const xs = log.map((l) => l.step);
  const w = Math.max(1, Math.round(log.length / 30));
  const line = (name: string, color: string, ys: number[]): Series => ({ name, color, xs, ys });
  return plotPng(
    [
      { title: `${title}mean reward (training prompts)`, xlabel: 'RL step', series: [line('per step', '#bbb', log.map((l) => l.reward)), line(`mean of ${w}`, '#c0392b', movingAverage(log.map((l) => l.reward), w))] },
      { title: 'KL(π‖π_ref) per token (k3)', xlabel: 'RL step', series: [line('KL', '#2471a3', log.map((l) => l.kl))] },
      { title: 'token entropy (nats)', xlabel: 'RL step', series: [line('entropy', '#1e8449', log.map((l) => l.entropy))] },
    ],
    { cols: 3 },
  );
}

export type BeforeAfterRow = { prompt: string; before: number[]; after: number[]; objectsBefore: number[]; objectsAfter: number[] };

/**
 * The first held-out prompt of each category, `n` images each with the same seeds from the
 * supervised model and from the RL model: a grid with one row per prompt (left half before,
 * right half after), each image's reward and the number of objects the scorer finds in it.
 */
export async function beforeAfter(before: ArModel, after: ArModel, tokenizer: Selftok, n: number, sampling: ImageSampling): Promise<{ png: Uint8Array; rows: BeforeAfterRow[] }> {
  const size = tokenizer.cfg.image.size;
  const per = size * size * 3;
  const grid: Float32Array[][] = [];
  const rows: BeforeAfterRow[] = [];
  for (const [i, cat] of CATEGORIES.entries()) {
    const spec = promptOf('heldout', cat, 0);
    const text = promptText(spec);
    const row: Float32Array[] = [];
    const scores: number[][] = [];
    const objects: number[][] = [];
    for (const m of [before, after]) {
      const codes = await m.generateImages(m.vocab.encode(text, 'prompt'), n, { ...sampling, seed: sampling.seed + 101 * i });
      const px = await tokensToImages(tokenizer, codes, n);
      for (let b = 0; b < n; b++) row.push(px.slice(b * per, (b + 1) * per));
      const verdicts = scoresOf([spec], px, n, size);
      scores.push(verdicts.map((s) => s.fraction));
      objects.push(verdicts.map((s) => s.objects.length));
    }
    grid.push(row);
    rows.push({ prompt: text, before: scores[0], after: scores[1], objectsBefore: objects[0], objectsAfter: objects[1] });
  }
  return { png: await gridPng(grid, size, 2), rows };
}
