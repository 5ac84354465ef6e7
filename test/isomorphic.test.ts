// The isomorphic core (issue #20, item 1): the model, tokenizer, AR model and metrics import
// nothing that only Node has. Every module a page reaches from src/browser.ts (the package's
// "browser" export) or from the demo page is read with TypeScript's own import scanner, static
// and dynamic imports alike; files, images and the GPU come from the platform's side (src/node/
// in Node, src/browser/ in a page).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import ts from 'typescript';

const NODE_ONLY = new Set([...builtinModules, 'sharp', 'webgpu', 'cli-progress', 'commander', 'fsevents']);

/** Every module reachable from `roots` by relative imports, with the packages each imports. */
function importGraph(roots: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const todo = roots.map((r) => resolve(r));
  while (todo.length) {
    const file = todo.pop()!;
    if (graph.has(file)) continue;
    const src = readFileSync(file, 'utf8');
    const packages: string[] = [];
    for (const { fileName: spec } of ts.preProcessFile(src, true, true).importedFiles) {
      if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec));
      else packages.push(spec);
    }
    // globals only Node has
    for (const g of ['process', 'Buffer', '__dirname', 'require']) if (new RegExp(`\\b${g}\\s*[.(]`).test(src.replace(/\/\/.*|\/\*[\s\S]*?\*\//g, ''))) packages.push(`global ${g}`);
    graph.set(file, packages);
  }
  return graph;
}

test('the modules a page reaches (src/browser.ts, web/main.ts) import nothing that only Node has', () => {
  const graph = importGraph(['src/browser.ts', 'web/main.ts']);
  const names = [...graph.keys()].map((f) => relative(process.cwd(), f));
  // the core really is in the graph: model, tokenizer, AR model, metrics, model files
  for (const m of ['src/tokenizer/model.ts', 'src/tokenizer/encoder.ts', 'src/ar/ar-model.ts', 'src/eval/metrics.ts', 'src/io/model-files.ts', 'src/engine/device.ts', 'src/browser/image.ts']) {
    assert.ok(names.includes(m), `${m} is not reached from the browser entry`);
  }
  const offenders = [...graph]
    .map(([f, pkgs]) => [relative(process.cwd(), f), pkgs.filter((p) => NODE_ONLY.has(p.replace(/^node:/, '').split('/')[0]) || p.startsWith('node:') || p.startsWith('global '))] as const)
    .filter(([, bad]) => bad.length)
    .map(([f, bad]) => `${f}: ${bad.join(', ')}`);
  assert.deepEqual(offenders, [], 'Node-only imports in the browser graph');
  assert.ok(!names.some((n) => n.startsWith('src/node/')), 'the browser graph reaches src/node/');
});

test('the Node entry registers folders; without it, Selftok.open of a folder is one line asking for a URL', () => {
  const run = (entry: string, setup: string): string =>
    execFileSync(process.execPath, ['--import', 'tsx', '-e', `import('${entry}').then(async (m) => { ${setup}; const s = await m.Selftok.open('models/scenes').then((x) => x.cfg.name, (e) => e.message); console.log(s); })`], { encoding: 'utf8' }).trim();
  assert.equal(run('./src/index.ts', "await m.setupDevice('wasm')"), 'scenes');
  // the browser entry in Node: no file system behind a folder path (fetch is there, the file system is not used)
  assert.equal(run('./src/browser.ts', ''), 'models/scenes: not an http(s) URL (a folder path is read only in Node; a page loads models by URL)');
});
