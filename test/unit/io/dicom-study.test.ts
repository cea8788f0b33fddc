/**
 * DICOM series → studies (dicom-study.ts) through the real reader: the four structural series of
 * one examination become one study (files mixed, in sub-folders), other grids are resampled
 * through world coordinates, what cannot be related stays apart, and roles can be reassigned.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reassignRoles } from '../../../main/core/io/dicom-study.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { overlapFraction, resampleToGrid } from '../../../main/core/io/resample.ts';
import { Volume, indexToWorld, sameGrid, type Geometry } from '../../../main/core/io/volume.ts';
import { writeMrSeries, type SeriesSpec } from '../../fixtures/dicom/write-series.ts';

const tmp = mkdtempSync(join(tmpdir(), 'dicom-study-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const GRID: Geometry = { dims: [12, 10, 8], spacing: [2, 2, 3], origin: [-10, -8, 5], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };

/** A linear function of world position (exact under trilinear interpolation), different per sequence. */
function linearVolume(geometry: Geometry, offset: number, id = 'v'): Volume {
  const [nx, ny, nz] = geometry.dims;
  const data = new Int16Array(nx * ny * nz);
  let at = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) data[at++] = Math.round(valueAt(indexToWorld(geometry, i, j, k), offset));
  return new Volume({ geometry, data, meta: { id, description: id, modality: 'MR', sources: [] } });
}
const valueAt = ([x, y, z]: number[], offset: number) => offset + 3 * x! + 2 * y! + z!;

let uid = 0;
function write(dir: string, volume: Volume, description: string, more: Partial<SeriesSpec> = {}): string {
  const seriesUid = `1.2.826.0.1.3680043.8.498.100.${++uid}`;
  mkdirSync(dir, { recursive: true });
  // interleaved names: the files of all series mixed in one folder, in no series order
  writeMrSeries(dir, volume, { description, seriesNumber: uid, seriesUid, ...more }, (k) => `IM${String(k * 37 + uid).padStart(5, '0')}.dcm`);
  return seriesUid;
}

describe('a folder of one examination', () => {
  const dir = join(tmp, 'exam');
  const volumes = { t1: linearVolume(GRID, 100), t1ce: linearVolume(GRID, 200), t2: linearVolume(GRID, 300), flair: linearVolume(GRID, 400) };
  const uids = {
    t1: write(dir, volumes.t1, 'AX T1 SE'),
    t1ce: write(dir, volumes.t1ce, 'AX T1 POST GAD'),
    t2: write(join(dir, 'sub', 'deeper'), volumes.t2, 'T2W TSE'),
    flair: write(dir, volumes.flair, 'AX T2 FLAIR'),
    dwi: write(dir, linearVolume(GRID, 500), 'AX DWI'),
  };

  it('opens as one four-sequence study (like a BraTS folder) plus the unrecognised series on its own', async () => {
    const { studies, notes } = await openPath(dir);
    expect(studies.map((s) => [s.name, Object.keys(s.sequences)])).toEqual([
      ['MRI BRAIN W WO CONTRAST', ['t1', 't1ce', 't2', 'flair']],
      ['AX DWI', ['image']],
    ]);
    const study = studies[0]!;
    for (const role of ['t1', 't1ce', 't2', 'flair'] as const) {
      expect(Array.from(study.sequences[role]!.data)).toEqual(Array.from(volumes[role].data));
      expect(sameGrid(study.sequences[role]!.geometry, GRID)).toBe(true);
    }
    expect(study.metadata).toEqual({ patientName: 'Phantom, Brain', patientId: 'PHANTOM001', studyDate: '20261126', studyDescription: 'MRI BRAIN W WO CONTRAST', modality: 'MR' });
    expect(study.series!.map((s) => [s.id, s.description, s.role, s.recognised, s.resampled])).toEqual([
      [uids.t1, 'AX T1 SE', 't1', 't1', false],
      [uids.t1ce, 'AX T1 POST GAD', 't1ce', 't1ce', false],
      [uids.t2, 'T2W TSE', 't2', 't2', false],
      [uids.flair, 'AX T2 FLAIR', 'flair', 'flair', false],
    ]);
    expect(study.series![1]!.reason).toBe('series description "AX T1 POST GAD"');
    expect(study.notes).toBeUndefined();
    expect(notes).toEqual([]);
  });

  it('roles can be reassigned: a role given away is swapped', async () => {
    const study = (await openPath(dir)).studies[0]!;
    const swapped = reassignRoles(study, { [uids.t1]: 't1ce' });
    expect(swapped.series!.map((s) => s.role)).toEqual(['t1', 't1ce', 't2', 'flair']);
    expect(swapped.series!.find((s) => s.id === uids.t1)!.role).toBe('t1ce');
    expect(swapped.series!.find((s) => s.id === uids.t1ce)!.role).toBe('t1');
    expect(swapped.sequences.t1ce!.data).toBe(study.sequences.t1!.data);
    expect(swapped.sequences.t1!.data).toBe(study.sequences.t1ce!.data);
    expect(swapped.name).toBe(study.name);
    expect(() => reassignRoles(study, { 'no.such.uid': 't1' })).toThrow(/has no series no\.such\.uid/);
  });
});

