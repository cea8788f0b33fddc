/**
 * The reports' tumour section: the prediction's description as `measure` gives it, the key slice
 * of each measurable lesion with its RANO lines where the lesion lies in the picture, and the
 * lesion-wise BraTS 2023 figures only with ground truth.
 */
import { describe, expect, it } from 'vitest';
import { RANO_LINE_COLOURS, hexToRgb } from '../../../main/core/conventions.ts';
import { Volume, worldToIndex } from '../../../main/core/io/volume.ts';
import { describeTumour } from '../../../main/core/metrics/describe.ts';
import { lesionWise } from '../../../main/core/metrics/lesion-wise.ts';
import { regionsFor } from '../../../main/core/metrics/regions.ts';
import { buildReport, renderCsv, renderHtml, renderJson, renderPdf, thumbnailRGB, CSV_COLUMNS } from '../../../main/core/report/index.ts';
import { pdfPageTexts } from './pdftext.ts';

const DIMS: [number, number, number] = [64, 48, 12];
const settings = { checkpoint: 'model.safetensors', preset: 'brats', device: 'cpu', inputSize: 352, threshold: 0.5 };

/**
 * A head box with one lesion: an enhancing ellipse of semi-axes 12 × 8 mm (index x × y) around a
 * necrotic core, in edema, on slices 4…7; spacing 0.5 × 1 × 2 mm so the picture is resampled.
 */
function study(direction: number[] = [1, 0, 0, 0, 1, 0, 0, 0, 1]) {
  const spacing: [number, number, number] = [0.5, 1, 2];
  const n = DIMS[0] * DIMS[1] * DIMS[2];
  const data = new Int16Array(n);
  const pred = new Uint8Array(n);
  for (let z = 0; z < DIMS[2]; z++)
    for (let y = 0; y < DIMS[1]; y++)
      for (let x = 0; x < DIMS[0]; x++) {
        const i = (z * DIMS[1] + y) * DIMS[0] + x;
        if (x > 1 && x < 62 && y > 1 && y < 46) data[i] = 200 + ((x * 7 + y * 3 + z) % 40);
        if (z < 4 || z > 7) continue;
        const e = ((x - 30) * 0.5) ** 2 / 12 ** 2 + (y - 24) ** 2 / 8 ** 2;
        if (e <= 1) pred[i] = e < 0.3 ? 1 : 4;
        else if (((x - 30) * 0.5) ** 2 / 14 ** 2 + (y - 24) ** 2 / 11 ** 2 <= 1) pred[i] = 2;
      }
  const image = new Volume({ geometry: { dims: DIMS, spacing, origin: [0, 0, 0], direction }, data, meta: { id: 'box', description: 'box', modality: 'MR', sources: [] } });
  return { image, pred };
}

