/** Assembles a MetricsReport from an image, a predicted label map and optional ground truth. */
import { DEFAULT_LABEL_COLOURS, sliceNumber, type LabelColours } from '../conventions.ts';
import type { Volume } from '../io/volume.ts';
import { evaluateSlices, evaluateVolume, summarise } from '../metrics/evaluate.ts';
import { regionsFor, type RegionKind } from '../metrics/regions.ts';
import { sliceVolumes, summariseLabels } from './summary.ts';
import { headCrop, makeThumbnail, pickThumbnailSlices, ranoThumbnail } from './thumbnail.ts';
import { describeTumour, type TumourDescription } from '../metrics/describe.ts';
import { LESION_WISE_DEFAULTS, lesionWise } from '../metrics/lesion-wise.ts';
import type { MetricsReport, ReportSettings, SliceEntry, SliceVolumes, TumourSection } from './types.ts';
import { formatMl } from './format.ts';

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
  /** the prediction's tumour description when already made (the app's Tumour panel); otherwise made here from the image */
  tumour?: TumourDescription;
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
  const volumes = sliceVolumes(pred, dims, spacing, regions);
  const picks = gt ? pickThumbnailSlices(perSlice, regionNames) : predictionSlices(volumes, regionNames);
  const axial = image.geometry.direction[8]!;
  const description = input.tumour ?? describeTumour(pred, image.geometry, input.regionKind, { images: [{ data: image.isScaled ? image.toFloat32() : image.data }] });
  const tumour: TumourSection = {
    description,
    keySlices: description.lesions.flatMap((lesion, index) => (lesion.rano.measurable ? [{ lesion: index, thumbnail: ranoThumbnail(image, pred, lesion, index + 1, crop) }] : [])),
    ...(gt ? { lesionWise: { dilation: LESION_WISE_DEFAULTS.dilation, threshold_mm3: LESION_WISE_DEFAULTS.threshold, regions: lesionWise(pred, gt, dims, spacing, regions) } } : {}),
  };
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
    prediction: summariseLabels(pred, image.geometry, input.regionKind, regions, description),
    ...(gt ? { groundTruth: summariseLabels(gt, image.geometry, input.regionKind, regions) } : {}),
    sliceVolumes: volumes,
    tumour,
    // LPS: +z is superior; an axis more than ~25° off the body axis has no clear direction
    slicesAscendSuperior: Math.abs(axial) > 0.9 ? axial > 0 : null,
  };
}

/**
 * Without ground truth: the slice with the largest predicted area of each region (one picture
 * per slice, captions merged), then the slices where a quarter and three quarters of the whole
 * tumour's volume lie below, so the pictures span the lesion rather than show one slice.
 */
export function predictionSlices(volumes: readonly SliceVolumes[], regions: readonly string[]): { slice: number; caption: string }[] {
  const picks: { slice: number; caption: string }[] = [];
  const add = (slice: number, text: string) => {
    const existing = picks.find((p) => p.slice === slice);
    if (existing) existing.caption += `; ${text}`;
    else picks.push({ slice, caption: `Slice ${sliceNumber(slice)}: ${text}` });
  };
  for (const region of regions) {
    let best: SliceVolumes | undefined;
    for (const v of volumes) if ((v.ml[region] ?? 0) > (best?.ml[region] ?? 0)) best = v;
    if (best) add(best.slice, `largest predicted ${region} (${formatMl(best.ml[region])} ml)`);
  }
  const whole = regions[0];
  const total = whole ? volumes.reduce((sum, v) => sum + (v.ml[whole] ?? 0), 0) : 0;
  if (whole && total > 0) {
    for (const [fraction, label] of [[0.25, 'a quarter'], [0.75, 'three quarters']] as const) {
      let below = 0;
      const at = volumes.find((v) => (below += v.ml[whole] ?? 0) >= fraction * total);
      if (at && !picks.some((p) => p.slice === at.slice)) add(at.slice, `${label} of the predicted ${whole} volume lies at or below`);
    }
  }
  // in slice order: the pictures read from the bottom of the lesion to the top
  return picks.sort((a, b) => a.slice - b.slice);
}
