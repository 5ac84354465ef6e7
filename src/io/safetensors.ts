// The safetensors format: 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, __metadata__: {string: string}}, then the raw
// little-endian tensor bytes. Small enough to implement here, and then we control
// the error messages for truncated or mismatched files.
import { UserError } from '../util/errors.ts';

export type TensorDType = 'F32' | 'F16' | 'I32';
export type Tensor = { dtype: TensorDType; shape: number[]; data: Float32Array | Int32Array | Uint16Array };

const BYTES: Record<TensorDType, number> = { F32: 4, F16: 2, I32: 4 };

export function encodeSafetensors(tensors: Map<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`internal: tensor ${name} has ${t.data.length} values for shape ${t.shape}`);
    const bytes = n * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // align the data to 8 bytes
  const hbytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hbytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  let pos = 8 + hbytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(b, pos);
    pos += b.length;
  }
  return out;
}

/** The dtypes a stored model's tensors take (io/weights.ts). */
export type StreamDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I8';
/** A tensor to write: its bytes come from `data()` when its turn comes (a model larger than one buffer is written tensor by tensor). */
export type PendingTensor = { dtype: StreamDType; shape: number[]; data: () => Uint8Array | Promise<Uint8Array> };

export type SafetensorsFile = { tensors: Map<string, Tensor>; metadata: Record<string, string> };

export function decodeSafetensors(bytes: Uint8Array, where: string): SafetensorsFile {
  if (bytes.length < 8) throw new UserError(`${where}: truncated safetensors file (${bytes.length} bytes)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = Number(dv.getBigUint64(0, true));
  if (hlen <= 0 || 8 + hlen > bytes.length) throw new UserError(`${where}: truncated or corrupt safetensors header`);
  let header: Record<string, { dtype: TensorDType; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)));
  } catch {
    throw new UserError(`${where}: corrupt safetensors header (not JSON)`);
  }
  const base = 8 + hlen;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = info as unknown as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: [a, b] } = info;
    if (!(dtype in BYTES)) throw new UserError(`${where}: tensor ${name} has unsupported dtype ${dtype}`);
    const n = shape.reduce((x, y) => x * y, 1);
    if (b - a !== n * BYTES[dtype]) throw new UserError(`${where}: tensor ${name} size does not match its shape`);
    if (base + b > bytes.length) throw new UserError(`${where}: truncated (tensor ${name} runs past the end of the file)`);
    // an aligned copy (Buffer#slice would return a view into the shared pool)
    const copy = Uint8Array.prototype.slice.call(bytes, base + a, base + b);
    const data = dtype === 'F32' ? new Float32Array(copy.buffer) : dtype === 'I32' ? new Int32Array(copy.buffer) : new Uint16Array(copy.buffer);
    tensors.set(name, { dtype, shape, data });
  }
  return { tensors, metadata };
}

// ---- float16 storage (shipped weights) ---------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → IEEE half, round to nearest even. */
export function toHalf(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    f32[0] = x[i];
    const bits = u32[0];
    const sign = (bits >>> 16) & 0x8000;
    const e32 = (bits >>> 23) & 0xff;
    const mant = bits & 0x7fffff;
    if (e32 === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const exp = e32 - 127 + 15;
    if (exp >= 31) {
      out[i] = sign | 0x7c00;
    } else if (exp <= 0) {
      // subnormal half: round(|x| / 2^-24); 1024 becomes the smallest normal, as it should
      const v = Math.abs(x[i]) * 2 ** 24;
      let r = Math.floor(v);
      const frac = v - r;
      if (frac > 0.5 || (frac === 0.5 && r & 1)) r++;
      out[i] = sign | r;
    } else {
      let h = sign | (exp << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry rolls into the exponent
      out[i] = h;
    }
  }
  return out;
}

export function fromHalf(x: Uint16Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = halfToFloat(x[i]);
  return out;
}

/** One IEEE float16 bit pattern as a number (subnormals, ±∞ and NaN included). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function asFloat32(t: Tensor): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  if (t.dtype === 'F16') return fromHalf(t.data as Uint16Array);
  return Float32Array.from(t.data as Int32Array);
}
