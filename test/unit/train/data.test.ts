/**
 * Training data (data.ts) on a synthetic BraTS case written to a temporary folder, where every
 * tumour voxel's position and label are known: slice classification, the epoch sampling plan,
 * batches (region masks, flips applied to input and mask alike), and the cosine schedule.
 */
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNifti } from '../../../main/core/io/nifti.ts';
import { Volume, type Vec3, type VoxelArray } from '../../../main/core/io/volume.ts';
import { EDGE_SLICE_AREA } from '../../../main/core/train/defaults.ts';
import { epochSamples, loadTrainingStudies, makeBatch, type SliceRef, type TrainingStudy } from '../../../main/core/train/data.ts';
import { cosineLearningRate } from '../../../main/core/train/schedule.ts';

const NX = 24;
const NY = 20;
const NZ = 10;
const BRAIN_SLICES = [1, 2, 3, 4, 5, 6, 7, 8]; // slices 0 and 9 are air: neither tumour nor brain
const TUMOUR_SLICES = [3, 4, 5];
// the brain's top and bottom slices hold a thin patch (x, y < 4: 16 of 480 voxels), like a vertex
const EDGE_SLICES = [1, 8];
const inBrain = (x: number, y: number, z: number): boolean => BRAIN_SLICES.includes(z) && (!EDGE_SLICES.includes(z) || (x < 4 && y < 4));

/**
 * Tumour in the top-left corner of the image (small x = column, small y = row): oedema (2) in
 * x 2…9, y 1…7; necrotic core (1) in x 3…6, y 2…5; enhancing (4) in x 4…5, y 3…4.
 */
function labelAt(x: number, y: number, z: number): number {
  if (!TUMOUR_SLICES.includes(z)) return 0;
  if (x >= 4 && x <= 5 && y >= 3 && y <= 4) return 4;
  if (x >= 3 && x <= 6 && y >= 2 && y <= 5) return 1;
  if (x >= 2 && x <= 9 && y >= 1 && y <= 7) return 2;
  return 0;
}

function makeVolume(data: VoxelArray, id: string): Volume {
  return new Volume({
    geometry: { dims: [NX, NY, NZ] as Vec3, spacing: [1, 1, 2], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data,
    meta: { id, description: id, modality: 'MR', sources: [] },
  });
}

function syntheticCase(): Record<string, Volume> {
  const seg = new Uint8Array(NX * NY * NZ);
  const sequences: Record<string, Int16Array> = { t1: new Int16Array(seg.length), t1ce: new Int16Array(seg.length), t2: new Int16Array(seg.length), flair: new Int16Array(seg.length) };
  Object.values(sequences).forEach((data, s) => {
    for (const z of BRAIN_SLICES) {
      for (let y = 0; y < NY; y++) {
        // an intensity ramp along x and y (so any flip of the input is visible), brighter in the tumour
        for (let x = 0; x < NX; x++) if (inBrain(x, y, z)) data[(z * NY + y) * NX + x] = 100 + 7 * x + 3 * y + 11 * s + (labelAt(x, y, z) ? 400 : 0);
      }
    }
  });
  for (let z = 0; z < NZ; z++) for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) seg[(z * NY + y) * NX + x] = labelAt(x, y, z);
  const volumes: Record<string, Volume> = { seg: makeVolume(seg, 'seg') };
  for (const [name, data] of Object.entries(sequences)) volumes[name] = makeVolume(data, name);
  return volumes;
}

/** A study stand-in for the sampling plan, which reads only the slice lists. */
const planOnly = (tumourSlices: number[], emptySlices: number[], edgeSlices: number[] = []): TrainingStudy => ({ tumourSlices, emptySlices, edgeSlices }) as unknown as TrainingStudy;

const key = (r: SliceRef): string => `${r.study}:${r.slice}`;

