import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileError } from '../../../main/core/errors.ts';
import { findBratsCases, loadBratsCase } from '../../../main/core/io/brats.ts';
import { writeNifti } from '../../../main/core/io/nifti.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { Volume, type Geometry } from '../../../main/core/io/volume.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const index = JSON.parse(readFileSync(join(phantoms, 'index_001.json'), 'utf8')) as { case: string; labels: Record<string, number> }[];
const tmp = mkdtempSync(join(tmpdir(), 'brats-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('BraTS phantoms', () => {
  for (const { case: name, labels } of index) {
    it(`opens ${name} as one BraTS study with the label counts of index_001.json`, async () => {
      const { studies, notes } = await openPath(join(phantoms, name));
      expect(notes).toEqual([]);
      expect(studies).toHaveLength(1);
      const study = studies[0]!;
      expect([study.name, study.kind]).toEqual([name, 'brats']);
      expect(Object.keys(study.sequences)).toEqual(['t1', 't1ce', 't2', 'flair']);
      expect(study.sequences.flair!.dims).toEqual([240, 240, 155]);
      const seg = study.seg!;
      expect(seg.dtype).toBe('uint8');
      const histogram = new Float64Array(256);
      const { data } = seg;
      for (let i = 0; i < data.length; i++) histogram[data[i]!]++;
      const counts = Object.fromEntries([...histogram.entries()].filter(([, n]) => n > 0).map(([label, n]) => [String(label), n]));
      expect(counts).toEqual(labels);
    });
  }
});

describe('findBratsCases', () => {
  it('groups case files, leaves others, and ignores a lone *_t1.nii', () => {
    const { cases, others } = findBratsCases('/d', ['a_t1.nii.gz', 'a_T1CE.nii.gz', 'a_t2.nii', 'a_flair.nii.gz', 'a_seg.nii.gz', 'notes.txt', 'scan_t1.nii']);
    expect(cases).toHaveLength(1);
    expect(cases[0]!.name).toBe('a');
    expect(cases[0]!.files).toEqual({ t1: '/d/a_t1.nii.gz', t1ce: '/d/a_T1CE.nii.gz', t2: '/d/a_t2.nii', flair: '/d/a_flair.nii.gz', seg: '/d/a_seg.nii.gz' });
    expect(others).toEqual(['notes.txt', 'scan_t1.nii']);
  });

  it('reads BraTS 2023 names as the same roles', () => {
    const { cases } = findBratsCases('/d', ['BraTS-GLI-00000-000-t1n.nii.gz', 'BraTS-GLI-00000-000-t1c.nii.gz', 'BraTS-GLI-00000-000-t2w.nii.gz', 'BraTS-GLI-00000-000-t2f.nii.gz', 'BraTS-GLI-00000-000-seg.nii.gz']);
    expect(cases.map((c) => [c.name, Object.keys(c.files).sort()])).toEqual([['BraTS-GLI-00000-000', ['flair', 'seg', 't1', 't1ce', 't2']]]);
  });

  it('refuses two files for one sequence', () => {
    expect(() => findBratsCases('/d', ['a_t1.nii', 'a_t1.nii.gz', 'a_t2.nii'])).toThrow(/two t1 files/);
  });
});

const grid: Geometry = { dims: [4, 3, 2], spacing: [1, 1, 1], origin: [0, -239, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };

async function writeCase(dir: string, roles: string[], geometryOf: (role: string) => Geometry = () => grid, segData?: Volume['data']): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const role of roles) {
    const g = geometryOf(role);
    const n = g.dims[0] * g.dims[1] * g.dims[2];
    const data = role === 'seg' ? segData ?? Uint8Array.from({ length: n }, (_, i) => [0, 1, 2, 4][i % 4]!) : Int16Array.from({ length: n }, (_, i) => i);
    await writeNifti(join(dir, `case_${role}.nii.gz`), new Volume({ geometry: g, data, meta: { id: role, description: role, modality: '', sources: [] } }));
  }
}

async function errorOf(promise: Promise<unknown>): Promise<FileError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(FileError);
  return err as FileError;
}

describe('loadBratsCase', () => {
  it('lists the missing sequences', async () => {
    const dir = join(tmp, 'missing');
    await writeCase(dir, ['t1', 'flair', 'seg']);
    const err = await errorOf(openPath(dir));
    expect(err.file).toBe(dir);
    expect(err.problem).toBe('BraTS case case is missing t1ce, t2 (found t1, flair, seg)');
  });

  it('names the file whose grid differs and what differs', async () => {
    const shifted = join(tmp, 'shifted');
    await writeCase(shifted, ['t1', 't1ce', 't2', 'flair', 'seg'], (r) => (r === 't2' ? { ...grid, origin: [0, -238, 0] } : grid));
    let err = await errorOf(openPath(shifted));
    expect(err.file).toBe(join(shifted, 'case_t2.nii.gz'));
    expect(err.problem).toMatch(/not on the grid of .*case_t1\.nii\.gz: origin \[0, -238, 0\] vs \[0, -239, 0\]/);

    const resized = join(tmp, 'resized');
    await writeCase(resized, ['t1', 't1ce', 't2', 'flair', 'seg'], (r) => (r === 'seg' ? { ...grid, dims: [4, 3, 3] } : grid));
    err = await errorOf(openPath(resized));
    expect(err.file).toBe(join(resized, 'case_seg.nii.gz'));
    expect(err.problem).toMatch(/dims 4×3×3 vs 4×3×2/);
  });

  it('turns a float label map into uint8 labels and refuses non-integer labels', async () => {
    const floatSeg = join(tmp, 'float-seg');
    await writeCase(floatSeg, ['t1', 't1ce', 't2', 'flair', 'seg'], () => grid, Float32Array.from({ length: 24 }, (_, i) => [0, 1, 2, 4][i % 4]!));
    const [entry] = findBratsCases(floatSeg, ['case_t1.nii.gz', 'case_t1ce.nii.gz', 'case_t2.nii.gz', 'case_flair.nii.gz', 'case_seg.nii.gz']).cases;
    const study = await loadBratsCase(entry!);
    expect(study.seg!.dtype).toBe('uint8');
    expect(Array.from(study.seg!.data.subarray(0, 5))).toEqual([0, 1, 2, 4, 0]);

    const badSeg = join(tmp, 'bad-seg');
    await writeCase(badSeg, ['t1', 't1ce', 't2', 'flair', 'seg'], () => grid, Float32Array.from({ length: 24 }, (_, i) => (i === 5 ? 0.5 : 0)));
    const err = await errorOf(openPath(badSeg));
    expect(err.file).toBe(join(badSeg, 'case_seg.nii.gz'));
    expect(err.problem).toMatch(/value 0.5 at voxel 5/);
  });

  it('opens a case without ground truth, and BraTS wins over other files in the folder', async () => {
    const dir = join(tmp, 'mixed');
    await writeCase(dir, ['t1', 't1ce', 't2', 'flair']);
    symlinkSync(join(phantoms, 'index_001.json'), join(dir, 'index.json'));
    const { studies, notes } = await openPath(dir);
    expect(studies.map((s) => [s.kind, s.seg])).toEqual([['brats', undefined]]);
    expect(notes).toEqual([`${dir}: ignored 1 other entry beside the BraTS files`]);
  });
});
