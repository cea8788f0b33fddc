/**
 * The mask editor's engine (main/core/edit): brush and eraser dabs, paint-over rules and locks,
 * the threshold brush, fills, island removal, interpolation, and undo/redo stored as changes —
 * on constructed label maps whose expected voxel sets are known exactly.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChangeRecorder, DiffMismatchError, applyDiff, encodeRuns, invertDiff, runsOf, summarizeDiff } from '../../../main/core/edit/diff.ts';
import { EditHistory } from '../../../main/core/edit/history.ts';
import { INTERPOLATION_MODES, InterpolationError, interpolateLabel } from '../../../main/core/edit/interpolate.ts';
import {
  brushOffsets,
  fillHolesSlice,
  floodFillSlice,
  labelCounts,
  paintDab,
  rangeAround,
  removeIsland,
  strokeCentres,
  writableTable,
  type Grid,
  type Vec3,
} from '../../../main/core/edit/ops.ts';

const BRATS: Grid = { dims: [240, 240, 155], spacing: [1, 1, 1] };
const voxels = (g: Grid) => g.dims[0]! * g.dims[1]! * g.dims[2]!;
const at = (g: Grid, [i, j, k]: Vec3) => i + g.dims[0]! * (j + g.dims[1]! * k);
const hash = (labels: Uint8Array) => createHash('sha256').update(labels).digest('hex');
const paintAll = writableTable({ value: 2, over: 'any' });

/** The changed voxel indices of a change. */
function changedIndices(change: Uint8Array): number[] {
  const out: number[] = [];
  for (const run of runsOf(change)) for (let i = 0; i < run.length; i++) out.push(run.start + i);
  return out;
}