describe('training data', () => {
  let dir: string;
  let studies: TrainingStudy[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sam2unet-data-'));
    const caseDir = join(dir, 'BraTS_Synth_001');
    mkdirSync(caseDir);
    for (const [role, volume] of Object.entries(syntheticCase())) await writeNifti(join(caseDir, `BraTS_Synth_001_${role}.nii`), volume);
    studies = await loadTrainingStudies([dir], { regions: 'brats' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps only the sequences the channels read, and refuses data past its memory budget with the figures', async () => {
    expect(Object.keys(studies[0]!.study.sequences).sort()).toEqual(['flair', 't1ce', 't2']);
    const { sequences } = studies[0]!.study;
    expect(studies[0]!.channels).toEqual([sequences.flair, sequences.t1ce, sequences.t2]);
    // three int16 sequences and a uint8 label map: 7 bytes a voxel
    const bytes = 7 * NX * NY * NZ;
    expect(await loadTrainingStudies([dir], { regions: 'brats', memoryBudget: bytes })).toHaveLength(1);
    await expect(loadTrainingStudies([dir], { regions: 'brats', memoryBudget: bytes - 1 })).rejects.toThrow(
      /^the training data does not fit in memory: 1 of 1 studies already take .*, more than .* \(the memory budget given\), at about .* a study\. Train on at most about 0 studies/,
    );
  });

  it('past its budget, given the run\'s draws, keeps only the slices the run draws: batches equal to those of whole studies', async () => {
    const many = join(dir, 'many');
    for (const name of ['Synth_A', 'Synth_B', 'Synth_C']) {
      mkdirSync(join(many, name), { recursive: true });
      for (const [role, volume] of Object.entries(syntheticCase())) await writeNifti(join(many, name, `${name}_${role}.nii`), volume);
    }
    const whole = await loadTrainingStudies([many], { regions: 'brats' });
    expect(whole.some((s) => s.stored)).toBe(false);
    const wholeBytes = 7 * NX * NY * NZ;
    const sampling = { emptyRatio: 0.5, seed: 7 };
    for (const epochs of [1, 2]) {
      // two studies fit whole; the third is read for its slice lists, then again for its drawn slices
      const partial = await loadTrainingStudies([many], { regions: 'brats', memoryBudget: 2.5 * wholeBytes, draws: { sampling, epochs: () => epochs } });
      expect(partial.map((s) => s.study.name)).toEqual(whole.map((s) => s.study.name));
      const drawn = partial.map(() => new Set<number>());
      for (let epoch = 0; epoch < epochs; epoch++) {
        const refs = epochSamples(partial, epoch, sampling);
        expect(refs, `epoch ${epoch}: the same plan as from whole studies`).toEqual(epochSamples(whole, epoch, sampling));
        for (const ref of refs) drawn[ref.study]!.add(ref.slice);
        for (const size of [[NY, NX], [32, 32]] as const) {
          const augment = { seed: 5, step: epoch };
          expect(makeBatch(partial, refs, size, 'brats', augment), `epoch ${epoch}, ${size.join('×')}`).toEqual(makeBatch(whole, refs, size, 'brats', augment));
        }
      }
      partial.forEach((s, i) => {
        expect([...s.stored!.keys()], `${s.study.name}: exactly the drawn slices are kept`).toEqual([...drawn[i]!].sort((a, b) => a - b));
        expect(s.seg.data.byteLength + s.channels.reduce((sum, v) => sum + v.data.byteLength, 0)).toBe(7 * NX * NY * drawn[i]!.size);
        // sequences and channels stay the same volume objects: what trainedChannels matches on
        ['flair', 't1ce', 't2'].forEach((name, c) => expect(s.channels[c], `${s.study.name}: channel ${c}`).toBe(s.study.sequences[name]));
      });
      if (epochs === 1) {
        // one epoch draws the 3 tumour slices and round(0.5 × 3) = 2 of the 5 empty ones
        expect(partial.map((s) => s.stored!.size)).toEqual([5, 5, 5]);
        const undrawn = BRAIN_SLICES.find((k) => !drawn[0]!.has(k))!;
        expect(() => makeBatch(partial, [{ study: 0, slice: undrawn }], [NY, NX], 'brats', undefined)).toThrow(`slice ${undrawn} of Synth_A is not one the run draws`);
        // the drawn slices themselves must fit: 3 × 5 slices of 7 bytes a voxel, given room for 14
        await expect(
          loadTrainingStudies([many], { regions: 'brats', memoryBudget: 14 * 7 * NX * NY, draws: { sampling, epochs: () => 1 } }),
        ).rejects.toThrow(/^the training data does not fit in memory even as the 15 slices the run draws \(of 24 with brain\): those of 3 of 3 studies already take/);
      }
    }
  });

  it('classifies slices: tumour, brain without tumour, and air (left out)', async () => {
    expect(studies).toHaveLength(1);
    expect(studies[0]!.tumourSlices).toEqual(TUMOUR_SLICES);
    expect(studies[0]!.emptySlices).toEqual(BRAIN_SLICES.filter((z) => !TUMOUR_SLICES.includes(z)));
    // edge slices are looked for only by a run that draws from them
    expect(studies[0]!.edgeSlices).toEqual([]);
    const [drawing] = await loadTrainingStudies([dir], { regions: 'brats', draws: { sampling: { emptyRatio: 1, edgeShare: 0.5, seed: 1 }, epochs: () => 1 } });
    expect(drawing!.edgeSlices, `under ${EDGE_SLICE_AREA} of the largest cross-section`).toEqual(EDGE_SLICES);
  });

  it('epochSamples: deterministic in (seed, epoch), every tumour slice once, round(ratio × tumour) empty slices per study', () => {
    const plan = [planOnly([3, 4, 5], [1, 2, 6, 7, 8]), planOnly([10, 11, 12, 13, 14, 15, 16], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21])];
    for (const emptyRatio of [0, 0.5, 1, 10]) {
      const a = epochSamples(plan, 3, { emptyRatio, seed: 42 });
      expect(epochSamples(plan, 3, { emptyRatio, seed: 42 })).toEqual(a);
      plan.forEach((s, study) => {
        const mine = a.filter((r) => r.study === study);
        const tumour = mine.filter((r) => s.tumourSlices.includes(r.slice)).map((r) => r.slice).sort((x, y) => x - y);
        expect(tumour, `ratio ${emptyRatio}, study ${study}: tumour slices`).toEqual(s.tumourSlices);
        const empties = mine.filter((r) => s.emptySlices.includes(r.slice));
        expect(empties.length, `ratio ${emptyRatio}, study ${study}: empty slices`).toBe(Math.min(s.emptySlices.length, Math.round(s.tumourSlices.length * emptyRatio)));
        expect(new Set(mine.map(key)).size, 'no slice twice').toBe(mine.length);
        expect(mine.length).toBe(tumour.length + empties.length);
      });
    }
    const base = epochSamples(plan, 3, { emptyRatio: 1, seed: 42 }).map(key);
    // another epoch or another seed reshuffles (and redraws the empty slices)
    expect(epochSamples(plan, 4, { emptyRatio: 1, seed: 42 }).map(key)).not.toEqual(base);
    expect(epochSamples(plan, 3, { emptyRatio: 1, seed: 43 }).map(key)).not.toEqual(base);
    // the order is shuffled across studies, not study by study
    const order = epochSamples(plan, 3, { emptyRatio: 1, seed: 42 }).map((r) => r.study);
    expect(order.some((s, i) => i > 0 && s < order[i - 1]!)).toBe(true);
  });

  it('epochSamples with edgeShare: that share of the empty draws from the edge slices, the count unchanged', () => {
    // brain on slices 0-99, tumour on 40-59, edge slices 0-11 and 88-99 (24 of the 80 empty ones)
    const brain = Array.from({ length: 100 }, (_, k) => k);
    const tumourSlices = brain.filter((k) => k >= 40 && k < 60);
    const isEdge = (k: number): boolean => k < 12 || k >= 88;
    const plan = [planOnly(tumourSlices, brain.filter((k) => !tumourSlices.includes(k)), brain.filter(isEdge))];
    for (const [edgeShare, emptyRatio, expected] of [[0, 1, 0], [0.5, 1, 10], [1, 1, 20], [0.5, 2, 20], [0.5, 3, 24], [0.5, 4, 24]] as const) {
      const a = epochSamples(plan, 2, { emptyRatio, edgeShare, seed: 7 });
      expect(epochSamples(plan, 2, { emptyRatio, edgeShare, seed: 7 }), 'deterministic').toEqual(a);
      const empties = a.filter((r) => !tumourSlices.includes(r.slice)).map((r) => r.slice);
      expect(empties.length, `share ${edgeShare}, ratio ${emptyRatio}: as many empty slices as without edgeShare`).toBe(Math.min(80, 20 * emptyRatio));
      expect(new Set(empties).size, 'no slice twice').toBe(empties.length);
      // ratio 3 wants 30 edge slices of 24 (all taken, the rest from between); ratio 4 takes every empty slice
      expect(empties.filter(isEdge).length, `share ${edgeShare}, ratio ${emptyRatio}: from the edge slices`).toBe(expected);
    }
    // uniform draws put about 24/80 of the empty slices at the edges; share 0.9 puts 18 of 20 there
    const uniform = [0, 1, 2, 3, 4, 5, 6, 7].map((e) => epochSamples(plan, e, { emptyRatio: 1, seed: 7 }).filter((r) => isEdge(r.slice)).length);
    expect(Math.max(...uniform)).toBeLessThan(18);
    expect(epochSamples(plan, 0, { emptyRatio: 1, edgeShare: 0.9, seed: 7 }).filter((r) => isEdge(r.slice)).length).toBe(18);
  });

  it('makeBatch at the slice size (no resizing): WT ⊇ TC ⊇ ET per pixel, exactly the BraTS label groups', () => {
    const { mask } = makeBatch(studies, [{ study: 0, slice: 4 }], [NY, NX], 'brats', undefined);
    const plane = NX * NY;
    expect(mask.length).toBe(3 * plane);
    let counts = [0, 0, 0];
    for (let y = 0; y < NY; y++) {
      for (let x = 0; x < NX; x++) {
        const label = labelAt(x, y, 4);
        const [wt, tc, et] = [0, 1, 2].map((c) => mask[c * plane + y * NX + x]!) as [number, number, number];
        expect([wt, tc, et], `pixel x ${x}, y ${y}, label ${label}`).toEqual([label ? 1 : 0, label === 1 || label === 4 ? 1 : 0, label === 4 ? 1 : 0]);
        expect(wt >= tc && tc >= et).toBe(true);
        counts = counts.map((n, c) => n + [wt, tc, et][c]!);
      }
    }
    expect(counts).toEqual([8 * 7, 4 * 4, 2 * 2]);
    const binary = makeBatch(studies, [{ study: 0, slice: 4 }], [NY, NX], 'binary', undefined).mask;
    expect(Array.from(binary)).toEqual(Array.from(mask.subarray(0, plane)));
  });

  it('makeBatch resized to 32×32: soft masks clipped to [0, 1], tumour where it was (top left)', () => {
    const size = 32;
    const { input, mask } = makeBatch(studies, [{ study: 0, slice: 4 }, { study: 0, slice: 7 }], [size, size], 'brats', undefined);
    expect(input.length).toBe(2 * 3 * size * size);
    expect(mask.length).toBe(2 * 3 * size * size);
    let min = Infinity;
    let max = -Infinity;
    let soft = 0;
    for (const v of mask) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      if (v > 0 && v < 1) soft++;
    }
    expect(min).toBe(0);
    expect(max).toBe(1); // bicubic overshoot above 1 is clipped
    expect(soft).toBeGreaterThan(0); // bicubic leaves the edges soft, as the official dataset does
    const wt = mask.subarray(0, size * size);
    const { cx, cy, total } = centroid(wt, size, size);
    expect(total).toBeGreaterThan(0);
    // labelled x 2…9 of 24, y 1…7 of 20: centre (5.5, 4) → (7.5, 6.7) at 32×32 (pixel centres)
    expect(Math.abs(cx - ((5.5 + 0.5) * size) / NX + 0.5)).toBeLessThan(0.5);
    expect(Math.abs(cy - ((4 + 0.5) * size) / NY + 0.5)).toBeLessThan(0.5);
    // the second item (slice 7) has no tumour
    expect(Math.max(...mask.subarray(3 * size * size))).toBe(0);
  });

  it('makeBatch with augmentation flips input and mask together, each way with p ≈ 0.5, deterministic in (seed, step)', () => {
    const size = 32;
    const refs = Array.from({ length: 8 }, () => ({ study: 0, slice: 4 }));
    const plain = makeBatch(studies, refs.slice(0, 1), [size, size], 'brats', undefined);
    const seen = new Map<string, number>();
    for (let step = 0; step < 4; step++) {
      const batch = makeBatch(studies, refs, [size, size], 'brats', { seed: 5, step });
      expect(makeBatch(studies, refs, [size, size], 'brats', { seed: 5, step })).toEqual(batch);
      for (let b = 0; b < refs.length; b++) {
        const input = batch.input.subarray(b * 3 * size * size, (b + 1) * 3 * size * size);
        const mask = batch.mask.subarray(b * 3 * size * size, (b + 1) * 3 * size * size);
        // which flip turns the plain input into this one? exactly one may (the ramp is asymmetric)
        const matches = FLIPS.filter(([fx, fy]) => equalArrays(flipped(plain.input, 3, size, size, fx, fy), input));
        expect(matches, `step ${step}, item ${b}: the input is one flip of the plain input`).toHaveLength(1);
        const [fx, fy] = matches[0]!;
        expect(equalArrays(flipped(plain.mask, 3, size, size, fx, fy), mask), `step ${step}, item ${b}: the mask has the same flip`).toBe(true);
        const { cx, cy } = centroid(mask, size, size);
        expect(cx < size / 2, `item ${b}: tumour on the ${fx ? 'right' : 'left'}`).toBe(!fx);
        expect(cy < size / 2, `item ${b}: tumour at the ${fy ? 'bottom' : 'top'}`).toBe(!fy);
        seen.set(`${fx},${fy}`, (seen.get(`${fx},${fy}`) ?? 0) + 1);
      }
    }
    // 32 draws: every combination occurs (each has probability 1/4)
    expect([...seen.keys()].sort()).toEqual(['false,false', 'false,true', 'true,false', 'true,true']);
  });
});

