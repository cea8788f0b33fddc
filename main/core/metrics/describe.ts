/**
 * The tumour description of a label map, without ground truth: region volumes, the whole-tumour
 * lesions (26-connected components) with their diameters and RANO bidimensional measurements,
 * multifocality and laterality. This is what a clinician reads for a new patient (Raidionics'
 * standardised report) and for follow-up (RANO); `compare.ts` turns two descriptions into a
 * RANO-style category.
 *
 * Geometry: every distance is between voxel centres in patient space (LPS mm, spacing and
 * direction honoured); "axial slice" is the volume's third index axis, as the viewer shows it.
 */
import type { Laterality, Lesion, RanoMeasurement, RegionVolume, TumourDescription } from '../api.ts';
import { affineLPS, indexToWorld, worldToIndexMatrix, type Geometry, type Vec3, type VoxelArray } from '../io/volume.ts';

export type { Laterality, Lesion, RanoMeasurement, RegionVolume, TumourDescription };
import { connectedComponents } from './components.ts';
import { squaredDistanceTransform } from './distance.ts';
import { regionLookup, type RegionDefinition, type RegionKind } from './regions.ts';

export interface DescribeOptions {
  /** co-registered images on the mask's grid (any sequences), for the mid-sagittal plane */
  images?: { data: VoxelArray | Float32Array }[];
  /** smallest lesion and focus, ml (default DEFAULT_MIN_LESION_ML) */
  minLesionMl?: number;
  /** components closer than this (mm) are one focus (default 5) */
  fociMergeMm?: number;
}

/** Components smaller than this (ml) are not lesions (nor foci) unless the caller says otherwise. */
export const DEFAULT_MIN_LESION_ML = 0.1;

/** RANO: a lesion is measurable when both perpendicular diameters are at least 10 mm. */
export const RANO_MEASURABLE_MM = 10;
/** RANO sums the products of at most five target lesions. */
export const RANO_MAX_TARGETS = 5;

/** The description's regions: BraTS labels and their nested regions, or one binary region. */
export function describedRegions(kind: RegionKind): RegionDefinition[] {
  return kind === 'brats'
    ? [
        { name: 'NCR', labels: [1] },
        { name: 'ED', labels: [2] },
        { name: 'ET', labels: [4] },
        { name: 'TC', labels: [1, 4] },
        { name: 'WT', labels: [1, 2, 4] },
      ]
    : [{ name: 'WT', labels: null }];
}

const voxelVolumeMm3 = (g: Geometry): number => Math.abs(determinant(affineLPS(g)));

function determinant(a: number[]): number {
  return (
    a[0]! * (a[5]! * a[10]! - a[6]! * a[9]!) -
    a[1]! * (a[4]! * a[10]! - a[6]! * a[8]!) +
    a[2]! * (a[4]! * a[9]! - a[5]! * a[8]!)
  );
}

/** World coordinates (LPS mm) of voxel indices, as a flat xyz array. */
function worldPoints(indices: ArrayLike<number>, g: Geometry): Float64Array {
  const a = affineLPS(g);
  const [nx, ny] = g.dims;
  const out = new Float64Array(indices.length * 3);
  for (let n = 0; n < indices.length; n++) {
    const idx = indices[n]!;
    const k = Math.floor(idx / (nx * ny));
    const j = Math.floor((idx - k * nx * ny) / nx);
    const i = idx - k * nx * ny - j * nx;
    out[3 * n] = a[0]! * i + a[1]! * j + a[2]! * k + a[3]!;
    out[3 * n + 1] = a[4]! * i + a[5]! * j + a[6]! * k + a[7]!;
    out[3 * n + 2] = a[8]! * i + a[9]! * j + a[10]! * k + a[11]!;
  }
  return out;
}

/**
 * The voxels of a set that can be vertices of its convex hull: a voxel strictly between two others
 * on the same grid line is not one (the affine map keeps "between"), so only the first and last of
 * each line along every axis are kept. The farthest pair of a point set is a pair of hull vertices,
 * so this keeps the largest diameter exact while the search shrinks to a few thousand points.
 */
