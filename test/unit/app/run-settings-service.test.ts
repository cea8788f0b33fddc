/**
 * The service side of "a model knows how it must be run": the model list carries each model's
 * run settings and their sources, the bundled model is listed as such however its path is given,
 * and a study lacking a sequence the model takes is refused before a job starts unless the request
 * names substitutes, which reach the segmentation job.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../../main/core/api.ts';
import type { Ports, SegmentationRunOptions } from '../../../main/core/api-ports.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { fakePorts } from './fakes.ts';

const dir = mkdtempSync(join(tmpdir(), 'sam2unet-run-settings-service-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const models = join(dir, 'models');
mkdirSync(models);
const bundled = join(dir, 'default', 'model.pth');
mkdirSync(join(dir, 'default'));
for (const file of [bundled, join(models, 'official.pth'), join(models, 'trained-meta.pth')]) writeFileSync(file, 'fake');

function service(): { service: WorkstationService; jobs: SegmentationRunOptions[] } {
  const jobs: SegmentationRunOptions[] = [];
  const base = fakePorts();
  const ports: Ports = {
    ...base,
    async bundledModel() {
      return { checkpoint: bundled, run: { size: [128, 128], channels: ['flair', 't1ce', 't2'] } };
    },
    async inspectCheckpoint(path) {
      const summary = await base.inspectCheckpoint(path);
      // a file our trainer wrote says how it runs; the official one and the bundled one say nothing
      return path.includes('meta') ? { ...summary, run: { size: [96, 96], channels: ['t1', 't1', 't1'], regions: 'brats' } } : summary;
    },
    async segmentation() {
      const port = await base.segmentation();
      return { ...port, run: (study, options) => (jobs.push(options), port.run!(study, options)) };
    },
  };
  return { service: new WorkstationService({ mode: 'web', ports, modelsDir: models, resolveExportPath: (_r, name) => join(dir, name) }), jobs };
}

describe('model list and segment requests follow the model run settings', () => {
  it('lists each model with how it runs and where each setting comes from; the bundled model by name', async () => {
    const { service: s } = service();
    const list = await s.listModels();
    expect(list.map((m) => [m.name, m.kind, m.run.size, m.run.from.size, m.run.channels.join(','), m.run.from.channels])).toEqual([
      ['bundled default model', 'bundled', [128, 128], 'bundled', 'flair,t1ce,t2', 'bundled'],
      ['official', 'file', [352, 352], 'default', 'flair,t1ce,t2', 'default'],
      ['trained-meta', 'file', [96, 96], 'checkpoint', 't1,t1,t1', 'checkpoint'],
    ]);
    // the bundled file added by path is still the bundled model
    const added = await s.addModel({ path: join(dir, 'default', '..', 'default', 'model.pth') });
    expect(added).toMatchObject({ name: 'bundled default model', kind: 'bundled', run: { size: [128, 128], from: { size: 'bundled' } } });
    await s.dispose();
  });

  it('refuses a study lacking a sequence the model takes, before any job starts', async () => {
    const { service: s, jobs } = service();
    const [study] = (await s.openStudy({ path: '/data/tiny' })).studies;
    await expect(s.segment({ studyId: study!.id, checkpoint: join(models, 'official.pth') })).rejects.toThrow(
      'tiny: the model takes flair, t1ce, t2; the study has no t1ce (channel 2), t2 (channel 3) (it has flair). Choose a sequence to feed instead of each missing one in the run panel',
    );
    // the deep link's default (no checkpoint) is the bundled model: the same rule
    await expect(s.segment({ studyId: study!.id })).rejects.toThrow(/tiny: the model takes flair, t1ce, t2/);
    await expect(s.segment({ studyId: study!.id, channels: ['flair', 'dwi', 'flair'] })).rejects.toThrow('tiny: no sequence "dwi" to feed channel 2 (it has flair)');
    expect(jobs).toEqual([]);
    await s.dispose();
  });

  it('runs with the substitutes the request names, and hands them to the job', async () => {
    const { service: s, jobs } = service();
    const [study] = (await s.openStudy({ path: '/data/tiny' })).studies;
    const done = new Promise<ApiEvent>((r) => s.onEvent((e) => e.type === 'done' && r(e)));
    await s.segment({ studyId: study!.id, channels: ['', 'flair', 'flair'] });
    await done;
    expect(jobs.map((j) => j.channels)).toEqual([['', 'flair', 'flair']]);
    await s.dispose();
  });
});
