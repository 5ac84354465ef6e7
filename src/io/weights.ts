// How a model's weights are stored for shipping: float32, float16, or int8 — symmetric,
// per output column (the last axis of a fanIn × fanOut matrix): W[i, j] ≈ q[i, j] · s[j],
// s[j] = max_i |W[i, j]| / 127, q stored as I8 under the weight's name and s as F32 under
// NAME + SCALE_SUFFIX. Only matrices of at least INT8_MIN_SIZE values are quantized; vectors,
// embeddings of discrete codes (the VQ codebook) and small tensors stay float16. Readers see
// float32 either way (readWeight).
import type { CheckpointReader, TensorInfo } from './checkpoint.ts';
import { toHalf } from './safetensors.ts';
import type { StreamDType } from './safetensors.ts';
import { UserError } from '../util/errors.ts';

export type WeightFormat = 'float32' | 'float16' | 'int8';
export const SCALE_SUFFIX = ':scale';
export const INT8_MIN_SIZE = 1024;

/** A tensor as it will be written: dtype, shape and bytes. */
export type StoredTensor = { dtype: StreamDType; shape: number[]; bytes: Uint8Array };

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Per-column symmetric int8: q (row-major, same shape) and one scale per column. */
export function quantizeColumns(data: Float32Array, shape: number[]): { q: Int8Array; scale: Float32Array } {
  const cols = shape[shape.length - 1];
  const rows = data.length / cols;
  const scale = new Float32Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) scale[j] = Math.max(scale[j], Math.abs(data[i * cols + j]));
  for (let j = 0; j < cols; j++) scale[j] = scale[j] / 127 || 1;
  const q = new Int8Array(data.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) q[i * cols + j] = Math.round(data[i * cols + j] / scale[j]);
  return { q, scale };
}

/** The stored tensors of one weight in a format (int8 gives two: the codes and the scales). */
export function storeWeight(name: string, data: Float32Array, shape: number[], format: WeightFormat, keepFloat = false): [string, StoredTensor][] {
  if (format === 'float32') return [[name, { dtype: 'F32', shape, bytes: bytesOf(data) }]];
  if (format === 'int8' && !keepFloat && shape.length === 2 && data.length >= INT8_MIN_SIZE) {
    const { q, scale } = quantizeColumns(data, shape);
    return [
      [name, { dtype: 'I8', shape, bytes: bytesOf(q) }],
      [name + SCALE_SUFFIX, { dtype: 'F32', shape: [shape[1]], bytes: bytesOf(scale) }],
    ];
  }
  return [[name, { dtype: 'F16', shape, bytes: bytesOf(toHalf(data)) }]];
}

/** A weight as float32 from a checkpoint: int8 ones are scaled back by their column scales. */
export function readWeight(reader: CheckpointReader, keys: Map<string, TensorInfo>, name: string): Float32Array {
  const x = reader.read(name);
  const info = keys.get(name);
  if (info?.dtype !== 'I8') return x;
  const scaleInfo = keys.get(name + SCALE_SUFFIX);
  const cols = info.shape[info.shape.length - 1];
  if (!scaleInfo || scaleInfo.shape.join('x') !== String(cols)) throw new UserError(`${reader.path}: int8 tensor ${name} has no ${name}${SCALE_SUFFIX} of ${cols} values`);
  const s = reader.read(name + SCALE_SUFFIX);
  for (let i = 0; i < x.length; i++) x[i] *= s[i % cols];
  return x;
}