function hullCandidates(indices: ArrayLike<number>, dims: readonly number[], axes: readonly number[] = [0, 1, 2]): number[] {
  const [nx, ny] = dims as [number, number];
  const strides = [1, nx, nx * ny];
  const keep = new Map<number, number>();
  for (let n = 0; n < indices.length; n++) keep.set(indices[n]!, 0);
  for (const axis of axes) {
    const stride = strides[axis]!;
    const lo = new Map<number, number>();
    const hi = new Map<number, number>();
    for (const idx of keep.keys()) {
      const coord = Math.floor(idx / stride) % dims[axis]!;
      const line = idx - coord * stride;
      if (!(lo.get(line)! <= coord)) lo.set(line, coord);
      if (!(hi.get(line)! >= coord)) hi.set(line, coord);
    }
    for (const idx of [...keep.keys()]) {
      const coord = Math.floor(idx / stride) % dims[axis]!;
      const line = idx - coord * stride;
      if (coord !== lo.get(line) && coord !== hi.get(line)) keep.delete(idx);
    }
  }
  return [...keep.keys()];
}

/** The farthest pair of points (flat xyz) and its distance. */
function farthestPair(p: Float64Array): { d: number; a: number; b: number } {
  let best = 0;
  let a = 0;
  let b = 0;
  const n = p.length / 3;
  for (let i = 0; i < n; i++) {
    const x = p[3 * i]!;
    const y = p[3 * i + 1]!;
    const z = p[3 * i + 2]!;
    for (let j = i + 1; j < n; j++) {
      const dx = p[3 * j]! - x;
      const dy = p[3 * j + 1]! - y;
      const dz = p[3 * j + 2]! - z;
      const d = dx * dx + dy * dy + dz * dz;
      if (d > best) {
        best = d;
        a = i;
        b = j;
      }
    }
  }
  return { d: Math.sqrt(best), a, b };
}

const pointAt = (p: Float64Array, i: number): Vec3 => [p[3 * i]!, p[3 * i + 1]!, p[3 * i + 2]!];

/**
 * RANO's bidimensional measurement of one lesion's enhancing voxels: on each axial slice the
 * longest in-plane diameter; on the slice where it is largest, the longest diameter perpendicular
 * to it. Perpendicular means the two end points lie within half an in-plane voxel diagonal of a
 * line perpendicular to the long diameter, and the length counted is the component along that
 * line — so a voxelised chord is neither tilted nor lengthened by the tolerance.
 */
