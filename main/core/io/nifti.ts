/**
 * NIfTI-1 and NIfTI-2 (.nii, .nii.gz) reading and NIfTI-1 writing.
 *
 * The header layout is described once, as one field table per version (FIELDS_V1, FIELDS_V2:
 * nibabel's header_dtype, which the tests compare them with), and the reader and the writer both
 * go through it. We parse it ourselves rather than through nifti-reader-js because every size
 * must be checked against the real file before anything is allocated, and the writer needs the
 * same layout; the test suite cross-checks this parser against nifti-reader-js.
 *
 * Geometry follows nibabel's get_best_affine: sform when sform_code > 0, else qform when
 * qform_code > 0, else the Analyze-style base affine (x flipped, centred on the grid). The
 * RAS affine is turned into the Volume's LPS geometry here and nowhere else.
 */
import { rgbData } from './colour.ts';
import { stat } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { endianness } from 'node:os';
import { basename } from 'node:path';
import { createGunzip, createGzip, gunzipSync, constants as zlibConstants } from 'node:zlib';
import { FileError, UserError, errorMessage, fileSystemProblem } from '../errors.ts';
import { openForReading, readRegularFile, writeFileAtomic } from '../util/fs.ts';
import { checkDeclaredSize } from '../util/limits.ts';
import { Volume, affineRAS, geometryFromAffineLPS, type VoxelType, type Vec3, type VolumeMeta, type VoxelArray } from './volume.ts';

export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  /** 348 or 540 */
  sizeofHdr: number;
  /** dim[0..7] as stored */
  dim: number[];
  datatype: number;
  bitpix: number;
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  description: string;
  qformCode: number;
  sformCode: number;
  quatern: Vec3;
  qoffset: Vec3;
  /** srow_x, srow_y, srow_z: 12 numbers */
  srow: number[];
  xyztUnits: number;
  intentCode: number;
  intentName: string;
}

export interface NiftiImage {
  header: NiftiHeader;
  /** one Volume per 3-D frame (a 4-D file gives several, all sharing one buffer) */
  volumes: Volume[];
}

interface DatatypeInfo {
  name: string;
  dtype: VoxelType;
  bytes: number;
  components: number;
}

/** Datatypes we load; the others are refused by name (nifti1.h codes). */
const DATATYPES: Record<number, DatatypeInfo> = {
  2: { name: 'uint8', dtype: 'uint8', bytes: 1, components: 1 },
  4: { name: 'int16', dtype: 'int16', bytes: 2, components: 1 },
  8: { name: 'int32', dtype: 'int32', bytes: 4, components: 1 },
  16: { name: 'float32', dtype: 'float32', bytes: 4, components: 1 },
  64: { name: 'float64', dtype: 'float64', bytes: 8, components: 1 },
  128: { name: 'RGB24', dtype: 'uint8', bytes: 1, components: 3 },
  256: { name: 'int8', dtype: 'int8', bytes: 1, components: 1 },
  512: { name: 'uint16', dtype: 'uint16', bytes: 2, components: 1 },
  768: { name: 'uint32', dtype: 'uint32', bytes: 4, components: 1 },
};
const UNSUPPORTED_DATATYPES: Record<number, string> = {
  1: 'binary (1-bit)',
  32: 'complex64',
  1024: 'int64',
  1280: 'uint64',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'RGBA32',
};
const DTYPE_CODES: Record<VoxelType, number> = {
  uint8: 2, int16: 4, int32: 8, float32: 16, float64: 64, int8: 256, uint16: 512, uint32: 768,
};

const ARRAY_TYPES = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
  uint32: Uint32Array, int32: Int32Array, float32: Float32Array, float64: Float64Array,
} as const;

const INTEGER_RANGES: Partial<Record<VoxelType, [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], uint16: [0, 65535], int16: [-32768, 32767],
  uint32: [0, 4294967295], int32: [-2147483648, 2147483647],
};

/** More voxels than this is a corrupt header, not an image (and more than a typed array holds). */
const MAX_VOXELS = 2 ** 31;
/** deflate cannot expand by more than ~1032:1, so a header claiming more is lying */
const MAX_DEFLATE_RATIO = 1032;
const NATIVE_LITTLE_ENDIAN = endianness() === 'LE';

export function isNiftiPath(path: string): boolean {
  return /\.nii(\.gz)?$/i.test(path);
}

/** The file name without .nii / .nii.gz. */
export function niftiStem(path: string): string {
  return basename(path).replace(/\.nii(\.gz)?$/i, '');
}

// ---------------------------------------------------------------------------------------------
// header

/**
 * A header field as nibabel's header dtype spells it (nibabel/nifti1.py and nifti2.py, after
 * nifti1.h / nifti2.h): name, byte offset, type, and the element count of an array field. Type
 * codes are numpy's: i/u/f and the byte width, 'S' a NUL-padded latin1 string of `count` bytes.
 */
