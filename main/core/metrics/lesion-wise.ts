/**
 * BraTS 2023 lesion-wise Dice and HD95, as the challenge's published metrics code
 * (rachitsaluja/BraTS-2023-Metrics, get_LesionWiseScores / get_LesionWiseResults) defines them:
 * 1. the ground truth of a region is dilated `dilation` times with the 18-connected structure
 *    (scipy generate_binary_structure(3, 2)); every ground-truth voxel takes the number of the
 *    26-connected component of the dilated mask it lies in, so lesions a few voxels apart are one;
 * 2. each such lesion is dilated again the same way, and the predicted 26-connected components
 *    touching the dilated lesion are its match; Dice and HD95 are of the lesion against the union
 *    of its matched components (a lesion nothing matched scores Dice 0 and HD95 374);
 * 3. lesions whose volume (voxels × voxel volume, mm³) is not above `threshold` are left out;
 *    every predicted component matched by no lesion is a false positive scoring Dice 0, HD95 374;
 * 4. the score is the mean over the kept lesions and the false positives; with neither (e.g. both
 *    masks empty) it is Dice 1, HD95 0.
 * HD95 is this code base's MedPy definition (distance.ts), computed on the bounding box of the pair.
 */
import { connectedComponents } from './components.ts';
import { hd95OfMasks } from './distance.ts';
import { regionLookup, type RegionDefinition } from './regions.ts';

/** The HD95 BraTS 2023 gives a missed lesion or a false positive (mm). */
export const LESION_WISE_MISS_HD95 = 374;

/** BraTS-GLI 2023's dilation iterations and ground-truth volume threshold (mm³). */
export const LESION_WISE_DEFAULTS = Object.freeze({ dilation: 3, threshold: 50 });

export interface LesionWiseOptions {
  /** dilation iterations (default 3, BraTS-GLI) */
  dilation?: number;
  /** ground-truth lesions of at most this volume (mm³) are left out (default 50, BraTS-GLI) */
  threshold?: number;
}

export interface LesionMatch {
  /** number of the ground-truth lesion (after combining by dilation) */
  gt_lesion: number;
  gt_voxels: number;
  gt_volume_mm3: number;
  /** predicted component numbers matched to it */
  predicted: number[];
  dice: number;
  hd95: number;
  /** false when at or below the volume threshold */
  counted: boolean;
}

export interface LesionWiseRegion {
  dice: number;
  hd95: number;
  /** counted ground-truth lesions with a match */
  tp: number;
  fp: number;
  /** counted ground-truth lesions without a match */
  fn: number;
  lesions: LesionMatch[];
}

/** scipy.ndimage.binary_dilation with generate_binary_structure(3, 2), border value 0, `iterations` times. */
export function dilate18(mask: Uint8Array, dims: readonly number[], iterations: number): Uint8Array {
  const [nx, ny, nz] = dims as [number, number, number];
  let current = mask;
  const offsets: number[][] = [];
  for (let dz = -1; dz <= 1; dz++)
    for (let dy = -1; dy <= 1; dy++)
      for (let dx = -1; dx <= 1; dx++) if (Math.abs(dx) + Math.abs(dy) + Math.abs(dz) <= 2) offsets.push([dx, dy, dz]);
  for (let it = 0; it < iterations; it++) {
    const next = new Uint8Array(current.length);
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++) {
          const i = z * nx * ny + y * nx + x;
          if (!current[i]) continue;
          for (const [dx, dy, dz] of offsets) {
            const xx = x + dx!;
            const yy = y + dy!;
            const zz = z + dz!;
            if (xx < 0 || yy < 0 || zz < 0 || xx >= nx || yy >= ny || zz >= nz) continue;
            next[zz * nx * ny + yy * nx + xx] = 1;
          }
        }
    current = next;
  }
  return current === mask ? mask.slice() : current;
}

interface Box {
  lo: number[];
  hi: number[];
}

/** Copies `mask`'s voxels inside `box` (exclusive upper corner) to a box-shaped array. */
function crop(mask: Uint8Array, dims: readonly number[], box: Box): Uint8Array {
  const [nx, ny] = dims as [number, number];
  const sx = box.hi[0]! - box.lo[0]!;
  const sy = box.hi[1]! - box.lo[1]!;
  const sz = box.hi[2]! - box.lo[2]!;
  const out = new Uint8Array(sx * sy * sz);
  for (let z = 0; z < sz; z++)
    for (let y = 0; y < sy; y++) {
      const from = (z + box.lo[2]!) * nx * ny + (y + box.lo[1]!) * nx + box.lo[0]!;
      out.set(mask.subarray(from, from + sx), z * sx * sy + y * sx);
    }
  return out;
}

