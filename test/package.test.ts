// The installable package (issue #20, item 4): `npm pack` gives a tarball that a new project
// installs and imports in Node (compiled ESM + type declarations, no tsx, no src/), and whose
// CLI runs with npx. Installs from the npm cache that `npm ci` filled (no network).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp } from './helpers.ts';

test('npm pack: a new project installs the tarball, imports { Selftok } from "selftok" and runs npx selftok', () => {
  const packDir = tmp('selftok-pack-');
  const run = (cmd: string, args: string[], cwd: string) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });
  run('npm', ['pack', '--pack-destination', packDir], process.cwd());
  const tgz = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
  assert.ok(tgz, 'npm pack wrote no tarball');
  const app = tmp('selftok-app-');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
  run('npm', ['install', '--prefer-offline', join(packDir, tgz)], app);
  const pkg = join(app, 'node_modules', 'selftok');
  assert.ok(existsSync(join(pkg, 'dist', 'index.js')) && existsSync(join(pkg, 'dist', 'index.d.ts')));
  assert.ok(!existsSync(join(pkg, 'src')), 'the package ships compiled JavaScript, not sources');
  assert.ok(!existsSync(join(app, 'node_modules', 'tsx')), 'tsx is not needed at run time');
  writeFileSync(
    join(app, 'main.mjs'),
    `import { setupDevice, Selftok, ArModel } from 'selftok';
await setupDevice('wasm');
const m = Selftok.load('node_modules/selftok/models/scenes');
const x = new Float32Array(64 * 64 * 3).fill(0.2);
const ids = await m.encode(x, 1);
console.log(m.cfg.name, ids.length, typeof ArModel);
`,
  );
  assert.equal(run('node', ['main.mjs'], app).trim(), 'scenes 32 function');
  assert.match(run('npx', ['selftok', '--help'], app), /Usage: selftok \[options\] \[command\][\s\S]*rl /);
});