describe('brush and eraser', () => {
  it('a 20 mm disk at a known point changes exactly the voxels within 10 mm in the axial plane (count within 3% of the disk area)', () => {
    const labels = new Uint8Array(voxels(BRATS));
    const recorder = new ChangeRecorder(labels.length);
    const centre: Vec3 = [100, 120, 70];
    const offsets = brushOffsets(BRATS.spacing, 20, { kind: 'disk', axis: 2 });
    paintDab(labels, BRATS, centre, offsets, writableTable({ value: 1, over: 'any' }), 1, recorder);
    const change = recorder.finish(labels)!;
    const changed = new Set(changedIndices(change));
    const expected = new Set<number>();
    for (let j = 0; j < 240; j++) for (let i = 0; i < 240; i++) if ((i - 100) ** 2 + (j - 120) ** 2 <= 100) expected.add(at(BRATS, [i, j, 70]));
    expect(changed).toEqual(expected);
    const area = Math.PI * 10 ** 2;
    expect(Math.abs(changed.size - area) / area).toBeLessThan(0.03);
    expect(summarizeDiff(change, BRATS.dims).axialSlices).toEqual([70]);
  });

  it('disks follow the spacing of the view plane and spheres of all three axes', () => {
    const grid: Grid = { dims: [120, 60, 40], spacing: [0.5, 1, 3] };
    const labels = new Uint8Array(voxels(grid));
    const recorder = new ChangeRecorder(labels.length);
    const coronal = brushOffsets(grid.spacing, 16, { kind: 'disk', axis: 1 });
    paintDab(labels, grid, [60, 30, 20], coronal, paintAll, 2, recorder);
    const disk = changedIndices(recorder.finish(labels)!);
    // area π·8² mm² over voxels of 0.5 × 3 mm
    expect(Math.abs(disk.length - (Math.PI * 64) / 1.5) / ((Math.PI * 64) / 1.5)).toBeLessThan(0.03);
    for (const index of disk) expect(Math.floor(index / 120) % 60).toBe(30);
    labels.fill(0);
    paintDab(labels, grid, [60, 30, 20], brushOffsets(grid.spacing, 24, { kind: 'sphere' }), paintAll, 2, recorder);
    const ball = changedIndices(recorder.finish(labels)!);
    const volume = ((4 / 3) * Math.PI * 12 ** 3) / 1.5;
    expect(Math.abs(ball.length - volume) / volume).toBeLessThan(0.03);
  });

  it('an eraser stroke removes what the brush painted; undo restores the mask exactly, redo re-applies it', () => {
    const labels = new Uint8Array(voxels(BRATS));
    labels[at(BRATS, [10, 10, 10])] = 4;
    const original = hash(labels);
    const recorder = new ChangeRecorder(labels.length);
    const history = new EditHistory();
    const offsets = brushOffsets(BRATS.spacing, 12, { kind: 'disk', axis: 2 });
    let last: Vec3 = [80, 80, 60];
    paintDab(labels, BRATS, last, offsets, writableTable({ value: 2, over: 'background' }), 2, recorder);
    for (const c of strokeCentres(last, [120, 95, 60], 3)) paintDab(labels, BRATS, (last = c), offsets, writableTable({ value: 2, over: 'background' }), 2, recorder);
    const stroke = recorder.finish(labels)!;
    history.push({ what: 'brush', change: stroke });
    const painted = hash(labels);
    const strokeVoxels = changedIndices(stroke);
    expect(strokeVoxels.length).toBeGreaterThan(500);
    // the band is continuous: every column between the two ends holds label 2 on the centre line's row
    for (let i = 80; i <= 120; i++) expect(labels[at(BRATS, [i, Math.round(80 + ((i - 80) * 15) / 40), 60])]).toBe(2);

    last = [80, 80, 60];
    const eraser = writableTable({ value: 0, over: 'label', overLabel: 2 });
    paintDab(labels, BRATS, last, offsets, eraser, 0, recorder);
    for (const c of strokeCentres(last, [120, 95, 60], 3)) paintDab(labels, BRATS, c, offsets, eraser, 0, recorder);
    const erase = recorder.finish(labels)!;
    history.push({ what: 'eraser', change: erase });
    expect(hash(labels)).toBe(original);
    expect(changedIndices(erase)).toEqual(strokeVoxels);

    history.undo(labels);
    expect(hash(labels)).toBe(painted);
    history.undo(labels);
    expect(hash(labels)).toBe(original);
    expect(history.undo(labels)).toBeNull();
    history.redo(labels);
    expect(hash(labels)).toBe(painted);
  });

  it('paint-over rules and locks decide which voxels change', () => {
    const grid: Grid = { dims: [9, 1, 1], spacing: [1, 1, 1] };
    const start = () => Uint8Array.from([0, 1, 2, 4, 0, 1, 2, 4, 0]);
    const paint = (rule: Parameters<typeof writableTable>[0]) => {
      const labels = start();
      const recorder = new ChangeRecorder(labels.length);
      paintDab(labels, grid, [4, 0, 0], brushOffsets(grid.spacing, 9, { kind: 'disk', axis: 2 }), writableTable(rule), rule.value, recorder);
      return [...labels];
    };
    expect(paint({ value: 4, over: 'background' })).toEqual([4, 1, 2, 4, 4, 1, 2, 4, 4]);
    expect(paint({ value: 4, over: 'label', overLabel: 2 })).toEqual([0, 1, 4, 4, 0, 1, 4, 4, 0]);
    expect(paint({ value: 4, over: 'any' })).toEqual([4, 4, 4, 4, 4, 4, 4, 4, 4]);
    expect(paint({ value: 4, over: 'any', locked: [1] })).toEqual([4, 1, 4, 4, 4, 1, 4, 4, 4]);
    expect(paint({ value: 0, over: 'any', locked: [2] })).toEqual([0, 0, 2, 0, 0, 0, 2, 0, 0]);
    expect(paint({ value: 0, over: 'label', overLabel: 1 })).toEqual([0, 0, 2, 4, 0, 0, 2, 4, 0]);
  });

  it('the threshold brush changes no voxel whose image value lies outside its range', () => {
    const grid: Grid = { dims: [64, 64, 8], spacing: [1, 1, 1] };
    const image = new Float32Array(voxels(grid));
    // a seeded pattern of values 0…999
    let seed = 12345;
    for (let i = 0; i < image.length; i++) image[i] = (seed = (seed * 1103515245 + 12345) % 2147483648) % 1000;
    const labels = new Uint8Array(image.length);
    const recorder = new ChangeRecorder(labels.length);
    const [lo, hi] = [300, 600];
    const inRange = (i: number) => image[i]! >= lo && image[i]! <= hi;
    const offsets = brushOffsets(grid.spacing, 30, { kind: 'sphere' });
    paintDab(labels, grid, [32, 32, 4], offsets, writableTable({ value: 1, over: 'any' }), 1, recorder, inRange);
    const changed = changedIndices(recorder.finish(labels)!);
    expect(changed.length).toBeGreaterThan(1000);
    for (const i of changed) expect(inRange(i)).toBe(true);
    // and every in-range voxel under the brush did change
    const under = new Set<number>();
    for (let o = 0; o < offsets.length; o += 3) {
      const v: Vec3 = [32 + offsets[o]!, 32 + offsets[o + 1]!, 4 + offsets[o + 2]!];
      if (v.every((x, a) => x >= 0 && x < grid.dims[a]!)) under.add(at(grid, v));
    }
    expect(changed.length).toBe([...under].filter(inRange).length);
    const picked = rangeAround((i) => image[i]!, grid, [32, 32, 4], offsets)!;
    expect(picked[0]).toBeGreaterThanOrEqual(0);
    expect(picked[0]).toBeLessThan(100);
    expect(picked[1]).toBeGreaterThan(900);
  });
});