function boxOf(masks: Uint8Array[], dims: readonly number[]): Box | undefined {
  const [nx, ny] = dims as [number, number];
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-1, -1, -1];
  for (const mask of masks)
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      const c = [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
      for (let a = 0; a < 3; a++) {
        if (c[a]! < lo[a]!) lo[a] = c[a]!;
        if (c[a]! > hi[a]!) hi[a] = c[a]!;
      }
    }
  if (hi[0]! < 0) return undefined;
  return { lo, hi: hi.map((v) => v + 1) };
}

/**
 * Dilates within the mask's bounding box grown by the dilation reach: identical to dilating the
 * whole grid (the box is clipped to the grid, where scipy's border value 0 applies anyway).
 */
function dilateInBox(mask: Uint8Array, dims: readonly number[], iterations: number): Uint8Array {
  const box = boxOf([mask], dims);
  if (!box || iterations <= 0) return mask.slice();
  const grown: Box = {
    lo: box.lo.map((v) => Math.max(0, v - iterations)),
    hi: box.hi.map((v, a) => Math.min(dims[a]!, v + iterations)),
  };
  const shape = grown.hi.map((v, a) => v - grown.lo[a]!);
  const local = dilate18(crop(mask, dims, grown), shape, iterations);
  const out = new Uint8Array(mask.length);
  const [nx, ny] = dims as [number, number];
  for (let z = 0; z < shape[2]!; z++)
    for (let y = 0; y < shape[1]!; y++) {
      const to = (z + grown.lo[2]!) * nx * ny + (y + grown.lo[1]!) * nx + grown.lo[0]!;
      out.set(local.subarray(z * shape[0]! * shape[1]! + y * shape[0]!, z * shape[0]! * shape[1]! + (y + 1) * shape[0]!), to);
    }
  return out;
}

