import type { Vec3 } from '../io/volume.ts';
import type { Rng } from './random.ts';

/**
 * A smooth scalar field stored on a coarse regular grid (a few mm) and sampled trilinearly in
 * millimetres. Band-limited noise for shapes, textures, deformations and bias fields lives
 * here: the expensive smoothing happens once on the coarse grid, and each voxel pays only one
 * trilinear look-up.
 */
export class Field3 {
  readonly data: Float32Array;
  readonly size: Vec3;
  readonly step: number;
  readonly origin: Vec3;
  /** values per node, interleaved: channels on the same grid share one set of trilinear weights */
  readonly channels: number;

  constructor(data: Float32Array, size: Vec3, step: number, origin: Vec3, channels = 1) {
    if (data.length !== size[0] * size[1] * size[2] * channels) throw new Error('field data does not match its size');
    this.data = data;
    this.size = size;
    this.step = step;
    this.origin = origin;
    this.channels = channels;
  }

  /** Trilinear value of channel 0 at (x, y, z) mm; clamped to the edge outside the grid. */
  sample(x: number, y: number, z: number): number {
    this.sampleInto(x, y, z, SINGLE);
    return SINGLE[0]!;
  }

  /** Trilinear values of every channel at (x, y, z) mm into `out`. */
  sampleInto(x: number, y: number, z: number, out: Float64Array): void {
    const inv = 1 / this.step;
    const size = this.size;
    let fx = (x - this.origin[0]) * inv;
    let fy = (y - this.origin[1]) * inv;
    let fz = (z - this.origin[2]) * inv;
    const mx = size[0] - 1.000001;
    const my = size[1] - 1.000001;
    const mz = size[2] - 1.000001;
    fx = fx < 0 ? 0 : fx > mx ? mx : fx;
    fy = fy < 0 ? 0 : fy > my ? my : fy;
    fz = fz < 0 ? 0 : fz > mz ? mz : fz;
    const ix = fx | 0;
    const iy = fy | 0;
    const iz = fz | 0;
    const tx = fx - ix;
    const ty = fy - iy;
    const tz = fz - iz;
    const w000 = (1 - tx) * (1 - ty) * (1 - tz);
    const w100 = tx * (1 - ty) * (1 - tz);
    const w010 = (1 - tx) * ty * (1 - tz);
    const w110 = tx * ty * (1 - tz);
    const w001 = (1 - tx) * (1 - ty) * tz;
    const w101 = tx * (1 - ty) * tz;
    const w011 = (1 - tx) * ty * tz;
    const w111 = tx * ty * tz;
    const d = this.data;
    const c = this.channels;
    const sx = size[0] * c;
    const sxy = size[0] * size[1] * c;
    const p = (ix + iy * size[0] + iz * size[0] * size[1]) * c;
    for (let ch = 0; ch < c; ch++) {
      const q = p + ch;
      out[ch] =
        w000 * d[q]! + w100 * d[q + c]! + w010 * d[q + sx]! + w110 * d[q + sx + c]! +
        w001 * d[q + sxy]! + w101 * d[q + sxy + c]! + w011 * d[q + sxy + sx]! + w111 * d[q + sxy + sx + c]!;
    }
  }
}

const SINGLE = new Float64Array(1);

/** Interleaves single-channel fields that share one grid into one multi-channel field. */
export function stackFields(fields: Field3[]): Field3 {
  const first = fields[0]!;
  const c = fields.length;
  const nodes = first.data.length;
  for (const f of fields) {
    if (f.channels !== 1 || f.data.length !== nodes || f.step !== first.step || f.origin.some((v, i) => v !== first.origin[i])) {
      throw new Error('stacked fields must share one single-channel grid');
    }
  }
  const data: Float32Array = new Float32Array(nodes * c);
  for (let ch = 0; ch < c; ch++) {
    const src = fields[ch]!.data;
    for (let i = 0; i < nodes; i++) data[i * c + ch] = src[i]!;
  }
  return new Field3(data, first.size, first.step, first.origin, c);
}

