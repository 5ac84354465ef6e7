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
