/** report.html: one self-contained file (inline CSS, inline SVG, PNG data URIs, no scripts). */
import { ABSENT_TEXT, RANO_LINE_COLOURS, regionColourHex, regionPresent, sliceNumber } from '../conventions.ts';
import { regionsFor } from '../metrics/regions.ts';
import { reportChart, tickText, type ChartModel } from './chart.ts';
import {
  FOOTNOTES,
  SUMMARY_HEADER,
  formatMl,
  formatScore,
  hex,
  LESION_HEADER,
  LESION_WISE_HEADER,
  lesionRows,
  lesionWiseRows,
  lesionWiseText,
  tumourRows,
  postprocessingRows,
  predictionHeader,
  predictionRows,
  settingsRows,
  summaryRows,
  timingRows,
} from './format.ts';
import { encodePng, pngDataUri } from './png.ts';
import { THUMBNAIL_VIEW, thumbnailRGB } from './thumbnail.ts';
import type { MetricsReport } from './types.ts';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const CSS = `
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d2329;font:14px/1.45 "Helvetica Neue",Helvetica,Arial,sans-serif}
main{max-width:1000px;margin:0 auto;padding:28px 32px 40px;background:#fff;min-height:100vh}
header{border-bottom:3px solid #1f3b57;padding-bottom:12px;margin-bottom:20px}
h1{margin:0;font-size:24px;color:#1f3b57;font-weight:600}
header p{margin:4px 0 0;color:#5b6670}
h2{font-size:16px;color:#1f3b57;margin:26px 0 10px;padding-bottom:4px;border-bottom:1px solid #d9dee3}
table{border-collapse:collapse;width:100%}
th,td{padding:5px 8px;text-align:right;border-bottom:1px solid #e6e9ec;font-variant-numeric:tabular-nums}
th{background:#eef1f4;color:#33404d;font-weight:600;font-size:12.5px}
td:first-child,th:first-child{text-align:left}
.kv td:first-child{color:#5b6670;width:32%}
.kv td{text-align:left}
.cols{display:grid;grid-template-columns:3fr 2fr;gap:28px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.thumbs{display:grid;grid-template-columns:repeat(2,1fr);gap:18px}
figure{margin:0;border:1px solid #e1e5e9;border-radius:4px;padding:8px;background:#fafbfc}
figure img{width:100%;height:auto;image-rendering:pixelated;display:block;background:#000}
figcaption{font-size:12.5px;color:#33404d;margin-top:6px}
.panels{display:flex;justify-content:space-between;font-size:11px;color:#5b6670;margin-bottom:4px}
.panels span{width:50%;text-align:center}
.legend{margin:6px 0 0;font-size:12.5px;color:#33404d}
.legend span{margin-right:16px}
.legend .rule,.legend .caption{color:#5b6670}
.notice{border:1px solid #e0b252;background:#fff8e6;border-radius:4px;padding:8px 12px;margin:14px 0 0}
.notice h2{border:0;margin:0 0 4px;padding:0;color:#7a5200}
.notice ul{margin:0;padding-left:18px}
table.prediction td:first-child{width:46%}
.notes{font-size:12px;color:#5b6670}
.notes p{margin:4px 0}
details{margin-top:8px}
summary{cursor:pointer;color:#1f3b57}
svg text{font-family:"Helvetica Neue",Helvetica,Arial,sans-serif}
@media print{body{background:#fff}main{padding:0}}
`;

