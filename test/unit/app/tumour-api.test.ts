import { join, resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { createDefaultPorts } from '../../../main/core/api-ports.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { worldToIndex } from '../../../main/core/io/volume.ts';
import { describeTumour } from '../../../main/core/metrics/describe.ts';

const phantoms = resolve(import.meta.dirname, '../../../../shared/data/phantoms');

describe('describeTumour over the API', () => {
  const service = new WorkstationService({ mode: 'web', ports: createDefaultPorts(), resolveExportPath: vi.fn() });

  it('describes the ground truth with the images (image-symmetry), lines in voxel indices; no prediction yet → null', async () => {
    const dir = join(phantoms, 'BraTS20_Training_001');
    const { studies } = await service.openStudy({ path: dir });
    const studyId = studies[0]!.id;
    expect(await service.describeTumour({ studyId, source: 'prediction' })).toBeNull();
    const view = (await service.describeTumour({ studyId, source: 'groundTruth' }))!;
    const seg = (await readNifti(join(dir, 'BraTS20_Training_001_seg.nii.gz'))).volumes[0]!;
    const direct = describeTumour(seg.data as Uint8Array, seg.geometry, 'brats');
    expect(view.description.regions).toEqual(direct.regions);
    expect(view.description.lesions.map((l) => l.rano)).toEqual(direct.lesions.map((l) => l.rano));
    expect(view.description.laterality.method).toBe('image-symmetry');
    const first = view.description.lesions[0]!;
    const line = view.ranoLines[0]!;
    expect(line.long[0]).toEqual(worldToIndex(seg.geometry, first.rano.long_line_lps![0]));
    expect(line.long[0][2]).toBeCloseTo(first.rano.slice!, 9);
    // asked again for the same mask: the same answer, not a new fit
    expect(await service.describeTumour({ studyId, source: 'groundTruth' })).toBe(view);
  }, 60_000);

  it("runs in the io worker: the service's thread keeps answering while a full volume is described", async () => {
    const { studies } = await service.openStudy({ path: join(phantoms, 'BraTS20_Training_002') });
    const studyId = studies[0]!.id;
    let last = performance.now();
    let longestGap = 0;
    const tick = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
    }, 10);
    const started = performance.now();
    const view = (await service.describeTumour({ studyId, source: 'groundTruth' }))!;
    const took = performance.now() - started;
    clearInterval(tick);
    // a blocked thread fires no tick at all: the time since the last one counts too
    longestGap = Math.max(longestGap, performance.now() - last);
    expect(view.description.lesions.length).toBeGreaterThan(0);
    // in-process the symmetry fit alone holds the thread for a second or more
    expect(longestGap).toBeLessThan(Math.max(250, took / 4));
  }, 60_000);
});
