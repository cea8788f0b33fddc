/**
 * The three orthographic views of a volume, in one place: which index axis each view slices,
 * which index axes run along its image columns and rows, and whether they are flipped so that
 * the picture has the chosen display convention (radiological, the default: patient's left on
 * screen right in axial and coronal; neurological: patient's left on screen left), anterior up
 * in axial, superior up in coronal and sagittal. Image pixels, label overlays, crosshair lines
 * and clicks all go through these functions, so they cannot disagree. The orientation markers
 * and the scale bar are computed from the camera (viewMarkers, scaleBar), so they state what is
 * really on screen, whatever the data's direction.
 *
 * The views slice along index axes (not resampled oblique planes): axial slice k is the k-th
 * x-y plane, the same index the segmentation streams (architecture.md, Volume convention).
 */
import { VIEW_CONVENTIONS } from '../../../main/core/api.ts';
import type { Vec3, ViewConvention } from '../../../main/core/api.ts';

export { VIEW_CONVENTIONS };
export type { ViewConvention };

export const VIEWS = ['axial', 'sagittal', 'coronal'] as const;
export type ViewName = (typeof VIEWS)[number];

interface AxisUse {
  axis: 0 | 1 | 2;
  flip: boolean;
}

export interface PlaneAxes {
  view: ViewName;
  /** the index axis the view steps through */
  slice: 0 | 1 | 2;
  /** index axis along image columns (left → right) and rows (top → bottom) */
  col: AxisUse;
  row: AxisUse;
}

/** Geometry of a volume as the views need it (VolumeData and StudySummary both have these). */
export interface Grid {
  dims: Vec3;
  spacing: Vec3;
  origin: Vec3;
  /** row-major 3×3, column c = world (LPS) direction of index axis c */
  direction: number[];
}

const axisVector = (grid: Grid, axis: number): Vec3 => [grid.direction[axis]!, grid.direction[3 + axis]!, grid.direction[6 + axis]!];

/**
 * Desired on-screen direction of each view's columns and rows in LPS, radiological convention:
 * +x is the patient's left (screen right), +y posterior (screen down in axial), −z inferior
 * (screen down in coronal and sagittal). An index axis is flipped when it points against that
 * direction. The neurological convention mirrors the columns of axial and coronal (−x, the
 * patient's right, to screen right); sagittal is the same in both.
 */
const LAYOUT: Record<ViewName, { slice: 0 | 1 | 2; col: [0 | 1 | 2, Vec3]; row: [0 | 1 | 2, Vec3] }> = {
  axial: { slice: 2, col: [0, [1, 0, 0]], row: [1, [0, 1, 0]] },
  coronal: { slice: 1, col: [0, [1, 0, 0]], row: [2, [0, 0, -1]] },
  sagittal: { slice: 0, col: [1, [0, 1, 0]], row: [2, [0, 0, -1]] },
};

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

export function planeAxes(grid: Grid, view: ViewName, convention: ViewConvention = 'radiological'): PlaneAxes {
  const layout = LAYOUT[view];
  const mirror = convention === 'neurological' && view !== 'sagittal';
  const use = ([axis, wanted]: [0 | 1 | 2, Vec3], sign = 1): AxisUse => ({ axis, flip: sign * dot(axisVector(grid, axis), wanted) < 0 });
  return { view, slice: layout.slice, col: use(layout.col, mirror ? -1 : 1), row: use(layout.row) };
}

export function planeSize(grid: Grid, axes: PlaneAxes): { width: number; height: number; count: number } {
  return { width: grid.dims[axes.col.axis], height: grid.dims[axes.row.axis], count: grid.dims[axes.slice] };
}

/** Index along `use.axis` of image coordinate `c` (and back: the mapping is its own inverse). */
const along = (grid: Grid, use: AxisUse, c: number) => (use.flip ? grid.dims[use.axis] - 1 - c : c);

/** The voxel (i, j, k) shown at column c, row r of slice s. */
export function voxelAt(grid: Grid, axes: PlaneAxes, c: number, r: number, s: number): Vec3 {
  const ijk: Vec3 = [0, 0, 0];
  ijk[axes.col.axis] = along(grid, axes.col, c);
  ijk[axes.row.axis] = along(grid, axes.row, r);
  ijk[axes.slice] = s;
  return ijk;
}

/** Where voxel `ijk` is on this view: column, row and slice. */
export function pixelOf(grid: Grid, axes: PlaneAxes, ijk: Vec3): { c: number; r: number; s: number } {
  return { c: along(grid, axes.col, ijk[axes.col.axis]), r: along(grid, axes.row, ijk[axes.row.axis]), s: ijk[axes.slice] };
}

/**
 * Copies slice `s` of a volume-shaped array into `out` (width × height, x fastest), oriented for
 * display. With `components` > 1 the samples of a voxel are interleaved (RGB) in both.
 */
