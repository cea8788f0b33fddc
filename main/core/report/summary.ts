/** What a label map holds — volumes, slice range, lesions — for reports with or without ground truth. */
import { BRATS_LABEL_INFO } from '../conventions.ts';
import { connectedComponents } from '../metrics/components.ts';
import { regionLookup, type Region, type RegionKind } from '../metrics/regions.ts';
import type { LabelMapSummary, SliceVolumes } from './types.ts';

const voxelMl = (spacing: readonly number[]): number => (spacing[0]! * spacing[1]! * spacing[2]!) / 1000;

/**
 * Volumes per label and region, the axial range holding tumour and the whole tumour's
 * 26-connected components (a lesion is a component; scipy.ndimage.label with a full 3×3×3
 * structure counts the same).
 */
export function summariseLabels(labels: Uint8Array, dims: readonly [number, number, number], spacing: readonly number[], kind: RegionKind, regions: readonly Region[]): LabelMapSummary {
  const counts = new Float64Array(256);
  const plane = dims[0] * dims[1];
  let first = -1;
  let last = -1;
  for (let k = 0; k < dims[2]; k++) {
    let any = false;
    for (let i = k * plane, end = (k + 1) * plane; i < end; i++) {
      const v = labels[i]!;
      counts[v]!++;
      if (v) any = true;
    }
    if (any) {
      if (first < 0) first = k;
      last = k;
    }
  }
  const ml = voxelMl(spacing);
  const labelVolumesMl: Record<string, number> = {};
  if (kind === 'brats') for (const info of BRATS_LABEL_INFO) labelVolumesMl[info.short] = counts[info.value]! * ml;
  const regionVolumesMl: Record<string, number> = {};
  for (const region of regions) {
    const lut = regionLookup(region);
    let n = 0;
    for (let v = 1; v < 256; v++) if (lut[v]) n += counts[v]!;
    regionVolumesMl[region.name] = n * ml;
  }
  const lesionVolumesMl = first < 0 ? [] : connectedComponents(labels, dims, 26).sizes.map((n) => n * ml).sort((a, b) => b - a);
  return { labelVolumesMl, regionVolumesMl, sliceRange: first < 0 ? null : [first, last], lesionVolumesMl };
}

/** Predicted volume of each region on every axial slice (ml in one slice's slab). */
export function sliceVolumes(labels: Uint8Array, dims: readonly [number, number, number], spacing: readonly number[], regions: readonly Region[]): SliceVolumes[] {
  const plane = dims[0] * dims[1];
  const ml = voxelMl(spacing);
  const luts = regions.map((r) => regionLookup(r));
  const out: SliceVolumes[] = [];
  for (let k = 0; k < dims[2]; k++) {
    const n = new Array<number>(regions.length).fill(0);
    for (let i = k * plane, end = (k + 1) * plane; i < end; i++) {
      const v = labels[i]!;
      if (!v) continue;
      for (let r = 0; r < luts.length; r++) if (luts[r]![v]) n[r]!++;
    }
    out.push({ slice: k, ml: Object.fromEntries(regions.map((r, i) => [r.name, n[i]! * ml])) });
  }
  return out;
}
