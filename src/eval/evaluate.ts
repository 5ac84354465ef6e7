// `selftok eval`: reconstruction quality of a model on a held-out split.
// PSNR / SSIM of 50-step diffusion decoding, the same decoder given no tokens, a
// progressive curve over kept encoder-order prefixes (K/8, K/4, K/2, K, AND-ed with the
// per-step schedule mask), bits per pixel, and PNG grids. With a renderer, the one-step
// renderer is measured too. The token-swap probe shows what the coarse (high-index) and
// fine (low-index) tokens carry.
import type { DataSource } from '../data/source.ts';
import { gridPng } from '../node/image.ts';
import type { Selftok } from '../tokenizer/model.ts';
import { scoreAll, thumbnailBaselines, type Baselines } from './baselines.ts';
import { mean, psnr, ssim, SSIM_WINDOW } from './metrics.ts';

export type EvalOptions = {
  limit: number;
  steps: number;
  seed: number;
  /** Classifier-free guidance scale of the diffusion decoder (1 = none). */
  guidance: number;
  /** Initial-noise scale of the sampler (default 1). */
  temperature?: number;
  renderer: boolean;
  /** The no-token decode, the progressive curve and the token-swap probe (default true; off for quick checkpoint curves). */
  probes?: boolean;
  /** Images per compiled batch (padded, so one compilation serves every chunk). */
  chunk?: number;
  onProgress?: (done: number, total: number, what: string) => void;
};

export type SwapProbe = {
  tokens: number;
  /** RMS change of the 4×4-block-averaged image (global colour/layout), in 8-bit levels. */
  coarseSwap: { lowFreq: number; highFreq: number };
  fineSwap: { lowFreq: number; highFreq: number };
};

export type EvalResult = {
  model: { name: string; fingerprint: string; step: number };
  images: number;
  size: number;
  steps: number;
  guidance: number;
  temperature: number;
  K: number;
  codebookSize: number;
  bitsPerPixel: number;
  psnr: number;
  ssim: number;
  ssimWindow: string;
  /** Absent when the probes are off (EvalOptions.probes). */
  psnrNoTokens?: number;
  ssimNoTokens?: number;
  progressive: { tokens: number; psnr: number; ssim: number }[];
  /** Diffusion decoding (all tokens): MobileNetV2 feature distance and mean-colour error (baselines.ts). */
  featureDistance: number;
  colourError: number;
  renderer?: { psnr: number; ssim: number; featureDistance: number; colourError: number; imagesPerSecond: number };
  /** Bicubic thumbnails with the model's bits per image and with 4× them (baselines.ts). */
  baselines: Baselines;
  decodeImagesPerSecond: number;
  codebookUsage: number;
  swap?: SwapProbe;
  grids: string[];
  seconds: number;
};

type Images = Float32Array[];

function stack(images: Images): Float32Array {
  const n = images[0].length;
  const out = new Float32Array(images.length * n);
  images.forEach((im, i) => out.set(im, i * n));
  return out;
}
function unstack(x: Float32Array, B: number): Images {
  const n = x.length / B;
  return Array.from({ length: B }, (_, i) => x.slice(i * n, (i + 1) * n));
}

/** Run fn over fixed-size chunks of B items (the last one padded by repeating item 0). */
async function chunked(B: number, chunk: number, K: number, ids: Int32Array, fn: (ids: Int32Array, n: number) => Promise<Float32Array>): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let s = 0; s < B; s += chunk) {
    const n = Math.min(chunk, B - s);
    const part = new Int32Array(chunk * K);
    part.set(ids.subarray(s * K, (s + n) * K));
    for (let i = n; i < chunk; i++) part.set(ids.subarray(0, K), i * K);
    const res = unstack(await fn(part, chunk), chunk).slice(0, n);
    out.push(...res);
  }
  return out;
}

export async function encodeAll(model: Selftok, images: Images, chunk: number): Promise<Int32Array> {
  const K = model.K;
  // a model with a VAE encodes one image per call: the VAE's full-resolution activations are
  // large, and one batch size keeps jax-js's wasm heap (no coalescing) from fragmenting
  if (model.cfg.vae) chunk = 1;
  const ids = new Int32Array(images.length * K);
  for (let s = 0; s < images.length; s += chunk) {
    const part = images.slice(s, s + chunk);
    const n = part.length;
    while (part.length < chunk) part.push(images[0]);
    ids.set((await model.encode(stack(part), chunk)).subarray(0, n * K), s * K);
  }
  return ids;
}

function scores(refs: Images, recs: Images, size: number): { psnr: number; ssim: number } {
  return { psnr: mean(refs.map((r, i) => psnr(r, recs[i]))), ssim: mean(refs.map((r, i) => ssim(r, recs[i], size, size))) };
}