export function extractPlane<T extends ArrayLike<number> & { [i: number]: number }>(data: ArrayLike<number>, grid: Grid, axes: PlaneAxes, s: number, out: T, components = 1): T {
  const [nx, ny] = grid.dims;
  const strides = [components, nx * components, nx * ny * components];
  const { width, height } = planeSize(grid, axes);
  const colStride = strides[axes.col.axis]! * (axes.col.flip ? -1 : 1);
  const rowStride = strides[axes.row.axis]! * (axes.row.flip ? -1 : 1);
  const first = voxelAt(grid, axes, 0, 0, s);
  let rowStart = (first[0] + nx * (first[1] + ny * first[2])) * components;
  let o = 0;
  for (let r = 0; r < height; r++, rowStart += rowStride) {
    let at = rowStart;
    if (components === 1) for (let c = 0; c < width; c++, at += colStride) out[o++] = data[at]!;
    else for (let c = 0; c < width; c++, at += colStride) for (let j = 0; j < components; j++) out[o++] = data[at + j]!;
  }
  return out;
}

/** World (LPS, mm) position of voxel centre `ijk`. */
export function worldOf(grid: Grid, ijk: Vec3): Vec3 {
  const p: Vec3 = [...grid.origin];
  for (let a = 0; a < 3; a++) {
    const v = axisVector(grid, a);
    for (let w = 0; w < 3; w++) p[w] += v[w]! * grid.spacing[a]! * ijk[a]!;
  }
  return p;
}

/** Cornerstone image geometry of slice `s`: first pixel position, row/column cosines and spacing. */
export function planeGeometry(grid: Grid, axes: PlaneAxes, s: number) {
  const signed = (use: AxisUse) => axisVector(grid, use.axis).map((x) => (use.flip ? -x : x)) as Vec3;
  const rowCosines = signed(axes.col); // direction of increasing column index
  const columnCosines = signed(axes.row); // direction of increasing row index
  const normal: Vec3 = [
    rowCosines[1] * columnCosines[2] - rowCosines[2] * columnCosines[1],
    rowCosines[2] * columnCosines[0] - rowCosines[0] * columnCosines[2],
    rowCosines[0] * columnCosines[1] - rowCosines[1] * columnCosines[0],
  ];
  return {
    origin: worldOf(grid, voxelAt(grid, axes, 0, 0, s)),
    rowCosines,
    columnCosines,
    normal,
    columnSpacing: grid.spacing[axes.col.axis],
    rowSpacing: grid.spacing[axes.row.axis],
  };
}

/** The LPS letter pair naming the slice axis of a view, for the position read-out. */
export const SLICE_AXIS_NAME: Record<ViewName, string> = { axial: 'z', coronal: 'y', sagittal: 'x' };

/** LPS letters of the positive end of each world axis, and of the negative end. */
const POSITIVE = ['L', 'P', 'S'] as const;
const NEGATIVE = ['R', 'A', 'I'] as const;

/**
 * The anatomical direction a world (LPS) vector points to, as DICOM viewers write it: the letter
 * of each axis the vector has a real part along (|component| ≥ 0.25 of its length), strongest
 * first, e.g. 'L' for [1, 0, 0] and 'LA' for a direction between the patient's left and front.
 */
export function orientationLetters(direction: Vec3): string {
  const length = Math.hypot(...direction);
  if (!(length > 0)) return '';
  return [0, 1, 2]
    .filter((a) => Math.abs(direction[a]!) / length >= 0.25)
    .sort((a, b) => Math.abs(direction[b]!) - Math.abs(direction[a]!))
    .map((a) => (direction[a]! > 0 ? POSITIVE[a] : NEGATIVE[a]))
    .join('');
}

export interface ViewMarkers {
  left: string;
  right: string;
  top: string;
  bottom: string;
}

const negate = (v: Vec3): Vec3 => [-v[0], -v[1], -v[2]];

/** The letters on a view's edges from the world directions of screen right and screen down. */
export function viewMarkers(screenRight: Vec3, screenDown: Vec3): ViewMarkers {
  return { left: orientationLetters(negate(screenRight)), right: orientationLetters(screenRight), top: orientationLetters(negate(screenDown)), bottom: orientationLetters(screenDown) };
}

/**
 * A scale bar for a view showing `mmPerPixel` millimetres per screen pixel: the longest 1, 2 or 5
 * × 10ⁿ mm that fits in `maxPixels`, and its length on screen.
 */
export function scaleBar(mmPerPixel: number, maxPixels: number): { mm: number; pixels: number } | null {
  if (!(mmPerPixel > 0) || !(maxPixels > 0)) return null;
  const maxMm = mmPerPixel * maxPixels;
  const decade = 10 ** Math.floor(Math.log10(maxMm));
  const mm = [5, 2, 1].map((m) => m * decade).find((m) => m <= maxMm) ?? decade;
  return { mm, pixels: mm / mmPerPixel };
}
