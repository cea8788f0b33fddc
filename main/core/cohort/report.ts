/**
 * cohort.html and cohort.pdf: the counts, Dice per region as box plots, predicted volume per
 * region as histograms, and the table of cases. Both are drawn from one chart model (like the
 * study report's chart.ts), on the study report's dark plot area and in its region colours, with
 * its page style (report/html.ts CSS) and PDF layout (report/pdf.ts Layout).
 */
import { DEFAULT_LABEL_COLOURS, hexToRgb, niceStep, regionColourHex, type LabelColours } from '../conventions.ts';
import { CSS, escapeHtml } from '../report/html.ts';
import { GREY, Layout, MARGIN, NAVY, fittedWidths } from '../report/pdf.ts';
import { A4, PdfDocument, type Rgb } from '../report/pdfwriter.ts';
import { formatMl, formatMm, formatScore } from '../report/format.ts';
import { renderCohortCsv, renderCohortJson, type CaseRow, type CohortSummary } from './summary.ts';
import { join, relative } from 'node:path';
import { writeFileAtomic } from '../util/fs.ts';

export interface BoxPlot {
  region: string;
  colour: string;
  values: number[];
  min: number;
  q1: number;
  median: number;
  q3: number;
  max: number;
  mean: number;
  /** whisker ends: the most extreme values within 1.5 IQR of the box */
  low: number;
  high: number;
}

export interface Histogram {
  region: string;
  colour: string;
  /** [lo, hi) per bin, the last one closed */
  bins: { lo: number; hi: number; count: number }[];
  n: number;
  maxCount: number;
}

/** Linear interpolation between order statistics (numpy's default percentile). */
export function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

export function boxPlot(region: string, colour: string, values: readonly number[]): BoxPlot {
  const sorted = [...values].sort((a, b) => a - b);
  const q1 = quantile(sorted, 0.25);
  const q3 = quantile(sorted, 0.75);
  const fence = 1.5 * (q3 - q1);
  const inside = sorted.filter((v) => v >= q1 - fence && v <= q3 + fence);
  return {
    region,
    colour,
    values: sorted,
    min: sorted[0]!,
    q1,
    median: quantile(sorted, 0.5),
    q3,
    max: sorted.at(-1)!,
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    low: inside[0] ?? sorted[0]!,
    high: inside.at(-1) ?? sorted.at(-1)!,
  };
}

/** Equal bins of a round width from 0 (volumes are ≥ 0), about `target` of them. */
export function histogram(region: string, colour: string, values: readonly number[], target = 8): Histogram {
  const top = Math.max(...values, 0);
  const width = top > 0 ? niceStep(top, target) : 1;
  const count = Math.max(1, Math.floor(top / width) + 1);
  const bins = Array.from({ length: count }, (_, i) => ({ lo: +(i * width).toPrecision(12), hi: +((i + 1) * width).toPrecision(12), count: 0 }));
  for (const v of values) bins[Math.min(count - 1, Math.floor(v / width))]!.count++;
  return { region, colour, bins, n: values.length, maxCount: Math.max(1, ...bins.map((b) => b.count)) };
}

export interface CohortCharts {
  dice: BoxPlot[];
  volume: Histogram[];
}

/** Dice box plots over the cases with ground truth, volume histograms over the segmented cases. */
export function cohortCharts(summary: CohortSummary, colours: LabelColours = DEFAULT_LABEL_COLOURS): CohortCharts {
  const segmented = summary.cases.filter((c) => c.status === 'done' || c.status === 'skipped');
  const dice: BoxPlot[] = [];
  const volume: Histogram[] = [];
  summary.regions.forEach((region, i) => {
    const colour = regionColourHex(region, colours, i);
    const scores = segmented.map((c) => c.metrics?.[region]?.dice).filter((v): v is number => typeof v === 'number');
    if (scores.length) dice.push(boxPlot(region, colour, scores));
    const volumes = segmented.map((c) => c.volumes_ml?.[region]).filter((v): v is number => typeof v === 'number');
    if (volumes.length) volume.push(histogram(region, colour, volumes));
  });
  return { dice, volume };
}

