/**
 * MRI pre- and post-processing for SAM2-UNet (model.md, "Adapting it to MRI"). Inference and the
 * trainer both use these functions, so that the model always sees what it was trained on.
 *
 * Choices (documented here, the one place they are made):
 * - Channels: three co-registered sequences become the three input channels (BraTS default FLAIR,
 *   T1ce, T2); a study with one sequence gets it replicated ×3.
 * - Orientation: a slice is fed as stored, x fastest: an axial 240×240 slice is H = y (rows),
 *   W = x (columns), exactly the memory layout of `Volume.sliceView(k)`. No flips or transposes.
 * - Intensity, per volume and sequence: the non-zero voxels (real values, slope and intercept
 *   applied; NaN counts as zero) are scaled by their 0.5 and 99.5 percentiles (numpy's default
 *   "linear" method) to [0, 1] and clipped. Zero voxels (background, skull-stripped outside)
 *   stay 0, the same value as the darkest tissue; they are not moved to where the linear map
 *   would put them. If the two percentiles are equal, non-zero voxels at or above it become 1,
 *   the rest 0. Then ImageNet normalisation (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225).
 * - Resizing: bilinear exactly as torch's F.interpolate(mode='bilinear', align_corners=False,
 *   antialias=False) with an output size (scale = in/out, source coordinates clamped at 0). The
 *   official dataset resizes with PIL's bilinear filter instead, which differs at the borders
 *   and, when shrinking, averages over a wider support (antialiasing); it also quantises to
 *   8 bits. We follow torch because the model's own upsampling and the official inference path
 *   (logits back to the slice size) are torch's, and torch is what a trainer in Python would
 *   use on float MRI.
 * - Output: the `out` logits are resized back to the slice size (same bilinear), passed through
 *   a float32 sigmoid and thresholded (p > 0.5). N = 3 channels are BraTS whole tumour, tumour
 *   core and enhancing tumour and compose into labels ET → 4, TC∖ET → 1, WT∖TC → 2; N = 1 is a
 *   binary 0/1 mask.
 */
import { UserError } from '../errors.ts';
import type { Study } from '../io/study.ts';
import type { Volume, VoxelArray } from '../io/volume.ts';
import { type RegionKind, regionsFor } from '../metrics/regions.ts';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
export const DEFAULT_BRATS_CHANNELS = ['flair', 't1ce', 't2'] as const;
export const DEFAULT_INPUT_SIZE: [number, number] = [352, 352];
export const INTENSITY_PERCENTILES: [number, number] = [0.5, 99.5];

/**
 * Output channel c of a model is region c of `regionsFor(kind)` (main/core/metrics/regions.ts):
 * BraTS WT, TC, ET; binary: one foreground channel.
 */
export function outChannelsFor(regions: RegionKind): number {
  return regionsFor(regions).length;
}

// ---------------------------------------------------------------------------------------------
// Channels

/**
 * The three volumes fed as input channels. `names` picks sequences by key (case-insensitive);
 * without it a BraTS study gives FLAIR, T1ce, T2 and a one-sequence study its sequence ×3.
 * One name is replicated ×3; otherwise exactly three are needed.
 */
export function inputChannels(study: Study, names?: readonly string[]): [Volume, Volume, Volume] {
  const keys = Object.keys(study.sequences);
  if (keys.length === 0) throw new UserError(`${study.name}: the study holds no image volume`);
  let wanted: readonly string[];
  if (names && names.length > 0) wanted = names;
  else if (keys.length === 1) wanted = [keys[0]!];
  else if (DEFAULT_BRATS_CHANNELS.every((n) => findKey(keys, n))) wanted = DEFAULT_BRATS_CHANNELS;
  else {
    throw new UserError(
      `${study.name}: cannot choose input channels from sequences ${keys.join(', ')}; ` +
        `name one or three of them (default FLAIR, T1ce, T2)`,
    );
  }
  if (wanted.length !== 1 && wanted.length !== 3) {
    throw new UserError(`input channels: give one sequence (replicated ×3) or three, not ${wanted.length}`);
  }
  const volumes = wanted.map((name) => {
    const key = findKey(keys, name);
    if (!key) throw new UserError(`${study.name}: no sequence "${name}" (it has ${keys.join(', ')})`);
    return study.sequences[key]!;
  });
  const [first] = volumes;
  for (const v of volumes) {
    if (v.components !== 1) throw new UserError(`${study.name}: ${v.meta.id} is a colour image; MRI sequences are scalar`);
    if (v.dims.some((d, i) => d !== first!.dims[i])) {
      throw new UserError(`${study.name}: sequences ${first!.meta.id} and ${v.meta.id} have different sizes`);
    }
  }
  return volumes.length === 1 ? [first!, first!, first!] : (volumes as [Volume, Volume, Volume]);
}

