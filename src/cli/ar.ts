// The AR model's commands (issue #18): ar-train, generate, caption, ask, geneval. Thin: the
// work is in src/ar/.
import { Command, Option } from 'commander';
import { basename, dirname, join } from 'node:path';
import { countParams, type Params } from '../nn/params.ts';
import { readRgb, gridPng, encodePng } from '../node/image.ts';
import { tokenFileJson } from '../io/tokens.ts';
import { DEFAULT_CFG, type ImageSampling } from '../ar/ar-model.ts';
import { HELD_OUT_SEED, geneval, pickDecoder, positionLoss, tokensToImages, understanding, type GenevalResult, type UnderstandingResult } from '../ar/evaluate.ts';
import { tokenizerCeiling, type CeilingResult } from '../ar/ceiling.ts';
import { loadArConfig, runArTraining } from '../ar/run.ts';
import { CATEGORIES, randomScene, renderScene, toUnitRange } from '../ar/scenes.ts';
import { caption } from '../ar/text.ts';
import { DEFAULT_BEAM, RELATION_METHODS, answerQuestions, captionImages } from '../ar/ask.ts';
import type { Selftok } from '../tokenizer/model.ts';
import { UserError } from '../util/errors.ts';
import { OutputSet } from '../node/fsx.ts';
import { tokensFor } from './decode.ts';
import { PACKAGE_ROOT, deviceOption, loadModel, parseFloatPos, parseInt10, progressBar, startDevice, workersOption } from './common.ts';
import { StopOnSignal } from '../node/stop.ts';
import { loadArPair, loadArModel } from '../node/models.ts';
import { toFloat, undoNearestUpscale } from '../io/pixels.ts';

export const DEFAULT_AR = join(PACKAGE_ROOT, 'models', 'scenes-ar');
/** The RL-tuned AR model (issue #19): the default for generating images; scenes-ar stays the default for captions and answers. */
export const DEFAULT_RL = join(PACKAGE_ROOT, 'models', 'scenes-zero');
export { DEFAULT_CFG };

function arModelOption(cmd: Command, defaultModel = DEFAULT_AR): Command {
  return cmd
    .option('--model <dir>', 'AR model directory', defaultModel)
    .option('--tokenizer <dir>', "the tokenizer directory (default: the one the AR model's config records)");
}

function samplingOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--decoder <decoder>', "tokens → image: the tokenizer's one-step renderer or its diffusion decoder (default: the renderer when it has one)").choices(['renderer', 'diffusion']))
    .option('--seed <n>', 'sampling seed', parseInt10('--seed'), 0)
    .option('--cfg <w>', 'classifier-free guidance weight W: l = l_uncond + W·(l_cond − l_uncond); 1 = none', parseFloatPos('--cfg', true), DEFAULT_CFG)
    .option('--temperature <t>', 'sampling temperature of the visual tokens (0 = greedy)', parseFloatPos('--temperature', true), 1)
    .option('--top-k <k>', 'sample among the k most likely visual tokens (0 = all)', parseInt10('--top-k'), 0);
}

function sampling(o: { seed: number; cfg: number; temperature: number; topK: number }): ImageSampling {
  return { seed: o.seed, cfg: o.cfg, temperature: o.temperature, topK: o.topK };
}

