/**
 * Golden comparison against test/fixtures/metrics/reference.json, made by
 * make_reference.py (scipy + nibabel, MedPy-style HD95; see that script).
 * Tolerances: overlap figures within 1e-9 (absolute), HD95 within 1e-6 mm, counts exact.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateSlice, evaluateVolume, officialSliceScores, regionsFor, type RegionResults } from '../../../main/core/metrics/index.ts';
import { CASES, makePrediction, readSeg, type Dims, type PredictionName } from './predictions.ts';

interface RefMetrics {
  dice: number;
  iou: number;
  sensitivity: number;
  specificity: number;
  hd95: number;
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  officialDice?: number;
  officialIoU?: number;
}
interface RefEntry {
  case: string;
  prediction: PredictionName;
  spacing: number[];
  z?: number;
  regions: Record<string, RefMetrics>;
}
const reference = JSON.parse(readFileSync(new URL('../../fixtures/metrics/reference.json', import.meta.url), 'utf8')) as {
  volumes: RefEntry[];
  slices: RefEntry[];
};

const OVERLAP_TOLERANCE = 1e-9;
const HD95_TOLERANCE_MM = 1e-6;
const regions = regionsFor('brats');

function compare(label: string, got: RegionResults, want: Record<string, RefMetrics>): number {
  let worstHd = 0;
  for (const [region, ref] of Object.entries(want)) {
    const m = got[region]!;
    const where = `${label} ${region}`;
    expect({ where, tp: m.tp, fp: m.fp, fn: m.fn, tn: m.tn }).toEqual({ where, tp: ref.tp, fp: ref.fp, fn: ref.fn, tn: ref.tn });
    for (const key of ['dice', 'iou', 'sensitivity', 'specificity'] as const) {
      expect(Math.abs(m[key] - ref[key]), `${where} ${key}: ${m[key]} vs ${ref[key]}`).toBeLessThanOrEqual(OVERLAP_TOLERANCE);
    }
    const hdError = Math.abs(m.hd95 - ref.hd95);
    expect(hdError, `${where} hd95: ${m.hd95} vs ${ref.hd95}`).toBeLessThanOrEqual(HD95_TOLERANCE_MM);
    worstHd = Math.max(worstHd, hdError);
  }
  return worstHd;
}

describe('metrics against the scipy/MedPy reference', () => {
  const segs = new Map<string, { labels: Uint8Array; dims: Dims }>();
  const predictions = new Map<string, Uint8Array>();
  const predictionOf = (name: string, kind: PredictionName): Uint8Array => {
    const key = `${name}/${kind}`;
    if (!predictions.has(key)) {
      const { labels, dims } = segs.get(name)!;
      predictions.set(key, makePrediction(kind, labels, dims));
    }
    return predictions.get(key)!;
  };
  beforeAll(async () => {
    for (const name of CASES) segs.set(name, await readSeg(name));
  });

  it('covers every case, prediction and spacing', () => {
    expect(reference.volumes.length).toBe(4 * 6 * 2);
    expect(reference.slices.length).toBeGreaterThanOrEqual(12);
    // the empty-region rules are exercised: case 003 has no ET, 'empty' predicts nothing
    expect(reference.volumes.some((v) => v.regions.ET!.hd95 === 0 && v.regions.ET!.tp + v.regions.ET!.fn === 0)).toBe(true);
  });

  it('per volume (3D): Dice, IoU, sensitivity, specificity, HD95 and counts', () => {
    let worst = 0;
    for (const name of CASES) {
      const { labels: gt, dims } = segs.get(name)!;
      const entries = reference.volumes.filter((v) => v.case === name);
      const byPrediction = new Map<PredictionName, RefEntry[]>();
      for (const e of entries) byPrediction.set(e.prediction, [...(byPrediction.get(e.prediction) ?? []), e]);
      for (const [prediction, list] of byPrediction) {
        const pred = predictionOf(name, prediction);
        for (const entry of list) {
          const spacing = entry.spacing as [number, number, number];
          const got = evaluateVolume(pred, gt, dims, spacing, regions);
          worst = Math.max(worst, compare(`${name} ${prediction} ${spacing.join('×')}`, got, entry.regions));
          for (const r of regions) {
            const m = got[r.name]!;
            const voxel = spacing[0] * spacing[1] * spacing[2];
            expect(m.volumeMl).toBeCloseTo(((m.tp + m.fp) * voxel) / 1000, 12);
          }
        }
      }
    }
    console.log(`worst 3D HD95 error vs scipy: ${worst.toExponential(2)} mm`);
  });

  it('per slice (2D, in-plane spacing) and the official SAM2-UNet slice scores', () => {
    for (const entry of reference.slices) {
      const { labels: gt, dims } = segs.get(entry.case)!;
      const pred = predictionOf(entry.case, entry.prediction);
      const n = dims[0] * dims[1];
      const z = entry.z!;
      const spacing = entry.spacing as [number, number, number];
      const got = evaluateSlice(pred.subarray(z * n, (z + 1) * n), gt.subarray(z * n, (z + 1) * n), [dims[0], dims[1]], spacing, regions);
      compare(`${entry.case} ${entry.prediction} z=${z}`, got, entry.regions);
      for (const [region, ref] of Object.entries(entry.regions)) {
        const official = officialSliceScores(got[region]!);
        expect(Math.abs(official.dice - ref.officialDice!)).toBeLessThanOrEqual(OVERLAP_TOLERANCE);
        expect(Math.abs(official.iou - ref.officialIoU!)).toBeLessThanOrEqual(OVERLAP_TOLERANCE);
      }
    }
  });
});
