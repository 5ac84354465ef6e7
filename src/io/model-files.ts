// Model files (config.json, model.safetensors) read the same way from a directory or over HTTP
// (as transformers.js does): a location is a folder path or an http(s) URL of a folder.
// fetch is in Node ≥ 18 and every browser; the file system is imported only for a folder, so a
// page that loads models by URL never reaches for it.
import { safetensorsFromBytes, type CheckpointReader } from '../import/checkpoint.ts';
import { UserError } from '../util/errors.ts';
import { parseJson } from '../util/json.ts';

export const isUrl = (location: string): boolean => /^https?:\/\//i.test(location);

/** The bytes of `name` in the model folder `location`, or null when it has no such file. */
export async function readModelFile(location: string, name: string): Promise<Uint8Array | null> {
  if (isUrl(location)) {
    const url = new URL(name, location.endsWith('/') ? location : `${location}/`).href;
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new UserError(`${url}: cannot fetch (${(e as Error).message})`);
    }
    if (res.status === 404) return null;
    if (!res.ok) throw new UserError(`${url}: HTTP ${res.status} ${res.statusText}`);
    return new Uint8Array(await res.arrayBuffer());
  }
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  try {
    return new Uint8Array(await readFile(join(location, name)));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new UserError(`${location}/${name}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** A model folder read whole: its parsed config.json and a reader over its model.safetensors (to close), with the weights' fingerprint. */
export type ModelFolder = { config: unknown; configWhere: string; weights: CheckpointReader; fingerprint: string };

/** Read `location` (a folder or a URL); `what` names the kind in the error when a file is missing ("a model"). */
export async function readModelFolder(location: string, what: string): Promise<ModelFolder> {
  const need = async (name: string): Promise<Uint8Array> => {
    const b = await readModelFile(location, name);
    if (!b) throw new UserError(`${location}: not ${what} (no ${name})`);
    return b;
  };
  const configWhere = `${location}/config.json`;
  const config = parseJson(await need('config.json'), configWhere);
  const w = await need('model.safetensors');
  return { config, configWhere, weights: safetensorsFromBytes(w, `${location}/model.safetensors`), fingerprint: await bytesFingerprint(w) };
}

/** sha256 of bytes, 16 hex: the same identity as fileFingerprint of the file they came from (WebCrypto, in Node and browsers). */
export async function bytesFingerprint(bytes: Uint8Array): Promise<string> {
  return sha256Hex16([bytes]);
}

/** sha256 (16 hex) of the concatenation of byte chunks and strings (UTF-8), by WebCrypto. */
export async function sha256Hex16(parts: (Uint8Array | string)[]): Promise<string> {
  const enc = new TextEncoder();
  const chunks = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p));
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
  return Array.from(d.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
}