export function arTrainCommand(): Command {
  const cmd = new Command('ar-train')
    .description('train the autoregressive model on a tokenizer\'s tokens of captioned scenes: text → image, image → text')
    .requiredOption('--tokenizer <dir>', 'the scenes tokenizer (its tokens are the visual words)')
    .requiredOption('--data <source>', 'scenes (the only source with captions)')
    .requiredOption('--out <dir>', 'output AR model directory (checkpoints, pool, log)')
    .option('--config <name|file>', 'AR config: a name in configs/ar/ or a JSON file', 'scenes')
    .addOption(new Option('--order <order>', 'visual token order in the sequences: ar (reversed encoder order, the paper\'s) or encoder').choices(['ar', 'encoder']))
    .option('--steps <n>', 'total training steps', parseInt10('--steps', 1), 3000)
    .option('--seed <n>', 'random seed', parseInt10('--seed'), 0)
    .option('--resume', 'continue the run in --out', false)
    .option('--init <dir>', "fine-tune a trained AR model: start from its weights (fresh optimizer, step 0); --config then gives the recipe (only its train section may differ from the model's)")
    .option('--ckpt-every <n>', 'checkpoint interval (steps)', parseInt10('--ckpt-every', 1), 250)
    .option('--log-every <n>', 'log interval (steps)', parseInt10('--log-every', 1), 25)
    .addHelpText('after', '\nExamples:\n  selftok ar-train --tokenizer models/scenes --data scenes --out runs/scenes-ar --steps 3000\n  selftok ar-train --tokenizer models/scenes --data scenes --init models/scenes-ar --config my-recipe.json --out runs/ft --steps 2000\n');
  return deviceOption(workersOption(cmd)).action(async (o) => {
    if (o.data !== 'scenes') throw new UserError(`--data ${o.data}: the AR model trains on captioned data; only 'scenes' has captions`);
    if (o.resume && o.init) throw new UserError(`--init ${o.init}: cannot start a resumed run (${o.out}) from a model; drop --resume or --init`);
    const cfg = loadArConfig(o.config);
    if (o.order) cfg.order = o.order;
    await startDevice(o.device);
    const tokenizer = loadModel(o.tokenizer, ['encode']);
    let poolBar: ReturnType<typeof progressBar> | null = null;
    let bar: ReturnType<typeof progressBar> | null = null;
    // armed before the pool: a stop asked while it is tokenized takes effect once it is saved
    const stop = new StopOnSignal('ar-train');
    const r = await runArTraining({
      tokenizer,
      tokenizerDir: o.tokenizer,
      cfg,
      out: o.out,
      steps: o.steps,
      seed: o.seed,
      resume: o.resume,
      ckptEvery: o.ckptEvery,
      logEvery: o.logEvery,
      workers: o.workers,
      init: o.init ? { model: loadArModel(o.init), where: o.init } : undefined,
      shouldStop: stop.requested,
      onPool: (d, t) => {
        poolBar ??= progressBar('tokenize', t);
        poolBar.update(d);
      },
      onStart: (t) => {
        (poolBar as ReturnType<typeof progressBar> | null)?.stop();
        const c = t.cfg;
        // the model itself (what its folder holds) apart from the training-only reading probe
        const probe = t.model.params.readProbe ? countParams(t.model.params.readProbe as unknown as Params) : 0;
        process.stderr.write(
          `selftok: ${c.name}: ${((countParams(t.model.params as unknown as Params) - probe) / 1e6).toFixed(2)} M params${probe ? ` (+ ${(probe / 1e6).toFixed(2)} M of the training-only reading probe)` : ''}, vocab ${c.vocab}, ${c.depth}×${c.dim}, ${c.order} order, ` +
            `batch ${c.train.batch}${t.workers > 1 ? ` over ${t.workers} workers` : ''}, lr ${c.train.lr}, from step ${t.step} to ${o.steps}${o.init ? `, fine-tuning ${o.init}` : ''}\n`,
        );
        bar = progressBar('ar-train', o.steps);
        bar.update(t.step);
      },
      onStep: (l) => {
        bar?.update(l.step, `loss ${l.loss.toFixed(4)} ${l.ms.toFixed(0)}ms`);
        if (!process.stderr.isTTY && (l.step % o.logEvery === 0 || l.step === o.steps)) {
          process.stderr.write(`step ${l.step}: loss ${l.loss.toFixed(4)} lr ${l.lr.toExponential(2)} ${l.ms.toFixed(0)} ms\n`);
        }
      },
    });
    (bar as ReturnType<typeof progressBar> | null)?.stop();
    stop.finish(o.out, r.trainer.step);
    if (r.stopped) return;
    console.log(
      r.loss === null
        ? `ar-train ${o.out}: already at step ${r.trainer.step} (nothing to do)`
        : `ar-train ${o.out}: step ${r.trainer.step}, loss ${r.loss.toFixed(4)}, ${r.seconds.toFixed(1)} s`,
    );
  });
}

