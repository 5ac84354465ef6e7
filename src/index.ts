// The public library API in Node: the platform-free core (src/core.ts) with Node's side — the
// file system (model folders, configs, token files), images through sharp, WebGPU through Dawn —
// and the training, evaluation and RL jobs. A page gets src/browser.ts instead.
//   import { setupDevice, loadSelftok, loadImage } from 'selftok';
export * from './core.ts';
export { setupDevice } from './node/device.ts';
export { folderFiles, fileFingerprint, readTokens } from './node/files.ts';
export { loadSelftok, loadArModel, saveModel, loadArPair, isArModelDir } from './node/models.ts';
export { loadConfig, namedConfigs } from './node/configs.ts';
export { loadImage, encodePng, gridPng } from './node/image.ts';
export { openSource, type DataSource } from './data/source.ts';
export { Trainer } from './train/trainer.ts';
export { geneval, understanding, tokensToImages } from './ar/evaluate.ts';
export { runRl, GrpoTrainer, RL_DEFAULTS, type RlConfig, type RlLog } from './rl/train.ts';