describe('series on other grids', () => {
  it('are resampled onto the FLAIR grid through world coordinates (trilinear), with a note', async () => {
    const dir = join(tmp, 'grids');
    const other: Geometry = { dims: [16, 14, 10], spacing: [1.5, 1.5, 2.5], origin: [-12, -9, 4], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
    write(dir, linearVolume(GRID, 400), 'FLAIR', { studyUid: '1.2.9.1' });
    const t2 = write(dir, linearVolume(other, 300), 'Ax T2', { studyUid: '1.2.9.1' });
    const { studies, notes } = await openPath(dir);
    expect(studies).toHaveLength(1);
    const study = studies[0]!;
    expect(Object.keys(study.sequences)).toEqual(['t2', 'flair']);
    expect(sameGrid(study.sequences.t2!.geometry, GRID)).toBe(true);
    expect(study.series!.find((s) => s.id === t2)).toMatchObject({ role: 't2', resampled: true });
    expect(study.series!.find((s) => s.id === t2)!.volume.dims).toEqual([16, 14, 10]);
    expect(notes.join('\n')).toMatch(/Ax T2 \(t2\) resampled onto the grid of FLAIR \(flair\) through world coordinates, trilinear: 16×14×10 at 1\.5×1\.5×2\.5 mm → 12×10×8 at 2×2×3 mm/);
    expect(study.notes).toEqual(notes);
    expect(study.sequences.t2!.meta.sopInstanceUids).toBeUndefined();
    expect(study.sequences.flair!.meta.sopInstanceUids).toHaveLength(8);
    // a linear function is reproduced exactly wherever the FLAIR voxel lies inside the T2's samples
    const resampled = study.sequences.t2!;
    let checked = 0;
    for (let k = 0; k < 8; k++) {
      for (let j = 0; j < 10; j++) {
        for (let i = 0; i < 12; i++) {
          const p = indexToWorld(GRID, i, j, k);
          const inside = p[0] >= -12 && p[0] <= -12 + 15 * 1.5 && p[1] >= -9 && p[1] <= -9 + 13 * 1.5 && p[2] >= 4 && p[2] <= 4 + 9 * 2.5;
          if (!inside) continue;
          checked++;
          // the source holds rounded values: ±0.5 before interpolation
          expect(Math.abs(resampled.value(i + 12 * (j + 10 * k)) - valueAt(p, 300))).toBeLessThanOrEqual(0.5 + 1e-4);
        }
      }
    }
    expect(checked).toBeGreaterThan(300);
    // a role change that keeps the FLAIR keeps the resampled volume (no second resampling)
    const flairSeries = study.series!.find((s) => s.role === 'flair')!;
    const same = reassignRoles(study, { [flairSeries.id]: 'flair', [t2]: 't1' });
    expect(same.sequences.t1).toBe(study.sequences.t2);
    // making another series the FLAIR moves the study onto that series' grid
    const moved = reassignRoles(study, { [t2]: 'flair' });
    expect(sameGrid(moved.sequences.flair!.geometry, other)).toBe(true);
    expect(moved.sequences.flair!.data).toBe(study.series!.find((s) => s.id === t2)!.volume.data);
    expect(sameGrid(moved.sequences.t2!.geometry, other)).toBe(true);
  });

  it('are kept apart when their frame of reference differs or they do not overlap', async () => {
    const dir = join(tmp, 'apart');
    const far: Geometry = { ...GRID, origin: [500, 500, 500] };
    write(dir, linearVolume(GRID, 400), 'FLAIR', { studyUid: '1.2.9.2' });
    write(dir, linearVolume({ ...GRID, origin: [-9, -8, 5] }, 100), 'T1 MPRAGE', { studyUid: '1.2.9.2', frameOfReferenceUid: '1.2.9.99' });
    write(dir, linearVolume(far, 300), 'T2 TSE', { studyUid: '1.2.9.2' });
    const { studies, notes } = await openPath(dir);
    expect(studies.map((s) => [s.name, Object.keys(s.sequences)])).toEqual([
      ['FLAIR', ['flair']],
      ['T1 MPRAGE', ['t1']],
      ['T2 TSE', ['t2']],
    ]);
    expect(notes).toContain('T1 MPRAGE kept as a study of its own: another frame of reference than FLAIR (its positions are not comparable without registration)');
    expect(notes).toContain("T2 TSE kept as a study of its own: it covers only 0% of FLAIR's volume");
  });

  it('of other examinations never join', async () => {
    const dir = join(tmp, 'exams');
    write(dir, linearVolume(GRID, 400), 'FLAIR', { studyUid: '1.2.9.3' });
    write(dir, linearVolume(GRID, 100), 'T1', { studyUid: '1.2.9.4' });
    const { studies } = await openPath(dir);
    expect(studies.map((s) => Object.keys(s.sequences))).toEqual([['flair'], ['t1']]);
  });
});

describe('resampleToGrid', () => {
  it('follows orientation: a volume stored with x and z reversed lands back in place', () => {
    const forward = linearVolume(GRID, 0);
    const [nx, ny, nz] = GRID.dims;
    const flippedGeometry: Geometry = {
      dims: GRID.dims,
      spacing: GRID.spacing,
      origin: indexToWorld(GRID, nx - 1, 0, nz - 1),
      direction: [-1, 0, 0, 0, 1, 0, 0, 0, -1],
    };
    const flipped = linearVolume(flippedGeometry, 0);
    for (const interpolation of ['nearest', 'trilinear'] as const) {
      const back = resampleToGrid(flipped, GRID, interpolation);
      expect(Array.from(back.data, (v) => Math.round(v * back.slope + back.intercept))).toEqual(Array.from(forward.data));
    }
    expect(nx * ny * nz).toBe(960);
  });

  it('is 0 outside the source and keeps label values with nearest', () => {
    const labels = new Volume({ geometry: GRID, data: new Uint8Array(960).fill(4), meta: { id: 'seg', description: '', modality: 'SEG', sources: [] } });
    const shifted: Geometry = { ...GRID, origin: [-10 + 2 * 6, -8, 5] };
    const out = resampleToGrid(labels, shifted, 'nearest');
    expect(out.data).toBeInstanceOf(Uint8Array);
    expect(new Set(out.data)).toEqual(new Set([0, 4]));
    expect(out.data[0]).toBe(4);
    expect(out.data[11]).toBe(0);
    expect(overlapFraction(GRID, shifted)).toBeCloseTo(0.5, 5);
  });
});