export function generateCommand(): Command {
  const cmd = new Command('generate')
    .description('generate images from a prompt with the AR model (visual tokens, then the tokenizer\'s renderer)')
    .argument('<prompt>', 'a scene prompt, e.g. "a red circle left of a blue square"')
    .requiredOption('-o, --out <dir>', 'output folder: one PNG per image, a grid and tokens.json')
    .option('-n <n>', 'number of images', parseInt10('-n', 1), 4)
    .option('--scale <s>', 'PNG upscale factor (nearest neighbour)', parseInt10('--scale', 1), 4)
    .addHelpText('after', '\nExample:\n  selftok generate "two red circles" -n 4 -o out/red-circles --cfg 3\n');
  return deviceOption(samplingOptions(arModelOption(cmd, DEFAULT_RL))).action(async (prompt: string, o) => {
    await startDevice(o.device);
    const { ar, tokenizer } = await loadArPair(o.model, o.tokenizer);
    const words = ar.vocab.encode(prompt, 'prompt');
    const codes = await ar.generateImages(words, o.n, sampling(o));
    const px = await tokensToImages(tokenizer, codes, o.n, pickDecoder(tokenizer, o.decoder));
    const size = tokenizer.cfg.image.size;
    const per = size * size * 3;
    const imgs = Array.from({ length: o.n }, (_, b) => px.slice(b * per, (b + 1) * per));
    const out = new OutputSet();
    const names = imgs.map((_, b) => `image-${b}.png`);
    for (const [b, im] of imgs.entries()) out.add(join(o.out, names[b]), await encodePng(im, size, size, o.scale));
    out.add(join(o.out, 'grid.png'), await gridPng([imgs], size, o.scale));
    const K = tokenizer.cfg.K;
    out.add(
      join(o.out, 'tokens.json'),
      tokenFileJson({
        model: { name: tokenizer.cfg.name, fingerprint: tokenizer.fingerprint },
        K,
        codebookSize: tokenizer.cfg.quantizer.codebookSize,
        order: 'encoder',
        images: names.map((n, b) => ({ source: n, ids: Array.from(codes.subarray(b * K, (b + 1) * K)) })),
      }),
    );
    out.commit();
    console.log(`generated ${o.n} image(s) for "${prompt}" → ${o.out} (cfg ${o.cfg}, temperature ${o.temperature}, top-k ${o.topK || 'all'}, seed ${o.seed})`);
  });
}

/**
 * The tokenizer's codes (encoder order) for the inputs: images of exactly the tokenizer's size or
 * nearest-neighbour upscales of one (the scenes tokenizer does not resample: any other size is
 * refused), or token files (.json/.npy)
 * made by this tokenizer. Returns the codes and one name per image.
 */
async function inputCodes(paths: string[], tokenizer: Selftok): Promise<{ codes: Int32Array; names: string[] }> {
  const size = tokenizer.cfg.image.size;
  const per = size * size * 3;
  const K = tokenizer.cfg.K;
  const parts: Int32Array[] = [];
  const names: string[] = [];
  for (const p of paths) {
    if (/\.(json|npy)$/i.test(p)) {
      const t = tokensFor(tokenizer, p, 'encoder');
      parts.push(t.ids);
      names.push(...t.names.map((n) => `${p}:${n}`));
      continue;
    }
    const img = await readRgb(p);
    // exactly the tokenizer's size, or a nearest-neighbour upscale of such an image (generate's PNGs)
    const pixels = undoNearestUpscale(img, size);
    if (!pixels) throw new UserError(`${p}: the image is ${img.width}×${img.height}; this tokenizer reads ${size}×${size} (or a nearest-neighbour upscale of it, as generate writes)`);
    parts.push(await tokenizer.encode(toFloat(pixels).subarray(0, per), 1));
    names.push(p);
  }
  const codes = new Int32Array(names.length * K);
  let at = 0;
  for (const c of parts) {
    codes.set(c, at);
    at += c.length;
  }
  return { codes, names };
}

export function captionCommand(): Command {
  const cmd = new Command('caption')
    .description('describe scene images with the AR model (the canonical caption, e.g. "two red circles and a blue square")')
    .argument('<images...>', 'PNG/JPEG images of the tokenizer\'s size, or token files (.json/.npy) of its tokens')
    .option('--json', 'print JSON: [{ image, caption }]', false)
    .addOption(beamOption())
    .addHelpText('after', '\nExample:\n  selftok caption scene1.png scene2.png --json\n');
  return deviceOption(arModelOption(cmd)).action(async (images: string[], o) => {
    await startDevice(o.device, o.json);
    const { ar, tokenizer } = await loadArPair(o.model, o.tokenizer);
    const { codes, names } = await inputCodes(images, tokenizer);
    const caps = await captionImages(ar, codes, names.length, { beam: o.beam });
    if (o.json) console.log(JSON.stringify(names.map((image, i) => ({ image, caption: caps[i] })), null, 2));
    else for (const [i, p] of names.entries()) console.log(`${p}: ${caps[i]}`);
  });
}

