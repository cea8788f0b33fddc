/**
 * Report content with and without ground truth: predicted volumes, slice range and lesions in
 * every output, no Dice chart without ground truth, thumbnails at their true aspect ratio, the
 * app's colours, notes and post-processing.
 */
import { describe, expect, it } from 'vitest';
import { EMPTY_SLICE_RULE, EMPTY_SLICE_RULE_PREDICTION, regionColourHex } from '../../../main/core/conventions.ts';
import { Volume } from '../../../main/core/io/volume.ts';
import { CSV_COLUMNS, buildReport, headCrop, renderCsv, renderHtml, renderJson, renderPdf, thumbnailRGB } from '../../../main/core/report/index.ts';
import { predictionRows } from '../../../main/core/report/format.ts';
import { describeTumour } from '../../../main/core/metrics/describe.ts';
import { regionsFor } from '../../../main/core/metrics/regions.ts';
import { pdfPageTexts } from './pdftext.ts';

const DIMS: [number, number, number] = [40, 20, 10];

/** A head-like box with two separate lesions: a BraTS-labelled one and a small edema-only one. */
function study(spacing: [number, number, number]) {
  const n = DIMS[0] * DIMS[1] * DIMS[2];
  const data = new Int16Array(n);
  const pred = new Uint8Array(n);
  for (let z = 0; z < DIMS[2]; z++)
    for (let y = 0; y < DIMS[1]; y++)
      for (let x = 0; x < DIMS[0]; x++) {
        const i = (z * DIMS[1] + y) * DIMS[0] + x;
        if (x > 1 && x < 38 && y > 1 && y < 18) data[i] = 200 + ((x + y + z) % 30);
        // lesion 1 on indices 3…6: ET core, necrotic ring, edema
        if (z >= 3 && z <= 6 && x >= 8 && x < 16 && y >= 6 && y < 14) pred[i] = x >= 11 && x < 13 && y >= 9 && y < 11 ? 4 : x >= 10 && x < 14 && y >= 8 && y < 12 ? 1 : 2;
        // lesion 2 on indices 5 and 6, far from lesion 1: 5×5×2 voxels, 0.1 ml
        if ((z === 5 || z === 6) && x >= 30 && x < 35 && y >= 3 && y < 8) pred[i] = 2;
        // a one-voxel speck: tumour volume, but too small to be a lesion (describe.ts's rule)
        if (z === 3 && x === 37 && y === 17) pred[i] = 2;
      }
  const image = new Volume({
    geometry: { dims: DIMS, spacing, origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    data,
    meta: { id: 'box', description: 'box', modality: 'MR', sources: [] },
  });
  return { image, pred };
}

const settings = { checkpoint: 'c.safetensors', preset: 'hiera_tiny', device: 'cpu', inputSize: 128, threshold: 0.5 };

describe('report without ground truth', () => {
  const { image, pred } = study([1, 1, 2]);
  const report = buildReport({ study: 'NoGT', settings, regionKind: 'brats', image, pred });

  it('holds predicted volumes per label and region, the slice range and the lesion count', () => {
    const voxelMl = 2 / 1000;
    const count = (keep: (v: number) => boolean) => pred.filter(keep).length;
    expect(report.prediction.labelVolumesMl).toEqual({ NCR: count((v) => v === 1) * voxelMl, ED: count((v) => v === 2) * voxelMl, ET: count((v) => v === 4) * voxelMl });
    // lesion 1: 8×8×4 voxels; lesion 2: 5×5×2; the speck: 1
    expect(report.prediction.regionVolumesMl.WT).toBeCloseTo((256 + 50 + 1) * voxelMl, 12);
    expect(report.prediction.regionVolumesMl.ET).toBeCloseTo(2 * 2 * 4 * voxelMl, 12);
    expect(report.prediction.sliceRange).toEqual([3, 6]);
    expect(report.prediction.lesionVolumesMl.map((v) => +v.toFixed(6))).toEqual([0.512, 0.1]);
    // the same lesions as `sam2unet measure` (the tumour description) reports
    expect(describeTumour(pred, image.geometry, 'brats').lesions.map((l) => l.volume_ml)).toEqual(report.prediction.lesionVolumesMl);
    expect(report.groundTruth).toBeUndefined();
  });

  it('prints them in the HTML and the PDF, with slice numbers 1-based', () => {
    const rows = predictionRows(report);
    expect(rows.find((r) => r[0] === 'Tumour on slices')).toEqual(['Tumour on slices', '4–7 (4 slices)']);
    expect(rows.find((r) => r[0]!.startsWith('Lesions'))![1]).toBe('2 (largest 0.51 ml)');
    expect(rows.find((r) => r[0]!.startsWith('Lesions'))![0]).toBe('Lesions (26-connected, at least 0.1 ml)');
    expect(rows.find((r) => r[0]!.startsWith('NCR'))![1]).toBe((report.prediction.labelVolumesMl.NCR!).toFixed(2));
    const html = renderHtml(report);
    const pdf = pdfPageTexts(renderPdf(report)).flat();
    for (const row of rows) for (const cell of row) {
      expect(html).toContain(`<td>${cell.replace(/&/g, '&amp;')}</td>`);
      expect(pdf).toContain(cell);
    }
  });

  it('draws no Dice chart: the predicted volume per slice instead, with its own gap rule', () => {
    const html = renderHtml(report);
    expect(html).not.toContain('Dice per slice');
    expect(html).toContain('<h2>Predicted volume per slice</h2>');
    expect(html).toContain('data-kind="volume"');
    expect(html).toContain(EMPTY_SLICE_RULE_PREDICTION);
    // WT on slice numbers 4…7 only: one run
    expect([...html.matchAll(/class="series" data-region="WT" data-slices="([\d-]+)"/g)].map((m) => m[1])).toEqual(['4-7']);
    const pdf = pdfPageTexts(renderPdf(report)).flat();
    expect(pdf).toContain('Predicted volume per slice');
    expect(pdf).not.toContain('Dice per slice');
    expect(pdf).toContain(EMPTY_SLICE_RULE_PREDICTION);
  });

  it('writes the predicted volume per slice into the CSV', () => {
    const rows = renderCsv(report).trimEnd().split('\n').slice(1).map((l) => l.split(','));
    const col = (name: (typeof CSV_COLUMNS)[number]) => CSV_COLUMNS.indexOf(name);
    const wt = rows.filter((r) => r[0] === 'slice' && r[col('region')] === 'WT');
    expect(wt.map((r) => r[col('slice')])).toEqual(Array.from({ length: DIMS[2] }, (_, k) => String(k + 1)));
    expect(wt.filter((r) => r[col('status')] === 'predicted').map((r) => r[col('slice')])).toEqual(['4', '5', '6', '7']);
    expect(Number(wt.find((r) => r[col('slice')] === '6')![col('volume_ml')])).toBeCloseTo((64 + 25) * 0.002, 12);
    expect(wt.every((r) => r[col('dice')] === '')).toBe(true);
    const volume = rows.find((r) => r[0] === 'volume' && r[col('region')] === 'WT')!;
    expect(Number(volume[col('volume_ml')])).toBeCloseTo(report.prediction.regionVolumesMl.WT!, 12);
  });

  it('states no chart at all for an empty prediction', () => {
    const empty = buildReport({ study: 'Empty', settings, regionKind: 'brats', image, pred: new Uint8Array(pred.length) });
    expect(renderHtml(empty)).toContain('Nothing was predicted');
    expect(renderHtml(empty)).not.toContain('<svg');
    expect(predictionRows(empty).find((r) => r[0] === 'Tumour on slices')![1]).toBe('none');
    expect(predictionRows(empty).find((r) => r[0]!.startsWith('Lesions'))![1]).toBe('0');
  });
});

describe('report with ground truth', () => {
  const { image, pred } = study([1, 1, 2]);
  // ground truth: lesion 1 with some edema missing (x < 20), lesion 2 as predicted
  const gt = pred.map((v, i) => (v === 2 && i % 7 === 0 && i % DIMS[0] < 20 ? 0 : v));
  const report = buildReport({ study: 'GT', settings, regionKind: 'brats', image, pred, gt });

  it('has the Dice chart with the empty-slice rule, and ground-truth figures beside the prediction', () => {
    const html = renderHtml(report);
    expect(html).toContain('<h2>Dice per slice</h2>');
    expect(html).toContain(EMPTY_SLICE_RULE);
    // slices 1–3 and 8–10 have no tumour in either mask: gaps, not a line at 1
    expect([...html.matchAll(/class="series" data-region="WT" data-slices="([\d-]+)"/g)].map((m) => m[1])).toEqual(['4-7']);
    expect(predictionRows(report)[0]).toHaveLength(3);
    expect(report.groundTruth!.lesionVolumesMl).toHaveLength(2);
  });
});

describe('thumbnails', () => {
  it('keep the true aspect ratio on an anisotropic in-plane grid', () => {
    // 0.5 mm across x, 1 mm down y: a 40 × 20 voxel slice is 20 × 20 mm, a square picture
    const { image, pred } = study([0.5, 1, 2]);
    const report = buildReport({ study: 'Aniso', settings, regionKind: 'brats', image, pred });
    const t = report.thumbnails[0]!;
    const crop = headCrop(image);
    // picture pixels are square, 0.5 mm: the crop's width in mm is width px × 0.5, its height too
    expect(t.width).toBe(crop.width);
    expect(t.height).toBe(crop.height * 2);
    const { width, height } = thumbnailRGB(t, regionsFor('brats'));
    expect(width / height).toBeCloseTo((crop.width * 0.5) / (crop.height * 1), 6);
    // HTML lets the picture keep its aspect (no fixed height under a 100% width)
    expect(renderHtml(report)).toMatch(/figure img\{width:100%;height:auto/);
  });

  it('show the radiological view whichever way the voxel axes run', () => {
    const { image, pred } = study([1, 1, 2]);
    // the same voxels on a grid whose x runs to the patient's right and y to anterior
    const mirrored = new Volume({ geometry: { ...image.geometry, direction: [-1, 0, 0, 0, -1, 0, 0, 0, 1] }, data: image.data, meta: image.meta });
    const a = buildReport({ study: 'LPS', settings, regionKind: 'brats', image, pred }).thumbnails[0]!;
    const b = buildReport({ study: 'RAS-like', settings, regionKind: 'brats', image: mirrored, pred }).thumbnails[0]!;
    expect([b.width, b.height]).toEqual([a.width, a.height]);
    for (let y = 0; y < a.height; y++)
      for (let x = 0; x < a.width; x++) {
        const i = y * a.width + x;
        const j = (a.height - 1 - y) * a.width + (a.width - 1 - x);
        expect(b.pred[j]).toBe(a.pred[i]);
        expect(b.grey[j]).toBe(a.grey[i]);
      }
    expect(renderHtml(buildReport({ study: 'LPS', settings, regionKind: 'brats', image, pred }))).toContain('Radiological view: the patient&#39;s right on the image&#39;s left');
  });

  it('on an isotropic grid are the crop itself', () => {
    const { image, pred } = study([1, 1, 2]);
    const report = buildReport({ study: 'Iso', settings, regionKind: 'brats', image, pred });
    const t = report.thumbnails[0]!;
    expect(t.width).toBeGreaterThan(t.height);
    expect(t.width / t.height).toBeCloseTo(40 / 20, 0);
  });
});

describe('colours, notes and post-processing', () => {
  const { image, pred } = study([1, 1, 2]);
  const labelColours = { necrotic: '#aa0000', edema: '#00bb00', enhancing: '#cccc00' };
  const report = buildReport({
    study: 'Colours',
    settings: {
      ...settings,
      labelColours,
      notes: ['T1 post-contrast was substituted by FLAIR'],
      postprocessing: [{ name: 'small components removed', description: 'components below 0.1 ml dropped: 1 (0.01 ml)' }],
    },
    regionKind: 'brats',
    image,
    pred,
  });

  it('paint regions in the colour of the label each adds, from the app settings', () => {
    expect(regionColourHex('WT', labelColours)).toBe('#00bb00');
    expect(regionColourHex('TC', labelColours)).toBe('#aa0000');
    expect(regionColourHex('ET', labelColours)).toBe('#cccc00');
    const html = renderHtml(report);
    for (const r of ['WT', 'TC', 'ET']) expect(html).toContain(`data-region="${r}" data-colour="${regionColourHex(r, labelColours)}"`);
    expect(JSON.parse(renderJson(report)).conventions.regionColours).toEqual({ WT: '#00bb00', TC: '#aa0000', ET: '#cccc00' });
  });

  it('print the notes and the post-processing in HTML and PDF', () => {
    const html = renderHtml(report);
    const pdf = pdfPageTexts(renderPdf(report)).flat();
    expect(html).toContain('<li>T1 post-contrast was substituted by FLAIR</li>');
    expect(pdf).toContain('• T1 post-contrast was substituted by FLAIR');
    expect(html).toContain('components below 0.1 ml dropped: 1 (0.01 ml)');
    expect(pdf).toContain('components below 0.1 ml dropped: 1 (0.01 ml)');
  });
});
