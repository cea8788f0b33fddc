/**
 * One rule, four outputs (issue 12): the app's Dice chart, report.html, report.pdf and
 * metrics.csv of the same run agree on the region colours (the app's label colours, changed in
 * Settings first so the defaults cannot agree by accident), on slice numbering (1-based) and on
 * the empty-slice rule (a region absent from both masks on a slice is not scored: a gap in every
 * chart, status "absent" in the CSV). Phantom 004 segmented by the bundled model through the
 * deep link, the report exported through the Export dialog and fetched through the links it
 * lists, which open in the browser (inline), not as downloads. Screenshots of the chart and of
 * the report tab are kept in test-output/e2e.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { EMPTY_SLICE_RULE, EMPTY_SLICE_RULE_PREDICTION, REGION_LABEL, SLICE_NUMBERING, sliceTicks } from '../../main/core/conventions.ts';
import { CSV_COLUMNS } from '../../main/core/report/index.ts';
import { pdfPageTexts } from '../unit/report/pdftext.ts';
import { haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';

const study = resolve(root, '../shared/data/phantoms/BraTS20_Training_004');
const REGIONS = ['WT', 'TC', 'ET'] as const;
/** not the defaults: the outputs must follow the user's colours */
const LABEL_COLOURS = { necrotic: '#e0115f', edema: '#1e90ff', enhancing: '#ffa500' };
const SEGMENT_TIMEOUT = 180_000;

/** "4-7" → [4, 5, 6, 7] */
const expand = (range: string): number[] => {
  const [a, b] = range.split('-').map(Number) as [number, number];
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
};

/** Stroke (RG) and fill (rg) colours used in a PDF page's content stream, as #rrggbb. */
function pdfColours(pdf: Uint8Array, op: 'RG' | 'rg'): Set<string> {
  const text = Buffer.from(pdf).toString('latin1');
  const found = new Set<string>();
  for (const m of text.matchAll(new RegExp(`([\\d.]+) ([\\d.]+) ([\\d.]+) ${op} `, 'g'))) {
    found.add(`#${[m[1], m[2], m[3]].map((f) => Math.round(Number(f) * 255).toString(16).padStart(2, '0')).join('')}`);
  }
  return found;
}