function findKey(keys: string[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return keys.find((k) => k.toLowerCase() === lower);
}

// ---------------------------------------------------------------------------------------------
// Intensity

export interface IntensityScaling {
  /** the 0.5 and 99.5 percentiles of the non-zero real values */
  low: number;
  high: number;
  /** how many voxels were non-zero */
  nonZero: number;
}

const scalingCache = new WeakMap<Volume, IntensityScaling>();

/**
 * Percentiles of the non-zero voxels, computed once per volume (cached; a Volume's voxels are
 * never modified in place). Exact: a counting histogram over the stored values for 8/16-bit
 * data, selection on a copy of the non-zero values otherwise.
 */
export function volumeIntensityScaling(volume: Volume): IntensityScaling {
  const cached = scalingCache.get(volume);
  if (cached) return cached;
  const [pLow, pHigh] = INTENSITY_PERCENTILES;
  const result = nonZeroPercentiles(volume, pLow, pHigh);
  scalingCache.set(volume, result);
  return result;
}

/** The scaling of `volume` when it is known already (computed or seeded), without computing it. */
export function knownIntensityScaling(volume: Volume): IntensityScaling | undefined {
  return scalingCache.get(volume);
}

/** Records a scaling computed by another thread (the reader) for the same voxels. */
export function seedIntensityScaling(volume: Volume, scaling: IntensityScaling): void {
  scalingCache.set(volume, scaling);
}

/** numpy.percentile(values[values != 0], [pLow, pHigh]) with the default linear method. */
export function nonZeroPercentiles(volume: Volume, pLow: number, pHigh: number): IntensityScaling {
  const { data, slope, intercept } = volume;
  const small = data instanceof Uint8Array || data instanceof Int8Array || data instanceof Uint16Array || data instanceof Int16Array;
  if (small && slope > 0) return percentilesByHistogram(data, slope, intercept, pLow, pHigh);
  return percentilesBySelection(data, slope, intercept, pLow, pHigh);
}

function percentilesByHistogram(
  data: Uint8Array | Int8Array | Uint16Array | Int16Array,
  slope: number,
  intercept: number,
  pLow: number,
  pHigh: number,
): IntensityScaling {
  const offset = data instanceof Int8Array ? 128 : data instanceof Int16Array ? 32768 : 0;
  const bins = data instanceof Uint8Array || data instanceof Int8Array ? 256 : 65536;
  const counts = new Uint32Array(bins);
  for (let i = 0; i < data.length; i++) counts[data[i]! + offset]!++;
  // the stored value whose real value is exactly 0 (if any) is background
  const zeroStored = -intercept / slope;
  if (Number.isInteger(zeroStored) && zeroStored + offset >= 0 && zeroStored + offset < bins) counts[zeroStored + offset] = 0;
  let n = 0;
  for (let b = 0; b < bins; b++) n += counts[b]!;
  if (n === 0) return { low: 0, high: 0, nonZero: 0 };
  // k-th smallest (0-based) via one cumulative walk per rank
  const kth = (k: number): number => {
    let seen = 0;
    for (let b = 0; b < bins; b++) {
      seen += counts[b]!;
      if (seen > k) return b - offset;
    }
    return bins - 1 - offset;
  };
  const at = (p: number): number => {
    const pos = (p / 100) * (n - 1);
    const lo = Math.floor(pos);
    const frac = pos - lo;
    const a = kth(lo) * slope + intercept;
    if (frac === 0 || lo + 1 >= n) return a;
    const b = kth(lo + 1) * slope + intercept;
    return lerp(a, b, frac);
  };
  return { low: at(pLow), high: at(pHigh), nonZero: n };
}

function percentilesBySelection(data: VoxelArray, slope: number, intercept: number, pLow: number, pHigh: number): IntensityScaling {
  let n = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]! * slope + intercept;
    if (v !== 0 && v === v) n++;
  }
  if (n === 0) return { low: 0, high: 0, nonZero: 0 };
  const values = new Float64Array(n);
  let j = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]! * slope + intercept;
    if (v !== 0 && v === v) values[j++] = v;
  }
  const at = (p: number): number => {
    const pos = (p / 100) * (n - 1);
    const lo = Math.floor(pos);
    const frac = pos - lo;
    const a = select(values, lo);
    if (frac === 0 || lo + 1 >= n) return a;
    // after select(lo), everything right of lo is >= a: the next rank is their minimum
    let b = Infinity;
    for (let i = lo + 1; i < n; i++) if (values[i]! < b) b = values[i]!;
    return lerp(a, b, frac);
  };
  return { low: at(pLow), high: at(pHigh), nonZero: n };
}

