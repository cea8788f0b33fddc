/** report.pdf: the same content as report.html, laid out on A4 pages with the PDF writer. */
import { RANO_LINE_COLOURS, hexToRgb, regionColourRgb } from '../conventions.ts';
import { regionsFor } from '../metrics/regions.ts';
import { reportChart, tickText, type ChartModel } from './chart.ts';
import { FOOTNOTES, LESION_HEADER, LESION_WISE_HEADER, SUMMARY_HEADER, lesionRows, lesionWiseRows, lesionWiseText, tumourRows, postprocessingRows, predictionHeader, predictionRows, settingsRows, summaryRows, timingRows } from './format.ts';
import { A4, PdfDocument, textWidth, type PdfPage, type Rgb } from './pdfwriter.ts';
import { THUMBNAIL_VIEW, thumbnailRGB } from './thumbnail.ts';
import type { MetricsReport, ReportThumbnail } from './types.ts';

export const MARGIN = 40;
export const NAVY: Rgb = [31, 59, 87];
export const GREY: Rgb = [91, 102, 112];
const RULE: Rgb = [217, 222, 227];
const HEAD_FILL: Rgb = [238, 241, 244];

export class Layout {
  page!: PdfPage;
  y = 0;
  readonly width = A4[0] - 2 * MARGIN;
  readonly #doc: PdfDocument;

  constructor(doc: PdfDocument) {
    this.#doc = doc;
    this.newPage();
  }

  newPage(): void {
    this.page = this.#doc.addPage(A4);
    this.y = MARGIN;
  }

  /** Starts a new page unless `height` points still fit. */
  need(height: number): void {
    if (this.y + height > A4[1] - MARGIN - 16) this.newPage();
  }

  heading(text: string): void {
    this.need(40);
    this.y += 18;
    this.page.text(MARGIN, this.y, text, { size: 12, font: 'bold', colour: NAVY });
    this.y += 5;
    this.page.line(MARGIN, this.y, MARGIN + this.width, this.y, RULE, 0.7);
    this.y += 12;
  }

  /** Key–value rows whose values wrap onto more lines when they are long (settings, post-processing). */
  keyValues(rows: [string, string][], keyWidth: number, size = 8.5): void {
    const leading = size * 1.3;
    for (const [key, value] of rows) {
      const valueWidth = this.width - keyWidth - 8;
      const keyLines = Math.ceil(textWidth(key, size) / (keyWidth - 8));
      this.need(leading * Math.max(2, keyLines + 1));
      const top = this.y;
      const baseline = top + size * 1.25;
      const keyEnd = this.page.paragraph(MARGIN + 4, baseline, keyWidth - 8, key, { size, colour: GREY, leading });
      const valueEnd = this.page.paragraph(MARGIN + keyWidth, baseline, valueWidth, value, { size, colour: [29, 35, 41], leading });
      this.y = Math.max(keyEnd, valueEnd) - leading + size * 0.65 + 4;
      this.page.line(MARGIN, this.y, MARGIN + this.width, this.y, RULE, 0.5);
    }
  }

  /** A table; the first column is left-aligned, the others right-aligned. */
  table(header: string[] | null, rows: string[][], columnWidths: number[], size = 8.5): void {
    const rowHeight = size * 1.9;
    const xs: number[] = [];
    let x = MARGIN;
    for (const w of columnWidths) {
      xs.push(x);
      x += w;
    }
    const drawRow = (cells: string[], bold: boolean): void => {
      this.need(rowHeight);
      if (bold) this.page.rect(MARGIN, this.y, this.width, rowHeight, { fill: HEAD_FILL });
      const baseline = this.y + rowHeight * 0.66;
      cells.forEach((cell, i) => {
        const left = i === 0 || header === null;
        this.page.text(left ? xs[i]! + 4 : xs[i]! + columnWidths[i]! - 8, baseline, cell, {
          size,
          font: bold ? 'bold' : 'regular',
          colour: header === null && i === 0 ? GREY : [29, 35, 41],
          align: left ? 'left' : 'right',
        });
      });
      this.y += rowHeight;
      this.page.line(MARGIN, this.y, MARGIN + this.width, this.y, RULE, 0.5);
    };
    if (header) drawRow(header, true);
    for (const row of rows) drawRow(row, false);
  }
}

