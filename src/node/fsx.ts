import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { UserError } from '../util/errors.ts';
import { parseJson } from '../util/json.ts';
import { dirname, basename, join } from 'node:path';

/**
 * Write a file atomically: a temp file beside it, fsync, then rename. A kill at any
 * moment leaves either the old file or the new one, never a torn one.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w');
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    if (existsSync(tmp)) rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Collect outputs in memory and write them only once all of them are ready, so a
 * failure half-way leaves no partial output (bad-input rule of the project).
 */
export class OutputSet {
  private files: { path: string; data: Uint8Array | string }[] = [];
  add(path: string, data: Uint8Array | string): void {
    this.files.push({ path, data });
  }
  get paths(): string[] {
    return this.files.map((f) => f.path);
  }
  commit(): void {
    for (const f of this.files) writeFileAtomic(f.path, f.data);
  }
}

/** The one-line error for a file that cannot be opened or read (its errno code). */
export function cannotRead(path: string, e: unknown): UserError {
  return new UserError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
}

/** The bytes of a file; an unreadable one is a one-line UserError naming it. */
export function readBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw cannotRead(path, e);
  }
}

/** A file descriptor open for reading; an unreadable file is a one-line UserError naming it. */
export function openForReading(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw cannotRead(path, e);
  }
}

/** Parse a JSON file; invalid JSON is a one-line error naming the file. */
export function readJsonFile(path: string): unknown {
  return parseJson(readBytes(path), path);
}
