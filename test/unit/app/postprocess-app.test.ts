/**
 * The app's side of 3D post-processing: the segment request's thresholds reach the segmentation
 * (defaults when absent, 0 passed through), the slices post-processing changed replace the
 * streamed raw ones in the prediction and are sent again, and the report says what was applied.
 * A stand-in segmentation streams the ground truth plus a speck and reports the speck removed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateRequest, type ApiEvent } from '../../../main/core/api.ts';
import { createDefaultPorts, type Ports, type SegmentationRunOptions } from '../../../main/core/api-ports.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { parseStoredState } from '../../../main/core/settings.ts';
import { POSTPROCESS_DEFAULTS, postprocessLabels } from '../../../main/core/model/postprocess.ts';

const shared = resolve(import.meta.dirname, '../../../../shared/data/phantoms');
const out = mkdtempSync(join(tmpdir(), 'sam2unet-postprocess-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const SPECK_SLICE = 20;
const SPECK = [[60, 60], [61, 60], [60, 61], [61, 61]] as const;
const speckValues = (mask: Uint8Array, nx: number, offset = 0) => SPECK.map(([x, y]) => mask[offset + y * nx + x]);
const received: (SegmentationRunOptions['postprocess'] | undefined)[] = [];

const ports: Ports = {
  ...createDefaultPorts(),
  async segmentation() {
    return {
      availability: { available: true },
      devices: ['cpu'],
      run: async (study, options) => {
        received.push(options.postprocess);
        const seg = study.seg!;
        const [nx, ny, nz] = seg.dims;
        const plane = nx * ny;
        const labels = Uint8Array.from(seg.data as Uint8Array);
        // a 2×2 speck of label 2 away from the tumour
        for (const [x, y] of SPECK) labels[SPECK_SLICE * plane + y * nx + x] = 2;
        for (let k = 0; k < nz; k++) options.onSlice(k, labels.slice(k * plane, (k + 1) * plane), null, 1);
        const record = postprocessLabels(labels, [nx, ny, nz], seg.geometry.spacing as [number, number, number], 'brats', options.postprocess!);
        return {
          device: 'cpu',
          dice: null,
          run: { model: 'stand-in', checkpoint: 'stand-in', preset: 'none', device: 'cpu', inputSize: 128, regions: 'brats', channels: 'flair ← flair', notes: [], loadMs: 0, ms: 1, postprocessing: record },
          revisedSlices: record.changedSlices.map((index) => ({ index, mask: labels.slice(index * plane, (index + 1) * plane), dice: null })),
        };
      },
    };
  },
};

async function segment(service: WorkstationService, studyId: string, extra: Record<string, number>) {
  const events: ApiEvent[] = [];
  const done = new Promise<void>((r) =>
    service.onEvent((e) => {
      events.push(e);
      if (e.type === 'done' || e.type === 'failed') r();
    }),
  );
  await service.segment({ studyId, ...extra });
  await done;
  return events;
}

describe('post-processing in the app', () => {
  it('passes the thresholds, replaces the revised slices and reports what was applied', async () => {
    const service = new WorkstationService({ mode: 'web', ports, resolveExportPath: (_r, name) => join(out, name) });
    const { studies } = await service.openStudy({ path: join(shared, 'BraTS20_Training_001') });
    const study = studies[0]!;
    const [nx, ny] = study.dims;
    const plane = nx * ny;

    const events = await segment(service, study.id, {});
    expect(events.find((e) => e.type === 'failed')).toBeUndefined();
    expect(received.at(-1)).toEqual(POSTPROCESS_DEFAULTS);
    const slices = events.filter((e): e is Extract<ApiEvent, { type: 'sliceResult' }> => e.type === 'sliceResult');
    // streamed raw (with the speck), then the changed slice again, without it
    // (the ground truth of 001 has a few specks of its own, which go too)
    const nz = study.dims[2];
    expect(slices.slice(0, nz).map((e) => e.index)).toEqual([...Array(nz).keys()]);
    expect(speckValues(slices[SPECK_SLICE]!.mask, nx)).toEqual([2, 2, 2, 2]);
    const revised = slices.slice(nz);
    const speck = revised.find((e) => e.index === SPECK_SLICE)!;
    expect(speckValues(speck.mask, nx)).toEqual([0, 0, 0, 0]);
    const prediction = (await service.getLabels({ studyId: study.id, source: 'prediction' }))!.data;
    expect(speckValues(prediction, nx, SPECK_SLICE * plane)).toEqual([0, 0, 0, 0]);

    const report = await service.exportMasks({ studyId: study.id, format: 'report', source: 'prediction' });
    const json = JSON.parse(readFileSync(report.files.find((f) => f.endsWith('metrics.json'))!, 'utf8'));
    expect(json.settings.postprocessing.map((p: { name: string }) => p.name)).toEqual(['small components removed', 'small enhancing tumour relabelled']);
    expect(json.settings.postprocessing[0]).toMatchObject({ parameters: { minComponentMl: POSTPROCESS_DEFAULTS.minComponentMl }, changed: { componentsRemoved: expect.any(Number) } });
    expect(json.settings.postprocessing[0].changed.voxelsRemoved).toBeGreaterThanOrEqual(4);
    expect(readFileSync(report.files.find((f) => f.endsWith('.html'))!, 'utf8')).toContain('small components removed');

    // 0 switches post-processing off: the speck stays and nothing is sent again
    const raw = await segment(service, study.id, { minComponentMl: 0, minEtMl: 0 });
    expect(received.at(-1)).toEqual({ minComponentMl: 0, minEtMl: 0 });
    expect(raw.filter((e) => e.type === 'sliceResult').length).toBe(study.dims[2]);
    const kept = (await service.getLabels({ studyId: study.id, source: 'prediction' }))!.data;
    expect(speckValues(kept, nx, SPECK_SLICE * plane)).toEqual([2, 2, 2, 2]);

    // the Settings value applies when the request names none; a request overrides it
    await service.updateSettings({ postprocessing: { minComponentMl: 1.5, minEtMl: 0 } });
    await segment(service, study.id, {});
    expect(received.at(-1)).toEqual({ minComponentMl: 1.5, minEtMl: 0 });
    await segment(service, study.id, { minEtMl: 0.3 });
    expect(received.at(-1)).toEqual({ minComponentMl: 1.5, minEtMl: 0.3 });
    await service.dispose();
  });

  it('reads settings files written before the post-processing setting existed', () => {
    const state = parseStoredState(JSON.stringify({ version: 1, settings: { device: 'cpu' }, recent: [], models: [] }));
    expect(typeof state === 'string' ? state : state.settings.postprocessing).toEqual(POSTPROCESS_DEFAULTS);
    expect(parseStoredState(JSON.stringify({ version: 1, settings: { postprocessing: { minComponentMl: -2, minEtMl: 0 } } }))).toMatch(/minComponentMl/);
  });

  it('refuses negative thresholds in the request', () => {
    expect(validateRequest('segment', { studyId: 's1', minComponentMl: -1 })).toMatch(/minComponentMl/);
    expect(validateRequest('segment', { studyId: 's1', minComponentMl: 0, minEtMl: 0.5 })).toBeNull();
  });
});
