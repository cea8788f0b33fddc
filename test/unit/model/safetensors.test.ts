import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileError } from '../../../main/core/errors.ts';
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  readSafetensorsFile,
  readSafetensorsHeader,
  writeSafetensors,
} from '../../../main/core/model/safetensors.ts';
import { toFloat32 } from '../../../main/core/model/dtype.ts';

const golden = resolve(process.cwd(), '../shared/golden');
const tmp = mkdtempSync(join(tmpdir(), 'safetensors-test-'));

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/** A file with a hand-written header (so tests can break it in every way). */
function rawFile(header: unknown, data: Uint8Array, headerLengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, headerLengthOverride ?? BigInt(json.byteLength), true);
  return concat([prefix, json, data]);
}

function expectFileError(fn: () => unknown, origin: string, pattern: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FileError);
    expect((err as FileError).file).toBe(origin);
    expect((err as FileError).message.startsWith(origin + ': ')).toBe(true);
    expect((err as FileError).problem).toMatch(pattern);
    return;
  }
  throw new Error(`expected a FileError matching ${pattern}`);
}

describe('safetensors reader', () => {
  it('reads the golden model.safetensors with zero-copy float32 views and writes it back byte-identically', async () => {
    const path = join(golden, 'sam2unet_mini/model.safetensors');
    const original = readFileSync(path);
    const file = await readSafetensorsFile(path);
    expect(file.tensors.size).toBe(548);
    const w = file.tensors.get('encoder.blocks.0.block.attn.qkv.weight')!;
    expect(w.shape).toEqual([24, 8]);
    // zero-copy: every tensor shares one buffer (the file's), none was copied
    const buffers = new Set([...file.tensors.values()].map((t) => t.data.buffer));
    expect(buffers.size).toBe(1);
    // our writer orders tensors as given and pads like the reference writer: the golden file, which the
    // reference writer produced from name-sorted tensors, comes back byte for byte
    const again = concat(encodeSafetensors(file.tensors, Object.keys(file.metadata).length ? file.metadata : undefined));
    expect(again.byteLength).toBe(original.byteLength);
    expect(Buffer.compare(Buffer.from(again), original)).toBe(0);
  });

  it('round-trips through writeSafetensors with metadata, scalars and empty tensors', async () => {
    const path = join(tmp, 'round.safetensors');
    const tensors = {
      a: { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, Number.NaN, Infinity, -0]) },
      scalar: { shape: [], data: Float32Array.from([7]) },
      empty: { shape: [0, 4], data: new Float32Array(0) },
    };
    await writeSafetensors(path, tensors, { format: 'pt', note: 'héllo' });
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const bytes = readFileSync(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    const file = await readSafetensorsFile(path);
    expect(file.metadata).toEqual({ format: 'pt', note: 'héllo' });
    expect([...file.tensors.keys()]).toEqual(['a', 'scalar', 'empty']);
    expect(Array.from(file.tensors.get('a')!.data)).toEqual([1, -2, 3.5, Number.NaN, Infinity, -0]);
    expect(Object.is(file.tensors.get('a')!.data[5], -0)).toBe(true);
    expect(file.tensors.get('scalar')).toEqual({ shape: [], data: Float32Array.from([7]) });
    expect(file.tensors.get('empty')!.shape).toEqual([0, 4]);
    const header = await readSafetensorsHeader(path);
    expect(header.tensors.get('a')).toEqual({ dtype: 'float32', shape: [2, 3] });
    expect(header.metadata.format).toBe('pt');
    expect((await readSafetensors(path)).size).toBe(3);
  });

  it('copies unaligned float32 data instead of failing', () => {
    // 1 byte of padding in the header makes the data start unaligned inside the buffer
    const data = new Uint8Array(Float32Array.from([1.5, 2.5]).buffer);
    const bytes = rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data);
    const shifted = new Uint8Array(bytes.byteLength + 1).subarray(1);
    shifted.set(bytes);
    expect(Array.from(parseSafetensors(shifted).tensors.get('x')!.data)).toEqual([1.5, 2.5]);
  });

  it('converts F16, BF16, F64, I64, I32, U8 and BOOL to float32 exactly', () => {
    const f16 = Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x3555]); // 1, -2, 65504, 2^-24, -0, inf, 0.333251953125
    const bf16 = Uint16Array.from([0x3f80, 0xc040, 0x3eab]); // 1, -3, 0.333984375
    const f64 = Float64Array.from([0.1, -1e300]);
    const i64 = BigInt64Array.from([123n, -5n]);
    const i32 = Int32Array.from([-7, 16777216]);
    const u8 = Uint8Array.from([0, 255]);
    const bool = Uint8Array.from([0, 1, 1]);
    const parts: [string, string, number[], Uint8Array][] = [
      ['f16', 'F16', [7], new Uint8Array(f16.buffer)],
      ['bf16', 'BF16', [3], new Uint8Array(bf16.buffer)],
      ['f64', 'F64', [2], new Uint8Array(f64.buffer)],
      ['i64', 'I64', [2], new Uint8Array(i64.buffer)],
      ['i32', 'I32', [2], new Uint8Array(i32.buffer)],
      ['u8', 'U8', [2], u8],
      ['bool', 'BOOL', [3], bool],
    ];
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, dtype, shape, bytes] of parts) {
      header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.byteLength] };
      offset += bytes.byteLength;
    }
    const file = parseSafetensors(rawFile(header, concat(parts.map((p) => p[3]))), 'mixed.safetensors');
    const values = (k: string) => Array.from(file.tensors.get(k)!.data);
    expect(values('f16')).toEqual([1, -2, 65504, 2 ** -24, -0, Infinity, 0.333251953125]);
    expect(values('bf16')).toEqual([1, -3, 0.333984375]);
    expect(values('f64')).toEqual([Math.fround(0.1), -Infinity]);
    expect(values('i64')).toEqual([123, -5]);
    expect(values('i32')).toEqual([-7, 16777216]);
    expect(values('u8')).toEqual([0, 255]);
    expect(values('bool')).toEqual([0, 1, 1]);
    expect(file.dtypes.get('i64')).toBe('int64');
    expect(file.dtypes.get('f16')).toBe('float16');
  });

  it('converts every float16 bit pattern like IEEE half precision', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const out = toFloat32(new Uint8Array(all.buffer), 'float16');
    for (let h = 0; h < 65536; h += 1) {
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const mant = h & 0x3ff;
      const expected = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? Number.NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
      if (!Object.is(out[h], expected)) throw new Error(`half 0x${h.toString(16)} → ${out[h]}, expected ${expected}`);
    }
  });
});