/** The per-slice chart (chart.ts), on the app's dark plot area so the region colours read the same. */
function drawChart(layout: Layout, report: MetricsReport, chart: ChartModel): void {
  const height = 190;
  layout.need(height + 30);
  const page = layout.page;
  const left = MARGIN + 34;
  const top = layout.y + 14;
  const w = layout.width - 34 - 6;
  const h = height - 34;
  const sx = (x: number): number => left + ((x - chart.xMin) / Math.max(1, chart.xMax - chart.xMin)) * w;
  const sy = (y: number): number => top + (1 - y / chart.yMax) * h;
  page.rect(left, top, w, h, { fill: [27, 32, 39], stroke: [69, 81, 95] });
  for (const y of chart.yTicks) {
    page.line(left, sy(y), left + w, sy(y), [43, 52, 64], 0.5);
    page.text(left - 5, sy(y) + 3, tickText(chart, y), { size: 8, colour: GREY, align: 'right' });
  }
  for (const x of chart.xTicks) {
    page.line(sx(x), top + h, sx(x), top + h + 3, [138, 148, 156], 0.5);
    page.text(sx(x), top + h + 12, String(x), { size: 8, colour: GREY, align: 'center' });
  }
  page.text(left + w / 2, top + h + 24, `Axial slice (1 to ${chart.xMax})`, { size: 8.5, colour: [51, 64, 77], align: 'center' });
  page.text(left - 5, top - 6, chart.yLabel, { size: 8.5, colour: [51, 64, 77], align: 'right' });
  for (const s of chart.series) {
    for (const run of s.runs) {
      if (run.length === 1) page.circle(sx(run[0]![0]), sy(run[0]![1]), 1.5, s.colour);
      else page.polyline(run.map(([x, y]) => [sx(x), sy(y)] as [number, number]), s.colour, 1.1);
    }
  }
  // below the axis title (at top + h + 24)
  layout.y = top + h + 42;
  drawLegend(layout, report, chart.rule);
}

function drawLegend(layout: Layout, report: MetricsReport, suffix = ''): void {
  let x = MARGIN;
  const y = layout.y;
  report.settings.regions.forEach((region, i) => {
    layout.page.rect(x, y - 7, 8, 8, { fill: regionColourRgb(region, report.settings.labelColours, i), stroke: [120, 130, 140] });
    layout.page.text(x + 12, y, region, { size: 8.5, colour: [51, 64, 77] });
    x += 12 + textWidth(region, 8.5) + 16;
  });
  if (suffix) layout.page.text(x, y, suffix, { size: 8.5, colour: GREY });
  layout.y += 10;
}

function drawThumbnails(layout: Layout, report: MetricsReport, thumbnails: readonly ReportThumbnail[] = report.thumbnails): void {
  const regions = regionsFor(report.regionKind).filter((r) => report.settings.regions.includes(r.name));
  const gap = 14;
  const cellWidth = (layout.width - gap) / 2;
  for (let i = 0; i < thumbnails.length; i += 2) {
    const pair = thumbnails.slice(i, i + 2).map((t) => ({ t, ...thumbnailRGB(t, regions, report.settings.labelColours) }));
    const cellHeight = Math.max(...pair.map((p) => (cellWidth * p.height) / p.width));
    layout.need(cellHeight + 44);
    let bottom = layout.y;
    pair.forEach((p, j) => {
      const x = MARGIN + j * (cellWidth + gap);
      const labels = p.t.gt ? ['Ground truth', 'Prediction'] : ['Prediction'];
      labels.forEach((label, k) => {
        const panel = cellWidth / labels.length;
        layout.page.text(x + panel * (k + 0.5), layout.y + 7, label, { size: 7.5, colour: GREY, align: 'center' });
      });
      layout.page.image(p.rgb, p.width, p.height, x, layout.y + 11, cellWidth, (cellWidth * p.height) / p.width);
      const end = layout.page.paragraph(x, layout.y + 11 + cellHeight + 11, cellWidth, p.t.caption, { size: 8, colour: [51, 64, 77], leading: 10 });
      bottom = Math.max(bottom, end);
    });
    layout.y = bottom + 12;
  }
}

/** Columns as wide as their widest text plus room to spare, scaled to the page width. */
export function fittedWidths(layout: Layout, header: string[], rows: string[][], size: number): number[] {
  const widths = header.map((h, i) => Math.max(textWidth(h, size, 'bold'), ...rows.map((r) => textWidth(r[i]!, size))) + 12);
  const scale = layout.width / widths.reduce((a, b) => a + b, 0);
  return widths.map((w) => w * scale);
}

/** The tumour section: summary, lesion table, key slices with their RANO lines, lesion-wise figures with ground truth. */
function drawTumour(layout: Layout, report: MetricsReport): void {
  layout.newPage();
  layout.heading('Tumour');
  layout.keyValues(tumourRows(report), 130);
  const lesions = lesionRows(report);
  layout.y += 6;
  if (lesions.length) layout.table(LESION_HEADER, lesions, fittedWidths(layout, LESION_HEADER, lesions, 7), 7);
  else layout.y = layout.page.paragraph(MARGIN, layout.y + 4, layout.width, 'No lesion of at least the minimum volume was predicted.', { size: 9 });
  if (report.tumour.lesionWise) {
    layout.heading('Lesion-wise metrics (BraTS 2023)');
    const rows = lesionWiseRows(report);
    layout.table(LESION_WISE_HEADER, rows, fittedWidths(layout, LESION_WISE_HEADER, rows, 8), 8);
    layout.y = layout.page.paragraph(MARGIN, layout.y + 12, layout.width, lesionWiseText(report), { size: 8, colour: GREY }) + 2;
  }
  const keys = report.tumour.keySlices.map((k) => k.thumbnail);
  layout.heading('Key slices of the measurable lesions');
  if (!keys.length) {
    layout.y = layout.page.paragraph(MARGIN, layout.y + 4, layout.width, 'No measurable lesion: there is no RANO key slice to show.', { size: 9 });
    return;
  }
  let x = MARGIN;
  for (const [name, colour] of [['RANO long diameter', RANO_LINE_COLOURS.long], ['perpendicular diameter', RANO_LINE_COLOURS.perp]] as const) {
    layout.page.rect(x, layout.y - 7, 8, 8, { fill: hexToRgb(colour) });
    layout.page.text(x + 12, layout.y, name, { size: 8.5, colour: [51, 64, 77] });
    x += 12 + textWidth(name, 8.5) + 16;
  }
  layout.y = layout.page.paragraph(MARGIN, layout.y + 14, layout.width, THUMBNAIL_VIEW, { size: 8.5, colour: GREY }) + 4;
  drawThumbnails(layout, report, keys);
}