type FieldType = 'i1' | 'u1' | 'i2' | 'i4' | 'i8' | 'f4' | 'f8' | 'S';
type FieldRow = readonly [name: string, offset: number, type: FieldType, count?: number];

/** The 348-byte NIfTI-1 header (the 4 bytes after it are the extension flag). */
const FIELDS_V1 = [
  ['sizeof_hdr', 0, 'i4'],
  ['data_type', 4, 'S', 10],
  ['db_name', 14, 'S', 18],
  ['extents', 32, 'i4'],
  ['session_error', 36, 'i2'],
  ['regular', 38, 'S', 1],
  ['dim_info', 39, 'u1'],
  ['dim', 40, 'i2', 8],
  ['intent_p1', 56, 'f4'],
  ['intent_p2', 60, 'f4'],
  ['intent_p3', 64, 'f4'],
  ['intent_code', 68, 'i2'],
  ['datatype', 70, 'i2'],
  ['bitpix', 72, 'i2'],
  ['slice_start', 74, 'i2'],
  ['pixdim', 76, 'f4', 8],
  ['vox_offset', 108, 'f4'],
  ['scl_slope', 112, 'f4'],
  ['scl_inter', 116, 'f4'],
  ['slice_end', 120, 'i2'],
  ['slice_code', 122, 'u1'],
  ['xyzt_units', 123, 'u1'],
  ['cal_max', 124, 'f4'],
  ['cal_min', 128, 'f4'],
  ['slice_duration', 132, 'f4'],
  ['toffset', 136, 'f4'],
  ['glmax', 140, 'i4'],
  ['glmin', 144, 'i4'],
  ['descrip', 148, 'S', 80],
  ['aux_file', 228, 'S', 24],
  ['qform_code', 252, 'i2'],
  ['sform_code', 254, 'i2'],
  ['quatern_b', 256, 'f4'],
  ['quatern_c', 260, 'f4'],
  ['quatern_d', 264, 'f4'],
  ['qoffset_x', 268, 'f4'],
  ['qoffset_y', 272, 'f4'],
  ['qoffset_z', 276, 'f4'],
  ['srow_x', 280, 'f4', 4],
  ['srow_y', 296, 'f4', 4],
  ['srow_z', 312, 'f4', 4],
  ['intent_name', 328, 'S', 16],
  ['magic', 344, 'S', 4],
] as const satisfies readonly FieldRow[];

/** The 540-byte NIfTI-2 header: 64-bit sizes and doubles, fields reordered. */
const FIELDS_V2 = [
  ['sizeof_hdr', 0, 'i4'],
  ['magic', 4, 'S', 4],
  ['eol_check', 8, 'i1', 4],
  ['datatype', 12, 'i2'],
  ['bitpix', 14, 'i2'],
  ['dim', 16, 'i8', 8],
  ['intent_p1', 80, 'f8'],
  ['intent_p2', 88, 'f8'],
  ['intent_p3', 96, 'f8'],
  ['pixdim', 104, 'f8', 8],
  ['vox_offset', 168, 'i8'],
  ['scl_slope', 176, 'f8'],
  ['scl_inter', 184, 'f8'],
  ['cal_max', 192, 'f8'],
  ['cal_min', 200, 'f8'],
  ['slice_duration', 208, 'f8'],
  ['toffset', 216, 'f8'],
  ['slice_start', 224, 'i8'],
  ['slice_end', 232, 'i8'],
  ['descrip', 240, 'S', 80],
  ['aux_file', 320, 'S', 24],
  ['qform_code', 344, 'i4'],
  ['sform_code', 348, 'i4'],
  ['quatern_b', 352, 'f8'],
  ['quatern_c', 360, 'f8'],
  ['quatern_d', 368, 'f8'],
  ['qoffset_x', 376, 'f8'],
  ['qoffset_y', 384, 'f8'],
  ['qoffset_z', 392, 'f8'],
  ['srow_x', 400, 'f8', 4],
  ['srow_y', 432, 'f8', 4],
  ['srow_z', 464, 'f8', 4],
  ['slice_code', 496, 'i4'],
  ['xyzt_units', 500, 'i4'],
  ['intent_code', 504, 'i4'],
  ['intent_name', 508, 'S', 16],
  ['dim_info', 524, 'u1'],
  ['unused_str', 525, 'S', 15],
] as const satisfies readonly FieldRow[];

/** Each version's field table and header size (the tables are checked to tile exactly that many bytes). */
export const NIFTI_LAYOUTS = {
  1: { size: 348, fields: FIELDS_V1 },
  2: { size: 540, fields: FIELDS_V2 },
} as const;

type FieldValue<F extends FieldRow> = F[2] extends 'S' ? string : F[3] extends number ? number[] : number;
/** The values of a table's fields, keyed by name: numbers, arrays of numbers, strings. */
type FieldValues<L extends readonly FieldRow[]> = { [F in L[number] as F[0]]: FieldValue<F> };

