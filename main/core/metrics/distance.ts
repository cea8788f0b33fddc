/**
 * Surface distances and HD95 exactly as MedPy (`medpy.metric.binary.hd95`) and the BraTS
 * evaluation compute them:
 * - surface(M) = M minus binary_erosion(M) with the face-connected structuring element
 *   (6-connected in 3D, 4-connected in 2D) and border value 0, so mask voxels on the image border
 *   are surface;
 * - d(A→B) = for each surface voxel of A, the Euclidean distance in mm (voxel spacing, exact)
 *   to the nearest surface voxel of B;
 * - HD95 = 95th percentile, numpy's linear interpolation, of d(A→B) and d(B→A) pooled together.
 *
 * Work is confined to the bounding box of A ∪ B. That is exact: every voxel outside the box is
 * background in both masks, which is also what the erosion assumes beyond the image border, and
 * every surface voxel (the only EDT features) lies inside the box, where the separable EDT on a box
 * domain yields the exact nearest-feature distance.
 */

export interface Box {
  /** inclusive lower corner, per axis */
  lo: number[];
  /** exclusive upper corner, per axis */
  hi: number[];
}

/**
 * One-dimensional squared-distance transform of Felzenszwalb & Huttenlocher (lower envelope of
 * parabolas), in float64 with coordinates scaled by `step` mm. Reads `f` (n samples at `stride`
 * from `offset`) and writes the result back in place. Scratch arrays are passed in, so the inner
 * loops allocate nothing.
 */
function edt1d(
  data: Float64Array,
  offset: number,
  stride: number,
  n: number,
  step: number,
  f: Float64Array,
  v: Int32Array,
  z: Float64Array,
): void {
  let any = false;
  for (let q = 0; q < n; q++) {
    const value = data[offset + q * stride]!;
    f[q] = value;
    if (value !== Infinity) any = true;
  }
  if (!any) return;
  let k = -1;
  for (let q = 0; q < n; q++) {
    const fq = f[q]!;
    if (fq === Infinity) continue;
    const xq = q * step;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    const xp0 = v[k]! * step;
    let s = (fq + xq * xq - (f[v[k]!]! + xp0 * xp0)) / (2 * (xq - xp0));
    // z[0] is -Infinity, so this stops at k = 0 at the latest
    while (s <= z[k]!) {
      k--;
      const p = v[k]!;
      const xp = p * step;
      s = (fq + xq * xq - (f[p]! + xp * xp)) / (2 * (xq - xp));
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  let j = 0;
  for (let q = 0; q < n; q++) {
    const xq = q * step;
    while (z[j + 1]! < xq) j++;
    const p = v[j]!;
    const d = xq - p * step;
    data[offset + q * stride] = d * d + f[p]!;
  }
}

/**
 * First pass, along x, where the input is still binary: the squared distance to the nearest
 * feature in the same row, by a forward and a backward scan (no parabolas needed).
 */
function rowPass(feature: Uint8Array, out: Float64Array, nx: number, step: number): void {
  for (let row = 0; row < out.length; row += nx) {
    let first = -1;
    for (let x = 0; x < nx; x++) {
      if (feature[row + x]) {
        first = x;
        break;
      }
    }
    if (first < 0) {
      // most rows of a surface image hold no feature at all
      out.fill(Infinity, row, row + nx);
      continue;
    }
    // before the first feature, then between consecutive features, then after the last
    for (let x = 0; x < first; x++) {
      const d = (first - x) * step;
      out[row + x] = d * d;
    }
    let previous = first;
    out[row + first] = 0;
    for (let x = first + 1; x < nx; x++) {
      if (!feature[row + x]) continue;
      for (let k = previous + 1; k < x; k++) {
        const d = Math.min(k - previous, x - k) * step;
        out[row + k] = d * d;
      }
      out[row + x] = 0;
      previous = x;
    }
    for (let x = previous + 1; x < nx; x++) {
      const d = (x - previous) * step;
      out[row + x] = d * d;
    }
  }
}

/**
 * Squared Euclidean distance (mm²) from voxels of a box-shaped grid to the nearest voxel with
 * `feature[i] = 1`. `shape` and `spacing` have 2 or 3 entries, x fastest. Infinity when there is
 * no feature at all. With `query`, only the voxels where `query[i] = 1` are guaranteed: lines of
 * the last pass that hold no query voxel are skipped.
 */
export function squaredDistanceTransform(
  feature: Uint8Array,
  shape: readonly number[],
  spacing: readonly number[],
  query?: Uint8Array,
): Float64Array {
  const total = feature.length;
  const out = new Float64Array(total);
  rowPass(feature, out, shape[0]!, spacing[0]!);
  const longest = Math.max(...shape);
  const f = new Float64Array(longest);
  const v = new Int32Array(longest);
  const z = new Float64Array(longest + 1);
  let stride = shape[0]!;
  for (let axis = 1; axis < shape.length; axis++) {
    const n = shape[axis]!;
    const s = stride;
    stride *= n;
    const step = spacing[axis]!;
    if (n === 1) continue;
    const lastAxis = axis === shape.length - 1;
    // every line along `axis`: offsets whose coordinate on `axis` is 0
    const outer = total / n;
    for (let line = 0; line < outer; line++) {
      const low = line % s;
      const offset = (line - low) * n + low;
      if (lastAxis && query) {
        let wanted = false;
        for (let q = 0; q < n && !wanted; q++) wanted = query[offset + q * s] === 1;
        if (!wanted) continue;
      }
      edt1d(out, offset, s, n, step, f, v, z);
    }
  }
  return out;
}

/**
 * Marks the surface voxels of `mask` (a box-shaped grid, x fastest): mask voxels with a
 * face neighbour outside the mask or outside the grid.
 */
export function surfaceOf(mask: Uint8Array, shape: readonly number[]): Uint8Array {
  const nx = shape[0]!;
  const ny = shape[1]!;
  const nz = shape.length > 2 ? shape[2]! : 1;
  const sxy = nx * ny;
  const surface = new Uint8Array(mask.length);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const row = z * sxy + y * nx;
      for (let x = 0; x < nx; x++) {
        const i = row + x;
        if (!mask[i]) continue;
        const interior =
          x > 0 && x < nx - 1 && mask[i - 1] && mask[i + 1] &&
          y > 0 && y < ny - 1 && mask[i - nx] && mask[i + nx] &&
          (shape.length < 3 || (z > 0 && z < nz - 1 && mask[i - sxy] && mask[i + sxy]));
        if (!interior) surface[i] = 1;
      }
    }
  }
  return surface;
}