export function renderPdf(report: MetricsReport): Uint8Array {
  const doc = new PdfDocument(`Segmentation report: ${report.study}`);
  const layout = new Layout(doc);
  const page = layout.page;
  page.rect(0, 0, A4[0], 6, { fill: NAVY });
  layout.y = MARGIN + 8;
  page.text(MARGIN, layout.y, `Segmentation report: ${report.study}`, { size: 18, font: 'bold', colour: NAVY });
  layout.y += 16;
  page.text(MARGIN, layout.y, `SAM2-UNet Workstation · ${report.createdAt} · ${report.settings.preset} on ${report.settings.device}`, { size: 9, colour: GREY });
  layout.y += 8;
  page.line(MARGIN, layout.y, MARGIN + layout.width, layout.y, NAVY, 1.5);

  if ((report.settings.notes ?? []).length) {
    layout.heading('Notes');
    for (const note of (report.settings.notes ?? [])) {
      layout.need(24);
      layout.y = layout.page.paragraph(MARGIN, layout.y, layout.width, `• ${note}`, { size: 9, colour: [122, 82, 0] }) + 3;
    }
  }

  layout.heading('Prediction');
  {
    const header = predictionHeader(report);
    const first = header.length === 3 ? 0.52 : 0.7;
    const rest = (1 - first) / (header.length - 1);
    layout.table(header, predictionRows(report), header.map((_, i) => layout.width * (i === 0 ? first : rest)));
  }

  layout.heading('Volume metrics');
  if (report.perVolume) {
    // columns as wide as their widest text (bold header included) plus room to spare: viewers that
    // substitute Helvetica (Chromium's PDFium) draw slightly wider glyphs
    const rows = summaryRows(report);
    const size = 8;
    const widths = SUMMARY_HEADER.map((h, i) => Math.max(textWidth(h, size, 'bold'), ...rows.map((r) => textWidth(r[i]!, size))) + 14);
    const scale = layout.width / widths.reduce((a, b) => a + b, 0);
    layout.table(SUMMARY_HEADER, rows, widths.map((w) => w * scale), size);
  } else {
    layout.y = layout.page.paragraph(MARGIN, layout.y + 4, layout.width, 'No ground truth: overlap and distance metrics are not available.', { size: 9 });
  }

  const chart = reportChart(report);
  layout.heading(chart?.title ?? 'Per-slice chart');
  if (chart) drawChart(layout, report, chart);
  else layout.y = layout.page.paragraph(MARGIN, layout.y + 4, layout.width, 'Nothing was predicted: there is no per-slice chart.', { size: 9 });

  layout.heading('Model and settings');
  layout.keyValues(settingsRows(report), 130);
  const post = postprocessingRows(report);
  if (post.length) {
    layout.heading('Post-processing');
    layout.keyValues(post, 130);
  }
  layout.heading('Timings');
  layout.keyValues(timingRows(report), 130);

  if (report.thumbnails.length) {
    layout.newPage();
    layout.heading('Slices');
    drawLegend(layout, report, 'Filled area: region; solid line: its outline.');
    layout.y = layout.page.paragraph(MARGIN, layout.y + 4, layout.width, THUMBNAIL_VIEW, { size: 8.5, colour: GREY });
    layout.y += 4;
    drawThumbnails(layout, report);
  }

  drawTumour(layout, report);

  layout.heading('Definitions');
  for (const note of FOOTNOTES) {
    layout.need(30);
    layout.y = layout.page.paragraph(MARGIN, layout.y, layout.width, note, { size: 8.5, colour: GREY }) + 3;
  }

  doc.pages.forEach((p, i) => {
    p.text(MARGIN, A4[1] - 22, `SAM2-UNet Workstation · ${report.study}`, { size: 7.5, colour: GREY });
    p.text(A4[0] - MARGIN, A4[1] - 22, `Page ${i + 1} of ${doc.pages.length}`, { size: 7.5, colour: GREY, align: 'right' });
  });
  return doc.toBytes();
}