export function ranoOf(indices: readonly number[], g: Geometry): RanoMeasurement {
  const empty: RanoMeasurement = { slice: null, long_mm: 0, perp_mm: 0, product_mm2: 0, measurable: false };
  if (!indices.length) return empty;
  const [nx, ny] = g.dims;
  const plane = nx * ny;
  const bySlice = new Map<number, number[]>();
  for (const idx of indices) {
    const k = Math.floor(idx / plane);
    let list = bySlice.get(k);
    if (!list) bySlice.set(k, (list = []));
    list.push(idx);
  }
  let best: { k: number; d: number; a: Vec3; b: Vec3 } | undefined;
  for (const [k, list] of [...bySlice].sort((x, y) => x[0] - y[0])) {
    const pts = worldPoints(hullCandidates(list, g.dims, [0, 1]), g);
    const { d, a, b } = farthestPair(pts);
    if (!best || d > best.d + 1e-9) best = { k, d, a: pointAt(pts, a), b: pointAt(pts, b) };
  }
  const { k, d: long, a, b } = best!;
  if (long === 0) return { ...empty, slice: k, long_line_lps: [a, b], perp_line_lps: [a, b] };
  const u = [(b[0] - a[0]) / long, (b[1] - a[1]) / long, (b[2] - a[2]) / long];
  // the in-plane perpendicular: slice normal × u
  const dir = g.direction;
  const normal = [dir[2]!, dir[5]!, dir[8]!];
  const v = [normal[1]! * u[2]! - normal[2]! * u[1]!, normal[2]! * u[0]! - normal[0]! * u[2]!, normal[0]! * u[1]! - normal[1]! * u[0]!];
  const vn = Math.hypot(v[0]!, v[1]!, v[2]!);
  for (let c = 0; c < 3; c++) v[c]! /= vn;
  const tolerance = 0.5 * Math.hypot(g.spacing[0], g.spacing[1]);
  const slice = bySlice.get(k)!;
  const inSet = new Set(slice);
  // end points of the longest chord lie on the slice's in-plane boundary
  const boundary = slice.filter((idx) => {
    const i = idx % nx;
    const j = Math.floor(idx / nx) % ny;
    return i === 0 || j === 0 || i === nx - 1 || j === ny - 1 || !inSet.has(idx - 1) || !inSet.has(idx + 1) || !inSet.has(idx - nx) || !inSet.has(idx + nx);
  });
  const pts = worldPoints(boundary, g);
  const n = pts.length / 3;
  const along = new Float64Array(n);
  const across = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    along[i] = pts[3 * i]! * u[0]! + pts[3 * i + 1]! * u[1]! + pts[3 * i + 2]! * u[2]!;
    across[i] = pts[3 * i]! * v[0]! + pts[3 * i + 1]! * v[1]! + pts[3 * i + 2]! * v[2]!;
  }
  let perp = 0;
  let pa = 0;
  let pb = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (Math.abs(along[i]! - along[j]!) > tolerance) continue;
      const w = Math.abs(across[i]! - across[j]!);
      if (w > perp) {
        perp = w;
        pa = i;
        pb = j;
      }
    }
  }
  // draw the perpendicular at the mean position along the long axis, so the line is exactly perpendicular
  const p1 = pointAt(pts, pa);
  const p2 = pointAt(pts, pb);
  const shift = (along[pb]! - along[pa]!) / 2;
  const perpLine: [Vec3, Vec3] = [
    [p1[0] + shift * u[0]!, p1[1] + shift * u[1]!, p1[2] + shift * u[2]!],
    [p2[0] - shift * u[0]!, p2[1] - shift * u[1]!, p2[2] - shift * u[2]!],
  ];
  return {
    slice: k,
    long_mm: long,
    perp_mm: perp,
    product_mm2: long * perp,
    measurable: long >= RANO_MEASURABLE_MM && perp >= RANO_MEASURABLE_MM,
    long_line_lps: [a, b],
    perp_line_lps: perpLine,
  };
}

/** Largest distance between two voxel centres of a set (exact, see hullCandidates). */
export function maxDiameterMm(indices: readonly number[], g: Geometry): number {
  return farthestPair(worldPoints(hullCandidates(indices, g.dims), g)).d;
}

interface BoxedComponent {
  indices: number[];
  lo: Vec3;
  hi: Vec3;
}

/**
 * Smallest distances (mm) between the voxel centres of `a` and of each of `others`: one distance
 * transform of `a` on the bounding box of them all (exact: every feature and query voxel lies
 * inside), so n components cost n − 1 transforms, not n²/2.
 */
function gapsFrom(a: BoxedComponent, others: readonly BoxedComponent[], g: Geometry): number[] {
  if (!others.length) return [];
  const lo: number[] = [...a.lo];
  const hi: number[] = [...a.hi];
  for (const b of others)
    for (let c = 0; c < 3; c++) {
      lo[c] = Math.min(lo[c]!, b.lo[c]!);
      hi[c] = Math.max(hi[c]!, b.hi[c]!);
    }
  const shape = [hi[0]! - lo[0]! + 1, hi[1]! - lo[1]! + 1, hi[2]! - lo[2]! + 1];
  const [nx, ny] = g.dims;
  const local = (idx: number): number => {
    const k = Math.floor(idx / (nx * ny));
    const j = Math.floor(idx / nx) % ny;
    const i = idx % nx;
    return (k - lo[2]!) * shape[0]! * shape[1]! + (j - lo[1]!) * shape[0]! + (i - lo[0]!);
  };
  const feature = new Uint8Array(shape[0]! * shape[1]! * shape[2]!);
  for (const idx of a.indices) feature[local(idx)] = 1;
  const query = new Uint8Array(feature.length);
  for (const b of others) for (const idx of b.indices) query[local(idx)] = 1;
  const d2 = squaredDistanceTransform(feature, shape, g.spacing, query);
  return others.map((b) => {
    let best = Infinity;
    for (const idx of b.indices) best = Math.min(best, d2[local(idx)]!);
    return Math.sqrt(best);
  });
}

