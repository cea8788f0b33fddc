/**
 * Mask editing in the browser (issue 15), checked against the labels the service holds (every
 * edit reaches it as a change, api.ts editLabels): a NIfTI label map loaded as the edit layer
 * equals the file; a brush click of 20 mm changes exactly the voxels of that disk; the eraser
 * removes them; undo and redo restore the exact masks (hash); 100 strokes then 100 undos restore
 * the original; the threshold brush changes no voxel outside its range; fill holes, flood fill,
 * island removal and interpolation give the expected voxel sets on a constructed mask; the
 * app's own DICOM SEG export loads back over its series voxel for voxel, from inside the series'
 * folder too; pydicom's liver SEG is recognised as a segmentation with its series named; leaving
 * a study with unsaved edits asks. Stroke latency (pointer event → overlay drawn) and the memory
 * of 100 strokes' history are measured and printed. Screenshots: test-output/e2e/edit-*.png.
 */
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';
import { readNifti, writeNifti } from '../../main/core/io/nifti.ts';
import type { Volume } from '../../main/core/io/volume.ts';

const phantoms = resolve(root, '../shared/data/phantoms');
const study001 = join(phantoms, 'BraTS20_Training_001');
const study002 = join(phantoms, 'BraTS20_Training_002');
const dicomSeries = join(phantoms, 'BraTS20_Training_001_flair_dicom');
const gt001 = join(study001, 'BraTS20_Training_001_seg.nii.gz');
const liver = resolve(root, '../shared/data/external/dicom/liver_1frame.dcm');
const N = 240;
const at = (i: number, j: number, k: number) => i + N * (j + N * k);
const hash = (labels: Uint8Array) => createHash('sha256').update(labels).digest('hex');

