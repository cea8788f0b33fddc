/**
 * Browser mode end to end (issue 8 acceptance): Debian's Chromium (headless, SwiftShader WebGL,
 * so Cornerstone takes its CPU path) drives the built renderer through the web bridge on a free
 * localhost port (the renderer is built once by global-setup.ts; harness.ts has the shared parts).
 *
 * Two studies, each in its own page: phantom 001 as NIfTI (opened by typing its path, segmented
 * through the run panel) and its FLAIR as a DICOM series (opened and segmented by the deep link).
 * Both are segmented by the golden mini SAM2-UNet (random weights, binary head, config detected
 * from the checkpoint's shapes): the real engine end to end in ~15 s. Pixels are counted in
 * element screenshots; screenshots are kept in test-output/e2e; console errors fail the tests.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { type Pixels, countPixels, haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';
import type { WebServer } from '../../main/web/server.ts';

const phantoms = resolve(root, '../shared/data/phantoms');
const niftiStudy = join(phantoms, 'BraTS20_Training_001');
const dicomStudy = join(phantoms, 'BraTS20_Training_001_flair_dicom');
const miniCheckpoint = resolve(root, '../shared/golden/sam2unet_mini/sam2unet.pth');

const VIEWS = ['axial', 'sagittal', 'coronal'] as const;
/** a whole segmentation of 155 slices by the mini model takes ~15 s alone; CI machines are busy */
const SEGMENT_TIMEOUT = 150_000;

