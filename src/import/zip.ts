// The central directory of a zip file, read from a file descriptor: enough to find the
// entries of a PyTorch checkpoint (`torch.save` writes a zip of stored, 64-byte aligned
// entries: archive/data.pkl, archive/data/0, ...) and read each one on its own, so that a
// checkpoint larger than memory can be streamed tensor by tensor. ZIP64 is read (a 2-B
// parameter checkpoint is over 4 GiB); stored and deflated entries are supported.
import { readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

export type ZipEntry = { name: string; method: number; compressedSize: number; size: number; localHeaderOffset: number };

const EOCD_SIG = 0x06054b50;
const EOCD64_LOCATOR_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

function readAt(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let off = 0;
  while (off < len) {
    const n = readSync(fd, buf, off, len - off, pos + off);
    if (n === 0) throw new Error(`unexpected end of file at byte ${pos + off}`);
    off += n;
  }
  return buf;
}

const u64 = (b: Buffer, at: number): number => Number(b.readBigUInt64LE(at));

/** List the entries of the zip file open on `fd` (of `fileSize` bytes). Throws on a malformed directory. */
export function readZipDirectory(fd: number, fileSize: number): ZipEntry[] {
  const tailLen = Math.min(fileSize, 22 + 65535 + 20);
  const tail = readAt(fd, fileSize - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file (no end-of-central-directory record)');
  let count = tail.readUInt16LE(eocd + 10);
  let dirSize = tail.readUInt32LE(eocd + 12);
  let dirOffset = tail.readUInt32LE(eocd + 16);
  if (eocd >= 20 && tail.readUInt32LE(eocd - 20) === EOCD64_LOCATOR_SIG) {
    const rec = readAt(fd, u64(tail, eocd - 20 + 8), 56);
    if (rec.readUInt32LE(0) !== EOCD64_SIG) throw new Error('corrupt ZIP64 end-of-central-directory record');
    count = u64(rec, 32);
    dirSize = u64(rec, 40);
    dirOffset = u64(rec, 48);
  }
  if (dirOffset + dirSize > fileSize) throw new Error(`truncated (the central directory ends at byte ${dirOffset + dirSize}, the file has ${fileSize})`);
  const dir = readAt(fd, dirOffset, dirSize);
  const out: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > dir.length || dir.readUInt32LE(p) !== CENTRAL_SIG) throw new Error(`corrupt central directory at entry ${i}`);
    const method = dir.readUInt16LE(p + 10);
    let compressedSize = dir.readUInt32LE(p + 20);
    let size = dir.readUInt32LE(p + 24);
    const nameLen = dir.readUInt16LE(p + 28);
    const extraLen = dir.readUInt16LE(p + 30);
    const commentLen = dir.readUInt16LE(p + 32);
    let localHeaderOffset = dir.readUInt32LE(p + 42);
    const name = dir.toString('utf8', p + 46, p + 46 + nameLen);
    // ZIP64 extended information: the 0xFFFFFFFF fields, in this order
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = dir.readUInt16LE(e);
      const len = dir.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) { size = u64(dir, q); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = u64(dir, q); q += 8; }
        if (localHeaderOffset === 0xffffffff) { localHeaderOffset = u64(dir, q); q += 8; }
      }
      e += 4 + len;
    }
    out.push({ name, method, compressedSize, size, localHeaderOffset });
    p = extraEnd + commentLen;
  }
  return out;
}

/** Byte offset of an entry's data (after its local header). */
export function entryDataOffset(fd: number, e: ZipEntry): number {
  const h = readAt(fd, e.localHeaderOffset, 30);
  if (h.readUInt32LE(0) !== LOCAL_SIG) throw new Error(`${e.name}: corrupt local header`);
  return e.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
}

/** Read an entry whole (stored or deflated). */
export function readZipEntry(fd: number, e: ZipEntry, fileSize: number): Buffer {
  const at = entryDataOffset(fd, e);
  if (at + e.compressedSize > fileSize) throw new Error(`${e.name}: truncated (its data ends at byte ${at + e.compressedSize}, the file has ${fileSize})`);
  const raw = readAt(fd, at, e.compressedSize);
  if (e.method === 0) return raw;
  if (e.method === 8) return inflateRawSync(raw);
  throw new Error(`${e.name}: unsupported zip compression method ${e.method}`);
}

export { readAt };