const FIELD_BYTES: Record<FieldType, number> = { i1: 1, u1: 1, i2: 2, i4: 4, i8: 8, f4: 4, f8: 8, S: 1 };

function cString(bytes: Uint8Array, offset: number, length: number): string {
  let end = offset;
  while (end < offset + length && bytes[end] !== 0) end++;
  return Buffer.from(bytes.buffer, bytes.byteOffset + offset, end - offset).toString('latin1').trim();
}

/** Reads every field of `layout` (strings up to their first NUL, trimmed). */
function decodeFields<L extends readonly FieldRow[]>(layout: L, bytes: Uint8Array, littleEndian: boolean, file: string): FieldValues<L> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read = (type: Exclude<FieldType, 'S'>, at: number): number => {
    switch (type) {
      case 'i1': return view.getInt8(at);
      case 'u1': return view.getUint8(at);
      case 'i2': return view.getInt16(at, littleEndian);
      case 'i4': return view.getInt32(at, littleEndian);
      case 'f4': return view.getFloat32(at, littleEndian);
      case 'f8': return view.getFloat64(at, littleEndian);
      case 'i8': {
        const value = view.getBigInt64(at, littleEndian);
        if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new FileError(file, `absurd header value ${value} at byte ${at}`);
        }
        return Number(value);
      }
    }
  };
  const values: Record<string, number | number[] | string> = {};
  for (const [name, offset, type, count] of layout as readonly FieldRow[]) {
    if (type === 'S') values[name] = cString(bytes, offset, count ?? 1);
    else if (count === undefined) values[name] = read(type, offset);
    else values[name] = Array.from({ length: count }, (_, i) => read(type, offset + i * FIELD_BYTES[type]));
  }
  return values as FieldValues<L>;
}

/** Writes the given fields of `layout` into `bytes` (the others keep their bytes); strings in latin1, cut at the field's size. */
function encodeFields<L extends readonly FieldRow[]>(layout: L, bytes: Uint8Array, values: Partial<FieldValues<L>>, littleEndian: boolean): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const write = (type: Exclude<FieldType, 'S'>, at: number, v: number): void => {
    switch (type) {
      case 'i1': return view.setInt8(at, v);
      case 'u1': return view.setUint8(at, v);
      case 'i2': return view.setInt16(at, v, littleEndian);
      case 'i4': return view.setInt32(at, v, littleEndian);
      case 'f4': return view.setFloat32(at, v, littleEndian);
      case 'f8': return view.setFloat64(at, v, littleEndian);
      case 'i8': return view.setBigInt64(at, BigInt(v), littleEndian);
    }
  };
  const given = values as Record<string, number | readonly number[] | string | undefined>;
  for (const [name, offset, type, count] of layout as readonly FieldRow[]) {
    const value = given[name];
    if (value === undefined) continue;
    if (type === 'S') {
      bytes.set(Buffer.from(String(value), 'latin1').subarray(0, count ?? 1), offset);
    } else if (count === undefined) {
      write(type, offset, value as number);
    } else {
      const list = value as readonly number[];
      if (list.length !== count) throw new Error(`NIfTI header field ${name} takes ${count} values, got ${list.length}`);
      list.forEach((v, i) => write(type, offset + i * FIELD_BYTES[type], v));
    }
  }
}

function checkMagic(bytes: Uint8Array, file: string, version: 1 | 2): void {
  // NIfTI-2's magic runs on into eol_check (\r\n\x1a\n), which catches text-mode transfers
  const at = NIFTI_LAYOUTS[version].fields.find(([name]) => name === 'magic')![1];
  const magic = Buffer.from(bytes.buffer, bytes.byteOffset + at, version === 1 ? 4 : 8);
  const single = version === 1 ? 'n+1\0' : 'n+2\0\r\n\x1a\n';
  const pair = version === 1 ? 'ni1\0' : 'ni2\0\r\n\x1a\n';
  const text = magic.toString('latin1');
  if (text === single) return;
  if (text === pair) {
    throw new FileError(file, `is the header of a NIfTI-${version} .hdr/.img pair; only single-file .nii/.nii.gz is supported`);
  }
  if (version === 2 && text.startsWith('n+2\0')) {
    throw new FileError(file, 'NIfTI-2 magic is damaged (line endings changed by a text-mode transfer?)');
  }
  throw new FileError(file, `bad NIfTI-${version} magic ${JSON.stringify(text)} (expected ${JSON.stringify(single)})`);
}

/**
 * Parses and validates a NIfTI-1 or NIfTI-2 header from the first bytes of the (decompressed)
 * file. Throws FileError for anything that is not a usable single-file NIfTI header.
 */