/** Lesion-wise scores of one region (see the module comment). */
export function lesionWiseRegion(
  pred: Uint8Array,
  gt: Uint8Array,
  dims: readonly number[],
  spacing: readonly number[],
  region: RegionDefinition,
  options: LesionWiseOptions = {},
): LesionWiseRegion {
  const dilation = options.dilation ?? LESION_WISE_DEFAULTS.dilation;
  const threshold = options.threshold ?? LESION_WISE_DEFAULTS.threshold;
  const table = regionLookup(region);
  const n = gt.length;
  const gtMask = new Uint8Array(n);
  const predMask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    gtMask[i] = table[gt[i]!]!;
    predMask[i] = table[pred[i]!]!;
  }
  const voxelMm3 = spacing[0]! * spacing[1]! * spacing[2]!;
  const predCc = connectedComponents(predMask, dims, 26);
  const dilatedCc = connectedComponents(dilateInBox(gtMask, dims, dilation), dims, 26);
  // ground-truth voxels numbered by the dilated component they lie in
  const lesionOf = new Int32Array(n);
  let lesionCount = 0;
  for (let i = 0; i < n; i++) if (gtMask[i]) lesionOf[i] = dilatedCc.labels[i]!;
  lesionCount = dilatedCc.sizes.length;

  const [nx, ny] = dims as [number, number];
  const coords = (i: number): number[] => [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
  // voxel lists and bounding boxes, so each lesion's work stays in its own neighbourhood
  const gather = (labels: Int32Array, count: number, keep: (i: number) => boolean): { voxels: number[][]; box: Box[] } => {
    const voxels: number[][] = Array.from({ length: count }, () => []);
    const box: Box[] = Array.from({ length: count }, () => ({ lo: [Infinity, Infinity, Infinity], hi: [-1, -1, -1] }));
    for (let i = 0; i < n; i++) {
      const c = labels[i]!;
      if (!c || !keep(i)) continue;
      voxels[c - 1]!.push(i);
      const b = box[c - 1]!;
      const xyz = coords(i);
      for (let a = 0; a < 3; a++) {
        if (xyz[a]! < b.lo[a]!) b.lo[a] = xyz[a]!;
        if (xyz[a]! + 1 > b.hi[a]!) b.hi[a] = xyz[a]! + 1;
      }
    }
    return { voxels, box };
  };
  const gtLesions = gather(lesionOf, lesionCount, () => true);
  const predComps = gather(predCc.labels, predCc.sizes.length, () => true);
  const union = (boxes: Box[]): Box => ({
    lo: [0, 1, 2].map((a) => Math.min(...boxes.map((b) => b.lo[a]!))),
    hi: [0, 1, 2].map((a) => Math.max(...boxes.map((b) => b.hi[a]!))),
  });
  const toLocal = (i: number, box: Box): number => {
    const [x, y, z] = coords(i) as [number, number, number];
    const sx = box.hi[0]! - box.lo[0]!;
    const sy = box.hi[1]! - box.lo[1]!;
    return (z - box.lo[2]!) * sx * sy + (y - box.lo[1]!) * sx + (x - box.lo[0]!);
  };
  const shapeOf = (box: Box): number[] => box.hi.map((v, a) => v - box.lo[a]!);

  const matchedAll = new Set<number>();
  const lesions: LesionMatch[] = [];
  for (let id = 1; id <= lesionCount; id++) {
    const own = gtLesions.voxels[id - 1]!;
    if (!own.length) continue;
    const box = gtLesions.box[id - 1]!;
    const reachBox: Box = { lo: box.lo.map((v) => Math.max(0, v - dilation)), hi: box.hi.map((v, a) => Math.min(dims[a]!, v + dilation)) };
    const reachShape = shapeOf(reachBox);
    const local = new Uint8Array(reachShape[0]! * reachShape[1]! * reachShape[2]!);
    for (const i of own) local[toLocal(i, reachBox)] = 1;
    const reach = dilate18(local, reachShape, dilation);
    const matched = new Set<number>();
    for (let z = 0; z < reachShape[2]!; z++)
      for (let y = 0; y < reachShape[1]!; y++)
        for (let x = 0; x < reachShape[0]!; x++) {
          if (!reach[(z * reachShape[1]! + y) * reachShape[0]! + x]) continue;
          const c = predCc.labels[(z + reachBox.lo[2]!) * nx * ny + (y + reachBox.lo[1]!) * nx + x + reachBox.lo[0]!]!;
          if (c) matched.add(c);
        }
    for (const c of matched) matchedAll.add(c);
    const ids = [...matched].sort((a, b) => a - b);
    let dice = 0;
    let hd95 = LESION_WISE_MISS_HD95;
    if (ids.length) {
      const pairBox = union([box, ...ids.map((c) => predComps.box[c - 1]!)]);
      const shape = shapeOf(pairBox);
      const a = new Uint8Array(shape[0]! * shape[1]! * shape[2]!);
      const b = new Uint8Array(a.length);
      for (const i of own) a[toLocal(i, pairBox)] = 1;
      let predVoxels = 0;
      for (const c of ids) for (const i of predComps.voxels[c - 1]!) {
        b[toLocal(i, pairBox)] = 1;
        predVoxels++;
      }
      let overlap = 0;
      for (let i = 0; i < a.length; i++) overlap += a[i]! & b[i]!;
      dice = (2 * overlap) / (own.length + predVoxels);
      hd95 = hd95OfMasks(a, b, shape, spacing);
    }
    const volume = own.length * voxelMm3;
    lesions.push({ gt_lesion: id, gt_voxels: own.length, gt_volume_mm3: volume, predicted: ids, dice, hd95, counted: volume > threshold });
  }
  const fp = predCc.sizes.length - matchedAll.size;
  const counted = lesions.filter((l) => l.counted);
  const denominator = counted.length + fp;
  return {
    dice: denominator ? counted.reduce((s, l) => s + l.dice, 0) / denominator : 1,
    hd95: denominator ? (counted.reduce((s, l) => s + l.hd95, 0) + fp * LESION_WISE_MISS_HD95) / denominator : 0,
    tp: counted.filter((l) => l.predicted.length > 0).length,
    fp,
    fn: counted.filter((l) => l.predicted.length === 0).length,
    lesions,
  };
}

/** Lesion-wise scores of every region. */
export function lesionWise(
  pred: Uint8Array,
  gt: Uint8Array,
  dims: readonly number[],
  spacing: readonly number[],
  regions: readonly RegionDefinition[],
  options: LesionWiseOptions = {},
): Record<string, LesionWiseRegion> {
  const out: Record<string, LesionWiseRegion> = {};
  for (const region of regions) out[region.name] = lesionWiseRegion(pred, gt, dims, spacing, region, options);
  return out;
}
