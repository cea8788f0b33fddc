/**
 * Reader for `torch.save` files in the zip format (PyTorch ≥ 1.6): a zip holding `<archive>/data.pkl`
 * (a pickle whose tensors point at storages through persistent ids), `<archive>/data/<key>` (one raw
 * little-endian storage per key) and `<archive>/version`.
 *
 * The pickle is run by a small VM that knows only the opcodes torch.save emits and a whitelist of
 * globals (OrderedDict, the tensor rebuild functions, storage types, dtypes). Nothing in the file can
 * make it call anything else, so a malicious checkpoint can at worst be refused. Storages are read
 * lazily, one zip entry at a time, so unwanted tensors (a SAM2 checkpoint's memory modules) are never
 * loaded.
 */
import { readFile, type FileHandle } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { FileError } from '../errors.ts';
import { openForReading } from '../util/fs.ts';
import { formatBytes, memoryLimit } from '../util/limits.ts';

/** deflate's best case is about 1032:1; a declared size beyond that is a lie */
const MAX_DEFLATE_RATIO = 1032;
const MAX_PICKLE_BYTES = 256 * 2 ** 20;
import { DTYPE_BYTES, toFloat32, type WeightDtype } from './dtype.ts';
import { numel, type StateDict } from './tensor.ts';

// ---------------------------------------------------------------- zip

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

class ZipProblem extends Error {}

/** Random access to the file's bytes: the whole file in memory, or a handle for files too big for that. */
export interface ByteSource {
  size: number;
  read(position: number, length: number): Promise<Uint8Array>;
}

export function memorySource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    read: async (position, length) => {
      if (position < 0 || position + length > bytes.byteLength) throw new ZipProblem(`unexpected end of file at byte ${bytes.byteLength}`);
      return bytes.subarray(position, position + length);
    },
  };
}

function handleSource(handle: FileHandle, size: number): ByteSource {
  return {
    size,
    read: async (position, length) => {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, position + done);
        if (bytesRead === 0) throw new ZipProblem(`unexpected end of file at byte ${position + done}`);
        done += bytesRead;
      }
      return out;
    },
  };
}

/** DataView over a fresh or borrowed Uint8Array. */
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

const u64 = (view: DataView, at: number): number => {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipProblem(`64-bit zip field ${v} is out of range`);
  return Number(v);
};

/** Lists a zip's entries from its central directory (zip64 aware). */
export async function readZipDirectory(src: ByteSource): Promise<Map<string, ZipEntry>> {
  const fileSize = src.size;
  // The end-of-central-directory record is 22 bytes plus a comment of up to 65535 bytes.
  const tailLength = Math.min(fileSize, 22 + 65535);
  const tv = dv(await src.read(fileSize - tailLength, tailLength));
  let eocd = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) === tailLength) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipProblem('no zip end-of-central-directory record (truncated file?)');
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locatorAt = eocd - 20;
    if (locatorAt < 0 || tv.getUint32(locatorAt, true) !== SIG_ZIP64_LOCATOR) throw new ZipProblem('zip64 locator missing');
    const recordOffset = u64(tv, locatorAt + 8);
    if (recordOffset + 56 > fileSize) throw new ZipProblem('zip64 end record out of range');
    const rec = dv(await src.read(recordOffset, 56));
    if (rec.getUint32(0, true) !== SIG_ZIP64_EOCD) throw new ZipProblem('zip64 end record signature mismatch');
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  if (cdOffset + cdSize > fileSize) throw new ZipProblem(`central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the file end ${fileSize} (truncated file?)`);
  if (count * 46 > cdSize) throw new ZipProblem(`central directory of ${cdSize} bytes cannot hold ${count} entries`);
  const cd = await src.read(cdOffset, cdSize);
  const view = dv(cd);
  const decoder = new TextDecoder();
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > cdSize || view.getUint32(at, true) !== SIG_CENTRAL) throw new ZipProblem(`central directory entry ${i} is corrupt`);
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    const crc32 = view.getUint32(at + 16, true);
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localHeaderOffset = view.getUint32(at + 42, true);
    const end = at + 46 + nameLength + extraLength + commentLength;
    if (end > cdSize) throw new ZipProblem(`central directory entry ${i} runs past the directory`);
    const name = decoder.decode(cd.subarray(at + 46, at + 46 + nameLength));
    if (flags & 1) throw new ZipProblem(`entry ${name} is encrypted`);
    // zip64 extended information: only the fields saturated in the fixed header are present, in order
    let extra = at + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const len = view.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let p = extra + 4;
        const take = (): number => {
          if (p + 8 > extra + 4 + len) throw new ZipProblem(`entry ${name}: zip64 extra field too short`);
          const v = u64(view, p);
          p += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      extra += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, crc32, localHeaderOffset });
    at = end;
  }
  return entries;
}