export function parseNiftiHeader(bytes: Uint8Array, file: string): NiftiHeader {
  if (bytes.length < 4) throw new FileError(file, `truncated: ${bytes.length} bytes is too short for a NIfTI header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const little = view.getInt32(0, true);
  const big = view.getInt32(0, false);
  let version: 1 | 2;
  let le: boolean;
  if (little === 348 || big === 348) [version, le] = [1, little === 348];
  else if (little === 540 || big === 540) [version, le] = [2, little === 540];
  else throw new FileError(file, `not a NIfTI file (header size field is ${little}, expected 348 or 540)`);
  const sizeofHdr = NIFTI_LAYOUTS[version].size;
  if (bytes.length < sizeofHdr) {
    throw new FileError(file, `truncated: the NIfTI-${version} header needs ${sizeofHdr} bytes, the file has ${bytes.length}`);
  }
  checkMagic(bytes, file, version);
  const f = version === 1 ? decodeFields(FIELDS_V1, bytes, le, file) : decodeFields(FIELDS_V2, bytes, le, file);
  const header: NiftiHeader = {
    version,
    littleEndian: le,
    sizeofHdr,
    dim: f.dim,
    datatype: f.datatype,
    bitpix: f.bitpix,
    pixdim: f.pixdim,
    voxOffset: f.vox_offset,
    sclSlope: f.scl_slope,
    sclInter: f.scl_inter,
    description: f.descrip,
    qformCode: f.qform_code,
    sformCode: f.sform_code,
    quatern: [f.quatern_b, f.quatern_c, f.quatern_d],
    qoffset: [f.qoffset_x, f.qoffset_y, f.qoffset_z],
    srow: [...f.srow_x, ...f.srow_y, ...f.srow_z],
    xyztUnits: f.xyzt_units,
    intentCode: f.intent_code,
    intentName: f.intent_name,
  };
  validateHeader(header, file);
  return header;
}

function validateHeader(h: NiftiHeader, file: string): void {
  const ndim = h.dim[0]!;
  if (!(ndim >= 1 && ndim <= 7)) throw new FileError(file, `bad dim[0] = ${ndim} (must be 1…7)`);
  for (let i = 1; i <= ndim; i++) {
    const n = h.dim[i]!;
    if (!Number.isInteger(n) || n < 1) throw new FileError(file, `bad size ${n} for dimension ${i} (dim = [${h.dim.slice(1, ndim + 1).join(', ')}])`);
  }
  if (ndim > 4 && h.dim.slice(5, ndim + 1).some((n) => n > 1)) {
    throw new FileError(file, `has ${ndim} dimensions (dim = [${h.dim.slice(1, ndim + 1).join(', ')}]); only 3-D and 4-D images are supported`);
  }
  if (!DATATYPES[h.datatype]) {
    const known = UNSUPPORTED_DATATYPES[h.datatype];
    throw new FileError(file, known ? `NIfTI datatype ${known} is not supported` : `unknown NIfTI datatype code ${h.datatype}`);
  }
  const voxels = niftiVoxelCount(h);
  if (voxels > MAX_VOXELS) throw new FileError(file, `absurd image size ${h.dim.slice(1, ndim + 1).join('×')} (${voxels} voxels)`);
  if (!Number.isFinite(h.voxOffset) || h.voxOffset < 0) throw new FileError(file, `bad vox_offset ${h.voxOffset}`);
}

/** Voxels in the whole file (all frames); dims past dim[0] are ignored, as nibabel does. */
export function niftiVoxelCount(h: NiftiHeader): number {
  let count = 1;
  for (let i = 1; i <= h.dim[0]!; i++) count *= h.dim[i]!;
  return count;
}

/** Where the voxels start: nibabel moves a too-small offset of a single file to just past the header. */
function dataOffset(h: NiftiHeader): number {
  const minimum = h.sizeofHdr + 4;
  return Math.max(Math.trunc(h.voxOffset), minimum);
}

/** Bytes the file must hold: header, extensions and every voxel. */
export function niftiByteLength(h: NiftiHeader): number {
  const type = DATATYPES[h.datatype]!;
  return dataOffset(h) + niftiVoxelCount(h) * type.bytes * type.components;
}

// ---------------------------------------------------------------------------------------------
// geometry

/** nibabel's quaternion → rotation (nifti1_io's rule for a slightly non-unit quaternion). */
function quaternionToMatrix(b: number, c: number, d: number): number[] {
  let a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    const norm = Math.hypot(b, c, d) || 1;
    [b, c, d] = [b / norm, c / norm, d / norm];
    a = 0;
  } else {
    a = Math.sqrt(a);
  }
  return [
    a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
    2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
    2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b,
  ];
}

const FLOAT32_MAX = 3.4028234663852886e38;

function geometrySource(h: NiftiHeader): string {
  return h.sformCode > 0 ? 'sform' : h.qformCode > 0 ? 'qform' : 'pixdim';
}

/**
 * Geometry the app cannot measure with is refused here, at the reader, rather than travelling
 * into resampling, metrics and reports as NaN, Infinity or zero.
 */
function checkGeometry(file: string, h: NiftiHeader, affine: number[], geometry: { spacing: number[]; direction: number[] }): void {
  const source = geometrySource(h);
  if (!affine.slice(0, 12).every(Number.isFinite)) throw new FileError(file, `the ${source} holds non-finite values (${affine.slice(0, 12).map((v) => +v.toPrecision(4)).join(', ')})`);
  if (!geometry.spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new FileError(file, `voxel spacing ${geometry.spacing.map((s) => +s.toPrecision(4)).join('×')} from the ${source} is not usable (zero or non-finite)`);
  }
  const [a, b, c, d, e, f, g, i, j] = geometry.direction as [number, number, number, number, number, number, number, number, number];
  const det = a * (e * j - f * i) - b * (d * j - f * g) + c * (d * i - e * g);
  if (!(Math.abs(det) > 1e-6)) throw new FileError(file, `the ${source} orientation is singular (its axes are not independent)`);
}

/** scl_slope/scl_inter that take stored values beyond float32 would make Infinity voxels. */
function checkScaling(file: string, data: ArrayLike<number>, slope: number, intercept: number): void {
  // cheap bound first: integer voxels (up to 2^63) cannot overflow under most slopes whatever their values
  const integers = !(data instanceof Float32Array || data instanceof Float64Array);
  if (integers && Math.abs(slope) * 2 ** 63 + Math.abs(intercept) <= FLOAT32_MAX) return;
  if (slope === 1 && intercept === 0) return;
  let worst = 0;
  for (let n = 0; n < data.length; n++) {
    const v = Math.abs(data[n]!);
    if (v > worst) worst = v;
  }
  if (!(Math.abs(slope) * worst + Math.abs(intercept) <= FLOAT32_MAX)) {
    throw new FileError(file, `scl_slope ${slope} and scl_inter ${intercept} take stored values up to ${worst} beyond the float32 range`);
  }
}

/** pixdim as nibabel's header check repairs it: absolute values, zero → 1. */
function voxelSizes(h: NiftiHeader): Vec3 {
  return [1, 2, 3].map((i) => Math.abs(h.pixdim[i]!) || 1) as Vec3;
}

/** The 4×4 row-major RAS affine nibabel's get_best_affine() returns. */
export function niftiAffineRAS(h: NiftiHeader): number[] {
  if (h.sformCode > 0) return [...h.srow, 0, 0, 0, 1];
  if (h.qformCode > 0) {
    const r = quaternionToMatrix(...h.quatern);
    const [dx, dy, dz] = voxelSizes(h);
    const qfac = h.pixdim[0]! < 0 ? -1 : 1;
    const scale = [dx, dy, dz * qfac];
    const a = new Array<number>(16).fill(0);
    for (let row = 0; row < 3; row++) {
      for (let col = 0; col < 3; col++) a[row * 4 + col] = r[row * 3 + col]! * scale[col]!;
      a[row * 4 + 3] = h.qoffset[row]!;
    }
    a[15] = 1;
    return a;
  }
  // nibabel's get_base_affine: shape_zoom_affine(shape, zooms, x_flip=True)
  const sizes = voxelSizes(h);
  const zooms = [1, 2, 3].map((i) => (i <= h.dim[0]! ? sizes[i - 1]! : 1));
  const shape = [1, 2, 3].map((i) => (i <= h.dim[0]! ? h.dim[i]! : 1));
  zooms[0] = -zooms[0]!;
  const a = new Array<number>(16).fill(0);
  for (let i = 0; i < 3; i++) {
    a[i * 4 + i] = zooms[i]!;
    a[i * 4 + 3] = (-(shape[i]! - 1) / 2) * zooms[i]!;
  }
  a[15] = 1;
  return a;
}

function rasToLps(affine: number[]): number[] {
  return affine.map((v, i) => (i < 8 && v !== 0 ? -v : v));
}

// ---------------------------------------------------------------------------------------------
// reading

function fileProblem(err: unknown): string {
  return (err as NodeJS.ErrnoException).code === 'EISDIR' ? 'is a directory, not a NIfTI file' : fileSystemProblem(err);
}

function gzipProblem(err: unknown): string {
  const message = errorMessage(err);
  return /unexpected end/i.test(message) ? 'truncated gzip data (unexpected end of file)' : `corrupt gzip data (${message})`;
}

/**
 * Inflates just enough of a gzip file to read the header. Small prefixes first: a brain image
 * starts with background, and 4 KiB of deflated zeros would inflate to 4 MiB.
 */
function gunzipHead(compressed: Uint8Array, file: string): Uint8Array {
  let head: Uint8Array = new Uint8Array(0);
  for (const size of [512, 4096, 70_000]) {
    const prefix = compressed.subarray(0, Math.min(compressed.length, size));
    try {
      head = gunzipSync(prefix, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    } catch (err) {
      throw new FileError(file, gzipProblem(err));
    }
    if (head.length >= 540 || prefix.length === compressed.length) break;
  }
  return head;
}

/** The header, checked against the compressed size: what may be allocated for the voxels. */
function checkedHeader(head: Uint8Array, compressedLength: number, file: string): { header: NiftiHeader; needed: number } {
  const header = parseNiftiHeader(head, file);
  const needed = niftiByteLength(header);
  if (needed > compressedLength * MAX_DEFLATE_RATIO + 1024) {
    throw new FileError(file, `header claims ${needed} bytes of image, more than a ${compressedLength}-byte gzip file can hold (corrupt header?)`);
  }
  if (needed > bufferConstants.MAX_LENGTH) throw new FileError(file, `image too large (${needed} bytes)`);
  // before inflating: the header's dims × bitpix against the memory limit
  checkDeclaredSize(file, `the header (${header.dim.slice(1, 1 + header.dim[0]!).join('×')}, ${header.bitpix}-bit voxels)`, needed);
  return { header, needed };
}

/**
 * Inflates a .nii.gz whose header was checked first, so that the one buffer it allocates has
 * the size the header needs. zlib inflates straight into that buffer (chunkSize ≥ its size), in
 * the libuv pool, so several files inflate at once and nothing is copied.
 */
function gunzipInto(compressed: Uint8Array, length: number, file: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let out: Uint8Array | undefined;
    let filled = 0;
    // + 64: room to spare, so zlib does not allocate a second buffer just for the final flush
    const stream = createGunzip({ chunkSize: length + 64 });
    stream.on('data', (chunk: Buffer) => {
      if (!out && chunk.length >= length) {
        out = chunk.subarray(0, length);
        filled = length;
        return;
      }
      // several gzip members or trailing data: assemble the needed bytes
      out ??= new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
      const take = Math.min(chunk.length, length - filled);
      if (take > 0) out.set(take === chunk.length ? chunk : chunk.subarray(0, take), filled);
      filled += Math.max(take, 0);
    });
    stream.on('error', (err) => {
      reject(new FileError(file, filled >= length ? `corrupt gzip data after the image (${errorMessage(err)})` : gzipProblem(err)));
    });
    stream.on('end', () => {
      if (!out || filled < length) reject(new FileError(file, `truncated: header needs ${length} bytes, the file decompresses to ${filled}`));
      else resolve(out);
    });
    stream.end(compressed);
  });
}

async function readNiftiBytes(file: string): Promise<{ header: NiftiHeader; bytes: Uint8Array }> {
  let size: number;
  try {
    const info = await stat(file);
    if (info.isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
    size = info.size;
  } catch (err) {
    throw new FileError(file, fileProblem(err));
  }
  if (size > bufferConstants.MAX_LENGTH) throw new FileError(file, `file too large (${size} bytes)`);

  // only a regular file: a FIFO named .nii would otherwise block this read forever
  const raw = await readRegularFile(file);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    const { header, needed } = checkedHeader(gunzipHead(raw, file), raw.length, file);
    return { header, bytes: await gunzipInto(raw, needed, file) };
  }
  const header = parseNiftiHeader(raw, file);
  const needed = niftiByteLength(header);
  if (dataOffset(header) > raw.length) {
    throw new FileError(file, `vox_offset ${header.voxOffset} is beyond the end of the file (${raw.length} bytes)`);
  }
  if (needed > raw.length) {
    throw new FileError(file, `truncated: header needs ${needed} bytes, the file has ${raw.length}`);
  }
  return { header, bytes: raw };
}

function swapBytesInPlace(bytes: Uint8Array, width: number): void {
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/**
 * Reads a .nii or .nii.gz. The voxels of each frame are a typed-array view over the file's
 * (decompressed) buffer whenever the file is in native byte order and the data offset is
 * aligned; big-endian data is swapped in place in that same buffer, which we own.
 */
export async function readNifti(file: string, meta: Partial<VolumeMeta> = {}): Promise<NiftiImage> {
  const { header, bytes } = await readNiftiBytes(file);
  const type = DATATYPES[header.datatype]!;
  const offset = dataOffset(header);
  const total = niftiVoxelCount(header) * type.components;
  const voxelBytes = bytes.subarray(offset, offset + total * type.bytes);
  if (type.bytes > 1 && header.littleEndian !== NATIVE_LITTLE_ENDIAN) swapBytesInPlace(voxelBytes, type.bytes);

  const ArrayType = ARRAY_TYPES[type.dtype];
  const all: VoxelArray =
    voxelBytes.byteOffset % type.bytes === 0
      ? new ArrayType(voxelBytes.buffer as ArrayBuffer, voxelBytes.byteOffset, total)
      : new ArrayType(voxelBytes.slice().buffer, 0, total);

  const dims: Vec3 = [1, 2, 3].map((i) => (i <= header.dim[0]! ? header.dim[i]! : 1)) as Vec3;
  const affine = niftiAffineRAS(header);
  const geometry = geometryFromAffineLPS(rasToLps(affine), dims);
  checkGeometry(file, header, affine, geometry);
  // nibabel: a zero or non-finite slope means "no scaling"
  const scaled = header.sclSlope !== 0 && Number.isFinite(header.sclSlope);
  if (scaled && !Number.isFinite(header.sclInter)) throw new FileError(file, `valid scl_slope but invalid scl_inter ${header.sclInter}`);
  const slope = scaled ? header.sclSlope : 1;
  const intercept = scaled ? header.sclInter : 0;
  if (scaled) checkScaling(file, all, slope, intercept);

  const frameLength = dims[0] * dims[1] * dims[2] * type.components;
  const frames = total / frameLength;
  const name = basename(file);
  const volumes: Volume[] = [];
  for (let t = 0; t < frames; t++) {
    volumes.push(
      new Volume({
        geometry: { dims: [...dims], spacing: [...geometry.spacing], origin: [...geometry.origin], direction: [...geometry.direction] },
        data: all.subarray(t * frameLength, (t + 1) * frameLength) as VoxelArray,
        slope,
        intercept,
        components: type.components,
        meta: {
          id: frames > 1 ? `${name}#${t}` : name,
          description: header.description || niftiStem(file),
          modality: '',
          sources: [file],
          ...meta,
          extra: {
            format: `NIfTI-${header.version}`,
            datatype: type.name,
            byteOrder: header.littleEndian ? 'little' : 'big',
            sformCode: header.sformCode,
            qformCode: header.qformCode,
            intentCode: header.intentCode,
            ...(frames > 1 ? { frame: t, frames, frameInterval: header.pixdim[4] } : {}),
            ...meta.extra,
          },
        },
      }),
    );
  }
  return { header, volumes };
}

