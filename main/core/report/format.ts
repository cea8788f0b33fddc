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
    ...(s.testTimeAugmentation ? [['Test-time augmentation', s.testTimeAugmentation] as [string, string]] : []),
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

/** The tumour section's lesion table (the prediction's lesions, largest first, as `sam2unet measure` lists them). */
export const LESION_HEADER = ['Lesion', 'Volume (ml)', 'Max diameter (mm)', 'Centroid L, P, S (mm)', 'ET (ml)', 'RANO slice', 'Long (mm)', 'Perp. (mm)', 'Product (mm²)', 'Measurable'];

export function lesionRows(report: MetricsReport): string[][] {
  return report.tumour.description.lesions.map((l, i) => [
    String(i + 1),
    formatMl(l.volume_ml),
    fixed(l.max_diameter_mm, 1),
    l.centroid_lps.map((c) => c.toFixed(1)).join(', '),
    formatMl(l.et_volume_ml),
    l.rano.slice === null ? '–' : String(sliceNumber(l.rano.slice)),
    fixed(l.rano.long_mm, 1),
    fixed(l.rano.perp_mm, 1),
    fixed(l.rano.product_mm2, 1),
    l.rano.measurable ? 'yes' : 'no',
  ]);
}

/** The tumour section's summary lines: RANO sum, multifocality, laterality with the method that placed the midline. */
export function tumourRows(report: MetricsReport): [string, string][] {
  const d = report.tumour.description;
  const { laterality: lat, multifocal } = d;
  const method = lat.method === 'image-symmetry' ? "the brain's left–right symmetry in the image" : "the volume's patient axes (sagittal plane through the grid centre)";
  return [
    ['RANO sum of products', `${d.rano_sum_products_mm2.toFixed(1)} mm² (up to the five largest measurable lesions)`],
    ['Measurable lesions', `${d.measurable_lesions} of ${d.lesions.length} (both diameters ≥ 10 mm)`],
    ['Multifocality', multifocal.foci > 1 ? `multifocal: ${multifocal.foci} foci, up to ${multifocal.largest_distance_mm.toFixed(1)} mm apart` : `${multifocal.foci === 1 ? 'unifocal' : 'no focus'} (foci closer than 5 mm count as one)`],
    ['Laterality', `${lat.left_pct.toFixed(1)} % left, ${lat.right_pct.toFixed(1)} % right; ${lat.crosses_midline ? 'crosses' : 'does not cross'} the midline`],
    ['Midline from', method],
  ];
}

export const LESION_WISE_HEADER = ['Region', 'Lesion-wise Dice', 'Lesion-wise HD95 (mm)', 'TP', 'FP', 'FN', 'Legacy Dice', 'Legacy HD95 (mm)'];

/** BraTS 2023 lesion-wise figures beside the legacy whole-region ones, with ground truth; empty without. */
export function lesionWiseRows(report: MetricsReport): string[][] {
  const lw = report.tumour.lesionWise;
  if (!lw) return [];
  return Object.entries(lw.regions).map(([region, r]) => [
    region,
    formatScore(r.dice),
    formatMm(r.hd95),
    String(r.tp),
    String(r.fp),
    String(r.fn),
    formatScore(report.perVolume?.[region]?.dice),
    formatMm(report.perVolume?.[region]?.hd95),
  ]);
}

export function lesionWiseText(report: MetricsReport): string {
  const lw = report.tumour.lesionWise;
  return lw
    ? `BraTS 2023 lesion-wise: 26-connected lesions; ground-truth lesions dilated ${lw.dilation} times to match; ground-truth lesions of at most ${lw.threshold_mm3} mm³ left out; a missed or false-positive lesion scores Dice 0, HD95 374 mm.`
    : '';
}