/** RMS difference (8-bit levels) of the 4×4 block means, and of what remains after them. */
function bandChange(a: Float32Array, b: Float32Array, size: number): { low: number; high: number } {
  const blk = 4;
  const g = size / blk;
  const lowA = new Float32Array(g * g * 3);
  const lowB = new Float32Array(g * g * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      for (let c = 0; c < 3; c++) {
        const i = ((Math.floor(y / blk) * g + Math.floor(x / blk)) * 3 + c);
        lowA[i] += a[(y * size + x) * 3 + c] / (blk * blk);
        lowB[i] += b[(y * size + x) * 3 + c] / (blk * blk);
      }
  let lo = 0;
  for (let i = 0; i < lowA.length; i++) lo += (lowA[i] - lowB[i]) ** 2;
  let hi = 0;
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      for (let c = 0; c < 3; c++) {
        const i = ((Math.floor(y / blk) * g + Math.floor(x / blk)) * 3 + c);
        const j = (y * size + x) * 3 + c;
        hi += (a[j] - lowA[i] - (b[j] - lowB[i])) ** 2;
      }
  // [−1, 1] → 8-bit levels: ×127.5
  return { low: Math.sqrt(lo / lowA.length) * 127.5, high: Math.sqrt(hi / a.length) * 127.5 };
}

export async function evaluate(model: Selftok, data: DataSource, o: EvalOptions): Promise<{ result: EvalResult; pngs: Map<string, Uint8Array> }> {
  const t0 = performance.now();
  const K = model.K;
  const size = model.imageSize;
  // one chunk size for every batch: one compilation, and jax-js's wasm allocator (free lists
  // per size class, no coalescing) reuses the same buffers
  const chunk = Math.min(o.chunk ?? 16, o.limit);
  const { images } = await data.heldOut(o.limit);
  const N = images.length;
  const probes = o.probes ?? true;
  const keeps = !probes ? [] : [...new Set([Math.max(1, Math.round(K / 8)), Math.max(1, Math.round(K / 4)), Math.max(1, Math.round(K / 2))])].filter((k) => k < K);
  const totalDecodes = probes ? 2 + keeps.length + 2 : 2;
  let done = 0;
  const tick = (what: string) => o.onProgress?.(++done, totalDecodes, what);

  const ids = await encodeAll(model, images, chunk);
  const used = new Set(ids).size;
  const dec = (keep: number) => chunked(N, chunk, K, ids, (part, n) => model.decode(part, n, { steps: o.steps, seed: o.seed, keep, guidance: o.guidance, temperature: o.temperature }));

  const tDec = performance.now();
  const full = await dec(K);
  const decodeImagesPerSecond = N / ((performance.now() - tDec) / 1000);
  tick('full');
  const fullScores = scores(images, full, size);
  const none = probes ? await dec(0) : null;
  if (probes) tick('no tokens');
  const noneScores = none ? scores(images, none, size) : undefined;
  const progressive: EvalResult['progressive'] = [];
  const progImages = new Map<number, Images>();
  for (const k of keeps) {
    const rec = await dec(k);
    progImages.set(k, rec);
    progressive.push({ tokens: k, ...scores(images, rec, size) });
    tick(`keep ${k}`);
  }
  progressive.push({ tokens: K, ...fullScores });
  progImages.set(K, full);

  let renderer: EvalResult['renderer'];
  let rendered: Images | null = null;
  if (o.renderer && model.hasRenderer) {
    const tr = performance.now();
    rendered = await chunked(N, chunk, K, ids, (part, n) => model.render(part, n));
    const imagesPerSecond = N / ((performance.now() - tr) / 1000);
    renderer = { ...(await scoreAll(images, rendered, size)), imagesPerSecond };
  }
  const fullExtra = await scoreAll(images, full, size);
  const baselines = await thumbnailBaselines(images, size, K * Math.log2(model.codebookSize));

  // token-swap probe over pairs (2i, 2i+1): replace A's highest-index (coarse) or
  // lowest-index (fine) quarter with B's, decode with the same seed, and measure how much
  // the low- and high-frequency content moved relative to A's own reconstruction
  let swap: SwapProbe | undefined;
  let swapped: Images = [];
  const pairs = probes ? Math.min(8, Math.floor(N / 2)) : 0;
  if (probes) {
    const q = Math.max(1, Math.round(K / 4));
    const swapIds = new Int32Array(pairs * 2 * K);
    for (let p = 0; p < pairs; p++) {
      const a = ids.subarray(2 * p * K, (2 * p + 1) * K);
      const b = ids.subarray((2 * p + 1) * K, (2 * p + 2) * K);
      const coarse = Int32Array.from(a);
      coarse.set(b.subarray(K - q), K - q);
      const fine = Int32Array.from(a);
      fine.set(b.subarray(0, q), 0);
      swapIds.set(coarse, 2 * p * K);
      swapIds.set(fine, (2 * p + 1) * K);
    }
    swapped = await chunked(pairs * 2, chunk, K, swapIds, (part, n) => model.decode(part, n, { steps: o.steps, seed: o.seed, guidance: o.guidance, temperature: o.temperature }));
    tick('swap');
    const cs = { low: [] as number[], high: [] as number[] };
    const fs = { low: [] as number[], high: [] as number[] };
    for (let p = 0; p < pairs; p++) {
      const base = full[2 * p];
      const c = bandChange(swapped[2 * p], base, size);
      const f = bandChange(swapped[2 * p + 1], base, size);
      cs.low.push(c.low);
      cs.high.push(c.high);
      fs.low.push(f.low);
      fs.high.push(f.high);
    }
    swap = {
      tokens: q,
      coarseSwap: { lowFreq: mean(cs.low), highFreq: mean(cs.high) },
      fineSwap: { lowFreq: mean(fs.low), highFreq: mean(fs.high) },
    };
  }

  // grids
  const pngs = new Map<string, Uint8Array>();
  const show = Math.min(8, N);
  const scale = Math.max(1, Math.round(96 / size));
  const recRows = [images.slice(0, show), full.slice(0, show)];
  if (rendered) recRows.push(rendered.slice(0, show));
  pngs.set('reconstructions.png', await gridPng(recRows, size, scale));
  if (none) {
    const progRows = images.slice(0, show).map((im, i) => [im, none[i], ...[...keeps, K].map((k) => progImages.get(k)![i])]);
    pngs.set('progressive.png', await gridPng(progRows, size, scale));
  }
  const swapRows = Array.from({ length: pairs }, (_, p) => [images[2 * p], images[2 * p + 1], full[2 * p], full[2 * p + 1], swapped[2 * p], swapped[2 * p + 1]]);
  if (pairs) pngs.set('token-swap.png', await gridPng(swapRows, size, scale));

  const result: EvalResult = {
    model: { name: model.cfg.name, fingerprint: model.fingerprint, step: model.step },
    images: N,
    size,
    steps: o.steps,
    guidance: o.guidance,
    temperature: o.temperature ?? 1,
    K,
    codebookSize: model.codebookSize,
    bitsPerPixel: model.bitsPerPixel,
    psnr: fullScores.psnr,
    ssim: fullScores.ssim,
    ssimWindow: `${SSIM_WINDOW}x${SSIM_WINDOW} uniform (scikit-image default)`,
    psnrNoTokens: noneScores?.psnr,
    ssimNoTokens: noneScores?.ssim,
    featureDistance: fullExtra.featureDistance,
    colourError: fullExtra.colourError,
    progressive,
    renderer,
    baselines,
    decodeImagesPerSecond,
    codebookUsage: used / model.codebookSize,
    swap,
    grids: [...pngs.keys()],
    seconds: (performance.now() - t0) / 1000,
  };
  return { result, pngs };
}

const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);

