import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rgbData } from '../../../main/core/io/colour.ts';
import { loadDicom } from '../../../main/core/io/dicom/index.ts';
import { withoutColourTransform } from '../../../main/core/io/dicom/codecs.ts';
import { readNifti, writeNifti } from '../../../main/core/io/nifti.ts';

const external = resolve(import.meta.dirname, '../../../../shared/data/external/dicom');
const out = mkdtempSync(join(tmpdir(), 'sam2unet-colour-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('YCbCr JPEG kept as stored', () => {
  it('drops JFIF, neutralises Adobe transforms and adds an Adobe "no transform" marker, leaving everything else intact', () => {
    const soi = [0xff, 0xd8];
    const jfif = [0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 1, 1, 0, 0, 1, 0, 1, 0, 0];
    const adobeYcc = [0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0, 0, 0, 0, 1];
    const comment = [0xff, 0xfe, 0x00, 0x05, 0x61, 0x62, 0x63];
    const scan = [0xff, 0xda, 0x00, 0x02, 0x12, 0x34, 0xff, 0xd9];
    const patched = withoutColourTransform(new Uint8Array([...soi, ...jfif, ...adobeYcc, ...comment, ...scan]));
    expect(Array.from(patched)).toEqual([...soi, ...adobeYcc.slice(0, -1), 0, ...comment, ...scan]);
  });

  it('SC_rgb_jpeg_dcmtk.dcm: YCbCr samples as pydicom gives them; RGB in the NIfTI it converts to', async () => {
    const { series } = await loadDicom([join(external, 'SC_rgb_jpeg_dcmtk.dcm')]);
    const volume = series[0]!;
    const target = join(out, 'colour.nii.gz');
    await writeNifti(target, volume);
    const written = (await readNifti(target)).volumes[0]!;
    expect(written.components).toBe(3);
    expect(Buffer.from(written.data as Uint8Array).equals(Buffer.from(rgbData(volume) as Uint8Array))).toBe(true);
  });
});
