// PyTorch checkpoints (`torch.save`: a zip holding data.pkl + one entry per storage) read
// without Python and without running anything. A pickle is a program for a stack machine
// whose GLOBAL/REDUCE opcodes call arbitrary functions: `torch.load` without
// `weights_only=True` runs whatever a file names. This reader is a restricted unpickler in
// the spirit of torch's weights_only one: it executes only the opcodes a state dict needs
// (containers, strings, numbers, memo) and calls only the few globals a state dict uses,
// each implemented here (OrderedDict, tensor rebuilds, the storage types). Anything else
// stops the read with an error naming it; nothing in the file is ever executed.
import { closeSync, fstatSync } from 'node:fs';
import { openForReading } from '../node/fsx.ts';
import { UserError } from '../util/errors.ts';
import { entryDataOffset, readAt, readZipDirectory, readZipEntry, type ZipEntry } from './zip.ts';

import { DTYPE_BYTES, type DType } from '../io/checkpoint.ts';

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};
const TORCH_DTYPES: Record<string, DType> = {
  float32: 'F32', float: 'F32', float16: 'F16', half: 'F16', bfloat16: 'BF16', float64: 'F64', double: 'F64',
  int64: 'I64', long: 'I64', int32: 'I32', int: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};

/** A tensor of a checkpoint, not yet read: `bytes()` reads its elements (row-major) from the file. */
export type LazyTensor = { kind: 'tensor'; dtype: DType; shape: number[]; storage: string; offset: number; stride: number[] };

type StorageRef = { kind: 'storage'; dtype: DType; key: string; numel: number };
type Global = { kind: 'global'; module: string; name: string };
type Mark = { kind: 'mark' };
type Value = null | boolean | number | bigint | string | Uint8Array | Value[] | Map<Value, Value> | LazyTensor | StorageRef | Global | Mark | { kind: 'dtype'; dtype: DType } | Set<Value>;

const MARK: Mark = { kind: 'mark' };

/** The globals a state dict may name; each maps to a function implemented here. */
const ALLOWED = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'builtins.set',
  'builtins.frozenset',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
  ...Object.keys(TORCH_DTYPES).map((s) => `torch.${s}`),
]);

export class PickleError extends Error {}

function isTensor(v: unknown): v is LazyTensor {
  return typeof v === 'object' && v !== null && (v as { kind?: string }).kind === 'tensor';
}

function call(fn: Global, args: Value[]): Value {
  const name = `${fn.module}.${fn.name}`;
  switch (name) {
    case 'collections.OrderedDict':
      return new Map();
    case 'builtins.set':
    case 'builtins.frozenset':
      return new Set((args[0] as Value[] | undefined) ?? []);
    case 'torch._utils._rebuild_tensor_v2': {
      const [storage, offset, size, stride] = args as [StorageRef, number, Value[], Value[]];
      if (!storage || storage.kind !== 'storage') throw new PickleError('_rebuild_tensor_v2 without a storage');
      return { kind: 'tensor', dtype: storage.dtype, storage: storage.key, offset: Number(offset), shape: (size as number[]).map(Number), stride: (stride as number[]).map(Number) };
    }
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state': {
      if (!isTensor(args[0])) throw new PickleError(`${fn.name} of a non-tensor`);
      return args[0];
    }
    default:
      throw new PickleError(`refuses to call ${name}`);
  }
}

/**
 * Run a pickle with the restricted machine. `persistentLoad` resolves BINPERSID ids
 * (torch's ('storage', type, key, location, numel) tuples).
 */
