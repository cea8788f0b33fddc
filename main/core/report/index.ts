/** Writing metrics.json, metrics.csv, report.html and report.pdf of one segmentation run. */
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.ts';
import { EMPTY_SLICE_RULE, EMPTY_SLICE_RULE_PREDICTION, SLICE_NUMBERING, regionColourHex, regionPresent, sliceNumber } from '../conventions.ts';
import { renderCsv } from './csv.ts';
import { renderHtml } from './html.ts';
import { renderPdf } from './pdf.ts';
import type { LabelMapSummary, MetricsReport } from './types.ts';
import { regionsFor } from '../metrics/regions.ts';
import { encodePng, pngDataUri } from './png.ts';
import { thumbnailRGB } from './thumbnail.ts';

export type { LabelMapSummary, MetricsReport, PostprocessingRecord, ReportSettings, SliceEntry, SliceVolumes, ReportThumbnail } from './types.ts';
export { renderCsv, CSV_COLUMNS } from './csv.ts';
export { reportChart, type ChartModel } from './chart.ts';
export { sliceVolumes, summariseLabels } from './summary.ts';
export { renderHtml, chartSvg } from './html.ts';
export { renderPdf } from './pdf.ts';
export { headCrop, makeThumbnail, pickThumbnailSlices, thumbnailRGB, type CropBox } from './thumbnail.ts';
export { encodePng, pngDataUri } from './png.ts';

/**
 * metrics.json: everything in the report; thumbnails as PNG data URIs of the composed pictures,
 * and NaN (a figure that was not computed) as null. Slices carry both their number (`slice`,
 * 1-based as every output shows it) and their 0-based voxel `index`; `conventions` states the
 * rules in words.
 */
export function renderJson(report: MetricsReport): string {
  const regions = regionsFor(report.regionKind).filter((r) => report.settings.regions.includes(r.name));
  // thumbnails as the composed PNG pictures: smaller than raw label arrays, and viewable as they are
  const thumbnails = report.thumbnails.map((t) => {
    const { rgb, width, height } = thumbnailRGB(t, regions, report.settings.labelColours);
    return { slice: sliceNumber(t.slice), index: t.slice, caption: t.caption, width, height, png: pngDataUri(encodePng(rgb, width, height)) };
  });
  // the key slices as pictures with their lines drawn, like the other thumbnails
  const keySlices = report.tumour.keySlices.map(({ lesion, thumbnail: t }) => {
    const { rgb, width, height } = thumbnailRGB(t, regions, report.settings.labelColours);
    return { lesion: lesion + 1, slice: sliceNumber(t.slice), index: t.slice, caption: t.caption, width, height, png: pngDataUri(encodePng(rgb, width, height)) };
  });
  const numbered = <T extends { slice: number }>(entries: readonly T[]) => entries.map((e) => ({ ...e, slice: sliceNumber(e.slice), index: e.slice }));
  const range = (s: LabelMapSummary) => ({ ...s, sliceRange: s.sliceRange && s.sliceRange.map(sliceNumber) });
  const conventions = {
    sliceNumbering: SLICE_NUMBERING,
    emptySlices: report.perVolume ? EMPTY_SLICE_RULE : EMPTY_SLICE_RULE_PREDICTION,
    regionColours: Object.fromEntries(report.settings.regions.map((r, i) => [r, regionColourHex(r, report.settings.labelColours, i)])),
  };
  return `${JSON.stringify(
    {
      ...report,
      conventions,
      // the regions not scored on each slice (absent from both masks): their figures are BraTS's empty-rule 1s
      perSlice: numbered(report.perSlice).map((e) => ({ ...e, absent: report.settings.regions.filter((r) => e.metrics[r] && !regionPresent(e.metrics[r])) })),
      sliceVolumes: numbered(report.sliceVolumes),
      prediction: range(report.prediction),
      ...(report.groundTruth ? { groundTruth: range(report.groundTruth) } : {}),
      thumbnails,
      tumour: { ...report.tumour, keySlices },
    },
    (_key, value: unknown) => {
      if (typeof value === 'number' && !Number.isFinite(value)) return null;
      return value;
    },
    1,
  )}\n`;
}

export interface ReportFiles {
  json: string;
  csv: string;
  html: string;
  pdf: string;
}

/** Writes the four report files into `outDir` (created if needed), each atomically. */
export async function writeReports(outDir: string, report: MetricsReport): Promise<ReportFiles> {
  const files: ReportFiles = {
    json: join(outDir, 'metrics.json'),
    csv: join(outDir, 'metrics.csv'),
    html: join(outDir, 'report.html'),
    pdf: join(outDir, 'report.pdf'),
  };
  await Promise.all([
    writeFileAtomic(files.json, renderJson(report)),
    writeFileAtomic(files.csv, renderCsv(report)),
    writeFileAtomic(files.html, renderHtml(report)),
    writeFileAtomic(files.pdf, renderPdf(report)),
  ]);
  return files;
}
export { buildReport, type BuildReportInput } from './build.ts';
