// The PyTorch checkpoint reader (src/import/): fixtures written by torch.save
// (scripts/make-pickle-fixtures.py, run by hand with PyTorch; CI reads the files only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TorchCheckpoint, unpickle } from '../src/import/pickle.ts';
import { toFloat32 } from '../src/io/checkpoint.ts';

const DIR = join(import.meta.dirname, 'fixtures', 'import');

test('torch.save state dict: every tensor, dtype, shape and value, strided and offset views included', () => {
  const ck = TorchCheckpoint.open(join(DIR, 'small.pth'));
  const tensors = ck.tensors();
  const expected = readFileSync(join(DIR, 'small.expected.txt'), 'utf8').trim().split('\n').map((l) => l.split('\t'));
  assert.deepEqual([...tensors.keys()], expected.map((e) => e[0]));
  const dtypes: Record<string, string> = { float32: 'F32', int64: 'I64', float16: 'F16', bfloat16: 'BF16', bool: 'BOOL' };
  for (const [name, dtype, shape, values] of expected) {
    const t = tensors.get(name)!;
    assert.equal(t.dtype, dtypes[dtype], name);
    assert.deepEqual(t.shape, JSON.parse(shape), name);
    const got = toFloat32(ck.bytes(t), t.dtype);
    const want = values ? values.split(' ').map(Number) : [];
    assert.equal(got.length, want.length, name);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-6 * Math.max(1, Math.abs(want[i])), `${name}[${i}]: ${got[i]} vs ${want[i]}`);
  }
  // base_t is base transposed: a strided view of base's storage
  assert.deepEqual(tensors.get('base_t')!.stride, [1, 4]);
  ck.close();
});

test('a pickle that would run code under plain torch.load is refused with one line naming the global', () => {
  assert.throws(() => TorchCheckpoint.open(join(DIR, 'runs-code.pth')), (e: Error) => {
    assert.match(e.message, /runs-code\.pth: refuses global (posix|os|nt)\.system/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
});

test('a truncated checkpoint is refused with one line', () => {
  assert.throws(() => TorchCheckpoint.open(join(DIR, 'truncated.pth')), /truncated\.pth: not a PyTorch zip checkpoint/);
});

test('the restricted machine refuses opcodes and globals outside a state dict', () => {
  // protocol 2: GLOBAL builtins.eval, then REDUCE
  const evil = Buffer.concat([Buffer.from([0x80, 2]), Buffer.from('cbuiltins\neval\n'), Buffer.from([0x58, 4, 0, 0, 0]), Buffer.from('1+1)'), Buffer.from([0x85, 0x52, 0x2e])]);
  assert.throws(() => unpickle(evil), /refuses global builtins\.eval/);
  // INST (0x69) builds an object by name: not a state-dict opcode
  assert.throws(() => unpickle(Buffer.from([0x80, 2, 0x28, 0x69])), /refuses pickle opcode 0x69/);
  assert.throws(() => unpickle(Buffer.from([0x80, 2, 0x7d])), /truncated pickle/);
  // a plain dict of numbers and strings reads back
  const ok = Buffer.concat([Buffer.from([0x80, 2, 0x7d, 0x71, 0, 0x28]), Buffer.from([0x58, 1, 0, 0, 0]), Buffer.from('k'), Buffer.from([0x4b, 7, 0x75, 0x2e])]);
  assert.deepEqual(unpickle(ok), new Map([['k', 7]]));
});
