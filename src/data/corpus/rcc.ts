// A reader for Qt resource files (`.rcc`, the binary format of `rcc -binary`): GCompris
// ships its photographs inside them. Only what listing and extracting files needs:
//   header  "qres", version, tree offset, data offset, names offset (+ flags from v3)
//   tree    one node per entry (14 bytes in v1, 22 from v2: + last-modified);
//           a directory holds (child count, first child index), a file its data offset
//   names   u16 length, u32 hash, UTF-16BE characters
//   data    u32 size, then the bytes; flag 1 = zlib with a u32 length prefix (qCompress),
//           flag 4 = zstd (not read here: such a file is skipped with its name)
import { inflateSync } from 'node:zlib';

const DIRECTORY = 0x02;
const COMPRESSED = 0x01;
const COMPRESSED_ZSTD = 0x04;

export type RccFile = { path: string; bytes: () => Uint8Array };

/** List the files of an rcc archive (throws with the reason on a malformed one). */
export function readRcc(buf: Uint8Array, label = 'rcc'): RccFile[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = String.fromCharCode(...buf.subarray(0, 4));
  if (magic !== 'qres') throw new Error(`${label}: not a Qt resource file (no 'qres' magic)`);
  const version = view.getUint32(4);
  if (version < 1 || version > 3) throw new Error(`${label}: rcc version ${version} is not supported`);
  const tree = view.getUint32(8);
  const data = view.getUint32(12);
  const names = view.getUint32(16);
  const nodeSize = version >= 2 ? 22 : 14;
  const nameAt = (off: number): string => {
    const len = view.getUint16(names + off);
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(view.getUint16(names + off + 6 + 2 * i));
    return s;
  };
  const out: RccFile[] = [];
  const visit = (index: number, prefix: string, depth: number): void => {
    if (depth > 64) throw new Error(`${label}: directory tree too deep`);
    const node = tree + index * nodeSize;
    if (node + nodeSize > buf.length) throw new Error(`${label}: tree node ${index} out of bounds`);
    const flags = view.getUint16(node + 4);
    const name = index === 0 ? '' : nameAt(view.getUint32(node));
    const path = prefix ? `${prefix}/${name}` : name;
    if (flags & DIRECTORY) {
      const count = view.getUint32(node + 6);
      const first = view.getUint32(node + 10);
      for (let c = 0; c < count; c++) visit(first + c, path, depth + 1);
      return;
    }
    const at = data + view.getUint32(node + 10);
    const size = view.getUint32(at);
    if (at + 4 + size > buf.length) throw new Error(`${label}: ${path}: data out of bounds`);
    const raw = buf.subarray(at + 4, at + 4 + size);
    if (flags & COMPRESSED_ZSTD) return; // zstd needs Node ≥ 22.15; no photo seen stored so
    out.push({
      path,
      bytes: () => (flags & COMPRESSED ? new Uint8Array(inflateSync(raw.subarray(4))) : raw),
    });
  };
  visit(0, '', 0);
  return out;
}
