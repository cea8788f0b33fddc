import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Study } from '../../../main/core/io/study.ts';
import { Volume } from '../../../main/core/io/volume.ts';
import { segmentStudy, type SliceResult } from '../../../main/core/jobs/segment.ts';
import type { SliceModel } from '../../../main/core/jobs/slice-model.ts';
import { POSTPROCESS_DEFAULTS, postprocessLabels, postprocessingSteps } from '../../../main/core/model/postprocess.ts';
import { thresholdModel } from '../jobs/tiny-model.ts';

const DIMS: [number, number, number] = [30, 30, 20];
const at = (x: number, y: number, z: number) => (z * DIMS[1] + y) * DIMS[0] + x;

/** a cube of `label` with corner (x, y, z) and side `n` */
function cube(labels: Uint8Array, [x0, y0, z0]: [number, number, number], n: number, label: number): void {
  for (let z = z0; z < z0 + n; z++) for (let y = y0; y < y0 + n; y++) for (let x = x0; x < x0 + n; x++) labels[at(x, y, z)] = label;
}

describe('postprocessLabels', () => {
  it('removes whole-tumour components below the volume threshold, keeping larger ones whole', () => {
    const labels = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    cube(labels, [2, 2, 2], 6, 2); // 216 voxels = 0.216 ml: kept at 0.2 ml
    cube(labels, [4, 4, 4], 2, 4); // ET inside it (8 voxels)
    cube(labels, [20, 20, 10], 5, 1); // 125 voxels: removed
    labels[at(28, 2, 18)] = 2; // a speck: removed
    const r = postprocessLabels(labels, DIMS, [1, 1, 1], 'brats', { minComponentMl: 0.2, minEtMl: 0 });
    expect(r).toMatchObject({ applied: true, componentsBefore: 3, componentsRemoved: 2, voxelsRemoved: 126, etRelabelled: false, etVoxels: 8 });
    expect(r.changedSlices).toEqual([10, 11, 12, 13, 14, 18]);
    expect(labels.reduce((n, v) => n + (v ? 1 : 0), 0)).toBe(216);
    expect(labels[at(4, 4, 4)]).toBe(4);
    expect(labels[at(22, 22, 12)]).toBe(0);
  });

  it('counts voxels touching only at a corner as one component (26-connectivity)', () => {
    const labels = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    cube(labels, [2, 2, 2], 5, 2); // 125 voxels
    cube(labels, [7, 7, 7], 5, 2); // touches the first at the corner (6,6,6)–(7,7,7) only
    const r = postprocessLabels(labels, DIMS, [1, 1, 1], 'brats', { minComponentMl: 0.2, minEtMl: 0 });
    expect(r.componentsBefore).toBe(1);
    expect(r.componentsRemoved).toBe(0);
    expect(labels.reduce((n, v) => n + (v ? 1 : 0), 0)).toBe(250);
  });

  it('measures volume in ml from the voxel spacing', () => {
    const labels = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    cube(labels, [2, 2, 2], 5, 2); // 125 voxels of 2×2×2 mm = 1 ml
    const kept = postprocessLabels(labels.slice(), DIMS, [2, 2, 2], 'brats', { minComponentMl: 1, minEtMl: 0 });
    expect(kept.componentsRemoved).toBe(0);
    const dropped = postprocessLabels(labels, DIMS, [2, 2, 2], 'brats', { minComponentMl: 1.01, minEtMl: 0 });
    expect(dropped.componentsRemoved).toBe(1);
  });

  it('relabels enhancing tumour below the ET threshold as necrosis, and keeps it at or above', () => {
    const small = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    cube(small, [2, 2, 2], 8, 2);
    cube(small, [4, 4, 4], 3, 4); // 27 voxels = 0.027 ml
    const r = postprocessLabels(small, DIMS, [1, 1, 1], 'brats', { minComponentMl: 0, minEtMl: 0.05 });
    expect(r).toMatchObject({ etVoxels: 27, etRelabelled: true, voxelsRelabelled: 27, componentsRemoved: 0 });
    expect(small[at(5, 5, 5)]).toBe(1);
    expect(small.includes(4)).toBe(false);

    const large = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    cube(large, [2, 2, 2], 8, 2);
    cube(large, [4, 4, 4], 4, 4); // 64 voxels = 0.064 ml
    const kept = postprocessLabels(large, DIMS, [1, 1, 1], 'brats', { minComponentMl: 0, minEtMl: 0.05 });
    expect(kept).toMatchObject({ etVoxels: 64, etRelabelled: false, voxelsRelabelled: 0, changedSlices: [] });
    expect(large[at(5, 5, 5)]).toBe(4);
  });

  it('changes nothing with both thresholds 0, and never relabels a binary map', () => {
    const labels = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    labels[at(3, 3, 3)] = 4;
    const before = labels.slice();
    const off = postprocessLabels(labels, DIMS, [1, 1, 1], 'brats', { minComponentMl: 0, minEtMl: 0 });
    expect(off).toMatchObject({ applied: false, componentsBefore: 1, componentsRemoved: 0, changedSlices: [] });
    expect(labels).toEqual(before);
    expect(postprocessingSteps(off)).toEqual([]);
    const binary = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    cube(binary, [2, 2, 2], 3, 1);
    const r = postprocessLabels(binary, DIMS, [1, 1, 1], 'binary', { minComponentMl: 0, minEtMl: 5 });
    expect(r).toMatchObject({ applied: false, minEtMl: 0, etRelabelled: false });
  });

  it('refuses negative or non-finite thresholds', () => {
    const labels = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    expect(() => postprocessLabels(labels, DIMS, [1, 1, 1], 'brats', { minComponentMl: -1, minEtMl: 0 })).toThrow(/minComponentMl must be a volume in ml ≥ 0/);
    expect(() => postprocessLabels(labels, DIMS, [1, 1, 1], 'brats', { minComponentMl: 0, minEtMl: Number.NaN })).toThrow(/minEtMl/);
  });

  it('describes each step with its parameters and counts for the report', () => {
    const labels = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    cube(labels, [2, 2, 2], 2, 4);
    const steps = postprocessingSteps(postprocessLabels(labels, DIMS, [1, 1, 1], 'brats', { minComponentMl: 0.005, minEtMl: 0.2 }));
    expect(steps.map((s) => s.name)).toEqual(['small components removed', 'small enhancing tumour relabelled']);
    expect(steps[0]!.description).toContain('below 0.005 ml');
    expect(steps[0]!.changed).toEqual({ componentsBefore: 1, componentsRemoved: 0, voxelsRemoved: 0 });
    expect(steps[1]!.description).toContain('relabelled necrosis (1): 8 voxels');
  });
});