// ---------------------------------------------------------------------------------------------
// writing

export interface WriteNiftiOptions {
  /**
   * Stored type of the file. Omitted: the Volume's stored values are written with its slope and
   * intercept as scl_slope/scl_inter. Given: the real values are written in that type (integers
   * rounded and clamped to the type's range) with scl_slope 1, scl_inter 0.
   */
  dtype?: VoxelType;
  description?: string;
  /** sform_code and qform_code; default: the source NIfTI's code when it was 2…5, else 1 (scanner) */
  xformCode?: number;
  /** gzip level for .nii.gz (default 6) */
  compressionLevel?: number;
}

function realValuesAs(volume: Volume, dtype: VoxelType): VoxelArray {
  const { data, slope, intercept } = volume;
  const out = new ARRAY_TYPES[dtype](data.length);
  const range = INTEGER_RANGES[dtype];
  if (!range) {
    for (let i = 0; i < data.length; i++) out[i] = data[i]! * slope + intercept;
    return out;
  }
  const [lo, hi] = range;
  for (let i = 0; i < data.length; i++) {
    const v = Math.round(data[i]! * slope + intercept);
    out[i] = v < lo ? lo : v > hi ? hi : v;
  }
  return out;
}

/** Nearest rotation to a 3×3 row-major matrix (Newton iteration for the polar factor). */
function nearestRotation(m: number[]): number[] {
  let r = [...m];
  for (let iter = 0; iter < 30; iter++) {
    const inv = invert3(r);
    // (R + R^-T) / 2
    const next = r.map((v, i) => (v + inv[(i % 3) * 3 + Math.floor(i / 3)]!) / 2);
    const change = next.reduce((s, v, i) => s + Math.abs(v - r[i]!), 0);
    r = next;
    if (change < 1e-15) break;
  }
  return r;
}

