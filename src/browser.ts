// The library in a web page (package.json's "browser" export of 'selftok'): the platform-free core,
// models opened by URL (Selftok.open / ArModel.open), images through the canvas, WebGPU where the
// browser gives an adapter, else wasm.
//   import { setupDevice, Selftok, loadImage } from 'selftok';
//   await setupDevice();  const model = await Selftok.open('https://…/default/');
//   const ids = await model.encode(await loadImage(file, model.imageSize), 1);
export * from './core.ts';
export { setupDevice } from './engine/device.ts';
export { loadImage, drawImage, toImageData, type ImageInput } from './browser/image.ts';