export function unpickle(buf: Uint8Array, persistentLoad: (pid: Value) => Value = () => { throw new PickleError('persistent id outside a checkpoint'); }): Value {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const stack: Value[] = [];
  const memo = new Map<number, Value>();
  let p = 0;
  const need = (n: number): void => {
    if (p + n > buf.length) throw new PickleError('truncated pickle');
  };
  const u8 = (): number => { need(1); return buf[p++]; };
  const u16 = (): number => { need(2); const v = view.getUint16(p, true); p += 2; return v; };
  const u32 = (): number => { need(4); const v = view.getUint32(p, true); p += 4; return v; };
  const i32 = (): number => { need(4); const v = view.getInt32(p, true); p += 4; return v; };
  const u64 = (): number => { need(8); const v = Number(view.getBigUint64(p, true)); p += 8; return v; };
  const bytes = (n: number): Uint8Array => { need(n); const b = buf.subarray(p, p + n); p += n; return b; };
  const str = (n: number): string => new TextDecoder().decode(bytes(n));
  const line = (): string => {
    const end = buf.indexOf(0x0a, p);
    if (end < 0) throw new PickleError('truncated pickle');
    const s = new TextDecoder().decode(buf.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = (): Value => {
    if (!stack.length) throw new PickleError('stack underflow');
    return stack.pop()!;
  };
  const popMark = (): Value[] => {
    let i = stack.length - 1;
    while (i >= 0 && stack[i] !== MARK) i--;
    if (i < 0) throw new PickleError('no MARK on the stack');
    const items = stack.splice(i + 1);
    stack.pop();
    return items;
  };
  const top = (): Value => {
    if (!stack.length) throw new PickleError('stack underflow');
    return stack[stack.length - 1];
  };
  const global = (module: string, name: string): Value => {
    const full = `${module}.${name}`;
    if (!ALLOWED.has(full)) throw new PickleError(`refuses global ${full}: a state dict holds only tensors, containers and plain values, and this name would run code under plain torch.load`);
    if (module === 'torch' && name in STORAGE_DTYPES) return { kind: 'global', module, name };
    if (module === 'torch' && name in TORCH_DTYPES) return { kind: 'dtype', dtype: TORCH_DTYPES[name] };
    return { kind: 'global', module, name };
  };
  const setItems = (target: Value, items: Value[]): void => {
    if (!(target instanceof Map)) throw new PickleError('SETITEM on a non-dict');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME
      case 0x2e: return pop(); // STOP
      case 0x28: stack.push(MARK); break; // MARK
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: { // LONG1
        const n = u8();
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: { need(8); stack.push(view.getFloat64(p, false)); p += 8; break; } // BINFLOAT (big-endian)
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(u64())); break; // BINUNICODE8
      case 0x55: stack.push(str(u8())); break; // SHORT_BINSTRING
      case 0x54: stack.push(str(i32())); break; // BINSTRING
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const items = popMark(); const d = new Map<Value, Value>(); setItems(d, items); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) throw new PickleError('APPEND to a non-list'); l.push(v); break; } // APPEND
      case 0x65: { const items = popMark(); const l = top(); if (!Array.isArray(l)) throw new PickleError('APPENDS to a non-list'); l.push(...items); break; } // APPENDS
      case 0x90: { const items = popMark(); const s = top(); if (!(s instanceof Set)) throw new PickleError('ADDITEMS to a non-set'); for (const x of items) s.add(x); break; } // ADDITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw new PickleError(`memo key ${k} missing`);
        stack.push(memo.get(k)!);
        break;
      }
      case 0x63: { const module = line(); const name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { const name = pop(); const module = pop(); stack.push(global(String(module), String(name))); break; } // STACK_GLOBAL
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (!fn || typeof fn !== 'object' || (fn as Global).kind !== 'global') throw new PickleError('REDUCE of a non-callable');
        stack.push(call(fn as Global, args as Value[]));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args); only OrderedDict
        const args = pop();
        const cls = pop();
        stack.push(call(cls as Global, args as Value[]));
        break;
      }
      case 0x62: { // BUILD: state for the object on top; state dicts carry only `_metadata`, which is not needed
        pop();
        if (!stack.length) throw new PickleError('BUILD on an empty stack');
        break;
      }
      case 0x51: { // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      }
      default:
        throw new PickleError(`refuses pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${p - 1}: not used by state dicts`);
    }
  }
}

