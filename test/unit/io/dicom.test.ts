import { rgbData } from '../../../main/core/io/colour.ts';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileError } from '../../../main/core/errors.ts';
import { decodePixels, loadDicom, loadDicomSources, parseDicomBuffer, parseDicomFile } from '../../../main/core/io/dicom/index.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { affineLPS, type Volume, type VoxelArray } from '../../../main/core/io/volume.ts';
import { EXPLICIT_BE, IMPLICIT_LE, buildDicom, buildSlice, type Elem } from '../../fixtures/dicom/make-dicom.ts';

const shared = path.resolve(process.cwd(), '../shared');
const externalDir = path.join(shared, 'data/external/dicom');
const phantomDir = path.join(shared, 'data/phantoms/BraTS20_Training_001_flair_dicom');
const phantomNifti = path.join(shared, 'data/phantoms/BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz');

interface Stats {
  min: number;
  max: number;
  mean: number;
}
interface Expected {
  transfer_syntax: string;
  modality: string;
  rows: number;
  columns: number;
  frames: number;
  samples_per_pixel: number;
  photometric: string;
  stored_sha256_int64: string;
  stored: Stats;
  modality_lut?: Stats;
  rescale_slope?: number;
  rescale_intercept?: number;
  ImagePositionPatient?: number[];
  ImageOrientationPatient?: number[];
  PixelSpacing?: number[];
}
const expected = JSON.parse(await readFile(path.join(shared, 'data/external/expected.json'), 'utf8')) as {
  dicom: Record<string, Expected>;
  dicom_bad: string[];
};
const fixturesDir = fileURLToPath(new URL('../../fixtures/dicom/', import.meta.url));
const referenceJson = JSON.parse(await readFile(path.join(fixturesDir, 'reference.json'), 'utf8')) as {
  made: Record<string, { transfer_syntax: string; dims: number[]; samples: number; stored_sha256_int64: string } | string>;
} & Record<string, { rgb_sha256_int64: string; rgb_mean: number }>;
const reference = referenceJson as unknown as Record<string, { rgb_sha256_int64: string; rgb_mean: number }>;
const made = Object.entries(referenceJson.made).filter((e): e is [string, { transfer_syntax: string; dims: number[]; samples: number; stored_sha256_int64: string }] => typeof e[1] !== 'string');

/** sha256 of the values as little-endian int64, which is what expected.json hashed (pydicom pixel_array order). */
function sha256Int64(data: VoxelArray): string {
  const wide = new BigInt64Array(data.length);
  for (let i = 0; i < data.length; i++) wide[i] = BigInt(data[i]!);
  return createHash('sha256').update(new Uint8Array(wide.buffer)).digest('hex');
}

function storedStats(data: VoxelArray): Stats {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, max, mean: sum / data.length };
}

/** Relative tolerance 1e-6 (absolute near zero), as the brief asks for statistics. */
function expectClose(actual: number, wanted: number, what: string): void {
  const tolerance = 1e-6 * Math.max(1, Math.abs(wanted));
  expect(Math.abs(actual - wanted), `${what}: ${actual} vs ${wanted}`).toBeLessThanOrEqual(tolerance);
}

function expectStats(actual: Stats, wanted: Stats, what: string): void {
  expectClose(actual.min, wanted.min, `${what} min`);
  expectClose(actual.max, wanted.max, `${what} max`);
  expectClose(actual.mean, wanted.mean, `${what} mean`);
}

async function rejection(promise: Promise<unknown>): Promise<FileError> {
  try {
    await promise;
  } catch (err) {
    expect(err, String(err)).toBeInstanceOf(FileError);
    return err as FileError;
  }
  throw new Error('expected a FileError, but it loaded');
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'dicom-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function writeFolder(name: string, files: Record<string, Uint8Array | string>): Promise<string> {
  const dir = path.join(tmp, name);
  for (const [file, bytes] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), bytes);
  }
  return dir;
}

