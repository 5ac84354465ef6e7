// Token files. JSON: ids per image with K, codebook size, the model that made them and
// their order; `.npy`: int32 B×K, as the official Python pipeline's token.npy.
// Order "encoder" = index 0 (finest, always visible) first; "ar" = reversed, coarse to
// fine, what an autoregressive model consumes (spec §2.4, §12.2).
import { parseNpy } from './npy.ts';
import { UserError } from '../util/errors.ts';

export type TokenOrder = 'encoder' | 'ar';

export type TokenFile = {
  format: 'selftok-tokens';
  version: 1;
  model: { name: string; fingerprint: string };
  K: number;
  codebookSize: number;
  order: TokenOrder;
  images: { source: string; ids: number[] }[];
};

/** Reverse each row of B×K ids (encoder ↔ AR order). */
export function reverseRows(ids: Int32Array, K: number): Int32Array {
  const out = new Int32Array(ids.length);
  for (let b = 0; b < ids.length / K; b++) for (let k = 0; k < K; k++) out[b * K + k] = ids[b * K + (K - 1 - k)];
  return out;
}

export function tokenFileJson(f: Omit<TokenFile, 'format' | 'version'>): string {
  // one image per line keeps big files diff- and grep-friendly
  const head = { format: 'selftok-tokens', version: 1, model: f.model, K: f.K, codebookSize: f.codebookSize, order: f.order };
  const imgs = f.images.map((im) => `    ${JSON.stringify(im)}`).join(',\n');
  return JSON.stringify(head, null, 2).replace(/\n}$/, `,\n  "images": [\n${imgs}\n  ]\n}\n`);
}

export function encodeNpyInt32(ids: Int32Array, B: number, K: number): Uint8Array {
  let header = `{'descr': '<i4', 'fortran_order': False, 'shape': (${B}, ${K}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + ids.byteLength);
  out.set([0x93, ...new TextEncoder().encode('NUMPY'), 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10); // ASCII
  out.set(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength), 10 + header.length);
  return out;
}

export function decodeNpyInt(bytes: Uint8Array, where: string): { ids: Int32Array; B: number; K: number } {
  const { descr, shape, data } = parseNpy(bytes, where);
  if (shape.length !== 2) throw new UserError(`${where}: expected a 2-D (images × tokens) array`);
  const [B, K] = shape;
  const width = { '<i4': 4, '<i8': 8, '<u2': 2, '<i2': 2, '|u1': 1 }[descr];
  if (!width) throw new UserError(`${where}: unsupported dtype ${descr} (expected integer ids)`);
  if (data.length < B * K * width) throw new UserError(`${where}: truncated (${data.length} bytes of data for shape ${B}×${K})`);
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const ids = new Int32Array(B * K);
  for (let i = 0; i < B * K; i++) {
    ids[i] =
      descr === '<i4' ? v.getInt32(i * 4, true) : descr === '<i8' ? Number(v.getBigInt64(i * 8, true)) : descr === '<u2' ? v.getUint16(i * 2, true) : descr === '<i2' ? v.getInt16(i * 2, true) : v.getUint8(i);
  }
  return { ids, B, K };
}

export type LoadedTokens = { ids: Int32Array; B: number; K: number; names: string[]; model: TokenFile['model'] | null; codebookSize: number | null };

/** A token file's bytes (JSON or .npy, by the name `path`), returning ids in encoder order. */
export function parseTokens(bytes: Uint8Array, path: string, npyOrder: TokenOrder = 'encoder'): LoadedTokens {
  if (path.toLowerCase().endsWith('.npy')) {
    const { ids, B, K } = decodeNpyInt(bytes, path);
    return { ids: npyOrder === 'ar' ? reverseRows(ids, K) : ids, B, K, names: Array.from({ length: B }, (_, i) => `image-${i}`), model: null, codebookSize: null };
  }
  let f: TokenFile;
  try {
    f = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new UserError(`${path}: not a token file (neither JSON nor .npy)`);
  }
  if (f?.format !== 'selftok-tokens' || !Array.isArray(f.images)) throw new UserError(`${path}: not a selftok token file (format field missing)`);
  if (f.order !== 'encoder' && f.order !== 'ar') throw new UserError(`${path}: order must be "encoder" or "ar", got ${JSON.stringify(f.order)}`);
  const K = f.K;
  const B = f.images.length;
  if (!B) throw new UserError(`${path}: holds no images`);
  const ids = new Int32Array(B * K);
  f.images.forEach((im, b) => {
    if (!Array.isArray(im.ids) || im.ids.length !== K) throw new UserError(`${path}: image ${b} has ${im.ids?.length} tokens, the file says K = ${K}`);
    im.ids.forEach((v, k) => {
      if (!Number.isInteger(v)) throw new UserError(`${path}: image ${b} token ${k} is not an integer (${v})`);
      ids[b * K + k] = v;
    });
  });
  return {
    ids: f.order === 'ar' ? reverseRows(ids, K) : ids,
    B,
    K,
    names: f.images.map((im, i) => im.source ?? `image-${i}`),
    model: f.model ?? null,
    codebookSize: f.codebookSize ?? null,
  };
}
