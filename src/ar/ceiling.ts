// The tokenizer ceiling of the scenes benchmark (issue #18, item 3): held-out prompts, a
// ground-truth scene for each, its reconstruction through the tokenizer (renderer or diffusion
// decoder), and the scorer's verdict on the reconstruction. An AR model can do no better
// than its tokenizer lets the image come back.
import type { Selftok } from '../tokenizer/model.ts';
import { CATEGORIES, namesHeldOutCombo, promptOf, promptText, renderScene, sceneForPrompt, toUnitRange, type Category } from './scenes.ts';
import { scorePrompt } from './scorer.ts';
import { HELD_OUT_SEED, toBytes } from './evaluate.ts';

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
    const truth = specs.map((s, i) => renderScene(sceneForPrompt(s, (HELD_OUT_SEED + i) >>> 0, size)));
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

/** The ceiling as a report section (appended to `selftok eval --data scenes`). */
export function ceilingMarkdown(c: CeilingResult): string {
  const f = (x: number) => (Number.isNaN(x) ? 'n/a' : x.toFixed(3));
  return [
    '',
    `## Tokenizer ceiling (scenes benchmark, ${c.decoder})`,
    '',
    `The scorer on reconstructions of ground-truth scenes for held-out prompts, ${c.perCategory} per category: what an AR model on these tokens can reach at best.`,
    '',
    '| category | reconstructions | ground truth |',
    '| --- | --- | --- |',
    ...CATEGORIES.map((k) => `| ${k} | ${f(c.categories[k])} | ${f(c.groundTruth[k])} |`),
    `| **overall** | **${f(c.overall)}** | |`,
    '',
    `Composition hold-out prompts: ${f(c.composition.score)} on ${c.composition.prompts}.`,
    '',
    ...(c.failures.length ? ['Failures (prompt: unmet requirements):', '', ...c.failures.slice(0, 12).map((x) => `- ${x}`), ''] : []),
  ].join('\n');
}
