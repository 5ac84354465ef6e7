// The .npy format (NumPy): magic, version, a Python-dict header (descr, fortran_order,
// shape), then the raw data, C order.
import { UserError } from '../util/errors.ts';

export type NpyArray = { descr: string; shape: number[]; data: Uint8Array };

/** Parse a .npy file's header; refuses Fortran order. */
export function parseNpy(bytes: Uint8Array, where: string): NpyArray {
  const magic = String.fromCharCode(...bytes.subarray(0, 6));
  if (bytes.length < 10 || magic !== '\x93NUMPY') throw new UserError(`${where}: not a .npy file`);
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = String.fromCharCode(...bytes.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (!descr || !shape) throw new UserError(`${where}: corrupt .npy header`);
  if (/'fortran_order':\s*True/.test(header)) throw new UserError(`${where}: Fortran-ordered arrays are not supported`);
  return { descr, shape, data: bytes.subarray(hstart + hlen) };
}

/** A float .npy (little-endian float32 or float64) as float32 values, with its shape. */
export function decodeNpyFloat(bytes: Uint8Array, where: string): { values: Float32Array; shape: number[] } {
  const a = parseNpy(bytes, where);
  const width = { '<f4': 4, '<f8': 8 }[a.descr];
  if (!width) throw new UserError(`${where}: unsupported dtype ${a.descr} (expected float32 or float64)`);
  const n = a.shape.reduce((x, y) => x * y, 1);
  if (a.data.length < n * width) throw new UserError(`${where}: truncated (${a.data.length} bytes of data for shape ${a.shape.join('×')})`);
  const v = new DataView(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = width === 4 ? v.getFloat32(4 * i, true) : v.getFloat64(8 * i, true);
  return { values, shape: a.shape };
}