describe('external DICOM files against pydicom 2.3 (expected.json)', () => {
  for (const [file, e] of Object.entries(expected.dicom)) {
    it(`${file} (${e.transfer_syntax})`, async () => {
      const { series, notes } = await loadDicom([path.join(externalDir, file)]);
      expect(notes).toEqual([]);
      expect(series).toHaveLength(1);
      const v = series[0]!;
      expect(v.meta.modality).toBe(e.modality);
      expect(v.dims).toEqual([e.columns, e.rows, e.frames]);
      expect(v.components).toBe(e.samples_per_pixel);
      expect(v.meta.extra?.transferSyntax).toBe(e.transfer_syntax);

      if (e.samples_per_pixel === 3) {
        // the samples as stored (YCbCr for YBR_FULL), as pydicom delivers them ...
        expect(v.meta.extra?.colour).toBe(true);
        expect(v.meta.extra?.photometric).toBe(e.photometric.startsWith('YBR_FULL') ? 'YBR_FULL' : 'RGB');
        expect(sha256Int64(v.data)).toBe(e.stored_sha256_int64);
        expectStats(storedStats(v.data), e.stored, 'stored');
        // ... and as RGB equal to pydicom's own YBR→RGB conversion (fixtures/dicom/reference.json)
        const rgb = rgbData(v);
        expect(sha256Int64(rgb)).toBe(reference[file]!.rgb_sha256_int64);
        expectClose(storedStats(rgb).mean, reference[file]!.rgb_mean, 'rgb mean');
      } else {
        expect(sha256Int64(v.data)).toBe(e.stored_sha256_int64);
        expectStats(storedStats(v.data), e.stored, 'stored');
        expectStats(v.stats(), e.modality_lut!, 'modality LUT');
        expect(v.slope).toBe(e.rescale_slope ?? 1);
        expect(v.intercept).toBe(e.rescale_intercept ?? 0);
      }

      const g = v.geometry;
      if (e.PixelSpacing) {
        expect(g.spacing[0]).toBeCloseTo(e.PixelSpacing[1]!, 9);
        expect(g.spacing[1]).toBeCloseTo(e.PixelSpacing[0]!, 9);
      }
      if (e.ImagePositionPatient) {
        g.origin.forEach((value, i) => expect(value).toBeCloseTo(e.ImagePositionPatient![i]!, 9));
      } else if (file === 'liver_1frame.dcm') {
        // a SEG: its geometry lives in the functional groups, which expected.json does not list
        // (values read by hand with pydicom: PerFrame…PlanePositionSequence, Shared…PixelMeasuresSequence)
        expect(g.origin).toEqual([-235.2, -226.8, -128.69]);
        expect(g.spacing.slice(0, 2)).toEqual([0.810547, 0.810547]);
      } else {
        expect(g.origin).toEqual([0, 0, 0]);
      }
      const iop = e.ImageOrientationPatient ?? [1, 0, 0, 0, 1, 0];
      for (let r = 0; r < 3; r++) {
        expect(g.direction[r * 3]).toBeCloseTo(iop[r]!, 9); // x: row cosine (along a row, increasing column)
        expect(g.direction[r * 3 + 1]).toBeCloseTo(iop[3 + r]!, 9); // y: column cosine
      }
    });
  }

  for (const [file, e] of made) {
    it(`${file} (${e.transfer_syntax}, made with dcmtk): same stored values as an independent decoder`, async () => {
      const { series } = await loadDicom([path.join(fixturesDir, file)]);
      const v = series[0]!;
      expect(v.meta.extra?.transferSyntax).toBe(e.transfer_syntax);
      expect(v.dims).toEqual(e.dims);
      expect(v.components).toBe(e.samples);
      expect(sha256Int64(v.data)).toBe(e.stored_sha256_int64);
    });
  }

  it('refuses every file of dicom_bad with a FileError naming the file', async () => {
    expect(expected.dicom_bad.length).toBeGreaterThan(0);
    for (const file of expected.dicom_bad) {
      const full = path.join(externalDir, file);
      const err = await rejection(loadDicom([full]));
      expect(err.message.startsWith(full)).toBe(true);
      expect(err.file).toBe(full);
    }
    expect((await rejection(loadDicom([path.join(externalDir, 'MR_truncated.dcm')]))).problem).toMatch(/truncated pixel data/);
    expect((await rejection(loadDicom([path.join(externalDir, 'reportsi.dcm')]))).problem).toBe('not an image: Basic Text SR');
    expect((await rejection(loadDicom([path.join(externalDir, 'rtplan.dcm')]))).problem).toBe('not an image: RT Plan');
  });

  it('puts RT Dose frames along the normal by GridFrameOffsetVector', async () => {
    const v = (await loadDicom([path.join(externalDir, 'rtdose.dcm')])).series[0]!;
    expect(v.geometry.spacing[2]).toBeCloseTo(5, 9);
    expect(v.meta.extra?.frameNumbers).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
  });

  it('exposes parsing and decoding separately', async () => {
    const ds = await parseDicomFile(path.join(externalDir, 'CT_small.dcm'));
    expect(ds.number('Rows')).toBe(128);
    expect(ds.string('Modality')).toBe('CT');
    expect(ds.numbers('PixelSpacing')).toEqual([0.661468, 0.661468]);
    const pixels = await decodePixels(ds);
    expect(pixels).toBeInstanceOf(Int16Array);
    expect(sha256Int64(pixels)).toBe(expected.dicom['CT_small.dcm']!.stored_sha256_int64);
  });
});


