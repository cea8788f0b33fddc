/**
 * The label-map operations of the mask editor, on a label map x fastest (architecture.md's
 * Volume convention): brush and eraser dabs (a disk in a view's plane or a sphere, size in mm),
 * the threshold brush (a dab limited to voxels whose image value lies in a range), flood fill and
 * hole filling within a slice, removing a 3D connected component, and picking a threshold range
 * around a point. Every write goes through a ChangeRecorder (diff.ts), which makes the step undoable.
 *
 * What a voxel may become is one table (`writableTable`): the paint-over rule (only background,
 * only a chosen label, anything) and the locked labels, decided once per operation, so every tool
 * obeys the same rule. Pure TypeScript: the renderer runs these on the label map on screen, the
 * unit tests in Node.
 */
import { componentAt } from '../metrics/components.ts';
import type { ChangeRecorder } from './diff.ts';

export type Vec3 = [number, number, number];
export type Axis = 0 | 1 | 2;

/** The label values the editor paints (BraTS): necrotic core 1, edema 2, enhancing tumour 4. */
export const EDIT_LABELS = [1, 2, 4] as const;
export type EditLabel = (typeof EDIT_LABELS)[number];

export const PAINT_OVER = ['background', 'label', 'any'] as const;
export type PaintOver = (typeof PAINT_OVER)[number];

export interface PaintRule {
  /** the label written (0 erases) */
  value: number;
  /**
   * which voxels may change: 'background' only label 0, 'label' only `overLabel`, 'any' every
   * label; a locked label never changes, and nothing is ever written over with itself
   */
  over: PaintOver;
  overLabel?: number;
  locked?: Iterable<number>;
}

/** table[current label] = 1 when the rule lets a voxel of that label become `rule.value`. */
export function writableTable(rule: PaintRule): Uint8Array {
  const table = new Uint8Array(256);
  if (rule.over === 'any') table.fill(1);
  else if (rule.over === 'background') table[0] = 1;
  else if (rule.overLabel !== undefined) table[rule.overLabel] = 1;
  for (const label of rule.locked ?? []) table[label] = 0;
  table[rule.value] = 0;
  return table;
}

export interface Grid {
  dims: readonly [number, number, number] | readonly number[];
  /** mm per voxel along each index axis */
  spacing: readonly [number, number, number] | readonly number[];
}

/** The two index axes of the plane across `axis`, in index order. */
export function inPlaneAxes(axis: Axis): [Axis, Axis] {
  return axis === 0 ? [1, 2] : axis === 1 ? [0, 2] : [0, 1];
}

export type BrushShape = { kind: 'disk'; axis: Axis } | { kind: 'sphere' };

/**
 * The voxel offsets (di, dj, dk triples) of a brush of `diameterMm` centred on a voxel centre: the
 * voxels whose centres lie within diameter/2 of it, in mm with the grid's spacing, in the plane
 * across `shape.axis` (disk) or in 3D (sphere). Always at least the centre voxel.
 */
export function brushOffsets(spacing: Grid['spacing'], diameterMm: number, shape: BrushShape): Int32Array {
  const r = Math.max(0, diameterMm / 2);
  const reach = [0, 1, 2].map((a) => (shape.kind === 'disk' && a === shape.axis ? 0 : Math.floor(r / spacing[a]! + 1e-9)));
  const out: number[] = [];
  // a whisker of tolerance so a diameter of exactly n voxels keeps the voxels at distance n/2
  const limit = r * r * (1 + 1e-9);
  for (let dk = -reach[2]!; dk <= reach[2]!; dk++)
    for (let dj = -reach[1]!; dj <= reach[1]!; dj++)
      for (let di = -reach[0]!; di <= reach[0]!; di++) {
        const d2 = (di * spacing[0]!) ** 2 + (dj * spacing[1]!) ** 2 + (dk * spacing[2]!) ** 2;
        if (d2 <= limit) out.push(di, dj, dk);
      }
  return Int32Array.from(out);
}

/**
 * One dab of a brush at voxel `centre`: every voxel of `offsets` inside the grid whose label the
 * table allows (and, with `accept`, whose index it accepts, as the threshold brush does) becomes
 * `value`. Returns the voxels changed.
 */
export function paintDab(
  labels: Uint8Array,
  grid: Grid,
  centre: Vec3,
  offsets: Int32Array,
  table: Uint8Array,
  value: number,
  recorder: ChangeRecorder,
  accept?: (index: number) => boolean,
): number {
  const [nx, ny, nz] = grid.dims as [number, number, number];
  let changed = 0;
  for (let o = 0; o < offsets.length; o += 3) {
    const i = centre[0] + offsets[o]!;
    const j = centre[1] + offsets[o + 1]!;
    const k = centre[2] + offsets[o + 2]!;
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) continue;
    const index = i + nx * (j + ny * k);
    if (!table[labels[index]!] || (accept && !accept(index))) continue;
    recorder.set(labels, index, value);
    changed++;
  }
  return changed;
}

/**
 * The dab centres of a stroke from `from` to `to` (voxel indices), `from` excluded: close enough
 * (at most `stepVoxels` apart, at least one voxel) that a fast drag leaves a continuous band.
 */
export function strokeCentres(from: Vec3, to: Vec3, stepVoxels: number): Vec3[] {
  const d = [to[0] - from[0], to[1] - from[1], to[2] - from[2]];
  const length = Math.hypot(d[0]!, d[1]!, d[2]!);
  if (length === 0) return [];
  const n = Math.max(1, Math.ceil(length / Math.max(1, stepVoxels)));
  const out: Vec3[] = [];
  for (let s = 1; s <= n; s++) {
    const t = s / n;
    out.push([Math.round(from[0] + d[0]! * t), Math.round(from[1] + d[1]! * t), Math.round(from[2] + d[2]! * t)]);
  }
  return out;
}

