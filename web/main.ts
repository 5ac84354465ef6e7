// The demo page (issue #20): the library in a browser. A shipped model is loaded over HTTP
// (the same config.json + model.safetensors as on disk); an image picked or dropped by the user
// becomes tokens, then an image again by the one-step renderer and by the 50-step diffusion
// decoder, with a coarse-to-fine strip. Below it the AR models (issue #18): a prompt becomes four
// images (scenes-zero, then the scenes renderer), and each image is read back as text: its pixels
// become tokens again (the scenes encoder) and scenes-ar captions them and answers a question.
// Query: ?model=<folder URL>&device=auto|webgpu|wasm (&ar=, &reader=, &tokenizer= for the scenes models).
// For tests the page marks its state in data-testid elements (backend, tokens, status).
import { setupDevice, Selftok, ArModel, DEFAULT_CFG, answerQuestions, captionImages, loadImage, drawImage, type DeviceChoice } from '../src/browser.ts';

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
  // text → image → text, loaded on first use: the RL-tuned AR model draws, the supervised one reads
  // (as the CLI's demo does: scenes-ar captions better, scenes-zero generates better)
  let scenes: Promise<{ ar: ArModel; reader: ArModel; tokenizer: Selftok }> | null = null;
  const openScenes = () =>
    (scenes ??= (async () => {
      const at = (key: string, dir: string) => new URL(q.get(key) ?? dir, location.href).href;
      const [ar, reader, tokenizer] = await Promise.all([ArModel.open(at('ar', 'scenes-zero/')), ArModel.open(at('reader', 'scenes-ar/')), Selftok.open(at('tokenizer', 'scenes/'), ['encode', 'render'])]);
      await ar.checkTokenizer(tokenizer, 'scenes/');
      await reader.checkTokenizer(tokenizer, 'scenes/');
      return { ar, reader, tokenizer };
    })());
  // the generated images' tokens as the encoder reads their rendered pixels (n × K), for the reader
  let readBack: { codes: Int32Array; n: number } | null = null;
  const page = window as unknown as { selftokGenerated: number[]; selftokCaptions: string[]; selftokAnswers: string[] };
  const generate = async (): Promise<void> => {
    const genStatus = document.querySelector('[data-testid=generate-status]')!;
    genStatus.textContent = 'working';
    const { ar, reader, tokenizer } = await openScenes();
    const t = performance.now();
    const n = 4;
    const codes = await ar.generateImages(ar.vocab.encode($<HTMLInputElement>('prompt').value, 'prompt'), n, { seed: 0, cfg: DEFAULT_CFG, temperature: 1, topK: 0 });
    page.selftokGenerated = Array.from(codes);
    const px = await tokenizer.render(codes, n);
    $('gen-time').textContent = `(${((performance.now() - t) / 1000).toFixed(2)} s)`;
    const s = tokenizer.imageSize;
    readBack = { codes: await tokenizer.encode(px, n), n };
    const caps = await captionImages(reader, readBack.codes, n);
    page.selftokCaptions = caps;
    const row = $('generated');
    row.replaceChildren();
    for (let b = 0; b < n; b++) {
      const fig = document.createElement('figure');
      const c = document.createElement('canvas');
      const cap = document.createElement('figcaption');
      cap.dataset.testid = 'caption';
      cap.textContent = caps[b];
      fig.append(c, cap);
      row.append(fig);
      drawImage(c, px.subarray(b * s * s * 3, (b + 1) * s * s * 3), s);
    }
    $('ask').removeAttribute('disabled');
    genStatus.textContent = 'done';
  };
  const ask = async (): Promise<void> => {
    const askStatus = document.querySelector('[data-testid=ask-status]')!;
    if (!readBack) return;
    askStatus.textContent = 'working';
    $('answers').textContent = '';
    const { reader } = await openScenes();
    const question = $<HTMLInputElement>('question').value;
    const words = reader.vocab.encode(question, 'question');
    const asked = Array.from({ length: readBack.n }, (_, image) => ({ image, question, words }));
    const answers = await answerQuestions(reader, readBack.codes, asked);
    page.selftokAnswers = answers;
    $('answers').textContent = answers.map((a, i) => `image ${i + 1}: ${a}`).join(' · ');
    askStatus.textContent = 'done';
  };
  const onError = (which: string) => (e: unknown) => {
    console.error(e);
    document.querySelector(`[data-testid=${which}-status]`)!.textContent = `error: ${(e as Error).message}`;
  };
  $('generate').addEventListener('click', () => generate().catch(onError('generate')));
  $('ask').addEventListener('click', () => ask().catch(onError('ask')));

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
