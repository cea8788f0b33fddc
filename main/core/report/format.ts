/**
 * Number formatting and table content shared by the HTML, PDF and CLI outputs, so every output
 * prints the same figures.
 */
import { BRATS_LABEL_INFO, EMPTY_SLICE_RULE, REGION_DESCRIPTION, REGION_LABEL, SLICE_NUMBERING, regionColourHex, sliceNumber } from '../conventions.ts';
import type { RegionMetrics } from '../metrics/evaluate.ts';
import { DEFAULT_MIN_LESION_ML } from '../metrics/describe.ts';
import type { LabelMapSummary, MetricsReport } from './types.ts';

export function fixed(value: number | undefined, digits: number): string {
  if (value === undefined || Number.isNaN(value)) return '–';
  return value.toFixed(digits);
}

export const formatScore = (v: number | undefined): string => fixed(v, 4);
export const formatMm = (v: number | undefined): string => fixed(v, 2);
export const formatMl = (v: number | undefined): string => fixed(v, 2);

export function formatMs(ms: number): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
}

export { rgbToHex as hex } from '../conventions.ts';

export const SUMMARY_HEADER = ['Region', 'Dice', 'IoU', 'Sensitivity', 'Specificity', 'HD95 (mm)', 'Pred. vol. (ml)', 'GT vol. (ml)', 'mDice*', 'mIoU*'];

/** One row per region of the per-volume summary table. */
export function summaryRows(report: MetricsReport): string[][] {
  return report.settings.regions.map((region) => {
    const m: Partial<RegionMetrics> = report.perVolume?.[region] ?? {};
    const s = report.summary?.[region];
    return [
      region,
      formatScore(m.dice),
      formatScore(m.iou),
      formatScore(m.sensitivity),
      formatScore(m.specificity),
      formatMm(m.hd95),
      formatMl(m.volumeMl),
      formatMl(m.gtVolumeMl),
      formatScore(s?.mDice),
      formatScore(s?.mIoU),
    ];
  });
}

export function settingsRows(report: MetricsReport): [string, string][] {
  const s = report.settings;
  const rows: [string, string][] = [
    ['Study', report.study],
    ['Created', report.createdAt],
    ...(s.model ? [['Model', s.model] as [string, string]] : []),
    ['Checkpoint', s.checkpoint],
    ['Preset', s.preset],
    ['Device', s.device],
    ['Input size', `${s.inputSize} × ${s.inputSize}`],
    ['Threshold', String(s.threshold)],
    ['Regions', s.regions.join(', ')],
    ['Grid', `${report.dims.join(' × ')} voxels, ${report.spacing.map((v) => +v.toFixed(4)).join(' × ')} mm`],
    ['Slice numbering', sliceNumberingText(report)],
    ['Colours', colourText(report)],
  ];
  for (const [key, value] of Object.entries(s.extra ?? {})) rows.push([key, String(value)]);
  // notes and post-processing have sections of their own (html.ts, pdf.ts)
  return rows;
}

/** The numbering rule with the direction it runs on this study's grid. */
export function sliceNumberingText(report: MetricsReport): string {
  const direction = report.slicesAscendSuperior === null ? 'oblique axis' : report.slicesAscendSuperior ? 'inferior to superior' : 'superior to inferior';
  return `1 to ${report.dims[2]} (voxel index + 1), ${direction}`;
}

/** "WT #2ecc40 (edema) · …": each region in the colour of the label it adds (conventions.ts). */
export function colourText(report: MetricsReport): string {
  const colours = report.settings.labelColours;
  return report.settings.regions
    .map((r, i) => {
      const label = REGION_LABEL[r];
      const info = BRATS_LABEL_INFO.find((l) => l.key === label);
      return `${r} ${regionColourHex(r, colours, i)}${info && report.regionKind === 'brats' ? ` (${info.name})` : ''}`;
    })
    .join(' · ');
}

/** "41–97 (57 slices)" in slice numbers, or "none" for an empty label map. */
export function sliceRangeText(summary: LabelMapSummary | undefined): string {
  if (!summary) return '–';
  if (!summary.sliceRange) return 'none';
  const [a, b] = summary.sliceRange;
  return `${sliceNumber(a)}–${sliceNumber(b)} (${b - a + 1} slice${b > a ? 's' : ''})`;
}

/** "2 (largest 12.31 ml)": lesion count with the largest lesion's volume. */
export function lesionText(summary: LabelMapSummary | undefined): string {
  if (!summary) return '–';
  const v = summary.lesionVolumesMl;
  if (v.length === 0) return '0';
  return v.length === 1 ? `1 (${formatMl(v[0])} ml)` : `${v.length} (largest ${formatMl(v[0])} ml)`;
}

/**
 * The prediction table: volume per label and per region in ml, the slices holding tumour and the
 * lesion count, with the ground truth's figures beside them when there is one.
 */
export function predictionHeader(report: MetricsReport): string[] {
  return report.groundTruth ? ['', 'Prediction', 'Ground truth'] : ['', 'Prediction'];
}

export function predictionRows(report: MetricsReport): string[][] {
  const columns = [report.prediction, ...(report.groundTruth ? [report.groundTruth] : [])];
  const rows: string[][] = [];
  if (report.regionKind === 'brats') {
    for (const info of BRATS_LABEL_INFO) {
      rows.push([`${info.short} – ${info.name}, label ${info.value} (ml)`, ...columns.map((c) => formatMl(c.labelVolumesMl[info.short]))]);
    }
  }
  for (const region of report.settings.regions) {
    rows.push([`${region} – ${REGION_DESCRIPTION[region] ?? region} (ml)`, ...columns.map((c) => formatMl(c.regionVolumesMl[region]))]);
  }
  rows.push(['Tumour on slices', ...columns.map((c) => sliceRangeText(c))]);
  rows.push([`Lesions (26-connected, at least ${DEFAULT_MIN_LESION_ML} ml)`, ...columns.map((c) => lesionText(c))]);
  return rows;
}

export function postprocessingRows(report: MetricsReport): [string, string][] {
  return (report.settings.postprocessing ?? []).map((p) => [p.name, p.description]);
}

export function timingRows(report: MetricsReport): [string, string][] {
  return Object.entries(report.timings).map(([name, ms]) => [name, formatMs(ms)]);
}

export const FOOTNOTES = [
  'Dice, IoU, sensitivity and specificity (TN/(TN+FP) over the whole image) are per volume (3D). HD95: 95th percentile (linear interpolation) of the pooled surface distances in mm in both directions; surface = mask minus its 6-connected erosion (MedPy / BraTS).',
  'Empty regions in the volume metrics (BraTS rules): both empty gives scores 1 and HD95 0; exactly one empty gives Dice 0 and HD95 = the image diagonal.',
  `Per slice: a region absent from both prediction and ground truth on a slice is not scored there. Chart: ${EMPTY_SLICE_RULE} CSV: empty scores, status "absent".`,
  `Slice numbers: ${SLICE_NUMBERING}`,
  `Volumes: voxel count × voxel volume. Lesions: connected components of the whole tumour (labels > 0) with 26-connectivity (faces, edges and corners touch) of at least ${DEFAULT_MIN_LESION_ML} ml, as \`sam2unet measure\` counts them.`,
  '* mDice / mIoU: mean over slices containing the region of the per-slice scores as the official SAM2-UNet evaluation (py_sod_metrics, 256 thresholds) computes them.',
];
