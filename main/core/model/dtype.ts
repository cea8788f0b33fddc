/**
 * Element types found in weight files and their conversion to the engine's float32.
 * Shared by the safetensors and torch readers so both give bit-identical results.
 */
import { endianness } from 'node:os';

export type WeightDtype =
  | 'float64' | 'float32' | 'float16' | 'bfloat16'
  | 'int64' | 'int32' | 'int16' | 'int8'
  | 'uint64' | 'uint32' | 'uint16' | 'uint8' | 'bool';

export const DTYPE_BYTES: Record<WeightDtype, number> = {
  float64: 8, float32: 4, float16: 2, bfloat16: 2,
  int64: 8, int32: 4, int16: 2, int8: 1, uint64: 8, uint32: 4, uint16: 2, uint8: 1, bool: 1,
};

// Weight files are little-endian; typed-array views read host order, so the views below are only
// correct on little-endian hosts (every platform Node ships for today).
if (endianness() !== 'LE') throw new Error('weight files can only be read on little-endian hosts');

let halfTable: Float32Array | undefined;

/** All 65536 float16 values as float32: one lookup per element beats bit twiddling in JS. */
function float16Table(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: exact value mant·2^-24
      table[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    } else if (exp === 31) {
      bits[h] = sign | 0x7f800000 | (mant << 13);
    } else {
      bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
    }
  }
  halfTable = table;
  return table;
}

/** A typed view of `raw` when aligned, else of an aligned copy. */
function aligned<T>(raw: Uint8Array, bytes: number, make: (buf: ArrayBufferLike, offset: number, length: number) => T): T {
  const length = raw.byteLength / bytes;
  if (raw.byteOffset % bytes === 0) return make(raw.buffer, raw.byteOffset, length);
  return make(raw.slice().buffer, 0, length);
}

/**
 * Converts little-endian raw element bytes to float32. float32 input that is 4-byte aligned is
 * returned as a zero-copy view of `raw`; every other case allocates one new array.
 */
export function toFloat32(raw: Uint8Array, dtype: WeightDtype): Float32Array {
  const n = raw.byteLength / DTYPE_BYTES[dtype];
  if (!Number.isInteger(n)) throw new Error(`${raw.byteLength} bytes is not a whole number of ${dtype} elements`);
  switch (dtype) {
    case 'float32':
      return aligned(raw, 4, (b, o, l) => new Float32Array(b, o, l));
    case 'float16': {
      const src = aligned(raw, 2, (b, o, l) => new Uint16Array(b, o, l));
      const table = float16Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case 'bfloat16': {
      const src = aligned(raw, 2, (b, o, l) => new Uint16Array(b, o, l));
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
      return out;
    }
    case 'float64':
      return Float32Array.from(aligned(raw, 8, (b, o, l) => new Float64Array(b, o, l)));
    case 'int64':
      return Float32Array.from(aligned(raw, 8, (b, o, l) => new BigInt64Array(b, o, l)), Number);
    case 'uint64':
      return Float32Array.from(aligned(raw, 8, (b, o, l) => new BigUint64Array(b, o, l)), Number);
    case 'int32':
      return Float32Array.from(aligned(raw, 4, (b, o, l) => new Int32Array(b, o, l)));
    case 'uint32':
      return Float32Array.from(aligned(raw, 4, (b, o, l) => new Uint32Array(b, o, l)));
    case 'int16':
      return Float32Array.from(aligned(raw, 2, (b, o, l) => new Int16Array(b, o, l)));
    case 'uint16':
      return Float32Array.from(aligned(raw, 2, (b, o, l) => new Uint16Array(b, o, l)));
    case 'int8':
      return Float32Array.from(new Int8Array(raw.buffer, raw.byteOffset, n));
    case 'uint8':
      return Float32Array.from(raw);
    case 'bool': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = raw[i] ? 1 : 0;
      return out;
    }
  }
}
