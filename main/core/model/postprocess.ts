/**
 * 3D post-processing of a predicted label map, as BraTS pipelines apply it (nnU-Net's and the
 * BraTS challenge winners' "remove small components" and "ET below a threshold → necrosis"):
 *
 * 1. Connected components (26-connectivity) of the whole tumour (every non-zero label) smaller
 *    than `minComponentMl` are set to 0: a slice-wise 2D model leaves specks and one-slice blobs
 *    that no real lesion looks like.
 * 2. BraTS regions only: when the enhancing tumour (label 4) left after step 1 is smaller than
 *    `minEtMl` in total, it is relabelled 1 (necrotic / non-enhancing core). A few enhancing
 *    voxels in a non-enhancing tumour are almost always false, and an ET region that should be
 *    empty scores Dice 0 for any false voxel, while TC and WT keep these voxels.
 *
 * A threshold of 0 switches its step off. One module decides this for the CLI, the app and the
 * trainer's validation, so the figures of all three describe the same label map.
 */
import { connectedComponents } from '../metrics/components.ts';
import type { RegionKind } from '../metrics/regions.ts';

export interface PostprocessOptions {
  /** whole-tumour components below this volume (ml) are removed; 0 = keep all */
  minComponentMl: number;
  /** total enhancing tumour below this volume (ml) becomes label 1; 0 = never (BraTS regions only) */
  minEtMl: number;
}

/**
 * Defaults: well below the smallest lesion worth reporting (the generated held-out set goes down to
 * about 1 ml; BraTS's smallest whole tumours are a few ml), and ET of about 200 voxels of 1 mm.
 */
export const POSTPROCESS_DEFAULTS: PostprocessOptions = { minComponentMl: 0.2, minEtMl: 0.2 };

/** What post-processing did to one label map: reported in metrics.json, the report and the app. */
export interface PostprocessRecord {
  /** false when both steps were off */
  applied: boolean;
  minComponentMl: number;
  minEtMl: number;
  connectivity: 26;
  /** whole-tumour components of the raw prediction, and how many of them were removed */
  componentsBefore: number;
  componentsRemoved: number;
  /** voxels set to 0 by step 1 */
  voxelsRemoved: number;
  /** enhancing voxels (after step 1) and whether they were relabelled 1 by step 2 */
  etVoxels: number;
  etRelabelled: boolean;
  /** voxels changed 4 → 1 by step 2 */
  voxelsRelabelled: number;
  /** axial slices where at least one voxel changed (0-based), so that per-slice figures can be recomputed */
  changedSlices: number[];
}

/** Checks user-given thresholds; `what` names their source in the error (a flag, a setting). */
export function checkPostprocessOptions(o: PostprocessOptions, what = 'post-processing'): PostprocessOptions {
  for (const [key, value] of Object.entries(o)) {
    if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0)) throw new RangeError(`${what}: ${key} must be a volume in ml ≥ 0 (0 switches it off), got ${String(value)}`);
  }
  return o;
}

/**
 * Post-processes `labels` (x fastest, then y, then z) in place and says what changed.
 * `spacing` in mm gives the voxel volume.
 */
export function postprocessLabels(
  labels: Uint8Array,
  dims: readonly [number, number, number],
  spacing: readonly [number, number, number],
  regions: RegionKind,
  options: PostprocessOptions,
): PostprocessRecord {
  const { minComponentMl, minEtMl } = checkPostprocessOptions({ ...options });
  const [nx, ny] = dims;
  const plane = nx * ny;
  const voxelMl = (spacing[0] * spacing[1] * spacing[2]) / 1000;
  const changed = new Set<number>();
  const record: PostprocessRecord = {
    applied: minComponentMl > 0 || (regions === 'brats' && minEtMl > 0),
    minComponentMl,
    minEtMl: regions === 'brats' ? minEtMl : 0,
    connectivity: 26,
    componentsBefore: 0,
    componentsRemoved: 0,
    voxelsRemoved: 0,
    etVoxels: 0,
    etRelabelled: false,
    voxelsRelabelled: 0,
    changedSlices: [],
  };

  if (minComponentMl > 0) {
    const { labels: ids, sizes } = connectedComponents(labels, dims, 26);
    record.componentsBefore = sizes.length;
    // a component is kept when its volume reaches the threshold (compared in voxels, rounded up,
    // so that 0.2 ml at 1 mm means 200 voxels and not 199.99…)
    const minVoxels = Math.ceil(minComponentMl / voxelMl - 1e-9);
    const drop = new Uint8Array(sizes.length + 1);
    sizes.forEach((size, i) => {
      if (size < minVoxels) {
        drop[i + 1] = 1;
        record.componentsRemoved++;
        record.voxelsRemoved += size;
      }
    });
    if (record.componentsRemoved) {
      for (let i = 0; i < labels.length; i++) {
        if (drop[ids[i]!]) {
          labels[i] = 0;
          changed.add(Math.floor(i / plane));
        }
      }
    }
  } else {
    record.componentsBefore = connectedComponents(labels, dims, 26).sizes.length;
  }

  if (regions === 'brats') {
    for (let i = 0; i < labels.length; i++) if (labels[i] === 4) record.etVoxels++;
    if (minEtMl > 0 && record.etVoxels > 0 && record.etVoxels * voxelMl < minEtMl) {
      for (let i = 0; i < labels.length; i++) {
        if (labels[i] === 4) {
          labels[i] = 1;
          changed.add(Math.floor(i / plane));
        }
      }
      record.etRelabelled = true;
      record.voxelsRelabelled = record.etVoxels;
    }
  }
  record.changedSlices = [...changed].sort((a, b) => a - b);
  return record;
}

/**
 * The steps as the report lists them (report/types.ts PostprocessingRecord: name + description),
 * each with its parameters and counts too, which metrics.json keeps. An empty list when both
 * steps were off, so the report states "none" its own way.
 */
export function postprocessingSteps(r: PostprocessRecord): { name: string; description: string; parameters: Record<string, number>; changed: Record<string, number | boolean> }[] {
  const steps = [];
  if (r.minComponentMl > 0) {
    steps.push({
      name: 'small components removed',
      description: `whole-tumour components (26-connected) below ${r.minComponentMl} ml set to background: ${r.componentsRemoved} of ${r.componentsBefore}, ${r.voxelsRemoved} voxels`,
      parameters: { minComponentMl: r.minComponentMl, connectivity: r.connectivity },
      changed: { componentsBefore: r.componentsBefore, componentsRemoved: r.componentsRemoved, voxelsRemoved: r.voxelsRemoved },
    });
  }
  if (r.minEtMl > 0) {
    steps.push({
      name: 'small enhancing tumour relabelled',
      description: r.etRelabelled
        ? `enhancing tumour below ${r.minEtMl} ml in total relabelled necrosis (1): ${r.voxelsRelabelled} voxels`
        : `enhancing tumour below ${r.minEtMl} ml in total would become necrosis (1): ${r.etVoxels ? `${r.etVoxels} voxels, kept` : 'none predicted'}`,
      parameters: { minEtMl: r.minEtMl },
      changed: { etVoxels: r.etVoxels, etRelabelled: r.etRelabelled, voxelsRelabelled: r.voxelsRelabelled },
    });
  }
  return steps;
}
