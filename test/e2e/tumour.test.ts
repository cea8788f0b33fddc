/**
 * The Tumour panel in the browser (issue 16): region volumes, the lesion table, a click on a
 * lesion going to its RANO slice, and the RANO lines drawn on the axial view there (and not on a
 * slice away from it). Study 001 is opened with its ground truth and no prediction, so the panel
 * describes the ground truth. Screenshots go to test-output/e2e (tumour-*.png).
 */
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';

const study001 = resolve(root, '../shared/data/phantoms/BraTS20_Training_001');

/** Pixels of the axial view close to a colour (the RANO line colours are apart from the label colours). */
async function pixelsNear(page: Page, hex: string, file: string): Promise<number> {
  const png = await page.getByTestId('viewport-axial').screenshot({ path: join(outDir, file) });
  return page.evaluate(
    async ({ bytes, hex }) => {
      const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)], { type: 'image/png' }));
      const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d')!;
      ctx.drawImage(bitmap, 0, 0);
      const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
      const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (Math.abs(data[i]! - want[0]!) + Math.abs(data[i + 1]! - want[1]!) + Math.abs(data[i + 2]! - want[2]!) < 40) n++;
      return n;
    },
    { bytes: [...png], hex },
  );
}

describe.skipIf(!haveChromium)('Tumour panel', () => {
  let ws: Workstation;
  const errors: string[] = [];
  beforeAll(async () => {
    ws = await startWorkstation();
  });
  afterAll(async () => {
    await ws?.close();
  });

  it('shows volumes and lesions; a lesion click goes to its RANO slice, where the lines are drawn', async () => {
    const page = await pageRecordingErrors(ws.browser, errors);
    const link = new URL(ws.server.url);
    link.searchParams.set('open', study001);
    await page.goto(link.href);
    const panel = page.getByTestId('tumour-panel');
    await expect.poll(() => panel.getByTestId('tumour-lesions').count(), { timeout: 90_000 }).toBe(1);
    // the same numbers as `sam2unet measure` gives for this label map (WT 90.67 ml, ET 7.81 ml)
    expect(await page.getByTestId('tumour-volume-WT').textContent()).toBe('90.67 ml');
    expect(await page.getByTestId('tumour-volume-ET').textContent()).toBe('7.81 ml');
    expect(await page.getByTestId('tumour-laterality').textContent()).toMatch(/% left, .*% right/);
    await panel.screenshot({ path: join(outDir, 'tumour-panel.png') });

    const first = page.getByTestId('tumour-lesion-0');
    const slice = Number(await first.getAttribute('data-slice'));
    expect(slice).toBeGreaterThan(0);
    // away from the key slice first: no RANO line there
    await page.getByTestId('tumour-lesion-1').click();
    const other = Number(await page.getByTestId('tumour-lesion-1').getAttribute('data-slice'));
    await expect.poll(() => page.getByTestId('slice-label-axial').textContent()).toBe(`${other + 1}/155`);
    await expect.poll(() => page.getByTestId('viewport-axial').getAttribute('data-rendered-slice')).toBe(String(other));
    expect(await pixelsNear(page, '#00e5ff', 'tumour-axial-other-slice.png')).toBeLessThan(5);

    await first.click();
    await expect.poll(() => page.getByTestId('slice-label-axial').textContent()).toBe(`${slice + 1}/155`);
    await expect.poll(() => page.getByTestId('viewport-axial').getAttribute('data-rendered-slice')).toBe(String(slice));
    await expect.poll(() => pixelsNear(page, '#00e5ff', 'tumour-axial-rano.png')).toBeGreaterThan(30);
    expect(await pixelsNear(page, '#ff4fd8', 'tumour-axial-rano.png')).toBeGreaterThan(10);
    await page.screenshot({ path: join(outDir, 'tumour-page.png') });
    expect(errors).toEqual([]);
  });
});
