/**
 * The views and the first screen in the browser (issue 12): pan, zoom and W/L keep the image on
 * Cornerstone's CPU path and its WebGL path (SwiftShader), greys not inverted; no stale view
 * error after switching between studies of different sizes; orientation markers and scale bar
 * that follow the camera and the radiological/neurological setting; the first screen at
 * 1280×720 (Browse… lists the server's read root, the sample study opens, Segment in view).
 *
 * One server limited to the shared phantoms folder (`--root`), Debian's Chromium through the
 * shared harness; screenshots go to test-output/e2e (viewer-*.png); console errors fail the tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { haveChromium, launchBrowser, outDir, pageRecordingErrors, rendererDir, root } from './harness.ts';
import { startWebServer } from '../../main/web/server.ts';
import type { WebServer } from '../../main/web/server.ts';
import { writePhantoms } from '../../main/core/phantom/index.ts';

const phantoms = resolve(root, '../shared/data/phantoms');
const study001 = join(phantoms, 'BraTS20_Training_001');
const miniCheckpoint = resolve(root, '../shared/golden/sam2unet_mini/sam2unet.pth');
const VIEWS = ['axial', 'sagittal', 'coronal'] as const;

describe.skipIf(!haveChromium)('views and first screen in the browser', () => {
  let server: WebServer;
  let browser: BrowserContext;
  let profile: string;
  let dataDir: string;
  let exportDir: string;
  /** small phantoms of another size than 001's 240×240×155 */
  let smallDir: string;
  let small: string;
  let smallCases: string[];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-viewer-data-'));
    exportDir = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-viewer-exports-'));
    smallDir = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-viewer-small-'));
    const written = await writePhantoms({ out: smallDir, cases: 6, seed: 5, size: [96, 112, 60] });
    smallCases = written.map((w) => join(smallDir, w.name));
    small = smallCases[0]!;
    server = await startWebServer({ port: 0, rendererDir, exportDir, dataDir, roots: [phantoms, smallDir, dirname(miniCheckpoint)], log: () => {}, noToken: true });
    ({ browser, profile } = await launchBrowser());
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    for (const dir of [profile, dataDir, exportDir, smallDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const viewport = (page: Page, view: string) => page.getByTestId(`viewport-${view}`);
  const rendered = (page: Page, view: string) => () => viewport(page, view).getAttribute('data-rendered-slice');
  const shot = (page: Page, name: string) => page.screenshot({ path: join(outDir, name) });

  async function openByLink(page: Page, path: string, render?: 'cpu' | 'gpu') {
    const link = new URL(server.url);
    if (render) link.searchParams.set('render', render);
    link.searchParams.set('open', path);
    await page.goto(link.href);
    for (const view of VIEWS) await expect.poll(rendered(page, view), { timeout: 60_000 }).not.toBe('-1');
  }

  /**
   * Grey order and content of a view from its screenshot: the mean brightness of the corner
   * patches (background: must be dark) and of the central patch (brain), and the lit fraction.
   */
  async function greys(page: Page, view: string, file?: string) {
    const png = await viewport(page, view).screenshot(file ? { path: join(outDir, file) } : {});
    return page.evaluate(async (bytes) => {
      const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)], { type: 'image/png' }));
      const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d')!;
      ctx.drawImage(bitmap, 0, 0);
      const { width, height } = bitmap;
      const { data } = ctx.getImageData(0, 0, width, height);
      const mean = (x0: number, y0: number, w: number, h: number) => {
        let sum = 0;
        for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) sum += (data[4 * (y * width + x)]! + data[4 * (y * width + x) + 1]! + data[4 * (y * width + x) + 2]!) / 3;
        return sum / (w * h);
      };
      const p = Math.round(width / 12);
      // corner patches inset below the convention label and off the markers
      const corner = Math.max(mean(p, 2 * p, p, p), mean(width - 2 * p, 2 * p, p, p), mean(p, height - 3 * p, p, p));
      const centre = mean(Math.round(width * 0.3), Math.round(height * 0.3), Math.round(width * 0.4), Math.round(height * 0.4));
      let lit = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i]! + data[i + 1]! + data[i + 2]! > 30) lit++;
      return { corner, centre, lit: lit / (width * height) };
    }, [...png]);
  }

  async function drag(page: Page, view: string, dx: number, dy: number, how: 'shift' | 'middle' | 'left') {
    const box = (await viewport(page, view).boundingBox())!;
    const x = box.x + box.width / 2;
    const y = box.y + box.height / 2;
    if (how === 'shift') await page.keyboard.down('Shift');
    await page.mouse.move(x, y);
    await page.mouse.down({ button: how === 'middle' ? 'middle' : 'left' });
    await page.mouse.move(x + dx, y + dy, { steps: 4 });
    await page.mouse.up({ button: how === 'middle' ? 'middle' : 'left' });
    if (how === 'shift') await page.keyboard.up('Shift');
  }

  for (const render of ['cpu', 'webgl'] as const) {
    it(`pan, zoom and W/L keep the image, greys the right way round (${render} path)`, async () => {
      const page = await pageRecordingErrors(browser, consoleErrors);
      await openByLink(page, study001, render === 'cpu' ? 'cpu' : 'gpu');
      expect(await viewport(page, 'axial').getAttribute('data-backend')).toBe(render);
      await page.getByTestId('show-crosshair').uncheck();
      await page.getByTestId('overlay-visible').uncheck();
      const before = await greys(page, 'axial', `viewer-01-${render}-before.png`);
      console.log(`${render} before: ${JSON.stringify(before)}`);
      // a dark background and a brighter brain: not blank, not inverted
      expect(before.corner).toBeLessThan(20);
      expect(before.centre).toBeGreaterThan(before.corner + 40);
      expect(before.lit).toBeGreaterThan(0.2);

      const png = await viewport(page, 'axial').screenshot();
      await drag(page, 'axial', 4, 4, 'shift');
      await expect.poll(async () => Buffer.compare(png, await viewport(page, 'axial').screenshot())).not.toBe(0);
      const small = await greys(page, 'axial', `viewer-02-${render}-pan-4px.png`);
      await drag(page, 'axial', 40, 20, 'middle');
      const far = await greys(page, 'axial', `viewer-03-${render}-pan-middle.png`);
      console.log(`${render} after 4 px shift-pan: ${JSON.stringify(small)}; after 40 px middle-pan: ${JSON.stringify(far)}`);
      for (const after of [small, far]) {
        expect(after.lit).toBeGreaterThan(before.lit * 0.85);
        expect(after.corner).toBeLessThan(20);
      }
      // the bright centre moved with the image but it is still there
      expect(far.centre).toBeGreaterThan(far.corner + 40);

      // W/L by dragging: the background stays black, the brain stays brighter
      const width = await page.getByTestId('window-width').inputValue();
      await drag(page, 'axial', 60, -30, 'left');
      await expect.poll(() => page.getByTestId('window-width').inputValue()).not.toBe(width);
      const windowed = await greys(page, 'axial', `viewer-04-${render}-windowed.png`);
      expect(windowed.corner).toBeLessThan(20);
      expect(windowed.centre).toBeGreaterThan(windowed.corner + 40);

      // zoom in on the brain: more of the view is lit, and it is not one flat grey
      await viewport(page, 'axial').hover();
      await page.keyboard.down('Control');
      await page.mouse.wheel(0, -150);
      await page.keyboard.up('Control');
      await expect.poll(async () => (await greys(page, 'axial')).lit).toBeGreaterThan(before.lit * 1.2);
      const zoomed = await greys(page, 'axial', `viewer-05-${render}-zoomed.png`);
      console.log(`${render} windowed: ${JSON.stringify(windowed)}; zoomed: ${JSON.stringify(zoomed)}`);
      expect(zoomed.centre).toBeGreaterThan(20);
      await page.getByRole('button', { name: 'Reset W/L' }).click();

      await page.getByRole('button', { name: 'reset zoom and pan of the axial view' }).click();
      await expect.poll(async () => Math.abs((await greys(page, 'axial')).lit - before.lit)).toBeLessThan(0.02);
      // another sequence is a new stack: its greys start the right way round too
      await page.getByTestId('sequence').selectOption('t1');
      await expect.poll(async () => (await greys(page, 'axial')).centre, { timeout: 30_000 }).not.toBeCloseTo(before.centre, 0);
      const t1 = await greys(page, 'axial', `viewer-06-${render}-t1.png`);
      console.log(`${render} t1: ${JSON.stringify(t1)}`);
      expect(t1.corner).toBeLessThan(20);
      expect(t1.centre).toBeGreaterThan(t1.corner + 40);
      await shot(page, `viewer-06-${render}-page.png`);
      expect(consoleErrors).toEqual([]);
      await page.close();
    });
  }

  it('shows orientation markers and a scale bar that follow zoom and the radiological/neurological setting', async () => {
    const page = await pageRecordingErrors(browser, consoleErrors);
    await openByLink(page, study001);
    const markers = async (view: string) =>
      Object.fromEntries(await Promise.all(['left', 'right', 'top', 'bottom'].map(async (edge) => [edge, await page.getByTestId(`marker-${view}-${edge}`).textContent()])));
    // radiological (the default): the patient's left on screen right
    expect(await markers('axial')).toEqual({ left: 'R', right: 'L', top: 'A', bottom: 'P' });
    expect(await markers('coronal')).toEqual({ left: 'R', right: 'L', top: 'S', bottom: 'I' });
    expect(await markers('sagittal')).toEqual({ left: 'A', right: 'P', top: 'S', bottom: 'I' });
    expect(await page.getByTestId('convention-axial').textContent()).toBe('Radiological');

    // the bar is as long on screen as its millimetres at the view's scale: 240 mm across the fitted view
    const bar = async (view: string) => {
      const element = page.getByTestId(`scale-bar-${view}`);
      return { mm: Number(await element.getAttribute('data-mm')), px: (await element.boundingBox())!.width, text: await element.textContent() };
    };
    const viewWidth = (await viewport(page, 'axial').boundingBox())!.width;
    const fitted = await bar('axial');
    console.log(`scale bar: ${fitted.text} over ${fitted.px.toFixed(1)} px of a ${viewWidth.toFixed(0)} px view`);
    expect(fitted.text).toBe(`${fitted.mm} mm`);
    expect(fitted.mm / fitted.px).toBeCloseTo(240 / viewWidth, 1);
    for (const view of VIEWS) expect((await bar(view)).mm).toBeGreaterThan(0);
    await viewport(page, 'axial').hover();
    await page.keyboard.down('Control');
    await page.mouse.wheel(0, -400);
    await page.keyboard.up('Control');
    await expect.poll(async () => (await bar('axial')).mm / (await bar('axial')).px).toBeLessThan((fitted.mm / fitted.px) * 0.8);
    await shot(page, 'viewer-07-markers-zoomed.png');
    await page.getByRole('button', { name: 'reset zoom and pan of the axial view' }).click();

    const plain = await viewport(page, 'axial').screenshot();
    await page.getByTestId('settings-open').click();
    await page.getByTestId('view-convention').selectOption('neurological');
    await page.getByTestId('settings-dialog-close').click();
    await expect.poll(() => page.getByTestId('marker-axial-left').textContent()).toBe('L');
    expect(await markers('axial')).toEqual({ left: 'L', right: 'R', top: 'A', bottom: 'P' });
    expect(await markers('coronal')).toEqual({ left: 'L', right: 'R', top: 'S', bottom: 'I' });
    expect(await markers('sagittal')).toEqual({ left: 'A', right: 'P', top: 'S', bottom: 'I' });
    expect(await page.getByTestId('convention-coronal').textContent()).toBe('Neurological');
    expect(Buffer.compare(plain, await viewport(page, 'axial').screenshot())).not.toBe(0);
    expect((await server.service.getSettings()).viewConvention).toBe('neurological');
    await shot(page, 'viewer-08-neurological.png');
    // a click still lands on the voxel under the pointer: the right half of the screen is now the patient's right (low x index)
    const box = (await viewport(page, 'axial').boundingBox())!;
    await page.mouse.click(box.x + box.width * 0.8, box.y + box.height / 2);
    const voxel = /voxel \((\d+), (\d+), (\d+)\)/.exec((await page.getByTestId('cursor-readout').textContent()) ?? '');
    expect(Number(voxel?.[1])).toBeLessThan(120);
    await page.getByTestId('settings-open').click();
    await page.getByTestId('view-convention').selectOption('radiological');
    await page.getByTestId('settings-dialog-close').click();
    await expect.poll(() => page.getByTestId('marker-axial-left').textContent()).toBe('R');
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  it('leaves no stale view error after switching between studies of different sizes, and messages do not move the views', async () => {
    const page = await pageRecordingErrors(browser, consoleErrors);
    await openByLink(page, study001);
    await expect.poll(rendered(page, 'axial')).toBe('77');
    // the small phantom by typed path (the study list's box), then back and forth
    await page.getByTestId('open-path').fill(small);
    await page.getByTestId('open-button').click();
    await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(2);
    await expect.poll(rendered(page, 'axial'), { timeout: 30_000 }).toBe('30');
    for (let round = 0; round < 3; round++) {
      await page.getByTestId('study').nth(0).click();
      await expect.poll(() => page.getByTestId('slice-label-axial').textContent(), { timeout: 30_000 }).toMatch(/\/155$/);
      await page.keyboard.press('End');
      await page.getByTestId('study').nth(1).click();
      await expect.poll(() => page.getByTestId('slice-label-axial').textContent(), { timeout: 30_000 }).toMatch(/\/60$/);
    }
    for (const view of VIEWS) await expect.poll(rendered(page, view)).not.toBe('-1');
    await page.waitForTimeout(500);
    expect(await page.getByTestId('viewer-error').count()).toBe(0);
    await shot(page, 'viewer-09-switched.png');

    // an error is a toast over the page: the views stay where they are, and it can be dismissed
    const views = await page.getByTestId('viewports').boundingBox();
    await page.getByTestId('open-path').fill(join(phantoms, 'no-such-study'));
    await page.getByTestId('open-button').click();
    await page.getByTestId('error').waitFor({ state: 'visible' });
    expect(await page.getByTestId('viewports').boundingBox()).toEqual(views);
    await shot(page, 'viewer-10-error-toast.png');
    await page.getByTestId('error-dismiss').click();
    expect(await page.getByTestId('error').count()).toBe(0);
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  it('shows the predicted label in the cursor read-out beside the ground truth', async () => {
    const page = await pageRecordingErrors(browser, consoleErrors);
    const link = new URL(server.url);
    link.searchParams.set('open', small);
    link.searchParams.set('segment', miniCheckpoint);
    await page.goto(link.href);
    await page.getByTestId('segmentation-done').waitFor({ timeout: 150_000 });
    const readout = () => page.getByTestId('cursor-readout').textContent();
    // before any click: the centre voxel, read from the finished prediction
    expect(await readout()).toMatch(/ · predicted label [0124] · ground-truth label [0124]$/);
    // the label under a clicked voxel is the one in the prediction there (the mini model marks much of the brain)
    const box = (await viewport(page, 'axial').boundingBox())!;
    const labels = new Set<string>();
    for (const [fx, fy] of [[0.5, 0.5], [0.3, 0.4], [0.7, 0.6], [0.05, 0.05]]) {
      await page.mouse.click(box.x + box.width * fx!, box.y + box.height * fy!);
      labels.add(/predicted label (\d)/.exec((await readout()) ?? '')?.[1] ?? 'none');
    }
    console.log(`predicted labels under four clicks: ${[...labels].join(', ')}; ${await readout()}`);
    expect(labels.has('none')).toBe(false);
    expect(labels.size).toBeGreaterThan(1);
    await shot(page, 'viewer-11-readout-predicted.png');
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  it('first screen at 1280×720: Browse… lists the read root, a sample study opens, Segment is in view', async () => {
    // a long recent list, as after a few days' use: it must not push Segment out of view
    for (const path of smallCases) await server.service.openStudy({ path });
    const page = await pageRecordingErrors(browser, consoleErrors);
    await page.setViewportSize({ width: 1280, height: 720 });
    await page.goto(server.url);
    await page.getByTestId('first-screen').waitFor();
    await shot(page, 'viewer-12-first-screen.png');
    // the placeholder fits its box
    const fits = await page.getByTestId('welcome-path').evaluate((input: HTMLInputElement) => {
      const style = getComputedStyle(input);
      const ctx = document.createElement('canvas').getContext('2d')!;
      ctx.font = `${style.fontSize} ${style.fontFamily}`;
      const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      return { text: ctx.measureText(input.placeholder).width, room };
    });
    expect(fits.text).toBeLessThan(fits.room);
    const overflow = () => page.evaluate(() => ({ x: document.documentElement.scrollWidth, y: document.documentElement.scrollHeight }));
    expect((await overflow()).x).toBeLessThanOrEqual(1280);
    expect((await overflow()).y).toBeLessThanOrEqual(720);

    await page.getByTestId('welcome-browse').click();
    await page.getByTestId('file-browser').waitFor({ state: 'visible' });
    const entry = (name: string) => page.locator(`[data-testid=file-browser-entry][data-name="${name}"]`);
    await expect.poll(() => entry(phantoms).count()).toBe(1);
    await entry(phantoms).click();
    await expect.poll(() => page.getByTestId('file-browser-path').textContent()).toBe(phantoms);
    expect(await entry('BraTS20_Training_001').getAttribute('data-study')).toBe('brats');
    expect(await entry('BraTS20_Training_001_flair_dicom').getAttribute('data-study')).toBe('dicom');
    await shot(page, 'viewer-13-file-browser.png');
    // above the root: back to the places, never the folder above it
    await page.getByTestId('file-browser-up').click();
    await expect.poll(() => page.getByTestId('file-browser-path').textContent()).toBe('Places this server may read');
    await page.getByTestId('file-browser-close').click();

    await page.getByTestId('welcome-sample').click();
    await expect.poll(() => page.getByTestId('study').count(), { timeout: 90_000 }).toBe(1);
    for (const view of VIEWS) await expect.poll(rendered(page, view), { timeout: 60_000 }).not.toBe('-1');
    expect(await page.getByTestId('study').textContent()).toMatch(/Sample_Phantom/);
    const segment = (await page.getByTestId('segment').boundingBox())!;
    console.log(`Segment button at y ${segment.y.toFixed(0)}–${(segment.y + segment.height).toFixed(0)} of 720`);
    expect(segment.y + segment.height).toBeLessThanOrEqual(720);
    expect((await overflow()).x).toBeLessThanOrEqual(1280);
    await shot(page, 'viewer-14-sample-1280x720.png');
    expect(consoleErrors).toEqual([]);
    await page.close();
  });
});
