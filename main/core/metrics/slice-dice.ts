/**
 * One axial slice's Dice per region for the app's chart, under the empty-slice rule
 * (conventions.ts: a region absent from both masks is not scored there). The segmentation job
 * streams these with each slice; the mask editor recomputes them for the slices it changes.
 * Pure: the renderer imports it.
 */
import type { RegionDice } from '../api.ts';
import { scoredDice } from '../conventions.ts';
import { evaluateSlice, type RegionResults } from './evaluate.ts';
import { regionsFor, type RegionKind } from './regions.ts';

/** A slice's per-region metrics as the chart's Dice; a binary model's one region counts as WT. */
export function sliceDiceOf(regions: RegionResults | null): RegionDice | null {
  if (!regions) return null;
  const pick = (name: string) => scoredDice(regions[name]);
  return { WT: regions.WT ? pick('WT') : pick('foreground'), TC: pick('TC'), ET: pick('ET') };
}

/** Dice of axial slice `k` of `prediction` against `truth` (both label maps on one grid, x fastest). */
export function axialSliceDice(
  prediction: Uint8Array,
  truth: Uint8Array,
  dims: readonly [number, number, number] | readonly number[],
  spacing: readonly [number, number, number] | readonly number[],
  k: number,
  kind: RegionKind,
): RegionDice | null {
  const plane = dims[0]! * dims[1]!;
  const slice = (labels: Uint8Array) => labels.subarray(k * plane, (k + 1) * plane);
  const regions = evaluateSlice(slice(prediction), slice(truth), [dims[0]!, dims[1]!], spacing as [number, number, number], regionsFor(kind), { hd95: false });
  return sliceDiceOf(regions);
}
