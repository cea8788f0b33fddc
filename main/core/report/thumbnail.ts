/** Thumbnails of slices with prediction and ground-truth overlays, composed as RGB pictures. */
import { worldToIndex, type Vec3, type Volume } from '../io/volume.ts';
import { DEFAULT_LABEL_COLOURS, RANO_LINE_COLOURS, hexToRgb, regionColourRgb, sliceNumber, type LabelColours } from '../conventions.ts';
import type { Lesion } from '../metrics/describe.ts';
import { regionLookup, type RegionDefinition } from '../metrics/regions.ts';
import type { SliceEntry, ReportThumbnail } from './types.ts';

/**
 * Grey thumbnail data of axial slice `slice`: intensities windowed to the 0.5–99.5 percentiles of
 * the slice's non-zero voxels (MRI background is 0), plus the label slices. The crop is resampled
 * (nearest neighbour) to square pixels of the finer in-plane spacing, so a 0.5 × 1 mm grid does
 * not come out squeezed to half its height.
 */
export function makeThumbnail(
  image: Volume,
  pred: Uint8Array,
  gt: Uint8Array | undefined,
  slice: number,
  caption: string,
  crop: CropBox = { x0: 0, y0: 0, width: image.dims[0], height: image.dims[1] },
): ReportThumbnail {
  const nx = image.dims[0];
  const n = nx * image.dims[1];
  const full = image.sliceValues(slice);
  const [sx, sy] = image.geometry.spacing as [number, number, number];
  const { flipX, flipY } = radiologicalFlips(image.geometry.direction);
  const pixel = Math.min(sx, sy);
  const width = Math.max(1, Math.round((crop.width * sx) / pixel));
  const height = Math.max(1, Math.round((crop.height * sy) / pixel));
  const values = new Float32Array(width * height);
  const predSlice = new Uint8Array(width * height);
  const gtSlice = gt ? new Uint8Array(width * height) : undefined;
  for (let y = 0; y < height; y++) {
    const cy = Math.min(crop.height - 1, Math.floor(((y + 0.5) * pixel) / sy));
    const srcY = crop.y0 + (flipY ? crop.height - 1 - cy : cy);
    for (let x = 0; x < width; x++) {
      const cx = Math.min(crop.width - 1, Math.floor(((x + 0.5) * pixel) / sx));
      const srcX = crop.x0 + (flipX ? crop.width - 1 - cx : cx);
      const src = srcY * nx + srcX;
      values[y * width + x] = full[src]!;
      predSlice[y * width + x] = pred[slice * n + src]!;
      if (gtSlice) gtSlice[y * width + x] = gt![slice * n + src]!;
    }
  }
  const nonZero = values.filter((v) => v !== 0).sort();
  const lo = nonZero.length ? nonZero[Math.floor(0.005 * (nonZero.length - 1))]! : 0;
  const hi = nonZero.length ? nonZero[Math.ceil(0.995 * (nonZero.length - 1))]! : 1;
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  const grey = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) grey[i] = Math.max(0, Math.min(255, Math.round((values[i]! - lo) * scale)));
  return {
    slice,
    caption,
    width,
    height,
    grey,
    pred: predSlice,
    ...(gtSlice ? { gt: gtSlice } : {}),
  };
}

/**
 * The key axial slice of a lesion (its RANO slice) with the long and perpendicular diameters
 * mapped from LPS onto the picture: the same crop, flips and resampling as the slice's pixels.
 */
