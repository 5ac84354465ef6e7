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
  /** A tensor's values as float32 (row-major). */
  read(name: string): Float32Array;
  close(): void;
}

const SAFETENSORS_DTYPES: Record<string, DType> = { F64: 'F64', F32: 'F32', F16: 'F16', BF16: 'BF16', I64: 'I64', I32: 'I32', I16: 'I16', I8: 'I8', U8: 'U8', BOOL: 'BOOL' };

class SafetensorsReader implements CheckpointReader {
  private readonly info = new Map<string, TensorInfo & { begin: number; end: number }>();
  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  static open(path: string, fd: number, size: number): SafetensorsReader {
    const r = new SafetensorsReader(path, fd);
    if (size < 8) throw new UserError(`${path}: truncated safetensors file (${size} bytes)`);
    const hlen = Number(readAt(fd, 0, 8).readBigUInt64LE(0));
    if (hlen <= 0 || 8 + hlen > size) throw new UserError(`${path}: truncated or corrupt safetensors header`);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    try {
      header = JSON.parse(readAt(fd, 8, hlen).toString('utf8'));
    } catch {
      throw new UserError(`${path}: corrupt safetensors header (not JSON)`);
    }
    const base = 8 + hlen;
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') continue;
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

  read(name: string): Float32Array {
    const t = this.info.get(name);
    if (!t) throw new Error(`internal: no tensor ${name} in ${this.path}`);
    return toFloat32(new Uint8Array(readAt(this.fd, t.begin, t.end - t.begin)), t.dtype);
  }

  close(): void {
    closeSync(this.fd);
  }
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
    return SafetensorsReader.open(path, fd, size);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
