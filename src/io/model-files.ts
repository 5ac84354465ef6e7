// Model files (config.json, model.safetensors) read the same way from a directory or over HTTP
// (as transformers.js does): a location is an http(s) URL of a folder (fetch, in Node ≥ 18 and
// every browser) or, in Node, a folder path (the file system, registered by src/node/files.ts,
// so that this module imports nothing a page lacks).
import { safetensorsFromBytes, type CheckpointReader } from './checkpoint.ts';
import type { PendingTensor } from './safetensors.ts';
import { UserError } from '../util/errors.ts';
import { parseJson } from '../util/json.ts';

export const isUrl = (location: string): boolean => /^https?:\/\//i.test(location);

/** A model folder: its files by name (config.json, model.safetensors). */
export interface ModelFiles {
  /** The folder as messages name it: a path or a URL. */
  readonly where: string;
  /** A file's bytes, or null when the folder has no such file. */
  read(name: string): Promise<Uint8Array | null>;
}

/** The model folder at an http(s) URL, read with fetch (browsers and Node ≥ 18). */
export function httpFiles(url: string): ModelFiles {
  const base = url.endsWith('/') ? url : `${url}/`;
  return {
    where: url,
    async read(name) {
      const at = new URL(name, base).href;
      let res: Response;
      try {
        res = await fetch(at);
      } catch (e) {
        throw new UserError(`${at}: cannot fetch (${(e as Error).message})`);
      }
      if (res.status === 404) return null;
      if (!res.ok) throw new UserError(`${at}: HTTP ${res.status} ${res.statusText}`);
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

let folderFiles: ((dir: string) => ModelFiles) | null = null;

/** How this platform reads a folder path; Node's file system registers itself (src/node/files.ts). A page has none. */
export function useFolderFiles(make: (dir: string) => ModelFiles): void {
  folderFiles = make;
}

/**
 * A location as ModelFiles: an http(s) URL; a folder path where the platform has folders (Node);
 * in a page, a URL relative to the page ('models/default/'); or ModelFiles as they are.
 */
export function modelFiles(location: string | ModelFiles): ModelFiles {
  if (typeof location !== 'string') return location;
  if (isUrl(location)) return httpFiles(location);
  if (folderFiles) return folderFiles(location);
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  if (page && /^https?:/i.test(page)) return httpFiles(new URL(location, page).href);
  throw new UserError(`${location}: not an http(s) URL (a folder path is read only in Node; a page loads models by URL)`);
}

/** A model folder read whole: its parsed config.json and a reader over its model.safetensors (to close), with the weights' fingerprint. */
export type ModelFolder = { where: string; config: unknown; configWhere: string; weights: CheckpointReader; fingerprint: string };

/** A model as its folder stores it, for a writer (Node: src/node/models.ts writeModelFolder): config.json's object, the weights and their metadata. */
export type StoredModel = { config: unknown; weights: Map<string, PendingTensor>; metadata: Record<string, string> };

/** Read `location` (a folder or a URL); `what` names the kind in the error when a file is missing ("a model"). */
export async function readModelFolder(location: string | ModelFiles, what: string): Promise<ModelFolder> {
  const files = modelFiles(location);
  const where = files.where;
  const need = async (name: string): Promise<Uint8Array> => {
    const b = await files.read(name);
    if (!b) throw new UserError(`${where}: not ${what} (no ${name})`);
    return b;
  };
  const configWhere = `${where}/config.json`;
  const config = parseJson(await need('config.json'), configWhere);
  const w = await need('model.safetensors');
  return { where, config, configWhere, weights: safetensorsFromBytes(w, `${where}/model.safetensors`), fingerprint: await bytesFingerprint(w) };
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
