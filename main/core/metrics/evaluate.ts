/**
 * Segmentation metrics per region, for a whole volume (3D) or one axial slice (2D).
 *
 * Overlap figures come from the confusion counts over the whole image:
 *   Dice = 2TP / (2TP + FP + FN), IoU = TP / (TP + FP + FN),
 *   sensitivity = TP / (TP + FN), specificity = TN / (TN + FP).
 * Empty rules (BraTS evaluation): a 0/0 ratio is 1 (nothing to find and nothing found is a
 * perfect score). So both masks empty → Dice, IoU, sensitivity, specificity 1 and HD95 0; exactly
 * one empty → Dice 0, IoU 0, sensitivity 0 when only the ground truth has voxels and 1 when only
 * the prediction has (no positives to miss), specificity by formula, and HD95 = the image diagonal
 * √Σ(dim·spacing)² (373.13 mm on the 240×240×155 1 mm BraTS grid).
 * HD95 is MedPy's (see distance.ts).
 */
import { hd95OfMasks, imageDiagonal } from './distance.ts';
import { regionLookup, type RegionDefinition } from './regions.ts';

export interface ConfusionCounts {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface RegionMetrics extends ConfusionCounts {
  dice: number;
  iou: number;
  sensitivity: number;
  specificity: number;
  /** mm; NaN when not computed (overlap-only slice metrics) */
  hd95: number;
  /** predicted volume, millilitres */
  volumeMl: number;
  /** ground-truth volume, millilitres */
  gtVolumeMl: number;
}

export type RegionResults = Record<string, RegionMetrics>;

export interface EvaluateOptions {
  /** compute HD95 (default true); overlap figures alone are a single counting pass */
  hd95?: boolean;
}

const ratio = (num: number, den: number): number => (den === 0 ? 1 : num / den);

export function overlapFromCounts(c: ConfusionCounts): Pick<RegionMetrics, 'dice' | 'iou' | 'sensitivity' | 'specificity'> {
  return {
    dice: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
    iou: ratio(c.tp, c.tp + c.fp + c.fn),
    sensitivity: ratio(c.tp, c.tp + c.fn),
    specificity: ratio(c.tn, c.tn + c.fp),
  };
}

interface Box {
  lo: number[];
  hi: number[];
}

/**
 * Confusion counts and bounding boxes (of the region in either map) of up to 6 regions in one
 * pass: each label maps to a bit set of the regions it belongs to, and the pair (prediction bits,
 * ground-truth bits) indexes a 4^R-bin histogram. Box updates only happen on voxels that belong
 * to some region, a small part of an image.
 */
function scanRegions(pred: Uint8Array, gt: Uint8Array, dims: readonly number[], luts: readonly Uint8Array[]): { counts: ConfusionCounts[]; boxes: (Box | null)[] } {
  const r = luts.length;
  const bits = new Uint8Array(256);
  for (let k = 0; k < r; k++) for (let label = 0; label < 256; label++) if (luts[k]![label]) bits[label]! |= 1 << k;
  const hist = new Float64Array(1 << (2 * r));
  const nx = dims[0]!;
  const ny = dims[1]!;
  const nz = dims.length > 2 ? dims[2]! : 1;
  // per region: x0, x1, y0, y1, z0, z1 (inclusive), empty while x1 < x0
  const box = new Int32Array(6 * r);
  for (let k = 0; k < r; k++) box.set([nx, -1, ny, -1, nz, -1], 6 * k);
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        const pb = bits[pred[i]!]!;
        const gb = bits[gt[i]!]!;
        hist[(pb << r) | gb]!++;
        let any = pb | gb;
        while (any) {
          const k = 31 - Math.clz32(any);
          any &= ~(1 << k);
          const o = 6 * k;
          if (x < box[o]!) box[o] = x;
          if (x > box[o + 1]!) box[o + 1] = x;
          if (y < box[o + 2]!) box[o + 2] = y;
          if (y > box[o + 3]!) box[o + 3] = y;
          if (z < box[o + 4]!) box[o + 4] = z;
          if (z > box[o + 5]!) box[o + 5] = z;
        }
      }
    }
  }
  const counts: ConfusionCounts[] = [];
  const boxes: (Box | null)[] = [];
  for (let k = 0; k < r; k++) {
    const c: ConfusionCounts = { tp: 0, fp: 0, fn: 0, tn: 0 };
    for (let b = 0; b < hist.length; b++) {
      const n = hist[b]!;
      if (n === 0) continue;
      const inP = (b >> (r + k)) & 1;
      const inG = (b >> k) & 1;
      if (inP && inG) c.tp += n;
      else if (inP) c.fp += n;
      else if (inG) c.fn += n;
      else c.tn += n;
    }
    counts.push(c);
    const o = 6 * k;
    if (box[o + 1]! < 0) boxes.push(null);
    else {
      const lo = [box[o]!, box[o + 2]!, box[o + 4]!];
      const hi = [box[o + 1]! + 1, box[o + 3]! + 1, box[o + 5]! + 1];
      boxes.push(dims.length > 2 ? { lo, hi } : { lo: lo.slice(0, 2), hi: hi.slice(0, 2) });
    }
  }
  return { counts, boxes };
}

