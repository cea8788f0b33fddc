/** Assembles a MetricsReport from an image, a predicted label map and optional ground truth. */
import { DEFAULT_LABEL_COLOURS, sliceNumber, type LabelColours } from '../conventions.ts';
import type { Volume } from '../io/volume.ts';
import { evaluateSlices, evaluateVolume, summarise } from '../metrics/evaluate.ts';
import { regionsFor, type RegionKind } from '../metrics/regions.ts';
import { sliceVolumes, summariseLabels } from './summary.ts';
import { headCrop, makeThumbnail, pickThumbnailSlices } from './thumbnail.ts';
import type { MetricsReport, ReportSettings, SliceEntry } from './types.ts';

export interface BuildReportInput {
  study: string;
  settings: Omit<ReportSettings, 'regions' | 'labelColours'> & { labelColours?: LabelColours };
  regionKind: RegionKind;
  /** the image shown in the thumbnails (e.g. FLAIR), on the grid of the masks */
  image: Volume;
  pred: Uint8Array;
  gt?: Uint8Array;
  timings?: Record<string, number>;
  /** per-slice metrics already computed while segmenting (otherwise computed here) */
  perSlice?: SliceEntry[];
  createdAt?: Date;
}

export function buildReport(input: BuildReportInput): MetricsReport {
  const { image, pred, gt } = input;
  const dims = [...image.dims] as [number, number, number];
  const spacing = [...image.geometry.spacing] as [number, number, number];
  const regions = regionsFor(input.regionKind);
  const started = performance.now();
  let perSlice = input.perSlice ?? [];
  let perVolume;
  let summary;
  if (gt) {
    if (!input.perSlice) perSlice = evaluateSlices(pred, gt, dims, spacing, regions).map((metrics, slice) => ({ slice, metrics }));
    perVolume = evaluateVolume(pred, gt, dims, spacing, regions);
    summary = summarise(perSlice.map((e) => e.metrics), regions);
  }
  const metricsMs = performance.now() - started;
  const regionNames = regions.map((r) => r.name);
  const crop = headCrop(image);
  const picks = gt ? pickThumbnailSlices(perSlice, regionNames) : largestPredictionSlices(pred, dims);
  const axial = image.geometry.direction[8]!;
  return {
    study: input.study,
    createdAt: (input.createdAt ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z'),
    settings: { ...input.settings, labelColours: { ...(input.settings.labelColours ?? DEFAULT_LABEL_COLOURS) }, regions: regionNames },
    dims,
    spacing,
    regionKind: input.regionKind,
    perSlice,
    ...(perVolume ? { perVolume, summary } : {}),
    timings: { ...(input.timings ?? {}), ...(gt && !input.timings?.metrics ? { metrics: metricsMs } : {}) },
    thumbnails: picks.map((p) => makeThumbnail(image, pred, gt, p.slice, p.caption, crop)),
    prediction: summariseLabels(pred, dims, spacing, input.regionKind, regions),
    ...(gt ? { groundTruth: summariseLabels(gt, dims, spacing, input.regionKind, regions) } : {}),
    sliceVolumes: sliceVolumes(pred, dims, spacing, regions),
    // LPS: +z is superior; an axis more than ~25° off the body axis has no clear direction
    slicesAscendSuperior: Math.abs(axial) > 0.9 ? axial > 0 : null,
  };
}

/** Without ground truth: the slice with the largest predicted area. */
function largestPredictionSlices(pred: Uint8Array, dims: [number, number, number]): { slice: number; caption: string }[] {
  const n = dims[0] * dims[1];
  let best = -1;
  let bestArea = 0;
  for (let k = 0; k < dims[2]; k++) {
    let area = 0;
    for (let i = k * n; i < (k + 1) * n; i++) if (pred[i]) area++;
    if (area > bestArea) {
      bestArea = area;
      best = k;
    }
  }
  return best < 0 ? [] : [{ slice: best, caption: `Largest predicted area: slice ${sliceNumber(best)}` }];
}
