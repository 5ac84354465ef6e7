// Model files (config.json, model.safetensors) read the same way from a directory or over HTTP
// (as transformers.js does): a location is a folder path or an http(s) URL of a folder.
// fetch is in Node ≥ 18 and every browser; the file system is imported only for a folder, so a
// page that loads models by URL never reaches for it.
import { UserError } from '../util/errors.ts';

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

/** A JSON model file, parsed; a syntax error is one line naming the file. */
export function parseModelJson(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new UserError(`${where}: not valid JSON (${(e as Error).message})`);
  }
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