/** Uniform cubic B-spline weights for fractional position t in [0, 1). */
function bsplineWeights(t: number, out: Float64Array): void {
  const t2 = t * t;
  const t3 = t2 * t;
  out[0] = (1 - 3 * t + 3 * t2 - t3) / 6;
  out[1] = (4 - 6 * t2 + 3 * t3) / 6;
  out[2] = (1 + 3 * t + 3 * t2 - 3 * t3) / 6;
  out[3] = t3 / 6;
}

/**
 * Interpolates `src` (lattice of `srcSize`) along one axis onto `outCount` nodes, where output
 * node n sits at lattice coordinate `start + n * ratio`. Separable passes keep the cost linear
 * in the output size; the innermost loop always runs over contiguous memory.
 */
function upsampleAxis(src: Float32Array, srcSize: Vec3, axis: 0 | 1 | 2, outCount: number, start: number, ratio: number): { data: Float32Array; size: Vec3 } {
  const size: Vec3 = [...srcSize];
  size[axis] = outCount;
  const out = new Float32Array(size[0] * size[1] * size[2]);
  const w = new Float64Array(4);
  const weights = new Float64Array(outCount * 4);
  const bases = new Int32Array(outCount);
  for (let n = 0; n < outCount; n++) {
    const t = start + n * ratio;
    const i0 = Math.floor(t);
    bsplineWeights(t - i0, w);
    weights.set(w, n * 4);
    bases[n] = i0 - 1;
  }
  // view both arrays as [outer][axis][inner]: inner is contiguous, axis is the one resampled
  const inner = axis === 0 ? 1 : axis === 1 ? srcSize[0] : srcSize[0] * srcSize[1];
  const outer = axis === 0 ? srcSize[1] * srcSize[2] : axis === 1 ? srcSize[2] : 1;
  const srcLen = srcSize[axis];
  for (let o = 0; o < outer; o++) {
    const srcBlock = o * srcLen * inner;
    const outBlock = o * outCount * inner;
    for (let n = 0; n < outCount; n++) {
      const w0 = weights[n * 4]!;
      const w1 = weights[n * 4 + 1]!;
      const w2 = weights[n * 4 + 2]!;
      const w3 = weights[n * 4 + 3]!;
      const s0 = srcBlock + bases[n]! * inner;
      const s1 = s0 + inner;
      const s2 = s1 + inner;
      const s3 = s2 + inner;
      const d = outBlock + n * inner;
      for (let q = 0; q < inner; q++) out[d + q] = w0 * src[s0 + q]! + w1 * src[s1 + q]! + w2 * src[s2 + q]! + w3 * src[s3 + q]!;
    }
  }
  return { data: out, size };
}

/**
 * Band-limited noise with features of about `feature` mm over the box [lo, hi] mm, stored every
 * `step` mm, scaled to zero mean and unit standard deviation: a random lattice every `feature`
 * mm, smoothed by a cubic B-spline.
 */
export function smoothNoise(rng: Rng, lo: Vec3, hi: Vec3, step: number, feature: number): Field3 {
  const outSize = [0, 1, 2].map((a) => Math.max(2, Math.ceil((hi[a]! - lo[a]!) / step) + 1)) as Vec3;
  const ratio = step / feature;
  const latSize = [0, 1, 2].map((a) => Math.ceil((outSize[a]! - 1) * ratio) + 4) as Vec3;
  let data: Float32Array = new Float32Array(latSize[0] * latSize[1] * latSize[2]);
  for (let i = 0; i < data.length; i++) data[i] = rng.next() * 2 - 1;
  let size = latSize;
  // output node 0 sits at lattice coordinate 1, so every node has its four lattice neighbours
  for (const axis of [0, 1, 2] as const) ({ data, size } = upsampleAxis(data, size, axis, outSize[axis], 1, ratio));
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < data.length; i++) {
    sum += data[i]!;
    sumSq += data[i]! * data[i]!;
  }
  const mean = sum / data.length;
  const sd = Math.sqrt(Math.max(sumSq / data.length - mean * mean, 1e-12));
  for (let i = 0; i < data.length; i++) data[i] = (data[i]! - mean) / sd;
  return new Field3(data, size, step, lo);
}