/** The decompressed, CRC-checked bytes of one entry. */
export async function readZipEntry(src: ByteSource, entry: ZipEntry): Promise<Uint8Array> {
  const fileSize = src.size;
  if (entry.localHeaderOffset + 30 > fileSize) throw new ZipProblem(`entry ${entry.name}: local header beyond the file end (truncated file?)`);
  const local = dv(await src.read(entry.localHeaderOffset, 30));
  if (local.getUint32(0, true) !== SIG_LOCAL) throw new ZipProblem(`entry ${entry.name}: local header signature mismatch`);
  // the local extra field differs from the central one (torch pads it to align the data to 64 bytes)
  const dataStart = entry.localHeaderOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
  if (dataStart + entry.compressedSize > fileSize) {
    throw new ZipProblem(`entry ${entry.name}: data [${dataStart}, ${dataStart + entry.compressedSize}) runs past the file end ${fileSize} (truncated file?)`);
  }
  // declared sizes first: nothing is inflated that could not fit, or that no deflate stream this short holds
  const limit = memoryLimit();
  if (entry.size > limit) throw new ZipProblem(`entry ${entry.name} declares ${formatBytes(entry.size)}, more than the memory limit of ${formatBytes(limit)} (a quarter of the physical memory unless --max-memory says otherwise)`);
  if (entry.method === 8 && entry.size > entry.compressedSize * MAX_DEFLATE_RATIO + 1024) {
    throw new ZipProblem(`entry ${entry.name} declares ${formatBytes(entry.size)}, more than ${formatBytes(entry.compressedSize)} of deflate data can hold (corrupt or hostile file)`);
  }
  let data = await src.read(dataStart, entry.compressedSize);
  if (entry.method === 8) {
    try {
      // the directory's size bounds the output, so a zip bomb fails instead of exhausting memory
      data = zlib.inflateRawSync(data, { maxOutputLength: Math.max(1, entry.size) });
    } catch (err) {
      throw new ZipProblem(`entry ${entry.name}: cannot inflate (${(err as Error).message})`);
    }
  } else if (entry.method !== 0) {
    throw new ZipProblem(`entry ${entry.name}: unsupported zip compression method ${entry.method}`);
  }
  if (data.byteLength !== entry.size) throw new ZipProblem(`entry ${entry.name}: ${data.byteLength} bytes, the directory says ${entry.size}`);
  if (zlib.crc32(data) !== entry.crc32) throw new ZipProblem(`entry ${entry.name}: CRC mismatch (corrupt file)`);
  return data;
}

// ---------------------------------------------------------------- pickle

/** A storage as the pickle describes it; its bytes live in the zip entry `<archive>/data/<key>`. */
export interface StorageRef {
  key: string;
  dtype: WeightDtype;
  /** elements */
  numel: number;
}

/** A tensor as the pickle describes it; readTorchStateDict turns it into data. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

class StorageType {
  constructor(readonly dtype: WeightDtype) {}
}

class TorchDtype {
  constructor(readonly name: string) {}
}

/** A whitelisted global: the only things REDUCE / NEWOBJ may call. */
class PickleGlobal {
  constructor(
    readonly qualifiedName: string,
    readonly call?: (args: readonly unknown[]) => unknown,
  ) {}
}

class PickleProblem extends Error {}

const STORAGE_TYPES: Record<string, WeightDtype> = {
  FloatStorage: 'float32', HalfStorage: 'float16', BFloat16Storage: 'bfloat16', DoubleStorage: 'float64',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8',
  ByteStorage: 'uint8', BoolStorage: 'bool',
};

