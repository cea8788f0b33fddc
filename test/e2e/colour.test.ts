/**
 * A colour DICOM in the browser (issue 2: colour images are viewable, not segmentable as MRI):
 * pydicom's SC_rgb_jpeg_dcmtk.dcm (YBR_FULL JPEG, 100×100, one frame) opened by path, shown in
 * colour through Cornerstone's stack viewport (its CPU path, and its WebGL path read back), with Segment
 * disabled and the reason shown. Same server, browser and pixel counting as workstation.test.ts;
 * screenshots go to test-output/e2e; console errors fail the test.
 */
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { countPixels, haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';
import type { WebServer } from '../../main/web/server.ts';

const colourFile = resolve(root, '../shared/data/external/dicom/SC_rgb_jpeg_dcmtk.dcm');

describe.skipIf(!haveChromium)('colour DICOM in the browser', () => {
  let workstation: Workstation;
  let server: WebServer;
  let browser: BrowserContext;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    workstation = await startWorkstation();
    ({ server, browser } = workstation);
  });

  afterAll(async () => {
    await workstation?.close();
  });

  it('opens SC_rgb_jpeg_dcmtk.dcm in colour, with Segment disabled and the reason shown', async () => {
    const page = await pageRecordingErrors(browser, consoleErrors);
    await page.goto(server.url);
    await page.getByTestId('open-path').fill(colourFile);
    await page.getByTestId('open-button').click();
    await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(1);
    expect(await page.getByTestId('study').textContent()).toMatch(/colour/);
    for (const view of ['axial', 'sagittal', 'coronal']) {
      await expect.poll(() => page.getByTestId(`viewport-${view}`).getAttribute('data-rendered-slice'), { timeout: 30_000 }).not.toBe('-1');
    }
    await page.getByTestId('show-crosshair').uncheck();

    const axial = await countPixels(page, '[data-testid=viewport-axial]', join(outDir, 'colour-01-axial.png'));
    console.log(`colour (${await page.getByTestId('viewport-axial').getAttribute('data-backend')}): axial ${axial.lit}/${axial.total} lit, ${axial.coloured} strongly coloured`);
    // the 100×100 image fills the square view; most of it is saturated colour bands
    expect(axial.lit / axial.total).toBeGreaterThan(0.5);
    expect(axial.coloured / axial.total).toBeGreaterThan(0.3);
    // the one-row sagittal and coronal planes are colour too
    for (const view of ['sagittal', 'coronal']) {
      expect((await countPixels(page, `[data-testid=viewport-${view}]`, join(outDir, `colour-01-${view}.png`))).coloured, `${view} coloured pixels`).toBeGreaterThan(50);
    }

    const segment = page.getByTestId('segment');
    expect(await segment.isDisabled()).toBe(true);
    expect(await page.getByTestId('segment-refused').textContent()).toMatch(/colour images cannot be segmented as MRI/);
    expect(await page.getByTestId('overlay-visible').count()).toBe(0);
    expect(await page.getByTestId('cursor-readout').textContent()).toMatch(/RGB \(\d+, \d+, \d+\)/);

    // the window acts on each channel: a narrow one pushes the greys and pale bands to 0 or 255
    // (the picture changes, hues stay), and Reset brings the stored colours back
    const brightness = async () => Math.round((await countPixels(page, '[data-testid=viewport-axial]')).brightness);
    await page.getByTestId('window-width').fill('20');
    await page.getByTestId('window-width').blur();
    await expect.poll(brightness).not.toBe(Math.round(axial.brightness));
    const narrow = await countPixels(page, '[data-testid=viewport-axial]', join(outDir, 'colour-02-narrow-window-axial.png'));
    console.log(`narrow window: brightness ${axial.brightness.toFixed(1)} → ${narrow.brightness.toFixed(1)}, coloured ${narrow.coloured}`);
    expect(narrow.coloured / narrow.total).toBeGreaterThan(0.3);
    await page.getByRole('button', { name: 'Reset W/L' }).click();
    await expect.poll(brightness).toBe(Math.round(axial.brightness));

    await page.screenshot({ path: join(outDir, 'colour-03-page.png') });
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  it('is colour on the WebGL path too (?render=gpu; read back from Cornerstone canvas)', async () => {
    const page = await pageRecordingErrors(browser, consoleErrors);
    const link = new URL(server.url);
    link.searchParams.set('render', 'gpu');
    link.searchParams.set('open', colourFile);
    await page.goto(link.href);
    await expect.poll(() => page.getByTestId('viewport-axial').getAttribute('data-rendered-slice'), { timeout: 30_000 }).not.toBe('-1');
    expect(await page.getByTestId('viewport-axial').getAttribute('data-backend')).toBe('webgl');
    // read from Cornerstone's WebGL canvas itself, so that what is measured is that path's own output (its greys once came
    // out inverted: not SwiftShader's doing but a first window of 0/0, which viewer.ts now replaces with the real one)
    const readBack = () =>
      page.evaluate(() => {
        const canvas = document.querySelector<HTMLCanvasElement>('[data-testid=viewport-axial] canvas.cornerstone-canvas')!;
        const ctx = new OffscreenCanvas(canvas.width, canvas.height).getContext('2d')!;
        ctx.drawImage(canvas, 0, 0);
        const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
        let coloured = 0;
        for (let i = 0; i < data.length; i += 4) if (Math.max(data[i]!, data[i + 1]!, data[i + 2]!) - Math.min(data[i]!, data[i + 1]!, data[i + 2]!) > 60) coloured++;
        return coloured / (data.length / 4);
      });
    await expect.poll(readBack, { timeout: 10_000 }).toBeGreaterThan(0.3);
    expect(consoleErrors).toEqual([]);
    await page.close();
  });
});
