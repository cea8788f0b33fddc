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

export const CSV_COLUMNS = ['scope', 'slice', 'index', 'region', 'status', 'dice', 'iou', 'sensitivity', 'specificity', 'hd95', 'volume_ml', 'gt_volume_ml', 'tp', 'fp', 'fn', 'tn',
  // the tumour section (scope lesion, tumour, lesion_wise); `slice`/`index` of a lesion row are its RANO key slice
  'lesion', 'max_diameter_mm', 'centroid_l_mm', 'centroid_p_mm', 'centroid_s_mm', 'et_volume_ml', 'rano_long_mm', 'rano_perp_mm', 'rano_product_mm2', 'rano_measurable',
  'rano_sum_products_mm2', 'measurable_lesions', 'foci', 'largest_distance_mm', 'left_pct', 'right_pct', 'crosses_midline', 'laterality_method',
  'lesions_counted'] as const;

export const PREDICTED_STATUS = 'predicted';

/** Full precision (shortest round-trip form): the CSV is for analysis, not for reading. */
const num = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '' : String(v));

export function csvField(text: string): string {
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
  const d = report.tumour.description;
  d.lesions.forEach((l, i) => {
    const slice = l.rano.slice;
    lines.push(
      line({
        scope: 'lesion',
        lesion: String(i + 1),
        ...(slice === null ? {} : { slice: String(sliceNumber(slice)), index: String(slice) }),
        volume_ml: num(l.volume_ml),
        max_diameter_mm: num(l.max_diameter_mm),
        centroid_l_mm: num(l.centroid_lps[0]),
        centroid_p_mm: num(l.centroid_lps[1]),
        centroid_s_mm: num(l.centroid_lps[2]),
        et_volume_ml: num(l.et_volume_ml),
        rano_long_mm: num(l.rano.long_mm),
        rano_perp_mm: num(l.rano.perp_mm),
        rano_product_mm2: num(l.rano.product_mm2),
        rano_measurable: String(l.rano.measurable),
      }),
    );
  });
  const lat = d.laterality;
  lines.push(
    line({
      scope: 'tumour',
      rano_sum_products_mm2: num(d.rano_sum_products_mm2),
      measurable_lesions: num(d.measurable_lesions),
      foci: num(d.multifocal.foci),
      largest_distance_mm: num(d.multifocal.largest_distance_mm),
      left_pct: num(lat.left_pct),
      right_pct: num(lat.right_pct),
      crosses_midline: String(lat.crosses_midline),
      laterality_method: lat.method,
    }),
  );
  // BraTS 2023 lesion-wise, with ground truth: dice and hd95 here are the lesion-wise ones (the volume rows hold the legacy ones)
  for (const [region, r] of Object.entries(report.tumour.lesionWise?.regions ?? {})) {
    lines.push(line({ scope: 'lesion_wise', region, dice: num(r.dice), hd95: num(r.hd95), tp: num(r.tp), fp: num(r.fp), fn: num(r.fn), lesions_counted: num(r.lesions.filter((m) => m.counted).length) }));
  }
  return `${lines.join('\n')}\n`;
}