describe('the BraTS FLAIR phantom series', () => {
  let loaded: { series: Volume[]; notes: string[] };
  beforeAll(async () => {
    loaded = await loadDicom([phantomDir]);
  });

  it('loads 155 shuffled files as one series and notes the non-DICOM file', () => {
    expect(loaded.series).toHaveLength(1);
    expect(loaded.notes).toHaveLength(1);
    expect(loaded.notes[0]).toMatch(/^skipped .*README\.txt: not a DICOM file$/);
    const v = loaded.series[0]!;
    expect(v.dims).toEqual([240, 240, 155]);
    expect(v.dtype).toBe('uint16');
    expect([v.slope, v.intercept]).toEqual([0.5, -10]);
    expect(v.meta.sources).toHaveLength(155);
    expect(v.meta.sopInstanceUids).toHaveLength(155);
    expect(new Set(v.meta.sopInstanceUids).size).toBe(155);
    expect(v.meta.modality).toBe('MR');
    expect(v.meta.description).toBe('FLAIR');
    expect(v.meta.studyInstanceUid).toMatch(/^[\d.]+$/);
    expect(v.meta.frameOfReferenceUid).toMatch(/^[\d.]+$/);
    expect(v.meta.sopClassUid).toBe('1.2.840.10008.5.1.4.1.1.4');
    const dicom = v.meta.extra?.dicom as Record<string, unknown>;
    expect(dicom.PatientID).toBe('PHANTOM001');
    expect(dicom.Rows).toBe(240);
    expect(dicom.BitsStored).toBe(16);
  });

  it('orders slices by position: sopInstanceUids follow z, and InstanceNumber is not what sorted them', async () => {
    const v = loaded.series[0]!;
    const z: number[] = [];
    const instance: number[] = [];
    for (const file of v.meta.sources) {
      const ds = await parseDicomFile(file);
      const ipp = ds.numbers('ImagePositionPatient')!;
      z.push(ipp[2]!);
      instance.push(ds.number('InstanceNumber')!);
      expect(ds.string('SOPInstanceUID')).toBe(v.meta.sopInstanceUids![z.length - 1]);
    }
    for (let k = 1; k < z.length; k++) expect(z[k]! - z[k - 1]!).toBeCloseTo(v.geometry.spacing[2], 6);
    const sortedByInstance = instance.every((n, k) => k === 0 || n > instance[k - 1]!);
    expect(sortedByInstance).toBe(false);
  });

  it('equals BraTS20_Training_001_flair.nii.gz voxel for voxel in world space (exact after rescale)', async () => {
    const v = loaded.series[0]!;
    const nifti = await readNifti(phantomNifti);
    const n = (Array.isArray(nifti) ? nifti[0] : (nifti as { volumes: Volume[] }).volumes[0]) as Volume;
    const a = affineLPS(v.geometry);
    const b = affineLPS(n.geometry);
    const inv = invertAffine(b);
    // world→NIfTI index for DICOM voxel (i, j, k) is an affine map: M = inv(B)·A
    const m = multiply(inv, a);
    const [nx, ny, nz] = v.dims;
    const [mx, my, mz] = n.dims;
    let compared = 0;
    let worst = 0;
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const fi = m[0]! * i + m[1]! * j + m[2]! * k + m[3]!;
          const fj = m[4]! * i + m[5]! * j + m[6]! * k + m[7]!;
          const fk = m[8]! * i + m[9]! * j + m[10]! * k + m[11]!;
          const ri = Math.round(fi);
          const rj = Math.round(fj);
          const rk = Math.round(fk);
          worst = Math.max(worst, Math.abs(fi - ri), Math.abs(fj - rj), Math.abs(fk - rk));
          if (ri < 0 || rj < 0 || rk < 0 || ri >= mx || rj >= my || rk >= mz) continue;
          const dv = v.value(i + nx * (j + ny * k));
          const nv = n.value(ri + mx * (rj + my * rk));
          if (dv !== nv) throw new Error(`voxel (${i},${j},${k}): DICOM ${dv} vs NIfTI ${nv}`);
          compared++;
        }
      }
    }
    expect(worst).toBeLessThan(1e-3); // grids coincide (within 1 µm)
    expect(compared).toBe(nx * ny * nz);
  });
});

