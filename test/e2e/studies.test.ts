/**
 * Open studies in the browser (issue 12): every open study keeps its results while others are
 * looked at, studies close, reopening selects, patient and study metadata are shown, the DICOM
 * tag viewer opens, and a DICOM examination of four series (written from a phantom into a
 * temporary folder, files mixed, the T2 on a coarser grid) opens as one study with its sequence
 * mapping and the resampling note shown, the mapping changeable.
 * Segmentation by the Segment button with the bundled model. Screenshots in test-output/e2e/studies-*.png.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { countPixels, haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';
import { findBratsCases, loadBratsCase } from '../../main/core/io/brats.ts';
import { writeMrSeries } from '../fixtures/dicom/write-series.ts';
import { Volume } from '../../main/core/io/volume.ts';

const phantoms = resolve(root, '../shared/data/phantoms');
const studyA = join(phantoms, 'BraTS20_Training_002');
const studyB = join(phantoms, 'BraTS20_Training_001_flair_dicom');
const SEGMENT_TIMEOUT = 150_000;
const EXAM_SERIES = [
  { role: 't1', description: 'AX T1 SE', number: 3 },
  { role: 't1ce', description: 'AX T1 POST GAD', number: 7 },
  { role: 't2', description: 'Ax T2 TSE', number: 4 },
  { role: 'flair', description: 'AX T2 FLAIR', number: 5 },
] as const;

describe.skipIf(!haveChromium)('open studies in the browser', () => {
  let workstation: Workstation;
  let page: Page;
  const consoleErrors: string[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-studies-'));
  const exam = join(tmp, 'exam');

  beforeAll(async () => {
    mkdirSync(exam);
    const source = await loadBratsCase(findBratsCases(join(phantoms, 'BraTS20_Training_003'), readdirSync(join(phantoms, 'BraTS20_Training_003'))).cases[0]!);
    // the T2 on a coarser grid (every second column and row: 2 mm in plane), as scanners often do
    const t2 = source.sequences.t2!;
    const [nx, ny, nz] = t2.dims;
    const coarse = new Int16Array((nx / 2) * (ny / 2) * nz);
    for (let k = 0, at = 0; k < nz; k++) for (let j = 0; j < ny; j += 2) for (let i = 0; i < nx; i += 2) coarse[at++] = t2.value(i + nx * (j + ny * k));
    const sequences: Record<string, Volume> = {
      ...source.sequences,
      t2: new Volume({ geometry: { ...t2.geometry, dims: [nx / 2, ny / 2, nz], spacing: [2 * t2.geometry.spacing[0], 2 * t2.geometry.spacing[1], t2.geometry.spacing[2]] }, data: coarse, meta: t2.meta }),
    };
    for (const s of EXAM_SERIES) {
      writeMrSeries(
        exam,
        sequences[s.role]!,
        { description: s.description, seriesNumber: s.number, seriesUid: `1.2.826.0.1.3680043.8.498.888.${s.number}`, patientName: 'Doe^Jane', patientId: 'MRN-0042', studyDate: '20250314', studyDescription: 'MRI BRAIN W WO' },
        (k) => `IM${String(k).padStart(4, '0')}${s.number}`,
      );
    }
    workstation = await startWorkstation();
    page = await pageRecordingErrors(workstation.browser, consoleErrors);
    await page.goto(workstation.server.url);
  }, 120_000);

  afterAll(async () => {
    await workstation?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const shot = (name: string) => page.screenshot({ path: join(outDir, `studies-${name}.png`) });
  const item = (name: string | RegExp) => page.getByTestId('study-item').filter({ hasText: name });
  const rendered = () => page.getByTestId('viewport-axial').getAttribute('data-rendered-slice');

  async function open(path: string) {
    await page.getByTestId('open-path').fill(path);
    await page.getByTestId('open-button').click();
  }

  let diceTable = '';
  let points = 0;

  it('segments study A with the Segment button', async () => {
    await open(studyA);
    await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(1);
    await expect.poll(rendered, { timeout: 60_000 }).toBe('77');
    await page.getByTestId('segment').click();
    await page.getByTestId('segmentation-done').waitFor({ timeout: SEGMENT_TIMEOUT });
    diceTable = (await page.getByTestId('volume-dice').textContent()) ?? '';
    expect(diceTable).toMatch(/Dice/);
    points = await page.getByTestId('dice-point').count();
    expect(points).toBeGreaterThan(10);
    await shot('01-a-segmented');
  }, SEGMENT_TIMEOUT + 60_000);

  it('opening study B shows its patient and study metadata, its series by description, and no results of A', async () => {
    await open(studyB);
    await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(2);
    await expect.poll(() => item('PHANTOM001').getAttribute('class')).toMatch(/selected/);
    const meta = (await item('PHANTOM001').getByTestId('study-meta').textContent()) ?? '';
    expect(meta).toBe('Phantom, Brain · ID PHANTOM001 · 2026-11-26 · MR');
    expect(await page.getByTestId('study-header').textContent()).toContain('PHANTOM001');
    expect(await item('PHANTOM001').getByTestId('series').textContent()).toContain('FLAIR');
    expect(await item('PHANTOM001').getByTestId('series').textContent()).not.toContain('image');
    await expect.poll(() => page.getByTestId('dice-chart').count()).toBe(0);
    expect(await page.getByTestId('segmentation-done').count()).toBe(0);
    await expect.poll(rendered, { timeout: 60_000 }).toBe('77');
    await shot('02-b-metadata');
  }, 90_000);

  it('shows the DICOM tags of the series on screen, with a filter', async () => {
    await page.getByTestId('tags-open').click();
    const dialog = page.getByTestId('tag-viewer');
    await dialog.getByTestId('tag-table').waitFor({ timeout: 20_000 });
    expect(await dialog.getByTestId('tag-row').count()).toBeGreaterThan(20);
    await dialog.getByTestId('tag-filter').fill('patientid');
    await expect.poll(() => dialog.getByTestId('tag-row').count()).toBe(1);
    expect(await dialog.getByTestId('tag-row').textContent()).toMatch(/\(0010,0020\)\s*LO\s*PatientID\s*PHANTOM001/);
    await shot('03-tag-viewer');
    await dialog.getByTestId('tag-viewer-close').click();
    await expect.poll(() => dialog.isVisible()).toBe(false);
  });

  it('going back to study A brings back its prediction, chart and Dice table', async () => {
    await item('BraTS20_Training_002').getByTestId('study').click();
    await expect.poll(() => item('BraTS20_Training_002').getAttribute('class')).toMatch(/selected/);
    await page.getByTestId('volume-dice').waitFor({ timeout: 20_000 });
    expect(await page.getByTestId('volume-dice').textContent()).toBe(diceTable);
    expect(await page.getByTestId('dice-point').count()).toBe(points);
    expect(await page.getByTestId('overlay-source').inputValue()).toBe('prediction');
    await expect.poll(rendered, { timeout: 30_000 }).toBe('77');
    // the predicted labels are drawn over the tumour again
    await expect.poll(async () => (await countPixels(page, '[data-testid=viewport-axial]', join(outDir, 'studies-04-a-axial.png'))).coloured, { timeout: 20_000 }).toBeGreaterThan(100);
    await shot('04-a-back');
  }, 60_000);

  it('opening an open study again selects it instead of adding a duplicate', async () => {
    await item('PHANTOM001').getByTestId('study').click();
    await expect.poll(() => item('PHANTOM001').getAttribute('class')).toMatch(/selected/);
    await open(`${studyA}/`);
    await expect.poll(() => item('BraTS20_Training_002').getAttribute('class')).toMatch(/selected/);
    expect(await page.getByTestId('study').count()).toBe(2);
    expect(await page.getByTestId('volume-dice').textContent()).toBe(diceTable);
  });

  it('a DICOM examination of four series opens as one study with its sequence mapping shown and changeable', async () => {
    await open(exam);
    await expect.poll(() => page.getByTestId('study').count(), { timeout: 90_000 }).toBe(3);
    const study = item('MRI BRAIN W WO');
    await expect.poll(() => study.getAttribute('class')).toMatch(/selected/);
    expect(await study.getByTestId('study-meta').textContent()).toBe('Doe, Jane · ID MRN-0042 · 2025-03-14 · MRI BRAIN W WO · MR');
    expect((await study.getByTestId('series').allTextContents()).map((t) => t.trim())).toEqual(['AX T1 SE (T1)', 'AX T1 POST GAD (T1 post-contrast)', 'Ax T2 TSE (T2)', 'AX T2 FLAIR (FLAIR)']);
    const mapping = study.getByTestId('sequence-mapping');
    const rows = mapping.getByTestId('mapping-row');
    expect(await rows.count()).toBe(4);
    expect(await mapping.getByTestId('mapping-select').evaluateAll((els) => els.map((e) => (e as HTMLSelectElement).value))).toEqual(['t1', 't1ce', 't2', 'flair']);
    expect(await mapping.textContent()).toContain('recognised from series description "AX T1 POST GAD"');
    expect(await rows.nth(2).textContent()).toContain('Ax T2 TSE');
    expect(await mapping.textContent()).toContain('resampled onto the FLAIR grid');
    expect(await study.getByTestId('study-note').textContent()).toBe(
      'Ax T2 TSE (t2) resampled onto the grid of AX T2 FLAIR (flair) through world coordinates, trilinear: 120×120×155 at 2×2×1 mm → 240×240×155 at 1×1×1 mm',
    );
    await expect.poll(rendered, { timeout: 60_000 }).toBe('77');
    await mapping.scrollIntoViewIfNeeded();
    await shot('05-exam-mapping');
    const thumbnails = () => study.getByTestId('thumbnail').evaluateAll((els) => els.map((e) => (e as HTMLCanvasElement).toDataURL()));
    await expect.poll(async () => new Set(await thumbnails()).size, { timeout: 20_000 }).toBe(4);
    const before = await thumbnails();
    // the user says the first series is the post-contrast one: the two T1 series swap
    await rows.first().getByTestId('mapping-select').selectOption('t1ce');
    await expect.poll(() => mapping.getByTestId('mapping-select').evaluateAll((els) => els.map((e) => (e as HTMLSelectElement).value)), { timeout: 30_000 }).toEqual(['t1', 't1ce', 't2', 'flair']);
    await expect.poll(() => mapping.textContent(), { timeout: 30_000 }).toContain('changed by you');
    expect((await study.getByTestId('series').allTextContents()).map((t) => t.trim())).toEqual(['AX T1 POST GAD (T1)', 'AX T1 SE (T1 post-contrast)', 'Ax T2 TSE (T2)', 'AX T2 FLAIR (FLAIR)']);
    expect(await mapping.textContent()).toContain('changed by you');
    // each thumbnail follows its series to its new place
    await expect.poll(thumbnails, { timeout: 20_000 }).toEqual([before[1], before[0], before[2], before[3]]);
    await expect.poll(rendered, { timeout: 30_000 }).toBe('77');
    expect(await page.getByTestId('busy').count()).toBe(0);
    await mapping.scrollIntoViewIfNeeded();
    await shot('06-exam-remapped');
  }, 120_000);

  it('closes a study: it leaves the list and the next one comes on screen', async () => {
    await item('PHANTOM001').getByTestId('study-close').click();
    await expect.poll(() => page.getByTestId('study').count()).toBe(2);
    expect(await item('PHANTOM001').count()).toBe(0);
    await item('MRI BRAIN W WO').getByTestId('study-close').click();
    await expect.poll(() => page.getByTestId('study').count()).toBe(1);
    // its resampling note went with it
    expect(await page.getByText('Ax T2 TSE (t2) resampled').count()).toBe(0);
    await expect.poll(() => item('BraTS20_Training_002').getAttribute('class')).toMatch(/selected/);
    expect(await page.getByTestId('volume-dice').textContent()).toBe(diceTable);
    await shot('07-closed');
    // a closed study opens afresh
    await open(studyB);
    await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(2);
    expect(consoleErrors).toEqual([]);
  }, 90_000);
});
