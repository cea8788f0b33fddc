/**
 * The one image type of the workstation (architecture.md): voxels with x fastest, geometry in
 * LPS. Readers convert their file's convention (NIfTI RAS, DICOM per-slice positions) once,
 * here at the boundary; nothing downstream ever sees RAS.
 */

export type VoxelType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';

import type { Vec3, VoxelArray } from '../api.ts';
import { UserError } from '../errors.ts';

export type { Vec3, VoxelArray };

/**
 * world(LPS, mm) = origin + direction · diag(spacing) · [i, j, k].
 * `direction` is the 3×3 matrix in row-major order whose column c is the unit vector of index
 * axis c (ITK's GetDirection()).
 */
export interface Geometry {
  dims: Vec3;
  spacing: Vec3;
  origin: Vec3;
  direction: number[];
}

export interface VolumeMeta {
  /** stable identifier: SeriesInstanceUID for DICOM, the file name for NIfTI */
  id: string;
  description: string;
  modality: string;
  /** the files it was read from */
  sources: string[];
  /** DICOM: SOPInstanceUID per z index, for references from DICOM SEG */
  sopInstanceUids?: string[];
  sopClassUid?: string;
  studyInstanceUid?: string;
  frameOfReferenceUid?: string;
  /** free-form reader details (transfer syntax, NIfTI intent, …) */
  extra?: Record<string, unknown>;
}

export const dtypeOf = (data: VoxelArray): VoxelType => {
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Float32Array) return 'float32';
  return 'float64';
};

export interface VolumeInit {
  geometry: Geometry;
  /** stored values; the real value of voxel i is data[i] * slope + intercept */
  data: VoxelArray;
  slope?: number;
  intercept?: number;
  /** 1 for scalar images; 3 for RGB, interleaved per voxel */
  components?: number;
  meta: VolumeMeta;
  /** stats() already computed elsewhere (by the thread that read the volume) */
  stats?: VolumeStats;
}

export interface VolumeStats {
  min: number;
  max: number;
  mean: number;
}

export class Volume {
  readonly geometry: Geometry;
  readonly data: VoxelArray;
  readonly slope: number;
  readonly intercept: number;
  readonly components: number;
  readonly meta: VolumeMeta;
  #stats?: VolumeStats;

  constructor(init: VolumeInit) {
    const [nx, ny, nz] = init.geometry.dims;
    const components = init.components ?? 1;
    if (init.data.length !== nx * ny * nz * components) {
      throw new Error(`volume data has ${init.data.length} values, geometry needs ${nx * ny * nz * components} (${nx}×${ny}×${nz}×${components})`);
    }
    this.geometry = init.geometry;
    this.data = init.data;
    this.slope = init.slope ?? 1;
    this.intercept = init.intercept ?? 0;
    this.components = components;
    this.meta = init.meta;
    this.#stats = init.stats;
  }

  get dims(): Vec3 {
    return this.geometry.dims;
  }
  get dtype(): VoxelType {
    return dtypeOf(this.data);
  }
  get isColour(): boolean {
    return this.components === 3;
  }
  get voxelsPerSlice(): number {
    return this.geometry.dims[0] * this.geometry.dims[1];
  }
  get isScaled(): boolean {
    return this.slope !== 1 || this.intercept !== 0;
  }

  /** Stored values of axial slice k: a view into the volume, no copy. */
  sliceView(k: number): VoxelArray {
    this.#checkSlice(k);
    const n = this.voxelsPerSlice * this.components;
    return this.data.subarray(k * n, (k + 1) * n) as VoxelArray;
  }

  /** Real values (slope and intercept applied) of axial slice k; copies one slice only. */
  sliceValues(k: number, out?: Float32Array): Float32Array {
    const view = this.sliceView(k);
    const result = out ?? new Float32Array(view.length);
    const { slope, intercept } = this;
    for (let i = 0; i < view.length; i++) result[i] = view[i]! * slope + intercept;
    return result;
  }

  /** All real values as float32 (a copy unless the data already is unscaled float32). */
  toFloat32(): Float32Array {
    if (this.data instanceof Float32Array && !this.isScaled) return this.data;
    const result = new Float32Array(this.data.length);
    const { slope, intercept, data } = this;
    for (let i = 0; i < data.length; i++) result[i] = data[i]! * slope + intercept;
    return result;
  }

  value(index: number): number {
    return this.data[index]! * this.slope + this.intercept;
  }

  /** min, max and mean of the real values, computed once in float64. */
  stats(): VolumeStats {
    if (this.#stats) return this.#stats;
    const { data } = this;
    let lo = Infinity;
    let hi = -Infinity;
    let sum = 0;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      sum += v;
    }
    const a = this.slope * lo + this.intercept;
    const b = this.slope * hi + this.intercept;
    const mean = data.length ? (sum / data.length) * this.slope + this.intercept : NaN;
    this.#stats = { min: Math.min(a, b), max: Math.max(a, b), mean };
    return this.#stats;
  }

  /** The same geometry and meta with other voxel values (for masks and probability maps). */
  withData(data: VoxelArray, meta: Partial<VolumeMeta> = {}): Volume {
    return new Volume({ geometry: this.geometry, data, meta: { ...this.meta, ...meta } });
  }

  #checkSlice(k: number): void {
    if (!Number.isInteger(k) || k < 0 || k >= this.geometry.dims[2]) {
      throw new RangeError(`slice ${k} outside 0…${this.geometry.dims[2] - 1}`);
    }
  }
}

