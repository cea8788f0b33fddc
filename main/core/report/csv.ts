/** metrics.csv: one row per slice and region, then one per volume and region. */
import type { RegionMetrics } from '../metrics/evaluate.ts';
import type { MetricsReport } from './types.ts';

export const CSV_COLUMNS = ['scope', 'slice', 'region', 'dice', 'iou', 'sensitivity', 'specificity', 'hd95', 'volume_ml', 'gt_volume_ml', 'tp', 'fp', 'fn', 'tn'] as const;

/** Full precision (shortest round-trip form): the CSV is for analysis, not for reading. */
const num = (v: number): string => (Number.isNaN(v) ? '' : String(v));

function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function row(scope: string, slice: string, region: string, m: RegionMetrics): string {
  return [
    scope, slice, csvField(region),
    num(m.dice), num(m.iou), num(m.sensitivity), num(m.specificity), num(m.hd95), num(m.volumeMl), num(m.gtVolumeMl),
    num(m.tp), num(m.fp), num(m.fn), num(m.tn),
  ].join(',');
}

export function renderCsv(report: MetricsReport): string {
  const lines: string[] = [CSV_COLUMNS.join(',')];
  for (const entry of [...report.perSlice].sort((a, b) => a.slice - b.slice)) {
    for (const region of report.settings.regions) {
      const m = entry.metrics[region];
      if (m) lines.push(row('slice', String(entry.slice), region, m));
    }
  }
  if (report.perVolume) {
    for (const region of report.settings.regions) {
      const m = report.perVolume[region];
      if (m) lines.push(row('volume', '', region, m));
    }
  }
  return `${lines.join('\n')}\n`;
}
