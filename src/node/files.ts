// Node's side of the model-files seam (io/model-files.ts): a model folder on disk, read with the
// file system. Importing this module registers it, so that Selftok.open / ArModel.open take a
// folder path in Node as they take a URL everywhere.
import { createHash } from 'node:crypto';
import { closeSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useFolderFiles, type ModelFiles } from '../io/model-files.ts';
import { parseTokens, type LoadedTokens, type TokenOrder } from '../io/tokens.ts';
import { cannotRead, openForReading, readBytes } from './fsx.ts';

/** The model folder `dir` on disk. */
export function folderFiles(dir: string): ModelFiles {
  return {
    where: dir,
    async read(name) {
      try {
        return new Uint8Array(await readFile(join(dir, name)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw cannotRead(`${dir}/${name}`, e);
      }
    },
  };
}

useFolderFiles(folderFiles);

/** sha256 of a file's bytes (16 hex), read in chunks: the model's identity in token files (= bytesFingerprint of its bytes). */
export function fileFingerprint(path: string): string {
  const h = createHash('sha256');
  const fd = openForReading(path);
  try {
    const buf = Buffer.alloc(1 << 24);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex').slice(0, 16);
}

/** Read a token file (JSON or .npy), returning ids in encoder order. */
export function readTokens(path: string, npyOrder: TokenOrder = 'encoder'): LoadedTokens {
  return parseTokens(readBytes(path), path, npyOrder);
}