function plane(grid: Grid, axis: Axis, slice: number) {
  const [nx, ny] = grid.dims as [number, number, number];
  const [u, v] = inPlaneAxes(axis);
  const dims = grid.dims as [number, number, number];
  const strides = [1, nx, nx * ny];
  const width = dims[u]!;
  const height = dims[v]!;
  const base = slice * strides[axis]!;
  const su = strides[u]!;
  const sv = strides[v]!;
  return { width, height, u, v, index: (a: number, b: number) => base + a * su + b * sv };
}

/**
 * Flood fill in the slice across `axis` through `seed`: the 4-connected region of voxels holding
 * the seed's label becomes `value` where the table allows. Returns the voxels changed.
 */
export function floodFillSlice(labels: Uint8Array, grid: Grid, axis: Axis, seed: Vec3, table: Uint8Array, value: number, recorder: ChangeRecorder): number {
  const p = plane(grid, axis, seed[axis]);
  const start = [seed[p.u], seed[p.v]] as const;
  if (start[0] < 0 || start[1] < 0 || start[0] >= p.width || start[1] >= p.height) return 0;
  const target = labels[p.index(start[0], start[1])]!;
  if (!table[target] || target === value) return 0;
  const seen = new Uint8Array(p.width * p.height);
  const stack = [start[0] + start[1] * p.width];
  seen[stack[0]!] = 1;
  let changed = 0;
  while (stack.length) {
    const at = stack.pop()!;
    const a = at % p.width;
    const b = (at - a) / p.width;
    recorder.set(labels, p.index(a, b), value);
    changed++;
    for (const [na, nb] of [
      [a - 1, b],
      [a + 1, b],
      [a, b - 1],
      [a, b + 1],
    ] as const) {
      if (na < 0 || nb < 0 || na >= p.width || nb >= p.height) continue;
      const key = na + nb * p.width;
      if (seen[key] || labels[p.index(na, nb)] !== target) continue;
      seen[key] = 1;
      stack.push(key);
    }
  }
  return changed;
}

/**
 * Fills the holes of `label` in one slice across `axis`: voxels without that label which no
 * 4-connected path of such voxels links to the slice's edge become `label` where the table allows.
 * Returns the voxels changed.
 */
export function fillHolesSlice(labels: Uint8Array, grid: Grid, axis: Axis, slice: number, label: number, table: Uint8Array, recorder: ChangeRecorder): number {
  const p = plane(grid, axis, slice);
  const { width, height } = p;
  const outside = new Uint8Array(width * height);
  const stack: number[] = [];
  const visit = (a: number, b: number): void => {
    const key = a + b * width;
    if (outside[key] || labels[p.index(a, b)] === label) return;
    outside[key] = 1;
    stack.push(key);
  };
  for (let a = 0; a < width; a++) {
    visit(a, 0);
    visit(a, height - 1);
  }
  for (let b = 0; b < height; b++) {
    visit(0, b);
    visit(width - 1, b);
  }
  while (stack.length) {
    const at = stack.pop()!;
    const a = at % width;
    const b = (at - a) / width;
    if (a > 0) visit(a - 1, b);
    if (a < width - 1) visit(a + 1, b);
    if (b > 0) visit(a, b - 1);
    if (b < height - 1) visit(a, b + 1);
  }
  let changed = 0;
  for (let b = 0; b < height; b++)
    for (let a = 0; a < width; a++) {
      const index = p.index(a, b);
      if (outside[a + b * width] || labels[index] === label || !table[labels[index]!]) continue;
      recorder.set(labels, index, label);
      changed++;
    }
  return changed;
}

/**
 * Removes the island under `seed`: the 26-connected component of tumour (any non-zero label, the
 * components the measurements count, metrics/components.ts) holding it becomes background where
 * the table allows. Returns the voxels changed.
 */
export function removeIsland(labels: Uint8Array, grid: Grid, seed: Vec3, table: Uint8Array, recorder: ChangeRecorder): number {
  const [nx, ny] = grid.dims as [number, number, number];
  const component = componentAt(labels, grid.dims, seed[0] + nx * (seed[1] + ny * seed[2]));
  let changed = 0;
  for (const index of component) {
    if (!table[labels[index]!]) continue;
    recorder.set(labels, index, 0);
    changed++;
  }
  return changed;
}

/**
 * A threshold range picked around a point: the 5th to 95th percentile of the image values under
 * `offsets` (a brush) at `centre`, so one bright or dark voxel in the neighbourhood does not
 * widen the range to everything.
 */
export function rangeAround(value: (index: number) => number, grid: Grid, centre: Vec3, offsets: Int32Array): [number, number] | null {
  const [nx, ny, nz] = grid.dims as [number, number, number];
  const values: number[] = [];
  for (let o = 0; o < offsets.length; o += 3) {
    const i = centre[0] + offsets[o]!;
    const j = centre[1] + offsets[o + 1]!;
    const k = centre[2] + offsets[o + 2]!;
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) continue;
    const v = value(i + nx * (j + ny * k));
    if (Number.isFinite(v)) values.push(v);
  }
  if (!values.length) return null;
  values.sort((a, b) => a - b);
  const at = (q: number) => values[Math.min(values.length - 1, Math.max(0, Math.round(q * (values.length - 1))))]!;
  return [at(0.05), at(0.95)];
}

/** Voxel count of each label value (index = label). */
export function labelCounts(labels: Uint8Array): Float64Array {
  const counts = new Float64Array(256);
  for (let i = 0; i < labels.length; i++) counts[labels[i]!]!++;
  return counts;
}