export function askCommand(): Command {
  const cmd = new Command('ask')
    .description('answer a question about a scene image with one word')
    .argument('<image>', 'a PNG/JPEG image of the tokenizer\'s size, or a token file of one image')
    .argument('<question>', '"how many {shape}s?", "what colour is the {shape}?" or "is the {shape} {rel} the {shape}?"')
    .addOption(relationsOption())
    .addOption(beamOption())
    .addHelpText('after', '\nExamples:\n  selftok ask scene.png "how many circles?"\n  selftok ask scene.png "is the circle left of the square?"\n');
  return deviceOption(arModelOption(cmd)).action(async (image: string, question: string, o) => {
    await startDevice(o.device, true);
    const { ar, tokenizer } = await loadArPair(o.model, o.tokenizer);
    const words = ar.vocab.encode(question, 'question'); // an unknown word is refused before the image is read
    const { codes, names } = await inputCodes([image], tokenizer);
    if (names.length !== 1) throw new UserError(`${image}: holds ${names.length} images; ask about one`);
    const [answer] = await answerQuestions(ar, codes, [{ image: 0, question, words }], { relations: o.relations, beam: o.beam });
    console.log(answer);
  });
}

/** How answers are decoded (src/ar/ask.ts, src/ar/beam.ts). */
function beamOption(): Option {
  return new Option('--beam <w>', 'answers and captions: the most likely among the answers the question admits (every canonical caption, a number, a colour, yes/no), by a beam of W; 0 = free greedy words')
    .argParser(parseInt10('--beam'))
    .default(DEFAULT_BEAM);
}

/** How relation questions are answered (src/ar/ask.ts). */
function relationsOption(): Option {
  return new Option('--relations <how>', 'relation questions (is the {shape} {rel} the {shape}?): "likelihood" compares how likely the image is under the statement and under its opposite; "decode" reads the yes/no the model writes')
    .choices([...RELATION_METHODS])
    .default('likelihood');
}

export type GenevalReport = {
  overall: number;
  categories: GenevalResult['categories'];
  composition: GenevalResult['composition'];
  objectsPerImage: GenevalResult['objectsPerImage'];
  ceiling: { overall: number; categories: CeilingResult['categories']; decoder: CeilingResult['decoder']; perCategory: number };
  understanding: Omit<UnderstandingResult, 'examples'> & { examples: UnderstandingResult['examples'] };
  positionLoss: { perPosition: number[]; mean: number; sequences: number; order: 'ar' | 'encoder' };
  settings: GenevalResult['settings'];
  model: { dir: string; step: number; order: 'ar' | 'encoder'; params: number; tokenizer: string };
  prompts: GenevalResult['prompts'];
  seconds: number;
};