describe.skipIf(!haveChromium)('workstation in the browser (web bridge + renderer in Chromium)', () => {
  let workstation: Workstation;
  let server: WebServer;
  let browser: BrowserContext;
  let exportDir: string;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    workstation = await startWorkstation();
    ({ server, browser, exportDir } = workstation);
  });

  afterAll(async () => {
    await workstation?.close();
  });

  const newPage = () => pageRecordingErrors(browser, consoleErrors);

  const viewport = (page: Page, view: string) => page.getByTestId(`viewport-${view}`);
  const rendered = (page: Page, view: string) => () => viewport(page, view).getAttribute('data-rendered-slice');
  const sliceLabel = (page: Page, view: string) => () => page.getByTestId(`slice-label-${view}`).textContent();
  const shot = (page: Page, name: string) => page.screenshot({ path: join(outDir, name) });

  /** Every view shows the brain: a good part of each square viewport is lit. */
  async function expectBrainInEveryView(page: Page, prefix: string): Promise<Record<string, Pixels>> {
    const counts: Record<string, Pixels> = {};
    for (const view of VIEWS) {
      const pixels = await countPixels(page, `[data-testid=viewport-${view}]`, join(outDir, `${prefix}-${view}.png`));
      counts[view] = pixels;
      expect(pixels.lit / pixels.total, `${view} view lit fraction`).toBeGreaterThan(0.1);
    }
    console.log(`${prefix} (${await viewport(page, 'axial').getAttribute('data-backend')}): ${VIEWS.map((v) => `${v} ${counts[v]!.lit}/${counts[v]!.total} lit, ${counts[v]!.coloured} coloured`).join('; ')}`);
    return counts;
  }

  describe('NIfTI study (BraTS phantom 001, four sequences and ground truth)', () => {
    let page: Page;
    beforeAll(async () => {
      page = await newPage();
    });

    it('opens the study by path and shows it in three orthographic views with the ground truth', async () => {
      const started = performance.now();
      await page.goto(server.url);
      await page.getByTestId('open-path').fill(niftiStudy);
      await page.getByTestId('open-button').click();
      // generous: reading four gzipped volumes on a busy 2-core machine takes a while
      await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(1);
      expect(await page.getByTestId('series').count()).toBe(4);
      await expect.poll(rendered(page, 'axial'), { timeout: 60_000 }).toBe('77');
      await expect.poll(rendered(page, 'sagittal'), { timeout: 30_000 }).toBe('120');
      await expect.poll(rendered(page, 'coronal'), { timeout: 30_000 }).toBe('120');
      console.log(`opened and shown in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      expect(await sliceLabel(page, 'axial')()).toBe('78/155');
      expect(await page.getByTestId('position-axial').textContent()).toMatch(/^z -?\d+\.\d mm$/);
      expect(await page.getByTestId('cursor-readout').textContent()).toMatch(/^voxel \(120, 120, 77\) · LPS \(.+\) mm · flair \d+/);
      await page.getByTestId('show-crosshair').uncheck();
      await shot(page, 'nifti-01-opened.png');
      const counts = await expectBrainInEveryView(page, 'nifti-01');
      // the ground-truth overlay (BraTS colours) is on the tumour in every view
      for (const view of VIEWS) expect(counts[view]!.coloured, `${view} ground-truth overlay`).toBeGreaterThan(200);
      expect(consoleErrors).toEqual([]);
    });

    it('syncs the crosshair: a click in the axial view moves the sagittal and coronal views', async () => {
      await page.getByTestId('show-crosshair').check();
      const box = (await viewport(page, 'axial').boundingBox())!;
      await page.mouse.click(box.x + box.width * 0.3, box.y + box.height * 0.7);
      await expect.poll(rendered(page, 'sagittal')).not.toBe('120');
      await expect.poll(rendered(page, 'coronal')).not.toBe('120');
      expect(await rendered(page, 'axial')()).toBe('77');
      // left of centre is the patient's right (low x index? no: flipped to radiological), below centre posterior
      const sagittal = Number(await rendered(page, 'sagittal')());
      const coronal = Number(await rendered(page, 'coronal')());
      expect(Math.abs(sagittal - 120)).toBeGreaterThan(30);
      expect(Math.abs(coronal - 120)).toBeGreaterThan(30);
      await shot(page, 'nifti-02-crosshair.png');
      // and back from the sagittal view: its click moves the axial view
      const sbox = (await viewport(page, 'sagittal').boundingBox())!;
      await page.mouse.click(sbox.x + sbox.width / 2, sbox.y + sbox.height * 0.35);
      await expect.poll(rendered(page, 'axial')).not.toBe('77');
    });

    it('steps slices with keys and the wheel in the active view, and zooms', async () => {
      await viewport(page, 'axial').hover();
      await page.mouse.wheel(0, 100);
      const start = Number(await rendered(page, 'axial')());
      await page.keyboard.press('ArrowUp');
      await page.keyboard.press('ArrowUp');
      await expect.poll(rendered(page, 'axial')).toBe(String(start + 2));
      await page.keyboard.press('PageDown');
      await expect.poll(rendered(page, 'axial')).toBe(String(start - 8));
      await page.keyboard.press('Home');
      await expect.poll(sliceLabel(page, 'axial')).toBe('1/155');
      await page.keyboard.press('End');
      await expect.poll(sliceLabel(page, 'axial')).toBe('155/155');
      for (let i = 0; i < 7; i++) await page.keyboard.press('PageDown');
      await expect.poll(sliceLabel(page, 'axial')).toBe('85/155');
      // ctrl+wheel zooms the view under the pointer: the brain covers more of it
      await page.getByTestId('show-crosshair').uncheck();
      const before = await countPixels(page, '[data-testid=viewport-coronal]');
      await viewport(page, 'coronal').hover();
      await page.keyboard.down('Control');
      await page.mouse.wheel(0, -300);
      await page.keyboard.up('Control');
      await expect.poll(async () => (await countPixels(page, '[data-testid=viewport-coronal]')).lit).toBeGreaterThan(before.lit * 1.2);
      await shot(page, 'nifti-03-zoomed.png');
      // shift-drag pans it
      const zoomed = await viewport(page, 'coronal').screenshot();
      const box = (await viewport(page, 'coronal').boundingBox())!;
      await page.keyboard.down('Shift');
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2 + 30, { steps: 3 });
      await page.mouse.up();
      await page.keyboard.up('Shift');
      await expect.poll(async () => Buffer.compare(zoomed, await viewport(page, 'coronal').screenshot())).not.toBe(0);
      await page.getByRole('button', { name: 'reset zoom and pan of the coronal view' }).click();
    });

    it('changes window/level by dragging, presets and keys, and resets it', async () => {
      const width = () => page.getByTestId('window-width').inputValue();
      const initial = await width();
      const box = (await viewport(page, 'axial').boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width / 2 + 80, box.y + box.height / 2 + 40, { steps: 4 });
      await page.mouse.up();
      await expect.poll(width).not.toBe(initial);
      await page.getByRole('button', { name: 'Reset W/L' }).click();
      await expect.poll(width).toBe(initial);
      await page.keyboard.press('3');
      await expect.poll(width).toBe(String(Math.round(Number(initial) / 2)));
      await page.getByTestId('preset-1').click();
      await expect.poll(width).toBe(initial);
    });

    it('switches sequence and toggles the overlay with O', async () => {
      await page.getByTestId('sequence').selectOption('t1ce');
      await expect.poll(() => page.getByTestId('series').and(page.locator('.current')).textContent(), { timeout: 30_000 }).toMatch(/T1 post-contrast/);
      // the select shows the human name and keeps the key as its value
      expect(await page.getByTestId('sequence').evaluate((s: HTMLSelectElement) => [s.value, s.selectedOptions[0]!.textContent])).toEqual(['t1ce', 'T1 post-contrast']);
      await expect.poll(async () => (await countPixels(page, '[data-testid=viewport-axial]')).lit, { timeout: 30_000 }).toBeGreaterThan(20_000);
      await page.getByTestId('sequence').selectOption('flair');
      // through the tumour (centre, a little anterior) in the sagittal and coronal views
      const box = (await viewport(page, 'axial').boundingBox())!;
      await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.4);
      const coloured = async () => (await countPixels(page, '[data-testid=viewport-sagittal]')).coloured;
      expect(await coloured()).toBeGreaterThan(200);
      await page.keyboard.press('o');
      await expect.poll(coloured).toBeLessThan(20);
      await page.keyboard.press('o');
      await expect.poll(coloured).toBeGreaterThan(200);
    });

    it('adds the golden mini checkpoint and segments: slices stream in, overlay pixels appear, Dice per slice', async () => {
      expect(await page.getByTestId('segment-unavailable').count()).toBe(0);
      await page.getByTestId('checkpoint').fill(miniCheckpoint);
      await page.getByTestId('add-model').click();
      await expect.poll(() => page.getByTestId('model').inputValue(), { timeout: 30_000 }).toBe(miniCheckpoint);
      await page.getByTestId('overlay-visible').check();
      const started = performance.now();
      await page.getByTestId('segment').click();
      await expect.poll(() => page.getByTestId('job-status').textContent(), { timeout: 10_000 }).toMatch(/^running/);
      await expect.poll(async () => Number(/(\d+)\/155/.exec((await page.getByTestId('job-status').textContent()) ?? '')?.[1] ?? 0), { timeout: SEGMENT_TIMEOUT }).toBeGreaterThan(0);
      await shot(page, 'nifti-04-streaming.png');
      await page.getByTestId('segmentation-done').waitFor({ timeout: SEGMENT_TIMEOUT });
      console.log(`segmentation (mini model, 155 slices) finished in ${((performance.now() - started) / 1000).toFixed(1)} s: ${await page.getByTestId('job-status').textContent()}`);
      expect(await page.getByTestId('overlay-source').inputValue()).toBe('prediction');
      // the prediction overlay: the mini model (random weights) marks much of the brain
      await page.getByTestId('show-crosshair').uncheck();
      const counts = await expectBrainInEveryView(page, 'nifti-05-prediction');
      for (const view of VIEWS) expect(counts[view]!.coloured, `${view} prediction overlay`).toBeGreaterThan(200);
      // the difference map has its own colours (false positives magenta, false negatives cyan)
      await page.getByTestId('overlay-source').selectOption('difference');
      expect((await countPixels(page, '[data-testid=viewport-axial]', join(outDir, 'nifti-06-difference-axial.png'))).coloured).toBeGreaterThan(200);
      await page.getByTestId('overlay-mode').selectOption('outline');
      await shot(page, 'nifti-06-difference-outline.png');
      await page.getByTestId('overlay-mode').selectOption('fill');
      await page.getByTestId('overlay-source').selectOption('prediction');
      expect(consoleErrors).toEqual([]);
    });

    it('plots one Dice point per slice; clicking a point shows that axial slice', async () => {
      await expect.poll(() => page.getByTestId('dice-point').count()).toBe(155);
      const slices = await page.getByTestId('dice-point').evaluateAll((points) => points.map((p) => Number(p.getAttribute('data-slice'))));
      expect(new Set(slices).size).toBe(155);
      await page.locator('[data-testid=dice-point][data-slice="40"]').click();
      await expect.poll(rendered(page, 'axial')).toBe('40');
      expect(await sliceLabel(page, 'axial')()).toBe('41/155');
      expect(await page.locator('[data-testid=dice-point].current').getAttribute('data-slice')).toBe('40');
      await page.locator('[data-testid=dice-point][data-slice="90"]').click();
      await expect.poll(rendered(page, 'axial')).toBe('90');
      await shot(page, 'nifti-07-dice-jump.png');
    });

    it('acts on the desktop menu (menu events): overlay toggle, settings, export', async () => {
      const coloured = async () => (await countPixels(page, '[data-testid=viewport-axial]')).coloured;
      server.service.emitMenu('toggleOverlay');
      await expect.poll(coloured).toBeLessThan(20);
      server.service.emitMenu('toggleOverlay');
      await expect.poll(coloured).toBeGreaterThan(200);
      server.service.emitMenu('settings');
      await page.getByTestId('settings-dialog').waitFor({ state: 'visible' });
      // label colours are settings: necrotic core (the mini model's label) in blue
      await page.getByTestId('colour-necrotic').fill('#0000ff');
      const blue = () =>
        page.getByTestId('viewport-axial').screenshot().then((png) =>
          page.evaluate(async (bytes) => {
            const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)], { type: 'image/png' }));
            const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d')!;
            ctx.drawImage(bitmap, 0, 0);
            const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
            let n = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i + 2]! > data[i]! + 60 && data[i + 2]! > data[i + 1]! + 60) n++;
            return n;
          }, [...png]),
        );
      await page.getByTestId('settings-dialog-close').click();
      await expect.poll(blue).toBeGreaterThan(1000);
      await shot(page, 'nifti-07b-blue-necrotic.png');
      expect((await server.service.getSettings()).labelColors.necrotic).toBe('#0000ff');
      server.service.emitMenu('export');
      await page.getByTestId('export-dialog').waitFor({ state: 'visible' });
      await page.getByTestId('export-dialog-close').click();
    });

    it('fine-tunes from the selected model with live loss, cancels, and selects the trained model', async () => {
      await page.getByTestId('training-panel').locator('summary').click();
      await page.getByRole('button', { name: 'Add the open study' }).click();
      expect(await page.getByTestId('train-data').inputValue()).toBe(niftiStudy);
      await page.getByTestId('train-val').fill(niftiStudy);
      await page.getByTestId('strategy-adapter').check();
      // a long run, cancelled once the loss curve has started
      await page.getByTestId('train-steps').fill('500');
      await page.getByLabel('batch').fill('1');
      await page.getByLabel('input size').fill('64');
      await page.getByLabel('run name').fill('e2e-cancelled');
      await page.getByTestId('train-start').click();
      await expect.poll(() => page.getByTestId('train-status').textContent(), { timeout: 60_000 }).toMatch(/step [1-9]\d*\//);
      await page.getByTestId('train-cancel').click();
      await expect.poll(() => page.getByTestId('train-status').textContent(), { timeout: 30_000 }).toMatch(/ · cancelled · /);
      // resume, when the cancelled run left a checkpoint to resume from
      const resume = page.getByTestId('train-runs').locator('li', { hasText: 'e2e-cancelled' }).getByTestId('train-resume');
      if (await resume.count()) {
        await resume.click();
        await expect.poll(() => page.getByTestId('train-status').textContent(), { timeout: 60_000 }).toMatch(/resumed at \d+/);
        await page.getByTestId('train-cancel').click();
        await expect.poll(() => page.getByTestId('train-status').textContent(), { timeout: 30_000 }).toMatch(/ · cancelled · /);
      } else {
        console.warn('the cancelled run left no checkpoint to resume from (cancelled before the first checkpoint)');
      }
      // a short run to the end: its model becomes the selected one
      await page.getByTestId('train-steps').fill('3');
      await page.getByLabel('run name').fill('e2e-done');
      const started = performance.now();
      await page.getByTestId('train-start').click();
      await expect.poll(() => page.getByTestId('train-status').textContent(), { timeout: 90_000 }).toMatch(/ · done · /);
      expect(await page.getByTestId('train-status').textContent()).toMatch(/step 3\/3/);
      console.log(`training (3 steps, 64 px, adapter): ${((performance.now() - started) / 1000).toFixed(1)} s; ${await page.getByTestId('train-status').textContent()}`);
      expect(await page.getByTestId('loss-chart').locator('polyline').first().getAttribute('points')).toMatch(/\d,\d.* \d/);
      await expect.poll(() => page.getByTestId('model').inputValue()).toMatch(/e2e-done/);
      await shot(page, 'nifti-07c-trained.png');
      await page.getByTestId('model').selectOption(miniCheckpoint);
      expect(consoleErrors).toEqual([]);
    });

    it('exports the prediction as NIfTI and a report, and the ground truth as NIfTI', async () => {
      await page.getByTestId('export-open').click();
      await page.getByTestId('export-source').selectOption('prediction');
      // a DICOM SEG needs DICOM images: for a NIfTI study the dialog says why not
      expect(await page.getByTestId('export-dicom-seg').isDisabled()).toBe(true);
      const links = page.getByTestId('exports').locator('li');
      await page.getByTestId('export-nifti').click();
      await expect.poll(() => links.count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
      expect(statSync(join(exportDir, 'BraTS20_Training_001_pred.nii.gz')).size).toBeGreaterThan(1000);
      if (await page.getByTestId('export-report').isEnabled()) {
        await page.getByTestId('export-report').click();
        await expect.poll(() => page.getByTestId('exports').locator('li').count(), { timeout: 60_000 }).toBe(2);
        const report = join(exportDir, 'BraTS20_Training_001_report');
        const files = existsSync(report) && statSync(report).isDirectory() ? readdirSync(report) : readdirSync(exportDir);
        console.log(`report export: ${files.join(', ')}`);
        expect(files.some((f) => f.endsWith('.html'))).toBe(true);
      } else {
        console.warn(`report export not available: ${await page.getByTestId('export-blocked-report').textContent()}`);
      }
      const href = await page.getByTestId('exports').locator('a').first().getAttribute('href');
      const download = await fetch(new URL(href!, server.url));
      expect(download.status).toBe(200);
      await shot(page, 'nifti-08-exported.png');
      await page.getByTestId('export-dialog-close').click();
      expect(consoleErrors).toEqual([]);
    });
  });

  describe('DICOM series (FLAIR of phantom 001), by deep link', () => {
    it('opens ?open=<series>&segment=<checkpoint>, shows three views, segments and exports a DICOM SEG', async () => {
      const page = await newPage();
      const started = performance.now();
      const link = new URL(server.url);
      link.searchParams.set('open', dicomStudy);
      link.searchParams.set('segment', miniCheckpoint);
      // a FLAIR-only series: FLAIR feeds all three of the model's channels (a substitution the report states)
      link.searchParams.set('channels', 'flair');
      await page.goto(link.href);
      await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(1);
      expect(await page.getByTestId('study').textContent()).toMatch(/dicom/);
      for (const view of VIEWS) await expect.poll(rendered(page, view), { timeout: 30_000 }).not.toBe('-1');
      await page.getByTestId('show-crosshair').uncheck();
      await expect.poll(() => page.getByTestId('job-status').textContent(), { timeout: 30_000 }).toMatch(/^(running|done)/);
      await expectBrainInEveryView(page, 'dicom-01');
      await page.getByTestId('segmentation-done').waitFor({ timeout: SEGMENT_TIMEOUT });
      console.log(`DICOM deep link to finished segmentation: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      const counts = await expectBrainInEveryView(page, 'dicom-02-prediction');
      for (const view of VIEWS) expect(counts[view]!.coloured, `${view} prediction overlay`).toBeGreaterThan(200);
      await expect.poll(() => page.getByTestId('dice-point').count()).toBe(155);
      await page.locator('[data-testid=dice-point][data-slice="60"]').click();
      await expect.poll(rendered(page, 'axial')).toBe('60');
      // the run panel names the model the link ran, not the bundled one, and its substitutes
      expect(await page.getByTestId('model').inputValue()).toBe(miniCheckpoint);
      for (const channel of [1, 2, 3]) expect(await page.getByTestId(`channel-${channel}`).getAttribute('data-sequence')).toMatch(/^flair$/i);
      expect(await page.getByTestId('channels-missing').count()).toBe(0);
      await shot(page, 'dicom-03-segmented.png');

      await page.getByTestId('export-open').click();
      const dicomSeg = page.getByTestId('export-dicom-seg');
      if (await dicomSeg.isEnabled()) {
        await dicomSeg.click();
        await expect.poll(() => page.getByTestId('exports').locator('li').count(), { timeout: 60_000 }).toBe(1);
        const files = readdirSync(exportDir).filter((f) => f.endsWith('.dcm'));
        expect(files.length).toBeGreaterThan(0);
        expect(statSync(join(exportDir, files[0]!)).size).toBeGreaterThan(1000);
      } else {
        console.warn(`DICOM SEG export not available: ${await page.getByTestId('export-blocked-dicom-seg').textContent()}`);
      }
      await page.getByTestId('export-nifti').click();
      await expect.poll(() => page.getByTestId('exports').locator('li').count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
      await shot(page, 'dicom-04-exported.png');
      await page.getByTestId('export-dialog-close').click();

      // a path dropped on the window opens that study (browser mode: paths on the server)
      await page.evaluate((path) => {
        const data = new DataTransfer();
        data.setData('text/plain', path);
        document.querySelector('main')!.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      }, niftiStudy);
      await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(2);
      await expect.poll(() => page.getByTestId('series').count()).toBe(5);
      expect(consoleErrors).toEqual([]);
      await page.close();
    });
  });
});
