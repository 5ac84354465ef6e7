// The library's platform-free core: what src/index.ts (Node) and src/browser.ts (a page) both
// export. Every module reachable from here imports nothing that only Node has (test/isomorphic.test.ts);
// files, images and the GPU come from the platform's side (src/node/, src/browser/).
export { activeDevice, DEVICE_CHOICES, type DeviceChoice } from './engine/device.ts';
export { Selftok, ALL_PARTS, type DecodeOptions, type ModelPart } from './tokenizer/model.ts';
export { validateConfig, bitsPerPixel, pixelSize, type SelftokConfig } from './tokenizer/config.ts';
export { TokenSchedule } from './tokenizer/schedule.ts';
export { httpFiles, isUrl, type ModelFiles, type StoredModel } from './io/model-files.ts';
export { encodeSafetensors, decodeSafetensors, type Tensor } from './io/safetensors.ts';
export { safetensorsFromBytes, type CheckpointReader } from './io/checkpoint.ts';
export { toFloat, toUint8, tile, type RawImage } from './io/pixels.ts';
export { parseTokens, reverseRows, tokenFileJson, type LoadedTokens, type TokenFile, type TokenOrder } from './io/tokens.ts';
export { psnr, ssim } from './eval/metrics.ts';
export { UserError } from './util/errors.ts';
// The AR model on Selftok tokens (text → image, image → text; issue #18).
export { ArModel, DEFAULT_CFG, type ImageSampling, type TokenizerRef } from './ar/ar-model.ts';
export { answerQuestions, captionImages, DEFAULT_BEAM, RELATION_METHODS, type Asked, type AskOptions, type RelationMethod } from './ar/ask.ts';
export { CAPTION_QUESTION } from './ar/text.ts';
export { parsePrompt, promptText, renderScene, randomScene, sceneForPrompt, type PromptSpec, type Scene } from './ar/scenes.ts';
export { scorePrompt, detect } from './ar/scorer.ts';
// Visual RL's objective (issue #19): group advantages and the k3 KL estimate.
export { groupAdvantages, klK3 } from './rl/grpo.ts';