function invertAffine(a: number[]): number[] {
  // 4×4 row-major with last row 0 0 0 1: invert the 3×3 part, then the translation
  const [a0, a1, a2, , a4, a5, a6, , a8, a9, a10] = a as [number, number, number, number, number, number, number, number, number, number, number];
  const det = a0 * (a5 * a10 - a6 * a9) - a1 * (a4 * a10 - a6 * a8) + a2 * (a4 * a9 - a5 * a8);
  const r = [
    (a5 * a10 - a6 * a9) / det, (a2 * a9 - a1 * a10) / det, (a1 * a6 - a2 * a5) / det,
    (a6 * a8 - a4 * a10) / det, (a0 * a10 - a2 * a8) / det, (a2 * a4 - a0 * a6) / det,
    (a4 * a9 - a5 * a8) / det, (a1 * a8 - a0 * a9) / det, (a0 * a5 - a1 * a4) / det,
  ];
  const t = [a[3]!, a[7]!, a[11]!];
  const out: number[] = [];
  for (let row = 0; row < 3; row++) {
    out.push(r[row * 3]!, r[row * 3 + 1]!, r[row * 3 + 2]!, -(r[row * 3]! * t[0]! + r[row * 3 + 1]! * t[1]! + r[row * 3 + 2]! * t[2]!));
  }
  return [...out, 0, 0, 0, 1];
}

function multiply(a: number[], b: number[]): number[] {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) for (let k = 0; k < 4; k++) out[r * 4 + c]! += a[r * 4 + k]! * b[k * 4 + c]!;
  return out;
}

/** Loads in-memory files as if found in a folder. */
function loadMemory(files: Record<string, Uint8Array>, explicit = false) {
  return loadDicomSources(
    Object.entries(files).map(([name, bytes]) => ({ name, bytes, explicit })),
    'memory',
  );
}

