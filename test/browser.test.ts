// The library in a real browser (issue #20, item 3): the demo page (web/), built with Vite and
// served on localhost, driven in Debian's Chromium by playwright-core (no browser download).
// A bundled sample photo goes in; the page's token ids must equal Node's, and its renderer
// output must match Node's within 0.01 dB PSNR. Once on wasm, once on WebGPU over SwiftShader
// (skipped with the reason when Chromium finds no adapter). A console error fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { wasm, tmp } from './helpers.ts';
import { CHROMIUM, CHROMIUM_FLAGS as FLAGS, noChromium, type Server } from './chromium.ts';
import { encodePng, loadImage } from '../src/node/image.ts';
import { psnr } from '../src/eval/metrics.ts';
import { DEFAULT_CFG } from '../src/ar/ar-model.ts';
import { answerQuestions, captionImages } from '../src/ar/ask.ts';
import { loadSelftok, loadArModel } from '../src/node/models.ts';

const ASKED = 'is the circle left of the square?';
let server: Server | null = null;
let url = '';
let samplePng = '';
let node: { tokens: number[]; render: Float32Array; input: Float32Array };

before(async () => {
  await wasm();
  if (noChromium()) return;
  const { build, preview } = await import('vite');
  await build({ configFile: 'web/vite.config.ts', logLevel: 'error' });
  server = (await preview({ configFile: 'web/vite.config.ts', logLevel: 'error', preview: { port: 0, host: '127.0.0.1' } })) as unknown as Server;
  url = server.resolvedUrls!.local[0];
  // the sample photo at the model's size (so that no resampling differs between sharp and canvas)
  const model = loadSelftok('models/default');
  const input = await loadImage('assets/samples/apple.jpg', model.imageSize);
  samplePng = join(tmp('selftok-web-'), 'apple-64.png');
  writeFileSync(samplePng, await encodePng(input, model.imageSize, model.imageSize));
  const x = await loadImage(samplePng, model.imageSize);
  const ids = await model.encode(x, 1);
  node = { tokens: Array.from(ids), render: await model.render(ids, 1), input: x };
  model.dispose();
});

after(async () => {
  await server?.close();
});

type PageRun = { backend: string; tokens: string; render: number[] | null; timings: string; generated: number[] | null; captions: string[] | null; answers: string[] | null; errors: string[] };

async function runPage(device: 'wasm' | 'auto', flags: string[], opts: { screenshot?: string; generate?: boolean } = {}): Promise<PageRun> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...FLAGS, ...flags] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${url}?device=${device}&steps=10`);
    // the page marks its state in data-testid="status": ready (model loaded), done, or error: …
    const settled = (states: string[]) => page.waitForFunction((ok) => {
      const s = document.querySelector('[data-testid=status]')?.textContent ?? '';
      return ok.includes(s) || s.startsWith('error');
    }, states, { timeout: 300_000 });
    await settled(['ready', 'done']);
    await page.locator('input[type=file]').first().setInputFiles(samplePng);
    await settled(['done']);
    const state = await page.textContent('[data-testid=status]');
    assert.equal(state, 'done', `page status: ${state}`);
    let generated: number[] | null = null;
    let captions: string[] | null = null;
    let answers: string[] | null = null;
    if (opts.generate) {
      await page.click('#generate');
      await page.waitForFunction(() => /^(done|error)/.test(document.querySelector('[data-testid=generate-status]')?.textContent ?? ''), null, { timeout: 300_000 });
      assert.equal(await page.textContent('[data-testid=generate-status]'), 'done');
      generated = await page.evaluate(() => (window as unknown as { selftokGenerated: number[] }).selftokGenerated);
      captions = await page.evaluate(() => (window as unknown as { selftokCaptions: string[] }).selftokCaptions);
      assert.deepEqual(await page.locator('[data-testid=caption]').allTextContents(), captions, 'the captions shown under the images');
      await page.fill('#question', ASKED);
      await page.click('#ask');
      await page.waitForFunction(() => /^(done|error)/.test(document.querySelector('[data-testid=ask-status]')?.textContent ?? ''), null, { timeout: 300_000 });
      assert.equal(await page.textContent('[data-testid=ask-status]'), 'done');
      answers = await page.evaluate(() => (window as unknown as { selftokAnswers: string[] }).selftokAnswers);
      if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
      // a word outside the vocabulary is refused on the page in one line, naming it
      await page.fill('#question', 'how many hexagons?');
      await page.click('#ask');
      await page.waitForFunction(() => /^(done|error)/.test(document.querySelector('[data-testid=ask-status]')?.textContent ?? ''), null, { timeout: 60_000 });
      assert.match((await page.textContent('[data-testid=ask-status]')) ?? '', /^error: .*hexagons/);
      errors.splice(0, errors.length, ...errors.filter((e) => !/hexagons/.test(e)));
    }
    if (opts.screenshot && !opts.generate) await page.screenshot({ path: opts.screenshot, fullPage: true });
    return {
      backend: (await page.textContent('[data-testid=backend]')) ?? '',
      tokens: (await page.textContent('[data-testid=tokens]')) ?? '',
      render: await page.evaluate(() => (window as unknown as { selftok: { render: number[] | null } }).selftok.render),
      timings: (await page.textContent('#timings')) ?? '',
      generated,
      captions,
      answers,
      errors,
    };
  } finally {
    await browser.close();
  }
}

function checkAgainstNode(r: PageRun): void {
  assert.deepEqual(r.errors, [], 'console errors');
  assert.equal(r.tokens, node.tokens.join(','), 'token ids, page vs selftok encode in Node');
  assert.ok(r.render, 'the page rendered');
  const page = Float32Array.from(r.render!);
  const dB = Math.abs(psnr(node.input, page) - psnr(node.input, node.render));
  assert.ok(dB <= 0.01, `renderer PSNR differs from Node's by ${dB.toFixed(4)} dB`);
}

