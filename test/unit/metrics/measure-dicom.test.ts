import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import type { CommandIO } from '../../../main/cli/command.ts';
import { BRATS_SEGMENTS, writeDicomSeg } from '../../../main/core/io/dicom-seg.ts';
import { loadDicom } from '../../../main/core/io/dicom/index.ts';
import { describeTumour, type TumourDescription } from '../../../main/core/metrics/describe.ts';

const dicomDir = resolve(import.meta.dirname, '../../../../shared/data/phantoms/BraTS20_Training_001_flair_dicom');

function capture(): CommandIO & { out: string; err: string } {
  const io = { out: '', err: '', interactive: false, stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
}

describe('sam2unet measure on a DICOM SEG', () => {
  it('reads the SEG on the study grid (--study) or on its own frames, with the same description as the label map', async () => {
    const { series } = await loadDicom([dicomDir]);
    const source = series[0]!;
    const [nx, ny, nz] = source.geometry.dims;
    const labels = new Uint8Array(nx * ny * nz);
    for (let k = 60; k < 75; k++)
      for (let j = 100; j < 130; j++)
        for (let i = 150; i < 185; i++) {
          const rim = i < 153 || i >= 182 || j < 103 || j >= 127;
          labels[k * nx * ny + j * nx + i] = k < 63 || k >= 72 ? 2 : rim ? 4 : 1;
        }
    const file = join(mkdtempSync(join(tmpdir(), 'sam2unet-measure-seg-')), 'lesion.seg.dcm');
    await writeDicomSeg(file, { labels, source, segments: BRATS_SEGMENTS, algorithm: { name: 'test', version: '1' } });

    const withStudy = capture();
    expect(await main(['measure', '--mask', file, '--study', dicomDir, '--json'], withStudy)).toBe(0);
    const d = JSON.parse(withStudy.out) as TumourDescription;
    const want = describeTumour(labels, source.geometry, 'brats', { images: [{ data: source.isScaled ? source.toFloat32() : source.data }] });
    expect(d.regions).toEqual(want.regions);
    expect(d.lesions[0]!.rano.long_mm).toBeCloseTo(want.lesions[0]!.rano.long_mm, 9);
    expect(d.laterality.method).toBe('image-symmetry');
    expect(d.laterality.left_pct).toBeCloseTo(want.laterality.left_pct, 9);

    const alone = capture();
    expect(await main(['measure', '--mask', file, '--json'], alone)).toBe(0);
    const own = JSON.parse(alone.out) as TumourDescription;
    expect(own.regions).toEqual(want.regions);
    expect(own.lesions[0]!.centroid_lps.map((v) => +v.toFixed(6))).toEqual(want.lesions[0]!.centroid_lps.map((v) => +v.toFixed(6)));
    expect(own.laterality.method).toBe('patient-axes');
  }, 60_000);
});
