// The installable package (issue #20, item 4): `npm pack` gives a tarball that a new project
// installs and imports in Node (compiled ESM + type declarations, no tsx, no src/), whose CLI
// runs with npx, and which a bundler takes into a page through its "browser" export (no Node
// module in the bundle) where it tokenizes a photo exactly as Node does. Installs from the npm
// cache that `npm ci` filled (no network).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp } from './helpers.ts';
import { CHROMIUM, CHROMIUM_FLAGS, noChromium, type Server } from './chromium.ts';

let app = '';
const run = (cmd: string, args: string[], cwd: string) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });

before(() => {
  const packDir = tmp('selftok-pack-');
  run('npm', ['pack', '--pack-destination', packDir], process.cwd());
  const tgz = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
  assert.ok(tgz, 'npm pack wrote no tarball');
  app = tmp('selftok-app-');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
  run('npm', ['install', '--prefer-offline', join(packDir, tgz)], app);
});

/** Tokens of a 64² PNG by the installed package in Node (sharp): the reference for the page. */
let nodeTokens = '';

test('npm pack: a new project installs the tarball, imports { Selftok } from "selftok" and runs npx selftok', () => {
  const pkg = join(app, 'node_modules', 'selftok');
  assert.ok(existsSync(join(pkg, 'dist', 'index.js')) && existsSync(join(pkg, 'dist', 'index.d.ts')) && existsSync(join(pkg, 'dist', 'browser.d.ts')));
  assert.ok(!existsSync(join(pkg, 'src')), 'the package ships compiled JavaScript, not sources');
  assert.ok(!existsSync(join(app, 'node_modules', 'tsx')), 'tsx is not needed at run time');
  writeFileSync(
    join(app, 'main.mjs'),
    `import { setupDevice, loadSelftok, loadImage, renderScene, randomScene, encodePng, Selftok, ArModel } from 'selftok';
import { writeFileSync } from 'node:fs';
await setupDevice('wasm');
const m = loadSelftok('node_modules/selftok/models/scenes');
writeFileSync('sample.png', await encodePng(renderScene(randomScene(7, m.imageSize)), m.imageSize, m.imageSize));
const ids = await m.encode(await loadImage('sample.png', m.imageSize), 1);
const opened = await Selftok.open('node_modules/selftok/models/scenes');
console.log(m.cfg.name, ids.length, opened.fingerprint === m.fingerprint, typeof ArModel);
console.log(Array.from(ids).join(','));
`,
  );
  const [head, tokens] = run('node', ['main.mjs'], app).trim().split('\n');
  assert.equal(head, 'scenes 32 true function');
  nodeTokens = tokens;
  assert.match(run('npx', ['selftok', '--help'], app), /Usage: selftok \[options\] \[command\][\s\S]*rl /);
});

let server: Server | null = null;
after(async () => {
  await server?.close();
});

test('the installed package in a bundled page: Vite takes its browser export (no Node module), and in Chromium it tokenizes the photo as Node does', async (t) => {
  assert.ok(nodeTokens, 'the Node test ran first');
  // a new project's page: index.html + page.js importing 'selftok', the model and the photo as static files
  mkdirSync(join(app, 'public'), { recursive: true });
  cpSync(join(app, 'node_modules', 'selftok', 'models', 'scenes'), join(app, 'public', 'scenes'), { recursive: true });
  cpSync(join(app, 'sample.png'), join(app, 'public', 'sample.png'));
  writeFileSync(join(app, 'index.html'), '<!doctype html><link rel="icon" href="data:,"><p id="out">loading</p><script type="module" src="./page.js"></script>\n');
  writeFileSync(
    join(app, 'page.js'),
    `import { setupDevice, Selftok, loadImage } from 'selftok';
const out = document.getElementById('out');
(async () => {
  await setupDevice('wasm');
  const model = await Selftok.open('scenes/'); // relative to the page
  const ids = await model.encode(await loadImage('sample.png', model.imageSize), 1);
  out.textContent = 'tokens ' + Array.from(ids).join(',');
})().catch((e) => (out.textContent = 'error: ' + e.message));
`,
  );
  const { build, preview, createLogger } = await import('vite');
  const warnings: string[] = [];
  const logger = createLogger('warn');
  logger.warn = (msg) => void warnings.push(msg);
  logger.warnOnce = (msg) => void warnings.push(msg);
  await build({ root: app, logLevel: 'warn', customLogger: logger, configFile: false, build: { outDir: join(app, 'dist'), target: 'es2022', chunkSizeWarningLimit: 4096 } });
  assert.deepEqual(warnings.filter((w) => /externalized|node:|Module .* has been/i.test(w)), [], 'Vite warnings about Node modules');
  const js = readdirSync(join(app, 'dist', 'assets')).filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(app, 'dist', 'assets', f), 'utf8')).join('\n');
  assert.ok(js.includes('Selftok') || js.length > 100_000, 'the bundle holds the library');
  assert.ok(!/from\s*["']node:|sharp|__vite-browser-external/.test(js), 'the bundle refers to no Node module');

  const skip = noChromium();
  if (skip) return t.skip(skip);
  server = (await preview({ root: app, configFile: false, logLevel: 'error', build: { outDir: join(app, 'dist') }, preview: { port: 0, host: '127.0.0.1' } })) as unknown as Server;
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS, '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(server.resolvedUrls!.local[0]);
    await page.waitForFunction(() => /^(tokens|error)/.test(document.getElementById('out')?.textContent ?? ''), null, { timeout: 120_000 });
    assert.deepEqual(errors, []);
    assert.equal(await page.textContent('#out'), `tokens ${nodeTokens}`);
  } finally {
    await browser.close();
  }
});
