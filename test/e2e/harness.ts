/**
 * What every browser test shares: the paths, Debian's Chromium launched headless with
 * SwiftShader, a page that records console errors, and pixel counts from element screenshots.
 * The renderer is built once for all of them (global-setup.ts).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { startWebServer } from '../../main/web/server.ts';
import type { WebServer } from '../../main/web/server.ts';

export const root = resolve(import.meta.dirname, '../..');
export const outDir = resolve(root, 'test-output/e2e');
export const rendererDir = resolve(root, 'renderer/dist');
export const chromiumPath = '/usr/bin/chromium';
export const haveChromium = existsSync(chromiumPath);
if (!haveChromium) console.warn(`e2e skipped: ${chromiumPath} is missing (apt-get install -y chromium)`);

export async function launchBrowser(): Promise<{ browser: BrowserContext; profile: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-profile-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // WebGL without a GPU: SwiftShader through ANGLE
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
    ],
  });
  return { browser, profile };
}

export interface Workstation {
  server: WebServer;
  browser: BrowserContext;
  /** where the server writes exports */
  exportDir: string;
  /** settings and training runs */
  dataDir: string;
  close(): Promise<void>;
}

/** `sam2unet serve`'s server on a free port with folders of its own, and a browser for it. */
export async function startWorkstation(): Promise<Workstation> {
  const exportDir = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-exports-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-data-'));
  const server = await startWebServer({ port: 0, rendererDir, exportDir, dataDir, log: () => {}, noToken: true });
  const { browser, profile } = await launchBrowser();
  return {
    server,
    browser,
    exportDir,
    dataDir,
    async close() {
      await browser.close();
      await server.close();
      for (const dir of [profile, exportDir, dataDir]) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A page whose console errors and uncaught exceptions land in `errors`. */
export async function pageRecordingErrors(browser: BrowserContext, errors: string[]): Promise<Page> {
  const page = await browser.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (err) => errors.push(err.message));
  return page;
}

export interface Pixels {
  /** not background (R+G+B > 30) */
  lit: number;
  total: number;
  /** strongly coloured (channel spread > 60) */
  coloured: number;
  /** mean R+G+B */
  brightness: number;
}

/** Pixels of an element, counted in the page from its screenshot (saved to `file` when given). */
export async function countPixels(page: Page, selector: string, file?: string): Promise<Pixels> {
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