export function genevalCommand(): Command {
  const cmd = new Command('geneval')
    .description('GenEval-style benchmark of the AR model on held-out prompts, with the tokenizer ceiling, understanding accuracy and the loss by token position')
    .requiredOption('--report <file.md>', 'markdown report (a grid PNG per category is written next to it)')
    .requiredOption('--json <file>', 'the figures as JSON')
    .option('--per-prompt <n>', 'images per prompt', parseInt10('--per-prompt', 1), 4)
    .option('--prompts <n>', 'held-out prompts per category', parseInt10('--prompts', 1), 24)
    .option('--scenes <n>', 'held-out scenes for captions and questions', parseInt10('--scenes', 1), 100)
    .addOption(relationsOption())
    .addOption(beamOption())
    .addHelpText('after', '\nExample:\n  selftok geneval --model models/scenes-ar --report out/geneval.md --json out/geneval.json --per-prompt 4\n');
  return deviceOption(samplingOptions(arModelOption(cmd))).action(async (o) => {
    if (!o.report.endsWith('.md')) throw new UserError(`--report ${o.report}: must be a .md file`);
    const t0 = performance.now();
    await startDevice(o.device);
    const { ar, tokenizer } = await loadArPair(o.model, o.tokenizer);
    const bar = progressBar('geneval', CATEGORIES.length * o.prompts);
    const g = await geneval(ar, tokenizer, { perPrompt: o.perPrompt, promptsPerCategory: o.prompts, sampling: sampling(o), decoder: o.decoder, onPrompt: (d) => bar.update(d) });
    bar.stop();
    const ceiling = await tokenizerCeiling(tokenizer, { perCategory: o.prompts * o.perPrompt, decoder: g.settings.decoder });
    const u = await understanding(ar, tokenizer, o.scenes, { relations: o.relations, beam: o.beam });
    const pl = await positionLoss(ar, tokenizer, o.prompts);
    const report: GenevalReport = {
      overall: g.overall,
      categories: g.categories,
      composition: g.composition,
      objectsPerImage: g.objectsPerImage,
      ceiling: { overall: ceiling.overall, categories: ceiling.categories, decoder: ceiling.decoder, perCategory: ceiling.perCategory },
      understanding: u,
      positionLoss: { ...pl, order: ar.cfg.order },
      settings: g.settings,
      model: { dir: o.model, step: ar.step, order: ar.cfg.order, params: countParams(ar.params as unknown as Params), tokenizer: `${tokenizer.cfg.name} (${tokenizer.fingerprint})` },
      prompts: g.prompts,
      seconds: (performance.now() - t0) / 1000,
    };
    const out = new OutputSet();
    const dir = dirname(o.report);
    const size = tokenizer.cfg.image.size;
    for (const cat of CATEGORIES) out.add(join(dir, `geneval-${cat}.png`), await gridPng(g.images[cat], size, 2));
    out.add(o.report, genevalMarkdown(report));
    out.add(o.json, JSON.stringify(report, null, 2) + '\n');
    out.commit();
    const cats = CATEGORIES.map((c) => `${c} ${g.categories[c].toFixed(2)}`).join(', ');
    console.log(
      `geneval ${o.model}: overall ${g.overall.toFixed(3)} (${cats}); composition ${g.composition.score.toFixed(3)} on ${g.composition.prompts} prompts; ` +
        `ceiling ${ceiling.overall.toFixed(3)}; ${g.objectsPerImage.overall.toFixed(2)} objects per image; caption exact ${u.captionExact.toFixed(3)}, questions ${u.questionAccuracy.toFixed(3)}; ${report.seconds.toFixed(0)} s`,
    );
  });
}

function genevalMarkdown(r: GenevalReport): string {
  const pct = (x: number) => (Number.isNaN(x) ? 'n/a' : x.toFixed(3));
  const s = r.settings;
  const lines = [
    `# GenEval-style report: ${r.model.dir}`,
    '',
    `AR model step ${r.model.step}, ${(r.model.params / 1e6).toFixed(2)} M parameters, ${r.model.order} token order; tokenizer ${r.model.tokenizer}.`,
    `Held-out prompts: ${s.promptsPerCategory} per category × ${s.perPrompt} images; sampling cfg ${s.cfg}, temperature ${s.temperature}, top-k ${s.topK || 'all'}, seed ${s.seed}; tokens → image by the ${s.decoder}. ${r.seconds.toFixed(0)} s.`,
    '',
    '| category | AR model | tokenizer ceiling | objects per image (AR model) |',
    '| --- | --- | --- | --- |',
    ...CATEGORIES.map((c) => `| ${c} | ${pct(r.categories[c])} | ${pct(r.ceiling.categories[c])} | ${r.objectsPerImage[c].toFixed(2)} |`),
    `| **overall** | **${pct(r.overall)}** | ${pct(r.ceiling.overall)} | ${r.objectsPerImage.overall.toFixed(2)} |`,
    '',
    `Composition hold-out (prompts naming blue triangle, yellow circle or purple square, never named in training): ${pct(r.composition.score)} on ${r.composition.prompts} prompts.`,
    '',
    '## Understanding (held-out scenes)',
    '',
    `Caption exact match ${pct(r.understanding.captionExact)} on ${r.understanding.scenes} scenes; question accuracy ${pct(r.understanding.questionAccuracy)} ` +
      `(count ${pct(r.understanding.byKind.count.accuracy)}, colour ${pct(r.understanding.byKind.colour.accuracy)}, relation ${pct(r.understanding.byKind.relation.accuracy)}` +
      (r.understanding.relationsBy === 'likelihood'
        ? `, answered by the likelihood of the image under the statement and its opposite; decoded yes/no: ${pct(r.understanding.relationDecoded?.accuracy ?? NaN)})`
        : ', decoded yes/no)') +
      (r.understanding.byKind.where ? `; where questions (a training aid, not in the accuracy) ${pct(r.understanding.byKind.where.accuracy)} of ${r.understanding.byKind.where.n}.` : '.'),
    r.understanding.decoding.method === 'beam'
      ? `Captions and decoded answers: the most likely among the answers each question admits (every canonical caption, a number, a colour), beam ${r.understanding.decoding.beam} (\`--beam\`; 0 = free greedy words).`
      : 'Captions and decoded answers: free greedy words (`--beam 0`).',
    `Scenes that show a hold-out combination (${r.understanding.heldOutCombos.scenes}): caption ${pct(r.understanding.heldOutCombos.captionExact)}, questions ${pct(r.understanding.heldOutCombos.questionAccuracy)}.`,
    '',
    '| truth | predicted |',
    '| --- | --- |',
    ...r.understanding.examples.map((e) => `| ${e.caption} | ${e.predicted} |`),
    '',
    `## Validation loss by visual token position (${r.positionLoss.order} order, ${r.positionLoss.sequences} held-out prompt scenes)`,
    '',
    `Mean ${r.positionLoss.mean.toFixed(3)} nats. Position 0 is the first visual token generated.`,
    '',
    ...positionTable(r.positionLoss.perPosition),
    '',
    '## Samples',
    '',
    ...CATEGORIES.map((c) => `${c}: ![${c}](geneval-${c}.png)`),
    '',
  ];
  return lines.join('\n');
}