describe('fills and islands', () => {
  /** A 20×20 axial slice with a ring of label 2 (a square outline 5…14) around a hole, on slice 3 of 6. */
  function ringCase() {
    const grid: Grid = { dims: [20, 20, 6], spacing: [1, 1, 1] };
    const labels = new Uint8Array(voxels(grid));
    for (let j = 5; j <= 14; j++) for (let i = 5; i <= 14; i++) if (i === 5 || i === 14 || j === 5 || j === 14) labels[at(grid, [i, j, 3])] = 2;
    return { grid, labels, recorder: new ChangeRecorder(labels.length) };
  }

  it('fill holes fills exactly the inside of a closed ring, on its slice only', () => {
    const { grid, labels, recorder } = ringCase();
    fillHolesSlice(labels, grid, 2, 3, 2, writableTable({ value: 2, over: 'any' }), recorder);
    const changed = changedIndices(recorder.finish(labels)!);
    const expected: number[] = [];
    for (let j = 6; j <= 13; j++) for (let i = 6; i <= 13; i++) expected.push(at(grid, [i, j, 3]));
    expect(changed).toEqual(expected.sort((a, b) => a - b));
    // an open ring has no hole
    const open = ringCase();
    open.labels[at(open.grid, [5, 9, 3])] = 0;
    fillHolesSlice(open.labels, open.grid, 2, 3, 2, writableTable({ value: 2, over: 'any' }), open.recorder);
    expect(open.recorder.finish(open.labels)).toBeNull();
  });

  it('flood fill paints the clicked 4-connected region in the slice, not through the ring, not on other slices', () => {
    const { grid, labels, recorder } = ringCase();
    floodFillSlice(labels, grid, 2, [9, 9, 3], writableTable({ value: 4, over: 'background' }), 4, recorder);
    expect(changedIndices(recorder.finish(labels)!)).toHaveLength(64);
    // from outside the ring: everything outside it on that slice (400 − 100 inside and ring)
    const outside = ringCase();
    floodFillSlice(outside.labels, outside.grid, 2, [0, 0, 3], writableTable({ value: 1, over: 'background' }), 1, outside.recorder);
    expect(changedIndices(outside.recorder.finish(outside.labels)!)).toHaveLength(400 - 100);
    // in a sagittal plane (across x) through the ring's left side: the ring's column is its own region
    const sagittal = ringCase();
    floodFillSlice(sagittal.labels, sagittal.grid, 0, [5, 9, 3], writableTable({ value: 1, over: 'any' }), 1, sagittal.recorder);
    const column = changedIndices(sagittal.recorder.finish(sagittal.labels)!);
    expect(column).toEqual(Array.from({ length: 10 }, (_, n) => at(sagittal.grid, [5, 5 + n, 3])));
  });

  it('removing an island deletes exactly the 26-connected component clicked, whatever its labels, except locked ones', () => {
    const grid: Grid = { dims: [30, 30, 30], spacing: [1, 1, 1] };
    const labels = new Uint8Array(voxels(grid));
    const cube = (lo: number, hi: number, value: number) => {
      for (let k = lo; k <= hi; k++) for (let j = lo; j <= hi; j++) for (let i = lo; i <= hi; i++) labels[at(grid, [i, j, k])] = value;
    };
    cube(2, 6, 2);
    cube(4, 5, 4); // the core of the first island
    cube(7, 7, 1); // touches the first island's corner only: same 26-connected component
    cube(20, 24, 2); // a second island
    const before = labels.slice();
    const recorder = new ChangeRecorder(labels.length);
    removeIsland(labels, grid, [3, 3, 3], writableTable({ value: 0, over: 'any' }), recorder);
    const removed = new Set(changedIndices(recorder.finish(labels)!));
    expect(removed.size).toBe(125 + 1);
    for (let i = 0; i < labels.length; i++) {
      const inFirst = before[i] !== 0 && !removed.has(i);
      if (removed.has(i)) expect(labels[i]).toBe(0);
      else if (inFirst) expect(labels[i]).toBe(before[i]);
    }
    expect(labelCounts(labels)[2]).toBe(125);
    // a locked label survives the removal
    const again = before.slice();
    removeIsland(again, grid, [3, 3, 3], writableTable({ value: 0, over: 'any', locked: [4] }), recorder);
    expect(changedIndices(recorder.finish(again)!)).toHaveLength(125 + 1 - 8);
    // a click on background removes nothing
    removeIsland(again, grid, [15, 15, 15], writableTable({ value: 0, over: 'any' }), recorder);
    expect(recorder.finish(again)).toBeNull();
  });
});

