// One interface over the checkpoint files the importer reads: PyTorch zip checkpoints
// (`.pth`/`.pt`, pickle.ts) and safetensors, both read tensor by tensor from the file so
// that a checkpoint larger than memory can be converted.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { UserError } from '../util/errors.ts';
import { DTYPE_BYTES, TorchCheckpoint, toFloat32, type DType } from './pickle.ts';
import { readAt } from './zip.ts';

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
type ReadRange = (begin: number, length: number) => Uint8Array;

/** A safetensors file read tensor by tensor: from disk (openCheckpoint) or from bytes in memory (fetched). */
class SafetensorsReader implements CheckpointReader {
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

class TorchReader implements CheckpointReader {
  private readonly tensors;
  constructor(private readonly ck: TorchCheckpoint) {
    this.tensors = ck.tensors();
  }
  get path(): string {
    return this.ck.path;
  }
  keys(): Map<string, TensorInfo> {
    return new Map([...this.tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]));
  }
  metadata(): Record<string, string> {
    return {};
  }
  read(name: string): Float32Array {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`internal: no tensor ${name} in ${this.path}`);
    return toFloat32(this.ck.bytes(t), t.dtype);
  }
  close(): void {
    this.ck.close();
  }
}

/** Open a checkpoint by its content: a zip is a torch.save file, anything else must be safetensors. */
export function openCheckpoint(path: string): CheckpointReader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const size = fstatSync(fd).size;
  const magic = size >= 4 ? readAt(fd, 0, 4) : Buffer.alloc(0);
  if (magic.length === 4 && magic.readUInt32LE(0) === 0x04034b50) {
    closeSync(fd);
    return new TorchReader(TorchCheckpoint.open(path));
  }
  try {
    return SafetensorsReader.open(path, (b, n) => new Uint8Array(readAt(fd, b, n)), size, () => closeSync(fd));
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