describe('report tumour section', () => {
  const { image, pred } = study();
  const report = buildReport({ study: 'Tumour', settings, regionKind: 'brats', image, pred });

  it('is the tumour description of the prediction, with the image for the midline', () => {
    const direct = describeTumour(pred, image.geometry, 'brats', { images: [{ data: image.data }] });
    expect(report.tumour.description).toEqual(direct);
    const lesion = direct.lesions[0]!;
    expect(direct.lesions).toHaveLength(1);
    // 24 × 16 mm enhancing ellipse: long and perpendicular diameters within 1.5 mm
    expect(lesion.rano.long_mm).toBeGreaterThan(22.5);
    expect(lesion.rano.long_mm).toBeLessThan(25.5);
    expect(lesion.rano.perp_mm).toBeGreaterThan(14.5);
    expect(lesion.rano.perp_mm).toBeLessThan(17.5);
    expect(lesion.rano.measurable).toBe(true);
    expect(report.tumour.lesionWise).toBeUndefined();
  });

  it('draws the RANO lines on the key slice where the voxels are (resampled to square pixels)', () => {
    expect(report.tumour.keySlices.map((k) => k.lesion)).toEqual([0]);
    const { thumbnail: t } = report.tumour.keySlices[0]!;
    const lesion = report.tumour.description.lesions[0]!;
    expect(t.slice).toBe(lesion.rano.slice);
    // a 0.5 × 1 mm grid is shown at 0.5 mm pixels: x = i, y = 2j + 0.5 (no flips: the grid is LPS-aligned)
    const [a, b] = lesion.rano.long_line_lps!.map((p) => worldToIndex(image.geometry, p));
    expect(t.lines!.long[0][0]).toBeCloseTo(a![0], 9);
    expect(t.lines!.long[0][1]).toBeCloseTo(2 * a![1] + 0.5, 9);
    expect(t.lines!.long[1][0]).toBeCloseTo(b![0], 9);
    const { rgb, width } = thumbnailRGB(t, regionsFor('brats'));
    const mid = [(t.lines!.long[0][0] + t.lines!.long[1][0]) / 2, (t.lines!.long[0][1] + t.lines!.long[1][1]) / 2].map(Math.round) as [number, number];
    const o = (mid[1] * width + mid[0]) * 3;
    // the long line crosses the perpendicular one near the middle: either colour is drawn there
    const drawn = [rgb[o]!, rgb[o + 1]!, rgb[o + 2]!];
    expect([hexToRgb(RANO_LINE_COLOURS.long), hexToRgb(RANO_LINE_COLOURS.perp)]).toContainEqual(drawn);
    // an end of the long line is drawn in its colour
    const e = (Math.round(t.lines!.long[0][1]) * width + Math.round(t.lines!.long[0][0])) * 3;
    expect([rgb[e], rgb[e + 1], rgb[e + 2]]).toEqual(hexToRgb(RANO_LINE_COLOURS.long));
  });

  it('mirrors the lines with the picture for a grid stored right-to-left', () => {
    const flipped = study([-1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const r = buildReport({ study: 'Flipped', settings, regionKind: 'brats', image: flipped.image, pred: flipped.pred });
    const t = r.tumour.keySlices[0]!.thumbnail;
    const [a] = r.tumour.description.lesions[0]!.rano.long_line_lps!.map((p) => worldToIndex(flipped.image.geometry, p));
    expect(t.lines!.long[0][0]).toBeCloseTo(DIMS[0] - 1 - a![0], 9);
  });

  it('prints lesions, RANO, multifocality and laterality in HTML, CSV, JSON and PDF', () => {
    const d = report.tumour.description;
    const html = renderHtml(report);
    expect(html).toContain('data-testid="report-tumour"');
    expect(html).toContain(`${d.rano_sum_products_mm2.toFixed(1)} mm²`);
    expect(html).toContain('unifocal');
    expect(html).toContain("the brain&#39;s left–right symmetry in the image");
    expect(html).toMatch(/<figure data-lesion="1" data-slice="\d+"><img/);
    expect(html).not.toContain('Lesion-wise metrics');

    const lines = renderCsv(report).trimEnd().split('\n').map((l) => l.split(','));
    const col = (name: (typeof CSV_COLUMNS)[number]) => CSV_COLUMNS.indexOf(name);
    const lesionRow = lines.find((l) => l[0] === 'lesion')!;
    expect(Number(lesionRow[col('rano_long_mm')])).toBe(d.lesions[0]!.rano.long_mm);
    expect(Number(lesionRow[col('index')])).toBe(d.lesions[0]!.rano.slice);
    const tumourRow = lines.find((l) => l[0] === 'tumour')!;
    expect(Number(tumourRow[col('left_pct')])).toBe(d.laterality.left_pct);
    expect(tumourRow[col('laterality_method')]).toBe('image-symmetry');

    const json = JSON.parse(renderJson(report));
    expect(json.tumour.description.rano_sum_products_mm2).toBe(d.rano_sum_products_mm2);
    expect(json.tumour.keySlices[0].png).toMatch(/^data:image\/png;base64,/);
    expect(json.tumour.keySlices[0].index).toBe(d.lesions[0]!.rano.slice);

    const text = pdfPageTexts(renderPdf(report)).map((p) => p.join(' ')).join('\n');
    expect(text).toContain('Tumour');
    expect(text).toContain('RANO sum of products');
    expect(text).toContain('Key slices of the measurable lesions');
  });

  it('with ground truth: the lesion-wise BraTS 2023 figures beside the legacy ones', () => {
    // ground truth: the same lesion plus a missed one far away
    const gt = pred.slice();
    for (let z = 4; z < 7; z++) for (let y = 3; y < 8; y++) for (let x = 4; x < 12; x++) gt[(z * DIMS[1] + y) * DIMS[0] + x] = 2;
    const withGt = buildReport({ study: 'GT', settings, regionKind: 'brats', image, pred, gt });
    const regions = regionsFor('brats');
    expect(withGt.tumour.lesionWise!.regions).toEqual(lesionWise(pred, gt, DIMS, image.geometry.spacing, regions));
    expect(withGt.tumour.lesionWise!.regions.WT!.fn).toBe(1);
    const html = renderHtml(withGt);
    expect(html).toContain('Lesion-wise metrics (BraTS 2023)');
    const wt = withGt.tumour.lesionWise!.regions.WT!;
    expect(html).toContain(`<td>WT</td><td>${wt.dice.toFixed(4)}</td>`);
    expect(html).toContain(`<td>${withGt.perVolume!.WT!.dice.toFixed(4)}</td>`);
    const csv = renderCsv(withGt).trimEnd().split('\n').filter((l) => l.startsWith('lesion_wise,'));
    expect(csv).toHaveLength(3);
    const text = pdfPageTexts(renderPdf(withGt)).map((p) => p.join(' ')).join('\n');
    expect(text).toContain('Lesion-wise metrics (BraTS 2023)');
  });
});