function table(header: string[], rows: string[][], className = ''): string {
  const head = `<tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table${className ? ` class="${className}"` : ''}><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function keyValueTable(rows: [string, string][]): string {
  return `<table class="kv"><tbody>${rows.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join('')}</tbody></table>`;
}

/**
 * The per-slice chart as inline SVG, on the same dark plot area as the app's chart so the region
 * colours read the same: one <polyline class="series"> per run of consecutive slices (a gap where
 * the region is absent), a <circle class="series"> for a run of one slice. `data-slices` holds
 * the run's first and last slice number.
 */
export function chartSvg(chart: ChartModel, width = 936, height = 300): string {
  const left = 48;
  const right = 16;
  const top = 14;
  const bottom = 40;
  const w = width - left - right;
  const h = height - top - bottom;
  const sx = (x: number): number => left + ((x - chart.xMin) / Math.max(1, chart.xMax - chart.xMin)) * w;
  const sy = (y: number): number => top + (1 - y / chart.yMax) * h;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="dice-chart" data-kind="${chart.kind}" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${escapeHtml(chart.title)}">`);
  parts.push(`<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="#1b2027" stroke="#45515f"/>`);
  for (const y of chart.yTicks) {
    parts.push(`<line x1="${left}" x2="${left + w}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#2b3440"/>`);
    parts.push(`<text class="y-tick" x="${left - 6}" y="${(sy(y) + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#5b6670">${tickText(chart, y)}</text>`);
  }
  for (const x of chart.xTicks) {
    parts.push(`<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${top + h}" y2="${top + h + 4}" stroke="#8a949c"/>`);
    parts.push(`<text class="x-tick" x="${sx(x).toFixed(1)}" y="${top + h + 16}" font-size="11" text-anchor="middle" fill="#5b6670">${x}</text>`);
  }
  parts.push(`<text x="${left + w / 2}" y="${height - 4}" font-size="12" text-anchor="middle" fill="#33404d">Axial slice (1 to ${chart.xMax})</text>`);
  parts.push(`<text transform="translate(12 ${top + h / 2}) rotate(-90)" font-size="12" text-anchor="middle" fill="#33404d">${escapeHtml(chart.yLabel)}</text>`);
  for (const s of chart.series) {
    const colour = hex(s.colour);
    for (const run of s.runs) {
      const span = `data-region="${escapeHtml(s.region)}" data-slices="${run[0]![0]}-${run.at(-1)![0]}"`;
      if (run.length === 1) {
        parts.push(`<circle class="series" ${span} cx="${sx(run[0]![0]).toFixed(1)}" cy="${sy(run[0]![1]).toFixed(1)}" r="2.5" fill="${colour}"/>`);
      } else {
        const points = run.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
        parts.push(`<polyline class="series" ${span} points="${points}" fill="none" stroke="${colour}" stroke-width="1.6" stroke-linejoin="round"/>`);
      }
    }
  }
  parts.push('</svg>');
  return parts.join('\n');
}

function legendHtml(report: MetricsReport, extra: string): string {
  const keys = report.settings.regions
    .map((r, i) => {
      const colour = regionColourHex(r, report.settings.labelColours, i);
      return `<span class="key" data-region="${escapeHtml(r)}" data-colour="${colour}"><i class="swatch" style="background:${colour}"></i>${escapeHtml(r)}</span>`;
    })
    .join('');
  return `<p class="legend">${keys}${extra ? `<span class="rule">${escapeHtml(extra)}</span>` : ''}</p>`;
}

/** One row per slice: each region's Dice (or predicted ml without ground truth), "absent" where it is absent. */
function sliceTable(report: MetricsReport): { header: string[]; rows: string[][] } {
  const regions = report.settings.regions;
  if (report.perVolume) {
    const rows = [...report.perSlice]
      .sort((a, b) => a.slice - b.slice)
      .map((e) => [String(sliceNumber(e.slice)), ...regions.map((r) => (e.metrics[r] && regionPresent(e.metrics[r]) ? formatScore(e.metrics[r].dice) : ABSENT_TEXT))]);
    return { header: ['Slice', ...regions.map((r) => `${r} Dice`)], rows };
  }
  const rows = report.sliceVolumes.map((e) => [String(sliceNumber(e.slice)), ...regions.map((r) => ((e.ml[r] ?? 0) > 0 ? formatMl(e.ml[r]) : ABSENT_TEXT))]);
  return { header: ['Slice', ...regions.map((r) => `${r} (ml)`)], rows };
}

