import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileError } from '../../../main/core/errors.ts';
import { listSeries, openPath } from '../../../main/core/io/open.ts';

const shared = resolve(process.cwd(), '../shared/data');
const external = join(shared, 'external/nifti');
const dicomDir = join(shared, 'phantoms/BraTS20_Training_001_flair_dicom');
const tmp = mkdtempSync(join(tmpdir(), 'open-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function errorOf(promise: Promise<unknown>): Promise<FileError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(FileError);
  return err as FileError;
}

describe('openPath', () => {
  it('opens a 3-D NIfTI as a nifti study { image }', async () => {
    const { studies, notes } = await openPath(join(external, 'anatomical.nii'));
    expect(notes).toEqual([]);
    expect(studies.map((s) => [s.name, s.kind, Object.keys(s.sequences)])).toEqual([['anatomical', 'nifti', ['image']]]);
    expect(studies[0]!.source).toBe(join(external, 'anatomical.nii'));
  });

  it('opens a 4-D NIfTI as image_0, image_1, … with ids file#t', async () => {
    const { studies } = await openPath(join(external, 'example4d.nii.gz'));
    expect(Object.keys(studies[0]!.sequences)).toEqual(['image_0', 'image_1']);
    expect(listSeries(studies).map((s) => s.volume.meta.id)).toEqual(['example4d.nii.gz#0', 'example4d.nii.gz#1']);
  });

  it('says "no such file or directory" for a missing path', async () => {
    const missing = join(tmp, 'does-not-exist');
    const err = await errorOf(openPath(missing));
    expect(err.message).toBe(`${missing}: no such file or directory`);
    const inList = await errorOf(openPath([join(external, 'standard.nii.gz'), missing]));
    expect(inList.file).toBe(missing);
  });

  it('opens a list of files as one study each', async () => {
    const { studies } = await openPath([join(external, 'standard.nii.gz'), join(external, 'anatomical.nii')]);
    expect(studies.map((s) => s.name)).toEqual(['standard', 'anatomical']);
  });

  it('hands a DICOM folder to the DICOM reader: a recognised series is its sequence, notes for other files', async () => {
    const { studies, notes } = await openPath(dicomDir);
    expect(studies).toHaveLength(1);
    expect(studies[0]!.kind).toBe('dicom');
    // the series says "FLAIR": it is the study's flair, not an anonymous "image"
    expect(Object.keys(studies[0]!.sequences)).toEqual(['flair']);
    expect(studies[0]!.name).toBe(studies[0]!.sequences.flair!.meta.description);
    expect(studies[0]!.sequences.flair!.dims).toEqual([240, 240, 155]);
    expect(studies[0]!.metadata).toMatchObject({ patientId: 'PHANTOM001', patientName: 'Phantom, Brain', studyDate: '20261126', modality: 'MR' });
    expect(notes.some((n) => n.includes('README.txt'))).toBe(true);
  });

  it('searches folders recursively: NIfTI files load, bad ones and junk become notes', async () => {
    const dir = join(tmp, 'tree');
    mkdirSync(join(dir, 'a/b'), { recursive: true });
    copyFileSync(join(external, 'standard.nii.gz'), join(dir, 'standard.nii.gz'));
    copyFileSync(join(external, 'functional.nii'), join(dir, 'a/b/functional.nii'));
    writeFileSync(join(dir, 'a/broken.nii'), 'not a nifti');
    writeFileSync(join(dir, 'readme.txt'), 'hello');
    const { studies, notes } = await openPath(dir);
    expect(studies.map((s) => s.name).sort()).toEqual(['functional', 'standard']);
    expect(notes).toContain(`skipped ${join(dir, 'readme.txt')}: not a NIfTI or DICOM file`);
    expect(notes.some((n) => n.startsWith(`skipped ${join(dir, 'a/broken.nii')}: not a NIfTI file`))).toBe(true);
  });

  it('makes series ids unique when two folders hold the same file name', async () => {
    const dir = join(tmp, 'dupes');
    for (const sub of ['x', 'y']) {
      mkdirSync(join(dir, sub), { recursive: true });
      copyFileSync(join(external, 'standard.nii.gz'), join(dir, sub, 'image.nii.gz'));
    }
    const ids = listSeries((await openPath(dir)).studies).map((s) => s.volume.meta.id);
    expect(new Set(ids).size).toBe(2);
    expect(ids.every((id) => id.endsWith('image.nii.gz'))).toBe(true);
  });

  it('refuses an empty folder, a folder of one broken NIfTI and an explicit non-image file', async () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    expect((await errorOf(openPath(empty))).message).toBe(`${empty}: no NIfTI or DICOM images found`);

    const broken = join(tmp, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'x.nii.gz'), Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
    expect((await errorOf(openPath(broken))).file).toBe(join(broken, 'x.nii.gz'));

    const text = join(tmp, 'notes.json');
    writeFileSync(text, '{"not": "an image"}');
    expect((await errorOf(openPath(text))).file).toBe(text);
  });
});
