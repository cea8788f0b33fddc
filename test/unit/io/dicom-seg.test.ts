import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../../main/core/errors.ts';
import { BINARY_SEGMENTS, BRATS_SEGMENTS, SEGMENTATION_STORAGE, readDicomSeg, writeDicomSeg } from '../../../main/core/io/dicom-seg.ts';
import { loadDicom } from '../../../main/core/io/dicom/index.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { affineLPS, indexToWorld, type Geometry, type Volume } from '../../../main/core/io/volume.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const dicomDir = join(phantoms, 'BraTS20_Training_001_flair_dicom');
const DCIODVFY = '/usr/bin/dciodvfy';
const tmp = mkdtempSync(join(tmpdir(), 'dicom-seg-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Nearest-neighbour resampling of a label volume onto another grid through world (LPS) space. */
function labelsOnGrid(labels: Volume, target: Geometry): Uint8Array {
  const a = affineLPS(labels.geometry);
  // inverse of the 3×3 part (the grids here are axis-aligned or rotated, never sheared)
  const m = [a[0]!, a[1]!, a[2]!, a[4]!, a[5]!, a[6]!, a[8]!, a[9]!, a[10]!];
  const det = m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) - m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) + m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
  const inv = [
    (m[4]! * m[8]! - m[5]! * m[7]!) / det, (m[2]! * m[7]! - m[1]! * m[8]!) / det, (m[1]! * m[5]! - m[2]! * m[4]!) / det,
    (m[5]! * m[6]! - m[3]! * m[8]!) / det, (m[0]! * m[8]! - m[2]! * m[6]!) / det, (m[2]! * m[3]! - m[0]! * m[5]!) / det,
    (m[3]! * m[7]! - m[4]! * m[6]!) / det, (m[1]! * m[6]! - m[0]! * m[7]!) / det, (m[0]! * m[4]! - m[1]! * m[3]!) / det,
  ];
  const [sx, sy, sz] = labels.dims;
  const [nx, ny, nz] = target.dims;
  const out = new Uint8Array(nx * ny * nz);
  for (let k = 0, o = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, o++) {
        const w = indexToWorld(target, i, j, k);
        const d = [w[0] - a[3]!, w[1] - a[7]!, w[2] - a[11]!];
        const u = Math.round(inv[0]! * d[0]! + inv[1]! * d[1]! + inv[2]! * d[2]!);
        const v = Math.round(inv[3]! * d[0]! + inv[4]! * d[1]! + inv[5]! * d[2]!);
        const t = Math.round(inv[6]! * d[0]! + inv[7]! * d[1]! + inv[8]! * d[2]!);
        if (u >= 0 && u < sx && v >= 0 && v < sy && t >= 0 && t < sz) out[o] = labels.data[u + sx * (v + sy * t)]!;
      }
    }
  }
  return out;
}

