/**
 * metrics.csv: one row per slice and region, then one per volume and region, then one per
 * BraTS label. Slice numbers are 1-based as everywhere else (conventions.ts); `index` is the
 * 0-based voxel index for programs. A region absent from both masks on a slice is written with
 * empty scores and status "absent" (the charts' gap); without ground truth the slice rows carry
 * the predicted volume and status "predicted" or "absent".
 */
import { ABSENT_STATUS, BRATS_LABEL_INFO, SCORED_STATUS, regionPresent, sliceNumber } from '../conventions.ts';
import type { RegionMetrics } from '../metrics/evaluate.ts';
import type { MetricsReport } from './types.ts';

export const CSV_COLUMNS = ['scope', 'slice', 'index', 'region', 'status', 'dice', 'iou', 'sensitivity', 'specificity', 'hd95', 'volume_ml', 'gt_volume_ml', 'tp', 'fp', 'fn', 'tn'] as const;

export const PREDICTED_STATUS = 'predicted';

/** Full precision (shortest round-trip form): the CSV is for analysis, not for reading. */
const num = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '' : String(v));

function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

type Row = Partial<Record<(typeof CSV_COLUMNS)[number], string>>;
const line = (row: Row): string => CSV_COLUMNS.map((c) => csvField(row[c] ?? '')).join(',');

function scores(m: RegionMetrics, scored: boolean): Row {
  return {
    ...(scored ? { dice: num(m.dice), iou: num(m.iou), sensitivity: num(m.sensitivity), specificity: num(m.specificity), hd95: num(m.hd95) } : {}),
    volume_ml: num(m.volumeMl),
    gt_volume_ml: num(m.gtVolumeMl),
    tp: num(m.tp),
    fp: num(m.fp),
    fn: num(m.fn),
    tn: num(m.tn),
  };
}

export function renderCsv(report: MetricsReport): string {
  const lines: string[] = [CSV_COLUMNS.join(',')];
  const regions = report.settings.regions;
  if (report.perVolume) {
    for (const entry of [...report.perSlice].sort((a, b) => a.slice - b.slice)) {
      for (const region of regions) {
        const m = entry.metrics[region];
        if (!m) continue;
        const present = regionPresent(m);
        lines.push(line({ scope: 'slice', slice: String(sliceNumber(entry.slice)), index: String(entry.slice), region, status: present ? SCORED_STATUS : ABSENT_STATUS, ...scores(m, present) }));
      }
    }
    for (const region of regions) {
      const m = report.perVolume[region];
      if (m) lines.push(line({ scope: 'volume', region, status: SCORED_STATUS, ...scores(m, true) }));
    }
  } else {
    for (const entry of report.sliceVolumes) {
      for (const region of regions) {
        const ml = entry.ml[region] ?? 0;
        lines.push(line({ scope: 'slice', slice: String(sliceNumber(entry.slice)), index: String(entry.slice), region, status: ml > 0 ? PREDICTED_STATUS : ABSENT_STATUS, volume_ml: num(ml) }));
      }
    }
    for (const region of regions) {
      const ml = report.prediction.regionVolumesMl[region];
      lines.push(line({ scope: 'volume', region, status: (ml ?? 0) > 0 ? PREDICTED_STATUS : ABSENT_STATUS, volume_ml: num(ml) }));
    }
  }
  if (report.regionKind === 'brats') {
    for (const info of BRATS_LABEL_INFO) {
      lines.push(line({ scope: 'label', region: `${info.short} (${info.value})`, volume_ml: num(report.prediction.labelVolumesMl[info.short]), gt_volume_ml: num(report.groundTruth?.labelVolumesMl[info.short]) }));
    }
  }
  return `${lines.join('\n')}\n`;
}
