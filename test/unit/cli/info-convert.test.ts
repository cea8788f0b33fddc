import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandIO } from '../../../main/cli/command.ts';
import { main } from '../../../main/cli/index.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { affineLPS, type Volume } from '../../../main/core/io/volume.ts';
import { checkAgainstGolden, type Golden } from '../io/nifti-golden.ts';

const shared = resolve(process.cwd(), '../shared/data');
const case001 = join(shared, 'phantoms/BraTS20_Training_001');
const tmp = mkdtempSync(join(tmpdir(), 'info-convert-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function capture(): CommandIO & { out: string; err: string } {
  const io = { out: '', err: '', interactive: false, stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
}

async function run(...argv: string[]): Promise<{ status: number; out: string; err: string }> {
  const io = capture();
  const status = await main(argv, io);
  return { status, out: io.out, err: io.err };
}

describe('sam2unet info', () => {
  it('prints the series and the BraTS study as JSON with the documented layout', async () => {
    const { status, out } = await run('info', case001, '--json');
    expect(status).toBe(0);
    const info = JSON.parse(out);
    expect(Object.keys(info)).toEqual(['series', 'study']);
    expect(info.series).toHaveLength(5);
    for (const s of info.series) {
      expect(Object.keys(s)).toEqual(['id', 'description', 'modality', 'dims', 'spacing', 'origin', 'direction', 'dtype', 'min', 'max', 'mean']);
      expect(s.dims).toEqual([240, 240, 155]);
      expect(s.spacing).toEqual([1, 1, 1]);
      // BraTS affine: RAS diag(-1, -1, 1) with origin (0, 239, 0) → LPS identity at (0, -239, 0)
      expect(s.origin).toEqual([0, -239, 0]);
      expect(s.direction).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    }
    const seg = info.series.find((s: { id: string }) => s.id === 'BraTS20_Training_001_seg.nii.gz');
    expect([seg.dtype, seg.min, seg.max]).toEqual(['uint8', 0, 4]);
    // mean label from index_001.json's counts: (2·82857 + 4·7810) / 240·240·155
    expect(seg.mean).toBeCloseTo((2 * 82857 + 4 * 7810) / (240 * 240 * 155), 12);
    expect(info.study).toEqual({
      name: 'BraTS20_Training_001',
      kind: 'brats',
      sequences: {
        t1: 'BraTS20_Training_001_t1.nii.gz',
        t1ce: 'BraTS20_Training_001_t1ce.nii.gz',
        t2: 'BraTS20_Training_001_t2.nii.gz',
        flair: 'BraTS20_Training_001_flair.nii.gz',
      },
      seg: 'BraTS20_Training_001_seg.nii.gz',
    });
  });

  it('prints a readable table, and scaled statistics for a scaled NIfTI', async () => {
    const { status, out } = await run('info', join(shared, 'external/nifti/functional.nii'));
    expect(status).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+DESCRIPTION\s+MODALITY\s+DIMS\s+SPACING \(mm\)\s+DTYPE\s+MIN\s+MAX\s+MEAN$/);
    expect(lines[1]).toMatch(/^functional\.nii#0\s+.*17×21×3\s+4×4×8\s+int16\s/);
    const json = JSON.parse((await run('info', join(shared, 'external/nifti/functional.nii'), '--json')).out);
    expect(json.series).toHaveLength(20);
    expect(json.study).toBeUndefined();
    expect(json.series[0].min).not.toBe(Math.round(json.series[0].min));
  });

  it('fails with one line naming the file for an unreadable input', async () => {
    const bad = join(tmp, 'bad.nii.gz');
    writeFileSync(bad, 'garbage that is not gzip');
    const { status, err } = await run('info', bad);
    expect(status).toBe(2);
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toContain(bad);
  });
});

const expected = JSON.parse(readFileSync(join(shared, 'external/expected.json'), 'utf8')).nifti as Record<string, Golden>;

describe('sam2unet convert', () => {
  for (const [name, golden] of Object.entries(expected)) {
    it(`round-trips ${name} through convert and still matches nibabel`, async () => {
      const input = join(shared, 'external/nifti', name);
      const frames = golden.shape.length > 3 ? golden.shape[3]! : 1;
      const volumes: Volume[] = [];
      for (let t = 0; t < frames; t++) {
        const output = join(tmp, `${name}.${t}.nii.gz`);
        const args = frames > 1 ? ['--series', `${name}#${t}`] : [];
        const { status, err } = await run('convert', input, output, ...args);
        expect(status, err).toBe(0);
        volumes.push(...(await readNifti(output)).volumes);
      }
      checkAgainstGolden(name, volumes, golden);
      const source = (await readNifti(input)).volumes[0]!;
      expect(volumes[0]!.dtype).toBe(source.isScaled ? 'float32' : source.dtype);
    });
  }

  it('asks for --series when the input holds several, listing the ids', async () => {
    const input = join(shared, 'external/nifti/example4d.nii.gz');
    const { status, err } = await run('convert', input, join(tmp, 'x.nii.gz'));
    expect(status).toBe(2);
    expect(err.trim()).toBe(`sam2unet: ${input} holds 2 series; choose one with --series: example4d.nii.gz#0, example4d.nii.gz#1`);
    const unknown = await run('convert', join(shared, 'external/nifti/example4d.nii.gz'), join(tmp, 'y.nii'), '--series', 'nope');
    expect(unknown.status).toBe(2);
    expect(unknown.err).toContain('no series "nope"');
    expect(unknown.err).toContain('example4d.nii.gz#0, example4d.nii.gz#1');
  });

  it('writes the chosen BraTS sequence with its stored type and geometry', async () => {
    const output = join(tmp, 'seg.nii');
    expect((await run('convert', case001, output, '--series', 'BraTS20_Training_001_seg.nii.gz')).status).toBe(0);
    const back = (await readNifti(output)).volumes[0]!;
    const source = (await readNifti(join(case001, 'BraTS20_Training_001_seg.nii.gz'))).volumes[0]!;
    expect(back.dtype).toBe('uint8');
    expect(affineLPS(back.geometry)).toEqual(affineLPS(source.geometry));
    expect(Buffer.compare(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength), Buffer.from(source.data.buffer, source.data.byteOffset, source.data.byteLength))).toBe(0);
  });

  it('refuses a non-NIfTI output name and an unreadable input with one line', async () => {
    const wrongExt = await run('convert', join(shared, 'external/nifti/standard.nii.gz'), join(tmp, 'out.png'));
    expect(wrongExt.status).toBe(2);
    expect(wrongExt.err).toContain('must end in .nii or .nii.gz');
    const missing = join(tmp, 'missing.nii');
    const gone = await run('convert', missing, join(tmp, 'out.nii'));
    expect(gone.status).toBe(2);
    expect(gone.err.trim()).toBe(`sam2unet: ${missing}: no such file or directory`);
  });

  it('converts a multi-frame DICOM file to one 3-D volume with its geometry (pydicom values, rel 1e-6)', async () => {
    const golden = JSON.parse(readFileSync(join(shared, 'external/expected.json'), 'utf8')).dicom['rtdose.dcm'];
    const output = join(tmp, 'rtdose.nii.gz');
    const { status, err } = await run('convert', join(shared, 'external/dicom/rtdose.dcm'), output);
    expect(status, err).toBe(0);
    const volume = (await readNifti(output)).volumes[0]!;
    expect(volume.dims).toEqual([golden.columns, golden.rows, golden.frames]);
    // the NIfTI stores float32: 1e-4 mm
    volume.geometry.origin.forEach((v, i) => expect(Math.abs(v - golden.ImagePositionPatient[i])).toBeLessThan(1e-4));
    expect(volume.geometry.spacing.slice(0, 2)).toEqual(golden.PixelSpacing);
    const stats = volume.stats();
    for (const key of ['min', 'max', 'mean'] as const) {
      expect(Math.abs(stats[key] - golden.modality_lut[key]) / Math.abs(golden.modality_lut[key])).toBeLessThan(1e-6);
    }
  });

  it('writes an RGB DICOM as an RGB24 NIfTI', async () => {
    const output = join(tmp, 'rgb.nii');
    expect((await run('convert', join(shared, 'external/dicom/SC_rgb_jpeg_dcmtk.dcm'), output)).status).toBe(0);
    const { header, volumes } = await readNifti(output);
    expect(header.datatype).toBe(128);
    expect([volumes[0]!.components, volumes[0]!.dims]).toEqual([3, [100, 100, 1]]);
  });

  it('converts the FLAIR DICOM series to the same values in the same world positions as the NIfTI', async () => {
    const output = join(tmp, 'flair_from_dicom.nii.gz');
    const { status, err } = await run('convert', join(shared, 'phantoms/BraTS20_Training_001_flair_dicom'), output);
    expect(status, err).toBe(0);
    const fromDicom = (await readNifti(output)).volumes[0]!;
    const reference = (await readNifti(join(case001, 'BraTS20_Training_001_flair.nii.gz'))).volumes[0]!;
    expect(fromDicom.dtype).toBe('float32'); // RescaleSlope 0.5, RescaleIntercept −10
    expectSameWorldValues(reference, fromDicom);
  });
});

/**
 * Both volumes must put the same values at the same world points. Their grids may differ by
 * axis flips and permutations (as dcm2niix's output would); anything else fails.
 */
function expectSameWorldValues(a: Volume, b: Volume): void {
  const fa = affineLPS(a.geometry);
  const fb = affineLPS(b.geometry);
  // index of a → index of b: inv(fb) · fa, which must be a signed permutation with integer offset
  const inv = invertAffine(fb);
  const t = multiply(inv, fa);
  const GRID_TOL = 1e-3;
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      const v = t[r * 4 + c]!;
      if (Math.abs(v - Math.round(v)) > GRID_TOL) throw new Error(`grids differ by more than flips/permutations: T[${r}][${c}] = ${v}`);
    }
    expect([0, 1, 2].filter((c) => Math.round(t[r * 4 + c]!) !== 0)).toHaveLength(1);
  }
  const [nx, ny, nz] = a.dims;
  const [mx, my] = b.dims;
  const m = t.map(Math.round);
  let compared = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const bi = m[0]! * i + m[1]! * j + m[2]! * k + m[3]!;
        const bj = m[4]! * i + m[5]! * j + m[6]! * k + m[7]!;
        const bk = m[8]! * i + m[9]! * j + m[10]! * k + m[11]!;
        if (bi < 0 || bj < 0 || bk < 0 || bi >= mx || bj >= my || bk >= b.dims[2]) throw new Error(`voxel ${i},${j},${k} falls outside the other grid`);
        const va = a.value(i + nx * (j + ny * k));
        const vb = b.value(bi + mx * (bj + my * bk));
        if (va !== vb) throw new Error(`value differs at ${i},${j},${k}: ${va} vs ${vb}`);
        compared++;
      }
    }
  }
  expect(compared).toBe(b.data.length);
}