function scanAllRegions(pred: Uint8Array, gt: Uint8Array, dims: readonly number[], luts: readonly Uint8Array[]): { counts: ConfusionCounts[]; boxes: (Box | null)[] } {
  const counts: ConfusionCounts[] = [];
  const boxes: (Box | null)[] = [];
  for (let k = 0; k < luts.length; k += 6) {
    const part = scanRegions(pred, gt, dims, luts.slice(k, k + 6));
    counts.push(...part.counts);
    boxes.push(...part.boxes);
  }
  return { counts, boxes };
}

function cropMask(data: Uint8Array, dims: readonly number[], box: Box, lut: Uint8Array): Uint8Array {
  const nx = dims[0]!;
  const ny = dims[1]!;
  const [x0, y0, z0 = 0] = box.lo as [number, number, number?];
  const [x1, y1, z1 = 1] = box.hi as [number, number, number?];
  const cx = x1 - x0;
  const out = new Uint8Array(cx * (y1 - y0) * (z1 - z0));
  let at = 0;
  for (let z = z0; z < z1; z++) {
    for (let y = y0; y < y1; y++) {
      const row = (z * ny + y) * nx;
      for (let x = x0; x < x1; x++) out[at++] = lut[data[row + x]!]!;
    }
  }
  return out;
}

function checkInputs(pred: Uint8Array, gt: Uint8Array, dims: readonly number[], spacing: readonly number[]): void {
  const n = dims.reduce((a, b) => a * b, 1);
  if (pred.length !== n || gt.length !== n) {
    throw new RangeError(`masks have ${pred.length} and ${gt.length} voxels, dims ${dims.join('×')} need ${n}`);
  }
  if (spacing.length < dims.length || spacing.some((s) => !(s > 0) || !Number.isFinite(s))) {
    throw new RangeError(`spacing ${spacing.join('×')} must give a positive finite value per axis`);
  }
}

/**
 * Metrics of every region on a grid of 2 or 3 dimensions (x fastest). `voxelMm3` converts voxel
 * counts to volume.
 */
function evaluateGrid(
  pred: Uint8Array,
  gt: Uint8Array,
  dims: readonly number[],
  spacing: readonly number[],
  voxelMm3: number,
  regions: readonly RegionDefinition[],
  options: EvaluateOptions,
): RegionResults {
  const luts = regions.map(regionLookup);
  const { counts: allCounts, boxes } = scanAllRegions(pred, gt, dims, luts);
  const results: RegionResults = {};
  for (let k = 0; k < regions.length; k++) {
    const region = regions[k]!;
    const lut = luts[k]!;
    const counts = allCounts[k]!;
    const predCount = counts.tp + counts.fp;
    const gtCount = counts.tp + counts.fn;
    let hd95 = NaN;
    if (options.hd95 !== false) {
      if (predCount === 0 && gtCount === 0) hd95 = 0;
      else if (predCount === 0 || gtCount === 0) hd95 = imageDiagonal(dims, spacing);
      else {
        const box = boxes[k]!;
        const shape = box.hi.map((h, i) => h - box.lo[i]!);
        hd95 = hd95OfMasks(cropMask(pred, dims, box, lut), cropMask(gt, dims, box, lut), shape, spacing.slice(0, dims.length));
      }
    }
    results[region.name] = {
      ...overlapFromCounts(counts),
      hd95,
      volumeMl: (predCount * voxelMm3) / 1000,
      gtVolumeMl: (gtCount * voxelMm3) / 1000,
      ...counts,
    };
  }
  return results;
}

/**
 * 3D metrics of a predicted label map against the ground truth, per region.
 * `dims` = [nx, ny, nz] (x fastest), `spacing` in mm.
 */
export function evaluateVolume(
  pred: Uint8Array,
  gt: Uint8Array,
  dims: readonly [number, number, number],
  spacing: readonly [number, number, number],
  regions: readonly RegionDefinition[],
  options: EvaluateOptions = {},
): RegionResults {
  checkInputs(pred, gt, dims, spacing);
  return evaluateGrid(pred, gt, dims, spacing, spacing[0] * spacing[1] * spacing[2], regions, options);
}