const FLIPS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

function flipped(data: Float32Array, planes: number, h: number, w: number, fx: boolean, fy: boolean): Float32Array {
  const out = new Float32Array(planes * h * w);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) out[(p * h + y) * w + x] = data[(p * h + (fy ? h - 1 - y : y)) * w + (fx ? w - 1 - x : x)]!;
    }
  }
  return out;
}

const equalArrays = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

/** Mass-weighted centre of the first plane, in pixel indices. */
function centroid(plane: Float32Array, h: number, w: number): { cx: number; cy: number; total: number } {
  let total = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = plane[y * w + x]!;
      total += v;
      sx += v * x;
      sy += v * y;
    }
  }
  return { cx: sx / total, cy: sy / total, total };
}

/**
 * torch.optim.lr_scheduler.CosineAnnealingLR as it actually runs: the recursive form of get_lr()
 * stepped from t = 0 (the closed form in its docstring is what schedule.ts implements).
 */
function torchCosineRecursive(total: number, base: number, etaMin: number): number[] {
  const lrs = [base];
  for (let t = 1; t <= total; t++) {
    const previous = lrs[t - 1]!;
    if ((t - 1 - total) % (2 * total) === 0) lrs.push(previous + ((base - etaMin) * (1 - Math.cos(Math.PI / total))) / 2);
    else lrs.push(((1 + Math.cos((Math.PI * t) / total)) / (1 + Math.cos((Math.PI * (t - 1)) / total))) * (previous - etaMin) + etaMin);
  }
  return lrs;
}

