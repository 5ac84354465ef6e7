import { Command, Option } from 'commander';
import { PERCEPTUAL_KINDS, type PerceptualKind } from '../train/renderer-loss.ts';
import { MobileNetV2 } from '../nn/mobilenet-v2.ts';
import { openSource } from '../data/source.ts';
import { runTraining } from '../train/run.ts';
import { resumableConfig, Trainer } from '../train/trainer.ts';
import { countParams, type Params } from '../nn/params.ts';
import { UserError } from '../util/errors.ts';
import { deviceOption, loadModel, modelOption, progressBar, startDevice, trainingOptions } from './common.ts';
import { StopOnSignal } from '../node/stop.ts';

export function trainRendererCommand(): Command {
  const cmd = new Command('train-renderer')
    .description('train the one-step renderer of a trained model (encoder and codebook frozen); writes the model + renderer to --out')
    .addHelpText(
      'after',
      '\nLoss: MSE + λ·perceptual, λ = 0.1 for the first 30% of steps then 0.5 (spec §8.2). The perceptual\nterm is a SUBSTITUTE for LPIPS (no LPIPS weights offline): --perceptual mobilenet is an\nLPIPS-like distance in pretrained MobileNetV2 features (nsfwjs package), without LPIPS\'s learned\nlayer weights (7.6 s/step vs 0.86 s/step for photo64 on 2-core wasm); --perceptual gradients is an\nL1 distance between image-gradient pyramids; --perceptual none trains on the MSE alone (the\nhighest PSNR).\n\nExample:\n  selftok train-renderer --model runs/tiny --data shapes --out runs/tiny-renderer --steps 1000\n',
    );
  cmd.addOption(
    new Option('--perceptual <kind>', 'perceptual term; auto = mobilenet on WebGPU, gradients on the CPU (9× cheaper there); a resumed run keeps its own')
      .choices(['auto', ...PERCEPTUAL_KINDS])
      .default('auto'),
  );
  cmd.option('--init-renderer <dir>', "start from this model's renderer (same config) instead of a copy of the decoder, e.g. after training the tokenizer further");
  return deviceOption(modelOption(trainingOptions(cmd))).action(async (o) => {
    // a resumed run already holds its renderer weights; starting it over from another model's would lose them
    if (o.resume && o.initRenderer) throw new UserError(`--init-renderer ${o.initRenderer}: cannot start a resumed run (${o.out}) from another renderer; drop --resume or --init-renderer`);
    const device = await startDevice(o.device);
    const perceptual: PerceptualKind = o.perceptual === 'auto' ? (device === 'webgpu' ? 'mobilenet' : 'gradients') : o.perceptual;
    const resumed = o.resume ? resumableConfig(o.out) : null;
    const model = resumed ? null : loadModel(o.model);
    const cfg = resumed ?? model!.cfg;
    if (model && o.initRenderer) {
      const from = loadModel(o.initRenderer);
      model.adoptRenderer(from, o.initRenderer);
      from.dispose();
    }
    const data = await openSource(o.data, cfg.image.size, cfg.train.cropScale);
    // fail before anything is written when the feature network cannot be loaded
    if (!resumed && perceptual === 'mobilenet') await MobileNetV2.load();
    let bar: ReturnType<typeof progressBar> | null = null;
    const stop = new StopOnSignal('train-renderer');
    const r = await runTraining({
      cfg: null,
      makeTrainer: () => Trainer.forRenderer(model!, o.seed, o.batch ?? model!.cfg.train.batch, o.lr ?? model!.cfg.train.lr, perceptual),
      data,
      dataSpec: o.data,
      out: o.out,
      steps: o.steps,
      seed: o.seed,
      resume: o.resume,
      batch: o.batch,
      lr: o.lr,
      cooldown: o.cooldown,
      ckptEvery: o.ckptEvery,
      sampleEvery: o.sampleEvery,
      logEvery: o.logEvery,
      workers: o.workers,
      shouldStop: stop.requested,
      onStart: (t) => {
        process.stderr.write(
          `selftok: renderer for ${t.cfg.name}: ${(countParams(t.model.params.ren as unknown as Params) / 1e6).toFixed(2)} M trainable params, perceptual ${t.perceptual}, batch ${t.batch}${t.workers > 1 ? ` over ${t.workers} workers` : ''}, lr ${t.lr}, from step ${t.step} to ${o.steps}\n`,
        );
        bar = progressBar('train-renderer', o.steps);
        bar.update(t.step);
      },
      onStep: (l) => {
        bar?.update(l.step, `loss ${l.loss.toFixed(4)} mse ${l.fm.toFixed(4)} ${l.ms.toFixed(0)}ms`);
        if (!process.stderr.isTTY && (l.step % o.logEvery === 0 || l.step === o.steps)) {
          process.stderr.write(`step ${l.step}: loss ${l.loss.toFixed(4)} mse ${l.fm.toFixed(5)} perceptual ${l.perceptual?.toFixed(5)} (λ ${l.lambdaP}) ${l.ms.toFixed(0)} ms\n`);
        }
      },
    });
    (bar as ReturnType<typeof progressBar> | null)?.stop();
    stop.finish(o.out, r.trainer.step);
    if (r.stopped) return;
    const l = r.last;
    console.log(l ? `trained renderer ${o.out}: step ${r.trainer.step}, mse ${l.fm.toFixed(5)}, ${r.seconds.toFixed(1)} s` : `trained renderer ${o.out}: already at step ${r.trainer.step}`);
  });
}
