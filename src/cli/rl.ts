// `selftok rl`: GRPO on an AR model's visual tokens from prompts and program rewards (issue #19).
// Thin: the work is in src/rl/.
import { Command } from 'commander';
import { join } from 'node:path';
import { beforeAfter, rlCurvesPng } from '../rl/figures.ts';
import { RL_DEFAULTS, runRl } from '../rl/train.ts';
import { OutputSet } from '../node/fsx.ts';
import { DEFAULT_AR, DEFAULT_CFG } from './ar.ts';
import { deviceOption, loadModel, parseFloatPos, parseInt10, progressBar, startDevice } from './common.ts';
import { StopOnSignal } from '../node/stop.ts';
import { tokenizerDirOf, loadArModel } from '../node/models.ts';

export function rlCommand(): Command {
  const d = RL_DEFAULTS;
  const cmd = new Command('rl')
    .description('reinforcement learning of an AR model on its visual tokens (GRPO): prompts and the scorer\'s rewards only, no images')
    .option('--model <dir>', 'the supervised AR model to start from (also the frozen KL reference)', DEFAULT_AR)
    .option('--tokenizer <dir>', "its tokenizer (default: the one the AR model's config records); it must have a renderer")
    .requiredOption('--out <dir>', 'output: the RL-tuned AR model, its checkpoint, rl-log.jsonl, curves.png, samples.png')
    .option('--steps <n>', 'RL steps (one update each)', parseInt10('--steps', 1), d.steps)
    .option('--group <g>', 'images sampled per prompt (G)', parseInt10('--group', 2), d.group)
    .option('--prompts-per-step <p>', 'training prompts per step (P)', parseInt10('--prompts-per-step', 1), d.promptsPerStep)
    .option('--kl <beta>', 'weight of the KL penalty to the supervised model', parseFloatPos('--kl', true), d.kl)
    .option('--lr <x>', 'AdamW learning rate', parseFloatPos('--lr'), d.lr)
    .option('--warmup <n>', 'linear learning-rate warm-up steps', parseInt10('--warmup'), d.warmup)
    .option('--seed <n>', 'random seed (prompts and samples of each step)', parseInt10('--seed'), 0)
    .option('--resume', 'continue the run in --out', false)
    .option('--ckpt-every <n>', 'checkpoint interval (steps)', parseInt10('--ckpt-every', 1), 25)
    .addHelpText('after', '\nExample:\n  selftok rl --model models/scenes-ar --out runs/scenes-zero --steps 300 --seed 0\n');
  return deviceOption(cmd).action(async (o) => {
    await startDevice(o.device);
    const refDir: string = o.model;
    const tokDir = tokenizerDirOf(refDir, loadArModel(refDir).tokenizer, o.tokenizer);
    const tokenizer = loadModel(tokDir, ['encode', 'render']);
    let bar: ReturnType<typeof progressBar> | null = null;
    const stop = new StopOnSignal('rl');
    const r = await runRl({
      refDir,
      tokenizer,
      out: o.out,
      cfg: { steps: o.steps, group: o.group, promptsPerStep: o.promptsPerStep, kl: o.kl, lr: o.lr, warmup: o.warmup, seed: o.seed },
      resume: o.resume,
      ckptEvery: o.ckptEvery,
      shouldStop: stop.requested,
      onStart: (t) => {
        const c = t.cfg;
        process.stderr.write(`selftok rl: ${refDir} → ${o.out}: ${c.promptsPerStep} prompts × ${c.group} samples per step, β ${c.kl}, lr ${c.lr}, seed ${c.seed}, from step ${t.step} to ${c.steps}\n`);
        bar = progressBar('rl', c.steps);
        bar.update(t.step);
      },
      onStep: (l) => {
        bar?.update(l.step, `reward ${l.reward.toFixed(3)} kl ${l.kl.toFixed(4)} ${l.ms.toFixed(0)}ms`);
        if (!process.stderr.isTTY && l.step % 25 === 0) process.stderr.write(`step ${l.step}: reward ${l.reward.toFixed(3)} kl ${l.kl.toFixed(4)} entropy ${l.entropy.toFixed(3)} ${l.ms.toFixed(0)} ms\n`);
      },
    });
    (bar as ReturnType<typeof progressBar> | null)?.stop();
    stop.finish(o.out, r.trainer.step);
    if (r.stopped) {
      r.trainer.dispose();
      return;
    }
    const out = new OutputSet();
    out.add(join(o.out, 'curves.png'), await rlCurvesPng(r.log));
    const ba = await beforeAfter(r.trainer.ref, r.trainer.policy.model, tokenizer, 4, { seed: 0, cfg: DEFAULT_CFG, temperature: 1, topK: 0 });
    out.add(join(o.out, 'samples.png'), ba.png);
    out.add(join(o.out, 'samples.json'), JSON.stringify({ note: 'held-out prompts, one per category: 4 images before RL (left half of samples.png) and after (right half), same seeds, guidance W ' + DEFAULT_CFG, rows: ba.rows }, null, 2) + '\n');
    out.commit();
    const tail = r.log.slice(-Math.max(1, Math.round(r.log.length / 10)));
    const avg = (k: 'reward' | 'kl') => tail.reduce((a, l) => a + l[k], 0) / tail.length;
    console.log(`rl ${o.out}: step ${r.trainer.step}; last ${tail.length} steps: reward ${avg('reward').toFixed(3)}, KL ${avg('kl').toFixed(4)}; ${r.seconds.toFixed(0)} s; curves.png, samples.png`);
    r.trainer.dispose();
  });
}