const TORCH_DTYPES = ['float32', 'float', 'float16', 'half', 'bfloat16', 'float64', 'double', 'int64', 'long', 'int32', 'int', 'int16', 'int8', 'uint8', 'bool'];

const isIntList = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);

function rebuildTensor(args: readonly unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!storage || typeof storage !== 'object' || !('key' in storage)) throw new PickleProblem('tensor rebuild without a storage');
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw new PickleProblem('tensor rebuild with a bad storage offset');
  if (!isIntList(size) || !isIntList(stride) || size.length !== stride.length) throw new PickleProblem('tensor rebuild with bad size/stride');
  return new TensorRef(storage as StorageRef, offset as number, [...size], [...stride]);
}

function makeGlobals(): Map<string, PickleGlobal> {
  const globals = new Map<string, PickleGlobal>();
  const add = (name: string, call?: (args: readonly unknown[]) => unknown) => globals.set(name, new PickleGlobal(name, call));
  add('collections.OrderedDict', (args) => {
    const map = new Map<unknown, unknown>();
    if (args.length > 0 && Array.isArray(args[0])) {
      for (const pair of args[0] as unknown[]) {
        if (!Array.isArray(pair) || pair.length !== 2) throw new PickleProblem('OrderedDict built from something other than pairs');
        map.set(pair[0], pair[1]);
      }
    }
    return map;
  });
  add('torch._utils._rebuild_tensor_v2', rebuildTensor);
  add('torch._utils._rebuild_tensor', rebuildTensor);
  // parameters pickle as their data plus requires_grad/hooks (and state), none of which matters here
  add('torch._utils._rebuild_parameter', (args) => args[0]);
  add('torch._utils._rebuild_parameter_with_state', (args) => args[0]);
  // bytes objects pickled at protocol 2 arrive as _codecs.encode(str, 'latin1')
  add('_codecs.encode', (args) => {
    const [text, encoding] = args;
    if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) throw new PickleProblem('unsupported _codecs.encode call');
    return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
  });
  for (const [name, dtype] of Object.entries(STORAGE_TYPES)) globals.set(`torch.${name}`, Object.assign(new PickleGlobal(`torch.${name}`), { storageType: new StorageType(dtype) }));
  for (const name of TORCH_DTYPES) globals.set(`torch.${name}`, Object.assign(new PickleGlobal(`torch.${name}`), { dtype: new TorchDtype(name) }));
  return globals;
}

const GLOBALS = makeGlobals();

export interface PickleOptions {
  /** resolves a persistent id (BINPERSID) */
  persistentLoad?: (pid: unknown) => unknown;
}

/**
 * Runs a pickle and returns its value. dicts become Maps, lists and tuples arrays (tuples frozen),
 * strings strings, ints numbers (bigint beyond 2^53), bytes Uint8Arrays. Throws PickleProblem on
 * anything outside the torch.save subset.
 */