/** The table's columns and rows (HTML and PDF print the same). */
export function tableOf(summary: CohortSummary): { header: string[]; rows: CaseRow[]; cells: string[][] } {
  const header = [
    'Case',
    'Status',
    'Sequences',
    'GT',
    ...summary.regions.map((r) => `${r} ml`),
    ...summary.regions.map((r) => `${r} Dice`),
    ...summary.regions.map((r) => `${r} HD95`),
    ...summary.regions.map((r) => `${r} LW Dice`),
    'Time (s)',
  ];
  const cells = summary.cases.map((c) => [
    c.case,
    c.status,
    (c.sequences_used ?? c.sequences_found ?? []).join(', '),
    c.ground_truth === null ? '?' : c.ground_truth ? 'yes' : 'no',
    ...summary.regions.map((r) => (c.volumes_ml?.[r] === undefined ? '' : formatMl(c.volumes_ml[r]))),
    ...summary.regions.map((r) => formatMaybe(c.metrics?.[r]?.dice, formatScore)),
    ...summary.regions.map((r) => formatMaybe(c.metrics?.[r]?.hd95, formatMm)),
    ...summary.regions.map((r) => formatMaybe(c.lesion_wise?.[r]?.dice, formatScore)),
    c.seconds === null ? '' : c.seconds.toFixed(1),
  ]);
  return { header, rows: summary.cases, cells };
}

function formatMaybe(v: number | null | undefined, format: (v: number) => string): string {
  return v === null || v === undefined ? '' : format(v);
}

function countsText(summary: CohortSummary): string {
  const c = summary.counts;
  const parts = [`${summary.cases.length} studies`, `${c.done} segmented`, `${c.skipped} up to date (skipped)`, `${c.failed} failed`];
  if (c.pending) parts.push(`${c.pending} not run`);
  return parts.join(' · ');
}

function runText(summary: CohortSummary): string {
  const run = summary.run;
  if (!run) return 'Model: as recorded per case.';
  return `Model: ${run.model} (${run.checkpoint}, sha256 ${run.model_hash.slice(0, 12)}…), input ${run.size.join('×')}, channels ${run.channels.join(', ')}, regions ${run.regions}.`;
}

// ---------------------------------------------------------------------------------------------
// SVG

const PLOT_FILL = '#1b2027';
const PLOT_STROKE = '#45515f';
const GRID = '#2b3440';
const TEXT = '#5b6670';