/**
 * The mid-sagittal plane from left–right symmetry of the images: the plane n·x = d (n near the
 * patient's left axis) that makes the brain most like its own mirror image, found by coordinate
 * descent over yaw, roll and offset from the sagittal plane through the brain's centroid. The
 * mismatch is the mean absolute difference of the intensities (each image scaled by its mean in the
 * brain) over a subsample of brain voxels, so a tumour on one side spoils only its own share.
 */
export function midSagittalPlane(images: { data: VoxelArray | Float32Array }[], g: Geometry): { normal: Vec3; offset: number } | undefined {
  const [nx, ny, nz] = g.dims;
  const n = nx * ny * nz;
  const sum = new Float32Array(n);
  for (const image of images) {
    if (image.data.length !== n) continue;
    let total = 0;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const v = image.data[i]!;
      if (v > 0) {
        total += v;
        count++;
      }
    }
    if (!count) continue;
    const scale = count / total;
    for (let i = 0; i < n; i++) sum[i]! += Math.max(0, image.data[i]!) * scale;
  }
  let max = 0;
  for (let i = 0; i < n; i++) if (sum[i]! > max) max = sum[i]!;
  if (!(max > 0)) return undefined;
  // brain voxels: above a tenth of the strongest; skull-stripped BraTS images are 0 outside
  const threshold = 0.1 * max;
  const a = affineLPS(g);
  const step = Math.max(1, Math.round(Math.cbrt(n / 40000)));
  const samples: number[] = [];
  let cx = 0;
  let cy = 0;
  let cz = 0;
  for (let k = 0; k < nz; k += step)
    for (let j = 0; j < ny; j += step)
      for (let i = 0; i < nx; i += step) {
        const idx = k * nx * ny + j * nx + i;
        if (sum[idx]! <= threshold) continue;
        const w = indexToWorldFast(a, i, j, k);
        samples.push(w[0], w[1], w[2], sum[idx]!);
        cx += w[0];
        cy += w[1];
        cz += w[2];
      }
  const count = samples.length / 4;
  if (count < 50) return undefined;
  const centroid = [cx / count, cy / count, cz / count];
  const inv = worldToIndexMatrix(g);
  const sample = (x: number, y: number, z: number): number => {
    const fi = inv[0]! * x + inv[1]! * y + inv[2]! * z + inv[3]!;
    const fj = inv[4]! * x + inv[5]! * y + inv[6]! * z + inv[7]!;
    const fk = inv[8]! * x + inv[9]! * y + inv[10]! * z + inv[11]!;
    const i0 = Math.floor(fi);
    const j0 = Math.floor(fj);
    const k0 = Math.floor(fk);
    if (i0 < 0 || j0 < 0 || k0 < 0 || i0 >= nx - 1 || j0 >= ny - 1 || k0 >= nz - 1) return 0;
    const ti = fi - i0;
    const tj = fj - j0;
    const tk = fk - k0;
    const base = k0 * nx * ny + j0 * nx + i0;
    const at = (o: number): number => sum[base + o]!;
    const c00 = at(0) * (1 - ti) + at(1) * ti;
    const c10 = at(nx) * (1 - ti) + at(nx + 1) * ti;
    const c01 = at(nx * ny) * (1 - ti) + at(nx * ny + 1) * ti;
    const c11 = at(nx * ny + nx) * (1 - ti) + at(nx * ny + nx + 1) * ti;
    return (c00 * (1 - tj) + c10 * tj) * (1 - tk) + (c01 * (1 - tj) + c11 * tj) * tk;
  };
  const normalOf = (yaw: number, roll: number): Vec3 => {
    // the left axis turned about the superior axis (yaw) and the posterior axis (roll)
    const x = Math.cos(yaw) * Math.cos(roll);
    return [x, Math.sin(yaw) * Math.cos(roll), Math.sin(roll)];
  };
  const cost = (yaw: number, roll: number, offset: number): number => {
    const nrm = normalOf(yaw, roll);
    const d = nrm[0] * centroid[0]! + nrm[1] * centroid[1]! + nrm[2] * centroid[2]! + offset;
    let total = 0;
    for (let s = 0; s < samples.length; s += 4) {
      const x = samples[s]!;
      const y = samples[s + 1]!;
      const z = samples[s + 2]!;
      const t = 2 * (nrm[0] * x + nrm[1] * y + nrm[2] * z - d);
      total += Math.abs(samples[s + 3]! - sample(x - t * nrm[0], y - t * nrm[1], z - t * nrm[2]));
    }
    return total / count;
  };
  const p = [0, 0, 0];
  let current = cost(0, 0, 0);
  const steps = [4 * (Math.PI / 180), 4];
  for (let round = 0; round < 7; round++) {
    const angleStep = steps[0]! / 2 ** round;
    const offsetStep = steps[1]! / 2 ** round;
    let improved = true;
    while (improved) {
      improved = false;
      for (let c = 0; c < 3; c++) {
        const h = c < 2 ? angleStep : offsetStep;
        for (const sign of [1, -1]) {
          const q = [...p];
          q[c]! += sign * h;
          if (Math.abs(q[0]!) > 0.35 || Math.abs(q[1]!) > 0.35) continue;
          const value = cost(q[0]!, q[1]!, q[2]!);
          if (value < current - 1e-12) {
            current = value;
            p[c] = q[c]!;
            improved = true;
            break;
          }
        }
      }
    }
  }
  const normal = normalOf(p[0]!, p[1]!);
  return { normal, offset: normal[0] * centroid[0]! + normal[1] * centroid[1]! + normal[2] * centroid[2]! + p[2]! };
}

