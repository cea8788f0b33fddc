/** What a label map holds — volumes, slice range, lesions — for reports with or without ground truth. */
import { BRATS_LABEL_INFO } from '../conventions.ts';
import { describeTumour, type TumourDescription } from '../metrics/describe.ts';
import type { Geometry } from '../io/volume.ts';
import { regionLookup, type RegionDefinition, type RegionKind } from '../metrics/regions.ts';
import type { LabelMapSummary, SliceVolumes } from './types.ts';

const voxelMl = (spacing: readonly number[]): number => (spacing[0]! * spacing[1]! * spacing[2]!) / 1000;

/**
 * Volumes per label and region, the axial range holding tumour and the lesions, as the tumour
 * description (metrics/describe.ts, `sam2unet measure`) counts them: 26-connected whole-tumour
 * components of at least DEFAULT_MIN_LESION_ML, so the report and `measure` never disagree.
 */
export function summariseLabels(labels: Uint8Array, geometry: Geometry, kind: RegionKind, regions: readonly RegionDefinition[], described?: TumourDescription): LabelMapSummary {
  const dims = geometry.dims as [number, number, number];
  const plane = dims[0] * dims[1];
  let first = -1;
  let last = -1;
  for (let k = 0; k < dims[2]; k++) {
    let any = false;
    for (let i = k * plane, end = (k + 1) * plane; i < end && !any; i++) if (labels[i]) any = true;
    if (any) {
      if (first < 0) first = k;
      last = k;
    }
  }
  // volumes and lesions do not depend on the images the midline is fitted to: a description made with them serves
  const description = described ?? describeTumour(labels, geometry, kind);
  const labelVolumesMl: Record<string, number> = {};
  if (kind === 'brats') for (const info of BRATS_LABEL_INFO) labelVolumesMl[info.short] = description.regions[info.short]?.volume_ml ?? 0;
  const regionVolumesMl: Record<string, number> = {};
  for (const region of regions) regionVolumesMl[region.name] = description.regions[region.name === 'foreground' ? 'WT' : region.name]?.volume_ml ?? 0;
  return {
    labelVolumesMl,
    regionVolumesMl,
    sliceRange: first < 0 ? null : [first, last],
    lesionVolumesMl: description.lesions.map((l) => l.volume_ml).sort((a, b) => b - a),
  };
}

/** Predicted volume of each region on every axial slice (ml in one slice's slab). */
export function sliceVolumes(labels: Uint8Array, dims: readonly [number, number, number], spacing: readonly number[], regions: readonly RegionDefinition[]): SliceVolumes[] {
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