/** A PyTorch zip checkpoint, open for reading tensor by tensor. */
export class TorchCheckpoint {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly size: number,
    private readonly entries: Map<string, ZipEntry>,
    private readonly prefix: string,
    /** The unpickled root object (usually a dict of name → tensor). */
    readonly root: Value,
  ) {}

  static open(path: string): TorchCheckpoint {
    const fd = openForReading(path);
    try {
      const size = fstatSync(fd).size;
      let entries: ZipEntry[];
      try {
        entries = readZipDirectory(fd, size);
      } catch (e) {
        throw new UserError(`${path}: not a PyTorch zip checkpoint (${(e as Error).message}); legacy pre-1.6 tar/pickle checkpoints are not read`);
      }
      const pkl = entries.find((e) => /^[^/]+\/data\.pkl$/.test(e.name));
      if (!pkl) throw new UserError(`${path}: no data.pkl in this zip: not a torch.save checkpoint`);
      const prefix = pkl.name.slice(0, -'data.pkl'.length);
      const byName = new Map(entries.map((e) => [e.name, e]));
      let root: Value;
      try {
        const bytes = readZipEntry(fd, pkl, size);
        root = unpickle(bytes, (pid) => {
          const t = pid as Value[];
          if (!Array.isArray(t) || t[0] !== 'storage') throw new PickleError('unknown persistent id');
          const [, type, key, , numel] = t as [string, Value, string, string, number];
          let dtype: DType | undefined;
          if (type && typeof type === 'object' && (type as Global).kind === 'global') dtype = STORAGE_DTYPES[(type as Global).name];
          else if (type && typeof type === 'object' && (type as { kind: string }).kind === 'dtype') dtype = (type as { dtype: DType }).dtype;
          if (!dtype) throw new PickleError(`storage of unknown type`);
          if (!byName.has(`${prefix}data/${key}`)) throw new PickleError(`storage ${key} is missing from the archive (truncated file?)`);
          return { kind: 'storage', dtype, key: String(key), numel: Number(numel) };
        });
      } catch (e) {
        if (e instanceof PickleError) throw new UserError(`${path}: ${e.message}`);
        throw new UserError(`${path}: corrupt checkpoint (${(e as Error).message})`);
      }
      return new TorchCheckpoint(path, fd, size, byName, prefix, root);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The flat name → tensor map of a state dict (nested dicts joined with '.'). */
  tensors(): Map<string, LazyTensor> {
    const out = new Map<string, LazyTensor>();
    const walk = (v: Value, prefix: string): void => {
      if (isTensor(v)) out.set(prefix, v);
      else if (v instanceof Map) for (const [k, x] of v) walk(x, prefix ? `${prefix}.${String(k)}` : String(k));
    };
    walk(this.root, '');
    return out;
  }

  /** The tensor's elements, row-major, as raw little-endian bytes of its dtype. */
  bytes(t: LazyTensor): Uint8Array {
    const entry = this.entries.get(`${this.prefix}data/${t.storage}`)!;
    const el = DTYPE_BYTES[t.dtype];
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const base = entryDataOffset(this.fd, entry);
    if (entry.method !== 0) throw new UserError(`${this.path}: storage ${t.storage} is compressed; torch.save writes them stored`);
    // the extent this view touches inside its storage
    let maxIndex = t.offset;
    t.shape.forEach((n, i) => { if (n > 0) maxIndex += (n - 1) * t.stride[i]; });
    if (numel > 0 && (maxIndex + 1) * el > entry.size) throw new UserError(`${this.path}: storage ${t.storage} holds ${entry.size} bytes, a tensor of it needs ${(maxIndex + 1) * el}`);
    if (base + entry.size > this.size) throw new UserError(`${this.path}: truncated (storage ${t.storage} ends at byte ${base + entry.size}, the file has ${this.size})`);
    const contiguous = t.shape.every((_, i) => t.stride[i] === t.shape.slice(i + 1).reduce((a, b) => a * b, 1) || t.shape[i] === 1);
    if (contiguous) return new Uint8Array(readAt(this.fd, base + t.offset * el, numel * el));
    // a strided view: read the extent, gather the elements in row-major order
    const span = readAt(this.fd, base + t.offset * el, (maxIndex - t.offset + 1) * el);
    const out = new Uint8Array(numel * el);
    const idx = new Array(t.shape.length).fill(0);
    for (let i = 0; i < numel; i++) {
      let src = 0;
      for (let d = 0; d < idx.length; d++) src += idx[d] * t.stride[d];
      out.set(span.subarray(src * el, (src + 1) * el), i * el);
      for (let d = idx.length - 1; d >= 0; d--) {
        if (++idx[d] < t.shape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}