export function ranoThumbnail(image: Volume, pred: Uint8Array, lesion: Lesion, number: number, crop: CropBox = { x0: 0, y0: 0, width: image.dims[0], height: image.dims[1] }): ReportThumbnail {
  const { slice, long_line_lps: long, perp_line_lps: perp, long_mm, perp_mm } = lesion.rano;
  if (slice === null || !long || !perp) throw new Error(`lesion ${number} has no enhancing part: it has no RANO slice to show`);
  const caption = `Lesion ${number}, slice ${sliceNumber(slice)}: RANO ${long_mm.toFixed(1)} × ${perp_mm.toFixed(1)} mm`;
  const t = makeThumbnail(image, pred, undefined, slice, caption, crop);
  const [sx, sy] = image.geometry.spacing as [number, number, number];
  const { flipX, flipY } = radiologicalFlips(image.geometry.direction);
  const pixel = Math.min(sx, sy);
  // inverse of makeThumbnail's sampling: voxel centre c of the crop lies at picture (c + 0.5) · spacing / pixel − 0.5
  const toPicture = (p: Vec3): [number, number] => {
    const [i, j] = worldToIndex(image.geometry, p);
    const cx = flipX ? crop.width - 1 - (i - crop.x0) : i - crop.x0;
    const cy = flipY ? crop.height - 1 - (j - crop.y0) : j - crop.y0;
    return [((cx + 0.5) * sx) / pixel - 0.5, ((cy + 0.5) * sy) / pixel - 0.5];
  };
  return { ...t, lines: { long: [toPicture(long[0]), toPicture(long[1])], perp: [toPicture(perp[0]), toPicture(perp[1])] } };
}

/** How the thumbnails are shown, for their legends. */
export const THUMBNAIL_VIEW = "Radiological view: the patient's right on the image's left, anterior at the top.";

/**
 * Which in-plane axes to mirror for the radiological view (patient's right on the image's left,
 * anterior at the top): in LPS, x must grow towards the patient's left and y towards posterior.
 * Axes more than 60° off L or P (an oblique or permuted grid) are left as stored.
 */
export function radiologicalFlips(direction: readonly number[]): { flipX: boolean; flipY: boolean } {
  // column 0 (x axis) is (d0, d3, d6), column 1 (y axis) is (d1, d4, d7); their L and P components
  return { flipX: direction[0]! < -0.5, flipY: direction[4]! < -0.5 };
}

export interface CropBox {
  x0: number;
  y0: number;
  width: number;
  height: number;
}

/**
 * One square in-plane crop for all thumbnails of a volume: the bounding box of the non-zero image
 * voxels over all slices (the head), with a small margin, so thumbnails share one scale.
 */
export function headCrop(image: Volume, margin = 4): CropBox {
  const [nx, ny, nz] = image.dims;
  const data = image.data;
  const zero = -image.intercept / image.slope;
  let x0 = nx, x1 = -1, y0 = ny, y1 = -1;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++) {
      const row = (z * ny + y) * nx;
      for (let x = 0; x < nx; x++) {
        if (data[row + x] === zero) continue;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  if (x1 < 0) return { x0: 0, y0: 0, width: nx, height: ny };
  const side = Math.min(Math.max(nx, ny), Math.max(x1 - x0, y1 - y0) + 1 + 2 * margin);
  const cx = (x0 + x1 + 1) / 2;
  const cy = (y0 + y1 + 1) / 2;
  const width = Math.min(nx, side);
  const height = Math.min(ny, side);
  return {
    x0: Math.max(0, Math.min(nx - width, Math.round(cx - width / 2))),
    y0: Math.max(0, Math.min(ny - height, Math.round(cy - height / 2))),
    width,
    height,
  };
}

/**
 * The worst and the best slice by Dice of each region, among the slices whose ground-truth area
 * of the region is at least 10% of its largest slice area: the first and last few voxels of a
 * tumour would otherwise always be "worst" and say little about the model. Ties keep the lower
 * index.
 */
export function pickThumbnailSlices(perSlice: readonly SliceEntry[], regions: readonly string[]): { slice: number; caption: string }[] {
  const picks: { slice: number; caption: string }[] = [];
  for (const region of regions) {
    let worst: SliceEntry | undefined;
    let best: SliceEntry | undefined;
    let largest = 0;
    for (const entry of perSlice) largest = Math.max(largest, (entry.metrics[region]?.tp ?? 0) + (entry.metrics[region]?.fn ?? 0));
    for (const entry of perSlice) {
      const m = entry.metrics[region];
      if (!m || m.tp + m.fn === 0 || m.tp + m.fn < 0.1 * largest) continue;
      if (!worst || m.dice < worst.metrics[region]!.dice) worst = entry;
      if (!best || m.dice > best.metrics[region]!.dice) best = entry;
    }
    const add = (entry: SliceEntry | undefined, label: string): void => {
      if (!entry) return;
      const text = `${label} ${region}: slice ${sliceNumber(entry.slice)}, Dice ${entry.metrics[region]!.dice.toFixed(3)}`;
      // one picture per slice: a slice that is worst (or best) for several regions gets one caption for all
      const existing = picks.find((p) => p.slice === entry.slice);
      if (existing) existing.caption += `; ${text.replace(/^\w+ /, (w) => w.toLowerCase())}`;
      else picks.push({ slice: entry.slice, caption: text });
    };
    add(worst, 'Worst');
    add(best, 'Best');
  }
  return picks;
}

const GAP = 6;
const FILL_ALPHA = 0.35;

function paintPanel(rgb: Uint8Array, stride: number, x0: number, t: ReportThumbnail, labels: Uint8Array | undefined, regions: readonly RegionDefinition[], colours: LabelColours): void {
  const { width, height, grey } = t;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * stride + x0 + x) * 3;
      const g = grey[y * width + x]!;
      rgb[o] = rgb[o + 1] = rgb[o + 2] = g;
    }
  if (!labels) return;
  // outer regions first, so nested inner regions (TC inside WT, ET inside TC) stay visible
  regions.forEach((region, index) => {
    const lut = regionLookup(region);
    const colour = regionColourRgb(region.name, colours, index);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (!lut[labels[i]!]) continue;
        const edge =
          x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
          !lut[labels[i - 1]!] || !lut[labels[i + 1]!] || !lut[labels[i - width]!] || !lut[labels[i + width]!];
        const o = (y * stride + x0 + x) * 3;
        const a = edge ? 1 : FILL_ALPHA;
        for (let c = 0; c < 3; c++) rgb[o + c] = Math.round(rgb[o + c]! * (1 - a) + colour[c]! * a);
      }
  });
}

