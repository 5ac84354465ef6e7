// `npm run web`: builds the demo page (web/) and serves it with the shipped models (models/ is
// the public folder: /default/config.json, /scenes/model.safetensors, …).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  publicDir: fileURLToPath(new URL('../models', import.meta.url)),
  build: { outDir: fileURLToPath(new URL('../.cache/web', import.meta.url)), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4096 },
  preview: { host: '127.0.0.1', port: 5173 },
});
