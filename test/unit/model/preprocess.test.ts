import { describe, expect, it } from 'vitest';
import { Volume, type VoxelArray } from '../../../main/core/io/volume.ts';
import type { Study } from '../../../main/core/io/study.ts';
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  composeLabels,
  inputChannels,
  isEmptySlice,
  nonZeroPercentiles,
  prepareSlices,
  resizeBilinear,
  scaleSlice,
  volumeIntensityScaling,
} from '../../../main/core/model/preprocess.ts';

function volume(data: VoxelArray, dims: [number, number, number], extra: { slope?: number; intercept?: number; id?: string } = {}): Volume {
  return new Volume({
    geometry: { dims, spacing: [1, 1, 1], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data,
    slope: extra.slope,
    intercept: extra.intercept,
    meta: { id: extra.id ?? 'v', description: '', modality: 'MR', sources: [] },
  });
}

const dims: [number, number, number] = [20, 30, 7];
const n = dims[0] * dims[1] * dims[2];

describe('intensity percentiles (numpy.percentile, linear, on the non-zero voxels)', () => {
  // Reference values from numpy 2.4 by hand:
  //   i = arange(4200); a = ((i*7919) % 1001 - 200).astype(int16)
  //   percentile(a[a != 0], [0.5, 99.5]) = [-195.03, 796.0]   (4195 non-zero)
  //   f = a.astype(float32) * float32(0.37); percentile(f[f != 0].astype(float64), …) =
  //     [-72.16110160827637, 294.5199890136719]
  //   s = ((i*104729) % 3001).astype(uint16); r = s*0.5 - 10; percentile(r[r != 0], …) =
  //     [-3.0, 1482.505]   (4199 non-zero: stored 20 is real 0)
  const ints = new Int16Array(n);
  for (let i = 0; i < n; i++) ints[i] = ((i * 7919) % 1001) - 200;

  it('int16 through the histogram', () => {
    const s = nonZeroPercentiles(volume(ints, dims), 0.5, 99.5);
    expect(s.nonZero).toBe(4195);
    expect(s.low).toBeCloseTo(-195.03, 9);
    expect(s.high).toBeCloseTo(796.0, 9);
  });

  it('float32 through selection', () => {
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = Math.fround(ints[i]! * Math.fround(0.37));
    const s = nonZeroPercentiles(volume(f, dims), 0.5, 99.5);
    expect(s.low).toBeCloseTo(-72.16110160827637, 9);
    expect(s.high).toBeCloseTo(294.5199890136719, 9);
  });

  it('applies slope and intercept and treats real zero (not stored zero) as background', () => {
    const u = new Uint16Array(n);
    for (let i = 0; i < n; i++) u[i] = (i * 104729) % 3001;
    const v = volume(u, dims, { slope: 0.5, intercept: -10 });
    const s = nonZeroPercentiles(v, 0.5, 99.5);
    expect(s.nonZero).toBe(4199);
    expect(s.low).toBeCloseTo(-3.0, 9);
    expect(s.high).toBeCloseTo(1482.505, 9);
    // the selection path (negative slope forces it) agrees after mirroring
    const mirrored = nonZeroPercentiles(volume(u, dims, { slope: -0.5, intercept: 10 }), 0.5, 99.5);
    expect(mirrored.low).toBeCloseTo(-1482.505, 9);
    expect(mirrored.high).toBeCloseTo(3.0, 9);
  });

  it('hand-computed: 1…10 among zeros', () => {
    const d = new Float32Array(40);
    for (let i = 1; i <= 10; i++) d[i * 3] = 11 - i;
    const s = nonZeroPercentiles(volume(d, [40, 1, 1]), 0.5, 99.5);
    // pos = 0.005·9 = 0.045 → 1.045; pos = 0.995·9 = 8.955 → 9.955
    expect(s.low).toBeCloseTo(1.045, 12);
    expect(s.high).toBeCloseTo(9.955, 12);
    expect(s.nonZero).toBe(10);
  });

  it('histogram and selection agree on a large random volume, with NaN ignored', () => {
    const big: [number, number, number] = [64, 64, 40];
    const m = big[0] * big[1] * big[2];
    const a = new Int16Array(m);
    let seed = 12345;
    for (let i = 0; i < m; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      a[i] = i % 3 === 0 ? 0 : (seed >>> 16) % 4000 - 500;
    }
    const f = Float32Array.from(a);
    f[7] = NaN;
    const fromHist = nonZeroPercentiles(volume(a, big), 0.5, 99.5);
    const fromSel = nonZeroPercentiles(volume(f, big), 0.5, 99.5);
    expect(fromSel.nonZero).toBe(fromHist.nonZero - (a[7] !== 0 ? 1 : 0));
    // one NaN among ~100k values moves a rank by at most one neighbour
    expect(Math.abs(fromSel.low - fromHist.low)).toBeLessThan(2);
    expect(Math.abs(fromSel.high - fromHist.high)).toBeLessThan(2);
    f[7] = a[7]!;
    const exact = nonZeroPercentiles(volume(f, big), 0.5, 99.5);
    expect(exact.low).toBe(fromHist.low);
    expect(exact.high).toBe(fromHist.high);
  });

  it('an all-zero volume has no non-zero voxels', () => {
    const s = volumeIntensityScaling(volume(new Int16Array(n), dims));
    expect(s).toEqual({ low: 0, high: 0, nonZero: 0 });
  });

  it('is cached per volume', () => {
    const v = volume(ints, dims);
    expect(volumeIntensityScaling(v)).toBe(volumeIntensityScaling(v));
  });
});

describe('scaleSlice', () => {
  it('maps non-zero voxels linearly to [0, 1], clips, and keeps zeros at 0', () => {
    const d = new Int16Array([0, 10, 20, 30, 5, 40]);
    const v = volume(d, [6, 1, 1]);
    const out = new Float32Array(6);
    const any = scaleSlice(v, 0, { low: 10, high: 30, nonZero: 5 }, out);
    expect(any).toBe(true);
    expect(Array.from(out)).toEqual([0, 0, 0.5, 1, 0, 1]);
  });
  it('flat scaling: voxels at or above the percentile are 1', () => {
    const v = volume(new Int16Array([0, 7, 7, 3]), [4, 1, 1]);
    const out = new Float32Array(4);
    scaleSlice(v, 0, { low: 7, high: 7, nonZero: 3 }, out);
    expect(Array.from(out)).toEqual([0, 1, 1, 0]);
  });
});

describe('resizeBilinear (torch F.interpolate, bilinear, align_corners=False)', () => {
  it('2×2 → 4×4 matches torch', () => {
    // torch.nn.functional.interpolate(tensor([[[[1.,2.],[3.,4.]]]]), size=(4,4), mode='bilinear')
    const out = resizeBilinear([1, 2, 3, 4], 2, 2, 4, 4);
    expect(Array.from(out)).toEqual([1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4]);
  });
  it('1×4 → 1×3 (shrinking: no antialiasing, source index (o+0.5)·4/3−0.5)', () => {
    // sources 1/6, 3/2, 17/6 → 0 + 1/6, 1.5, 2 + 5/6 on the ramp 0, 1, 2, 3
    const out = resizeBilinear([0, 1, 2, 3], 1, 4, 1, 3);
    expect(out[0]).toBeCloseTo(1 / 6, 6);
    expect(out[1]).toBeCloseTo(1.5, 6);
    expect(out[2]).toBeCloseTo(17 / 6, 6);
  });
  it('non-square: rows resize along H, columns along W', () => {
    // 2 rows × 3 columns, W ramp; resize to 4×3 keeps columns and interpolates rows
    const src = [0, 1, 2, 10, 11, 12];
    const out = resizeBilinear(src, 2, 3, 4, 3);
    expect(Array.from(out)).toEqual([0, 1, 2, 2.5, 3.5, 4.5, 7.5, 8.5, 9.5, 10, 11, 12]);
  });
});

describe('inputChannels and prepareSlices', () => {
  const [nx, ny, nz] = [6, 4, 3];
  const make = (base: number, id: string) => {
    const d = new Int16Array(nx * ny * nz);
    for (let i = 0; i < d.length; i++) d[i] = i < nx * ny ? 0 : base + (i % 50);
    return volume(d, [nx, ny, nz], { id });
  };
  const study: Study = {
    name: 'case',
    kind: 'brats',
    source: '/x',
    sequences: { t1: make(1, 't1'), t1ce: make(2, 't1ce'), t2: make(3, 't2'), flair: make(4, 'flair') },
  };

  it('defaults to FLAIR, T1ce, T2 and replicates a single sequence', () => {
    expect(inputChannels(study).map((v) => v.meta.id)).toEqual(['flair', 't1ce', 't2']);
    expect(inputChannels(study, ['T1']).map((v) => v.meta.id)).toEqual(['t1', 't1', 't1']);
    const single: Study = { ...study, sequences: { image: study.sequences.t2! } };
    expect(inputChannels(single).map((v) => v.meta.id)).toEqual(['t2', 't2', 't2']);
    expect(() => inputChannels(study, ['dwi'])).toThrow(/no sequence "dwi"/);
    expect(() => inputChannels(study, ['t1', 't2'])).toThrow(/one sequence .* or three/);
  });

  it('gives NCHW: scaled, resized, ImageNet-normalised, zero slices at the normalised 0', () => {
    const size: [number, number] = [8, 12];
    const out = prepareSlices(study, [0, 2], { size });
    expect(out.length).toBe(2 * 3 * 8 * 12);
    const plane = 8 * 12;
    // slice 0 is all zero: every channel sits at (0 − mean) / std
    for (let c = 0; c < 3; c++) {
      expect(out[c * plane]).toBeCloseTo(-IMAGENET_MEAN[c]! / IMAGENET_STD[c]!, 5);
    }
    // slice 2, channel 0 (FLAIR): by hand from the scaling and torch's resize
    const flair = study.sequences.flair!;
    const scaling = volumeIntensityScaling(flair);
    const scaled = new Float32Array(nx * ny);
    scaleSlice(flair, 2, scaling, scaled);
    const resized = resizeBilinear(scaled, ny, nx, 8, 12);
    const got = out.subarray(3 * plane, 4 * plane);
    for (let i = 0; i < plane; i++) expect(got[i]).toBeCloseTo((resized[i]! - 0.485) / 0.229, 5);
    expect(isEmptySlice(inputChannels(study), 0)).toBe(true);
    expect(isEmptySlice(inputChannels(study), 1)).toBe(false);
  });
});

describe('composeLabels', () => {
  it('composes BraTS labels ET → 4, TC∖ET → 1, WT∖TC → 2 at the model size', () => {
    // four pixels: none, WT only, WT+TC, WT+TC+ET; logits ±3
    const L = (on: boolean) => (on ? 3 : -3);
    const values = new Float32Array([
      L(false), L(true), L(true), L(true), // WT
      L(false), L(false), L(true), L(true), // TC
      L(false), L(false), L(false), L(true), // ET
    ]);
    const labels = composeLabels(values, { channels: 3, size: [1, 4], sliceSize: [1, 4] });
    expect(Array.from(labels)).toEqual([0, 2, 1, 4]);
  });
  it('binary: p > 0.5 is strict; probabilities may be given directly', () => {
    const labels = composeLabels(new Float32Array([-1, 0, 1e-3, 5]), { channels: 1, size: [2, 2], sliceSize: [2, 2] });
    expect(Array.from(labels)).toEqual([0, 0, 1, 1]);
    const probs = composeLabels(new Float32Array([0.2, 0.5, 0.51, 0.9]), { channels: 1, size: [2, 2], sliceSize: [2, 2], kind: 'probabilities' });
    expect(Array.from(probs)).toEqual([0, 0, 1, 1]);
  });
  it('resizes logits back to the slice size before the threshold', () => {
    // logits −1, +1 along W at 1×2 → 1×4 gives −1, −0.5, 0.5, 1
    const labels = composeLabels(new Float32Array([-1, 1]), { channels: 1, size: [1, 2], sliceSize: [1, 4] });
    expect(Array.from(labels)).toEqual([0, 0, 1, 1]);
  });
  it('refuses a channel count that does not fit the regions', () => {
    expect(() => composeLabels(new Float32Array(4), { channels: 1, size: [2, 2], sliceSize: [2, 2], regions: 'brats' })).toThrow(/1 output channel; brats regions need 3/);
  });
});
