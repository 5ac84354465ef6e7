// Model files loaded the same way from a folder or over HTTP (issue #20, the browser's way in):
// Selftok.open of a URL gives the model loadSelftok gives, to the token and the fingerprint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { wasm } from './helpers.ts';
import { Selftok } from '../src/tokenizer/model.ts';
import { UserError } from '../src/util/errors.ts';
import { renderScene, randomScene, toUnitRange } from '../src/ar/scenes.ts';
import { loadSelftok } from '../src/node/models.ts';

let server: Server;
let base = '';

before(async () => {
  await wasm();
  // a static server of models/ (and one broken config), as a page's host would be
  server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/broken/config.json') return void res.end('{"K": ');
    const file = join('models', path);
    if (!path.includes('..') && existsSync(file)) res.end(readFileSync(file));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});

after(() => server.close());

test('Selftok.open over HTTP and from a folder: the same tokens, renderer output and fingerprint as loadSelftok', async () => {
  const local = loadSelftok('models/scenes');
  const remote = await Selftok.open(`${base}/scenes/`);
  const folder = await Selftok.open('models/scenes');
  const x = new Float32Array(2 * 64 * 64 * 3);
  [0, 1].forEach((i) => x.set(toUnitRange(renderScene(randomScene(0x80000000 + i, 64))), i * 64 * 64 * 3));
  const want = await local.encode(x, 2);
  assert.deepEqual(Array.from(await remote.encode(x, 2)), Array.from(want));
  assert.deepEqual(Array.from(await folder.encode(x, 2)), Array.from(want));
  assert.equal(remote.fingerprint, local.fingerprint);
  assert.equal(folder.fingerprint, local.fingerprint);
  assert.equal(await remote.tokenFingerprint(), await local.tokenFingerprint());
  const a = await local.render(want, 2);
  const b = await remote.render(want, 2);
  assert.equal(Math.max(...a.map((v, i) => Math.abs(v - b[i]))), 0);
  for (const m of [local, remote, folder]) m.dispose();
});

test('Selftok.open: a missing model or a broken config is one line naming the location', async () => {
  await assert.rejects(Selftok.open(`${base}/nothing/`), (e: unknown) => e instanceof UserError && /\/nothing\/: not a model \(no config\.json\)/.test(e.message));
  await assert.rejects(Selftok.open(`${base}/broken`), (e: unknown) => e instanceof UserError && /broken\/config\.json: not valid JSON/.test(e.message));
  await assert.rejects(Selftok.open('no/such/dir'), (e: unknown) => e instanceof UserError && /no\/such\/dir: not a model \(no config\.json\)/.test(e.message));
});
