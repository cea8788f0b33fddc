/**
 * Acceptance (issue 12, "A DICOM study is a study"): the four sequences of a shared phantom
 * written as one DICOM study — four series with scanner-style descriptions, all files mixed in
 * one folder — open as one four-sequence study and segment, through the service the app uses
 * (real reader worker, bundled model), to the same label map in world space as the phantom's
 * NIfTI files. The DICOM files are written to a temporary folder, never committed.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ApiEvent, StudySummary } from '../../../main/core/api.ts';
import { createDefaultPorts } from '../../../main/core/api-ports.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { loadBratsCase, findBratsCases } from '../../../main/core/io/brats.ts';
import { resampleToGrid } from '../../../main/core/io/resample.ts';
import { Volume, type Geometry } from '../../../main/core/io/volume.ts';
import { writeMrSeries } from '../../fixtures/dicom/write-series.ts';

const phantom = resolve(import.meta.dirname, '../../../../shared/data/phantoms/BraTS20_Training_001');
const tmp = mkdtempSync(join(tmpdir(), 'dicom-brats-'));
const dicomDir = join(tmp, 'exam');
const service = new WorkstationService({ mode: 'web', ports: createDefaultPorts(), resolveExportPath: vi.fn() });
afterAll(async () => {
  await service.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

const SERIES = [
  { role: 't1', description: 'AX T1 SE', number: 3 },
  { role: 't1ce', description: 'AX T1 POST GAD', number: 7 },
  { role: 't2', description: 'Ax T2 TSE', number: 4 },
  { role: 'flair', description: 'AX T2 FLAIR', number: 5 },
] as const;

beforeAll(async () => {
  const { cases } = findBratsCases(phantom, readdirSync(phantom));
  const study = await loadBratsCase(cases[0]!);
  (await import('node:fs')).mkdirSync(dicomDir);
  for (const s of SERIES) {
    const uid = `1.2.826.0.1.3680043.8.498.777.${s.number}`;
    // IM<slice><series>: the four series' files interleaved in one folder
    writeMrSeries(dicomDir, study.sequences[s.role]!, { description: s.description, seriesNumber: s.number, seriesUid: uid }, (k) => `IM${String(k).padStart(4, '0')}${s.number}`);
  }
}, 120_000);

async function segmented(summary: StudySummary): Promise<Uint8Array> {
  const done = new Promise<ApiEvent>((resolveDone, reject) => {
    const off = service.onEvent((event) => {
      if (event.type === 'done' && event.studyId === summary.id) {
        off();
        resolveDone(event);
      }
      if (event.type === 'failed') {
        off();
        reject(new Error(event.message));
      }
    });
  });
  await service.segment({ studyId: summary.id, device: 'cpu' });
  await done;
  const labels = await service.getLabels({ studyId: summary.id, source: 'prediction' });
  return labels!.data;
}

const geometryOf = (s: StudySummary): Geometry => ({ dims: s.dims, spacing: s.spacing, origin: s.origin, direction: s.direction });

describe('a phantom written as one DICOM study of four series, files mixed in one folder', () => {
  it('opens as one four-sequence study with its series recognised', async () => {
    expect(readdirSync(dicomDir)).toHaveLength(4 * 155);
    const { studies } = await service.openStudy({ path: dicomDir });
    expect(studies).toHaveLength(1);
    const study = studies[0]!;
    expect(study.kind).toBe('dicom');
    expect(study.sequences.map((s) => [s.name, s.description])).toEqual(SERIES.map((s) => [s.role, s.description]));
    expect(study.series!.map((s) => [s.description, s.recognised, s.role, s.resampled])).toEqual(SERIES.map((s) => [s.description, s.role, s.role, false]));
    expect(study.metadata).toMatchObject({ patientName: 'Phantom, Brain', patientId: 'PHANTOM001', modality: 'MR' });
    expect(study.segmentable.available).toBe(true);
  });

  it('segments to the same label map, in world space, as the phantom NIfTI files', async () => {
    const dicom = (await service.openStudy({ path: dicomDir })).studies[0]!;
    const nifti = (await service.openStudy({ path: phantom })).studies[0]!;
    const [fromDicom, fromNifti] = [await segmented(dicom), await segmented(nifti)];
    // the DICOM prediction placed onto the NIfTI grid through world coordinates (nearest: labels)
    const placed = resampleToGrid(
      new Volume({ geometry: geometryOf(dicom), data: fromDicom, meta: { id: 'pred', description: '', modality: 'SEG', sources: [] } }),
      geometryOf(nifti),
      'nearest',
    ).data;
    let tumour = 0;
    let differing = 0;
    for (let i = 0; i < fromNifti.length; i++) {
      if (fromNifti[i]) tumour++;
      if (placed[i] !== fromNifti[i]) differing++;
    }
    expect(tumour).toBeGreaterThan(10_000);
    expect(differing).toBe(0);
  }, 300_000);
});
