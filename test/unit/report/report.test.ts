import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Volume } from '../../../main/core/io/volume.ts';
import { evaluateSlices, evaluateVolume, regionsFor, summarise } from '../../../main/core/metrics/index.ts';
import { connectedComponents } from '../../../main/core/metrics/components.ts';
import {
  CSV_COLUMNS,
  buildReport,
  encodePng,
  renderCsv,
  renderHtml,
  renderPdf,
  writeReports,
  type MetricsReport,
} from '../../../main/core/report/index.ts';
import { SUMMARY_HEADER, summaryRows } from '../../../main/core/report/format.ts';
import { pdfPageTexts } from './pdftext.ts';

/** A small synthetic study: a 64×64×24 "head" with a BraTS-like tumour and an imperfect prediction. */
function syntheticStudy(): { image: Volume; gt: Uint8Array; pred: Uint8Array } {
  const dims: [number, number, number] = [64, 64, 24];
  const n = dims[0] * dims[1] * dims[2];
  const data = new Int16Array(n);
  const gt = new Uint8Array(n);
  const pred = new Uint8Array(n);
  for (let z = 0; z < dims[2]; z++)
    for (let y = 0; y < dims[1]; y++)
      for (let x = 0; x < dims[0]; x++) {
        const i = (z * dims[1] + y) * dims[0] + x;
        const head = ((x - 32) / 28) ** 2 + ((y - 32) / 30) ** 2 + ((z - 12) / 14) ** 2;
        if (head < 1) data[i] = 300 + ((x * 7 + y * 3 + z) % 50);
        const t = Math.hypot(x - 38, y - 30, (z - 12) * 1.5);
        if (t < 4) gt[i] = 4;
        else if (t < 6) gt[i] = 1;
        else if (t < 10) gt[i] = 2;
        const p = Math.hypot(x - 39, y - 31, (z - 12) * 1.5);
        if (p < 3.5) pred[i] = 4;
        else if (p < 6) pred[i] = 1;
        else if (p < 9 + (z % 3)) pred[i] = 2;
      }
  const image = new Volume({
    geometry: { dims, spacing: [1, 1, 2], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data,
    meta: { id: 'synthetic', description: 'synthetic', modality: 'MR', sources: [] },
  });
  return { image, gt, pred };
}

function syntheticReport(): MetricsReport {
  const { image, gt, pred } = syntheticStudy();
  return buildReport({
    study: 'Synthetic (case <A&B>)',
    settings: { checkpoint: 'models/demo/demo.safetensors', preset: 'hiera_tiny', device: 'cpu', inputSize: 352, threshold: 0.5 },
    regionKind: 'brats',
    image,
    pred,
    gt,
    timings: { load: 12.5, inference: 1234, total: 1500 },
    createdAt: new Date('2026-01-02T03:04:05Z'),
  });
}

describe('report content', () => {
  const report = syntheticReport();

  it('holds per-slice and per-volume metrics equal to the metrics module', () => {
    const { gt, pred } = syntheticStudy();
    const regions = regionsFor('brats');
    const volume = evaluateVolume(pred, gt, [64, 64, 24], [1, 1, 2], regions);
    expect(report.perVolume).toEqual(volume);
    const slices = evaluateSlices(pred, gt, [64, 64, 24], [1, 1, 2], regions);
    expect(report.perSlice.map((e) => e.metrics)).toEqual(slices);
    expect(report.summary).toEqual(summarise(slices, regions));
    expect(report.thumbnails.length).toBeGreaterThanOrEqual(3);
    expect(report.thumbnails[0]!.gt).toBeDefined();
  });

  it('writes a CSV with one row per slice and region, one per volume and region, one per label', () => {
    const lines = renderCsv(report).trimEnd().split('\n');
    expect(lines[0]).toBe(CSV_COLUMNS.join(','));
    const tumourRows = report.tumour.description.lesions.length + 1 + Object.keys(report.tumour.lesionWise!.regions).length;
    expect(lines.length).toBe(1 + 24 * 3 + 3 + 3 + tumourRows);
    const col = (name: (typeof CSV_COLUMNS)[number]) => CSV_COLUMNS.indexOf(name);
    const wt = lines.find((l) => l.startsWith('volume,,,WT,'))!.split(',');
    expect(Number(wt[col('dice')])).toBe(report.perVolume!.WT!.dice);
    expect(Number(wt[col('hd95')])).toBe(report.perVolume!.WT!.hd95);
    // slice numbers are 1-based, the index 0-based; absent regions have no scores
    const rows = lines.slice(1).map((l) => l.split(','));
    for (const row of rows.filter((r) => r[0] === 'slice')) {
      const index = Number(row[col('index')]);
      expect(Number(row[col('slice')])).toBe(index + 1);
      const m = report.perSlice.find((e) => e.slice === index)!.metrics[row[col('region')]!]!;
      const absent = m.tp + m.fp + m.fn === 0;
      expect(row[col('status')]).toBe(absent ? 'absent' : 'scored');
      expect(row[col('dice')]).toBe(absent ? '' : String(m.dice));
    }
    expect(rows.filter((r) => r[col('status')] === 'absent').length).toBeGreaterThan(10);
    const ncr = rows.find((r) => r[0] === 'label' && r[col('region')] === 'NCR (1)')!;
    expect(Number(ncr[col('volume_ml')])).toBeCloseTo(report.prediction.labelVolumesMl.NCR!, 12);
    expect(Number(ncr[col('gt_volume_ml')])).toBeCloseTo(report.groundTruth!.labelVolumesMl.NCR!, 12);
  });

  it('summarises both label maps: volumes per label and region, slice range, lesions', () => {
    const { gt, pred } = syntheticStudy();
    const ml = (labels: Uint8Array, keep: (v: number) => boolean) => (labels.filter(keep).length * 2) / 1000;
    for (const [summary, labels] of [[report.prediction, pred], [report.groundTruth!, gt]] as const) {
      expect(summary.labelVolumesMl).toEqual({ NCR: ml(labels, (v) => v === 1), ED: ml(labels, (v) => v === 2), ET: ml(labels, (v) => v === 4) });
      expect(summary.regionVolumesMl.WT).toBeCloseTo(ml(labels, (v) => v > 0), 12);
      expect(summary.regionVolumesMl.TC).toBeCloseTo(ml(labels, (v) => v === 1 || v === 4), 12);
      expect(summary.regionVolumesMl.WT).toBeCloseTo(report.perVolume!.WT![summary === report.prediction ? 'volumeMl' : 'gtVolumeMl'], 12);
      const slices = [...new Set(Array.from(labels.keys()).filter((i) => labels[i]).map((i) => Math.floor(i / (64 * 64))))];
      expect(summary.sliceRange).toEqual([Math.min(...slices), Math.max(...slices)]);
      // lesions are the 26-connected whole-tumour components of at least 0.1 ml (describe.ts)
      const components = connectedComponents(labels, [64, 64, 24], 26).sizes.map((v) => v * 0.002);
      expect(summary.lesionVolumesMl).toEqual(components.filter((v) => v >= 0.1 - 1e-12).sort((a, b) => b - a));
    }
    // the prediction's edema cap at index 5 (cut off by an empty index 6) is a component of 0.074 ml: no lesion
    expect(connectedComponents(pred, [64, 64, 24], 26).sizes).toHaveLength(2);
    expect(report.prediction.lesionVolumesMl).toHaveLength(1);
    expect(report.groundTruth!.lesionVolumesMl).toHaveLength(1);
  });

  it('encodes PNGs that inflate back to the pixels', () => {
    const rgb = Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => (i * 37) % 256);
    const png = encodePng(rgb, 5, 3);
    expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const idatAt = Buffer.from(png).indexOf('IDAT');
    const length = new DataView(png.buffer).getUint32(idatAt - 4);
    const raw = inflateSync(png.subarray(idatAt + 4, idatAt + 4 + length));
    const rows = [0, 1, 2].map((y) => Array.from(raw.subarray(y * 16 + 1, y * 16 + 16)));
    expect(rows.flat()).toEqual(Array.from(rgb));
  });

  it('HTML is self-contained, escaped, and has the chart and the summary numbers', () => {
    const html = renderHtml(report);
    expect(html).not.toMatch(/<script|<link|src="http|url\(http/i);
    expect(html).toContain('Synthetic (case &lt;A&amp;B&gt;)');
    expect(html.match(/<polyline class="series"/g)!.length).toBeGreaterThanOrEqual(3);
    expect(html.match(/src="data:image\/png;base64,/g)!.length).toBe(report.thumbnails.length);
    for (const row of summaryRows(report)) for (const cell of row) expect(html).toContain(`<td>${cell}</td>`);
  });

  it('PDF parses, and its text carries the same numbers as the HTML', () => {
    const pdf = renderPdf(report);
    const text = Buffer.from(pdf).toString('latin1');
    expect(text.startsWith('%PDF-1.4')).toBe(true);
    expect(text.trimEnd().endsWith('%%EOF')).toBe(true);
    // the xref offsets point at the objects
    const xrefAt = Number(/startxref\n(\d+)/.exec(text)![1]);
    expect(text.slice(xrefAt, xrefAt + 4)).toBe('xref');
    const offsets = [...text.slice(xrefAt).matchAll(/^(\d{10}) 00000 n /gm)].map((m) => Number(m[1]));
    offsets.forEach((offset, i) => expect(text.slice(offset, offset + 12)).toMatch(new RegExp(`^${i + 1} 0 obj`)));
    const pages = pdfPageTexts(pdf);
    expect(pages.length).toBeGreaterThanOrEqual(2);
    const all = pages.flat();
    for (const h of SUMMARY_HEADER) expect(all).toContain(h);
    for (const row of summaryRows(report)) for (const cell of row) expect(all).toContain(cell);
    expect(all).toContain('Synthetic (case <A&B>)');
    expect(all.some((t) => t.startsWith('Worst WT: slice'))).toBe(true);
  });
});

describe('report without ground truth', () => {
  it('shows the prediction only and says metrics are unavailable', () => {
    const { image, pred } = syntheticStudy();
    const report = buildReport({
      study: 'No GT',
      settings: { checkpoint: 'c', preset: 'hiera_tiny', device: 'cpu', inputSize: 352, threshold: 0.5 },
      regionKind: 'brats',
      image,
      pred,
    });
    expect(report.perVolume).toBeUndefined();
    // the prediction's oedema radius is 9 + z mod 3 voxels: WT is largest at index 11, which is
    // slice 12 (slice numbers are 1-based); the pictures run in slice order and span the lesion
    const wt = report.thumbnails.find((t) => /largest predicted WT/.test(t.caption))!;
    expect(wt.slice).toBe(11);
    expect(wt.caption).toMatch(/^Slice 12: .*largest predicted WT \(\d+\.\d\d ml\)/);
    const slices = report.thumbnails.map((t) => t.slice);
    expect(slices).toEqual([...slices].sort((a, b) => a - b));
    expect(new Set(slices).size).toBe(slices.length);
    expect(report.thumbnails.some((t) => /a quarter of the predicted WT/.test(t.caption))).toBe(true);
    expect(report.thumbnails.length).toBeLessThanOrEqual(5);
    const html = renderHtml(report);
    expect(html).toContain('No ground truth');
    expect(html).toContain('<span>Prediction</span></div>');
    const texts = pdfPageTexts(renderPdf(report)).flat();
    expect(texts).toContain('No ground truth: overlap and distance metrics are not available.');
  });
});

describe('writeReports', () => {
  it('writes the four files atomically into a new folder', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sam2unet-report-')), 'out', 'nested');
    const files = await writeReports(dir, syntheticReport());
    for (const file of Object.values(files)) expect(statSync(file).size).toBeGreaterThan(100);
    const json = JSON.parse(readFileSync(files.json, 'utf8'));
    expect(json.perVolume.WT.dice).toBeGreaterThan(0.5);
    expect(json.thumbnails[0].png).toMatch(/^data:image\/png;base64,/);
    expect(json.settings.regions).toEqual(['WT', 'TC', 'ET']);
    // slice numbers 1-based beside the index; unscored regions named
    const report = syntheticReport();
    json.perSlice.forEach((e: { slice: number; index: number; absent: string[] }, i: number) => {
      expect(e.index).toBe(report.perSlice[i]!.slice);
      expect(e.slice).toBe(e.index + 1);
      expect(e.absent).toEqual(['WT', 'TC', 'ET'].filter((r) => { const m = report.perSlice[i]!.metrics[r]!; return m.tp + m.fp + m.fn === 0; }));
    });
    expect(json.perSlice.some((e: { absent: string[] }) => e.absent.length === 3)).toBe(true);
    expect(existsSync(join(dir, '.metrics.json.tmp'))).toBe(false);
  });
});