// --- in the segmentation job: a threshold model on a synthetic study with a tumour and a speck
const [NX, NY, NZ] = [40, 36, 40];
function volume(data: Int16Array | Uint8Array, id: string): Volume {
  return new Volume({
    geometry: { dims: [NX, NY, NZ], spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data,
    meta: { id, description: id, modality: 'MR', sources: [] },
  });
}

/** brain 100, a tumour (edema 200, core 250, enhancing 300) in slices 10–29, and a 2×2×1 "enhancing" speck in slice 35 that the truth does not have */
function studyWithSpeck(): Study {
  const flair = new Int16Array(NX * NY * NZ);
  const seg = new Uint8Array(NX * NY * NZ);
  for (let z = 2; z < NZ - 2; z++) {
    for (let y = 0; y < NY; y++) {
      for (let x = 0; x < NX; x++) {
        const i = (z * NY + y) * NX + x;
        if (((x - 20) / 18) ** 2 + ((y - 18) / 16) ** 2 > 1) continue;
        flair[i] = 100;
        const r = Math.hypot(x - 18, y - 17, (z - 20) / 1.2);
        if (r < 4) [flair[i], seg[i]] = [300, 4];
        else if (r < 6) [flair[i], seg[i]] = [250, 1];
        else if (r < 9) [flair[i], seg[i]] = [200, 2];
        if (z === 35 && x >= 28 && x < 30 && y >= 10 && y < 12) flair[i] = 300;
      }
    }
  }
  const other = Int16Array.from(flair, (v) => (v ? v / 2 + 1 : 0));
  return {
    name: 'speck',
    kind: 'brats',
    source: '/speck',
    sequences: { t1: volume(other, 't1'), t1ce: volume(other, 't1ce'), t2: volume(other, 't2'), flair: volume(flair, 'flair') },
    seg: volume(seg, 'seg'),
  };
}

describe('segmentStudy post-processing', () => {
  let model: SliceModel;
  let study: Study;
  beforeAll(async () => {
    study = studyWithSpeck();
    model = await thresholdModel([0.25, 0.6, 0.9], [NY, NX]);
  });
  afterAll(async () => model?.dispose());

  it('streams the raw slices, returns the post-processed labels and recomputes the changed slices’ metrics', async () => {
    const streamed: SliceResult[] = [];
    const { labels, summary } = await segmentStudy(study, model, { postprocess: { minComponentMl: 0.01, minEtMl: 0 } }, { slice: (r) => streamed.push(r) });
    const plane = NX * NY;
    const speck = streamed.find((r) => r.index === 35)!;
    expect(speck.mask.filter((v) => v === 4).length).toBe(4);
    expect(speck.regions!.WT!.dice).toBe(0);
    const data = labels.data as Uint8Array;
    expect(data.subarray(35 * plane, 36 * plane).some((v) => v !== 0)).toBe(false);
    expect(summary.postprocessing).toMatchObject({ applied: true, componentsBefore: 2, componentsRemoved: 1, voxelsRemoved: 4, changedSlices: [35] });
    // both masks empty after post-processing: the metrics module's empty rule, not the raw Dice 0
    const after = summary.perSlice.find((e) => e.slice === 35)!.metrics;
    expect(after.WT!.dice).not.toBe(0);
    expect(summary.perSlice.find((e) => e.slice === 20)!.metrics.WT!.dice).toBe(1);
    // the tumour itself is untouched
    expect(data.filter((v, i) => v !== (study.seg!.data as Uint8Array)[i]).length).toBe(0);
  });

  it('leaves the prediction raw with both thresholds 0', async () => {
    const { labels, summary } = await segmentStudy(study, model, { postprocess: { minComponentMl: 0, minEtMl: 0 } });
    expect(summary.postprocessing).toMatchObject({ applied: false, componentsBefore: 2, changedSlices: [] });
    expect((labels.data as Uint8Array).filter((v) => v === 4).length).toBe((study.seg!.data as Uint8Array).filter((v) => v === 4).length + 4);
  });

  it('applies the defaults when no thresholds are given', async () => {
    const { summary } = await segmentStudy(study, model);
    expect(summary.postprocessing).toMatchObject({ minComponentMl: POSTPROCESS_DEFAULTS.minComponentMl, minEtMl: POSTPROCESS_DEFAULTS.minEtMl, componentsRemoved: 1 });
  });
});