export function renderHtml(report: MetricsReport): string {
  const regions = regionsFor(report.regionKind).filter((r) => report.settings.regions.includes(r.name));
  const chart = reportChart(report);
  const thumbs = report.thumbnails
    .map((t) => {
      const { rgb, width, height } = thumbnailRGB(t, regions, report.settings.labelColours);
      const panels = t.gt ? '<div class="panels"><span>Ground truth</span><span>Prediction</span></div>' : '<div class="panels"><span>Prediction</span></div>';
      return `<figure data-slice="${sliceNumber(t.slice)}">${panels}<img alt="${escapeHtml(t.caption)}" width="${width}" height="${height}" src="${pngDataUri(encodePng(rgb, width, height))}"><figcaption>${escapeHtml(t.caption)}</figcaption></figure>`;
    })
    .join('\n');
  const slices = sliceTable(report);
  const keySlices = report.tumour.keySlices
    .map(({ lesion, thumbnail: t }) => {
      const { rgb, width, height } = thumbnailRGB(t, regions, report.settings.labelColours);
      return `<figure data-lesion="${lesion + 1}" data-slice="${sliceNumber(t.slice)}"><img alt="${escapeHtml(t.caption)}" width="${width}" height="${height}" src="${pngDataUri(encodePng(rgb, width, height))}"><figcaption>${escapeHtml(t.caption)}</figcaption></figure>`;
    })
    .join('\n');
  const lines = `<span><i class="swatch" style="background:${RANO_LINE_COLOURS.long}"></i>RANO long diameter</span><span><i class="swatch" style="background:${RANO_LINE_COLOURS.perp}"></i>perpendicular diameter</span>`;
  const tumour = `<section data-testid="report-tumour">
<h2>Tumour</h2>
${keyValueTable(tumourRows(report))}
${report.tumour.description.lesions.length ? table(LESION_HEADER, lesionRows(report), 'lesions') : '<p>No lesion of at least the minimum volume was predicted.</p>'}
${keySlices ? `<p class="legend">${lines}<span class="caption">Key axial slice of each measurable lesion. ${escapeHtml(THUMBNAIL_VIEW)}</span></p>\n<div class="thumbs">\n${keySlices}\n</div>` : '<p>No measurable lesion: there is no RANO key slice to show.</p>'}
${report.tumour.lesionWise ? `<h2>Lesion-wise metrics (BraTS 2023)</h2>\n${table(LESION_WISE_HEADER, lesionWiseRows(report), 'lesion-wise')}\n<p class="notes">${escapeHtml(lesionWiseText(report))}</p>` : ''}
</section>`;
  const notes = (report.settings.notes ?? []).length
    ? `<section class="notice" data-testid="report-notes"><h2>Notes</h2><ul>${(report.settings.notes ?? []).map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul></section>`
    : '';
  const post = postprocessingRows(report);
  const chartSection = chart
    ? `${chartSvg(chart)}\n${legendHtml(report, chart.rule)}`
    : '<p>Nothing was predicted: there is no per-slice chart.</p>';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Segmentation report – ${escapeHtml(report.study)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>Segmentation report: ${escapeHtml(report.study)}</h1>
<p>SAM2-UNet Workstation · ${escapeHtml(report.createdAt)} · ${escapeHtml(report.settings.preset)} on ${escapeHtml(report.settings.device)}</p>
</header>
${notes}
<section>
<h2>Prediction</h2>
${table(predictionHeader(report), predictionRows(report), 'prediction')}
</section>
<section>
<h2>Volume metrics</h2>
${report.perVolume ? table(SUMMARY_HEADER, summaryRows(report), 'summary') : '<p>No ground truth: overlap and distance metrics are not available.</p>'}
</section>
${tumour}
<section>
<h2>${escapeHtml(chart?.title ?? 'Per-slice chart')}</h2>
${chartSection}
</section>
<section>
<h2>Slices</h2>
${legendHtml(report, `Filled area: region; solid line: its outline. ${THUMBNAIL_VIEW}`)}
<div class="thumbs">
${thumbs}
</div>
</section>
<div class="cols">
<section><h2>Model and settings</h2>${keyValueTable(settingsRows(report))}${post.length ? `<h2>Post-processing</h2>${keyValueTable(post)}` : ''}</section>
<section><h2>Timings</h2>${keyValueTable(timingRows(report))}</section>
</div>
<section class="notes">
<h2>Definitions</h2>
${FOOTNOTES.map((n) => `<p>${escapeHtml(n)}</p>`).join('\n')}
<details><summary>Per-slice ${report.perVolume ? 'Dice' : 'predicted volume'} (${slices.rows.length} slices)</summary>
${table(slices.header, slices.rows, 'slices')}
</details>
</section>
</main>
</body>
</html>
`;
}
