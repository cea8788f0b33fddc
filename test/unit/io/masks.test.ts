/**
 * Loading masks onto a study (io/masks.ts) and DICOM SEG files met in study folders (io/open.ts,
 * io/segmentations.ts): the app's own SEG export of the DICOM phantom read back over its series
 * voxel for voxel, from inside the series' folder too; a NIfTI label map on the study's grid and
 * on another grid; BraTS 2023 numbering; a LABELMAP SEG from "another tool" with segments named
 * as BraTS parts; and pydicom's liver SEG recognised, listed and refused with its series named.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import dcmjs from 'dcmjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRATS_SEGMENTS, buildDicomSeg, writeDicomSeg } from '../../../main/core/io/dicom-seg.ts';
import { inspectMask, loadMask, maskTargetOf } from '../../../main/core/io/masks.ts';
import { readNifti, writeNifti } from '../../../main/core/io/nifti.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { proposeLabels } from '../../../main/core/io/segmentations.ts';
import type { Study } from '../../../main/core/io/study.ts';
import { Volume, indexToWorld, worldToIndex } from '../../../main/core/io/volume.ts';
import { writeFileAtomic } from '../../../main/core/util/fs.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const dicomDir = join(phantoms, 'BraTS20_Training_001_flair_dicom');
const gtFile = join(phantoms, 'BraTS20_Training_001', 'BraTS20_Training_001_seg.nii.gz');
const liver = resolve(process.cwd(), '../shared/data/external/dicom/liver_1frame.dcm');
const tmp = mkdtempSync(join(tmpdir(), 'masks-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let study: Study;
let truth: Volume;
const differing = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
};

beforeAll(async () => {
  study = (await openPath(dicomDir)).studies[0]!;
  truth = (await readNifti(gtFile)).volumes[0]!;
});

describe('DICOM SEG', () => {
  it("the app's own SEG export of the DICOM phantom loads back over its series, equal voxel for voxel, and inside the series' folder it is a mask, not a second series", async () => {
    const source = Object.values(study.sequences)[0]!;
    // labels 1, 2 and 4 all present: necrosis painted into part of the edema
    const labels = (truth.data as Uint8Array).slice();
    let ones = 0;
    for (let i = 0; i < labels.length && ones < 4000; i++) {
      if (labels[i] !== 2 || i % 3 !== 0) continue;
      labels[i] = 1;
      ones++;
    }
    const folder = join(tmp, 'series-with-seg');
    cpSync(dicomDir, folder, { recursive: true });
    const segFile = join(folder, 'BraTS20_Training_001_pred_seg.dcm');
    await writeDicomSeg(segFile, { labels, source, segments: BRATS_SEGMENTS, algorithm: { name: 'SAM2-UNet', version: '1' } });

    const opened = await openPath(folder);
    expect(opened.studies).toHaveLength(1);
    const withSeg = opened.studies[0]!;
    expect(withSeg.segmentations?.map((s) => s.file)).toEqual([segFile]);
    expect(withSeg.segmentations![0]!.segments.map((s) => s.name)).toEqual(['Necrotic core', 'Edema', 'Enhancing tumour']);
    expect(withSeg.notes?.some((n) => n.includes('Load mask offers it'))).toBe(true);

    const target = maskTargetOf(withSeg);
    const inspection = await inspectMask(segFile, target);
    expect(inspection.segments.map((s) => s.proposed)).toEqual([1, 2, 4]);
    const loaded = await loadMask(segFile, target);
    expect(differing(loaded.labels, labels)).toBe(0);
    // a segment left out by the user
    const without = await loadMask(segFile, target, { '1': 0 });
    expect(without.labels.includes(1)).toBe(false);
    expect(differing(without.labels, labels)).toBe(ones);
  });

  it('a SEG opened by itself is listed with its segments and the series it references, never read as an image', async () => {
    const alone = await openPath(liver, { segmentationsOnly: 'return' });
    expect(alone.studies).toEqual([]);
    expect(alone.segmentations).toHaveLength(1);
    const seg = alone.segmentations[0]!;
    expect(seg.segments).toEqual([expect.objectContaining({ number: 1, name: 'Liver', type: 'Liver' })]);
    expect(seg.referencedSeriesUid).toBe('1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1');
    expect(seg.referencedInstances).toBe(3);
    // callers that need images get the series named
    await expect(openPath(liver)).rejects.toThrow(/liver_1frame\.dcm: a DICOM SEG \(segmentation, segments: 1 Liver\) of series 1\.2\.392\.200103\.20080913\.113635\.1\.2009\.6\.22\.21\.43\.10\.23430\.1 \(3 images\)/);
    // and loading it onto another study names its series instead of placing it anywhere
    const target = maskTargetOf(study);
    await expect(inspectMask(liver, target)).rejects.toThrow(/is a segmentation of series 1\.2\.392\.[0-9.]+ \(3 images\), not of /);
    await expect(loadMask(liver, target)).rejects.toThrow(/not of .*'s series/);
  });

  it('a LABELMAP SEG of another tool, its segments named as BraTS parts, loads with labels from the names', async () => {
    const source = Object.values(study.sequences)[0]!;
    const labels = truth.data as Uint8Array;
    // the app's BINARY SEG turned into a LABELMAP one: one frame per slice, pixel = segment number
    const { dataset } = buildDicomSeg({ labels, source, segments: BRATS_SEGMENTS, algorithm: { name: 'OtherTool', version: '2' } });
    const [nx, ny, nz] = source.dims;
    const numbers: Record<number, number> = { 2: 1, 4: 2 };
    const frames = [] as Record<string, unknown>[];
    const pixels = new Uint8Array(nx * ny * nz);
    for (let k = 0; k < nz; k++) {
      for (let i = 0; i < nx * ny; i++) pixels[k * nx * ny + i] = numbers[labels[k * nx * ny + i]!] ?? 0;
      frames.push({ FrameContentSequence: [{ DimensionIndexValues: [k + 1] }], PlanePositionSequence: [{ ImagePositionPatient: indexToWorld(source.geometry, 0, 0, k).map(String) }] });
    }
    Object.assign(dataset, {
      SegmentationType: 'LABELMAP',
      BitsAllocated: 8,
      BitsStored: 8,
      HighBit: 7,
      NumberOfFrames: nz,
      PerFrameFunctionalGroupsSequence: frames,
      PixelData: [pixels.buffer],
      SegmentSequence: [
        { SegmentNumber: 1, SegmentLabel: 'Peritumoral edema', SegmentAlgorithmType: 'MANUAL' },
        { SegmentNumber: 2, SegmentLabel: 'Enhancing tumor', SegmentAlgorithmType: 'MANUAL' },
      ],
    });
    const { DicomDict, DicomMetaDictionary } = dcmjs.data;
    const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset({ FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, MediaStorageSOPClassUID: dataset.SOPClassUID, MediaStorageSOPInstanceUID: dataset.SOPInstanceUID, TransferSyntaxUID: '1.2.840.10008.1.2.1', ImplementationClassUID: '2.25.1' }));
    dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
    const file = join(tmp, 'labelmap.dcm');
    await writeFileAtomic(file, new Uint8Array(dict.write()));
    const target = maskTargetOf(study);
    const inspection = await inspectMask(file, target);
    expect(inspection.segments.map((s) => [s.name, s.proposed])).toEqual([['Peritumoral edema', 2], ['Enhancing tumor', 4]]);
    const loaded = await loadMask(file, target);
    expect(differing(loaded.labels, labels)).toBe(0);
  });

  it('proposes labels from names and codes, and asks for what it cannot tell', () => {
    const proposed = proposeLabels([
      { number: 1, name: 'Non-enhancing tumor core' },
      { number: 2, name: 'Segment 2', type: 'Edema', typeCode: '79654002' },
      { number: 3, name: 'GD-enhancing tumour' },
      { number: 4, name: 'Liver', type: 'Liver' },
      { number: 5, name: 'Tumour' },
    ]).map((p) => p.label);
    expect(proposed).toEqual([1, 2, 4, null, null]);
    expect(proposeLabels([{ number: 1, name: 'Whole tumour' }])[0]!.label).toBe(1);
  });
});

describe('NIfTI label maps', () => {
  it('on the study grid: loads equal', async () => {
    const loaded = await loadMask(gtFile, maskTargetOf(study));
    expect(differing(loaded.labels, truth.data as Uint8Array)).toBe(0);
    expect(loaded.notes).toEqual([]);
  });

  it('on another grid (cropped, 2 mm, shifted): resampled nearest-neighbour through world coordinates, with a note', async () => {
    // every second voxel of a 100×100×60 box: a 2 mm grid whose voxel centres are voxels of the study grid
    const [ox, oy, oz] = [60, 70, 40];
    const dims: [number, number, number] = [50, 50, 30];
    const small = new Uint8Array(dims[0] * dims[1] * dims[2]);
    const g = truth.geometry;
    for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) small[i + dims[0] * (j + dims[1] * k)] = (truth.data as Uint8Array)[ox + 2 * i + 240 * (oy + 2 * j + 240 * (oz + 2 * k))]!;
    const geometry = { dims, spacing: [2, 2, 2] as [number, number, number], origin: indexToWorld(g, ox, oy, oz), direction: g.direction };
    const file = join(tmp, 'coarse.nii.gz');
    await writeNifti(file, new Volume({ geometry, data: small, meta: { id: 'coarse', description: '', modality: 'SEG', sources: [] } }));
    const loaded = await loadMask(file, maskTargetOf(study));
    expect(loaded.notes.join(' ')).toMatch(/resampled nearest-neighbour onto the study's .* through world coordinates; it covers \d+ % of the study/);
    // every study voxel takes the label of the coarse voxel nearest to it, and nothing outside the box
    let checked = 0;
    let wrong = 0;
    let tumour = 0;
    for (let k = 0; k < 155; k += 3)
      for (let j = 0; j < 240; j += 3)
        for (let i = 0; i < 240; i += 3) {
          const p = worldToIndex(geometry, indexToWorld(g, i, j, k)).map(Math.round);
          const inside = p.every((x, a) => x >= 0 && x < dims[a]!);
          const expected = inside ? small[p[0]! + dims[0] * (p[1]! + dims[1] * p[2]!)]! : 0;
          if (loaded.labels[i + 240 * (j + 240 * k)] !== expected) wrong++;
          if (expected) tumour++;
          checked++;
        }
    expect(checked).toBeGreaterThan(100_000);
    expect(tumour).toBeGreaterThan(1000);
    expect(wrong).toBe(0);
  });

  it("reads BraTS 2023's enhancing label 3 as 4, a 0/255 mask as binary, and refuses other labels", async () => {
    const base = truth.data as Uint8Array;
    const write = async (name: string, data: Uint8Array) => {
      const file = join(tmp, name);
      await writeNifti(file, truth.withData(data), { dtype: 'uint8' });
      return file;
    };
    const brats2023 = await loadMask(await write('b23.nii.gz', base.map((v) => (v === 4 ? 3 : v))), maskTargetOf(study));
    expect(differing(brats2023.labels, base)).toBe(0);
    expect(brats2023.notes[0]).toMatch(/BraTS 2023 numbering/);
    const binary = await loadMask(await write('bin.nii.gz', base.map((v) => (v ? 255 : 0))), maskTargetOf(study));
    expect(differing(binary.labels, base.map((v) => (v ? 1 : 0)))).toBe(0);
    await expect(loadMask(await write('bad.nii.gz', base.map((v) => (v === 4 ? 7 : v))), maskTargetOf(study))).rejects.toThrow(/bad\.nii\.gz: holds labels 0, 2, 7/);
  });
});
