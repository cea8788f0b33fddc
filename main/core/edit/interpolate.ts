/**
 * Interpolating a label between two slices drawn by hand (across one index axis), the way
 * ITK-SNAP and Slicer fill the slices between contours:
 *
 * - 'distance' (shape-based): each drawn region as a signed distance map in mm (negative inside,
 *   boundaries half a voxel out from the voxel centres), blended linearly along the gap; a voxel
 *   of an intermediate slice is inside where the blend is ≤ 0. A region growing from one slice
 *   to the next grows steadily; a region moving sideways moves steadily.
 * - 'morphological': Serra's interpolation by dilations. With ρ the Hausdorff distance between
 *   the two regions, slice t of the gap (0…1) holds the voxels within t·ρ of the first region and
 *   within (1 − t)·ρ of the second, so the shape passes from one to the other through dilations
 *   and the result never leaves the union of the dilated ends.
 *
 * Distances come from the exact Euclidean distance transform used for HD95 (metrics/distance.ts),
 * with the grid's in-plane spacing.
 */
import { squaredDistanceTransform } from '../metrics/distance.ts';
import type { ChangeRecorder } from './diff.ts';
import { inPlaneAxes, type Axis, type Grid } from './ops.ts';

export const INTERPOLATION_MODES = ['distance', 'morphological'] as const;
export type InterpolationMode = (typeof INTERPOLATION_MODES)[number];

/** Why an interpolation cannot be done, in words for the user. */
export class InterpolationError extends Error {
  override name = 'InterpolationError';
}

interface Plane {
  width: number;
  height: number;
  spacing: [number, number];
  index: (slice: number, a: number, b: number) => number;
}

function planeOf(grid: Grid, axis: Axis): Plane {
  const dims = grid.dims as [number, number, number];
  const strides = [1, dims[0], dims[0] * dims[1]];
  const [u, v] = inPlaneAxes(axis);
  const su = strides[u]!;
  const sv = strides[v]!;
  const ss = strides[axis]!;
  return { width: dims[u]!, height: dims[v]!, spacing: [grid.spacing[u]!, grid.spacing[v]!], index: (s, a, b) => s * ss + a * su + b * sv };
}

function regionOf(labels: Uint8Array, p: Plane, slice: number, label: number): Uint8Array {
  const out = new Uint8Array(p.width * p.height);
  for (let b = 0; b < p.height; b++) for (let a = 0; a < p.width; a++) out[a + b * p.width] = labels[p.index(slice, a, b)] === label ? 1 : 0;
  return out;
}

function distances(region: Uint8Array, p: Plane): Float64Array {
  const squared = squaredDistanceTransform(region, [p.width, p.height], p.spacing);
  for (let i = 0; i < squared.length; i++) squared[i] = Math.sqrt(squared[i]!);
  return squared;
}

/** Signed distance in mm: negative inside, the boundary half a voxel beyond the outermost voxel centres. */
function signedDistance(region: Uint8Array, p: Plane): Float64Array {
  const toInside = distances(region, p);
  const complement = region.map((v) => 1 - v);
  const toOutside = distances(complement, p);
  const half = Math.min(p.spacing[0], p.spacing[1]) / 2;
  const out = new Float64Array(region.length);
  for (let i = 0; i < out.length; i++) out[i] = region[i] ? -(toOutside[i]! - half) : toInside[i]! - half;
  return out;
}

/**
 * Fills `label` into the slices strictly between `first` and `second` (across `axis`) where the
 * table allows; both must hold the label. Returns the voxels changed.
 */
export function interpolateLabel(
  labels: Uint8Array,
  grid: Grid,
  axis: Axis,
  label: number,
  first: number,
  second: number,
  mode: InterpolationMode,
  table: Uint8Array,
  recorder: ChangeRecorder,
): number {
  const [lo, hi] = first < second ? [first, second] : [second, first];
  if (hi - lo < 2) throw new InterpolationError(`slices ${lo + 1} and ${hi + 1} are next to each other: there is no slice between them to fill`);
  const p = planeOf(grid, axis);
  const A = regionOf(labels, p, lo, label);
  const B = regionOf(labels, p, hi, label);
  if (!A.includes(1)) throw new InterpolationError(`slice ${lo + 1} holds no label ${label} to interpolate from`);
  if (!B.includes(1)) throw new InterpolationError(`slice ${hi + 1} holds no label ${label} to interpolate to`);
  const n = A.length;
  let inside: (i: number, t: number) => boolean;
  if (mode === 'distance') {
    const sdA = signedDistance(A, p);
    const sdB = signedDistance(B, p);
    inside = (i, t) => (1 - t) * sdA[i]! + t * sdB[i]! <= 0;
  } else {
    const dA = distances(A, p);
    const dB = distances(B, p);
    let rho = 0;
    for (let i = 0; i < n; i++) {
      if (B[i]) rho = Math.max(rho, dA[i]!);
      if (A[i]) rho = Math.max(rho, dB[i]!);
    }
    const tolerance = 1e-6 * (rho + 1);
    inside = (i, t) => dA[i]! <= t * rho + tolerance && dB[i]! <= (1 - t) * rho + tolerance;
  }
  let changed = 0;
  for (let s = lo + 1; s < hi; s++) {
    const t = (s - lo) / (hi - lo);
    for (let b = 0; b < p.height; b++)
      for (let a = 0; a < p.width; a++) {
        if (!inside(a + b * p.width, t)) continue;
        const index = p.index(s, a, b);
        if (!table[labels[index]!]) continue;
        recorder.set(labels, index, label);
        changed++;
      }
  }
  return changed;
}

/**
 * The slices (across `axis`) nearest to `slice` on either side that hold `label`, for filling the
 * gap the user stands in; null when `slice` holds the label itself or a side has none.
 */
export function gapAround(labels: Uint8Array, grid: Grid, axis: Axis, label: number, slice: number): [number, number] | null {
  const p = planeOf(grid, axis);
  const count = grid.dims[axis]!;
  const holds = (s: number): boolean => {
    for (let b = 0; b < p.height; b++) for (let a = 0; a < p.width; a++) if (labels[p.index(s, a, b)] === label) return true;
    return false;
  };
  if (slice < 0 || slice >= count || holds(slice)) return null;
  let below = slice - 1;
  while (below >= 0 && !holds(below)) below--;
  let above = slice + 1;
  while (above < count && !holds(above)) above++;
  return below >= 0 && above < count ? [below, above] : null;
}