/** The loss by position in four equal groups of positions (a table row each). */
function positionTable(per: number[]): string[] {
  const g = Math.ceil(per.length / 4);
  const groups = [0, 1, 2, 3].map((i) => per.slice(i * g, (i + 1) * g)).filter((x) => x.length);
  return [
    '| positions | ' + groups.map((x, i) => `${i * g}–${i * g + x.length - 1}`).join(' | ') + ' |',
    '| --- |' + groups.map(() => ' --- |').join(''),
    '| nats | ' + groups.map((x) => (x.reduce((a, b) => a + b, 0) / x.length).toFixed(3)).join(' | ') + ' |',
  ];
}

/** Prompts the demo generates (none names a composition hold-out, all are held-out texts or close). */
export const DEMO_PROMPTS = ['a red circle left of a blue square', 'three yellow triangles', 'a green square and an orange circle'];

/**
 * The AR part of `npm start`: images for three prompts and captions of two held-out scenes,
 * added to the demo's outputs (generated.png, captions.png); returns the lines to print.
 */
export async function arDemo(dir: string, generator: string, out: OutputSet, outDir: string, scale: number): Promise<string[]> {
  const { ar, tokenizer } = await loadArPair(dir);
  // the generator must speak the captioner's tokens (the RL model is tuned from it)
  const gen = generator === dir ? ar : loadArModel(generator);
  await gen.checkTokenizer(tokenizer, generator);
  const size = tokenizer.cfg.image.size;
  const per = size * size * 3;
  const lines: string[] = [];
  const rows: Float32Array[][] = [];
  for (const [i, prompt] of DEMO_PROMPTS.entries()) {
    const codes = await gen.generateImages(gen.vocab.encode(prompt, 'prompt'), 4, { seed: i, cfg: DEFAULT_CFG, temperature: 1, topK: 0 });
    const px = await tokensToImages(tokenizer, codes, 4);
    rows.push(Array.from({ length: 4 }, (_, b) => px.slice(b * per, (b + 1) * per)));
    lines.push(`generated "${prompt}" (${basename(generator)}): 4 images (row ${i + 1} of generated.png)`);
  }
  out.add(join(outDir, 'generated.png'), await gridPng(rows, size, scale));
  const scenes = [0, 1].map((i) => randomScene((HELD_OUT_SEED + 1000 + i) >>> 0, size));
  const x = new Float32Array(2 * per);
  scenes.forEach((sc, i) => x.set(toUnitRange(renderScene(sc)), i * per));
  const caps = await captionImages(ar, await tokenizer.encode(x, 2), 2);
  out.add(join(outDir, 'captions.png'), await gridPng([[x.subarray(0, per), x.subarray(per)]], size, scale));
  scenes.forEach((sc, i) => lines.push(`caption of held-out scene ${i + 1} (captions.png, ${basename(dir)}): "${caps[i]}"; truth "${caption(sc)}"`));
  if (gen !== ar) gen.dispose();
  ar.dispose();
  return lines;
}
