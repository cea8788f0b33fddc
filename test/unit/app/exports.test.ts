/**
 * The api service with the real reader and writers (api-ports createDefaultPorts) and a stand-in
 * model that predicts the ground truth shifted by a few voxels: checks the export wiring end to
 * end (NIfTI read back voxel for voxel, DICOM SEG parsed back, report files written) without
 * the minutes a real model run takes here.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { ApiEvent, ExportFormat } from '../../../main/core/api.ts';
import { createDefaultPorts } from '../../../main/core/api-ports.ts';
import type { Ports } from '../../../main/core/api-ports.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';

const shared = resolve(import.meta.dirname, '../../../../shared/data/phantoms');
const out = mkdtempSync(join(tmpdir(), 'sam2unet-exports-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Real ports except the model: label 2 wherever the image is bright, one slice at a time. */
const ports: Ports = {
  ...createDefaultPorts(),
  async segmentation() {
    return {
      availability: { available: true },
      devices: ['cpu'],
      run: async (study, { onSlice }) => {
        const image = Object.values(study.sequences)[0]!;
        const [nx, ny, nz] = image.dims;
        const threshold = image.stats().mean * 3;
        for (let k = 0; k < nz; k++) {
          const mask = new Uint8Array(nx * ny);
          const values = image.sliceValues(k);
          for (let i = 0; i < mask.length; i++) mask[i] = values[i]! > threshold ? 2 : 0;
          onSlice(k, mask, null, 0);
        }
        return { device: 'cpu', dice: null, run: { model: 'stand-in', checkpoint: 'stand-in', preset: 'none', device: 'cpu', inputSize: 352, regions: 'brats', channels: 'flair ← flair, t1ce ← t1ce, t2 ← t2', notes: ['a note about the run'], loadMs: 0, ms: 1 } };
      },
    };
  },
};

async function segmented(path: string, channels?: string[]) {
  const service = new WorkstationService({ mode: 'web', ports, resolveExportPath: (_r, name) => join(out, name) });
  const { studies } = await service.openStudy({ path });
  const studyId = studies[0]!.id;
  const done = new Promise<ApiEvent>((r) => service.onEvent((e) => e.type !== 'sliceResult' && e.type !== 'progress' && r(e)));
  await service.segment({ studyId, ...(channels ? { channels } : {}) });
  expect(await done).toMatchObject({ type: 'done' });
  const prediction = (await service.getLabels({ studyId, source: 'prediction' }))!.data;
  return { service, studyId, prediction, summary: studies[0]! };
}

describe('exports through the real writers', () => {
  it('writes a NIfTI that reads back identical, and a report', async () => {
    const { service, studyId, prediction } = await segmented(join(shared, 'BraTS20_Training_001'));
    expect(prediction.some((v) => v === 2)).toBe(true);
    const nifti = await service.exportMasks({ studyId, format: 'nifti', source: 'prediction' });
    const { readNifti } = await import('../../../main/core/io/nifti.ts');
    const back = (await readNifti(nifti.files[0]!)).volumes[0]!;
    expect(Buffer.compare(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength), Buffer.from(prediction))).toBe(0);
    const report = await service.exportMasks({ studyId, format: 'report', source: 'prediction' });
    expect(report.files.map((f) => f.split('/').pop())).toEqual(['report.html', 'report.pdf', 'metrics.csv', 'metrics.json']);
    expect(report.files.every((f) => existsSync(f))).toBe(true);
    // how the model was run (name, channel mapping, notes such as substitutions) is in the report
    const settings = JSON.parse(readFileSync(report.files[3]!, 'utf8')).settings;
    expect(settings).toMatchObject({ model: 'stand-in', notes: ['a note about the run'], extra: { channels: 'flair ← flair, t1ce ← t1ce, t2 ← t2' } });
    expect(readFileSync(report.files[0]!, 'utf8')).toContain('a note about the run');
    // NIfTI studies have no DICOM images to reference: a clear refusal
    await expect(service.exportMasks({ studyId, format: 'dicom-seg', source: 'groundTruth' })).rejects.toThrow(/DICOM SEG needs a volume read from a DICOM series/);
    await service.dispose();
  });

  it('writes a DICOM SEG for a DICOM series that parses back to the prediction', async () => {
    const { service, studyId, prediction, summary } = await segmented(join(shared, 'BraTS20_Training_001_flair_dicom'), ['flair']);
    const seg = await service.exportMasks({ studyId, format: 'dicom-seg', source: 'prediction' });
    const { readDicomSeg } = await import('../../../main/core/io/dicom-seg.ts');
    const { dims, spacing, origin, direction } = summary;
    const parsed = await readDicomSeg(seg.files[0]!, { dims, spacing, origin, direction });
    const labels = parsed.labels.data;
    expect(labels.length).toBe(prediction.length);
    let differing = 0;
    for (let i = 0; i < labels.length; i++) if (labels[i] !== prediction[i]) differing++;
    expect(differing).toBe(0);
    await service.dispose();
  });

  it('reports unavailable formats per format in capabilities', async () => {
    const service = new WorkstationService({ mode: 'web', ports, resolveExportPath: vi.fn() });
    const caps = await service.capabilities();
    for (const format of ['nifti', 'dicom-seg', 'report'] as ExportFormat[]) expect(caps.exports[format], format).toEqual({ available: true });
  });
});
