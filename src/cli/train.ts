import { Command } from 'commander';
import { openSource } from '../data/source.ts';
import { bitsPerPixel } from '../tokenizer/config.ts';
import { countParams, type Params } from '../nn/params.ts';
import { runTraining } from '../train/run.ts';
import { deviceOption, loadModel, progressBar, startDevice, trainingOptions } from './common.ts';
import { StopOnSignal } from '../node/stop.ts';
import { adoptRecipe, fineTuneConfig, resumableConfig, Trainer } from '../train/trainer.ts';
import { UserError } from '../util/errors.ts';
import { loadConfig } from '../node/configs.ts';

export function trainCommand(): Command {
  const cmd = new Command('train')
    .description('train a Selftok tokenizer (encoder + VQ codebook + diffusion decoder)')
    .option('--config <name|file>', 'named config (tiny, small, photo64, scenes) or a JSON file; with --resume, a new training recipe: only its train and sampler sections may differ from the run\'s')
    .option('--init <dir>', "fine-tune a trained model: start from its encoder, codebook and decoder (fresh optimizer, step 0); --config then gives the recipe (only its train and sampler sections may differ from the model's)")
    .addHelpText(
      'after',
      '\nExamples:\n  selftok train --config tiny --data shapes --out runs/tiny --steps 2000 --device wasm\n' +
        '  selftok train --init models/default --config photo64 --data corpus --out runs/ft --steps 3000 --lr 5e-4\n',
    );
  return deviceOption(trainingOptions(cmd)).action(async (o) => {
    // config and recipe are checked before the device starts, so a bad file fails fast and alone
    // a resumed fine-tune holds its own weights; starting it over from the model would lose them
    if (o.resume && o.init) throw new UserError(`--init ${o.init}: cannot start a resumed run (${o.out}) from a model; drop --resume or --init`);
    const resumed = o.resume ? resumableConfig(o.out) : null;
    const recipe = resumed && o.config ? loadConfig(o.config) : undefined;
    // refused before anything is written; the data source below then uses the recipe's crops
    if (resumed && recipe) adoptRecipe(resumed, recipe, o.config);
    await startDevice(o.device);
    const from = o.init ? loadModel(o.init, ['encode', 'decode']) : null;
    const given = resumed ?? (o.config ? loadConfig(o.config) : null);
    // a fine-tune's data source uses the recipe's crops on the model's image size
    const cfg = from ? fineTuneConfig(from.cfg, given ?? from.cfg, o.config) : given;
    if (!cfg) throw new UserError('--config is required for a new training run');
    const data = await openSource(o.data, cfg.image.size, cfg.train.cropScale);
    let bar: ReturnType<typeof progressBar> | null = null;
    const stop = new StopOnSignal('train');
    const r = await runTraining({
      cfg: resumed ? null : cfg,
      recipe,
      makeTrainer: from ? () => Trainer.fromModel(from, cfg, o.init, o.seed, o.batch, o.lr) : undefined,
      data,
      dataSpec: o.data,
      out: o.out,
      steps: o.steps,
      batch: o.batch,
      lr: o.lr,
      cooldown: o.cooldown,
      seed: o.seed,
      resume: o.resume,
      ckptEvery: o.ckptEvery,
      sampleEvery: o.sampleEvery,
      logEvery: o.logEvery,
      workers: o.workers,
      shouldStop: stop.requested,
      onStart: (t) => {
        const c = t.cfg;
        process.stderr.write(
          `selftok: ${c.name}: ${(countParams(t.model.params as unknown as Params) / 1e6).toFixed(2)} M params, K=${c.K}, C=${c.quantizer.codebookSize}, ` +
            `${bitsPerPixel(c).toFixed(3)} bpp, batch ${t.batch}${t.workers > 1 ? ` over ${t.workers} workers` : ''}, lr ${t.lr}, from step ${t.step} to ${o.steps}` +
            `${t.initFrom ? `, fine-tuning ${t.initFrom}` : ''}\n`,
        );
        bar = progressBar('train', o.steps);
        bar.update(t.step);
      },
      onStep: (l) => {
        bar?.update(l.step, `loss ${l.loss.toFixed(4)} fm ${l.fm.toFixed(4)} ppl ${l.perplexity.toFixed(0)} ${l.ms.toFixed(0)}ms`);
        if (!process.stderr.isTTY && (l.step % o.logEvery === 0 || l.step === o.steps)) {
          process.stderr.write(
            `step ${l.step}: loss ${l.loss.toFixed(4)} flow ${l.fm.toFixed(4)} commit ${l.commit.toFixed(5)} entropy ${l.entropy.toFixed(3)} ` +
              (l.sceneProbe !== undefined ? `scene probe ${l.sceneProbe.toFixed(5)} ` : '') +
              `usage ${(100 * l.usage).toFixed(1)}% perplexity ${l.perplexity.toFixed(1)} dead-reset ${l.deadReset} ${l.ms.toFixed(0)} ms\n`,
          );
        }
      },
    });
    (bar as ReturnType<typeof progressBar> | null)?.stop();
    stop.finish(o.out, r.trainer.step);
    if (r.stopped) return;
    const l = r.last;
    console.log(
      l
        ? `trained ${o.out}: step ${r.trainer.step}, loss ${l.loss.toFixed(4)} (flow ${l.fm.toFixed(4)}), codebook perplexity ${l.perplexity.toFixed(1)}, ${r.seconds.toFixed(1)} s`
        : `trained ${o.out}: already at step ${r.trainer.step} (nothing to do)`,
    );
  });
}
