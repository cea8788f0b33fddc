/**
 * Open studies in the service (issue 12): reopening the same path (by real path) gives the open
 * study back, closing forgets it, roles of DICOM series can be changed, and the tag viewer's
 * elements come from the series' first instance.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createDefaultPorts } from '../../../main/core/api-ports.ts';
import { WorkstationService } from '../../../main/core/api-service.ts';
import { Volume, type Geometry } from '../../../main/core/io/volume.ts';
import { writeMrSeries } from '../../fixtures/dicom/write-series.ts';

const phantoms = resolve(import.meta.dirname, '../../../../shared/data/phantoms');
const flairDicom = join(phantoms, 'BraTS20_Training_001_flair_dicom');
const tmp = mkdtempSync(join(tmpdir(), 'studies-'));
const service = new WorkstationService({ mode: 'web', ports: createDefaultPorts(), resolveExportPath: vi.fn() });
afterAll(async () => {
  await service.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('open studies', () => {
  it('opening a study that is open already (also through a symlink) gives the same study back', async () => {
    const link = join(tmp, 'case-link');
    symlinkSync(join(phantoms, 'BraTS20_Training_002'), link);
    const first = await service.openStudy({ path: join(phantoms, 'BraTS20_Training_002') });
    const again = await service.openStudy({ path: link });
    expect(again.studies.map((s) => s.id)).toEqual(first.studies.map((s) => s.id));
    expect(again.notes).toEqual([`${link} is open already`]);
  });

  it('a closed study is forgotten; opening it again makes a new one', async () => {
    const { studies } = await service.openStudy({ path: join(phantoms, 'BraTS20_Training_003') });
    const id = studies[0]!.id;
    expect(await service.closeStudy({ studyId: id })).toEqual({ closed: true });
    expect(await service.closeStudy({ studyId: id })).toEqual({ closed: false });
    await expect(service.getVolume({ studyId: id, sequence: 'flair' })).rejects.toThrow(/no open study/);
    const reopened = await service.openStudy({ path: join(phantoms, 'BraTS20_Training_003') });
    expect(reopened.studies[0]!.id).not.toBe(id);
  });

  it('BraTS studies carry the case name and no patient fields; sequences their names', async () => {
    const study = (await service.openStudy({ path: join(phantoms, 'BraTS20_Training_002') })).studies[0]!;
    expect(study.name).toBe('BraTS20_Training_002');
    expect(study.metadata).toEqual({});
    expect(study.sequences.map((s) => [s.name, s.description])).toEqual([['t1', 'T1'], ['t1ce', 'T1ce'], ['t2', 'T2'], ['flair', 'FLAIR']]);
    await expect(service.getTags({ studyId: study.id, sequence: 'flair' })).rejects.toThrow(/was not read from DICOM/);
  });

  it('a DICOM series is listed by its description, with patient and study fields, and its tags can be read', async () => {
    const study = (await service.openStudy({ path: flairDicom })).studies[0]!;
    expect(study.sequences.map((s) => [s.name, s.description])).toEqual([['flair', 'FLAIR']]);
    expect(study.sequences[0]!.seriesId).toMatch(/^[\d.]+$/);
    expect(study.metadata).toMatchObject({ patientName: 'Phantom, Brain', patientId: 'PHANTOM001', studyDate: '20261126', modality: 'MR' });
    expect(study.series).toEqual([expect.objectContaining({ description: 'FLAIR', role: 'flair', recognised: 'flair', reason: 'series description "FLAIR"', resampled: false })]);
    const { file, tags } = await service.getTags({ studyId: study.id, sequence: 'flair' });
    expect(file.startsWith(flairDicom)).toBe(true);
    const byKeyword = new Map(tags.map((t) => [t.keyword, t]));
    expect(byKeyword.get('PatientID')).toEqual({ tag: '(0010,0020)', vr: 'LO', keyword: 'PatientID', value: 'PHANTOM001' });
    expect(byKeyword.get('SeriesDescription')!.value).toBe('FLAIR');
    expect(byKeyword.get('PixelData')!.value).toMatch(/^\(binary, 115200 bytes\)$/);
    expect(byKeyword.get('TransferSyntaxUID')!.tag).toBe('(0002,0010)');
  });

  it('nested sequences come back as items', async () => {
    const dir = join(tmp, 'nested');
    mkdirSync(dir);
    const geometry: Geometry = { dims: [4, 3, 2], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
    const volume = new Volume({ geometry, data: new Int16Array(24).map((_, i) => i), meta: { id: 'x', description: '', modality: 'MR', sources: [] } });
    writeMrSeries(dir, volume, { description: 'T1 SE', seriesNumber: 1, seriesUid: '1.2.3.55', extra: [['00081140', 'SQ', [[['00081150', 'UI', '1.2.840.10008.5.1.4.1.1.4'], ['00081155', 'UI', '1.2.3.4.5']]]]] }, (k) => `s${k}.dcm`);
    const study = (await service.openStudy({ path: dir })).studies[0]!;
    const { tags } = await service.getTags({ studyId: study.id, sequence: 't1' });
    const referenced = tags.find((t) => t.keyword === 'ReferencedImageSequence')!;
    expect(referenced).toMatchObject({ tag: '(0008,1140)', vr: 'SQ', value: '1 item' });
    expect(referenced.items![0]!.map((t) => [t.keyword, t.value])).toEqual([
      ['ReferencedSOPClassUID', '1.2.840.10008.5.1.4.1.1.4'],
      ['ReferencedSOPInstanceUID', '1.2.3.4.5'],
    ]);
  });

  it('setSequenceRoles re-keys the study and drops its prediction', async () => {
    const dir = join(tmp, 'roles');
    mkdirSync(dir);
    const geometry: Geometry = { dims: [4, 3, 2], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
    const volumeOf = (offset: number) => new Volume({ geometry, data: new Int16Array(24).map((_, i) => i + offset), meta: { id: 'x', description: '', modality: 'MR', sources: [] } });
    writeMrSeries(dir, volumeOf(0), { description: 'Sag T1 MPRAGE', seriesNumber: 2, seriesUid: '1.2.3.61' }, (k) => `a${k}`);
    writeMrSeries(dir, volumeOf(100), { description: 'T2 FLAIR', seriesNumber: 3, seriesUid: '1.2.3.62' }, (k) => `b${k}`);
    const study = (await service.openStudy({ path: dir })).studies[0]!;
    expect(study.sequences.map((s) => s.name)).toEqual(['t1', 'flair']);
    const updated = await service.setSequenceRoles({ studyId: study.id, roles: { '1.2.3.61': 't1ce' } });
    expect(updated.id).toBe(study.id);
    expect(updated.sequences.map((s) => [s.name, s.description])).toEqual([['t1ce', 'Sag T1 MPRAGE'], ['flair', 'T2 FLAIR']]);
    expect(updated.series!.find((s) => s.seriesId === '1.2.3.61')).toMatchObject({ role: 't1ce', recognised: 't1' });
    const t1ce = await service.getVolume({ studyId: study.id, sequence: 't1ce' });
    expect(Array.from(t1ce.data).slice(0, 3)).toEqual([0, 1, 2]);
    expect(await service.getLabels({ studyId: study.id, source: 'prediction' })).toBeNull();
  });
});