describe('series assembly', () => {
  it('sorts by position along the normal, not by InstanceNumber or file name, and takes spacing from positions', async () => {
    const files = {
      'a.dcm': buildSlice({ position: [0, 0, 2.5], instanceNumber: 1, extra: [['00180050', 'DS', 5]] }),
      'b.dcm': buildSlice({ position: [0, 0, 0], instanceNumber: 2, extra: [['00180050', 'DS', 5]] }),
      'c.dcm': buildSlice({ position: [0, 0, 1.25], instanceNumber: 3, extra: [['00180050', 'DS', 5]] }),
    };
    const { series } = await loadMemory(files);
    const v = series[0]!;
    expect(v.dims).toEqual([3, 4, 3]);
    expect(v.geometry.spacing).toEqual([1, 1, 1.25]);
    expect(v.geometry.origin).toEqual([0, 0, 0]);
    expect(v.meta.sources).toEqual(['b.dcm', 'c.dcm', 'a.dcm']);
    expect(v.meta.sopInstanceUids).toEqual(['1.2.3.4.2', '1.2.3.4.3', '1.2.3.4.1']);
    expect(Array.from(v.sliceView(0)).slice(0, 2)).toEqual([200, 201]);
    expect(Array.from(v.sliceView(2)).slice(0, 2)).toEqual([100, 101]);
  });

  it('handles an oblique orientation: direction columns are row cosine, column cosine, normal', async () => {
    const c = Math.cos(0.3);
    const s = Math.sin(0.3);
    const orientation = [c, s, 0, 0, 0, -1]; // rows run along (c, s, 0), columns go down in z
    const normal = [0, 0, 0];
    const row = orientation.slice(0, 3);
    const col = orientation.slice(3);
    normal[0] = row[1]! * col[2]! - row[2]! * col[1]!;
    normal[1] = row[2]! * col[0]! - row[0]! * col[2]!;
    normal[2] = row[0]! * col[1]! - row[1]! * col[0]!;
    const at = (t: number) => [10 + t * normal[0]!, 20 + t * normal[1]!, 30];
    const files = {
      x1: buildSlice({ position: at(3), orientation, pixelSpacing: [0.5, 0.7], instanceNumber: 1 }),
      x2: buildSlice({ position: at(0), orientation, pixelSpacing: [0.5, 0.7], instanceNumber: 2 }),
      x3: buildSlice({ position: at(1.5), orientation, pixelSpacing: [0.5, 0.7], instanceNumber: 3 }),
    };
    const v = (await loadMemory(files)).series[0]!;
    expect(v.meta.sources).toEqual(['x2', 'x3', 'x1']);
    expect(v.geometry.spacing[0]).toBeCloseTo(0.7, 12);
    expect(v.geometry.spacing[1]).toBeCloseTo(0.5, 12);
    expect(v.geometry.spacing[2]).toBeCloseTo(1.5, 9);
    const d = v.geometry.direction;
    for (let r = 0; r < 3; r++) {
      expect(d[r * 3]).toBeCloseTo(row[r]!, 12);
      expect(d[r * 3 + 1]).toBeCloseTo(col[r]!, 12);
      expect(d[r * 3 + 2]).toBeCloseTo(normal[r]!, 12);
    }
    v.geometry.origin.forEach((value, i) => expect(value).toBeCloseTo(at(0)[i]!, 9));
  });

  it('refuses uneven spacing, gantry tilt and duplicate positions with a message naming the series', async () => {
    const uneven = await rejection(
      loadMemory({ a: buildSlice({ position: [0, 0, 0], instanceNumber: 1 }), b: buildSlice({ position: [0, 0, 1], instanceNumber: 2 }), c: buildSlice({ position: [0, 0, 3], instanceNumber: 3 }) }),
    );
    expect(uneven.message).toMatch(/series 1\.2\.3\.9 \(TEST SERIES\): uneven slice spacing/);
    const tilt = await rejection(
      loadMemory({ a: buildSlice({ position: [0, 0, 0], instanceNumber: 1 }), b: buildSlice({ position: [0, 0.3, 1], instanceNumber: 2 }), c: buildSlice({ position: [0, 0.6, 2], instanceNumber: 3 }) }),
    );
    expect(tilt.message).toMatch(/series 1\.2\.3\.9 .*gantry tilt/);
    const duplicate = await rejection(
      loadMemory({ a: buildSlice({ position: [0, 0, 0], instanceNumber: 1 }), b: buildSlice({ position: [0, 0, 1], instanceNumber: 2 }), c: buildSlice({ position: [0, 0, 1], instanceNumber: 3 }) }),
    );
    expect(duplicate.message).toMatch(/series 1\.2\.3\.9 .*same position/);
  });

  it('splits a series with two orientations or two sizes into volumes <uid>, <uid>.2 …', async () => {
    const sagittal = [0, 1, 0, 0, 0, -1];
    const files = {
      a1: buildSlice({ position: [0, 0, 0], instanceNumber: 1 }),
      a2: buildSlice({ position: [0, 0, 1], instanceNumber: 2 }),
      a3: buildSlice({ position: [0, 0, 2], instanceNumber: 3 }),
      s1: buildSlice({ position: [0, 0, 0], orientation: sagittal, instanceNumber: 4 }),
      s2: buildSlice({ position: [2, 0, 0], orientation: sagittal, instanceNumber: 5 }),
      big: buildSlice({ position: [0, 0, 5], rows: 2, columns: 2, instanceNumber: 6 }),
    };
    const { series } = await loadMemory(files);
    expect(series.map((v) => v.meta.id).sort()).toEqual(['1.2.3.9', '1.2.3.9.2', '1.2.3.9.3']);
    const byId = Object.fromEntries(series.map((v) => [v.meta.id, v]));
    expect(byId['1.2.3.9']!.dims).toEqual([3, 4, 3]);
    expect(byId['1.2.3.9.2']!.dims).toEqual([3, 4, 2]);
    expect(byId['1.2.3.9.2']!.geometry.spacing[2]).toBe(2);
    expect(byId['1.2.3.9.3']!.dims).toEqual([2, 2, 1]);
  });

  it('keeps one slope/intercept when shared, converts to float32 real values when they differ per slice', async () => {
    const same = (await loadMemory({
      a: buildSlice({ position: [0, 0, 0], slope: 2, intercept: -5, instanceNumber: 1 }),
      b: buildSlice({ position: [0, 0, 1], slope: 2, intercept: -5, instanceNumber: 2 }),
    })).series[0]!;
    expect([same.dtype, same.slope, same.intercept]).toEqual(['uint16', 2, -5]);
    expect(same.value(0)).toBe(100 * 2 - 5);
    const differ = (await loadMemory({
      a: buildSlice({ position: [0, 0, 0], slope: 2, intercept: -5, instanceNumber: 1 }),
      b: buildSlice({ position: [0, 0, 1], slope: 0.5, intercept: 10, instanceNumber: 2 }),
    })).series[0]!;
    expect([differ.dtype, differ.slope, differ.intercept]).toEqual(['float32', 1, 0]);
    expect(differ.data[0]).toBe(100 * 2 - 5);
    expect(differ.data[12]).toBe(200 * 0.5 + 10);
    expect(differ.data[13]).toBe(201 * 0.5 + 10);
  });

  it('takes single-slice spacing from SpacingBetweenSlices, else SliceThickness, else 1', async () => {
    const one = async (extra: Elem[]) => (await loadMemory({ a: buildSlice({ position: [1, 2, 3], extra }) })).series[0]!.geometry.spacing[2];
    expect(await one([['00180088', 'DS', 2.5], ['00180050', 'DS', 4]])).toBe(2.5);
    expect(await one([['00180050', 'DS', 4]])).toBe(4);
    expect(await one([])).toBe(1);
  });
});

