/**
 * A colour DICOM in the browser (issue 2: colour images are viewable, not segmentable as MRI):
 * pydicom's SC_rgb_jpeg_dcmtk.dcm (YBR_FULL JPEG, 100×100, one frame) opened by path, shown in
 * colour through Cornerstone's stack viewport (its CPU path, and its WebGL path read back), with Segment
 * disabled and the reason shown. Same server, browser and pixel counting as workstation.test.ts;
 * screenshots go to test-output/e2e; console errors fail the test.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { startWebServer } from '../../main/web/server.ts';
import type { WebServer } from '../../main/web/server.ts';

const root = resolve(import.meta.dirname, '../..');
const colourFile = resolve(root, '../shared/data/external/dicom/SC_rgb_jpeg_dcmtk.dcm');
const outDir = resolve(root, 'test-output/e2e');
const chromiumPath = '/usr/bin/chromium';
const haveChromium = existsSync(chromiumPath);
if (!haveChromium) console.warn(`e2e skipped: ${chromiumPath} is missing (apt-get install -y chromium)`);

/** Non-background and strongly coloured pixels of an element, and its mean R+G+B, counted in the page from a screenshot. */
async function countPixels(page: Page, selector: string, file?: string): Promise<{ lit: number; total: number; coloured: number; brightness: number }> {
  const png = await page.locator(selector).screenshot(file ? { path: file } : {});
  return page.evaluate(async (bytes) => {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)], { type: 'image/png' }));
    const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d')!;
    ctx.drawImage(bitmap, 0, 0);
    const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
    let lit = 0;
    let coloured = 0;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) {
      const r = data[i]!, g = data[i + 1]!, b = data[i + 2]!;
      sum += r + g + b;
      if (r + g + b > 30) lit++;
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    }
    return { lit, total: data.length / 4, coloured, brightness: sum / (data.length / 4) };
  }, [...png]);
}

describe.skipIf(!haveChromium)('colour DICOM in the browser', () => {
  let server: WebServer;
  let browser: BrowserContext;
  let profile: string;
  let exportDir: string;
  let dataDir: string;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(outDir, { recursive: true });
    const { build } = await import('vite');
    await build({ configFile: resolve(root, 'renderer/vite.config.ts'), logLevel: 'error' });
    exportDir = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-colour-exports-'));
    dataDir = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-colour-data-'));
    server = await startWebServer({ port: 0, rendererDir: resolve(root, 'renderer/dist'), exportDir, dataDir, log: () => {} });
    profile = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-colour-profile-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    for (const dir of [profile, exportDir, dataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('opens SC_rgb_jpeg_dcmtk.dcm in colour, with Segment disabled and the reason shown', async () => {
    const page = await browser.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(err.message));
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
    const page = await browser.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(err.message));
    const link = new URL(server.url);
    link.searchParams.set('render', 'gpu');
    link.searchParams.set('open', colourFile);
    await page.goto(link.href);
    await expect.poll(() => page.getByTestId('viewport-axial').getAttribute('data-rendered-slice'), { timeout: 30_000 }).not.toBe('-1');
    expect(await page.getByTestId('viewport-axial').getAttribute('data-backend')).toBe('webgl');
    // the page shows SwiftShader's WebGL canvas wrongly (viewer.ts, webglKind), so the pixels are read from the canvas itself
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