function diceSvg(boxes: readonly BoxPlot[], width = 936, height = 280): string {
  const left = 48;
  const top = 14;
  const w = width - left - 16;
  const h = height - top - 40;
  const sy = (v: number) => top + (1 - v) * h;
  const slot = w / boxes.length;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" class="cohort-dice" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="Dice per region over the cohort">`];
  parts.push(`<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="${PLOT_FILL}" stroke="${PLOT_STROKE}"/>`);
  for (const t of [0, 0.2, 0.4, 0.6, 0.8, 1]) {
    parts.push(`<line x1="${left}" x2="${left + w}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="${GRID}"/>`);
    parts.push(`<text x="${left - 6}" y="${(sy(t) + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="${TEXT}">${t.toFixed(1)}</text>`);
  }
  parts.push(`<text transform="translate(12 ${top + h / 2}) rotate(-90)" font-size="12" text-anchor="middle" fill="#33404d">Dice</text>`);
  boxes.forEach((b, i) => {
    const cx = left + slot * (i + 0.5);
    const bw = Math.min(80, slot * 0.4);
    const y = (v: number) => sy(v).toFixed(1);
    parts.push(`<g class="box" data-region="${escapeHtml(b.region)}" data-n="${b.values.length}" data-median="${b.median}">`);
    parts.push(`<line x1="${cx}" x2="${cx}" y1="${y(b.high)}" y2="${y(b.q3)}" stroke="${b.colour}" stroke-width="1.5"/><line x1="${cx}" x2="${cx}" y1="${y(b.q1)}" y2="${y(b.low)}" stroke="${b.colour}" stroke-width="1.5"/>`);
    parts.push(`<line x1="${cx - bw / 4}" x2="${cx + bw / 4}" y1="${y(b.high)}" y2="${y(b.high)}" stroke="${b.colour}" stroke-width="1.5"/><line x1="${cx - bw / 4}" x2="${cx + bw / 4}" y1="${y(b.low)}" y2="${y(b.low)}" stroke="${b.colour}" stroke-width="1.5"/>`);
    parts.push(`<rect x="${cx - bw / 2}" y="${y(b.q3)}" width="${bw}" height="${Math.max(1, sy(b.q1) - sy(b.q3)).toFixed(1)}" fill="${b.colour}33" stroke="${b.colour}" stroke-width="1.5"/>`);
    parts.push(`<line x1="${cx - bw / 2}" x2="${cx + bw / 2}" y1="${y(b.median)}" y2="${y(b.median)}" stroke="#fff" stroke-width="2"/>`);
    // every case as a dot beside its box: a cohort of five is not a distribution
    b.values.forEach((v, k) => {
      const dx = cx + bw / 2 + 10 + ((k * 7) % 21);
      parts.push(`<circle class="case" cx="${dx.toFixed(1)}" cy="${y(v)}" r="2.6" fill="${b.colour}"/>`);
    });
    parts.push(`<text x="${cx}" y="${top + h + 16}" font-size="12" text-anchor="middle" fill="#33404d">${escapeHtml(b.region)} (n = ${b.values.length}, median ${b.median.toFixed(3)})</text>`);
    parts.push('</g>');
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Bin edges to label on the x axis: every k-th one from 0, so that at most `max` show and the labels never crowd. */
function labelledEdges(hist: Histogram, max: number): number[] {
  const edges = [...hist.bins.map((b) => b.lo), hist.bins.at(-1)!.hi];
  const every = Math.ceil((edges.length - 1) / (max - 1));
  return edges.filter((_, i) => i % every === 0);
}

function histogramSvg(hist: Histogram, width = 300, height = 200): string {
  const left = 34;
  const top = 22;
  const w = width - left - 10;
  const h = height - top - 36;
  const lo = hist.bins[0]!.lo;
  const hi = hist.bins.at(-1)!.hi;
  const sx = (v: number) => left + ((v - lo) / (hi - lo)) * w;
  const sy = (c: number) => top + (1 - c / hist.maxCount) * h;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" class="cohort-volume" data-region="${escapeHtml(hist.region)}" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${escapeHtml(hist.region)} predicted volume">`];
  parts.push(`<text x="${left}" y="14" font-size="12" fill="#33404d">${escapeHtml(hist.region)} predicted volume (ml), n = ${hist.n}</text>`);
  parts.push(`<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="${PLOT_FILL}" stroke="${PLOT_STROKE}"/>`);
  const countStep = Math.max(1, Math.ceil(hist.maxCount / 4));
  for (let c = 0; c <= hist.maxCount; c += countStep) {
    parts.push(`<line x1="${left}" x2="${left + w}" y1="${sy(c).toFixed(1)}" y2="${sy(c).toFixed(1)}" stroke="${GRID}"/>`);
    parts.push(`<text x="${left - 5}" y="${(sy(c) + 4).toFixed(1)}" font-size="10" text-anchor="end" fill="${TEXT}">${c}</text>`);
  }
  for (const b of hist.bins) {
    if (b.count) parts.push(`<rect class="bin" data-count="${b.count}" x="${(sx(b.lo) + 1).toFixed(1)}" y="${sy(b.count).toFixed(1)}" width="${Math.max(1, sx(b.hi) - sx(b.lo) - 2).toFixed(1)}" height="${(sy(0) - sy(b.count)).toFixed(1)}" fill="${hist.colour}"/>`);
  }
  for (const edge of labelledEdges(hist, 5)) parts.push(`<text x="${sx(edge).toFixed(1)}" y="${top + h + 14}" font-size="10" text-anchor="middle" fill="${TEXT}">${+edge.toPrecision(6)}</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// HTML

const COHORT_CSS = `
.counts{font-size:15px;margin:0 0 8px}
.hists{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
.wide{overflow-x:auto}
table.cases td,table.cases th{font-size:12px;padding:4px 5px}
.status-failed td{background:#fdecea}
.status-pending td{color:#8a949c}
td.error{text-align:left;color:#a1260d;font-size:12px}
`;

/** `linkBase`: the cohort's output folder relative to where the HTML is written (links to each case's report). */
export function renderCohortHtml(summary: CohortSummary, linkBase = '.'): string {
  const charts = cohortCharts(summary);
  const { header, rows, cells } = tableOf(summary);
  const base = linkBase === '.' ? '' : `${linkBase.split(/[\\/]/).map(encodeURIComponent).join('/')}/`;
  const body = rows
    .map((row, i) => {
      const tds = cells[i]!.map((cell, k) => {
        if (k === 0 && row.outputs) return `<td><a href="${escapeHtml(`${base}${encodeURIComponent(row.outputs)}/report.html`)}">${escapeHtml(cell)}</a></td>`;
        return `<td>${escapeHtml(cell)}</td>`;
      });
      const error = row.error ? `<tr class="status-failed"><td></td><td class="error" colspan="${header.length - 1}">${escapeHtml(row.error)}</td></tr>` : '';
      return `<tr class="status-${row.status}" data-case="${escapeHtml(row.case)}" data-status="${row.status}">${tds.join('')}</tr>${error}`;
    })
    .join('\n');
  const dice = charts.dice.length ? diceSvg(charts.dice) : '<p>No case with ground truth was segmented: there is no Dice to show.</p>';
  const volumes = charts.volume.length ? `<div class="hists">${charts.volume.map((h) => `<figure>${histogramSvg(h)}</figure>`).join('\n')}</div>` : '<p>No case was segmented yet.</p>';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cohort summary – ${escapeHtml(summary.cohort)}</title>
<style>${CSS}${COHORT_CSS}</style>
</head>
<body>
<main>
<header>
<h1>Cohort summary</h1>
<p>${escapeHtml(summary.cohort)} → ${escapeHtml(summary.out)} · SAM2-UNet Workstation · ${escapeHtml(summary.created_at)}</p>
</header>
<p class="counts" data-testid="cohort-counts">${escapeHtml(countsText(summary))}</p>
<p class="notes">${escapeHtml(runText(summary))}</p>
<section>
<h2>Dice per region (whole volume)</h2>
${dice}
<p class="notes">Box: quartiles; white line: median; whiskers: the most extreme cases within 1.5 × IQR; dots: every case.</p>
</section>
<section>
<h2>Predicted volume per region</h2>
${volumes}
</section>
<section>
<h2>Cases</h2>
<div class="wide"><table class="cases"><thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>
${body}
</tbody></table></div>
<p class="notes">LW: BraTS 2023 lesion-wise. HD95 in mm. Each case's outputs are in its folder; the case name links to its report.</p>
</section>
</main>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// PDF

function drawDice(layout: Layout, boxes: readonly BoxPlot[]): void {
  const height = 190;
  layout.need(height + 20);
  const page = layout.page;
  const left = MARGIN + 30;
  const top = layout.y + 8;
  const w = layout.width - 36;
  const h = height - 40;
  const sy = (v: number) => top + (1 - v) * h;
  page.rect(left, top, w, h, { fill: [27, 32, 39], stroke: [69, 81, 95] });
  for (const t of [0, 0.2, 0.4, 0.6, 0.8, 1]) {
    page.line(left, sy(t), left + w, sy(t), [43, 52, 64], 0.5);
    page.text(left - 5, sy(t) + 3, t.toFixed(1), { size: 8, colour: GREY, align: 'right' });
  }
  const slot = w / boxes.length;
  boxes.forEach((b, i) => {
    const colour = hexToRgb(b.colour) as Rgb;
    const cx = left + slot * (i + 0.5);
    const bw = Math.min(50, slot * 0.4);
    page.line(cx, sy(b.high), cx, sy(b.q3), colour, 1.2);
    page.line(cx, sy(b.q1), cx, sy(b.low), colour, 1.2);
    page.line(cx - bw / 4, sy(b.high), cx + bw / 4, sy(b.high), colour, 1.2);
    page.line(cx - bw / 4, sy(b.low), cx + bw / 4, sy(b.low), colour, 1.2);
    page.rect(cx - bw / 2, sy(b.q3), bw, Math.max(0.8, sy(b.q1) - sy(b.q3)), { stroke: colour, width: 1.2 });
    page.line(cx - bw / 2, sy(b.median), cx + bw / 2, sy(b.median), [255, 255, 255], 1.6);
    b.values.forEach((v, k) => page.circle(cx + bw / 2 + 8 + ((k * 5) % 15), sy(v), 1.8, colour));
    page.text(cx, top + h + 12, `${b.region} (n = ${b.values.length}, median ${b.median.toFixed(3)})`, { size: 8.5, colour: [51, 64, 77], align: 'center' });
  });
  layout.y = top + h + 26;
}

function drawHistograms(layout: Layout, hists: readonly Histogram[]): void {
  const gap = 12;
  const panel = (layout.width - gap * 2) / 3;
  const height = 130;
  for (let i = 0; i < hists.length; i += 3) {
    layout.need(height + 10);
    const top = layout.y;
    hists.slice(i, i + 3).forEach((hist, j) => {
      const page = layout.page;
      const left = MARGIN + j * (panel + gap) + 22;
      const w = panel - 26;
      const ptop = top + 16;
      const h = height - 40;
      const lo = hist.bins[0]!.lo;
      const hi = hist.bins.at(-1)!.hi;
      const sx = (v: number) => left + ((v - lo) / (hi - lo)) * w;
      const sy = (c: number) => ptop + (1 - c / hist.maxCount) * h;
      page.text(left - 22, top + 8, `${hist.region} predicted volume (ml), n = ${hist.n}`, { size: 8, colour: [51, 64, 77] });
      page.rect(left, ptop, w, h, { fill: [27, 32, 39], stroke: [69, 81, 95] });
      const countStep = Math.max(1, Math.ceil(hist.maxCount / 4));
      for (let c = 0; c <= hist.maxCount; c += countStep) page.text(left - 4, sy(c) + 3, String(c), { size: 7, colour: GREY, align: 'right' });
      const colour = hexToRgb(hist.colour) as Rgb;
      for (const b of hist.bins) if (b.count) page.rect(sx(b.lo) + 0.5, sy(b.count), Math.max(0.8, sx(b.hi) - sx(b.lo) - 1), sy(0) - sy(b.count), { fill: colour });
      for (const edge of labelledEdges(hist, 4)) page.text(sx(edge), ptop + h + 10, String(+edge.toPrecision(6)), { size: 7, colour: GREY, align: 'center' });
    });
    layout.y = top + height;
  }
}

export function renderCohortPdf(summary: CohortSummary): Uint8Array {
  const doc = new PdfDocument(`Cohort summary: ${summary.cohort}`);
  const layout = new Layout(doc);
  layout.page.rect(0, 0, A4[0], 6, { fill: NAVY });
  layout.y = MARGIN + 8;
  layout.page.text(MARGIN, layout.y, 'Cohort summary', { size: 18, font: 'bold', colour: NAVY });
  layout.y += 16;
  layout.y = layout.page.paragraph(MARGIN, layout.y, layout.width, `${summary.cohort} -> ${summary.out} · ${summary.created_at}`, { size: 9, colour: GREY });
  layout.page.line(MARGIN, layout.y, MARGIN + layout.width, layout.y, NAVY, 1.5);
  layout.y += 16;
  layout.y = layout.page.paragraph(MARGIN, layout.y, layout.width, countsText(summary), { size: 11, font: 'bold' });
  layout.y = layout.page.paragraph(MARGIN, layout.y, layout.width, runText(summary), { size: 8.5, colour: GREY });

  const charts = cohortCharts(summary);
  layout.heading('Dice per region (whole volume)');
  if (charts.dice.length) drawDice(layout, charts.dice);
  else layout.y = layout.page.paragraph(MARGIN, layout.y + 4, layout.width, 'No case with ground truth was segmented: there is no Dice to show.', { size: 9 });
  layout.heading('Predicted volume per region');
  if (charts.volume.length) drawHistograms(layout, charts.volume);
  else layout.y = layout.page.paragraph(MARGIN, layout.y + 4, layout.width, 'No case was segmented yet.', { size: 9 });

  layout.newPage();
  layout.heading('Cases');
  const { header, cells } = tableOf(summary);
  // the PDF's table leaves out the lesion-wise and HD95 columns of a wide cohort: the CSV has every figure
  const keep = header.map((_, i) => i).filter((i) => summary.regions.length <= 1 || !/HD95|LW Dice/.test(header[i]!));
  const head = keep.map((i) => header[i]!);
  const body = cells.map((row) => keep.map((i) => row[i]!));
  layout.table(head, body, fittedWidths(layout, head, body, 7), 7);
  const failed = summary.cases.filter((c) => c.error);
  if (failed.length) {
    layout.heading('Failures');
    for (const c of failed) {
      layout.need(24);
      layout.y = layout.page.paragraph(MARGIN, layout.y, layout.width, `${c.case}: ${c.error}`, { size: 8.5, colour: [161, 38, 13] }) + 2;
    }
  }
  doc.pages.forEach((p, i) => {
    p.text(MARGIN, A4[1] - 22, 'SAM2-UNet Workstation · cohort summary', { size: 7.5, colour: GREY });
    p.text(A4[0] - MARGIN, A4[1] - 22, `Page ${i + 1} of ${doc.pages.length}`, { size: 7.5, colour: GREY, align: 'right' });
  });
  return doc.toBytes();
}

export interface CohortFiles {
  json: string;
  csv: string;
  html: string;
  pdf: string;
}

/** Writes cohort.json, cohort.csv, cohort.html and cohort.pdf into `dir`, each atomically. */
export async function writeCohortSummary(dir: string, summary: CohortSummary): Promise<CohortFiles> {
  const files: CohortFiles = { json: join(dir, 'cohort.json'), csv: join(dir, 'cohort.csv'), html: join(dir, 'cohort.html'), pdf: join(dir, 'cohort.pdf') };
  // links from the summary to each case's report are relative to where the summary is written
  const linkBase = relative(dir, summary.out) || '.';
  await Promise.all([
    writeFileAtomic(files.json, renderCohortJson(summary)),
    writeFileAtomic(files.csv, renderCohortCsv(summary)),
    writeFileAtomic(files.html, renderCohortHtml(summary, linkBase)),
    writeFileAtomic(files.pdf, renderCohortPdf(summary)),
  ]);
  return files;
}
