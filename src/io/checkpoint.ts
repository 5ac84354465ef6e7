// Checkpoint files read tensor by tensor, on every platform: the reader interface the models
// load through, the dtypes, and a safetensors reader over byte ranges (of a file in Node,
// src/import/checkpoint.ts; of fetched bytes in a page, io/model-files.ts).
import { UserError } from '../util/errors.ts';
import { halfToFloat } from './safetensors.ts';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export const DTYPE_BYTES: Record<DType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export type TensorInfo = { dtype: DType; shape: number[] };

export interface CheckpointReader {
  readonly path: string;
  /** Every tensor's name, dtype and shape, in file order. */
  keys(): Map<string, TensorInfo>;
  /** The file's string metadata (safetensors `__metadata__`; empty for a torch checkpoint). */
  metadata(): Record<string, string>;
  /** A tensor's values as float32 (row-major). */
  read(name: string): Float32Array;
  close(): void;
}

const SAFETENSORS_DTYPES: Record<string, DType> = { F64: 'F64', F32: 'F32', F16: 'F16', BF16: 'BF16', I64: 'I64', I32: 'I32', I16: 'I16', I8: 'I8', U8: 'U8', BOOL: 'BOOL' };

/** Bytes [begin, begin + length) of a file, from a descriptor or from memory: a fresh copy, aligned (toFloat32 may view it in place). */
export type ReadRange = (begin: number, length: number) => Uint8Array;

/** A safetensors file read tensor by tensor: from disk (openCheckpoint) or from bytes in memory (fetched). */
export class SafetensorsReader implements CheckpointReader {
  private readonly info = new Map<string, TensorInfo & { begin: number; end: number }>();
  private meta: Record<string, string> = {};
  private constructor(
    readonly path: string,
    private readonly range: ReadRange,
    private readonly done: () => void,
  ) {}

  static open(path: string, range: ReadRange, size: number, done: () => void): SafetensorsReader {
    const r = new SafetensorsReader(path, range, done);
    if (size < 8) throw new UserError(`${path}: truncated safetensors file (${size} bytes)`);
    const head = range(0, 8);
    const hlen = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true));
    if (hlen <= 0 || 8 + hlen > size) throw new UserError(`${path}: truncated or corrupt safetensors header`);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    try {
      header = JSON.parse(new TextDecoder().decode(range(8, hlen)));
    } catch {
      throw new UserError(`${path}: corrupt safetensors header (not JSON)`);
    }
    const base = 8 + hlen;
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') {
        r.meta = t as unknown as Record<string, string>;
        continue;
      }
      const dtype = SAFETENSORS_DTYPES[t.dtype];
      if (!dtype) throw new UserError(`${path}: tensor ${name} has unsupported dtype ${t.dtype}`);
      const numel = t.shape.reduce((a, b) => a * b, 1);
      const [b, e] = t.data_offsets;
      if (e - b !== numel * DTYPE_BYTES[dtype]) throw new UserError(`${path}: tensor ${name} holds ${e - b} bytes, its shape [${t.shape}] needs ${numel * DTYPE_BYTES[dtype]}`);
      if (base + e > size) throw new UserError(`${path}: truncated (tensor ${name} ends at byte ${base + e}, the file has ${size})`);
      r.info.set(name, { dtype, shape: t.shape, begin: base + b, end: base + e });
    }
    return r;
  }

  keys(): Map<string, TensorInfo> {
    return new Map([...this.info].map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape }]));
  }

  metadata(): Record<string, string> {
    return { ...this.meta };
  }

  read(name: string): Float32Array {
    const t = this.info.get(name);
    if (!t) throw new Error(`internal: no tensor ${name} in ${this.path}`);
    return toFloat32(this.range(t.begin, t.end - t.begin), t.dtype);
  }

  close(): void {
    this.done();
  }
}

/** A safetensors file already in memory (fetched over HTTP), as a checkpoint reader; `where` names it in errors. */
export function safetensorsFromBytes(bytes: Uint8Array, where: string): CheckpointReader {
  return SafetensorsReader.open(where, (b, n) => bytes.slice(b, b + n), bytes.length, () => {});
}

/** Raw little-endian elements of `dtype` as float32 (integers and booleans by value). */
export function toFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const n = bytes.length / DTYPE_BYTES[dtype];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32': for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true); break;
    case 'F64': for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true); break;
    case 'BF16': {
      const u32 = new Uint32Array(1);
      const f32 = new Float32Array(u32.buffer);
      for (let i = 0; i < n; i++) { u32[0] = dv.getUint16(2 * i, true) << 16; out[i] = f32[0]; }
      break;
    }
    case 'F16': for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true)); break;
    case 'I64': for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(8 * i, true)); break;
    case 'I32': for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true); break;
    case 'I16': for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true); break;
    case 'I8': for (let i = 0; i < n; i++) out[i] = dv.getInt8(i); break;
    case 'U8': case 'BOOL': for (let i = 0; i < n; i++) out[i] = bytes[i]; break;
  }
  return out;
}
