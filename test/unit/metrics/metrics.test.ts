import { describe, expect, it } from 'vitest';
import {
  detectRegionKind,
  evaluateSlices,
  evaluateVolume,
  imageDiagonal,
  officialSliceScores,
  percentileLinear,
  pooledSurfaceDistances,
  regionsFor,
  evaluateSlice,
  squaredDistanceTransform,
  summarise,
  surfaceOf,
} from '../../../main/core/metrics/index.ts';

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Brute force: for each feature-free voxel, the minimum over all features. */
function bruteSquaredDistances(feature: Uint8Array, shape: number[], spacing: number[]): Float64Array {
  const [nx, ny, nz = 1] = shape as [number, number, number?];
  const coords = (i: number): number[] => [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
  const features = [...feature.keys()].filter((i) => feature[i]).map(coords);
  const out = new Float64Array(feature.length);
  for (let i = 0; i < feature.length; i++) {
    const c = coords(i);
    let best = Infinity;
    for (const f of features) {
      const d = ((c[0]! - f[0]!) * spacing[0]!) ** 2 + ((c[1]! - f[1]!) * spacing[1]!) ** 2 + (nz > 1 ? ((c[2]! - f[2]!) * spacing[2]!) ** 2 : 0);
      if (d < best) best = d;
    }
    out[i] = best;
  }
  return out;
}

describe('distance transform and surface', () => {
  it('equals brute force on random sparse features, anisotropic 3D and 2D', () => {
    const random = rng(7);
    for (const [shape, spacing] of [
      [[13, 9, 7], [0.9, 1.1, 2.5]],
      [[17, 11], [0.7, 1.3]],
      [[1, 5, 4], [1, 1, 1]],
    ] as [number[], number[]][]) {
      for (const density of [0.02, 0.2]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const feature = Uint8Array.from({ length: n }, () => (random() < density ? 1 : 0));
        feature[n - 1] = 1;
        const got = squaredDistanceTransform(feature, shape, spacing);
        const want = bruteSquaredDistances(feature, shape, spacing);
        for (let i = 0; i < n; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-9);
      }
    }
  });

  it('treats voxels on the grid border as surface (erosion with border value 0)', () => {
    const mask = new Uint8Array(27).fill(1); // a full 3×3×3 block: only the centre is interior
    const surface = surfaceOf(mask, [3, 3, 3]);
    expect(surface.reduce((a, b) => a + b, 0)).toBe(26);
    expect(surface[13]).toBe(0);
    // 2D: 4-connected, so the centre of a 3×3 square is interior
    expect(surfaceOf(new Uint8Array(9).fill(1), [3, 3]).reduce((a, b) => a + b, 0)).toBe(8);
  });

  it('percentile is numpy linear', () => {
    expect(percentileLinear(Float64Array.from([3, 1, 2, 4]), 95)).toBeCloseTo(3.85, 12);
    expect(percentileLinear(Float64Array.from([5]), 95)).toBe(5);
    expect(percentileLinear(Float64Array.from([0, 10]), 50)).toBe(5);
  });

  it('pools both directions before the percentile (not max of two percentiles)', () => {
    // A: one voxel; B: a 1×1×20 line far from it → asymmetric direction distributions
    const shape = [20, 3, 3];
    const a = new Uint8Array(180);
    const b = new Uint8Array(180);
    a[0] = 1;
    for (let x = 0; x < 20; x++) b[2 * 20 * 3 + 2 * 20 + x] = 1;
    const d = pooledSurfaceDistances(a, b, shape, [1, 1, 1]);
    expect(d.length).toBe(21);
    const pooled = percentileLinear(d.slice(), 95);
    expect(pooled).toBeCloseTo(percentileLinear(d.slice(), 95), 12);
    const toB = d[0]!;
    const toA = percentileLinear(d.slice(1), 95);
    expect(pooled).not.toBeCloseTo(Math.max(toB, toA), 3);
  });
});

describe('evaluateVolume', () => {
  const dims: [number, number, number] = [240, 240, 155];
  const spacing: [number, number, number] = [1, 1, 1];
  const n = dims[0] * dims[1] * dims[2];
  const brats = regionsFor('brats');

  it('applies the BraTS empty rules and the 373.13 mm diagonal', () => {
    expect(imageDiagonal(dims, spacing)).toBeCloseTo(373.13, 2);
    const empty = new Uint8Array(n);
    const gt = new Uint8Array(n);
    gt[(80 * 240 + 100) * 240 + 120] = 2; // oedema only: WT present, TC and ET empty
    const result = evaluateVolume(empty, gt, dims, spacing, brats);
    expect(result.WT).toMatchObject({ dice: 0, iou: 0, sensitivity: 0, specificity: 1, hd95: imageDiagonal(dims, spacing) });
    expect(result.TC).toMatchObject({ dice: 1, iou: 1, sensitivity: 1, specificity: 1, hd95: 0, volumeMl: 0 });
    const reverse = evaluateVolume(gt, empty, dims, spacing, brats);
    expect(reverse.WT).toMatchObject({ dice: 0, iou: 0, sensitivity: 1, hd95: imageDiagonal(dims, spacing) });
    expect(reverse.WT!.specificity).toBeCloseTo(1 - 1 / (n - 0), 12);
    expect(reverse.WT!.volumeMl).toBeCloseTo(0.001, 12);
  });

  it('computes a known cube displacement exactly', () => {
    // a 10×10×10 cube shifted by 2 voxels along x: pooled HD95 of surface distances
    const small: [number, number, number] = [30, 20, 20];
    const a = new Uint8Array(30 * 20 * 20);
    const b = new Uint8Array(30 * 20 * 20);
    for (let z = 5; z < 15; z++)
      for (let y = 5; y < 15; y++)
        for (let x = 5; x < 15; x++) {
          a[(z * 20 + y) * 30 + x] = 1;
          b[(z * 20 + y) * 30 + x + 2] = 1;
        }
    const r = evaluateVolume(a, b, small, [1, 1, 1], regionsFor('binary')).foreground!;
    expect(r.dice).toBeCloseTo(0.8, 12);
    expect(r.iou).toBeCloseTo(800 / 1200, 12);
    expect(r.hd95).toBe(2);
    const scaled = evaluateVolume(a, b, small, [0.5, 1, 1], regionsFor('binary')).foreground!;
    expect(scaled.hd95).toBe(1);
  });

  it('refuses mismatched sizes and bad spacing', () => {
    expect(() => evaluateVolume(new Uint8Array(5), new Uint8Array(6), [5, 1, 1], [1, 1, 1], brats)).toThrow(/voxels/);
    expect(() => evaluateVolume(new Uint8Array(5), new Uint8Array(5), [5, 1, 1], [1, 0, 1], brats)).toThrow(/spacing/);
  });
});

describe('slices and summaries', () => {
  it('slice metrics, official scores and summaries', () => {
    const dims: [number, number, number] = [8, 8, 3];
    const gt = new Uint8Array(8 * 8 * 3);
    const pred = new Uint8Array(8 * 8 * 3);
    // slice 0 empty in both; slice 1: gt 4 pixels, pred 2 of them; slice 2: pred only
    for (const i of [9, 10, 17, 18]) gt[64 + i] = 1;
    for (const i of [9, 10]) pred[64 + i] = 1;
    pred[128 + 30] = 1;
    const regions = regionsFor('binary');
    const perSlice = evaluateSlices(pred, gt, dims, [1, 1, 2], regions);
    expect(perSlice.map((s) => s.foreground!.dice)).toEqual([1, 4 / 6, 0]);
    expect(perSlice[1]!.foreground!.volumeMl).toBeCloseTo((2 * 2) / 1000, 12);
    expect(perSlice[2]!.foreground!.hd95).toBeCloseTo(Math.hypot(8, 8), 12);
    const one = evaluateSlice(pred.subarray(64, 128), gt.subarray(64, 128), [8, 8], [1, 1, 2], regions, { hd95: false });
    expect(one.foreground!.dice).toBe(4 / 6);
    expect(Number.isNaN(one.foreground!.hd95)).toBe(true);
    // official: (255 · 2·2/(2·2+0+2) + 2·4/(4+64)) / 256
    const official = officialSliceScores(perSlice[1]!.foreground!);
    expect(official.dice).toBeCloseTo((255 * (4 / 6) + 8 / 68) / 256, 12);
    expect(official.iou).toBeCloseTo((255 * 0.5 + 4 / 64) / 256, 12);
    const summary = summarise(perSlice, regions).foreground!;
    expect(summary.meanSliceDice).toBeCloseTo((1 + 4 / 6 + 0) / 3, 12);
    expect(summary.mDiceSlices).toBe(1);
    expect(summary.mDice).toBeCloseTo(official.dice, 12);
  });

  it('detects BraTS label maps and binary masks', () => {
    expect(detectRegionKind([0, 1, 2, 4], [0, 2])).toBe('brats');
    expect(detectRegionKind([0, 1], [0, 1, 2, 4])).toBe('brats');
    expect(detectRegionKind([0, 1], [0, 1])).toBe('binary');
    expect(detectRegionKind([0, 255], [0, 1, 2, 4])).toBe('binary');
    expect(regionsFor('brats').map((r) => r.name)).toEqual(['WT', 'TC', 'ET']);
  });
});
