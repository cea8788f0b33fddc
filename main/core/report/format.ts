/**
 * Number formatting and table content shared by the HTML, PDF and CLI outputs, so every output
 * prints the same figures.
 */
import type { RegionMetrics } from '../metrics/evaluate.ts';
import type { MetricsReport } from './types.ts';

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

/** Colours of the regions (WT green, TC yellow, ET red; others from a fixed palette). */
export function regionColour(name: string, index: number): [number, number, number] {
  const fixedColours: Record<string, [number, number, number]> = {
    WT: [46, 160, 67],
    TC: [230, 172, 0],
    ET: [214, 39, 40],
    foreground: [31, 119, 180],
  };
  const palette: [number, number, number][] = [[31, 119, 180], [148, 103, 189], [23, 190, 207], [140, 86, 75]];
  return fixedColours[name] ?? palette[index % palette.length]!;
}

export const hex = (c: readonly number[]): string => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;

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
    ['Checkpoint', s.checkpoint],
    ['Preset', s.preset],
    ['Device', s.device],
    ['Input size', `${s.inputSize} × ${s.inputSize}`],
    ['Threshold', String(s.threshold)],
    ['Regions', s.regions.join(', ')],
    ['Grid', `${report.dims.join(' × ')} voxels, ${report.spacing.map((v) => +v.toFixed(4)).join(' × ')} mm`],
  ];
  for (const [key, value] of Object.entries(s.extra ?? {})) rows.push([key, String(value)]);
  return rows;
}

export function timingRows(report: MetricsReport): [string, string][] {
  return Object.entries(report.timings).map(([name, ms]) => [name, formatMs(ms)]);
}

export const FOOTNOTES = [
  'Dice, IoU, sensitivity and specificity (TN/(TN+FP) over the whole image) are per volume (3D). HD95: 95th percentile (linear interpolation) of the pooled surface distances in mm in both directions; surface = mask minus its 6-connected erosion (MedPy / BraTS).',
  'Empty regions (BraTS rules): both empty gives scores 1 and HD95 0; exactly one empty gives Dice 0 and HD95 = the image diagonal.',
  '* mDice / mIoU: mean over slices containing the region of the per-slice scores as the official SAM2-UNet evaluation (py_sod_metrics, 256 thresholds) computes them.',
];