export function unpickle(bytes: Uint8Array, options: PickleOptions = {}): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number): number => {
    if (n < 0 || pos + n > bytes.byteLength) throw new PickleProblem(`truncated pickle (needs ${n} bytes at byte ${pos})`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = () => bytes[need(1)]!;
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const i32 = () => view.getInt32(need(4), true);
  const u64 = () => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleProblem(`length ${v} out of range`);
    return Number(v);
  };
  const utf8 = (n: number) => {
    const at = need(n);
    try {
      return decoder.decode(bytes.subarray(at, at + n));
    } catch {
      throw new PickleProblem(`invalid UTF-8 string at byte ${at}`);
    }
  };
  const latin1 = (n: number) => {
    const at = need(n);
    let s = '';
    for (let i = at; i < at + n; i++) s += String.fromCharCode(bytes[i]!);
    return s;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw new PickleProblem(`truncated pickle (unterminated line at byte ${pos})`);
    return latin1(end - pos + 1).slice(0, -1);
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) throw new PickleProblem(`stack underflow at byte ${pos}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new PickleProblem(`stack underflow at byte ${pos}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw new PickleProblem(`MARK missing at byte ${pos}`);
    return stack.splice(m);
  };
  const littleInt = (at: number, n: number): number | bigint => {
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]!);
    if (bytes[at + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const lookupGlobal = (module: string, name: string): PickleGlobal => {
    const g = GLOBALS.get(`${module}.${name}`);
    if (!g) throw new PickleProblem(`unsupported pickle global ${module}.${name}`);
    return g;
  };
  const asArgs = (v: unknown): readonly unknown[] => {
    if (!Array.isArray(v)) throw new PickleProblem(`call arguments are not a tuple at byte ${pos}`);
    return v;
  };
  const callable = (g: unknown): PickleGlobal => {
    if (!(g instanceof PickleGlobal) || !g.call) {
      throw new PickleProblem(`${g instanceof PickleGlobal ? g.qualifiedName : typeof g} is not callable (byte ${pos})`);
    }
    return g;
  };
  const resolve = (g: unknown): unknown => {
    // storage types and dtypes are used as values, not called
    if (g instanceof PickleGlobal) {
      const extra = g as PickleGlobal & { storageType?: StorageType; dtype?: TorchDtype };
      return extra.storageType ?? extra.dtype ?? g;
    }
    return g;
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (!(dict instanceof Map)) throw new PickleProblem(`SETITEM(S) on a non-dict at byte ${pos}`);
    if (items.length % 2) throw new PickleProblem(`odd number of items for SETITEMS at byte ${pos}`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  const appendItems = (list: unknown, items: unknown[]) => {
    if (!Array.isArray(list) || Object.isFrozen(list)) throw new PickleProblem(`APPEND(S) on a non-list at byte ${pos}`);
    for (const item of items) list.push(item);
  };
  const memoGet = (i: number) => {
    if (!memo.has(i)) throw new PickleProblem(`memo ${i} not defined (byte ${pos})`);
    return memo.get(i);
  };

  while (true) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const proto = u8();
        if (proto > 5) throw new PickleProblem(`pickle protocol ${proto} is not supported`);
        break;
      }
      case 0x95: // FRAME: frames are only a buffering hint
        u64();
        break;
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length) throw new PickleProblem(`pickle ended with ${stack.length} values on the stack`);
        return stack[0];
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: { // LONG1
        const n = u8();
        stack.push(littleInt(need(n), n));
        break;
      }
      case 0x8b: { // LONG4
        const n = i32();
        stack.push(littleInt(need(n), n));
        break;
      }
      case 0x49: { // INT (protocol 0)
        const text = line();
        if (text === '00') stack.push(false);
        else if (text === '01') stack.push(true);
        else if (/^-?\d+$/.test(text)) stack.push(Number(text));
        else throw new PickleProblem(`bad INT ${JSON.stringify(text)}`);
        break;
      }
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x58: stack.push(utf8(u32())); break; // BINUNICODE
      case 0x8c: stack.push(utf8(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8(u64())); break; // BINUNICODE8
      case 0x55: stack.push(latin1(u8())); break; // SHORT_BINSTRING
      case 0x54: stack.push(latin1(u32())); break; // BINSTRING
      case 0x43: { const n = u8(); const a = need(n); stack.push(bytes.slice(a, a + n)); break; } // SHORT_BINBYTES
      case 0x42: { const n = u32(); const a = need(n); stack.push(bytes.slice(a, a + n)); break; } // BINBYTES
      case 0x8e: { const n = u64(); const a = need(n); stack.push(bytes.slice(a, a + n)); break; } // BINBYTES8
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(Object.freeze([])); break; // EMPTY_TUPLE
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x90: { // ADDITEMS
        const items = popMark();
        const set = top();
        if (!(set instanceof Set)) throw new PickleProblem(`ADDITEMS on a non-set at byte ${at}`);
        for (const item of items) set.add(item);
        break;
      }
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x74: stack.push(Object.freeze(popMark())); break; // TUPLE
      case 0x85: stack.push(Object.freeze([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(Object.freeze([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(Object.freeze([a, b, c])); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const d = new Map(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x70: { // PUT (protocol 0)
        const text = line();
        if (!/^\d+$/.test(text)) throw new PickleProblem(`bad PUT ${JSON.stringify(text)}`);
        memo.set(Number(text), top());
        break;
      }
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x67: { // GET (protocol 0)
        const text = line();
        if (!/^\d+$/.test(text)) throw new PickleProblem(`bad GET ${JSON.stringify(text)}`);
        stack.push(memoGet(Number(text)));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        stack.push(resolve(lookupGlobal(module, name)));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleProblem(`STACK_GLOBAL without strings at byte ${at}`);
        stack.push(resolve(lookupGlobal(module, name)));
        break;
      }
      case 0x52: { // REDUCE
        const args = asArgs(pop());
        const fn = callable(pop());
        stack.push(fn.call!(args));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = asArgs(pop());
        const cls = callable(pop());
        stack.push(cls.call!(args));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = asArgs(pop());
        const cls = callable(pop());
        if (!(kwargs instanceof Map) || kwargs.size > 0) throw new PickleProblem(`NEWOBJ_EX with keyword arguments at byte ${at}`);
        stack.push(cls.call!(args));
        break;
      }
      case 0x62: { // BUILD
        pop(); // the state: an OrderedDict's _metadata or a parameter's __dict__, both irrelevant to the weights
        const obj = top();
        if (!(obj instanceof Map) && !(obj instanceof TensorRef)) throw new PickleProblem(`BUILD on an unsupported object at byte ${at}`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) throw new PickleProblem('persistent id without a loader');
        stack.push(options.persistentLoad(pid));
        break;
      }
      default:
        throw new PickleProblem(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
    }
  }
}

// ---------------------------------------------------------------- torch.save files

/** What a legacy (pre-1.6) torch.save file starts with: a pickled magic number after PROTO 2. */
function looksLikeLegacyTorch(head: Uint8Array): boolean {
  return head[0] === 0x80 && head[1] !== undefined && head[1] <= 5;
}

export interface TorchFile {
  /** the unpickled object, tensors as TensorRef */
  root: unknown;
  /** the archive's folder name inside the zip (e.g. `archive`, `sam2_checkpoint`) */
  archive: string;
}

interface OpenTorch {
  path: string;
  src: ByteSource;
  entries: Map<string, ZipEntry>;
  file: TorchFile;
}

function wrap(path: string, err: unknown): never {
  if (err instanceof FileError) throw err;
  if (err instanceof ZipProblem) throw new FileError(path, `corrupt torch.save zip: ${err.message}`);
  if (err instanceof PickleProblem) throw new FileError(path, `data.pkl: ${err.message}`);
  throw err;
}

/**
 * Files up to this size are read whole: one read instead of one per storage, and float32 tensors
 * become zero-copy views (torch aligns storages to 64 bytes). Bigger files are read entry by entry.
 */
const WHOLE_FILE_LIMIT = 1.5 * 2 ** 30;

async function withSource<T>(path: string, use: (src: ByteSource) => Promise<T>, wholeFileLimit = WHOLE_FILE_LIMIT): Promise<T> {
  const handle = await openForReading(path);
  try {
    const { size } = await handle.stat();
    if (size <= wholeFileLimit) {
      const bytes = await readFile(handle);
      if (bytes.byteLength !== size) throw new FileError(path, 'file changed while being read');
      return await use(memorySource(bytes));
    }
    return await use(handleSource(handle, size));
  } finally {
    await handle.close();
  }
}

async function parseTorch(src: ByteSource, path: string): Promise<OpenTorch> {
  try {
    const head = src.size >= 4 ? await src.read(0, 4) : new Uint8Array(0);
    const isZip = head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
    if (!isZip) {
      if (looksLikeLegacyTorch(head)) {
        throw new FileError(path, 'legacy (pre-1.6) torch.save format is not supported; re-save it in Python with torch.save(torch.load(f), g, _use_new_zipfile_serialization=True)');
      }
      throw new FileError(path, 'not a torch.save zip file');
    }
    const entries = await readZipDirectory(src);
    const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) throw new FileError(path, `not a torch.save archive: expected one <archive>/data.pkl entry, found ${pkls.length}`);
    const archive = pkls[0]!.slice(0, -'/data.pkl'.length);
    const byteorder = entries.get(`${archive}/byteorder`);
    if (byteorder) {
      const order = new TextDecoder().decode(await readZipEntry(src, byteorder)).trim();
      if (order !== 'little') throw new FileError(path, `torch.save archive in ${order}-endian byte order is not supported`);
    }
    const pickleEntry = entries.get(pkls[0]!)!;
    // the pickle is the checkpoint's table of contents: megabytes at most, however big the model
    if (pickleEntry.size > MAX_PICKLE_BYTES) {
      throw new FileError(path, `data.pkl declares ${formatBytes(pickleEntry.size)}, more than a checkpoint's pickle needs (limit ${formatBytes(MAX_PICKLE_BYTES)})`);
    }
    const pickle = await readZipEntry(src, pickleEntry);
    const persistentLoad = (pid: unknown): StorageRef => {
      if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') throw new PickleProblem(`unsupported persistent id ${JSON.stringify(Array.isArray(pid) ? pid[0] : typeof pid)}`);
      const [, type, key, , count] = pid as [string, unknown, unknown, unknown, unknown];
      if (!(type instanceof StorageType)) throw new PickleProblem('persistent id without a storage type');
      if (typeof key !== 'string' || !Number.isSafeInteger(count) || (count as number) < 0) throw new PickleProblem('persistent id with a bad storage key or size');
      const entry = entries.get(`${archive}/data/${key}`);
      if (!entry) throw new PickleProblem(`storage ${key} is missing from the archive`);
      const expected = (count as number) * DTYPE_BYTES[type.dtype];
      if (entry.size !== expected) throw new PickleProblem(`storage ${key} holds ${entry.size} bytes, ${count} ${type.dtype} elements need ${expected}`);
      return { key, dtype: type.dtype, numel: count as number };
    };
    const root = unpickle(pickle, { persistentLoad });
    return { path, src, entries, file: { root, archive } };
  } catch (err) {
    wrap(path, err);
  }
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d]! !== 1 && stride[d]! !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/** Gathers a strided view into a new row-major array. */
function gather(source: Float32Array, offset: number, shape: readonly number[], stride: readonly number[]): Float32Array {
  const n = numel(shape);
  const out = new Float32Array(n);
  if (n === 0) return out;
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let src = offset;
  for (let i = 0; i < n; i++) {
    out[i] = source[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      index[d]! += 1;
      src += stride[d]!;
      if (index[d]! < shape[d]!) break;
      src -= stride[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/** 2^30 float32 values = 4 GiB: beyond any model this app runs (a crafted stride-0 tensor could claim more) */
const MAX_TENSOR_ELEMENTS = 2 ** 30;

async function materialize(open: OpenTorch, refs: Map<string, TensorRef>): Promise<{ tensors: StateDict; dtypes: Map<string, WeightDtype> }> {
  const tensors: StateDict = new Map();
  const dtypes = new Map<string, WeightDtype>();
  const storages = new Map<string, Uint8Array>();
  const users = new Map<string, number>();
  for (const ref of refs.values()) users.set(ref.storage.key, (users.get(ref.storage.key) ?? 0) + 1);
  for (const [name, ref] of refs) {
    const { storage, storageOffset, shape, stride } = ref;
    const n = numel(shape);
    let extent = storageOffset + (n === 0 ? 0 : 1);
    if (n > 0) for (let d = 0; d < shape.length; d++) extent += (shape[d]! - 1) * stride[d]!;
    if (n > MAX_TENSOR_ELEMENTS) throw new FileError(open.path, `tensor "${name}" of shape [${shape.join(', ')}] is too large`);
    if (extent > storage.numel) throw new FileError(open.path, `tensor "${name}" reaches element ${extent} of a ${storage.numel}-element storage`);
    let bytes = storages.get(storage.key);
    if (!bytes) {
      bytes = await readZipEntry(open.src, open.entries.get(`${open.file.archive}/data/${storage.key}`)!);
      storages.set(storage.key, bytes);
    }
    const es = DTYPE_BYTES[storage.dtype];
    let data: Float32Array;
    if (isContiguous(shape, stride)) {
      data = toFloat32(bytes.subarray(storageOffset * es, (storageOffset + n) * es), storage.dtype);
    } else {
      const span = toFloat32(bytes.subarray(storageOffset * es, extent * es), storage.dtype);
      data = gather(span, 0, shape, stride);
    }
    tensors.set(name, { shape: [...shape], data });
    dtypes.set(name, storage.dtype);
    // drop our reference once the last tensor on this storage is built (float32 views keep it alive as needed)
    const left = users.get(storage.key)! - 1;
    users.set(storage.key, left);
    if (left === 0) storages.delete(storage.key);
  }
  return { tensors, dtypes };
}

export interface TorchStateDict {
  /** the loaded tensors, float32, under their keys in the state_dict */
  tensors: StateDict;
  /** each loaded tensor's storage dtype in the file */
  dtypes: Map<string, WeightDtype>;
  /** where the state_dict was: [] for a bare state_dict, ['model'] for SAM2 checkpoints */
  location: string[];
  /** tensor keys present but not loaded (rejected by `include`) */
  skipped: string[];
  /** top-level entries other than the state_dict, tensors excluded (e.g. epoch numbers) */
  extras: Map<string, unknown>;
}

const STATE_DICT_KEYS = ['model', 'state_dict', 'model_state_dict', 'module'];

function isTensorDict(v: unknown): v is Map<unknown, unknown> {
  if (!(v instanceof Map) || v.size === 0) return false;
  for (const [k, x] of v) if (typeof k !== 'string' || !(x instanceof TensorRef)) return false;
  return true;
}

/** Parses the pickle only (tensor data is not converted). */
export async function readTorchPickle(path: string): Promise<TorchFile> {
  return withSource(path, async (src) => (await parseTorch(src, path)).file);
}

export interface TorchReadOptions {
  /** only tensors whose key passes are read and converted; the others are listed in `skipped` */
  include?: (key: string, allKeys: readonly string[]) => boolean;
  /** files up to this many bytes are read whole (default 1.5 GiB); bigger ones entry by entry */
  wholeFileLimit?: number;
}

/**
 * Reads the state_dict of a torch.save file: the top-level dict itself when every value is a tensor
 * (`torch.save(model.state_dict())`), else the tensor dict under `model` / `state_dict` (SAM2's
 * `torch.save({'model': ...})`).
 */
export async function readTorchStateDict(path: string, opts: TorchReadOptions = {}): Promise<TorchStateDict> {
  return withSource(path, (src) => stateDictFrom(src, path, opts), opts.wholeFileLimit);
}

/** The same from bytes in memory; `origin` names them in errors. */
export async function parseTorchStateDict(bytes: Uint8Array, origin = '<buffer>', opts: TorchReadOptions = {}): Promise<TorchStateDict> {
  return stateDictFrom(memorySource(bytes), origin, opts);
}

async function stateDictFrom(src: ByteSource, path: string, opts: TorchReadOptions): Promise<TorchStateDict> {
  const o = await parseTorch(src, path);
  const root = o.file.root;
  let location: string[] | undefined;
  let dict: Map<unknown, unknown> | undefined;
  if (isTensorDict(root)) {
    location = [];
    dict = root;
  } else if (root instanceof Map) {
    const key = STATE_DICT_KEYS.find((k) => isTensorDict(root.get(k)));
    if (key) {
      location = [key];
      dict = root.get(key) as Map<unknown, unknown>;
    }
  }
  if (!dict || !location) {
    const keys = root instanceof Map ? [...root.keys()].slice(0, 8).map(String).join(', ') : typeof root;
    throw new FileError(path, `no state_dict found in the checkpoint (top level: ${keys || 'empty'})`);
  }
  const extras = new Map<string, unknown>();
  if (location.length && root instanceof Map) for (const [k, v] of root) if (k !== location[0] && !(v instanceof Map)) extras.set(String(k), v);
  const wanted = new Map<string, TensorRef>();
  const skipped: string[] = [];
  const allKeys = [...dict.keys()] as string[];
  for (const [k, v] of dict) {
    if (!opts.include || opts.include(k as string, allKeys)) wanted.set(k as string, v as TensorRef);
    else skipped.push(k as string);
  }
  const { tensors, dtypes } = await materialize(o, wanted).catch((err: unknown) => wrap(path, err));
  return { tensors, dtypes, location, skipped, extras };
}
