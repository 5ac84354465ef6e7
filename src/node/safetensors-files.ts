// Safetensors files on disk (Node). Reading: whole (decodeSafetensors) or just the metadata.
// Writing safetensors tensor by tensor to a file: the header first (it only needs names,
// dtypes and shapes), then each tensor's bytes as it is produced, so that a model larger
// than one in-memory buffer (Node's limit is 4 GiB) can be written. The file is written to a
// temporary name, fsynced and renamed: a kill leaves the old file or the new one.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { decodeSafetensors, type PendingTensor, type SafetensorsFile, type StreamDType } from '../io/safetensors.ts';
import { openCheckpoint } from '../import/checkpoint.ts';
import { readBytes } from './fsx.ts';
import { basename, dirname, join } from 'node:path';

const BYTES: Record<StreamDType, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I8: 1 };

/** Tensors are written in sorted name order (as encodeSafetensors does). */
export async function writeSafetensorsStreamed(path: string, tensors: Map<string, PendingTensor>, metadata: Record<string, string> = {}): Promise<void> {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const bytes = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const hbytes = Buffer.from(json, 'utf8');
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hbytes.length));
    writeAll(fd, len);
    writeAll(fd, hbytes);
    for (const name of names) {
      const t = tensors.get(name)!;
      const b = await t.data();
      const want = t.shape.reduce((a, c) => a * c, 1) * BYTES[t.dtype];
      if (b.length !== want) throw new Error(`internal: tensor ${name} has ${b.length} bytes, its shape needs ${want}`);
      writeAll(fd, b);
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    if (existsSync(tmp)) rmSync(tmp, { force: true });
    throw e;
  }
}

function writeAll(fd: number, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, b.length - off);
}

/** float32 → bfloat16 bits, round to nearest even (NaN kept). */
export function toBfloat16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = u[i];
    if ((v & 0x7f800000) === 0x7f800000 && v & 0x7fffff) out[i] = (v >>> 16) | 0x40;
    else out[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Only the `__metadata__` of a safetensors file: reads the header, not the tensors. */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  const ck = openCheckpoint(path);
  try {
    return ck.metadata();
  } finally {
    ck.close();
  }
}

export function readSafetensors(path: string): SafetensorsFile {
  return decodeSafetensors(readBytes(path), path);
}