function indexToWorldFast(a: number[], i: number, j: number, k: number): Vec3 {
  return [a[0]! * i + a[1]! * j + a[2]! * k + a[3]!, a[4]! * i + a[5]! * j + a[6]! * k + a[7]!, a[8]! * i + a[9]! * j + a[10]! * k + a[11]!];
}

/** The sagittal plane of the patient axes through the centre of the grid (LPS x = centre). */
function patientAxesPlane(g: Geometry): { normal: Vec3; offset: number } {
  const centre = indexToWorld(g, (g.dims[0] - 1) / 2, (g.dims[1] - 1) / 2, (g.dims[2] - 1) / 2);
  return { normal: [1, 0, 0], offset: centre[0] };
}

/** Voxels within this distance (mm) of the plane count half to each side and never as crossing. */
const MIDLINE_BAND_MM = 1;

/** The tumour description of a label map on grid `g` (see the module comment). */
export function describeTumour(labels: Uint8Array | ArrayLike<number>, g: Geometry, kind: RegionKind, options: DescribeOptions = {}): TumourDescription {
  const minMl = options.minLesionMl ?? DEFAULT_MIN_LESION_ML;
  const mergeMm = options.fociMergeMm ?? 5;
  const [nx, ny, nz] = g.dims;
  const n = nx * ny * nz;
  if (labels.length !== n) throw new Error(`label map has ${labels.length} voxels, the grid ${nx}×${ny}×${nz} needs ${n}`);
  const voxelMl = voxelVolumeMm3(g) / 1000;

  const regions: Record<string, RegionVolume> = {};
  for (const region of describedRegions(kind)) {
    const table = regionLookup(region);
    let voxels = 0;
    for (let i = 0; i < n; i++) voxels += table[labels[i]!]!;
    regions[region.name] = { volume_ml: voxels * voxelMl, voxels };
  }

  const wt = regionLookup({ name: 'WT', labels: kind === 'brats' ? [1, 2, 4] : null });
  const { labels: cc, sizes } = connectedComponents(labels, g.dims, 26, (v) => wt[v] === 1);
  const minVoxels = minMl / voxelMl;
  const kept = new Map<number, BoxedComponent>();
  sizes.forEach((size, i) => {
    if (size >= minVoxels - 1e-9) kept.set(i + 1, { indices: [], lo: [nx, ny, nz], hi: [-1, -1, -1] });
  });
  for (let idx = 0; idx < n; idx++) {
    const c = cc[idx]!;
    if (!c) continue;
    const comp = kept.get(c);
    if (!comp) continue;
    comp.indices.push(idx);
    const ijk = [idx % nx, Math.floor(idx / nx) % ny, Math.floor(idx / (nx * ny))];
    for (let a = 0; a < 3; a++) {
      if (ijk[a]! < comp.lo[a]!) comp.lo[a] = ijk[a]!;
      if (ijk[a]! > comp.hi[a]!) comp.hi[a] = ijk[a]!;
    }
  }
  const components = [...kept.values()].sort((a, b) => b.indices.length - a.indices.length);

  // the RANO measurement is of the enhancing part; a binary mask has none, so its whole lesion is measured
  const rano = kind === 'brats' ? regionLookup({ name: 'ET', labels: [4] }) : wt;
  const lesions: Lesion[] = components.map((comp) => {
    let si = 0;
    let sj = 0;
    let sk = 0;
    const enhancing: number[] = [];
    for (const idx of comp.indices) {
      si += idx % nx;
      sj += Math.floor(idx / nx) % ny;
      sk += Math.floor(idx / (nx * ny));
      if (rano[labels[idx]!]) enhancing.push(idx);
    }
    const m = comp.indices.length;
    return {
      volume_ml: m * voxelMl,
      voxels: m,
      centroid_lps: indexToWorld(g, si / m, sj / m, sk / m),
      max_diameter_mm: maxDiameterMm(comp.indices, g),
      et_volume_ml: kind === 'brats' ? enhancing.length * voxelMl : 0,
      rano: ranoOf(enhancing, g),
    };
  });

  const targets = lesions.filter((l) => l.rano.measurable).sort((a, b) => b.rano.product_mm2 - a.rano.product_mm2);
  const sumProducts = targets.slice(0, RANO_MAX_TARGETS).reduce((s, l) => s + l.rano.product_mm2, 0);

  // foci: single linkage of the components closer than mergeMm; the distance reported between
  // foci is the largest of their edge-to-edge gaps
  const count = components.length;
  const gap: number[][] = components.map(() => new Array<number>(count).fill(0));
  for (let a = 0; a < count; a++) {
    const gaps = gapsFrom(components[a]!, components.slice(a + 1), g);
    gaps.forEach((d, n) => (gap[a]![a + 1 + n] = gap[a + 1 + n]![a] = d));
  }
  const parent = components.map((_, i) => i);
  const root = (i: number): number => (parent[i] === i ? i : (parent[i] = root(parent[i]!)));
  for (let a = 0; a < count; a++) for (let b = a + 1; b < count; b++) if (gap[a]![b]! < mergeMm) parent[root(a)] = root(b);
  const groups = [...new Set(components.map((_, i) => root(i)))];
  let largest = 0;
  for (let x = 0; x < groups.length; x++)
    for (let y = x + 1; y < groups.length; y++) {
      let d = Infinity;
      for (let a = 0; a < count; a++)
        for (let b = 0; b < count; b++) if (root(a) === groups[x] && root(b) === groups[y]) d = Math.min(d, gap[a]![b]!);
      largest = Math.max(largest, d);
    }

  const fitted = options.images?.length ? midSagittalPlane(options.images, g) : undefined;
  const plane = fitted ?? patientAxesPlane(g);
  let left = 0;
  let right = 0;
  let crosses = false;
  for (const comp of components) {
    const pts = worldPoints(comp.indices, g);
    let farLeft = false;
    let farRight = false;
    for (let i = 0; i < comp.indices.length; i++) {
      const s = plane.normal[0] * pts[3 * i]! + plane.normal[1] * pts[3 * i + 1]! + plane.normal[2] * pts[3 * i + 2]! - plane.offset;
      if (s > MIDLINE_BAND_MM) {
        left++;
        farLeft = true;
      } else if (s < -MIDLINE_BAND_MM) {
        right++;
        farRight = true;
      } else {
        left += 0.5;
        right += 0.5;
      }
    }
    if (farLeft && farRight) crosses = true;
  }
  const total = left + right;
  return {
    kind,
    regions,
    lesions,
    rano_sum_products_mm2: sumProducts,
    measurable_lesions: targets.length,
    multifocal: { foci: groups.length, largest_distance_mm: largest },
    laterality: {
      left_pct: total ? (100 * left) / total : 0,
      right_pct: total ? (100 * right) / total : 0,
      crosses_midline: crosses,
      method: fitted ? 'image-symmetry' : 'patient-axes',
      plane: { normal: plane.normal, offset_mm: plane.offset },
    },
  };
}
