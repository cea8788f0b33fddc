/**
 * Evaluation regions. BraTS scores nested tumour regions built from its label map
 * (1 necrotic core, 2 oedema, 4 enhancing tumour); a binary model has one region.
 */

import type { RegionKind } from '../api.ts';

export type { RegionKind };

export interface RegionDefinition {
  name: string;
  /** label values that belong to the region; `null` means every non-zero label */
  labels: readonly number[] | null;
}

export const BRATS_LABELS = [0, 1, 2, 4] as const;

const BRATS_REGIONS: readonly RegionDefinition[] = [
  { name: 'WT', labels: [1, 2, 4] },
  { name: 'TC', labels: [1, 4] },
  { name: 'ET', labels: [4] },
];

const BINARY_REGIONS: readonly RegionDefinition[] = [{ name: 'foreground', labels: null }];

export function regionsFor(kind: RegionKind): RegionDefinition[] {
  return (kind === 'brats' ? BRATS_REGIONS : BINARY_REGIONS).map((r) => ({ ...r }));
}

/**
 * Membership table: `table[label]` is 1 when the label is in the region. Masks are uint8, so a
 * 256-entry table turns the per-voxel test into one load.
 */
export function regionLookup(region: RegionDefinition): Uint8Array {
  const table = new Uint8Array(256);
  if (region.labels === null) table.fill(1, 1);
  else for (const label of region.labels) if (label >= 0 && label < 256) table[label] = 1;
  return table;
}

/** Whole-volume Dice of one region between two label maps on one grid; null when both lack it. */
export function regionDice(a: Uint8Array, b: Uint8Array, region: RegionDefinition): number | null {
  const lookup = regionLookup(region);
  let both = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const x = lookup[a[i]!]!;
    const y = lookup[b[i]!]!;
    both += x & y;
    sum += x + y;
  }
  return sum === 0 ? null : (2 * both) / sum;
}

/** The distinct values of a label map, ascending. */
export function labelsPresent(data: ArrayLike<number>): number[] {
  const seen = new Uint8Array(256);
  let other = false;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v >= 0 && v < 256 && Number.isInteger(v)) seen[v] = 1;
    else other = true;
  }
  const labels: number[] = [];
  for (let v = 0; v < 256; v++) if (seen[v]) labels.push(v);
  if (other) labels.push(NaN);
  return labels;
}

/**
 * BraTS when some file holds a BraTS tumour label other than 1 (2 or 4) and every label of both
 * files is in {0, 1, 2, 4}; otherwise a binary mask (label > 0 is foreground). A 0/1 mask is
 * binary: with only label 1 present, BraTS would score WT = TC and an empty ET, which is not what
 * a binary model means.
 */
export function detectRegionKind(...labelSets: number[][]): RegionKind {
  const all = new Set(labelSets.flat());
  const onlyBrats = [...all].every((v) => (BRATS_LABELS as readonly number[]).includes(v));
  const hasTumourLabel = all.has(2) || all.has(4);
  return onlyBrats && hasTumourLabel ? 'brats' : 'binary';
}