/**
 * A line two pixels wide from a to b (picture pixels), clipped to the panel: one pixel all but
 * vanishes once a small thumbnail is printed at 60 dpi.
 */
function drawLine(rgb: Uint8Array, stride: number, x0: number, t: ReportThumbnail, [a, b]: [[number, number], [number, number]], colour: readonly number[]): void {
  const steps = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) * 2));
  for (let s = 0; s <= steps; s++) {
    // the 2 × 2 block whose centre lies within half a pixel of the point
    const fx = Math.floor(a[0] + ((b[0] - a[0]) * s) / steps);
    const fy = Math.floor(a[1] + ((b[1] - a[1]) * s) / steps);
    for (let y = fy; y <= fy + 1; y++)
      for (let x = fx; x <= fx + 1; x++) {
        if (x < 0 || y < 0 || x >= t.width || y >= t.height) continue;
        const o = (y * stride + x0 + x) * 3;
        for (let c = 0; c < 3; c++) rgb[o + c] = colour[c]!;
      }
  }
}

/**
 * RGB picture of a thumbnail: ground truth on the left and prediction on the right (or the
 * prediction alone without ground truth), regions as translucent fills with solid outlines.
 */
export function thumbnailRGB(t: ReportThumbnail, regions: readonly RegionDefinition[], colours: LabelColours = DEFAULT_LABEL_COLOURS): { rgb: Uint8Array; width: number; height: number } {
  const panels = t.gt ? 2 : 1;
  const width = t.width * panels + GAP * (panels - 1);
  const rgb = new Uint8Array(width * t.height * 3).fill(255);
  if (t.gt) {
    paintPanel(rgb, width, 0, t, t.gt, regions, colours);
    paintPanel(rgb, width, t.width + GAP, t, t.pred, regions, colours);
  } else {
    paintPanel(rgb, width, 0, t, t.pred, regions, colours);
  }
  if (t.lines) {
    // on the prediction's panel (the right one beside ground truth): the diameters are the prediction's
    const x0 = t.gt ? t.width + GAP : 0;
    drawLine(rgb, width, x0, t, t.lines.long, hexToRgb(RANO_LINE_COLOURS.long));
    drawLine(rgb, width, x0, t, t.lines.perp, hexToRgb(RANO_LINE_COLOURS.perp));
  }
  return { rgb, width, height: t.height };
}