/** numpy's _lerp: symmetric in the two ends so that frac near 1 lands on b exactly. */
function lerp(a: number, b: number, t: number): number {
  const diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

/** Rearranges `values` so that values[k] is the k-th smallest, smaller left, larger right. */
function select(values: Float64Array, k: number): number {
  let left = 0;
  let right = values.length - 1;
  while (right > left) {
    // median of three as pivot keeps sorted or constant runs from going quadratic
    const mid = (left + right) >>> 1;
    const a = values[left]!;
    const b = values[mid]!;
    const c = values[right]!;
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let i = left;
    let j = right;
    while (i <= j) {
      while (values[i]! < pivot) i++;
      while (values[j]! > pivot) j--;
      if (i <= j) {
        const t = values[i]!;
        values[i] = values[j]!;
        values[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else break;
  }
  return values[k]!;
}

/**
 * Real values of slice `k` scaled to [0, 1] (zeros stay 0) into `out` (length nx·ny).
 * Returns whether any input voxel of the slice was non-zero.
 */
export function scaleSlice(volume: Volume, k: number, scaling: IntensityScaling, out: Float32Array): boolean {
  const view = volume.sliceView(k);
  const { slope, intercept } = volume;
  const { low, high } = scaling;
  const flat = !(high > low);
  const inv = flat ? 0 : 1 / (high - low);
  let any = false;
  for (let i = 0; i < view.length; i++) {
    const v = view[i]! * slope + intercept;
    if (v === 0 || v !== v) {
      out[i] = 0;
      continue;
    }
    any = true;
    if (flat) out[i] = v >= high ? 1 : 0;
    else {
      const s = (v - low) * inv;
      out[i] = s < 0 ? 0 : s > 1 ? 1 : s;
    }
  }
  return any;
}

/**
 * Outside the head: where a slice's voxels are all background in every channel, it holds nothing
 * for the model. A voxel counts as head when any channel's real value is above
 * HEAD_INTENSITY_FRACTION of that volume's 99.5th percentile (of its non-zero voxels, the
 * intensity scaling's `high`): zero in skull-stripped data, above the noise of the air around an
 * unstripped head (Rician noise in air is a few percent of tissue). A slice with less head than
 * MIN_HEAD_AREA_MM2 is not run. The smallest head section holding tumour in the shared and the
 * generated phantoms is about 200 mm² (a top slice of BraTS20_Training_002); every tumour voxel
 * is itself bright on FLAIR or T2.
 */
export const HEAD_INTENSITY_FRACTION = 0.1;
export const MIN_HEAD_AREA_MM2 = 50;

/**
 * The head's area on axial slice k (mm²), by the rule above; with `enough`, counting stops once
 * that much is found (rows are read from the middle outwards, where a head is).
 */
export function headAreaMm2(channels: readonly Volume[], k: number, enough = Infinity): number {
  const volumes = [...new Set(channels)];
  const views = volumes.map((v) => v.sliceView(k));
  // the threshold on the stored values (slope > 0 keeps the order; a negative slope flips it)
  const limits = volumes.map((v) => {
    const t = HEAD_INTENSITY_FRACTION * volumeIntensityScaling(v).high;
    return { stored: (t - v.intercept) / v.slope, zero: -v.intercept / v.slope, up: v.slope > 0 };
  });
  const [nx, ny] = volumes[0]!.dims;
  const [sx, sy] = volumes[0]!.geometry.spacing;
  const voxel = sx * sy;
  const wanted = enough / voxel;
  let head = 0;
  for (let r = 0; r < ny; r++) {
    // middle row, then one below, one above, …
    const half = r >> 1;
    const y = r & 1 ? (ny >> 1) - half - 1 : (ny >> 1) + half;
    if (y < 0 || y >= ny) continue;
    const row = y * nx;
    for (let x = row; x < row + nx; x++) {
      for (let c = 0; c < views.length; c++) {
        const v = views[c]![x]!;
        const l = limits[c]!;
        // NaN compares false; a real value of exactly zero is background whatever the threshold
        if ((l.up ? v > l.stored : v < l.stored) && v !== l.zero) {
          head++;
          break;
        }
      }
    }
    if (head >= wanted) break;
  }
  return head * voxel;
}

/** True when slice k holds less than MIN_HEAD_AREA_MM2 of head (see HEAD_INTENSITY_FRACTION): it is not worth a model run. */
export function outsideHead(channels: readonly Volume[], k: number): boolean {
  return headAreaMm2(channels, k, MIN_HEAD_AREA_MM2) < MIN_HEAD_AREA_MM2;
}

/** True when every channel's slice k is zero (or NaN) everywhere: nothing for the model to see. */
export function isEmptySlice(channels: readonly Volume[], k: number): boolean {
  for (const volume of new Set(channels)) {
    const view = volume.sliceView(k);
    const { slope, intercept } = volume;
    for (let i = 0; i < view.length; i++) {
      const v = view[i]! * slope + intercept;
      if (v !== 0 && v === v) return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Resizing

interface AxisTable {
  i0: Int32Array;
  i1: Int32Array;
  w1: Float32Array;
}

const axisTables = new Map<string, AxisTable>();

/** torch's area_pixel_compute_source_index for linear modes with align_corners=False. */
function axisTable(inSize: number, outSize: number): AxisTable {
  const key = `${inSize}>${outSize}`;
  let table = axisTables.get(key);
  if (table) return table;
  const scale = inSize / outSize;
  table = { i0: new Int32Array(outSize), i1: new Int32Array(outSize), w1: new Float32Array(outSize) };
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(0, (o + 0.5) * scale - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    table.i0[o] = i0;
    table.i1[o] = Math.min(i0 + 1, inSize - 1);
    table.w1[o] = src - i0;
  }
  axisTables.set(key, table);
  return table;
}

/**
 * Bilinear resize of one H×W plane, as torch's F.interpolate(size=(outH, outW),
 * mode='bilinear', align_corners=False). `dst` may be a subarray of a larger tensor.
 */
export function resizeBilinear(
  src: ArrayLike<number>,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
  dst: Float32Array = new Float32Array(outH * outW),
): Float32Array {
  if (inH === outH && inW === outW) {
    for (let i = 0; i < outH * outW; i++) dst[i] = src[i]!;
    return dst;
  }
  const ty = axisTable(inH, outH);
  const tx = axisTable(inW, outW);
  for (let y = 0; y < outH; y++) {
    const r0 = ty.i0[y]! * inW;
    const r1 = ty.i1[y]! * inW;
    const wy = ty.w1[y]!;
    const row = y * outW;
    for (let x = 0; x < outW; x++) {
      const c0 = tx.i0[x]!;
      const c1 = tx.i1[x]!;
      const wx = tx.w1[x]!;
      const top = src[r0 + c0]! + (src[r0 + c1]! - src[r0 + c0]!) * wx;
      const bottom = src[r1 + c0]! + (src[r1 + c1]! - src[r1 + c0]!) * wx;
      dst[row + x] = top + (bottom - top) * wy;
    }
  }
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Model input

export interface PrepareOptions {
  /** model input [H, W]; default 352×352 */
  size?: readonly [number, number];
  /** write into this tensor (length ≥ n·3·H·W) instead of allocating */
  out?: Float32Array;
}

/**
 * NCHW float32 model input for the given axial slices of three channel volumes (see
 * `inputChannels`): scaled, resized and ImageNet-normalised. Accepts a Study (default channels).
 */
export function prepareSlices(
  source: Study | readonly [Volume, Volume, Volume],
  indices: readonly number[],
  opts: PrepareOptions = {},
): Float32Array {
  const channels = Array.isArray(source) ? (source as readonly [Volume, Volume, Volume]) : inputChannels(source as Study);
  const [outH, outW] = opts.size ?? DEFAULT_INPUT_SIZE;
  const [nx, ny] = channels[0].dims;
  const plane = outH * outW;
  const needed = indices.length * 3 * plane;
  const out = opts.out ?? new Float32Array(needed);
  if (out.length < needed) throw new RangeError(`prepareSlices: output holds ${out.length} values, needs ${needed}`);
  const scalings = channels.map(volumeIntensityScaling);
  const scaled = new Float32Array(nx * ny);
  for (let b = 0; b < indices.length; b++) {
    for (let c = 0; c < 3; c++) {
      const dst = out.subarray((b * 3 + c) * plane, (b * 3 + c + 1) * plane);
      scaleSlice(channels[c]!, indices[b]!, scalings[c]!, scaled);
      resizeBilinear(scaled, ny, nx, outH, outW, dst);
      const mean = IMAGENET_MEAN[c]!;
      const invStd = 1 / IMAGENET_STD[c]!;
      for (let i = 0; i < plane; i++) dst[i] = (dst[i]! - mean) * invStd;
    }
  }
  return out;
}

/**
 * Flips each of `planes` h×w planes of `data` in place: left-right (x) and/or front-back (y).
 * The trainer's augmentation and test-time mirroring share it, so both mean the same flips.
 */
export function flipPlanes(data: Float32Array, planes: number, h: number, w: number, flipX: boolean, flipY: boolean): void {
  if (!flipX && !flipY) return;
  const tmp = new Float32Array(h * w);
  for (let p = 0; p < planes; p++) {
    const plane = data.subarray(p * h * w, (p + 1) * h * w);
    tmp.set(plane);
    for (let y = 0; y < h; y++) {
      const sy = flipY ? h - 1 - y : y;
      for (let x = 0; x < w; x++) plane[y * w + x] = tmp[sy * w + (flipX ? w - 1 - x : x)]!;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Model output

export interface ComposeOptions {
  /** channels in `values`: 3 = BraTS WT, TC, ET; 1 = binary */
  channels: number;
  /** [H, W] of `values` (the model size) */
  size: readonly [number, number];
  /** [ny, nx] of the slice to produce */
  sliceSize: readonly [number, number];
  /** 'logits' (default, the model's `out`) or probabilities already through a sigmoid */
  kind?: 'logits' | 'probabilities';
  threshold?: number;
  /** how to read the channels; default: brats for 3, binary for 1 */
  regions?: RegionKind;
  out?: Uint8Array;
  /** scratch plane of length sliceSize[0]·sliceSize[1], reused across calls */
  scratch?: Float32Array;
}

/**
 * Label map (length ny·nx) of one slice from the model's C×H×W output: each channel resized
 * back to the slice size (bilinear, align_corners=False), sigmoid in float32, p > threshold,
 * then BraTS composition (ET → 4, TC∖ET → 1, WT∖TC → 2) or 0/1.
 */
export function composeLabels(values: Float32Array, opts: ComposeOptions): Uint8Array {
  const [h, w] = opts.size;
  const [sh, sw] = opts.sliceSize;
  const regions = opts.regions ?? (opts.channels === 3 ? 'brats' : 'binary');
  if (opts.channels !== outChannelsFor(regions)) {
    throw new UserError(
      `the model has ${opts.channels} output channel${opts.channels === 1 ? '' : 's'}; ` +
        `${regions} regions need ${outChannelsFor(regions)}`,
    );
  }
  if (values.length < opts.channels * h * w) throw new RangeError(`composeLabels: ${values.length} values for ${opts.channels}×${h}×${w}`);
  const threshold = opts.threshold ?? 0.5;
  const logits = (opts.kind ?? 'logits') === 'logits';
  const plane = sh * sw;
  const out = opts.out ?? new Uint8Array(plane);
  out.fill(0);
  const scratch = opts.scratch ?? new Float32Array(plane);
  // channel c sets bit c; the bits then map to labels
  for (let c = 0; c < opts.channels; c++) {
    resizeBilinear(values.subarray(c * h * w, (c + 1) * h * w), h, w, sh, sw, scratch);
    const bit = 1 << c;
    for (let i = 0; i < plane; i++) {
      const v = scratch[i]!;
      const p = logits ? Math.fround(1 / (1 + Math.exp(-v))) : v;
      if (p > threshold) out[i]! |= bit;
    }
  }
  if (regions === 'brats') {
    // bits: 1 = WT, 2 = TC, 4 = ET
    for (let i = 0; i < plane; i++) {
      const b = out[i]!;
      out[i] = b & 4 ? 4 : b & 2 ? 1 : b & 1 ? 2 : 0;
    }
  }
  return out;
}
