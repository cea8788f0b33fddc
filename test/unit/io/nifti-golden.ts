/** Shared by the NIfTI reader and CLI convert tests: compare volumes with what nibabel 5.0 says. */
import { expect } from 'vitest';
import { affineRAS, type Volume } from '../../../main/core/io/volume.ts';

export interface Golden {
  shape: number[];
  affine_ras: number[][];
  scaled?: { min: number; max: number; mean: number };
  min?: number;
  max?: number;
  mean?: number;
  first_voxels_fortran_order?: number[];
  first_rgb?: number[][];
}

/** Tolerances of the golden comparisons. */
export const AFFINE_TOL = 1e-4; // mm, absolute
export const STATS_RTOL = 1e-6; // relative

function expectClose(actual: number, expected: number, rtol: number, what: string): void {
  const error = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-12);
  if (error > rtol) throw new Error(`${what}: ${actual} vs ${expected} (relative error ${error} > ${rtol})`);
}

/** min/max/mean over every frame of real values, in float64 (as nibabel's get_fdata). */
function statsOf(volumes: Volume[]): { min: number; max: number; mean: number } {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let n = 0;
  for (const v of volumes) {
    const s = v.stats();
    min = Math.min(min, s.min);
    max = Math.max(max, s.max);
    sum += s.mean * v.data.length;
    n += v.data.length;
  }
  return { min, max, mean: sum / n };
}

export function checkAgainstGolden(name: string, volumes: Volume[], golden: Golden): void {
  const frames = golden.shape.length > 3 ? golden.shape[3]! : 1;
  expect(volumes.length, `${name} frames`).toBe(frames);
  expect([...volumes[0]!.dims], `${name} dims`).toEqual([golden.shape[0], golden.shape[1] ?? 1, golden.shape[2] ?? 1]);
  const affine = affineRAS(volumes[0]!.geometry);
  golden.affine_ras.flat().forEach((v, i) => {
    if (Math.abs(affine[i]! - v) > AFFINE_TOL) throw new Error(`${name} affine[${i}] = ${affine[i]} vs nibabel ${v} (tolerance ${AFFINE_TOL})`);
  });
  const expected = golden.scaled ?? { min: golden.min!, max: golden.max!, mean: golden.mean! };
  if (golden.first_rgb) return;
  const stats = statsOf(volumes);
  expectClose(stats.min, expected.min, STATS_RTOL, `${name} min`);
  expectClose(stats.max, expected.max, STATS_RTOL, `${name} max`);
  expectClose(stats.mean, expected.mean, STATS_RTOL, `${name} mean`);
  golden.first_voxels_fortran_order?.forEach((v, i) => expectClose(volumes[0]!.value(i), v, STATS_RTOL, `${name} voxel ${i}`));
}