function det3(m: number[]): number {
  return m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) - m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) + m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
}

function invert3(m: number[]): number[] {
  const d = det3(m);
  const [a, b, c, e, f, g, h, i, j] = m as [number, number, number, number, number, number, number, number, number];
  return [
    (f * j - g * i) / d, (c * i - b * j) / d, (b * g - c * f) / d,
    (g * h - e * j) / d, (a * j - c * h) / d, (c * e - a * g) / d,
    (e * i - f * h) / d, (b * h - a * i) / d, (a * f - b * e) / d,
  ];
}

/** nifti1_io's nifti_mat44_to_quatern for a proper rotation: returns [b, c, d]. */
function rotationToQuaternion(r: number[]): Vec3 {
  const [r11, r12, r13, r21, r22, r23, r31, r32, r33] = r as [number, number, number, number, number, number, number, number, number];
  let a = r11 + r22 + r33 + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) [b, c, d] = [-b, -c, -d];
  }
  return [b, c, d];
}

function defaultXformCode(volume: Volume): number {
  const extra = volume.meta.extra ?? {};
  const code = Number(extra.sformCode) > 0 ? Number(extra.sformCode) : Number(extra.qformCode);
  return code >= 2 && code <= 5 ? code : 1;
}

/** The 352-byte NIfTI-1 header (with the empty extension flag) and the voxel bytes of `volume`. */
export function encodeNifti(volume: Volume, options: WriteNiftiOptions = {}): { header: Uint8Array; data: Uint8Array } {
  const writeStored = options.dtype === undefined || (options.dtype === volume.dtype && !volume.isScaled);
  // NIfTI's only colour type is RGB24
  const data = volume.components === 3 ? rgbData(volume) : writeStored ? volume.data : realValuesAs(volume, options.dtype!);
  const [slope, intercept] = writeStored ? [volume.slope, volume.intercept] : [1, 0];
  const dtype = writeStored ? volume.dtype : options.dtype!;
  if (volume.components !== 1 && !(volume.components === 3 && dtype === 'uint8')) {
    throw new Error(`cannot write a ${volume.components}-component ${dtype} volume as NIfTI`);
  }
  if (volume.dims.some((n) => n > 32767)) throw new Error(`cannot write ${volume.dims.join('×')} as NIfTI-1 (at most 32767 per axis)`);
  const datatype = volume.components === 3 ? 128 : DTYPE_CODES[dtype];
  const bytesPerVoxel = data.BYTES_PER_ELEMENT * volume.components;
  const { geometry } = volume;
  const code = options.xformCode ?? defaultXformCode(volume);

  // qform: the rotation part only (nearest rotation if the columns are sheared), qfac for a flip
  const ras = affineRAS(geometry);
  const direction = [0, 1, 2].flatMap((row) => [0, 1, 2].map((col) => ras[row * 4 + col]! / (geometry.spacing[col] || 1)));
  let rotation = Math.abs(det3(direction)) > 1e-6 ? nearestRotation(direction) : [1, 0, 0, 0, 1, 0, 0, 0, 1];
  let qfac = 1;
  if (det3(rotation) < 0) {
    qfac = -1;
    rotation = rotation.map((v, i) => (i % 3 === 2 ? -v : v));
  }
  const [quaternB, quaternC, quaternD] = rotationToQuaternion(rotation);
  const description = (options.description ?? volume.meta.description ?? '').replace(/[^\x20-\x7e]/g, '?').slice(0, 79);

  // the header, then the 4-byte extension flag (0: no extensions), then the voxels
  const header = new Uint8Array(NIFTI_LAYOUTS[1].size + 4);
  encodeFields(FIELDS_V1, header, {
    sizeof_hdr: NIFTI_LAYOUTS[1].size,
    dim: [3, ...geometry.dims, 1, 1, 1, 1],
    datatype,
    bitpix: bytesPerVoxel * 8,
    pixdim: [qfac, ...geometry.spacing, 1, 1, 1, 1],
    vox_offset: header.length,
    scl_slope: slope,
    scl_inter: intercept,
    xyzt_units: 2, // mm (and seconds, unused)
    descrip: description,
    qform_code: code,
    sform_code: code,
    quatern_b: quaternB,
    quatern_c: quaternC,
    quatern_d: quaternD,
    qoffset_x: ras[3]!,
    qoffset_y: ras[7]!,
    qoffset_z: ras[11]!,
    srow_x: ras.slice(0, 4),
    srow_y: ras.slice(4, 8),
    srow_z: ras.slice(8, 12),
    magic: 'n+1\0',
  }, true);

  let voxelBytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (!NATIVE_LITTLE_ENDIAN && data.BYTES_PER_ELEMENT > 1) {
    voxelBytes = voxelBytes.slice();
    swapBytesInPlace(voxelBytes, data.BYTES_PER_ELEMENT);
  }
  return { header, data: voxelBytes };
}