describe('interpolation between two drawn slices', () => {
  const grid: Grid = { dims: [40, 30, 9], spacing: [1, 1, 1] };
  /** label 1 on columns lo…hi of every row of axial slice k */
  const band = (labels: Uint8Array, k: number, lo: number, hi: number) => {
    for (let j = 0; j < 30; j++) for (let i = lo; i <= hi; i++) labels[at(grid, [i, j, k])] = 1;
  };
  const columnsOf = (labels: Uint8Array, k: number) => {
    const cols = new Set<number>();
    for (let j = 0; j < 30; j++) for (let i = 0; i < 40; i++) if (labels[at(grid, [i, j, k])] === 1) cols.add(i);
    return [...cols].sort((a, b) => a - b);
  };

  for (const mode of INTERPOLATION_MODES) {
    it(`${mode}: a band moving sideways by 4 columns over 4 slices moves one column per slice`, () => {
      const labels = new Uint8Array(voxels(grid));
      band(labels, 2, 10, 19);
      band(labels, 6, 14, 23);
      const recorder = new ChangeRecorder(labels.length);
      interpolateLabel(labels, grid, 2, 1, 2, 6, mode, writableTable({ value: 1, over: 'background' }), recorder);
      recorder.finish(labels);
      for (let s = 3; s <= 5; s++) expect(columnsOf(labels, s), `slice ${s}`).toEqual(Array.from({ length: 10 }, (_, n) => 10 + (s - 2) + n));
      expect(columnsOf(labels, 1)).toEqual([]);
      expect(columnsOf(labels, 7)).toEqual([]);
    });
  }

  it('distance: between concentric disks of radius 4 and 8 the middle slice is the disk of radius 6 (voxels within half a voxel of the circle excepted)', () => {
    const labels = new Uint8Array(voxels(grid));
    const disk = (k: number, r: number) => {
      for (let j = 0; j < 30; j++) for (let i = 0; i < 40; i++) if ((i - 20) ** 2 + (j - 15) ** 2 <= r * r) labels[at(grid, [i, j, k])] = 1;
    };
    disk(0, 4);
    disk(4, 8);
    const recorder = new ChangeRecorder(labels.length);
    interpolateLabel(labels, grid, 2, 1, 0, 4, 'distance', writableTable({ value: 1, over: 'background' }), recorder);
    let checked = 0;
    for (let j = 0; j < 30; j++)
      for (let i = 0; i < 40; i++) {
        const r = Math.hypot(i - 20, j - 15);
        if (Math.abs(r - 6) < 0.5) continue;
        checked++;
        expect(labels[at(grid, [i, j, 2])], `(${i}, ${j}) at r ${r.toFixed(2)}`).toBe(r < 6 ? 1 : 0);
      }
    expect(checked).toBeGreaterThan(1000);
  });

  it('refuses adjacent slices and slices without the label, and respects the paint-over rule', () => {
    const labels = new Uint8Array(voxels(grid));
    band(labels, 2, 10, 19);
    band(labels, 3, 10, 19);
    const recorder = new ChangeRecorder(labels.length);
    const table = writableTable({ value: 1, over: 'background' });
    expect(() => interpolateLabel(labels, grid, 2, 1, 2, 3, 'distance', table, recorder)).toThrow(InterpolationError);
    expect(() => interpolateLabel(labels, grid, 2, 4, 2, 6, 'distance', table, recorder)).toThrow(/slice 3 holds no label 4/);
    band(labels, 6, 10, 19);
    labels[at(grid, [12, 12, 4])] = 2;
    interpolateLabel(labels, grid, 2, 1, 2, 6, 'distance', table, recorder);
    expect(labels[at(grid, [12, 12, 4])]).toBe(2);
    expect(labels[at(grid, [13, 12, 4])]).toBe(1);
  });
});

