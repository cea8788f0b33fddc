import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { parseNiftiHeader, readNifti, writeNifti } from '../../../main/core/io/nifti.ts';
import { Volume, type VoxelType, type Geometry } from '../../../main/core/io/volume.ts';

const tmp = mkdtempSync(join(tmpdir(), 'nifti-write-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Geometry round-trip tolerance (the file stores float32). */
const GEOMETRY_TOL = 1e-5;

const rotation = (angle: number) => [Math.cos(angle), -Math.sin(angle), 0, Math.sin(angle), Math.cos(angle), 0, 0, 0, 1];
// oblique and improper (det −1): needs qfac = −1 in the qform
const oblique: Geometry = {
  dims: [7, 6, 5],
  spacing: [0.8, 1.25, 3.3],
  origin: [-97.5, 120.25, -33],
  direction: rotation(0.35).map((v, i) => (i % 3 === 2 ? -v : v)),
};

function expectSameGeometry(a: Geometry, b: Geometry): void {
  expect([...a.dims]).toEqual([...b.dims]);
  const pairs: [number[], number[]][] = [[a.spacing, b.spacing], [a.origin, b.origin], [a.direction, b.direction]];
  for (const [x, y] of pairs) x.forEach((v, i) => expect(Math.abs(v - y[i]!)).toBeLessThanOrEqual(GEOMETRY_TOL));
}

function volumeOf(data: Volume['data'], geometry: Geometry = oblique, extra: Partial<ConstructorParameters<typeof Volume>[0]> = {}): Volume {
  return new Volume({ geometry, data, meta: { id: 'v', description: 'test volume', modality: '', sources: [] }, ...extra });
}

describe('writeNifti', () => {
  it('round-trips a uint8 label mask (.nii.gz) and float32 values (.nii) exactly, geometry within 1e-5', async () => {
    const n = 7 * 6 * 5;
    const labels = volumeOf(Uint8Array.from({ length: n }, (_, i) => [0, 1, 2, 4][i % 4]!));
    const floats = volumeOf(Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3 + 1e-3 * i));
    for (const [name, volume] of [['labels.nii.gz', labels], ['floats.nii', floats]] as const) {
      const file = join(tmp, name);
      await writeNifti(file, volume);
      const back = (await readNifti(file)).volumes[0]!;
      expect(back.dtype).toBe(volume.dtype);
      expect(Array.from(back.data)).toEqual(Array.from(volume.data));
      expectSameGeometry(back.geometry, volume.geometry);
    }
  });

  it('sets sform and qform (qfac −1 for an improper rotation), both codes, mm units and the description', async () => {
    const file = join(tmp, 'header.nii');
    await writeNifti(file, volumeOf(new Int16Array(7 * 6 * 5)), { description: 'hello' });
    const header = parseNiftiHeader(readFileSync(file), file);
    expect([header.sformCode, header.qformCode]).toEqual([1, 1]);
    expect(header.pixdim[0]).toBe(-1);
    expect(header.xyztUnits).toBe(2);
    expect(header.description).toBe('hello');
    expect(header.voxOffset).toBe(352);
    // the qform alone gives the same geometry: drop the sform and read again
    const bytes = readFileSync(file);
    bytes.writeInt16LE(0, 254);
    writeFileSync(file, bytes);
    expectSameGeometry((await readNifti(file)).volumes[0]!.geometry, oblique);
  });

  it('keeps a sheared affine in the sform (spacing = column norms, direction = unit columns)', async () => {
    const sheared: Geometry = { dims: [3, 3, 3], spacing: [1, 1.2, 2], origin: [1, 2, 3], direction: [1, 0, 0.6, 0, 1, 0, 0, 0, 0.8] };
    const file = join(tmp, 'sheared.nii');
    await writeNifti(file, volumeOf(new Uint8Array(27), sheared));
    expectSameGeometry((await readNifti(file)).volumes[0]!.geometry, sheared);
  });

  it('writes the stored values with scl_slope/scl_inter, or the real values in a requested type', async () => {
    const stored = volumeOf(Int16Array.from({ length: 7 * 6 * 5 }, (_, i) => i - 100), oblique, { slope: 0.5, intercept: -10 });
    const asStored = join(tmp, 'scaled.nii');
    await writeNifti(asStored, stored);
    const back = (await readNifti(asStored)).volumes[0]!;
    expect([back.dtype, back.slope, back.intercept]).toEqual(['int16', 0.5, -10]);
    expect(Array.from(back.data)).toEqual(Array.from(stored.data));

    const asFloat = join(tmp, 'real.nii.gz');
    await writeNifti(asFloat, stored, { dtype: 'float32' });
    const real = (await readNifti(asFloat)).volumes[0]!;
    expect([real.dtype, real.slope, real.intercept]).toEqual(['float32', 1, 0]);
    expect(Array.from(real.data)).toEqual(Array.from(stored.toFloat32()));

    // integer targets round and clamp to the type's range
    const clamped = join(tmp, 'clamped.nii');
    await writeNifti(clamped, volumeOf(Float32Array.from({ length: 7 * 6 * 5 }, (_, i) => i * 2.4 - 100.6)), { dtype: 'uint8' });
    const u8 = (await readNifti(clamped)).volumes[0]!;
    expect(u8.data[0]).toBe(0);
    expect(u8.data[60]).toBe(Math.round(60 * 2.4 - 100.6));
    expect(u8.data[209]).toBe(255);
  });

  it('round-trips every supported stored type', async () => {
    const types: VoxelType[] = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64'];
    for (const dtype of types) {
      const file = join(tmp, `t-${dtype}.nii.gz`);
      const volume = volumeOf(new Float64Array(7 * 6 * 5).map((_, i) => (i * 37) % 120));
      await writeNifti(file, volume, { dtype });
      const back = (await readNifti(file)).volumes[0]!;
      expect(back.dtype).toBe(dtype);
      expect(Array.from(back.data)).toEqual(Array.from(volume.data));
    }
  });

  it('is atomic: a failed write leaves no file (and no temporary) at the target, and an old file intact', async () => {
    const dir = join(tmp, 'atomic');
    mkdirSync(dir);
    const target = join(dir, 'out.nii.gz');
    writeFileSync(target, 'old contents');
    const bad = new Volume({ geometry: oblique, data: new Float32Array(7 * 6 * 5 * 2), components: 2, meta: { id: 'b', description: '', modality: '', sources: [] } });
    await expect(writeNifti(target, bad)).rejects.toThrow(/2-component/);
    expect(readFileSync(target, 'utf8')).toBe('old contents');

    // the rename itself fails: the target is a non-empty folder
    const blocked = join(dir, 'blocked.nii');
    mkdirSync(blocked);
    writeFileSync(join(blocked, 'keep'), 'x');
    await expect(writeNifti(blocked, volumeOf(new Uint8Array(210)))).rejects.toThrow();
    expect(readdirSync(blocked)).toEqual(['keep']);
    expect(readdirSync(dir).sort()).toEqual(['blocked.nii', 'out.nii.gz']);

    await writeNifti(target, volumeOf(new Uint8Array(210)));
    expect(gunzipSync(readFileSync(target)).length).toBe(352 + 210);
    expect(readdirSync(dir).sort()).toEqual(['blocked.nii', 'out.nii.gz']);
  });

  it('refuses an output name that is not .nii/.nii.gz', async () => {
    const file = join(tmp, 'out.png');
    await expect(writeNifti(file, volumeOf(new Uint8Array(210)))).rejects.toThrow(`${file}: output must end in .nii or .nii.gz`);
    expect(existsSync(file)).toBe(false);
  });
});