describe('safetensors errors name the file and the problem', () => {
  const f32 = new Uint8Array(16);
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } };
  const name = 'bad.safetensors';
  it('too short', () => expectFileError(() => parseSafetensors(new Uint8Array(5), name), name, /needs 8/));
  it('header longer than the file', () => expectFileError(() => parseSafetensors(rawFile(ok, f32, 10_000n), name), name, /exceeds the file size/));
  it('absurd header length', () => expectFileError(() => parseSafetensors(rawFile(ok, f32, 1n << 60n), name), name, /implausible/));
  it('not JSON', () => expectFileError(() => parseSafetensors(rawFile('{"a": [', f32), name), name, /not valid JSON/));
  it('JSON but not an object', () => expectFileError(() => parseSafetensors(rawFile('[1,2]', f32), name), name, /not a JSON object/));
  it('unknown dtype', () => expectFileError(() => parseSafetensors(rawFile({ a: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, f32), name), name, /"a".*unsupported dtype/));
  it('bad shape', () => expectFileError(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32), name), name, /"a".*shape/));
  it('bad offsets', () => expectFileError(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [8] } }, f32), name), name, /data_offsets/));
  it('reversed offsets', () => expectFileError(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, f32), name), name, /end before/));
  it('offsets past the data (truncated file)', () => expectFileError(() => parseSafetensors(rawFile(ok, f32.subarray(0, 12)), name), name, /"b".*run past the 12 data bytes/));
  it('shape × dtype ≠ byte length', () => expectFileError(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32), name), name, /"a".*needs 12 bytes.*span 8/));
  it('overlapping tensors', () => expectFileError(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32), name), name, /"a".*"b".*overlap/));
  it('bad metadata', () => expectFileError(() => parseSafetensors(rawFile({ __metadata__: { n: 1 } }, f32), name), name, /__metadata__/));
  it('missing file', async () => {
    const missing = join(tmp, 'nope.safetensors');
    await expect(readSafetensors(missing)).rejects.toThrow(FileError);
    await expect(readSafetensors(missing)).rejects.toThrow(`${missing}: no such file or directory`);
  });
  it('header-only reader validates too', async () => {
    const path = join(tmp, 'truncated.safetensors');
    writeFileSync(path, rawFile(ok, f32.subarray(0, 12)));
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/truncated\.safetensors: .*run past/);
    writeFileSync(path, rawFile(ok, f32, 999n));
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/exceeds the file size/);
  });
  it('writer refuses mismatched shapes', () => {
    expect(() => encodeSafetensors({ a: { shape: [3], data: new Float32Array(2) } })).toThrow(/needs 3 values/);
  });
});
