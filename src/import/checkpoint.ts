// Checkpoint files on disk (Node): PyTorch zip checkpoints (`.pth`/`.pt`, pickle.ts) and
// safetensors, both read tensor by tensor from the file (io/checkpoint.ts's interface) so that a
// checkpoint larger than memory can be converted.
import { closeSync, fstatSync } from 'node:fs';
import { openForReading } from '../node/fsx.ts';
import { SafetensorsReader, toFloat32, type CheckpointReader, type TensorInfo } from '../io/checkpoint.ts';
import { TorchCheckpoint } from './pickle.ts';
import { readAt } from './zip.ts';

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
  const fd = openForReading(path);
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