/**
 * 2D metrics of one axial slice, per region: distances use the in-plane spacing [sx, sy]
 * (4-connected surface, diagonal of the slice for the one-empty rule); `volumeMl` is the slab
 * volume with the slice thickness spacing[2].
 */
export function evaluateSlice(
  predSlice: Uint8Array,
  gtSlice: Uint8Array,
  dimsXY: readonly [number, number],
  spacing: readonly [number, number, number],
  regions: readonly RegionDefinition[],
  options: EvaluateOptions = {},
): RegionResults {
  checkInputs(predSlice, gtSlice, dimsXY, spacing);
  return evaluateGrid(predSlice, gtSlice, dimsXY, spacing.slice(0, 2), spacing[0] * spacing[1] * spacing[2], regions, options);
}

/** Metrics of every axial slice of a volume (slice k is the k-th x-y plane). */
export function evaluateSlices(
  pred: Uint8Array,
  gt: Uint8Array,
  dims: readonly [number, number, number],
  spacing: readonly [number, number, number],
  regions: readonly RegionDefinition[],
  options: EvaluateOptions = {},
): RegionResults[] {
  checkInputs(pred, gt, dims, spacing);
  const n = dims[0] * dims[1];
  const out: RegionResults[] = [];
  for (let k = 0; k < dims[2]; k++) {
    out.push(evaluateSlice(pred.subarray(k * n, (k + 1) * n), gt.subarray(k * n, (k + 1) * n), [dims[0], dims[1]], spacing, regions, options));
  }
  return out;
}

/**
 * Dice and IoU of one slice as the official SAM2-UNet evaluation (eval.py → py_sod_metrics
 * FmeasureV2, DICEHandler/IOUHandler "dynamic", then mean) scores an image: the prediction map
 * (here a binary mask stored as 0/255) is binarised at the 256 thresholds t = 0…255 with
 * `pred >= t`, each binarisation is scored with 0/0 → 0, and the 256 scores are averaged. For a
 * binary mask t = 1…255 all give the mask itself and t = 0 marks every pixel positive, so the
 * score is (255 · score(mask) + score(all pixels)) / 256.
 */
export function officialSliceScores(c: ConfusionCounts): { dice: number; iou: number } {
  const div0 = (num: number, den: number): number => (den === 0 ? 0 : num / den);
  const fg = c.tp + c.fn;
  const all = c.tp + c.fp + c.fn + c.tn;
  const diceMask = div0(2 * c.tp, 2 * c.tp + c.fp + c.fn);
  const diceAll = div0(2 * fg, fg + all);
  const iouMask = div0(c.tp, c.tp + c.fp + c.fn);
  const iouAll = div0(fg, all);
  return { dice: (255 * diceMask + diceAll) / 256, iou: (255 * iouMask + iouAll) / 256 };
}

export interface RegionSummary {
  /** mean of the per-slice Dice (empty rules above) over all slices */
  meanSliceDice: number;
  /** mean of the per-slice IoU over all slices */
  meanSliceIoU: number;
  /**
   * mDice / mIoU as the official SAM2-UNet evaluation computes them (officialSliceScores),
   * averaged over the slices whose ground truth has this region: the official test sets only
   * hold images that contain an object, and py_sod_metrics would score every slice without one
   * as 0 whatever the prediction.
   */
  mDice: number;
  mIoU: number;
  /** slices that entered mDice / mIoU */
  mDiceSlices: number;
  slices: number;
}

/** Per-region means over per-slice results (as produced by evaluateSlices/evaluateSlice). */
export function summarise(perSlice: readonly RegionResults[], regions: readonly RegionDefinition[]): Record<string, RegionSummary> {
  const out: Record<string, RegionSummary> = {};
  for (const region of regions) {
    let dice = 0;
    let iou = 0;
    let mDice = 0;
    let mIoU = 0;
    let counted = 0;
    let slices = 0;
    for (const slice of perSlice) {
      const m = slice[region.name];
      if (!m) continue;
      slices++;
      dice += m.dice;
      iou += m.iou;
      if (m.tp + m.fn > 0) {
        const official = officialSliceScores(m);
        mDice += official.dice;
        mIoU += official.iou;
        counted++;
      }
    }
    out[region.name] = {
      meanSliceDice: slices ? dice / slices : NaN,
      meanSliceIoU: slices ? iou / slices : NaN,
      mDice: counted ? mDice / counted : NaN,
      mIoU: counted ? mIoU / counted : NaN,
      mDiceSlices: counted,
      slices,
    };
  }
  return out;
}