describe('pixel decoding edge cases', () => {
  it('masks to BitsStored and sign-extends 12-bit signed data', async () => {
    // high nibble holds garbage (overlay bits), as some scanners write
    const raw = new Uint16Array([0xafff, 0x57ff, 0x3800, 0x0001, 0xf000, 0x0800]);
    const v = (await loadMemory({ a: buildSlice({ rows: 2, columns: 3, bitsStored: 12, signed: true, pixels: new Uint8Array(raw.buffer) }) })).series[0]!;
    expect(v.dtype).toBe('int16');
    expect(Array.from(v.data)).toEqual([-1, 2047, -2048, 1, 0, -2048]);
    const u = (await loadMemory({ a: buildSlice({ rows: 2, columns: 3, bitsStored: 12, pixels: new Uint8Array(raw.buffer) }) })).series[0]!;
    expect(Array.from(u.data)).toEqual([4095, 2047, 2048, 1, 0, 2048]);
  });

  it('reads implicit VR and byte-swaps explicit big endian pixel data', async () => {
    const values = new Uint16Array([1, 256, 513, 65535, 2, 3]);
    const swapped = new Uint8Array(values.length * 2);
    values.forEach((v, i) => {
      swapped[2 * i] = v >> 8;
      swapped[2 * i + 1] = v & 255;
    });
    const be = (await loadMemory({ a: buildSlice({ rows: 2, columns: 3, pixels: swapped, transferSyntax: EXPLICIT_BE }) })).series[0]!;
    expect(Array.from(be.data)).toEqual(Array.from(values));
    const implicit = (await loadMemory({ a: buildSlice({ rows: 2, columns: 3, pixels: new Uint8Array(values.buffer), transferSyntax: IMPLICIT_LE }) })).series[0]!;
    expect(Array.from(implicit.data)).toEqual(Array.from(values));
  });

  it('stacks multi-frame files by their per-frame functional group positions (frames stored out of order)', async () => {
    const frames = [2, 0, 1]; // z of frame 1, 2, 3
    const pixels = new Uint16Array(3 * 2 * 2).map((_, i) => 10 * Math.floor(i / 4) + (i % 4));
    const perFrame = frames.map((z) => [
      ['00209113', 'SQ', [[['00200032', 'DS', [5, 6, z * 3]]]]],
      ['00289145', 'SQ', [[['00281053', 'DS', 1], ['00281052', 'DS', -100]]]],
    ] as Elem[]);
    const shared: Elem[] = [
      ['00209116', 'SQ', [[['00200037', 'DS', [1, 0, 0, 0, 1, 0]]]]],
      ['00289110', 'SQ', [[['00280030', 'DS', [0.8, 0.9]], ['00180050', 'DS', 3]]]],
    ];
    const file = buildSlice({
      rows: 2,
      columns: 2,
      pixels: new Uint8Array(pixels.buffer),
      extra: [
        ['00280008', 'IS', 3],
        ['52009229', 'SQ', [shared]],
        ['52009230', 'SQ', perFrame],
      ],
    });
    const v = (await loadMemory({ mf: file }, true)).series[0]!;
    expect(v.dims).toEqual([2, 2, 3]);
    expect(v.geometry.spacing).toEqual([0.9, 0.8, 3]);
    expect(v.geometry.origin).toEqual([5, 6, 0]);
    expect([v.slope, v.intercept]).toEqual([1, -100]);
    expect(Array.from(v.data)).toEqual([10, 11, 12, 13, 20, 21, 22, 23, 0, 1, 2, 3]);
    expect(v.meta.extra?.frameNumbers).toEqual([2, 3, 1]);
    expect(v.meta.sopInstanceUids).toEqual(['1.2.3.4.1', '1.2.3.4.1', '1.2.3.4.1']);
  });

  it('stacks multi-frame files without functional groups by SpacingBetweenSlices, else unit steps', async () => {
    const pixels = new Uint8Array(new Uint16Array(2 * 2 * 2).map((_, i) => i).buffer);
    const base: Elem[] = [['00280008', 'IS', 2]];
    const withSpacing = (await loadMemory({ m: buildSlice({ rows: 2, columns: 2, pixels, position: [0, 0, 7], extra: [...base, ['00180088', 'DS', 2.5]] }) })).series[0]!;
    expect(withSpacing.geometry.spacing[2]).toBe(2.5);
    expect(withSpacing.geometry.origin).toEqual([0, 0, 7]);
    const unit = (await loadMemory({ m: buildSlice({ rows: 2, columns: 2, pixels, position: [0, 0, 7], extra: base }) })).series[0]!;
    expect(unit.geometry.spacing[2]).toBe(1);
    expect(Array.from(unit.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('delivers colour interleaved in its stored colour space; RGB on request', async () => {
    const planar = new Uint8Array([1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24]); // R plane, G plane, B plane of 2×2
    const colourTags = (photometric: string, planarConfiguration: number): Elem[] => [
      ['00280002', 'US', 3],
      ['00280004', 'CS', photometric],
      ['00280006', 'US', planarConfiguration],
    ];
    const rgb = (await loadMemory({ c: buildSlice({ rows: 2, columns: 2, bitsAllocated: 8, pixels: planar, extra: colourTags('RGB', 1) }) })).series[0]!;
    expect(rgb.components).toBe(3);
    expect(rgb.meta.extra?.colour).toBe(true);
    expect(Array.from(rgb.data)).toEqual([1, 11, 21, 2, 12, 22, 3, 13, 23, 4, 14, 24]);
    // YCbCr of pure red (76, 85, 255) and mid grey (128, 128, 128), interleaved
    const ybr = new Uint8Array([76, 85, 255, 128, 128, 128, 76, 85, 255, 128, 128, 128]);
    expect(rgbData(rgb)).toBe(rgb.data);
    const full = (await loadMemory({ y: buildSlice({ rows: 2, columns: 2, bitsAllocated: 8, pixels: ybr, extra: colourTags('YBR_FULL', 0) }) })).series[0]!;
    expect(full.meta.extra?.photometric).toBe('YBR_FULL');
    expect(Array.from(full.data)).toEqual(Array.from(ybr));
    expect(Array.from(rgbData(full).subarray(0, 6))).toEqual([254, 0, 0, 128, 128, 128]);
    // YBR_FULL_422: each pixel pair stores Y1 Y2 Cb Cr; delivered expanded, still YCbCr
    const sub = new Uint8Array([76, 128, 85, 255, 76, 76, 85, 255]);
    const expanded = (await loadMemory({ y: buildSlice({ rows: 2, columns: 2, bitsAllocated: 8, pixels: sub, extra: colourTags('YBR_FULL_422', 0) }) })).series[0]!;
    expect(expanded.meta.extra?.photometric).toBe('YBR_FULL');
    expect(Array.from(expanded.data.subarray(0, 6))).toEqual([76, 85, 255, 128, 85, 255]);
    expect(Array.from(rgbData(expanded).subarray(0, 6))).toEqual([254, 0, 0, 255, 52, 52]);
    const partial = buildSlice({ rows: 2, columns: 2, bitsAllocated: 8, pixels: ybr, extra: colourTags('YBR_PARTIAL_420', 0) });
    expect((await rejection(loadMemory({ 'p.dcm': partial }, true))).problem).toMatch(/unsupported colour PhotometricInterpretation YBR_PARTIAL_420/);
  });

  it('unpacks 1-bit data least significant bit first', async () => {
    const v = (await loadMemory({ s: buildSlice({ rows: 2, columns: 4, bitsAllocated: 1, pixels: new Uint8Array([0b10100101, 0]) }) })).series[0]!;
    expect(Array.from(v.data)).toEqual([1, 0, 1, 0, 0, 1, 0, 1]);
  });
});

describe('reading from disk', () => {
  it('reads big files header-first with pixels straight into the volume, identical to reading them whole', async () => {
    const rows = 150;
    const columns = 120;
    const values = new Uint16Array(rows * columns).map((_, i) => (i * 7919) & 0xffff);
    const swapped = new Uint8Array(values.length * 2);
    values.forEach((v, i) => {
      swapped[2 * i] = v >> 8;
      swapped[2 * i + 1] = v & 255;
    });
    const files = {
      'le.dcm': buildSlice({ rows, columns, pixels: new Uint8Array(values.buffer), position: [0, 0, 0] }),
      'be.dcm': buildSlice({ rows, columns, pixels: swapped, transferSyntax: EXPLICIT_BE, position: [0, 0, 0] }),
      'masked.dcm': buildSlice({ rows, columns, pixels: new Uint8Array(values.buffer), bitsStored: 12, signed: true, position: [0, 0, 0] }),
    };
    const dir = await writeFolder('big', files);
    for (const [name, bytes] of Object.entries(files)) {
      const fromDisk = (await loadDicom([path.join(dir, name)])).series[0]!;
      const inMemory = (await loadMemory({ [name]: bytes })).series[0]!;
      expect(fromDisk.dims).toEqual([columns, rows, 1]);
      expect(sha256Int64(fromDisk.data), name).toBe(sha256Int64(inMemory.data));
    }
    expect(Array.from((await loadDicom([path.join(dir, 'be.dcm')])).series[0]!.data.subarray(0, 4))).toEqual(Array.from(values.subarray(0, 4)));
    const cut = files['le.dcm'].subarray(0, files['le.dcm'].length - 100);
    const truncatedDir = await writeFolder('big-truncated', { 'cut.dcm': cut });
    const err = await rejection(loadDicom([path.join(truncatedDir, 'cut.dcm')]));
    expect(err.problem).toBe(`truncated pixel data: ${rows * columns * 2 - 100} bytes, expected ${rows * columns * 2} (150×120×1 frames × 1 samples × 16 bits)`);
  });
});

describe('refusals', () => {
  it('names unsupported transfer syntaxes', async () => {
    const err = await rejection(loadMemory({ 'mpeg.dcm': buildSlice({ transferSyntax: '1.2.840.10008.1.2.4.100' }) }, true));
    expect(err.message).toBe('mpeg.dcm: unsupported transfer syntax 1.2.840.10008.1.2.4.100 (MPEG2 Main Profile / Main Level)');
  });

  it('names missing required tags and truncated pixel data', async () => {
    const noRows = buildSlice({ extra: [['00280010', 'US', new Uint8Array(0)]] });
    expect((await rejection(loadMemory({ 'r.dcm': noRows }, true))).message).toBe('r.dcm: missing required tag Rows');
    const short = buildSlice({ rows: 4, columns: 3, pixels: new Uint8Array(20) });
    expect((await rejection(loadMemory({ 's.dcm': short }, true))).problem).toMatch(/^truncated pixel data: 20 bytes, expected 24/);
    const huge = buildSlice({ rows: 65535, columns: 65535, pixels: new Uint8Array(20), extra: [['00280008', 'IS', 999999]] });
    const started = performance.now();
    expect((await rejection(loadMemory({ 'h.dcm': huge }, true))).problem).toMatch(/image too large|truncated/);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('refuses a non-DICOM or non-image file named explicitly, and skips them with a note inside a folder', async () => {
    const folder = await writeFolder('mixed2', {
      'notes.txt': 'hello, not DICOM at all\n'.repeat(10),
      'sr.dcm': buildDicom([
        ['00080016', 'UI', '1.2.840.10008.5.1.4.1.1.88.33'],
        ['00080060', 'CS', 'SR'],
        ['0020000E', 'UI', '9.9'],
      ]),
      'deeper/slice.dcm': buildSlice({ position: [0, 0, 0] }),
      '.DS_Store': 'hidden metadata, skipped without a note',
    });
    const { series, notes } = await loadDicom([folder]);
    expect(series).toHaveLength(1);
    expect(series[0]!.meta.sources).toEqual([path.join(folder, 'deeper/slice.dcm')]);
    expect(notes.sort()).toEqual([`skipped ${path.join(folder, 'notes.txt')}: not a DICOM file`, `skipped ${path.join(folder, 'sr.dcm')}: not an image: Comprehensive SR`]);

    // files a caller discovered itself (not named by the user) can be skipped like folder contents
    const discovered = await loadDicom([path.join(folder, 'notes.txt'), path.join(folder, 'deeper/slice.dcm')], { skipBadFiles: true });
    expect(discovered.series).toHaveLength(1);
    expect(discovered.notes).toEqual([`skipped ${path.join(folder, 'notes.txt')}: not a DICOM file`]);

    const twice = await loadDicom([folder, path.join(folder, 'deeper/slice.dcm')]);
    expect(twice.series[0]!.dims).toEqual([3, 4, 1]);

    const txt = path.join(folder, 'notes.txt');
    expect((await rejection(loadDicom([txt]))).message).toBe(`${txt}: not a DICOM file`);
    const sr = path.join(folder, 'sr.dcm');
    expect((await rejection(loadDicom([sr]))).message).toBe(`${sr}: not an image: Comprehensive SR`);
    const empty = await writeFolder('only-junk', { 'a.txt': 'x' });
    expect((await rejection(loadDicom([empty]))).file).toBe(empty);
    expect((await rejection(loadDicom([path.join(tmp, 'does-not-exist')]))).problem).toMatch(/cannot open/);
  });

  it('turns whatever dicom-parser throws into a FileError', () => {
    const garbage = new Uint8Array(400);
    garbage.set([0x44, 0x49, 0x43, 0x4d], 128);
    garbage.fill(0xff, 132);
    expect(() => parseDicomBuffer(garbage, 'g.dcm')).toThrow(FileError);
    expect(() => parseDicomBuffer(garbage, 'g.dcm')).toThrow(/^g\.dcm: /);
  });
});