function multiply(x: number[], y: number[]): number[] {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) for (let k = 0; k < 4; k++) out[r * 4 + c]! += x[r * 4 + k]! * y[k * 4 + c]!;
  return out;
}

/** Inverse of an affine 4×4 (last row 0 0 0 1). */
function invertAffine(a: number[]): number[] {
  const [m00, m01, m02, , m10, m11, m12, , m20, m21, m22] = a as number[];
  const det = m00! * (m11! * m22! - m12! * m21!) - m01! * (m10! * m22! - m12! * m20!) + m02! * (m10! * m21! - m11! * m20!);
  const r = [
    (m11! * m22! - m12! * m21!) / det, (m02! * m21! - m01! * m22!) / det, (m01! * m12! - m02! * m11!) / det,
    (m12! * m20! - m10! * m22!) / det, (m00! * m22! - m02! * m20!) / det, (m02! * m10! - m00! * m12!) / det,
    (m10! * m21! - m11! * m20!) / det, (m01! * m20! - m00! * m21!) / det, (m00! * m11! - m01! * m10!) / det,
  ];
  const tx = a[3]!;
  const ty = a[7]!;
  const tz = a[11]!;
  return [
    r[0]!, r[1]!, r[2]!, -(r[0]! * tx + r[1]! * ty + r[2]! * tz),
    r[3]!, r[4]!, r[5]!, -(r[3]! * tx + r[4]! * ty + r[5]! * tz),
    r[6]!, r[7]!, r[8]!, -(r[6]! * tx + r[7]! * ty + r[8]! * tz),
    0, 0, 0, 1,
  ];
}