describe.skipIf(!haveChromium)('mask editing in the browser', () => {
  let ws: Workstation;
  const errors: string[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-edit-'));
  let truth: Volume;

  beforeAll(async () => {
    ws = await startWorkstation();
    truth = (await readNifti(gt001)).volumes[0]!;
  });
  afterAll(async () => {
    await ws?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** The service's prediction layer of the study opened from `path`. */
  async function serviceLabels(path: string): Promise<Uint8Array> {
    const { studies } = await ws.server.service.openStudy({ path });
    const labels = await ws.server.service.getLabels({ studyId: studies[0]!.id, source: 'prediction' });
    return labels?.data ?? new Uint8Array(0);
  }

  /** Waits until every edit has reached the service and its labels hash to `expected`. */
  async function serviceHashIs(path: string, expected: string): Promise<void> {
    await expect.poll(async () => hash(await serviceLabels(path)), { timeout: 30_000, interval: 200 }).toBe(expected);
  }

  async function open(page: Page, path: string): Promise<void> {
    const link = new URL(ws.server.url);
    link.searchParams.set('open', path);
    await page.goto(link.href);
    await expect.poll(() => page.getByTestId('viewport-axial').getAttribute('data-rendered-slice'), { timeout: 60_000 }).not.toBe('-1');
  }

  async function loadMask(page: Page, path: string, as: 'prediction' | 'groundTruth' = 'prediction'): Promise<void> {
    await page.getByTestId('load-mask-path').fill(path);
    await page.getByTestId('load-mask-as').selectOption(as);
    await page.getByTestId('load-mask').click();
    await expect.poll(() => page.getByTestId('load-mask').isEnabled(), { timeout: 60_000 }).toBe(true);
    const error = page.getByTestId('load-mask-error');
    expect(await error.count(), (await error.count()) ? ((await error.textContent()) ?? '') : '').toBe(0);
  }

  /** Screen position of voxel (i, j) of the axial view (the 240×240 image fills the square view; checked by a click first). */
  async function axialPoint(page: Page): Promise<(i: number, j: number) => [number, number]> {
    const box = (await page.getByTestId('viewport-axial').boundingBox())!;
    return (i, j) => [box.x + ((i + 0.5) / N) * box.width, box.y + ((j + 0.5) / N) * box.height];
  }

  async function goToAxialSlice(page: Page, k: number): Promise<void> {
    await page.getByTestId('viewport-axial').hover();
    await page.keyboard.press('Home');
    for (let n = 0; n < Math.floor(k / 10); n++) await page.keyboard.press('PageUp');
    for (let n = 0; n < k % 10; n++) await page.keyboard.press('ArrowUp');
    await expect.poll(() => page.getByTestId('slice-label-axial').textContent()).toBe(`${k + 1}/155`);
  }

  async function cdpHeapMb(page: Page): Promise<number> {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('HeapProfiler.collectGarbage');
    await cdp.send('Performance.enable');
    const { metrics } = await cdp.send('Performance.getMetrics');
    await cdp.detach();
    return metrics.find((m) => m.name === 'JSHeapUsedSize')!.value / 2 ** 20;
  }

  it('brush, eraser, undo and redo change exactly the expected voxels; 100 strokes then 100 undos restore the original; latency and memory measured', async () => {
    const page = await pageRecordingErrors(ws.browser, errors);
    await open(page, study001);
    await loadMask(page, gt001);
    const original = truth.data as Uint8Array;
    await serviceHashIs(study001, hash(original));
    expect(await page.getByTestId('edit-volume-WT').textContent()).toBe('WT 90.67 ml');

    await page.getByTestId('tool-brush').click();
    await page.getByTestId('edit-label-4').click();
    await page.getByTestId('brush-size').fill('20');
    await page.getByTestId('brush-size').press('Enter');
    const screen = await axialPoint(page);
    // a click without a tool puts the crosshair on the voxel aimed at: the mapping holds
    const k = 77;
    const [i0, j0] = [60, 100];
    let clear = true;
    for (let j = j0 - 12; j <= j0 + 12; j++) for (let i = i0 - 12; i <= i0 + 12; i++) clear &&= original[at(i, j, k)] === 0;
    expect(clear).toBe(true);
    await page.getByTestId('tool-brush').click(); // off
    await page.mouse.click(...screen(i0, j0));
    expect(await page.getByTestId('cursor-readout').textContent()).toContain(`voxel (${i0}, ${j0}, ${k})`);
    await page.getByTestId('tool-brush').click(); // on

    // one dab: the disk of 10 mm radius around (i0, j0) on slice k, nothing else
    await page.mouse.click(...screen(i0, j0));
    const expected = original.slice();
    let disk = 0;
    for (let j = 0; j < N; j++)
      for (let i = 0; i < N; i++)
        if ((i - i0) ** 2 + (j - j0) ** 2 <= 100) {
          expected[at(i, j, k)] = 4;
          disk++;
        }
    const painted = hash(expected);
    await serviceHashIs(study001, painted);
    expect(Math.abs(disk - Math.PI * 100) / (Math.PI * 100)).toBeLessThan(0.03);
    console.log(`brush 20 mm: ${disk} voxels changed, disk area π·10² = ${(Math.PI * 100).toFixed(1)} voxels (${((100 * (disk - Math.PI * 100)) / (Math.PI * 100)).toFixed(2)} %)`);
    await page.getByTestId('viewport-axial').screenshot({ path: join(outDir, 'edit-brush-disk.png') });

    await page.getByTestId('tool-eraser').click();
    await page.mouse.click(...screen(i0, j0));
    await serviceHashIs(study001, hash(original));
    await page.getByTestId('undo').click();
    await serviceHashIs(study001, painted);
    await page.getByTestId('undo').click();
    await serviceHashIs(study001, hash(original));
    await page.getByTestId('redo').click();
    await serviceHashIs(study001, painted);
    await page.keyboard.press('Control+z');
    await serviceHashIs(study001, hash(original));

    // 100 strokes of every label and both shapes over the tumour and the brain, then 100 undos
    const heapBefore = await cdpHeapMb(page);
    await page.getByTestId('tool-brush').click();
    let seed = 11;
    const random = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    for (let s = 0; s < 100; s++) {
      await page.keyboard.press(`Shift+Digit${[1, 2, 4][s % 3]}`);
      if (s === 50) await page.getByTestId('brush-shape').selectOption('sphere');
      const [i, j] = [70 + random(100), 60 + random(120)];
      await page.mouse.move(...screen(i, j));
      await page.mouse.down();
      for (let step = 1; step <= 3; step++) await page.mouse.move(...screen(i + step * 4, j + step * 2));
      await page.mouse.up();
    }
    await expect.poll(() => page.getByTestId('edit-status').getAttribute('data-undo-steps')).toBe('100');
    const historyBytes = Number(await page.getByTestId('edit-status').getAttribute('data-history-bytes'));
    const heapAfter = await cdpHeapMb(page);
    console.log(`history of 100 strokes: ${(historyBytes / 1024).toFixed(1)} KiB of changes; JS heap ${heapBefore.toFixed(1)} → ${heapAfter.toFixed(1)} MB (+${(heapAfter - heapBefore).toFixed(1)} MB)`);
    expect(historyBytes).toBeLessThan(50 * 2 ** 20);
    expect(heapAfter - heapBefore).toBeLessThan(50);
    await page.getByTestId('viewport-axial').screenshot({ path: join(outDir, 'edit-100-strokes.png') });
    expect(hash(await serviceLabels(study001))).not.toBe(hash(original));
    for (let s = 0; s < 100; s++) await page.keyboard.press('Control+z');
    await serviceHashIs(study001, hash(original));
    expect(await page.getByTestId('undo').isDisabled()).toBe(true);

    // latency: a long stroke, each pointer event timed until the overlay showing it is drawn
    await page.getByTestId('brush-shape').selectOption('disk');
    await page.mouse.move(...screen(80, 80));
    await page.mouse.down();
    for (let step = 1; step <= 60; step++) await page.mouse.move(...screen(80 + step, 80 + (step % 20)));
    await page.mouse.up();
    await expect.poll(async () => (await page.getByTestId('edit-status').getAttribute('data-frame-latencies'))?.split(',').length ?? 0).toBeGreaterThan(30);
    const drawn = (await page.getByTestId('edit-status').getAttribute('data-stroke-latencies'))!.split(',').map(Number).sort((a, b) => a - b);
    const framed = (await page.getByTestId('edit-status').getAttribute('data-frame-latencies'))!.split(',').map(Number).sort((a, b) => a - b);
    const pct = (v: number[], q: number) => v[Math.min(v.length - 1, Math.floor(q * v.length))]!;
    console.log(
      `stroke latency over ${drawn.length} pointer events (backend ${await page.getByTestId('viewport-axial').getAttribute('data-backend')}): ` +
        `drawn median ${pct(drawn, 0.5).toFixed(1)} ms, p95 ${pct(drawn, 0.95).toFixed(1)} ms, max ${drawn.at(-1)!.toFixed(1)} ms; ` +
        `next frame median ${pct(framed, 0.5).toFixed(1)} ms, p95 ${pct(framed, 0.95).toFixed(1)} ms, max ${framed.at(-1)!.toFixed(1)} ms`,
    );
    expect(drawn.at(-1)!).toBeLessThan(50);
    // the Tumour panel describes the edited mask once the edits have reached the service
    const live = (await page.getByTestId('edit-volume-WT').textContent())!.replace('WT ', '');
    await expect.poll(async () => ((await page.getByTestId('tumour-volume-WT').count()) ? page.getByTestId('tumour-volume-WT').textContent() : null), { timeout: 90_000 }).toBe(live);
    await page.screenshot({ path: join(outDir, 'edit-page.png') });
    expect(errors).toEqual([]);
  }, 300_000);

  it('the threshold brush changes no voxel whose value in the chosen sequence is outside its range', async () => {
    const page = await pageRecordingErrors(ws.browser, errors);
    await open(page, study001);
    await loadMask(page, gt001);
    const before = (truth.data as Uint8Array).slice();
    await serviceHashIs(study001, hash(before));
    const flair = (await readNifti(join(study001, 'BraTS20_Training_001_flair.nii.gz'))).volumes[0]!;
    await page.getByTestId('tool-threshold').click();
    await page.getByTestId('threshold-sequence').selectOption('flair');
    await page.getByTestId('threshold-low').fill('250');
    await page.getByTestId('threshold-high').fill('420');
    await page.getByTestId('brush-shape').selectOption('sphere');
    await page.getByTestId('brush-size').fill('30');
    await page.getByTestId('brush-size').press('Enter');
    await page.getByTestId('edit-label-1').click();
    const screen = await axialPoint(page);
    await page.mouse.move(...screen(100, 110));
    await page.mouse.down();
    for (let step = 1; step <= 10; step++) await page.mouse.move(...screen(100 + 3 * step, 110));
    await page.mouse.up();
    await expect.poll(() => page.getByTestId('edit-status').getAttribute('data-undo-steps')).toBe('1');
    await expect.poll(async () => hash(await serviceLabels(study001))).not.toBe(hash(before));
    const after = await serviceLabels(study001);
    let changed = 0;
    let outside = 0;
    for (let n = 0; n < after.length; n++) {
      if (after[n] === before[n]) continue;
      changed++;
      const value = flair.value(n);
      if (value < 250 || value > 420) outside++;
      expect(after[n]).toBe(1);
    }
    console.log(`threshold brush: ${changed} voxels changed, ${outside} of them outside 250–420`);
    expect(changed).toBeGreaterThan(500);
    expect(outside).toBe(0);
    await page.getByTestId('viewport-axial').screenshot({ path: join(outDir, 'edit-threshold.png') });
    expect(errors).toEqual([]);
  }, 180_000);

  it('fill holes, flood fill, island removal and interpolation give the expected voxel sets on a constructed mask', async () => {
    const reference = (await readNifti(join(study002, 'BraTS20_Training_002_seg.nii.gz'))).volumes[0]!;
    const built = new Uint8Array(N * N * 155);
    const ring = (lo: number, hi: number, k: number, label: number) => {
      for (let j = lo; j <= hi; j++) for (let i = lo; i <= hi; i++) if (i === lo || i === hi || j === lo || j === hi) built[at(i, j, k)] = label;
    };
    ring(40, 60, 30, 2); // holes to fill
    ring(100, 120, 30, 2); // a region to flood
    for (let kk = 28; kk <= 32; kk++) for (let j = 150; j <= 160; j++) for (let i = 150; i <= 160; i++) built[at(i, j, kk)] = 2; // island A
    for (let kk = 28; kk <= 32; kk++) for (let j = 150; j <= 160; j++) for (let i = 180; i <= 190; i++) built[at(i, j, kk)] = 1; // island B
    for (let j = 0; j < N; j++) {
      for (let i = 20; i <= 39; i++) built[at(i, j, 60)] = 1; // a band on slice 60…
      for (let i = 24; i <= 43; i++) built[at(i, j, 64)] = 1; // …moved 4 columns on slice 64
    }
    const file = join(tmp, 'constructed.nii.gz');
    await writeNifti(file, reference.withData(built), { dtype: 'uint8' });

    const page = await pageRecordingErrors(ws.browser, errors);
    await open(page, study002);
    await loadMask(page, file);
    await serviceHashIs(study002, hash(built));
    const expected = built.slice();

    await goToAxialSlice(page, 30);
    await page.getByTestId('edit-label-2').click();
    await page.getByTestId('fill-holes').click();
    for (let j = 41; j <= 59; j++) for (let i = 41; i <= 59; i++) expected[at(i, j, 30)] = 2;
    for (let j = 101; j <= 119; j++) for (let i = 101; i <= 119; i++) expected[at(i, j, 30)] = 2;
    await serviceHashIs(study002, hash(expected));
    await page.getByTestId('undo').click();
    await serviceHashIs(study002, hash(built));
    expected.set(built);

    const screen = await axialPoint(page);
    await page.getByTestId('tool-fill').click();
    await page.getByTestId('edit-label-4').click();
    await page.mouse.click(...screen(110, 110));
    for (let j = 101; j <= 119; j++) for (let i = 101; i <= 119; i++) expected[at(i, j, 30)] = 4;
    await serviceHashIs(study002, hash(expected));

    await page.getByTestId('tool-island').click();
    await page.mouse.click(...screen(155, 155));
    for (let kk = 28; kk <= 32; kk++) for (let j = 150; j <= 160; j++) for (let i = 150; i <= 160; i++) expected[at(i, j, kk)] = 0;
    await serviceHashIs(study002, hash(expected));
    await page.getByTestId('viewport-axial').screenshot({ path: join(outDir, 'edit-fill-island.png') });

    await goToAxialSlice(page, 62);
    await page.getByTestId('edit-label-1').click();
    await page.getByTestId('tool-interpolate').click();
    for (let s = 61; s <= 63; s++) for (let j = 0; j < N; j++) for (let i = 20 + (s - 60); i <= 39 + (s - 60); i++) expected[at(i, j, s)] = 1;
    await serviceHashIs(study002, hash(expected));
    expect(await page.getByTestId('edit-message').textContent()).toMatch(/interpolated between axial slices 61 and 65/);
    await page.getByTestId('viewport-axial').screenshot({ path: join(outDir, 'edit-interpolated.png') });
    expect(errors).toEqual([]);
  }, 180_000);

  it("the app's DICOM SEG export of the DICOM phantom loads back over its series equal, also from inside its folder; another tool's SEG is recognised and its series named", async () => {
    const page = await pageRecordingErrors(ws.browser, errors);
    await open(page, dicomSeries);
    // the ground truth of case 001 lies on this series' grid: loaded as the layer, then exported as a SEG
    await loadMask(page, gt001);
    await serviceHashIs(dicomSeries, hash(truth.data as Uint8Array));
    await page.getByTestId('export-open').click();
    await page.getByTestId('export-source').selectOption('prediction');
    await page.getByTestId('export-dicom-seg').click();
    await expect.poll(() => page.getByTestId('export-file').count(), { timeout: 60_000 }).toBe(1);
    await page.getByTestId('export-dialog-close').click();
    const exported = readdirSync(ws.exportDir).find((f) => f.endsWith('_seg.dcm'))!;
    expect(exported).toBeTruthy();

    // back over the series as ground truth: voxel for voxel the exported labels
    await loadMask(page, join(ws.exportDir, exported), 'groundTruth');
    const { studies } = await ws.server.service.openStudy({ path: dicomSeries });
    const back = (await ws.server.service.getLabels({ studyId: studies[0]!.id, source: 'groundTruth' }))!.data;
    expect(hash(back)).toBe(hash(truth.data as Uint8Array));

    // the SEG inside a copy of the series' folder: one study, the SEG offered as its mask
    const folder = join(tmp, 'series-with-seg');
    cpSync(dicomSeries, folder, { recursive: true });
    cpSync(join(ws.exportDir, exported), join(folder, exported));
    await page.getByTestId('open-path').fill(folder);
    await page.getByTestId('open-button').click();
    await expect.poll(() => page.getByTestId('study-mask').count(), { timeout: 60_000 }).toBe(1);
    expect(await page.getByTestId('error').count()).toBe(0);
    await page.getByTestId('study-mask').click();
    await page.getByTestId('load-mask-as').selectOption('prediction');
    await page.getByTestId('load-mask').click();
    await expect.poll(() => page.getByTestId('edit-volume-WT').textContent(), { timeout: 60_000 }).toBe('WT 90.67 ml');
    await serviceHashIs(folder, hash(truth.data as Uint8Array));
    await page.screenshot({ path: join(outDir, 'edit-seg-in-folder.png') });

    // pydicom's liver SEG: a segmentation, its segment listed, its series named, nothing placed anywhere
    await page.getByTestId('open-path').fill(liver);
    await page.getByTestId('open-button').click();
    const found = page.getByTestId('segmentation-found');
    await expect.poll(() => found.count(), { timeout: 30_000 }).toBe(1);
    expect(await found.getByTestId('segmentation-segments').textContent()).toBe('1 Liver');
    expect(await found.getByTestId('segmentation-series').textContent()).toBe('1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1');
    expect(await page.getByTestId('error').count()).toBe(0);
    await page.getByTestId('load-mask-path').fill(liver);
    await page.getByTestId('load-mask').click();
    await expect.poll(() => page.getByTestId('load-mask-error').textContent(), { timeout: 30_000 }).toMatch(/is a segmentation of series 1\.2\.392\.200103\.20080913\.113635\.1\.2009\.6\.22\.21\.43\.10\.23430\.1 \(3 images\), not of /);
    await page.screenshot({ path: join(outDir, 'edit-liver-seg.png') });
    expect(errors).toEqual([]);
  }, 240_000);

  it('leaving a study with unsaved edits asks first: stay keeps it on screen, save as reviewed saves then leaves', async () => {
    const page = await pageRecordingErrors(ws.browser, errors);
    await open(page, study001);
    await page.getByTestId('open-path').fill(study002);
    await page.getByTestId('open-button').click();
    await expect.poll(() => page.getByTestId('study').count(), { timeout: 60_000 }).toBe(2);
    await page.getByTestId('study').nth(0).click();
    await expect.poll(() => page.getByTestId('study-header').textContent()).toContain('BraTS20_Training_001');
    await page.getByTestId('tool-brush').click();
    await page.getByTestId('edit-label-4').click();
    const screen = await axialPoint(page);
    // background there (the first test checked): the click changes the mask
    await page.mouse.click(...screen(60, 100));
    await expect.poll(() => page.getByTestId('edit-unsaved').count()).toBe(1);
    await page.getByTestId('study').nth(1).click();
    await page.getByTestId('leave-dialog').waitFor({ state: 'visible' });
    await page.screenshot({ path: join(outDir, 'edit-leave-dialog.png') });
    await page.getByTestId('leave-stay').click();
    expect(await page.getByTestId('study-header').textContent()).toContain('BraTS20_Training_001');
    await page.getByTestId('study-close').nth(0).click();
    await page.getByTestId('leave-dialog').waitFor({ state: 'visible' });
    await page.getByTestId('leave-save').click();
    await expect.poll(() => page.getByTestId('study-header').textContent(), { timeout: 60_000 }).toContain('BraTS20_Training_002');
    const reviewed = await ws.server.service.listReviewed();
    expect(reviewed.map((r) => r.name)).toContain('BraTS20_Training_001');
    expect(errors).toEqual([]);
  }, 180_000);
});
