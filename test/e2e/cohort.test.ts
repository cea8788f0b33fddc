/**
 * Issue 18, the cohort in the app: a folder of the shared phantoms plus a broken study opened as
 * a cohort; the table sorts and filters; "Segment all" runs in the background with progress and
 * is cancelled after the first study; the cases left are "not run", nothing half-written stays;
 * the summary is exported; a done row opens its study with the cohort's prediction over it.
 * Screenshots in test-output/e2e (cohort-*.png).
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';
import { DEFAULT_MODEL_DIR } from '../../main/core/jobs/bundled.ts';

const phantoms = resolve(root, '../shared/data/phantoms');
const CASES = ['BraTS20_Training_001', 'BraTS20_Training_002', 'BraTS20_Training_003', 'BraTS20_Training_004'];
const BROKEN = 'BraTS20_Training_005';
const SLOW = 300_000;

describe.skipIf(!haveChromium || !existsSync(join(DEFAULT_MODEL_DIR, 'model.safetensors')))('a cohort in the app', () => {
  let workstation: Workstation;
  let page: Page;
  const consoleErrors: string[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-cohort-'));
  const cohortDir = join(tmp, 'glioma-cohort');
  const shot = (name: string) => page.screenshot({ path: join(outDir, `cohort-${name}.png`) });
  const rows = () => page.getByTestId('cohort-row');
  const statuses = async () => Object.fromEntries(await Promise.all((await rows().all()).map(async (r) => [await r.getAttribute('data-case'), await r.getAttribute('data-status')])));

  beforeAll(async () => {
    mkdirSync(cohortDir);
    for (const c of CASES) symlinkSync(join(phantoms, c), join(cohortDir, c));
    const broken = join(cohortDir, BROKEN);
    mkdirSync(broken);
    for (const role of ['t1', 't1ce', 't2', 'seg']) copyFileSync(join(phantoms, CASES[0]!, `${CASES[0]}_${role}.nii.gz`), join(broken, `${BROKEN}_${role}.nii.gz`));
    writeFileSync(join(broken, `${BROKEN}_flair.nii.gz`), readFileSync(join(phantoms, CASES[0]!, `${CASES[0]}_flair.nii.gz`)).subarray(0, 1_000_000));
    workstation = await startWorkstation();
    page = await pageRecordingErrors(workstation.browser, consoleErrors);
    await page.goto(workstation.server.url);
  });
  afterAll(async () => {
    await workstation?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('opens a folder of studies as a table that sorts and filters', async () => {
    await page.getByTestId('cohort-path').fill(cohortDir);
    await page.getByTestId('cohort-open').click();
    await page.getByTestId('cohort-table').waitFor({ timeout: 60_000 });
    await expect.poll(() => rows().count()).toBe(5);
    expect(await statuses()).toEqual(Object.fromEntries([...CASES, BROKEN].map((c) => [c, 'pending'])));
    const first = rows().first();
    // what the file names say before anything is read: the four sequences and the ground truth
    expect((await first.locator('td').allTextContents()).slice(0, 4)).toEqual([CASES[0], 'flair, t1, t1ce, t2', 'yes', 'not run']);
    await page.getByTestId('cohort-sort-case').click(); // again: descending
    expect(await rows().first().getAttribute('data-case')).toBe(BROKEN);
    await page.getByTestId('cohort-sort-case').click();
    await page.getByTestId('cohort-filter').fill('003');
    await expect.poll(() => rows().count()).toBe(1);
    expect(await page.getByTestId('cohort-shown').textContent()).toBe('1 of 5 shown');
    await page.getByTestId('cohort-filter').fill('');
    await shot('01-opened');
  });

  it('segments in the background with progress, and Cancel stops it with nothing half-written', async () => {
    const started = performance.now();
    await page.getByTestId('cohort-segment-all').click();
    await expect.poll(() => page.getByTestId('cohort-progress').getAttribute('data-status'), { timeout: 30_000 }).toBe('running');
    // a study in progress, its slices counted
    await expect.poll(() => page.getByTestId('cohort-progress-text').textContent(), { timeout: SLOW }).toMatch(/BraTS20_Training_001: \d+\/155 slices/);
    expect(await page.getByTestId('cohort-cancel').isEnabled()).toBe(true);
    expect(await page.locator('[data-testid=cohort-row][data-status=running]').getAttribute('data-case')).toBe(CASES[0]);
    await shot('02-running');
    await page.locator(`[data-testid=cohort-row][data-case=${CASES[0]}][data-status=done]`).waitFor({ timeout: SLOW });
    console.log(`first study of the cohort done after ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await page.getByTestId('cohort-cancel').click();
    await expect.poll(() => page.getByTestId('cohort-progress').getAttribute('data-status'), { timeout: 60_000 }).toBe('cancelled');
    const after = await statuses();
    expect(after[CASES[0]!]).toBe('done');
    expect(Object.values(after)).not.toContain('running');
    expect(after[BROKEN]).toBe('pending');
    // the figures arrived with the row
    const dice = await page.locator(`[data-testid=cohort-row][data-case=${CASES[0]}] td`).allTextContents();
    expect(dice.some((t) => /^0\.9\d\d$/.test(t))).toBe(true);
    // the outputs: complete case folders only; the cancelled study left nothing behind
    const out = join(workstation.exportDir, 'glioma-cohort_cohort');
    const done = Object.entries(after).filter(([, s]) => s === 'done').map(([c]) => c);
    for (const c of done) expect(existsSync(join(out, c!, 'cohort-case.json')), c!).toBe(true);
    expect(readdirSync(out).filter((n) => !n.startsWith('.') && !n.startsWith('cohort.')).sort()).toEqual(done.sort());
    expect(readdirSync(join(out, '.cohort', 'partial'))).toEqual([]);
    await shot('03-cancelled');
  }, SLOW);

  it('exports the cohort summary, and a done row opens its study with the prediction', async () => {
    await page.getByTestId('cohort-export').click();
    await expect.poll(() => page.getByTestId('cohort-export-link').count(), { timeout: 60_000 }).toBe(4);
    const links = await page.getByTestId('cohort-export-link').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href));
    expect(links.map((l) => l.split('/').pop())).toEqual(['cohort.html', 'cohort.pdf', 'cohort.csv', 'cohort.json']);
    const summary = (await (await page.request.get(links[3]!)).json()) as { counts: Record<string, number>; cases: { case: string; status: string }[] };
    expect(summary.cases.map((c) => c.case)).toEqual([...CASES, BROKEN]);
    expect(summary.counts.done).toBeGreaterThanOrEqual(1);
    const report = await workstation.browser.newPage();
    await report.goto(links[0]!);
    await report.screenshot({ path: join(outDir, 'cohort-04-summary.png'), fullPage: true });
    expect(await report.locator('g.box').count()).toBe(3);
    await report.close();

    await page.locator(`[data-testid=cohort-row][data-case=${CASES[0]}]`).click();
    await page.getByTestId('cohort-table').waitFor({ state: 'detached', timeout: 60_000 });
    await expect.poll(() => page.getByTestId('job-status').textContent(), { timeout: 60_000 }).toMatch(/^done · 155\/155 slices/);
    await expect.poll(async () => (await page.getByTestId('study').allTextContents()).some((t) => t.includes(CASES[0]!)), { timeout: 30_000 }).toBe(true);
    await shot('05-case-opened');
    // back to the table, as it was
    await page.getByTestId('cohort-show').click();
    await page.getByTestId('cohort-table').waitFor();
    await page.getByTestId('cohort-sort-dice-WT').click();
    expect(await rows().first().getAttribute('data-status')).toBe('done');
    expect(consoleErrors).toEqual([]);
  }, SLOW);
});