/** 4×4 row-major matrix mapping [i, j, k, 1] to LPS millimetres. */
export function affineLPS(geometry: Geometry): number[] {
  const { direction: d, spacing: s, origin: o } = geometry;
  return [
    d[0]! * s[0], d[1]! * s[1], d[2]! * s[2], o[0],
    d[3]! * s[0], d[4]! * s[1], d[5]! * s[2], o[1],
    d[6]! * s[0], d[7]! * s[1], d[8]! * s[2], o[2],
    0, 0, 0, 1,
  ];
}

/** NIfTI's RAS affine of the same geometry: LPS with x and y negated. */
export function affineRAS(geometry: Geometry): number[] {
  const lps = affineLPS(geometry);
  return lps.map((v, i) => (i < 8 ? -v : v)).map((v) => (Object.is(v, -0) ? 0 : v));
}

/** Splits a 4×4 LPS affine into spacing, origin and unit direction columns. */
export function geometryFromAffineLPS(affine: number[], dims: Vec3): Geometry {
  const spacing: Vec3 = [0, 0, 0];
  const direction = new Array<number>(9).fill(0);
  for (let c = 0; c < 3; c++) {
    const col = [affine[c]!, affine[4 + c]!, affine[8 + c]!];
    const norm = Math.hypot(col[0]!, col[1]!, col[2]!);
    spacing[c] = norm;
    for (let r = 0; r < 3; r++) direction[r * 3 + c] = norm > 0 ? col[r]! / norm : r === c ? 1 : 0;
  }
  return { dims, spacing, origin: [affine[3]!, affine[7]!, affine[11]!], direction };
}

export function indexToWorld(geometry: Geometry, i: number, j: number, k: number): Vec3 {
  const a = affineLPS(geometry);
  return [
    a[0]! * i + a[1]! * j + a[2]! * k + a[3]!,
    a[4]! * i + a[5]! * j + a[6]! * k + a[7]!,
    a[8]! * i + a[9]! * j + a[10]! * k + a[11]!,
  ];
}

/** True when two geometries put every voxel at the same place (within `tolerance` mm). */
export function sameGrid(a: Geometry, b: Geometry, tolerance = 1e-3): boolean {
  if (a.dims.some((n, i) => n !== b.dims[i])) return false;
  const fa = affineLPS(a);
  const fb = affineLPS(b);
  return fa.every((v, i) => Math.abs(v - fb[i]!) <= tolerance);
}

/** The inverse of affineLPS's 3×3 part and offset: continuous voxel index (i, j, k) of an LPS point. */
export function worldToIndexMatrix(geometry: Geometry): number[] {
  const a = affineLPS(geometry);
  const [m00, m01, m02, m10, m11, m12, m20, m21, m22] = [a[0]!, a[1]!, a[2]!, a[4]!, a[5]!, a[6]!, a[8]!, a[9]!, a[10]!];
  const det = m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20) + m02 * (m10 * m21 - m11 * m20);
  if (!(Math.abs(det) > 1e-12)) throw new Error(`geometry has a singular affine (spacing ${geometry.spacing.join(', ')})`);
  const inv = [
    (m11 * m22 - m12 * m21) / det, (m02 * m21 - m01 * m22) / det, (m01 * m12 - m02 * m11) / det,
    (m12 * m20 - m10 * m22) / det, (m00 * m22 - m02 * m20) / det, (m02 * m10 - m00 * m12) / det,
    (m10 * m21 - m11 * m20) / det, (m01 * m20 - m00 * m21) / det, (m00 * m11 - m01 * m10) / det,
  ];
  const [ox, oy, oz] = [a[3]!, a[7]!, a[11]!];
  return [
    inv[0]!, inv[1]!, inv[2]!, -(inv[0]! * ox + inv[1]! * oy + inv[2]! * oz),
    inv[3]!, inv[4]!, inv[5]!, -(inv[3]! * ox + inv[4]! * oy + inv[5]! * oz),
    inv[6]!, inv[7]!, inv[8]!, -(inv[6]! * ox + inv[7]! * oy + inv[8]! * oz),
    0, 0, 0, 1,
  ];
}

export function worldToIndex(geometry: Geometry, p: readonly number[]): Vec3 {
  const m = worldToIndexMatrix(geometry);
  return [
    m[0]! * p[0]! + m[1]! * p[1]! + m[2]! * p[2]! + m[3]!,
    m[4]! * p[0]! + m[5]! * p[1]! + m[6]! * p[2]! + m[7]!,
    m[8]! * p[0]! + m[9]! * p[1]! + m[10]! * p[2]! + m[11]!,
  ];
}

const labelCache = new WeakMap<Volume, Uint8Array>();

/**
 * A label map as bytes (labels must be integers 0…255): its own data when it is stored so, else
 * converted once and kept while the volume lives.
 */
export function labelBytes(volume: Volume): Uint8Array {
  if (volume.data instanceof Uint8Array && !volume.isScaled) return volume.data;
  const cached = labelCache.get(volume);
  if (cached) return cached;
  const out = new Uint8Array(volume.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = volume.value(i);
    if (!(v >= 0 && v <= 255 && Number.isInteger(v))) {
      throw new UserError(`ground truth ${volume.meta.id}: voxel ${i} holds ${v}, not a label 0…255`);
    }
    out[i] = v;
  }
  labelCache.set(volume, out);
  return out;
}
