/**
 * Safetensors reader and writer (https://github.com/huggingface/safetensors, format v0):
 * 8-byte little-endian header length N, N bytes of JSON `{name: {dtype, shape, data_offsets},
 * "__metadata__"?: {string: string}}`, then the raw little-endian tensor bytes, offsets relative
 * to the end of the header.
 *
 * Every dtype is returned as float32 because that is what the engine computes in: F16/BF16/F64 are
 * converted, and integer/bool tensors (in practice only BatchNorm's I64 `num_batches_tracked`) become
 * float32 values too. Integers beyond 2^24 would lose precision; no weight file stores such values,
 * and `readSafetensorsFile` reports each tensor's original dtype for callers that care.
 */
import { readFile } from 'node:fs/promises';
import { FileError, fileSystemProblem } from '../errors.ts';
import { openForReading } from '../util/fs.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { numel, type StateDict, type Tensor } from './tensor.ts';
import { DTYPE_BYTES, toFloat32, type WeightDtype } from './dtype.ts';

export type { WeightDtype } from './dtype.ts';

/** Safetensors dtype names. */
export const SAFETENSORS_DTYPES: Record<string, WeightDtype> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16',
  I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8',
  U64: 'uint64', U32: 'uint32', U16: 'uint16', U8: 'uint8', BOOL: 'bool',
};

/** The reference implementation refuses headers above 100 MB; so do we (protects against absurd lengths). */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsFile {
  tensors: StateDict;
  /** tensors left out by the `include` option */
  skipped: string[];
  /** each tensor's dtype in the file (the data is float32 regardless) */
  dtypes: Map<string, WeightDtype>;
  metadata: Record<string, string>;
}

interface HeaderEntry {
  name: string;
  dtype: WeightDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** `bytes` holds at least the length and the header; `fileSize` is the whole file's size. */
function parseHeader(bytes: Uint8Array, origin: string, fileSize = bytes.byteLength): { entries: HeaderEntry[]; metadata: Record<string, string>; dataStart: number } {
  const fail = (problem: string): never => {
    throw new FileError(origin, problem);
  };
  if (fileSize < 8) fail(`not a safetensors file (${fileSize} bytes, the header length alone needs 8)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) fail(`safetensors header length ${headerLength} is implausible (limit ${MAX_HEADER_BYTES} bytes)`);
  const n = Number(headerLength);
  if (8 + n > fileSize || 8 + n > bytes.byteLength) fail(`safetensors header length ${n} exceeds the file size ${fileSize} (truncated or not safetensors)`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (err) {
    fail(`safetensors header is not valid JSON (${(err as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail('safetensors header is not a JSON object');
  const dataStart = 8 + n;
  const dataBytes = fileSize - dataStart;
  const entries: HeaderEntry[] = [];
  const metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('"__metadata__" must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"__metadata__.${k}" must be a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (!raw || typeof raw !== 'object') fail(`tensor "${name}": header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in SAFETENSORS_DTYPES)) fail(`tensor "${name}": unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} must be two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`tensor "${name}": data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataBytes) fail(`tensor "${name}": data_offsets [${begin}, ${end}] run past the ${dataBytes} data bytes (truncated file?)`);
    const dt = SAFETENSORS_DTYPES[dtype as string]!;
    const expected = numel(shape as number[]) * DTYPE_BYTES[dt];
    if (end - begin !== expected) fail(`tensor "${name}": ${dtype} shape [${(shape as number[]).join(', ')}] needs ${expected} bytes but data_offsets span ${end - begin}`);
    entries.push({ name, dtype: dt, shape: [...(shape as number[])], begin, end });
  }
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (cur.begin < prev.end) fail(`tensors "${prev.name}" [${prev.begin}, ${prev.end}] and "${cur.name}" [${cur.begin}, ${cur.end}] overlap`);
  }
  return { entries, metadata, dataStart };
}

/**
 * Parses a whole safetensors file held in memory. F32 tensors whose data is 4-byte aligned in
 * `bytes`' ArrayBuffer are zero-copy views into it (so keep `bytes` alive and unmodified).
 * `origin` names the file in errors.
 */
export function parseSafetensors(bytes: Uint8Array, origin = '<buffer>', opts: SafetensorsReadOptions = {}): SafetensorsFile {
  const { entries, metadata, dataStart } = parseHeader(bytes, origin);
  const tensors: StateDict = new Map();
  const dtypes = new Map<string, WeightDtype>();
  const skipped: string[] = [];
  const allKeys = entries.map((e) => e.name);
  for (const e of entries) {
    if (opts.include && !opts.include(e.name, allKeys)) {
      skipped.push(e.name);
      continue;
    }
    const raw = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    tensors.set(e.name, { shape: e.shape, data: toFloat32(raw, e.dtype) });
    dtypes.set(e.name, e.dtype);
  }
  return { tensors, dtypes, metadata, skipped };
}

export interface SafetensorsReadOptions {
  /** only tensors whose name passes are converted; the others are listed in `skipped` */
  include?: (name: string, allNames: readonly string[]) => boolean;
}

export async function readSafetensorsFile(path: string, opts: SafetensorsReadOptions = {}): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new FileError(path, fileSystemProblem(err));
  }
  return parseSafetensors(bytes, path, opts);
}

export async function readSafetensors(path: string): Promise<StateDict> {
  return (await readSafetensorsFile(path)).tensors;
}

/** Reads only the header: names, dtypes and shapes, without loading the data (cheap on huge files). */
export async function readSafetensorsHeader(path: string): Promise<{ tensors: Map<string, { dtype: WeightDtype; shape: number[] }>; metadata: Record<string, string> }> {
  const handle = await openForReading(path);
  try {
    const { size } = await handle.stat();
    const head = new Uint8Array(8);
    await handle.read(head, 0, Math.min(8, size), 0);
    const n = size < 8 ? 0n : new DataView(head.buffer).getBigUint64(0, true);
    if (size < 8 || n > BigInt(MAX_HEADER_BYTES) || 8 + Number(n) > size) {
      parseHeader(head, path, size); // throws the same error a full read would
    }
    const bytes = new Uint8Array(8 + Number(n));
    bytes.set(head);
    await handle.read(bytes, 8, Number(n), 8);
    const { entries, metadata } = parseHeader(bytes, path, size);
    return { tensors: new Map(entries.map((e) => [e.name, { dtype: e.dtype, shape: e.shape }])), metadata };
  } finally {
    await handle.close();
  }
}

/** The bytes of a safetensors file as chunks (no giant concatenation); the tensor chunks are views of `data`. */
export function encodeSafetensors(tensors: Map<string, Tensor> | Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array[] {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`safetensors metadata "${k}" must be a string`);
    }
    header.__metadata__ = metadata;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new TypeError('"__metadata__" cannot be a tensor name');
    if (!(t.data instanceof Float32Array)) throw new TypeError(`tensor "${name}": data must be a Float32Array`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TypeError(`tensor "${name}": bad shape [${t.shape}]`);
    if (numel(t.shape) !== t.data.length) throw new TypeError(`tensor "${name}": shape [${t.shape}] needs ${numel(t.shape)} values, data has ${t.data.length}`);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
    chunks.push(bytes);
  }
  let json = JSON.stringify(header);
  // Like the reference writer: pad with spaces so the data starts 8-byte aligned.
  const jsonBytes = new TextEncoder().encode(json);
  const padded = Math.ceil(jsonBytes.byteLength / 8) * 8;
  json += ' '.repeat(padded - jsonBytes.byteLength);
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  return [prefix, headerBytes, ...chunks];
}

/** Writes float32 tensors atomically (temporary file + rename). */
export async function writeSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