describe.skipIf(!haveChromium)('conventions: app chart, HTML, PDF and CSV agree', () => {
  let workstation: Workstation;
  const errors: string[] = [];
  let page: Page;

  beforeAll(async () => {
    workstation = await startWorkstation();
    await workstation.server.service.updateSettings({ labelColors: LABEL_COLOURS });
    page = await pageRecordingErrors(workstation.browser, errors);
  });

  afterAll(async () => {
    await workstation?.close();
  });

  it('segments phantom 004 and the four outputs agree on colours, numbering and absent regions', { timeout: SEGMENT_TIMEOUT + 120_000 }, async () => {
    const link = new URL(workstation.server.url);
    link.searchParams.set('open', study);
    link.searchParams.set('segment', 'default');
    await page.goto(link.href);
    await page.getByTestId('segmentation-done').waitFor({ timeout: SEGMENT_TIMEOUT });
    const chart = page.getByTestId('dice-chart');
    await expect.poll(() => page.getByTestId('dice-point').count()).toBeGreaterThan(100);

    // ---- the app's chart
    const app = await chart.evaluate((figure) => {
      const all = (selector: string) => Array.from(figure.querySelectorAll(selector));
      return {
        slices: Number(figure.getAttribute('data-slices')),
        keys: all('[data-testid=dice-key]').map((k) => [k.getAttribute('data-region')!, k.getAttribute('data-colour')!] as [string, string]),
        lineColours: all('[data-testid=dice-line]').map((l) => [l.getAttribute('data-region')!, l.getAttribute('stroke')!] as [string, string]),
        points: all('[data-testid=dice-point]').map((p) => ({
          index: Number(p.getAttribute('data-slice')),
          number: Number(p.getAttribute('data-slice-number')),
          label: p.getAttribute('aria-label')!,
          dice: Object.fromEntries<number>(Array.from(p.querySelectorAll('circle[data-region]')).map((c) => [c.getAttribute('data-region')!, Number(c.getAttribute('data-dice'))])),
        })),
        xTicks: all('[data-testid=dice-x-tick]').map((t) => Number(t.textContent)),
        rule: figure.querySelector('[data-testid=dice-rule]')!.textContent!.trim(),
      };
    });
    await chart.screenshot({ path: join(outDir, 'conventions-01-chart.png') });
    expect(app.slices).toBe(155);
    const colours = Object.fromEntries(REGIONS.map((r) => [r, LABEL_COLOURS[REGION_LABEL[r]!]]));
    expect(Object.fromEntries(app.keys)).toEqual(colours);
    for (const [region, stroke] of app.lineColours) expect(stroke).toBe(colours[region]);
    for (const p of app.points) {
      expect(p.number).toBe(p.index + 1);
      expect(p.label).toMatch(new RegExp(`^slice ${p.number} of 155: `));
    }
    expect(app.xTicks).toEqual(sliceTicks(155));
    expect(app.rule).toBe(EMPTY_SLICE_RULE);
    /** slice numbers each region is plotted on in the app */
    const appSlices = Object.fromEntries(REGIONS.map((r) => [r, app.points.filter((p) => r in p.dice).map((p) => p.number).sort((a, b) => a - b)]));
    // tumour-free slices are gaps, not a wall of 1.0s: the phantom has ~60 of them for WT
    expect(appSlices.WT!.length).toBeGreaterThan(40);
    expect(appSlices.WT!.length).toBeLessThan(140);

    // ---- keyboard: one point in the tab order, arrows move, Enter shows the slice
    const tabbable = await page.locator('[data-testid=dice-point][tabindex="0"]').count();
    expect(tabbable).toBe(1);
    await page.locator('[data-testid=dice-point][tabindex="0"]').focus();
    const focused = () => page.evaluate(() => Number(document.activeElement?.getAttribute('data-slice')));
    expect(await focused()).toBeGreaterThanOrEqual(0);
    await page.keyboard.press('Home');
    const first = await focused();
    expect(first).toBe(Math.min(...app.points.map((p) => p.index)));
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    const moved = await focused();
    expect(moved).toBe([...app.points.map((p) => p.index)].sort((a, b) => a - b)[2]);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByTestId('viewport-axial').getAttribute('data-rendered-slice'), { timeout: 20_000 }).toBe(String(moved));
    await chart.screenshot({ path: join(outDir, 'conventions-02-chart-keyboard.png') });

    // ---- export the report; every file listed, reports open inline
    await page.getByTestId('export-open').click();
    await page.getByTestId('export-report').click();
    const files = page.getByTestId('exports').getByTestId('export-file');
    await expect.poll(() => files.count(), { timeout: 120_000 }).toBe(4);
    const listed = await files.evaluateAll((links) => links.map((a) => ({ name: a.getAttribute('data-file')!, href: a.getAttribute('href'), target: a.getAttribute('target'), download: a.hasAttribute('download') })));
    expect(listed.map((f) => f.name).sort()).toEqual(['metrics.csv', 'metrics.json', 'report.html', 'report.pdf']);
    for (const f of listed) {
      expect(f.href, f.name).toBeTruthy();
      expect(f.target, f.name).toBe('_blank');
      expect(f.download, f.name).toBe(false);
    }
    await page.screenshot({ path: join(outDir, 'conventions-03-exported.png') });
    const fetched: Record<string, { bytes: Uint8Array; type: string; disposition: string }> = {};
    for (const f of listed) {
      const reply = await page.request.get(new URL(f.href!, workstation.server.url).href);
      expect(reply.status(), f.name).toBe(200);
      fetched[f.name] = { bytes: new Uint8Array(await reply.body()), type: reply.headers()['content-type']!, disposition: reply.headers()['content-disposition']! };
      expect(fetched[f.name]!.disposition, f.name).toMatch(/^inline/);
    }
    expect(fetched['report.html']!.type).toMatch(/^text\/html/);
    expect(fetched['report.pdf']!.type).toBe('application/pdf');
    // the same bytes the server wrote
    expect(Buffer.from(fetched['report.pdf']!.bytes).equals(readFileSync(join(workstation.exportDir, 'BraTS20_Training_004_report', 'report.pdf')))).toBe(true);

    // the HTML link opens a tab showing the report (not a download)
    const [tab] = await Promise.all([page.waitForEvent('popup'), page.locator('[data-testid=export-file][data-file="report.html"]').click()]);
    await tab.waitForLoadState();
    expect(await tab.locator('h1').textContent()).toContain('BraTS20_Training_004');
    await tab.screenshot({ path: join(outDir, 'conventions-04-report-tab.png'), fullPage: false });

    // ---- report.html (read in the tab, as a reader sees it)
    const html = await tab.evaluate(() => {
      const svg = document.querySelector('svg.dice-chart')!;
      const legend = svg.parentElement!.querySelector('.legend')!;
      return {
        kind: svg.getAttribute('data-kind'),
        keys: Array.from(legend.querySelectorAll('.key')).map((k) => [k.getAttribute('data-region')!, k.getAttribute('data-colour')!] as [string, string]),
        runs: Array.from(svg.querySelectorAll('.series')).map((s) => ({ region: s.getAttribute('data-region')!, slices: s.getAttribute('data-slices')!, colour: s.getAttribute('stroke') ?? s.getAttribute('fill') })),
        xTicks: Array.from(svg.querySelectorAll('.x-tick')).map((t) => Number(t.textContent)),
        rule: legend.querySelector('.rule')!.textContent!.trim(),
      };
    });
    await tab.close();
    // and the PDF link opens Chromium's PDF viewer, not a download
    const downloads: string[] = [];
    workstation.browser.on('page', (p) => p.on('download', (d) => downloads.push(d.suggestedFilename())));
    const [pdfTab] = await Promise.all([page.waitForEvent('popup'), page.locator('[data-testid=export-file][data-file="report.pdf"]').click()]);
    await pdfTab.waitForLoadState();
    await pdfTab.waitForTimeout(1500);
    expect(pdfTab.url()).toMatch(/report\.pdf$/);
    await pdfTab.screenshot({ path: join(outDir, 'conventions-04b-pdf-tab.png') });
    expect(downloads).toEqual([]);
    await pdfTab.close();
    expect(html.kind).toBe('dice');
    expect(Object.fromEntries(html.keys)).toEqual(colours);
    for (const run of html.runs) expect(run.colour).toBe(colours[run.region]);
    expect(html.xTicks).toEqual(app.xTicks);
    expect(html.rule).toBe(app.rule);
    const htmlSlices = Object.fromEntries(REGIONS.map((r) => [r, html.runs.filter((s) => s.region === r).flatMap((s) => expand(s.slices)).sort((a, b) => a - b)]));
    expect(htmlSlices).toEqual(appSlices);

    // ---- report.pdf: the text a PDF reader extracts, and the colours it paints
    const pdf = fetched['report.pdf']!.bytes;
    const pdfText = pdfPageTexts(pdf).flat();
    expect(pdfText).toContain(app.rule);
    expect(pdfText).toContain('Axial slice (1 to 155)');
    const chartPage = pdfPageTexts(pdf).find((texts) => texts.includes('Dice per slice'))!;
    for (const t of app.xTicks) expect(chartPage).toContain(String(t));
    const strokes = pdfColours(pdf, 'RG');
    const fills = pdfColours(pdf, 'rg');
    for (const r of REGIONS) {
      expect(strokes, `${r} line in the PDF chart`).toContain(colours[r]);
      expect(fills, `${r} legend swatch in the PDF`).toContain(colours[r]);
    }
    // wrapped paragraphs come out line by line
    expect(pdfText.join(' ')).toContain(`Slice numbers: ${SLICE_NUMBERING}`);
    expect(pdfText).toContain('1 to 155 (voxel index + 1), inferior to superior');

    // ---- metrics.csv: 1-based slice numbers, scored where the chart has a point, "absent" where it has a gap
    const rows = new TextDecoder().decode(fetched['metrics.csv']!.bytes).trimEnd().split('\n');
    expect(rows[0]).toBe(CSV_COLUMNS.join(','));
    const col = (name: (typeof CSV_COLUMNS)[number]) => CSV_COLUMNS.indexOf(name);
    const sliceRows = rows.slice(1).map((l) => l.split(',')).filter((r) => r[0] === 'slice');
    for (const r of sliceRows) expect(Number(r[col('slice')])).toBe(Number(r[col('index')]) + 1);
    const csvSlices = Object.fromEntries(REGIONS.map((region) => [region, sliceRows.filter((r) => r[col('region')] === region && r[col('status')] === 'scored').map((r) => Number(r[col('slice')])).sort((a, b) => a - b)]));
    expect(csvSlices).toEqual(appSlices);
    for (const r of sliceRows.filter((row) => row[col('status')] === 'absent')) expect(r[col('dice')]).toBe('');
    // and the same Dice on each scored slice
    for (const p of app.points) {
      for (const [region, dice] of Object.entries(p.dice)) {
        const row = sliceRows.find((r) => Number(r[col('slice')]) === p.number && r[col('region')] === region)!;
        expect(Number(row[col('dice')]), `${region} slice ${p.number}`).toBeCloseTo(dice, 9);
      }
    }

    // ---- metrics.json states the same rules
    const json = JSON.parse(new TextDecoder().decode(fetched['metrics.json']!.bytes));
    expect(json.conventions.regionColours).toEqual(colours);
    expect(json.conventions.emptySlices).toBe(app.rule);
    expect(json.perSlice[0].slice).toBe(json.perSlice[0].index + 1);

    expect(errors).toEqual([]);
  });

  it('without ground truth: the predicted volume per slice in the app, the HTML and the CSV alike; thumbnails unstretched', { timeout: SEGMENT_TIMEOUT + 120_000 }, async () => {
    // phantom 004 without its _seg file
    const noTruth = join(mkdtempSync(join(tmpdir(), 'sam2unet-nogt-')), 'BraTS20_Training_004');
    mkdirSync(noTruth);
    for (const f of readdirSync(study)) if (!f.includes('_seg')) copyFileSync(join(study, f), join(noTruth, f));
    const tab = await pageRecordingErrors(workstation.browser, errors);
    const link = new URL(workstation.server.url);
    link.searchParams.set('open', noTruth);
    link.searchParams.set('segment', 'default');
    await tab.goto(link.href);
    await tab.getByTestId('segmentation-done').waitFor({ timeout: SEGMENT_TIMEOUT });
    const chart = tab.getByTestId('dice-chart');
    await expect.poll(() => chart.getAttribute('data-kind')).toBe('volume');
    const app = await chart.evaluate((figure) =>
      Array.from(figure.querySelectorAll('[data-testid=dice-point]')).map((p) => ({
        number: Number(p.getAttribute('data-slice-number')),
        ml: Object.fromEntries<number>(Array.from(p.querySelectorAll('circle[data-region]')).map((c) => [c.getAttribute('data-region')!, Number(c.getAttribute('data-ml'))])),
      })),
    );
    expect(await tab.getByTestId('dice-rule').textContent()).toContain(EMPTY_SLICE_RULE_PREDICTION);
    await chart.screenshot({ path: join(outDir, 'conventions-05-chart-no-truth.png') });
    const appSlices = Object.fromEntries(REGIONS.map((r) => [r, app.filter((p) => r in p.ml).map((p) => p.number).sort((a, b) => a - b)]));
    expect(appSlices.WT!.length).toBeGreaterThan(20);

    await tab.getByTestId('export-open').click();
    await tab.getByTestId('export-report').click();
    const files = tab.getByTestId('exports').getByTestId('export-file');
    await expect.poll(() => files.count(), { timeout: 120_000 }).toBe(4);
    const href = async (name: string) => new URL((await tab.locator(`[data-testid=export-file][data-file="${name}"]`).getAttribute('href'))!, workstation.server.url).href;
    const csv = (await (await tab.request.get(await href('metrics.csv'))).text()).trimEnd().split('\n').slice(1).map((l) => l.split(','));
    const col = (name: (typeof CSV_COLUMNS)[number]) => CSV_COLUMNS.indexOf(name);
    const sliceRows = csv.filter((r) => r[0] === 'slice');
    const csvSlices = Object.fromEntries(REGIONS.map((region) => [region, sliceRows.filter((r) => r[col('region')] === region && r[col('status')] === 'predicted').map((r) => Number(r[col('slice')])).sort((a, b) => a - b)]));
    expect(csvSlices).toEqual(appSlices);
    for (const p of app) {
      for (const [region, ml] of Object.entries(p.ml)) {
        const row = sliceRows.find((r) => Number(r[col('slice')]) === p.number && r[col('region')] === region)!;
        expect(Number(row[col('volume_ml')]), `${region} slice ${p.number}`).toBeCloseTo(ml, 9);
      }
    }

    const [report] = await Promise.all([tab.waitForEvent('popup'), tab.locator('[data-testid=export-file][data-file="report.html"]').click()]);
    await report.waitForLoadState();
    const html = await report.evaluate(() => ({
      kind: document.querySelector('svg.dice-chart')?.getAttribute('data-kind'),
      headings: Array.from(document.querySelectorAll('h2')).map((h) => h.textContent),
      runs: Array.from(document.querySelectorAll('svg.dice-chart .series')).map((s) => ({ region: s.getAttribute('data-region')!, slices: s.getAttribute('data-slices')! })),
      rule: document.querySelector('.legend .rule')?.textContent,
      pictures: Array.from(document.querySelectorAll('figure img')).map((img) => {
        const i = img as HTMLImageElement;
        return { natural: i.naturalWidth / i.naturalHeight, shown: i.getBoundingClientRect().width / i.getBoundingClientRect().height };
      }),
      prediction: Array.from(document.querySelectorAll('table.prediction tr')).map((tr) => Array.from(tr.children).map((c) => c.textContent)),
    }));
    await report.screenshot({ path: join(outDir, 'conventions-06-report-no-truth.png'), fullPage: true });
    await report.close();
    expect(html.kind).toBe('volume');
    expect(html.headings).not.toContain('Dice per slice');
    expect(html.headings).toContain('Predicted volume per slice');
    expect(html.rule).toBe(EMPTY_SLICE_RULE_PREDICTION);
    expect(Object.fromEntries(REGIONS.map((r) => [r, html.runs.filter((s) => s.region === r).flatMap((s) => expand(s.slices)).sort((a, b) => a - b)]))).toEqual(appSlices);
    expect(html.pictures.length).toBeGreaterThan(0);
    for (const p of html.pictures) expect(p.shown).toBeCloseTo(p.natural, 2);
    // volumes per label and region, the tumour's slices and the lesion count, without ground truth
    const cells = Object.fromEntries(html.prediction.slice(1).map(([k, v]) => [k, v]));
    for (const key of ['NCR – necrotic core, label 1 (ml)', 'ED – edema, label 2 (ml)', 'ET – enhancing tumour, label 4 (ml)', 'WT – whole tumour (labels 1, 2, 4) (ml)']) expect(Number(cells[key!]), key).toBeGreaterThanOrEqual(0);
    expect(Number(cells['WT – whole tumour (labels 1, 2, 4) (ml)'])).toBeGreaterThan(10);
    expect(cells['Tumour on slices']).toBe(`${appSlices.WT![0]}–${appSlices.WT!.at(-1)} (${appSlices.WT!.at(-1)! - appSlices.WT![0]! + 1} slices)`);
    expect(cells['Lesions (26-connected, at least 0.1 ml)']).toMatch(/^\d+ \(/);
    expect(errors).toEqual([]);
  });
});