/** numpy.percentile(values, q) with the default 'linear' method; sorts `values` in place. */
export function percentileLinear(values: Float64Array, q: number): number {
  if (values.length === 0) return NaN;
  values.sort();
  const position = (values.length - 1) * (q / 100);
  const below = Math.floor(position);
  const above = Math.min(below + 1, values.length - 1);
  const t = position - below;
  const a = values[below]!;
  const b = values[above]!;
  // numpy's _lerp: the form that is exact at whichever end t is closer to
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

/**
 * Pooled surface distances (mm) of two binary masks given on the same box-shaped grid; both must
 * be non-empty. Returns d(A→B) followed by d(B→A).
 */
export function pooledSurfaceDistances(a: Uint8Array, b: Uint8Array, shape: readonly number[], spacing: readonly number[]): Float64Array {
  const surfaceA = surfaceOf(a, shape);
  const surfaceB = surfaceOf(b, shape);
  let countA = 0;
  let countB = 0;
  for (let i = 0; i < surfaceA.length; i++) {
    countA += surfaceA[i]!;
    countB += surfaceB[i]!;
  }
  const distances = new Float64Array(countA + countB);
  let at = 0;
  const toB = squaredDistanceTransform(surfaceB, shape, spacing, surfaceA);
  for (let i = 0; i < surfaceA.length; i++) if (surfaceA[i]) distances[at++] = Math.sqrt(toB[i]!);
  const toA = squaredDistanceTransform(surfaceA, shape, spacing, surfaceB);
  for (let i = 0; i < surfaceB.length; i++) if (surfaceB[i]) distances[at++] = Math.sqrt(toA[i]!);
  return distances;
}

/** HD95 of two non-empty masks on the same grid (see the module comment). */
export function hd95OfMasks(a: Uint8Array, b: Uint8Array, shape: readonly number[], spacing: readonly number[]): number {
  return percentileLinear(pooledSurfaceDistances(a, b, shape, spacing), 95);
}

/** Length of the image diagonal in mm: the BraTS HD95 when exactly one mask is empty. */
export function imageDiagonal(dims: readonly number[], spacing: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < dims.length; i++) sum += (dims[i]! * spacing[i]!) ** 2;
  return Math.sqrt(sum);
}
