/**
 * Notices in the sidebar (issue 12: "banners and notices never shift the layout and can be
 * dismissed"), at 1280×720: a study's notes ("… is open already") lie over the page, go with
 * their study when another is selected and come back with it, and are dismissed with ×; the
 * Segment button stays where it is meanwhile, above the fold; the path box's placeholder fits
 * the 320-pixel sidebar; Browse… (the server's file browser) is reachable with a study open.
 * Screenshots in test-output/e2e/notices-*.png.
 */
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';

const phantoms = resolve(root, '../shared/data/phantoms');
const studyA = join(phantoms, 'BraTS20_Training_002');
const studyB = join(phantoms, 'BraTS20_Training_003');

describe.skipIf(!haveChromium)('notices in the sidebar', () => {
  let workstation: Workstation;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    workstation = await startWorkstation();
    page = await pageRecordingErrors(workstation.browser, consoleErrors);
    await page.setViewportSize({ width: 1280, height: 720 });
    await page.goto(workstation.server.url);
  }, 120_000);

  afterAll(async () => {
    await workstation?.close();
  });

  const item = (name: string) => page.getByTestId('study-item').filter({ has: page.getByTestId('study').filter({ hasText: name }) });
  const segmentBox = async () => (await page.getByTestId('segment').boundingBox())!;

  async function open(path: string) {
    await page.getByTestId('open-path').fill(path);
    await page.getByTestId('open-button').click();
  }

  it('a study note lies over the page, goes and comes back with its study, and is dismissed', async () => {
    await open(studyA);
    await expect.poll(() => page.getByTestId('viewport-axial').getAttribute('data-rendered-slice'), { timeout: 60_000 }).not.toBe('-1');
    await open(studyB);
    await expect.poll(() => item('BraTS20_Training_003').getAttribute('class'), { timeout: 60_000 }).toMatch(/selected/);
    const before = await segmentBox();
    expect(before.y + before.height).toBeLessThan(720);

    await item('BraTS20_Training_002').getByTestId('study').click();
    await open(studyA);
    const note = page.getByTestId('study-note');
    await expect.poll(() => note.allTextContents(), { timeout: 30_000 }).toEqual([`${studyA} is open already`]);
    expect(await item('BraTS20_Training_002').getByTestId('study-note').count()).toBe(1);
    expect(await page.getByTestId('study-notes').evaluate((e) => getComputedStyle(e).position)).toBe('fixed');
    expect(await segmentBox()).toEqual(before);
    await page.screenshot({ path: join(outDir, 'notices-01-note.png') });

    // another study on screen: the note is A's, not the page's
    await item('BraTS20_Training_003').getByTestId('study').click();
    await expect.poll(() => note.count()).toBe(0);
    await item('BraTS20_Training_002').getByTestId('study').click();
    await expect.poll(() => note.allTextContents()).toEqual([`${studyA} is open already`]);

    await page.getByTestId('study-note-dismiss').click();
    await expect.poll(() => note.count()).toBe(0);
    expect(await page.getByTestId('study-notes').count()).toBe(0);
    expect(await segmentBox()).toEqual(before);
  }, 180_000);

  it('the path placeholder fits the sidebar and Browse… opens the file browser with a study open', async () => {
    const fits = await page.getByTestId('open-path').evaluate((input: HTMLInputElement) => {
      const style = getComputedStyle(input);
      const ctx = document.createElement('canvas').getContext('2d')!;
      ctx.font = `${style.fontSize} ${style.fontFamily}`;
      const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      return { text: ctx.measureText(input.placeholder).width, room };
    });
    expect(fits.text).toBeLessThanOrEqual(fits.room);
    await page.getByTestId('browse').click();
    await page.getByTestId('file-browser').waitFor({ state: 'visible' });
    await expect.poll(() => page.getByTestId('file-browser-path').textContent(), { timeout: 30_000 }).toBe('Places this server may read');
    await expect.poll(() => page.getByTestId('file-browser-entry').count(), { timeout: 30_000 }).toBeGreaterThan(0);
    await page.screenshot({ path: join(outDir, 'notices-02-browse.png') });
    await page.keyboard.press('Escape');
    await page.getByTestId('file-browser').waitFor({ state: 'hidden' });
    expect(consoleErrors).toEqual([]);
  }, 60_000);
});
