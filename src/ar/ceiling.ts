// The tokenizer ceiling of the scenes benchmark (issue #18, item 3): held-out prompts, a
// ground-truth scene for each, its reconstruction through the tokenizer (renderer or diffusion
// decoder), and the scorer's verdict on the reconstruction. An AR model can do no better
// than its tokenizer lets the image come back.
import type { Selftok } from '../tokenizer/model.ts';
import { CATEGORIES, namesHeldOutCombo, promptOf, promptText, renderScene, sceneForPrompt, toUnitRange, type Category } from './scenes.ts';
import { scorePrompt } from './scorer.ts';

export type CeilingResult = {
  decoder: 'renderer' | 'diffusion';
  perCategory: number;
  categories: Record<Category, number>;
  overall: number;
  /** Held-out prompts that name a composition hold-out combination. */
  composition: { prompts: number; score: number };
  groundTruth: Record<Category, number>;
  failures: string[];
};

const toBytes = (x: Float32Array): Uint8Array => Uint8Array.from(x, (v) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5))));

export async function tokenizerCeiling(model: Selftok, opts: { perCategory: number; decoder: 'renderer' | 'diffusion'; steps?: number }): Promise<CeilingResult> {
  const size = model.cfg.image.size;
  const n = size * size * 3;
  const categories = {} as Record<Category, number>;
  const groundTruth = {} as Record<Category, number>;
  const failures: string[] = [];
  let comp = 0;
  let compN = 0;
  for (const cat of CATEGORIES) {
    const specs = Array.from({ length: opts.perCategory }, (_, i) => promptOf('heldout', cat, i));
    const truth = specs.map((s, i) => renderScene(sceneForPrompt(s, i, size)));
    const batch = 16;
    let sum = 0;
    let gt = 0;
    for (let s = 0; s < specs.length; s += batch) {
      const B = Math.min(batch, specs.length - s);
      const x = new Float32Array(B * n);
      for (let b = 0; b < B; b++) x.set(toUnitRange(truth[s + b]), b * n);
      const ids = await model.encode(x, B);
      const y = opts.decoder === 'renderer' ? await model.render(ids, B) : await model.decode(ids, B, { steps: opts.steps ?? 50, seed: 0 });
      for (let b = 0; b < B; b++) {
        const spec = specs[s + b];
        const r = scorePrompt(spec, toBytes(y.subarray(b * n, (b + 1) * n)), size);
        gt += scorePrompt(spec, truth[s + b], size).score;
        sum += r.score;
        if (namesHeldOutCombo(spec)) {
          compN++;
          comp += r.score;
        }
        if (!r.score && failures.length < 24) failures.push(`${promptText(spec)}: ${r.requirements.filter((q) => !q.ok).map((q) => q.what).join(', ')}`);
      }
    }
    categories[cat] = sum / specs.length;
    groundTruth[cat] = gt / specs.length;
  }
  const overall = CATEGORIES.reduce((a, c) => a + categories[c], 0) / CATEGORIES.length;
  return { decoder: opts.decoder, perCategory: opts.perCategory, categories, overall, composition: { prompts: compN, score: compN ? comp / compN : NaN }, groundTruth, failures };
}