function countDiffering(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

/** dciodvfy's verdict: error lines (must be none) and warning lines (reported). */
function validate(file: string): { errors: string[]; warnings: string[] } | undefined {
  if (!existsSync(DCIODVFY)) {
    console.log(`dciodvfy NOT run: ${DCIODVFY} is missing (Debian package dicom3tools; CI installs it)`);
    return undefined;
  }
  // dciodvfy reports on stderr and exits non-zero when it finds errors
  const run = spawnSync(DCIODVFY, [file], { encoding: 'utf8' });
  if (run.error) throw run.error;
  const lines = `${run.stdout}${run.stderr}`.split('\n');
  return { errors: lines.filter((l) => /^Error/.test(l)), warnings: lines.filter((l) => /^Warning/.test(l)) };
}

describe('DICOM SEG', () => {
  let source: Volume;
  let truth: Uint8Array;
  let segFile: string;

  beforeAll(async () => {
    const { series } = await loadDicom([dicomDir]);
    expect(series).toHaveLength(1);
    source = series[0]!;
    const nifti = (await readNifti(join(phantoms, 'BraTS20_Training_001/BraTS20_Training_001_seg.nii.gz'))).volumes[0]!;
    truth = labelsOnGrid(nifti, source.geometry);
    segFile = join(tmp, 'brats001.seg.dcm');
  });

  it('writes a BINARY SEG of the BraTS labels that dciodvfy accepts without errors', async () => {
    const summary = await writeDicomSeg(segFile, { labels: truth, source, segments: BRATS_SEGMENTS, algorithm: { name: 'SAM2-UNet', version: '0.1.0' } });
    // case 001 has edema and enhancing tumour but no necrotic core: two segments
    expect(summary.segments.map((s) => [s.number, s.label, s.voxels])).toEqual([
      [1, 2, 82857],
      [2, 4, 7810],
    ]);
    expect(summary.frames).toBe(summary.segments.reduce((n, s) => n + s.frames, 0));
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const verdict = validate(segFile);
    if (verdict) {
      console.log(`dciodvfy: ${verdict.errors.length} errors, ${verdict.warnings.length} warnings${verdict.warnings.length ? `:\n  ${verdict.warnings.join('\n  ')}` : ''}`);
      expect(verdict.errors).toEqual([]);
    }
  });

  it('references the source series, study, frame of reference and slices', () => {
    const bytes = readFileSync(segFile);
    const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer).dict) as Record<string, any>;
    expect(ds.SOPClassUID).toBe(SEGMENTATION_STORAGE);
    expect(ds.SOPInstanceUID).toMatch(/^2\.25\.\d+$/);
    expect(ds.SeriesInstanceUID).toMatch(/^2\.25\.\d+$/);
    expect(ds.StudyInstanceUID).toBe(source.meta.studyInstanceUid);
    expect(ds.FrameOfReferenceUID).toBe(source.meta.frameOfReferenceUid);
    expect(ds.PatientID).toBe('PHANTOM001');
    expect(ds.ReferencedSeriesSequence.SeriesInstanceUID ?? ds.ReferencedSeriesSequence[0].SeriesInstanceUID).toBe(source.meta.id);
    expect(ds.SegmentSequence.map((s: any) => s.SegmentedPropertyTypeCodeSequence.CodeValue ?? s.SegmentedPropertyTypeCodeSequence[0].CodeValue)).toEqual(['79654002', '108369006']);
    // every frame's source image is the source slice at the frame's position
    const uids = source.meta.sopInstanceUids!;
    for (const frame of ds.PerFrameFunctionalGroupsSequence as any[]) {
      const position = (frame.PlanePositionSequence[0] ?? frame.PlanePositionSequence).ImagePositionPatient.map(Number);
      const k = Math.round((position[2] - source.geometry.origin[2]) / source.geometry.spacing[2]);
      const derivation = frame.DerivationImageSequence[0] ?? frame.DerivationImageSequence;
      const sourceImage = derivation.SourceImageSequence[0] ?? derivation.SourceImageSequence;
      expect(sourceImage.ReferencedSOPInstanceUID).toBe(uids[k]);
    }
  });

  it('reads back the same voxels on the source grid, and on its own grid without a source', async () => {
    const back = await readDicomSeg(segFile, source);
    expect(countDiffering(back.labels.data, truth)).toBe(0);
    expect(back.notes).toEqual([]);
    expect(back.segments.map((s) => [s.label, s.name])).toEqual([
      [2, 'Edema'],
      [4, 'Enhancing tumour'],
    ]);
    expect(back.referencedSeriesUid).toBe(source.meta.id);

    const alone = await readDicomSeg(segFile);
    const [nx, ny] = source.dims;
    const k0 = Math.round((alone.labels.geometry.origin[2] - source.geometry.origin[2]) / source.geometry.spacing[2]);
    const slab = truth.subarray(k0 * nx * ny, (k0 + alone.labels.dims[2]) * nx * ny);
    expect(alone.labels.dims.slice(0, 2)).toEqual([nx, ny]);
    expect(countDiffering(alone.labels.data, slab)).toBe(0);
    expect(truth.reduce((n, v) => n + (v ? 1 : 0), 0)).toBe(slab.reduce((n, v) => n + (v ? 1 : 0), 0));
  });

  it('writes a binary (whole-tumour) SEG that round-trips', async () => {
    const binary = truth.map((v) => (v ? 1 : 0));
    const file = join(tmp, 'binary.seg.dcm');
    const summary = await writeDicomSeg(file, { labels: binary, source, segments: BINARY_SEGMENTS, algorithm: { name: 'SAM2-UNet', version: '0.1.0' } });
    expect(summary.segments).toHaveLength(1);
    expect(summary.segments[0]!.voxels).toBe(82857 + 7810);
    const back = await readDicomSeg(file, source);
    expect(countDiffering(back.labels.data, binary)).toBe(0);
    const verdict = validate(file);
    if (verdict) expect(verdict.errors).toEqual([]);
  });

  it('reads a third-party SEG (pydicom test suite)', async () => {
    const back = await readDicomSeg(resolve(process.cwd(), '../shared/data/external/dicom/liver_1frame.dcm'));
    expect(back.labels.dims).toEqual([512, 512, 1]);
    expect(back.segments[0]!.name).toBe('Liver');
    // the file keeps 3 per-frame groups of the 3-frame original it was cut from
    expect(back.notes).toEqual(['3 per-frame groups for 1 frames: the extra groups were ignored']);
    // pydicom: mean of the stored bits 0.13821792602539062 over 512×512
    const ones = countDiffering(back.labels.data, new Uint8Array(back.labels.data.length));
    expect(ones).toBe(Math.round(0.13821792602539062 * 512 * 512));
  });

  it('refuses sources that are not DICOM and mismatched label maps', async () => {
    const nifti = (await readNifti(join(phantoms, 'BraTS20_Training_001/BraTS20_Training_001_seg.nii.gz'))).volumes[0]!;
    const algorithm = { name: 'x', version: '1' };
    await expect(writeDicomSeg(join(tmp, 'a.dcm'), { labels: truth, source: nifti, segments: BRATS_SEGMENTS, algorithm })).rejects.toThrow(/needs a volume read from a DICOM series/);
    await expect(writeDicomSeg(join(tmp, 'b.dcm'), { labels: truth.subarray(1), source, segments: BRATS_SEGMENTS, algorithm })).rejects.toThrow(UserError);
    await expect(writeDicomSeg(join(tmp, 'c.dcm'), { labels: truth, source, segments: [], algorithm })).rejects.toThrow(/no segments/);
    expect(existsSync(join(tmp, 'a.dcm')) || existsSync(join(tmp, 'b.dcm')) || existsSync(join(tmp, 'c.dcm'))).toBe(false);
  });

  it('exports an empty label map ("no tumour found") as one empty frame of the first segment', async () => {
    const file = join(tmp, 'empty.seg.dcm');
    const empty = new Uint8Array(truth.length);
    const summary = await writeDicomSeg(file, { labels: empty, source, segments: BRATS_SEGMENTS, algorithm: { name: 'SAM2-UNet', version: '0.1.0' } });
    expect(summary.frames).toBe(1);
    expect(summary.segments.map((s) => [s.label, s.voxels])).toEqual([[1, 0]]);
    const back = await readDicomSeg(file, source);
    expect(countDiffering(back.labels.data, empty)).toBe(0);
    const verdict = validate(file);
    if (verdict) expect(verdict.errors).toEqual([]);
  });

  it('refuses files that are not SEGs or are damaged, naming the file', async () => {
    const slice = join(dicomDir, readdirSync(dicomDir).find((f) => f.endsWith('.dcm'))!);
    await expect(readDicomSeg(slice)).rejects.toThrow(new RegExp(`${slice}: not a DICOM SEG`));
    await expect(readDicomSeg(join(dicomDir, 'README.txt'))).rejects.toThrow(/README\.txt: /);
    await expect(readDicomSeg(join(tmp, 'missing.dcm'))).rejects.toThrow(/missing\.dcm: no such file or directory/);
    const truncated = join(tmp, 'truncated.dcm');
    const bytes = readFileSync(segFile);
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 5000));
    await expect(readDicomSeg(truncated, source)).rejects.toThrow(/truncated\.dcm: /);
  });
});