test('browser, wasm: the page tokenizes a photo exactly as Node does, renders it within 0.01 dB, generates from a prompt the tokens Node samples, and captions and answers as Node does', async (t) => {
  if (!server) return t.skip(noChromium() ?? 'no server');
  mkdirSync('.cache', { recursive: true });
  const r = await runPage('wasm', ['--disable-gpu'], { screenshot: '.cache/web-screenshot.png', generate: true });
  assert.equal(r.backend, 'wasm');
  checkAgainstNode(r);
  // text → image: the page's scenes-zero samples the same 4 × 32 tokens as Node with the same seed
  const ar = loadArModel('models/scenes-zero');
  const want = await ar.generateImages(ar.vocab.encode('a red circle left of a blue square', 'prompt'), 4, { seed: 0, cfg: DEFAULT_CFG, temperature: 1, topK: 0 });
  assert.deepEqual(r.generated, Array.from(want));
  ar.dispose();
  // image → text: the page reads its images back (render, encode) and scenes-ar captions them and
  // answers a question about each, as Node does from the same tokens
  const tokenizer = loadSelftok('models/scenes', ['encode', 'render']);
  const reader = loadArModel('models/scenes-ar');
  const codes = await tokenizer.encode(await tokenizer.render(want, 4), 4);
  assert.deepEqual(r.captions, await captionImages(reader, codes, 4));
  const words = reader.vocab.encode(ASKED, 'question');
  assert.deepEqual(r.answers, await answerQuestions(reader, codes, [0, 1, 2, 3].map((image) => ({ image, question: ASKED, words }))));
  assert.ok(r.answers!.every((a) => a === 'yes' || a === 'no'), `yes/no answers: ${r.answers}`);
  reader.dispose();
  tokenizer.dispose();
  t.diagnostic(`wasm timings ${r.timings}`);
});

test('browser, WebGPU over SwiftShader: the same tokens and renderer output (skipped where Chromium finds no adapter)', async (t) => {
  if (!server) return t.skip(noChromium() ?? 'no server');
  const r = await runPage('auto', ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader']);
  if (r.backend !== 'webgpu') return t.skip(`Chromium gave the page no WebGPU adapter (it ran on ${r.backend}); the wasm test covers the page`);
  checkAgainstNode(r);
  t.diagnostic(`webgpu timings ${r.timings}`);
});
