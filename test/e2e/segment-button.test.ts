/**
 * Issue 12 acceptance, "a model knows how it must be run": the Segment button (not the deep link)
 * on a shared phantom writes the same label map as `sam2unet segment` on the same study, voxel for
 * voxel, for the bundled model chosen in the model list and for a copy of it added through the
 * list's path box; the run panel shows which study sequence feeds each model channel; a FLAIR-only
 * DICOM series is refused until a substitute is picked for each missing channel, and the report
 * says so. Screenshots in test-output/e2e (segment-button-*.png).
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';
import { main } from '../../main/cli/index.ts';
import { readNifti } from '../../main/core/io/nifti.ts';
import { DEFAULT_MODEL_DIR } from '../../main/core/jobs/bundled.ts';

const phantoms = resolve(root, '../shared/data/phantoms');
const study004 = join(phantoms, 'BraTS20_Training_004');
const flairSeries = join(phantoms, 'BraTS20_Training_001_flair_dicom');
const bundledCheckpoint = join(DEFAULT_MODEL_DIR, 'model.safetensors');
/** an official-format SAM2-UNet .pth: it says nothing about how it must be run */
const officialPth = resolve(root, '../shared/golden/sam2unet_mini/sam2unet.pth');
const SEGMENT_TIMEOUT = 150_000;

/** The label map `sam2unet segment` writes for `study` (run in this process). */
async function cliLabels(study: string, out: string, ...flags: string[]): Promise<Uint8Array> {
  let stderr = '';
  const code = await main(['segment', study, '--out', out, ...flags], { stdout: () => undefined, stderr: (t) => void (stderr += t), interactive: false });
  expect(code, stderr).toBe(0);
  // what the command says about how it ran the model
  console.log(`sam2unet segment ${flags.join(' ')}: ${stderr.split('\n').find((l) => l.startsWith('input ')) ?? '(no settings line)'}`);
  return labelsOf(join(out, 'BraTS20_Training_004_pred.nii.gz'));
}

async function labelsOf(file: string): Promise<Uint8Array> {
  const volume = (await readNifti(file)).volumes[0]!;
  return volume.data as Uint8Array;
}

