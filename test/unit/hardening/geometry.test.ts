/**
 * Findings 11 and 12 of issue 14: degenerate geometry passed through the readers (NaN sform →
 * spacing NaN, pixdim Inf, an all-zero sform, scl_slope 3e38 making Inf voxels; DICOM
 * PixelSpacing 0 silently 1 mm, a NaN orientation the identity), and very deep DICOM nesting
 * gave "Maximum call stack size exceeded". Real files, patched byte by byte.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeNifti, readNifti } from '../../../main/core/io/nifti.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { Volume } from '../../../main/core/io/volume.ts';

const tmp = mkdtempSync(join(tmpdir(), 'geometry-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A small int16 NIfTI with an sform, then `patch` applied to its header. */
function nifti(name: string, patch: (view: DataView) => void, fill = 100): string {
  const volume = new Volume({
    geometry: { dims: [4, 4, 4], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data: new Int16Array(64).fill(fill),
    meta: { id: 'v', description: '', modality: '', sources: [] },
  });
  const { header, data } = encodeNifti(volume);
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  patch(view);
  const path = join(tmp, name);
  writeFileSync(path, Buffer.concat([header, data]));
  return path;
}
const SROW = 280;
const setSrow = (view: DataView, values: number[]) => values.forEach((v, i) => view.setFloat32(SROW + 4 * i, v, true));

describe('NIfTI geometry and values checked at the reader', () => {
  it('the control: the unpatched file reads', async () => {
    const { volumes } = await readNifti(nifti('ok.nii', () => {}));
    expect(volumes[0]!.geometry.spacing).toEqual([1, 1, 1]);
  });

  it('a NaN sform is refused', async () => {
    const path = nifti('nan.nii', (view) => setSrow(view, new Array(12).fill(Number.NaN)));
    await expect(readNifti(path)).rejects.toThrow(`${path}: the sform holds non-finite values`);
  });

  it('pixdim = Inf (no sform, no qform) is refused', async () => {
    const path = nifti('inf.nii', (view) => {
      view.setInt16(252, 0, true);
      view.setInt16(254, 0, true);
      view.setFloat32(76 + 8, Number.POSITIVE_INFINITY, true);
    });
    await expect(readNifti(path)).rejects.toThrow(/inf\.nii: the pixdim holds non-finite values|inf\.nii: voxel spacing 1×Infinity×1/);
  });

  it('an all-zero sform is refused (spacing 0×0×0)', async () => {
    const path = nifti('zero.nii', (view) => setSrow(view, new Array(12).fill(0)));
    await expect(readNifti(path)).rejects.toThrow(`${path}: voxel spacing 0×0×0 from the sform is not usable (zero or non-finite)`);
  });

  it('a singular orientation (two equal axes) is refused', async () => {
    const path = nifti('singular.nii', (view) => setSrow(view, [1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0]));
    await expect(readNifti(path)).rejects.toThrow(`${path}: the sform orientation is singular`);
  });

  it('scl_slope 3e38 that overflows float32 is refused, naming slope and values', async () => {
    const path = nifti('slope.nii', (view) => view.setFloat32(112, 3e38, true));
    await expect(readNifti(path)).rejects.toThrow(/slope\.nii: scl_slope 3\.0*\d*e\+38 and scl_inter 0 take stored values up to 100 beyond the float32 range/);
    // a large slope on small values is fine
    const fine = nifti('slope-ok.nii', (view) => view.setFloat32(112, 3e36, true), 1);
    expect((await readNifti(fine)).volumes[0]!.slope).toBeCloseTo(3e36, -30);
  });
});

/** Rewrites a DS element's value in an explicit-VR little-endian file, keeping its length. */
function patchDS(file: string, group: number, element: number, value: string): void {
  const bytes = readFileSync(file);
  const tag = Buffer.alloc(4);
  tag.writeUInt16LE(group, 0);
  tag.writeUInt16LE(element, 2);
  const at = bytes.indexOf(Buffer.concat([tag, Buffer.from('DS')]));
  if (at < 0) throw new Error(`no DS (${group.toString(16)},${element.toString(16)}) in ${file}`);
  const length = bytes.readUInt16LE(at + 6);
  if (value.length > length) throw new Error(`"${value}" does not fit in ${length} bytes`);
  bytes.write(value.padEnd(length, ' '), at + 8, 'latin1');
  writeFileSync(file, bytes);
}

function dicomCopy(name: string): string {
  const source = resolve(process.cwd(), '../shared/data/phantoms/BraTS20_Training_001_flair_dicom');
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const file of readdirSync(source)) copyFileSync(join(source, file), join(dir, file));
  return dir;
}

describe('DICOM geometry checked at the reader', () => {
  it('the control: the copied series opens', async () => {
    const { studies } = await openPath(dicomCopy('dicom-ok'));
    expect(studies.length).toBe(1);
  }, 30_000);

  it('PixelSpacing 0 is refused instead of silently becoming 1 mm', async () => {
    const dir = dicomCopy('dicom-zero-spacing');
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.dcm'))) patchDS(join(dir, f), 0x0028, 0x0030, '0\\0');
    await expect(openPath(dir)).rejects.toThrow(/invalid PixelSpacing 0\\0 \(two positive numbers of mm expected\)/);
  }, 30_000);

  it('a negative PixelSpacing is refused', async () => {
    const dir = dicomCopy('dicom-negative-spacing');
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.dcm'))) patchDS(join(dir, f), 0x0028, 0x0030, '-1\\1');
    await expect(openPath(dir)).rejects.toThrow(/invalid PixelSpacing -1\\1/);
  }, 30_000);

  it('a NaN orientation is refused instead of becoming the identity', async () => {
    const dir = dicomCopy('dicom-nan-orientation');
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.dcm'))) patchDS(join(dir, f), 0x0020, 0x0037, 'NaN\\0\\0\\0\\1\\0');
    await expect(openPath(dir)).rejects.toThrow(/invalid ImageOrientationPatient NaN/);
  }, 30_000);
});