describe('changes and the undo history', () => {
  it('encodes runs compactly, inverts them, and refuses a change that does not fit (leaving the labels untouched)', () => {
    const labels = Uint8Array.from([0, 0, 2, 2, 2, 0, 4, 4]);
    const change = encodeRuns([
      { start: 2, length: 3, before: 2, after: 1 },
      { start: 6, length: 2, before: 4, after: 0 },
    ]);
    expect(change.length).toBe(8);
    applyDiff(labels, change);
    expect([...labels]).toEqual([0, 0, 1, 1, 1, 0, 0, 0]);
    expect(() => applyDiff(labels, change)).toThrow(DiffMismatchError);
    expect([...labels]).toEqual([0, 0, 1, 1, 1, 0, 0, 0]);
    applyDiff(labels, invertDiff(change));
    expect([...labels]).toEqual([0, 0, 2, 2, 2, 0, 4, 4]);
    expect(() => applyDiff(new Uint8Array(4), change)).toThrow(/reaches voxel/);
    expect(() => [...runsOf(change.subarray(0, 5))]).toThrow(DiffMismatchError);
  });

  it('100 strokes then 100 undos restore the original exactly; the history of 100 strokes on 240×240×155 stays far under 50 MB', () => {
    const labels = new Uint8Array(voxels(BRATS));
    // a starting mask with all three labels
    for (let k = 60; k < 90; k++) for (let j = 90; j < 150; j++) for (let i = 90; i < 150; i++) labels[at(BRATS, [i, j, k])] = k < 70 ? 1 : k < 80 ? 2 : 4;
    const original = hash(labels);
    const recorder = new ChangeRecorder(labels.length);
    const history = new EditHistory();
    const hashes: string[] = [];
    let seed = 7;
    const random = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    const sphere = brushOffsets(BRATS.spacing, 20, { kind: 'sphere' });
    // an eraser stroke away from the mask changes nothing and is no step: strokes go on until 100 are steps
    for (let s = 0; history.undoSteps < 100; s++) {
      const value = [0, 1, 2, 4][s % 4]!;
      const table = writableTable({ value, over: 'any' });
      let last: Vec3 = [40 + random(160), 40 + random(160), 20 + random(110)];
      const offsets = s % 2 ? sphere : brushOffsets(BRATS.spacing, 6 + random(30), { kind: 'disk', axis: (s % 3) as 0 | 1 | 2 });
      paintDab(labels, BRATS, last, offsets, table, value, recorder);
      for (let d = 0; d < 8; d++) {
        const next: Vec3 = [last[0] + random(21) - 10, last[1] + random(21) - 10, last[2]];
        for (const c of strokeCentres(last, next, 2)) paintDab(labels, BRATS, c, offsets, table, value, recorder);
        last = next;
      }
      const change = recorder.finish(labels);
      if (!change) continue;
      history.push({ what: 'brush', change });
      hashes.push(hash(labels));
    }
    expect(history.undoSteps).toBe(100);
    console.log(`history of 100 strokes: ${(history.bytes / 1024).toFixed(1)} KiB`);
    expect(history.bytes).toBeLessThan(50 * 1024 * 1024);
    for (let s = 99; s >= 0; s--) {
      expect(hash(labels)).toBe(hashes[s]);
      history.undo(labels);
    }
    expect(hash(labels)).toBe(original);
    for (let s = 0; s < 100; s++) history.redo(labels);
    expect(hash(labels)).toBe(hashes[99]);
  });

  it('keeps at least 100 steps, drops the oldest beyond the byte bound, and a new edit clears the redo steps', () => {
    const history = new EditHistory({ minSteps: 100, maxBytes: 1000 });
    for (let s = 0; s < 150; s++) history.push({ what: `step ${s}`, change: new Uint8Array(100) });
    expect(history.undoSteps).toBe(100);
    const labels = new Uint8Array(10);
    const step = encodeRuns([{ start: 1, length: 2, before: 0, after: 2 }]);
    const small = new EditHistory();
    applyDiff(labels, step);
    small.push({ what: 'brush', change: step });
    small.undo(labels);
    expect(small.canRedo).toBe(true);
    small.push({ what: 'fill', change: step });
    expect(small.canRedo).toBe(false);
    expect(small.bytes).toBe(step.byteLength);
  });

  it('a recorder keeps the first label of each voxel and leaves out voxels that came back to it', () => {
    const labels = new Uint8Array(6);
    const recorder = new ChangeRecorder(6);
    recorder.set(labels, 1, 2);
    recorder.set(labels, 1, 4);
    recorder.set(labels, 2, 1);
    recorder.set(labels, 2, 0);
    recorder.set(labels, 3, 4);
    const change = recorder.finish(labels)!;
    expect([...runsOf(change)]).toEqual([{ start: 1, length: 1, before: 0, after: 4 }, { start: 3, length: 1, before: 0, after: 4 }]);
    recorder.set(labels, 5, 2);
    recorder.revert(labels);
    expect(labels[5]).toBe(0);
    expect(recorder.finish(labels)).toBeNull();
  });
});

describe('the gap to interpolate across', () => {
  it('is bounded by the nearest slices holding the label on either side of the current one', async () => {
    const { gapAround } = await import('../../../main/core/edit/interpolate.ts');
    const grid: Grid = { dims: [4, 4, 10], spacing: [1, 1, 1] };
    const labels = new Uint8Array(160);
    labels[at(grid, [1, 1, 2])] = 2;
    labels[at(grid, [2, 2, 7])] = 2;
    labels[at(grid, [2, 2, 8])] = 4;
    expect(gapAround(labels, grid, 2, 2, 5)).toEqual([2, 7]);
    expect(gapAround(labels, grid, 2, 2, 2)).toBeNull();
    expect(gapAround(labels, grid, 2, 2, 9)).toBeNull();
    expect(gapAround(labels, grid, 2, 4, 3)).toBeNull();
  });
});