/** Writes a NIfTI-1 .nii or .nii.gz atomically (nothing appears at `file` unless it all worked). */
export async function writeNifti(file: string, volume: Volume, options: WriteNiftiOptions = {}): Promise<void> {
  if (!isNiftiPath(file)) throw new FileError(file, 'output must end in .nii or .nii.gz');
  const { header, data } = encodeNifti(volume, options);
  if (/\.gz$/i.test(file)) {
    // header and voxels stream through gzip without being joined first
    const compressed = await new Promise<Buffer[]>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const stream = createGzip({ level: options.compressionLevel ?? 6, chunkSize: 1 << 20 });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('end', () => resolve(chunks));
      stream.write(header);
      stream.end(data);
    });
    await writeFileAtomic(file, compressed);
  } else {
    await writeFileAtomic(file, [header, data]);
  }
}

/** Reads only the header of a .nii/.nii.gz (for quick listings). */
export async function readNiftiHeader(file: string): Promise<NiftiHeader> {
  let head: Uint8Array;
  try {
    const handle = await openForReading(file);
    try {
      const buffer = Buffer.alloc(4096);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw err instanceof UserError ? err : new FileError(file, fileProblem(err));
  }
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) head = gunzipHead(head, file);
  return parseNiftiHeader(head, file);
}
