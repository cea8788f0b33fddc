/**
 * The service side of "the slice on screen first" (issue 19): a segment request's focus and
 * precision reach the job, focusSlice moves a running job's focus (validated against the study),
 * and opening a study loads the default model ahead of the first run, once per device and precision.
 */
import { describe, expect, it } from 'vitest';
import type { Ports, SegmentationRunOptions } from '../../../main/core/api-ports.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { UserError } from '../../../main/core/errors.ts';
import { DIMS, fakePorts } from './fakes.ts';

function setup() {
  const base = fakePorts({ written: [] }, { sliceDelayMs: 30 });
  const jobs: SegmentationRunOptions[] = [];
  const focusMoves: number[] = [];
  const prepared: unknown[] = [];
  const ports: Ports = {
    ...base,
    async segmentation() {
      const port = await base.segmentation();
      return {
        ...port,
        prepare: async (choice) => void prepared.push(choice),
        run: (study, options) => {
          jobs.push(options);
          options.onFocusControl?.((index) => focusMoves.push(index));
          return port.run!(study, options);
        },
      };
    },
  };
  const service = new WorkstationService({ mode: 'web', ports, resolveExportPath: () => { throw new UserError('no exports in this test'); } });
  const done = new Promise<void>((resolve) => service.onEvent((e) => (e.type === 'done' || e.type === 'failed' ? resolve() : undefined)));
  return { service, jobs, focusMoves, prepared, done };
}

describe('focus and precision through the service', () => {
  it('a segment request carries the slice on screen and the precision to the job; focusSlice moves it', async () => {
    const { service, jobs, focusMoves, prepared, done } = setup();
    const { studies } = await service.openStudy({ path: '/data/tiny' });
    // the default model was asked to load while the study opened (settings: auto, float32)
    await expect.poll(() => prepared).toEqual([{ device: 'auto', precision: 'float32' }]);
    await service.openStudy({ path: '/data/tiny-shared' });
    await new Promise((r) => setTimeout(r, 50));
    expect(prepared).toHaveLength(1);
    await service.updateSettings({ precision: 'int8' });
    await service.openStudy({ path: '/data/tiny-view' });
    await expect.poll(() => prepared).toEqual([{ device: 'auto', precision: 'float32' }, { device: 'auto', precision: 'int8' }]);

    const studyId = studies[0]!.id;
    await expect(service.segment({ studyId, focus: DIMS[2] })).rejects.toThrow(/slice 3 is not in tiny, which has 2 slices/);
    const { jobId } = await service.segment({ studyId, focus: 1 });
    // jobs start on the turn after the reply that names them (api-service.ts #startJob)
    await expect.poll(() => jobs[0]).toMatchObject({ focus: 1, precision: 'int8' });
    expect(await service.focusSlice({ jobId, index: 0 })).toEqual({ focused: true });
    await expect(service.focusSlice({ jobId, index: 2 })).rejects.toBeInstanceOf(UserError);
    expect(focusMoves).toEqual([0]);
    await done;
    // a finished job takes no focus
    expect(await service.focusSlice({ jobId, index: 0 })).toEqual({ focused: false });
    expect(await service.focusSlice({ jobId: 'job-none', index: 0 })).toEqual({ focused: false });

    const second = await service.segment({ studyId, precision: 'float32' });
    await expect.poll(() => jobs[1]).toMatchObject({ precision: 'float32' });
    expect(jobs[1]!.focus).toBeUndefined();
    await service.cancel({ jobId: second.jobId });
  });
});