describe('cosineLearningRate', () => {
  it("matches torch's CosineAnnealingLR (T_max 20, lr 1e-3, eta_min 1e-7) at every epoch within 1e-12 relative", () => {
    const torch = torchCosineRecursive(20, 1e-3, 1e-7);
    for (let t = 0; t <= 20; t++) {
      const ours = cosineLearningRate(t, 20, 1e-3, 1e-7);
      expect(Math.abs(ours - torch[t]!) / torch[t]!, `t ${t}: ${ours} vs ${torch[t]}`).toBeLessThan(1e-12);
    }
  });

  it('hand-checked points: start, middle, end, and a quarter', () => {
    expect(cosineLearningRate(0, 20, 1e-3)).toBe(1e-3);
    expect(cosineLearningRate(10, 20, 1e-3)).toBeCloseTo((1e-3 + 1e-7) / 2, 15);
    expect(cosineLearningRate(20, 20, 1e-3)).toBeCloseTo(1e-7, 15);
    // cos(π/4) = √2/2
    expect(cosineLearningRate(5, 20, 1e-3, 0)).toBeCloseTo((1e-3 * (1 + Math.SQRT1_2)) / 2, 15);
    // per-step schedules call it with fractional t
    expect(cosineLearningRate(2.5, 5, 2e-3, 0)).toBeCloseTo(1e-3, 15);
  });

  it('stays within [eta_min, base] outside 0…T (clamped, where torch would rise again) and is constant without a horizon', () => {
    expect(cosineLearningRate(25, 20, 1e-3)).toBeCloseTo(1e-7, 15);
    expect(cosineLearningRate(-1, 20, 1e-3)).toBe(1e-3);
    expect(cosineLearningRate(3, 0, 1e-3)).toBe(1e-3);
  });
});
