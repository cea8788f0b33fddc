/**
 * Renders report.html in Debian's Chromium (playwright-core, no bundled browser) and takes a
 * screenshot into test-output/. CI installs chromium; a missing browser is a failure, not a skip.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { readNifti } from '../../../main/core/io/nifti.ts';
import { buildReport, writeReports } from '../../../main/core/report/index.ts';
import { makePrediction, PHANTOMS } from '../metrics/predictions.ts';

const CHROMIUM = '/usr/bin/chromium';
const OUT = resolve(process.cwd(), 'test-output/report');

/** Grey-level spread of a PNG screenshot (8-bit RGB or RGBA, non-interlaced). */
function pngSpread(png: Buffer): { distinct: number; width: number; height: number } {
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const channels = png[25] === 6 ? 4 : 3;
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    if (type === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels + 1;
  const seen = new Set<number>();
  // filter bytes make raw bytes differ from pixels, but a blank page still gives ~1 value per row
  for (let y = 0; y < height; y += 7) for (let x = 1; x < stride; x += 13) seen.add(raw[y * stride + x]!);
  return { distinct: seen.size, width, height };
}

describe('report.html in Chromium', () => {
  it('renders the charts and thumbnails; screenshot is not blank', async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the report rendering test`);
    }
    const name = 'BraTS20_Training_001';
    const dir = new URL(`${name}/`, PHANTOMS).pathname;
    const image = (await readNifti(join(dir, `${name}_flair.nii.gz`))).volumes[0]!;
    const gt = (await readNifti(join(dir, `${name}_seg.nii.gz`))).volumes[0]!.data as Uint8Array;
    const dims = [...image.dims] as [number, number, number];
    const pred = makePrediction('dilate', makePrediction('shift', gt, dims), dims);
    const report = buildReport({
      study: name,
      settings: { checkpoint: 'models/demo/sam2unet_demo.safetensors', preset: 'hiera_tiny', device: 'cpu', inputSize: 352, threshold: 0.5 },
      regionKind: 'brats',
      image,
      pred,
      gt,
      timings: { load: 640, inference: 18_400, total: 19_700 },
    });
    const files = await writeReports(OUT, report);
    try {
      execFileSync('pdfinfo', [files.pdf], { stdio: 'pipe' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') console.log('pdfinfo (poppler-utils) not installed: PDF not checked by poppler here');
      else throw new Error(`pdfinfo rejects ${files.pdf}: ${String((err as { stderr?: Buffer }).stderr ?? err)}`);
    }

    const userDataDir = mkdtempSync(join(tmpdir(), 'sam2unet-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1100, height: 900 },
    });
    try {
      const page = await context.newPage();
      const requests: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url());
      });
      await page.goto(`file://${files.html}`);
      const series = await page.$$eval('svg.dice-chart .series', (els) => els.map((e) => (e.getAttribute('points') ?? '').trim().split(/\s+/).length));
      expect(series.length).toBeGreaterThanOrEqual(3);
      expect(Math.max(...series)).toBeGreaterThan(20);
      const images = await page.$$eval('figure img', (els) => els.map((e) => (e as HTMLImageElement).naturalWidth));
      // the slice thumbnails and the tumour section's key slices
      expect(images.length).toBe(report.thumbnails.length + report.tumour.keySlices.length);
      for (const w of images) expect(w).toBeGreaterThan(100);
      const tableCells = await page.$$eval('table.summary td', (els) => els.length);
      expect(tableCells).toBe(3 * 10);
      const shot = await page.screenshot({ path: join(OUT, 'report-screenshot.png'), fullPage: true });
      const spread = pngSpread(shot);
      expect(spread.height).toBeGreaterThan(900);
      expect(spread.distinct).toBeGreaterThan(20);
      expect(requests).toEqual([]);
    } finally {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }
  });
});