function differing(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

describe.skipIf(!haveChromium || !existsSync(bundledCheckpoint))('the Segment button runs a model as it must be run', () => {
  let workstation: Workstation;
  let browser: BrowserContext;
  let exportDir: string;
  let page: Page;
  const consoleErrors: string[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-segment-button-'));
  const shot = (name: string) => page.screenshot({ path: join(outDir, `segment-button-${name}.png`) });
  const panel = () => page.locator('section[aria-labelledby=run-heading]');

  beforeAll(async () => {
    workstation = await startWorkstation();
    ({ browser, exportDir } = workstation);
    page = await pageRecordingErrors(browser, consoleErrors);
    await page.goto(workstation.server.url);
  });
  afterAll(async () => {
    await workstation?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  async function open(path: string, name: RegExp): Promise<void> {
    await page.getByTestId('open-path').fill(path);
    await page.getByTestId('open-button').click();
    await expect.poll(async () => (await page.getByTestId('study').allTextContents()).some((t) => name.test(t)), { timeout: 60_000 }).toBe(true);
  }

  /** Presses Segment, waits for the end, exports the prediction as NIfTI and returns its labels. */
  async function segmentAndExport(): Promise<Uint8Array> {
    const started = performance.now();
    await page.getByTestId('segment').click();
    // the previous run's "finished" stays until this run has started: wait for this one
    await expect.poll(() => page.getByTestId('job-status').textContent(), { timeout: 30_000 }).toMatch(/^running/);
    await page.getByTestId('segmentation-done').waitFor({ timeout: SEGMENT_TIMEOUT });
    console.log(`Segment button: ${((performance.now() - started) / 1000).toFixed(1)} s, ${await page.getByTestId('job-status').textContent()}; Dice ${await page.getByTestId('volume-dice').textContent().catch(() => '—')}`);
    await page.getByTestId('export-open').click();
    await page.getByTestId('export-source').selectOption('prediction');
    const before = await page.locator('[data-testid=export-file][data-file="BraTS20_Training_004_pred.nii.gz"]').count();
    await page.getByTestId('export-nifti').click();
    await expect.poll(() => page.locator('[data-testid=export-file][data-file="BraTS20_Training_004_pred.nii.gz"]').count(), { timeout: 30_000 }).toBe(before + 1);
    await page.getByTestId('export-dialog-close').click();
    const file = join(exportDir, 'BraTS20_Training_004_pred.nii.gz');
    expect(statSync(file).size).toBeGreaterThan(1000);
    return labelsOf(file);
  }

  it('the bundled model, chosen in the model list, segments phantom 004 exactly as `sam2unet segment` does', async () => {
    await open(study004, /BraTS20_Training_004/);
    const model = page.getByTestId('model');
    // listed as the bundled model, not as a file path, and selected
    await expect.poll(() => model.inputValue(), { timeout: 30_000 }).toBe(bundledCheckpoint);
    expect((await model.locator('option:checked').textContent())?.trim()).toBe('bundled default model');
    await model.selectOption(bundledCheckpoint);
    // how it runs, and which sequence feeds each channel
    expect(await page.getByTestId('model-input-size').textContent()).toMatch(/256 × 256\s+from the checkpoint/);
    expect(await page.getByTestId('model-regions').textContent()).toMatch(/brats\s+from the checkpoint/);
    // one view per slice: neither the file nor config.json asks for test-time mirroring
    expect(await page.getByTestId('model-tta').getAttribute('data-tta')).toBe('none');
    expect(await page.getByTestId('model-tta').textContent()).toMatch(/none \(one view\)\s+by default/);
    expect(await page.getByTestId('model-defaults').count()).toBe(0);
    for (const [channel, sequence] of [[1, 'flair'], [2, 't1ce'], [3, 't2']] as const) {
      const row = page.getByTestId(`channel-${channel}`);
      expect(await row.getAttribute('data-sequence')).toBe(sequence);
      expect((await row.textContent())?.replace(/\s+/g, ' ').trim()).toMatch(new RegExp(`^${channel} · ${sequence} ?← ${sequence}$`));
    }
    expect(await page.getByTestId('channels-missing').count()).toBe(0);
    await panel().screenshot({ path: join(outDir, 'segment-button-01-run-panel-bundled.png') });

    const app = await segmentAndExport();
    const cli = await cliLabels(study004, join(tmp, 'cli-bundled'));
    expect(differing(app, cli), 'voxels that differ between the app and sam2unet segment').toBe(0);
    expect(app.some((v) => v === 4) && app.some((v) => v === 2)).toBe(true);
    // the report names the bundled model, not a path
    await page.getByTestId('export-open').click();
    await page.getByTestId('export-report').click();
    await expect.poll(() => existsSync(join(exportDir, 'BraTS20_Training_004_report', 'metrics.json')), { timeout: 60_000 }).toBe(true);
    const settings = JSON.parse(readFileSync(join(exportDir, 'BraTS20_Training_004_report', 'metrics.json'), 'utf8')).settings;
    expect(settings).toMatchObject({ model: 'bundled default model', checkpoint: bundledCheckpoint, inputSize: 256, testTimeAugmentation: 'none (one view)', notes: [] });
    await page.getByTestId('export-dialog-close').click();
    expect(consoleErrors).toEqual([]);
  });

  it('a copy of the bundled checkpoint added through the model list segments as `sam2unet segment --checkpoint` does', async () => {
    const copy = join(tmp, 'my-model.safetensors');
    copyFileSync(bundledCheckpoint, copy);
    await page.getByTestId('checkpoint').fill(copy);
    await page.getByTestId('add-model').click();
    await expect.poll(() => page.getByTestId('model').inputValue(), { timeout: 30_000 }).toBe(copy);
    expect((await page.getByTestId('model').locator('option:checked').textContent())?.trim()).toBe('my-model (file)');
    // a plain file, but it says how it must be run
    expect(await page.getByTestId('model-input-size').textContent()).toMatch(/256 × 256\s+from the checkpoint/);
    expect(await page.getByTestId('model-tta').getAttribute('data-tta')).toBe('none');
    const app = await segmentAndExport();
    const cli = await cliLabels(study004, join(tmp, 'cli-copy'), '--checkpoint', copy);
    expect(differing(app, cli), 'voxels that differ between the app and sam2unet segment --checkpoint').toBe(0);
    expect(consoleErrors).toEqual([]);
  });

  it('a FLAIR-only DICOM series is refused until a substitute is picked for each missing channel; the report says so', async () => {
    await page.getByTestId('model').selectOption(bundledCheckpoint);
    await open(flairSeries, /FLAIR|dicom/i);
    const missing = page.getByTestId('channels-missing');
    await expect.poll(() => missing.count(), { timeout: 30_000 }).toBe(1);
    expect(await missing.textContent()).toMatch(/has no t1ce, t2, which the model takes as channels\s+2, 3/);
    expect(await page.getByTestId('segment').isDisabled()).toBe(true);
    expect(await page.getByTestId('channel-1').getAttribute('data-sequence')).toBe('flair');
    expect(await page.getByTestId('channel-2').getAttribute('data-sequence')).toBe('');
    await panel().screenshot({ path: join(outDir, 'segment-button-02-flair-refused.png') });
    await shot('02b-flair-refused-window');

    await page.getByTestId('channel-substitute-2').selectOption('flair');
    expect(await page.getByTestId('segment').isDisabled()).toBe(true);
    await page.getByTestId('channel-substitute-3').selectOption('flair');
    await expect.poll(() => page.getByTestId('segment').isDisabled()).toBe(false);
    expect(await missing.count()).toBe(0);
    expect(await page.getByTestId('channels-substituted').textContent()).toMatch(/channel 2 takes t1ce; fed with flair instead \(the study has no t1ce\)/);
    await panel().screenshot({ path: join(outDir, 'segment-button-03-flair-substituted.png') });

    await page.getByTestId('segment').click();
    await expect.poll(() => page.getByTestId('job-status').textContent(), { timeout: 30_000 }).toMatch(/^running/);
    await page.getByTestId('segmentation-done').waitFor({ timeout: SEGMENT_TIMEOUT });
    await page.getByTestId('export-open').click();
    await page.getByTestId('export-report').click();
    // the series' study is named after its description
    const stem = 'FLAIR';
    const metrics = join(exportDir, `${stem}_report`, 'metrics.json');
    await expect.poll(() => existsSync(metrics), { timeout: 60_000 }).toBe(true);
    const settings = JSON.parse(readFileSync(metrics, 'utf8')).settings;
    expect(settings.notes).toEqual(['channel 2 takes t1ce; fed with flair instead (the study has no t1ce)', 'channel 3 takes t2; fed with flair instead (the study has no t2)']);
    expect(settings.extra.channels).toBe('flair ← flair, t1ce ← flair (substitute), t2 ← flair (substitute)');
    expect(readFileSync(join(exportDir, `${stem}_report`, 'report.html'), 'utf8')).toContain('channel 3 takes t2; fed with flair instead (the study has no t2)');
    await page.getByTestId('export-dialog-close').click();
    await shot('04-flair-segmented');
    expect(consoleErrors).toEqual([]);
  });

  it('a checkpoint that does not say how it must be run shows the defaults it gets, as defaults', async () => {
    await page.getByTestId('checkpoint').fill(officialPth);
    await page.getByTestId('add-model').click();
    await expect.poll(() => page.getByTestId('model').inputValue(), { timeout: 30_000 }).toBe(officialPth);
    expect(await page.getByTestId('model-input-size').textContent()).toMatch(/352 × 352\s+by default/);
    expect(await page.getByTestId('model-regions').textContent()).toMatch(/binary\s+by default/);
    expect(await page.getByTestId('model-tta').textContent()).toMatch(/none \(one view\)\s+by default/);
    expect(await page.getByTestId('model-defaults').textContent()).toMatch(/Defaults in use for size, channels, regions: the checkpoint does not say how it must be run/);
    await panel().screenshot({ path: join(outDir, 'segment-button-05-defaults.png') });
    expect(consoleErrors).toEqual([]);
  });
});
