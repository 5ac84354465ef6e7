// The wasm and webgpu paths compute the same numbers: a micro model's decoder forward pass,
// its training loss and every parameter's gradient norm, and the token ids. Without a GPU
// this runs on SwiftShader (Vulkan on the CPU), which `scripts/swiftshader.sh` unpacks from
// Debian's chromium-common into .cache/swiftshader (.ci/run does this). Where no WebGPU
// adapter can be found the test is skipped with the reason printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const SS = resolve('.cache/swiftshader');
const TOL = { forward: 2e-4, loss: 1e-4, grad: 1e-3 };

function child(device: string, env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/parity-child.ts', device], { encoding: 'utf8', env, timeout: 300_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{')) return { error: (r.stderr || r.stdout).trim().split('\n').filter((l) => l.startsWith('selftok') || /Error/.test(l)).join(' | ') || `exit ${r.status}` };
  return JSON.parse(line) as { device: string; forward: number[]; loss: number; gradNorms: Record<string, number>; ids: number[] };
}

test('wasm and webgpu compute the same forward pass, loss, gradients and tokens', async (t) => {
  const env = { ...process.env };
  if (existsSync(`${SS}/vk_swiftshader_icd.json`)) {
    env.LD_LIBRARY_PATH = [SS, env.LD_LIBRARY_PATH].filter(Boolean).join(':');
    env.VK_ICD_FILENAMES = `${SS}/vk_swiftshader_icd.json`;
  }
  const gpu = child('webgpu', env);
  if ('error' in gpu) {
    t.skip(`no WebGPU adapter (${gpu.error}); run scripts/swiftshader.sh to test on SwiftShader`);
    console.log(`# SKIP webgpu parity: no WebGPU adapter (${gpu.error})`);
    return;
  }
  const cpu = child('wasm', process.env);
  assert.ok(!('error' in cpu), JSON.stringify(cpu));
  if ('error' in cpu) return;
  assert.equal(gpu.device, 'webgpu');
  let maxDiff = 0;
  cpu.forward.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - gpu.forward[i]))));
  console.log(`# webgpu vs wasm: forward max |Δ| ${maxDiff.toExponential(2)}, loss ${cpu.loss} vs ${gpu.loss}`);
  assert.ok(maxDiff < TOL.forward, `forward max |Δ| ${maxDiff}`);
  assert.ok(Math.abs(cpu.loss - gpu.loss) / Math.abs(cpu.loss) < TOL.loss, `loss ${cpu.loss} vs ${gpu.loss}`);
  for (const [name, g] of Object.entries(cpu.gradNorms)) {
    const h = gpu.gradNorms[name];
    assert.ok(Math.abs(g - h) <= TOL.grad * Math.max(g, 1e-3), `grad norm of ${name}: ${g} vs ${h}`);
  }
  assert.deepEqual(gpu.ids, cpu.ids);
});
