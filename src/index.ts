// The public library API: load a model, tokenize, decode, render.
//   import { setupDevice, Selftok, loadImage } from 'selftok';
export { setupDevice, type DeviceChoice } from './engine/device.ts';
export { Selftok, type DecodeOptions } from './tokenizer/model.ts';
export { loadConfig, bitsPerPixel, type SelftokConfig } from './tokenizer/config.ts';
export { TokenSchedule } from './tokenizer/schedule.ts';
export { loadImage, encodePng } from './io/image.ts';
export { readTokens, reverseRows, type TokenFile, type TokenOrder } from './io/tokens.ts';
export { psnr, ssim } from './eval/metrics.ts';
export { openSource, type DataSource } from './data/source.ts';
export { Trainer } from './train/trainer.ts';
// The AR model on Selftok tokens (text → image, image → text) and its benchmark (issue #18).
export { ArModel, loadArPair, type ImageSampling } from './ar/ar-model.ts';
export { geneval, understanding, tokensToImages } from './ar/evaluate.ts';
export { parsePrompt, promptText, renderScene, randomScene, sceneForPrompt, type PromptSpec, type Scene } from './ar/scenes.ts';
export { scorePrompt, detect } from './ar/scorer.ts';
// Visual RL: GRPO on the visual tokens (issue #19).
export { runRl, GrpoTrainer, RL_DEFAULTS, type RlConfig, type RlLog } from './rl/train.ts';
export { groupAdvantages, klK3 } from './rl/grpo.ts';