export function reportMarkdown(r: EvalResult, dataName: string): string {
  const L: string[] = [];
  L.push(`# Selftok evaluation: ${r.model.name} on ${dataName}`, '');
  L.push(`Model \`${r.model.fingerprint}\` (step ${r.model.step}); ${r.images} held-out images at ${r.size}×${r.size}; ${r.steps}-step Euler decoding${r.guidance === 1 ? '' : `, classifier-free guidance ${r.guidance}`}${r.temperature === 1 ? '' : `, initial-noise temperature ${r.temperature}`}.`, '');
  L.push('| metric | value |', '| --- | --- |');
  L.push(`| PSNR (8-bit, dB) | ${f2(r.psnr)} |`);
  L.push(`| SSIM (${r.ssimWindow}) | ${f3(r.ssim)} |`);
  if (r.psnrNoTokens !== undefined) {
    L.push(`| PSNR, same decoder with no tokens | ${f2(r.psnrNoTokens)} |`);
    L.push(`| PSNR gain from the tokens | ${f2(r.psnr - r.psnrNoTokens)} |`);
  }
  if (r.renderer) {
    L.push(`| renderer PSNR (one step) | ${f2(r.renderer.psnr)} |`);
    L.push(`| renderer SSIM | ${f3(r.renderer.ssim)} |`);
  }
  L.push(`| tokens × codebook | ${r.K} × ${r.codebookSize} (${r.baselines.bitsPerImage} bits per image) |`);
  L.push(`| bits per pixel | ${f3(r.bitsPerPixel)} |`);
  L.push(`| codebook entries used by these images | ${(100 * r.codebookUsage).toFixed(1)}% |`);
  L.push(`| ${r.steps}-step decode throughput | ${r.decodeImagesPerSecond.toFixed(2)} images/s |`);
  if (r.renderer) L.push(`| renderer throughput | ${r.renderer.imagesPerSecond.toFixed(2)} images/s |`);
  const b = r.baselines;
  L.push('', '## Against bicubic thumbnails at equal bits', '');
  L.push(
    `A thumbnail keeps s×s pixels of raw 24-bit colour (downscaled and upscaled back bicubically): s = ${b.sameBits.side} holds ${b.sameBits.bits} bits, about the model's ${b.bitsPerImage}; s = ${b.fourTimesBits.side} holds ${b.fourTimesBits.bits}, about 4× them. Feature distance: MobileNetV2 features (an LPIPS-like substitute, uncalibrated; lower is closer). Colour error: mean absolute error of each image's mean colour, 8-bit levels.`,
    '',
  );
  L.push('| decoder | PSNR | SSIM | feature distance | colour error |', '| --- | --- | --- | --- | --- |');
  L.push(`| ${r.steps}-step diffusion${r.guidance === 1 && r.temperature === 1 ? '' : ` (${[r.guidance === 1 ? '' : `guidance ${r.guidance}`, r.temperature === 1 ? '' : `temperature ${r.temperature}`].filter(Boolean).join(', ')})`} | ${f2(r.psnr)} | ${f3(r.ssim)} | ${f3(r.featureDistance)} | ${f2(r.colourError)} |`);
  if (r.renderer) L.push(`| one-step renderer | ${f2(r.renderer.psnr)} | ${f3(r.renderer.ssim)} | ${f3(r.renderer.featureDistance)} | ${f2(r.renderer.colourError)} |`);
  L.push(`| thumbnail ${b.sameBits.side}×${b.sameBits.side} (${b.sameBits.bits} bits) | ${f2(b.sameBits.psnr)} | ${f3(b.sameBits.ssim)} | ${f3(b.sameBits.featureDistance)} | ${f2(b.sameBits.colourError)} |`);
  L.push(`| thumbnail ${b.fourTimesBits.side}×${b.fourTimesBits.side} (${b.fourTimesBits.bits} bits) | ${f2(b.fourTimesBits.psnr)} | ${f3(b.fourTimesBits.ssim)} | ${f3(b.fourTimesBits.featureDistance)} | ${f2(b.fourTimesBits.colourError)} |`, '');
  if (r.psnrNoTokens !== undefined) {
    L.push('## Progressive reconstruction (first n encoder-order tokens kept)', '');
    L.push('| tokens kept | PSNR | SSIM |', '| --- | --- | --- |');
    L.push(`| 0 | ${f2(r.psnrNoTokens)} | ${f3(r.ssimNoTokens ?? NaN)} |`);
    for (const p of r.progressive) L.push(`| ${p.tokens} | ${f2(p.psnr)} | ${f3(p.ssim)} |`);
    L.push('', '![progressive](progressive.png)', '');
    L.push('Rows: original, no tokens, then the kept-token counts above, left to right.', '');
  }
  L.push('## Reconstructions', '', '![reconstructions](reconstructions.png)', '');
  L.push(r.renderer ? 'Rows: originals, 50-step diffusion decoding, one-step renderer.' : 'Rows: originals, 50-step diffusion decoding.', '');
  const swap = r.swap;
  if (swap) {
    L.push('## Token swap: what coarse and fine tokens carry', '');
    L.push(
      `For pairs (A, B), A's ${swap.tokens} highest-index tokens (coarse: used only at high noise) or its ${swap.tokens} lowest-index tokens (fine: used at every step) are replaced by B's, and the result is decoded with the same seed. Change relative to A's own reconstruction, RMS in 8-bit levels:`,
      '',
    );
    L.push('| swap | low-frequency change (4×4 block means) | high-frequency change (residual) |', '| --- | --- | --- |');
    L.push(`| B's coarse tokens into A | ${f2(swap.coarseSwap.lowFreq)} | ${f2(swap.coarseSwap.highFreq)} |`);
    L.push(`| B's fine tokens into A | ${f2(swap.fineSwap.lowFreq)} | ${f2(swap.fineSwap.highFreq)} |`);
    L.push('', '![token swap](token-swap.png)', '');
    L.push("Columns: A, B, A reconstructed, B reconstructed, A with B's coarse tokens, A with B's fine tokens.", '');
  }
  L.push(`_${r.seconds.toFixed(1)} s._`, '');
  return L.join('\n');
}
