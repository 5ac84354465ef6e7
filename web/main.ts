// The demo page (issue #20): the library in a browser. A shipped model is loaded over HTTP
// (the same config.json + model.safetensors as on disk); an image picked or dropped by the user
// becomes tokens, then an image again by the one-step renderer and by the 50-step diffusion
// decoder, with a coarse-to-fine strip. Query: ?model=<folder URL>&device=auto|webgpu|wasm.
// For tests the page marks its state in data-testid elements (backend, tokens, status).
import { setupDevice, Selftok, ArModel, DEFAULT_CFG, loadImage, drawImage, type DeviceChoice } from '../src/browser.ts';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const q = new URLSearchParams(location.search);
const status = (s: string): void => {
  document.querySelector('[data-testid=status]')!.textContent = s;
};
const timings: string[] = [];
const timed = (label: string, t0: number): void => {
  timings.push(`${label} ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  $('timings').textContent = `(${timings.join(', ')})`;
};

async function main(): Promise<void> {
  const device = await setupDevice((q.get('device') ?? 'auto') as DeviceChoice);
  document.querySelector('[data-testid=backend]')!.textContent = device;
  const url = new URL(q.get('model') ?? 'default/', location.href).href;
  $('model').textContent = url;
  let t0 = performance.now();
  const model = await Selftok.open(url);
  $('load').textContent = `model loaded in ${((performance.now() - t0) / 1000).toFixed(2)} s`;
  $('k').textContent = String(model.K);
  const size = model.imageSize;
  status('ready');

  const run = async (file: Blob): Promise<void> => {
    status('working');
    timings.length = 0;
    const x = await loadImage(file, size);
    drawImage($<HTMLCanvasElement>('input'), x, size);
    t0 = performance.now();
    const ids = await model.encode(x, 1);
    timed('tokens', t0);
    document.querySelector('[data-testid=tokens]')!.textContent = Array.from(ids).join(',');
    const result: { tokens: number[]; render: number[] | null } = { tokens: Array.from(ids), render: null };
    (window as unknown as { selftok: typeof result }).selftok = result;
    if (model.hasRenderer) {
      t0 = performance.now();
      const r = await model.render(ids, 1);
      timed('renderer', t0);
      drawImage($<HTMLCanvasElement>('render'), r, size);
      result.render = Array.from(r);
    }
    t0 = performance.now();
    const progress = $<HTMLProgressElement>('progress');
    const steps = Number(q.get('steps') ?? 50);
    progress.max = steps;
    $('steps').textContent = String(steps);
    const d = await model.decode(ids, 1, { steps, seed: 0, onStep: (i) => (progress.value = i + 1) });
    timed(`diffusion ${steps} steps`, t0);
    drawImage($<HTMLCanvasElement>('diffusion'), d, size);
    // coarse to fine: the first k encoder-order tokens (the DiTi prefix), 10 steps each
    const strip = $('strip');
    strip.replaceChildren();
    for (let k = Math.max(1, model.K / 8); k <= model.K; k *= 2) {
      const fig = document.createElement('figure');
      const c = document.createElement('canvas');
      const cap = document.createElement('figcaption');
      cap.textContent = `${k} tokens`;
      fig.append(c, cap);
      strip.append(fig);
      drawImage(c, await model.decode(ids, 1, { steps: 10, seed: 0, keep: k }), size);
    }
    status('done');
  };
  // text → image, loaded on first use: the RL-tuned AR model and the scenes tokenizer's renderer
  let scenes: Promise<{ ar: ArModel; tokenizer: Selftok }> | null = null;
  const generate = async (): Promise<void> => {
    const genStatus = document.querySelector('[data-testid=generate-status]')!;
    genStatus.textContent = 'working';
    scenes ??= (async () => {
      const ar = await ArModel.open(new URL(q.get('ar') ?? 'scenes-zero/', location.href).href);
      const tokenizer = await Selftok.open(new URL(q.get('tokenizer') ?? 'scenes/', location.href).href, ['encode', 'render']);
      await ar.checkTokenizer(tokenizer, 'scenes/');
      return { ar, tokenizer };
    })();
    const { ar, tokenizer } = await scenes;
    const t = performance.now();
    const n = 4;
    const codes = await ar.generateImages(ar.vocab.encode($<HTMLInputElement>('prompt').value, 'prompt'), n, { seed: 0, cfg: DEFAULT_CFG, temperature: 1, topK: 0 });
    (window as unknown as { selftokGenerated: number[] }).selftokGenerated = Array.from(codes);
    const px = await tokenizer.render(codes, n);
    const s = tokenizer.imageSize;
    const row = $('generated');
    row.replaceChildren();
    for (let b = 0; b < n; b++) {
      const c = document.createElement('canvas');
      row.append(c);
      drawImage(c, px.subarray(b * s * s * 3, (b + 1) * s * s * 3), s);
    }
    $('gen-time').textContent = `(${((performance.now() - t) / 1000).toFixed(2)} s)`;
    genStatus.textContent = 'done';
  };
  $('generate').addEventListener('click', () =>
    generate().catch((e) => {
      console.error(e);
      document.querySelector('[data-testid=generate-status]')!.textContent = `error: ${(e as Error).message}`;
    }),
  );

  const input = $<HTMLInputElement>('file');
  input.addEventListener('change', () => input.files?.[0] && run(input.files[0]).catch(fail));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => e.preventDefault());
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer?.files[0];
    if (f) run(f).catch(fail);
  });
}

function fail(e: unknown): void {
  console.error(e);
  status(`error: ${(e as Error).message ?? e}`);
}

main().catch(fail);
