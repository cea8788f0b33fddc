import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as niftiReader from 'nifti-reader-js';
import { afterAll, describe, expect, it } from 'vitest';
import { AFFINE_TOL, STATS_RTOL, checkAgainstGolden, type Golden } from './nifti-golden.ts';
import { FileError } from '../../../main/core/errors.ts';
import { encodeNifti, niftiAffineRAS, parseNiftiHeader, readNifti, readNiftiHeader } from '../../../main/core/io/nifti.ts';
import { Volume } from '../../../main/core/io/volume.ts';

const shared = resolve(process.cwd(), '../shared/data');
const fixtures = resolve(process.cwd(), 'test/fixtures/nifti');
const externalExpected = JSON.parse(readFileSync(join(shared, 'external/expected.json'), 'utf8')).nifti as Record<string, Golden>;
const fixtureExpected = JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8')) as Record<string, Golden>;
const tmp = mkdtempSync(join(tmpdir(), 'nifti-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('readNifti against nibabel', () => {
  for (const [name, golden] of Object.entries(externalExpected)) {
    it(`reproduces nibabel on ${name} (shape, affine ±${AFFINE_TOL} mm, stats rel ${STATS_RTOL})`, async () => {
      const { volumes } = await readNifti(join(shared, 'external/nifti', name));
      checkAgainstGolden(name, volumes, golden);
    });
  }
  for (const [name, golden] of Object.entries(fixtureExpected)) {
    it(`reproduces nibabel on fixture ${name}`, async () => {
      const { volumes } = await readNifti(join(fixtures, name));
      checkAgainstGolden(name, volumes, golden);
      if (golden.first_rgb) {
        expect(volumes[0]!.components).toBe(3);
        golden.first_rgb.forEach((rgb, i) => expect(Array.from(volumes[0]!.data.subarray(3 * i, 3 * i + 3))).toEqual(rgb));
      }
    });
  }

  it('parses the same header fields as nifti-reader-js', async () => {
    const files = [
      ...Object.keys(externalExpected).map((n) => join(shared, 'external/nifti', n)),
      ...Object.keys(fixtureExpected).map((n) => join(fixtures, n)),
    ];
    for (const file of files) {
      let bytes = readFileSync(file);
      if (bytes[0] === 0x1f) bytes = (await import('node:zlib')).gunzipSync(bytes);
      const ours = parseNiftiHeader(bytes, file);
      const theirs = niftiReader.readHeader(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
      expect(ours.littleEndian, file).toBe(theirs.littleEndian);
      expect(ours.dim, file).toEqual(theirs.dims);
      expect(ours.datatype, file).toBe(theirs.datatypeCode);
      expect(ours.pixdim, file).toEqual(theirs.pixDims);
      expect(ours.voxOffset, file).toBe(theirs.vox_offset);
      expect([ours.qformCode, ours.sformCode], file).toEqual([theirs.qform_code, theirs.sform_code]);
      expect(ours.quatern, file).toEqual([theirs.quatern_b, theirs.quatern_c, theirs.quatern_d]);
      if (ours.sformCode > 0) expect(niftiAffineRAS(ours), file).toEqual(theirs.affine.flat());
      expect(await readNiftiHeader(file)).toEqual(ours);
    }
  });
});

describe('readNifti memory layout', () => {
  it('gives views over the decompressed buffer (no copy) and slice views without copying', async () => {
    const file = join(shared, 'phantoms/BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz');
    const { volumes, header } = await readNifti(file);
    const volume = volumes[0]!;
    expect(volume.dtype).toBe('int16');
    // one buffer holding header + voxels (zlib's output buffer, a few bytes spare), the volume a view into it
    expect(volume.data.buffer.byteLength - (352 + 240 * 240 * 155 * 2)).toBeGreaterThanOrEqual(0);
    expect(volume.data.buffer.byteLength - (352 + 240 * 240 * 155 * 2)).toBeLessThan(1024);
    expect(volume.data.byteOffset).toBe(header.voxOffset);
    const slice = volume.sliceView(77);
    expect(slice.buffer).toBe(volume.data.buffer);
    expect(slice.byteOffset).toBe(352 + 77 * 240 * 240 * 2);
  });

  it('keeps all frames of a 4-D file in one buffer', async () => {
    const { volumes } = await readNifti(join(shared, 'external/nifti/functional.nii'));
    expect(volumes).toHaveLength(20);
    expect(volumes[5]!.data.buffer).toBe(volumes[0]!.data.buffer);
    expect(volumes[5]!.meta.id).toBe('functional.nii#5');
    expect(volumes[5]!.isScaled).toBe(true);
  });
});

/** A valid little-endian NIfTI-1 of 4×3×2 int16 voxels to break in various ways. */
function validFile(): Buffer {
  const volume = new Volume({
    geometry: { dims: [4, 3, 2], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data: Int16Array.from({ length: 24 }, (_, i) => i * 3 - 20),
    meta: { id: 'x', description: 'x', modality: '', sources: [] },
  });
  const { header, data } = encodeNifti(volume);
  return Buffer.concat([header, data]);
}

function withPatch(bytes: Buffer, patch: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(bytes);
  patch(copy);
  return copy;
}

async function expectFileError(name: string, bytes: Uint8Array, problem: RegExp): Promise<void> {
  const file = join(tmp, name);
  writeFileSync(file, bytes);
  const started = performance.now();
  const err = await readNifti(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${name} should be refused`).toBeInstanceOf(FileError);
  expect((err as FileError).file).toBe(file);
  expect((err as FileError).message.startsWith(file)).toBe(true);
  expect((err as FileError).problem).toMatch(problem);
  expect(performance.now() - started).toBeLessThan(2000);
}

describe('readNifti refuses bad files with a FileError', () => {
  const good = validFile();

  it('reads the valid base file', async () => {
    const file = join(tmp, 'good.nii');
    writeFileSync(file, good);
    const { volumes } = await readNifti(file);
    expect(Array.from(volumes[0]!.data.subarray(0, 3))).toEqual([-20, -17, -14]);
  });

  it('truncated data, .nii and .nii.gz', async () => {
    await expectFileError('trunc.nii', good.subarray(0, good.length - 5), /truncated/);
    await expectFileError('trunc-header.nii', good.subarray(0, 200), /truncated/);
    await expectFileError('trunc.nii.gz', gzipSync(good).subarray(0, 60), /truncated|corrupt/);
    await expectFileError('short-data.nii.gz', gzipSync(good.subarray(0, good.length - 8)), /truncated/);
  });

  it('bad magic and wrong file types', async () => {
    await expectFileError('magic.nii', withPatch(good, (b) => b.write('xyz\0', 344, 'latin1')), /bad NIfTI-1 magic/);
    await expectFileError('pair.nii', withPatch(good, (b) => b.write('ni1\0', 344, 'latin1')), /\.hdr\/\.img pair/);
    await expectFileError('text.nii', Buffer.from('hello, this is not an image at all'.repeat(20)), /not a NIfTI file/);
    await expectFileError('empty.nii.gz', Buffer.alloc(0), /truncated|too short/);
    await expectFileError('png.nii', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), Buffer.alloc(400)]), /not a NIfTI file/);
    const dicom = readFileSync(join(shared, 'phantoms/BraTS20_Training_001_flair_dicom', readdirSync(join(shared, 'phantoms/BraTS20_Training_001_flair_dicom')).find((f) => !f.endsWith('.txt'))!));
    await expectFileError('dicom.nii', dicom, /not a NIfTI file/);
  });

  it('absurd, negative and zero dims, before allocating anything', async () => {
    const huge = withPatch(good, (b) => [3, 30000, 30000, 30000].forEach((n, i) => b.writeInt16LE(n, 40 + 2 * i)));
    await expectFileError('huge.nii', huge, /absurd/);
    const big = withPatch(good, (b) => [3, 2000, 2000, 200].forEach((n, i) => b.writeInt16LE(n, 40 + 2 * i)));
    await expectFileError('big.nii', big, /truncated/);
    await expectFileError('big.nii.gz', gzipSync(big), /more than a .*gzip file can hold/);
    await expectFileError('negative.nii', withPatch(good, (b) => b.writeInt16LE(-3, 42)), /bad size -3/);
    await expectFileError('zero.nii', withPatch(good, (b) => b.writeInt16LE(0, 44)), /bad size 0/);
    await expectFileError('dim0.nii', withPatch(good, (b) => b.writeInt16LE(9, 40)), /bad dim\[0\]/);
    await expectFileError('5d.nii', withPatch(good, (b) => [5, 4, 3, 2, 1, 2].forEach((n, i) => b.writeInt16LE(n, 40 + 2 * i))), /only 3-D and 4-D/);
  });

  it('vox_offset beyond the file, corrupt gzip, unsupported datatypes', async () => {
    await expectFileError('offset.nii', withPatch(good, (b) => b.writeFloatLE(1e6, 108)), /vox_offset .* beyond the end/);
    await expectFileError('offset-nan.nii', withPatch(good, (b) => b.writeFloatLE(NaN, 108)), /bad vox_offset/);
    const gz = gzipSync(Buffer.concat([good, Buffer.alloc(50000, 7)]));
    await expectFileError('corrupt.nii.gz', withPatch(gz, (b) => b.fill(0x55, 40, 120)), /corrupt gzip|truncated/);
    await expectFileError('crc.nii.gz', withPatch(gz, (b) => b.writeUInt32LE(b.readUInt32LE(b.length - 8) ^ 1, b.length - 8)), /corrupt gzip/);
    await expectFileError('complex.nii', withPatch(good, (b) => b.writeInt16LE(32, 70)), /complex64 is not supported/);
    await expectFileError('int64.nii', withPatch(good, (b) => b.writeInt16LE(1024, 70)), /int64 is not supported/);
    await expectFileError('weird.nii', withPatch(good, (b) => b.writeInt16LE(77, 70)), /unknown NIfTI datatype code 77/);
  });

  it('missing files and folders', async () => {
    const missing = join(tmp, 'nope.nii');
    await expect(readNifti(missing)).rejects.toThrow(`${missing}: no such file or directory`);
    await expect(readNifti(tmp)).rejects.toThrow(/is a directory/);
  });

  it('treats scl_slope 0 and NaN as unscaled (nibabel), refuses a NaN intercept with a valid slope', async () => {
    const nanSlope = join(tmp, 'nan-slope.nii');
    writeFileSync(nanSlope, withPatch(good, (b) => { b.writeFloatLE(NaN, 112); b.writeFloatLE(9, 116); }));
    const volume = (await readNifti(nanSlope)).volumes[0]!;
    expect([volume.slope, volume.intercept]).toEqual([1, 0]);
    await expectFileError('nan-inter.nii', withPatch(good, (b) => { b.writeFloatLE(2, 112); b.writeFloatLE(NaN, 116); }), /invalid scl_inter/);
  });

  it('moves a too-small vox_offset past the header, as nibabel does', async () => {
    const file = join(tmp, 'offset-zero.nii');
    writeFileSync(file, withPatch(good, (b) => b.writeFloatLE(0, 108)));
    const { volumes } = await readNifti(file);
    expect(volumes[0]!.data[0]).toBe(-20);
  });
});
