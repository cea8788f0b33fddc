/**
 * The mask loop over the API with the real ports (io worker): a mask loaded as the editable
 * prediction or as ground truth, the renderer's edits applied all-or-nothing, the Tumour panel's
 * description following the edits, Save as reviewed writing a BraTS case the trainer opens as it
 * is, and a DICOM SEG opened by itself listed with the series it needs.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { createDefaultPorts } from '../../../main/core/api-ports.ts';
import { encodeRuns } from '../../../main/core/edit/diff.ts';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { loadTrainingStudies } from '../../../main/core/train/data.ts';

const phantoms = resolve(import.meta.dirname, '../../../../shared/data/phantoms');
const case001 = join(phantoms, 'BraTS20_Training_001');
const gtFile = join(case001, 'BraTS20_Training_001_seg.nii.gz');
const tmp = mkdtempSync(join(tmpdir(), 'review-test-'));
const reviewedDir = join(tmp, 'reviewed');
const ports = createDefaultPorts();
const service = new WorkstationService({ mode: 'web', ports, reviewedDir, resolveExportPath: vi.fn() });
afterAll(async () => {
  await service.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('masks, edits and Save as reviewed over the API', () => {
  it('loads a mask as the prediction, applies edits all or nothing, describes the edited mask, and saves it as a BraTS case the trainer reads', async () => {
    const { studies } = await service.openStudy({ path: case001 });
    const studyId = studies[0]!.id;
    const truth = (await readNifti(gtFile)).volumes[0]!.data as Uint8Array;
    await expect(service.saveReviewed({ studyId })).rejects.toThrow(/has no mask to save/);

    const loaded = await service.loadMask({ studyId, path: gtFile, as: 'prediction' });
    expect(loaded.source).toBe('prediction');
    expect(Buffer.compare(Buffer.from(loaded.data), Buffer.from(truth))).toBe(0);
    const before = (await service.describeTumour({ studyId, source: 'prediction' }))!;

    // the renderer's edit: every tumour voxel of slices 0…79 becomes background
    const plane = 240 * 240;
    const runs = [];
    for (let i = 0; i < 80 * plane; i++) if (truth[i]) runs.push({ start: i, length: 1, before: truth[i]!, after: 0 });
    const erase = encodeRuns(runs);
    // a second change that does not fit (voxel 0 is background, not 4): neither is applied
    const wrong = encodeRuns([{ start: 0, length: 1, before: 4, after: 2 }]);
    await expect(service.editLabels({ studyId, changes: [erase, wrong] })).rejects.toThrow(/do not fit its mask on the server/);
    let labels = (await service.getLabels({ studyId, source: 'prediction' }))!.data;
    expect(Buffer.compare(Buffer.from(labels), Buffer.from(truth))).toBe(0);
    await expect(service.editLabels({ studyId, changes: [encodeRuns([{ start: 0, length: 1, before: 0, after: 3 }])] })).rejects.toThrow(/label 3 is not a BraTS label/);

    const result = await service.editLabels({ studyId, changes: [erase] });
    expect(result.voxels).toBe(runs.length);
    expect(result.edits).toBe(1);
    labels = (await service.getLabels({ studyId, source: 'prediction' }))!.data;
    const edited = truth.slice();
    edited.fill(0, 0, 80 * plane);
    expect(Buffer.compare(Buffer.from(labels), Buffer.from(edited))).toBe(0);
    const after = (await service.describeTumour({ studyId, source: 'prediction' }))!;
    expect(after).not.toBe(before);
    expect(after.description.regions.WT!.volume_ml).toBeLessThan(before.description.regions.WT!.volume_ml);

    const saved = await service.saveReviewed({ studyId, reviewer: 'Dr Test' });
    const caseDir = join(reviewedDir, 'BraTS20_Training_001');
    expect(saved.study).toMatchObject({ name: 'BraTS20_Training_001', dir: caseDir, reviewer: 'Dr Test', trainable: true, startingMask: `loaded from ${gtFile}` });
    expect(saved.files.map((f) => f.slice(caseDir.length + 1)).sort()).toEqual(
      ['flair', 't1', 't1ce', 't2', 'seg'].map((s) => `BraTS20_Training_001_${s}.nii.gz`).concat('BraTS20_Training_001_review.json').sort(),
    );
    const record = JSON.parse(readFileSync(join(caseDir, 'BraTS20_Training_001_review.json'), 'utf8'));
    // the images are the study's own files: hard links where the file system allows (one inode, the source untouched), else copies
    expect(record.images.t1).toMatch(/^(linked|copied) from .*BraTS20_Training_001_t1\.nii\.gz$/);
    const same = statSync(join(caseDir, 'BraTS20_Training_001_t1.nii.gz')).ino === statSync(join(case001, 'BraTS20_Training_001_t1.nii.gz')).ino;
    expect(same).toBe(record.images.t1.startsWith('linked'));
    expect(readFileSync(join(caseDir, 'BraTS20_Training_001_t2.nii.gz')).equals(readFileSync(join(case001, 'BraTS20_Training_001_t2.nii.gz')))).toBe(true);
    expect(record).toMatchObject({ case: 'BraTS20_Training_001', reviewer: 'Dr Test', edits: 1, trainable: true, startingMask: { kind: 'file', path: gtFile } });
    expect(Date.now() - Date.parse(record.reviewedAt)).toBeLessThan(60_000);
    const segBack = (await readNifti(join(caseDir, 'BraTS20_Training_001_seg.nii.gz'))).volumes[0]!;
    expect(Buffer.compare(Buffer.from(segBack.data as Uint8Array), Buffer.from(edited))).toBe(0);
    expect(await service.listReviewed()).toEqual([saved.study]);

    // the folder as it is: a BraTS study with this ground truth, and training data
    const reopened = await openPath(reviewedDir);
    expect(reopened.studies.map((s) => s.name)).toEqual(['BraTS20_Training_001']);
    const training = await loadTrainingStudies([reviewedDir], { regions: 'brats' });
    expect(training).toHaveLength(1);
    expect(training[0]!.tumourSlices[0]).toBeGreaterThanOrEqual(80);
    // saved again after more edits: the case is replaced, not duplicated
    await service.editLabels({ studyId, changes: [encodeRuns([{ start: 100 * plane, length: 3, before: 0, after: 1 }])] });
    await service.saveReviewed({ studyId });
    expect((await service.listReviewed()).length).toBe(1);
    expect(existsSync(join(case001, 'BraTS20_Training_001_review.json'))).toBe(false);
  }, 120_000);

  it('a mask loaded as ground truth replaces the reference; painting without a prediction starts from an empty layer', async () => {
    const { studies } = await service.openStudy({ path: join(phantoms, 'BraTS20_Training_002') });
    const studyId = studies[0]!.id;
    const loaded = await service.loadMask({ studyId, path: gtFile, as: 'groundTruth' });
    expect(loaded.notes).toEqual([]);
    const truth = (await service.getLabels({ studyId, source: 'groundTruth' }))!.data;
    expect(Buffer.compare(Buffer.from(truth), Buffer.from((await readNifti(gtFile)).volumes[0]!.data as Uint8Array))).toBe(0);
    expect(await service.getLabels({ studyId, source: 'prediction' })).toBeNull();
    await service.editLabels({ studyId, changes: [encodeRuns([{ start: 5000, length: 10, before: 0, after: 2 }])] });
    const drawn = (await service.getLabels({ studyId, source: 'prediction' }))!.data;
    expect(drawn.reduce((n, v) => n + (v === 2 ? 1 : 0), 0)).toBe(10);
    const saved = await service.saveReviewed({ studyId });
    expect(saved.study.startingMask).toBe('drawn by hand (no starting mask)');
  }, 120_000);

  it('a DICOM SEG opened by itself lists its segments and the series it references, and which open study holds it', async () => {
    const liver = await service.openStudy({ path: resolve(phantoms, '../external/dicom/liver_1frame.dcm') });
    expect(liver.studies).toEqual([]);
    expect(liver.segmentations).toEqual([
      expect.objectContaining({ segments: [{ number: 1, name: 'Liver', type: 'Liver' }], referencedSeriesUid: '1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1', referencedInstances: 3 }),
    ]);
    expect(liver.segmentations![0]!.openStudyId).toBeUndefined();
  }, 60_000);
});
