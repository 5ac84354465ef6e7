import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSafetensors, encodeSafetensors, fromHalf, toHalf, type Tensor } from '../src/io/safetensors.ts';
import { decodeNpyInt, encodeNpyInt32, reverseRows, tokenFileJson } from '../src/io/tokens.ts';
import { psnr, ssim } from '../src/eval/metrics.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmp } from './helpers.ts';
import { readTokens } from '../src/node/files.ts';

test('safetensors round trip keeps names, shapes, dtypes, values and metadata', () => {
  const t = new Map<string, Tensor>([
    ['a.w', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 4, 5, 6]) }],
    ['b', { dtype: 'I32', shape: [3], data: Int32Array.from([7, -8, 9]) }],
    ['h', { dtype: 'F16', shape: [2], data: toHalf(Float32Array.from([0.5, -1.25])) }],
  ]);
  const bytes = encodeSafetensors(t, { step: '12' });
  const back = decodeSafetensors(bytes, 'mem');
  assert.equal(back.metadata.step, '12');
  assert.deepEqual(back.tensors.get('a.w')!.shape, [2, 3]);
  assert.deepEqual(Array.from(back.tensors.get('a.w')!.data), [1, -2, 3.5, 4, 5, 6]);
  assert.deepEqual(Array.from(back.tensors.get('b')!.data), [7, -8, 9]);
  assert.deepEqual(Array.from(fromHalf(back.tensors.get('h')!.data as Uint16Array)), [0.5, -1.25]);
  // data offset is 8-byte aligned, header length little-endian
  const hlen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + hlen) % 8, 0);
  assert.throws(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4), 'cut.safetensors'), /cut\.safetensors: truncated/);
  assert.throws(() => decodeSafetensors(new Uint8Array(3), 'tiny.safetensors'), /truncated/);
});

test('float16 conversion rounds to nearest even and keeps specials', () => {
  const x = Float32Array.from([0, -0, 1, 65504, 70000, 1e-8, 6.1e-5, 2 ** -24, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity]);
  const h = toHalf(x);
  assert.deepEqual(Array.from(h.slice(0, 3)), [0x0000, 0x8000, 0x3c00]);
  assert.equal(h[3], 0x7bff);
  assert.equal(h[4], 0x7c00); // overflow → inf
  assert.equal(h[5], 0); // underflow
  assert.equal(h[7], 0x0001); // smallest subnormal
  assert.equal(h[8], 0x3c00); // tie → even (down)
  assert.equal(h[9], 0x3c02); // tie → even (up)
  const back = fromHalf(h);
  assert.equal(back[10], Infinity);
  assert.equal(back[11], -Infinity);
  assert.ok(Number.isNaN(fromHalf(toHalf(Float32Array.from([NaN])))[0]));
  assert.ok(Math.abs(back[6] - 6.1e-5) / 6.1e-5 < 1e-3);
});

test('.npy int32 round trip (numpy header format 1.0)', () => {
  const ids = Int32Array.from({ length: 2 * 5 }, (_, i) => i * 3);
  const bytes = encodeNpyInt32(ids, 2, 5);
  assert.equal(Buffer.from(bytes.subarray(1, 6)).toString(), 'NUMPY');
  const headerLen = new DataView(bytes.buffer).getUint16(8, true);
  assert.equal((10 + headerLen) % 64, 0);
  assert.match(Buffer.from(bytes.subarray(10, 10 + headerLen)).toString(), /'descr': '<i4', 'fortran_order': False, 'shape': \(2, 5\)/);
  const back = decodeNpyInt(bytes, 'mem');
  assert.equal(back.B, 2);
  assert.equal(back.K, 5);
  assert.deepEqual(Array.from(back.ids), Array.from(ids));
});

test('token files: AR order is the reverse of encoder order, and reading undoes it', () => {
  const dir = tmp();
  const ids = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const ar = reverseRows(ids, 4);
  assert.deepEqual(Array.from(ar), [4, 3, 2, 1, 8, 7, 6, 5]);
  const p = join(dir, 't.json');
  writeFileSync(
    p,
    tokenFileJson({ model: { name: 'm', fingerprint: 'f' }, K: 4, codebookSize: 16, order: 'ar', images: [{ source: 'a.png', ids: Array.from(ar.subarray(0, 4)) }, { source: 'b.png', ids: Array.from(ar.subarray(4)) }] }),
  );
  const back = readTokens(p);
  assert.deepEqual(Array.from(back.ids), Array.from(ids));
  assert.deepEqual(back.names, ['a.png', 'b.png']);
  const np = join(dir, 't.npy');
  writeFileSync(np, encodeNpyInt32(ar, 2, 4));
  assert.deepEqual(Array.from(readTokens(np, 'ar').ids), Array.from(ids));
  assert.deepEqual(Array.from(readTokens(np, 'encoder').ids), Array.from(ar));
});

// reference values from scikit-image 0.26 structural_similarity(A, B, channel_axis=2,
// data_range=A.max()-A.min()) and 20·log10(255) − 10·log10(MSE) on these 8-bit images
function img(f: (x: number, y: number, c: number) => number, size = 16): Float32Array {
  const out = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) out[(y * size + x) * 3 + c] = f(x, y, c) / 127.5 - 1;
  return out;
}
test('PSNR and SSIM match scikit-image on check images', () => {
  const a = img((x, y, c) => (x * 7 + y * 13 + c * 29) % 256);
  const b = img((x, y, c) => (x * x + 3 * y + 5 * c + ((x * y) % 17)) % 256);
  assert.ok(Math.abs(ssim(a, b, 16, 16) - 0.28016519415058166) < 1e-6);
  const a2u = (x: number, y: number, c: number) => Math.trunc(128 + 60 * Math.sin(x / 3 + c) * Math.cos(y / 4));
  const a2 = img(a2u);
  const b2 = img((x, y, c) => Math.min(255, Math.max(0, a2u(x, y, c) + ((x * 5 + y * 3 + c) % 7) - 3)));
  assert.ok(Math.abs(ssim(a2, b2, 16, 16) - 0.9951105552412884) < 1e-6);
  assert.ok(Math.abs(psnr(a2, b2) - 42.11303205422236) < 1e-9);
  assert.equal(psnr(a2, a2), Infinity);
  assert.ok(Math.abs(ssim(a2, a2, 16, 16) - 1) < 1e-12);
});
