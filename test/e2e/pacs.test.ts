/**
 * Issue 17 in the browser, against a real Orthanc (DICOMweb) started by the test: a PACS
 * connection is added in Settings and tested (a wrong password says 401, then the right one
 * connects; the secret lands in the data folder's owner-only file, not in settings.json), the
 * PACS browser searches, pages, lists a study's series with descriptions and instance counts,
 * opens a four-sequence study (assembled as one study, with progress), the study is segmented
 * and "Send to PACS" stores its DICOM SEG and PDF report, which QIDO-RS then lists in the study.
 * Screenshots in test-output/e2e (pacs-*.png).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { haveChromium, outDir, pageRecordingErrors, root, startWorkstation, type Workstation } from './harness.ts';
import { findBratsCases, loadBratsCase } from '../../main/core/io/brats.ts';
import { DicomWebClient } from '../../main/core/pacs/dicomweb.ts';
import { haveOrthanc, orthancMissing, readFiles, slowLink, startOrthanc, type OrthancServer } from '../fixtures/orthanc.ts';
import { slab, writeMrSeries } from '../fixtures/dicom/write-series.ts';

const phantoms = join(root, '../shared/data/phantoms');
const STUDY = '1.2.826.0.1.3680043.8.498.5500';
if (!haveOrthanc) console.warn(orthancMissing);


describe.skipIf(!haveChromium || !haveOrthanc)('the PACS browser against Orthanc', () => {
  let orthanc: OrthancServer;
  let workstation: Workstation;
  let page: Page;
  const errors: string[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-e2e-pacs-'));
  const shot = (name: string) => page.screenshot({ path: join(outDir, `pacs-${name}.png`) });

  beforeAll(async () => {
    orthanc = await startOrthanc();
    const flairDir = join(phantoms, 'BraTS20_Training_001_flair_dicom');
    await orthanc.upload(readFiles(readdirSync(flairDir).filter((f) => f.endsWith('.dcm')).map((f) => join(flairDir, f))));
    // the phantom's four sequences as one study (24 slices around the tumour)
    const phantom = join(phantoms, 'BraTS20_Training_002');
    const study = await loadBratsCase(findBratsCases(phantom, readdirSync(phantom)).cases[0]!);
    const dir = join(tmp, 'four');
    mkdirSync(dir);
    const files: string[] = [];
    for (const s of [
      { role: 't1', description: 'AX T1 SE', number: 3 },
      { role: 't1ce', description: 'AX T1 POST GAD', number: 7 },
      { role: 't2', description: 'Ax T2 TSE', number: 4 },
      { role: 'flair', description: 'AX T2 FLAIR', number: 5 },
    ] as const) {
      files.push(...writeMrSeries(dir, slab(study.sequences[s.role]!, 56, 24), { description: s.description, seriesNumber: s.number, seriesUid: `${STUDY}.${s.number}`, studyUid: STUDY, patientName: 'Doe^Jane', patientId: 'JD-0042', studyDate: '20261120', studyDescription: 'MRI BRAIN TUMOUR FOLLOW-UP' }, (k) => `IM${k}_${s.number}`));
    }
    await orthanc.upload(readFiles(files));
    workstation = await startWorkstation();
    page = await pageRecordingErrors(workstation.browser, errors);
    await page.goto(workstation.server.url);
  }, 120_000);

  afterAll(async () => {
    await workstation?.close();
    await orthanc?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('adds a connection in Settings; Test says what is wrong, then connects; the secret stays out of settings.json', async () => {
    await page.getByTestId('settings-open').click();
    await page.getByTestId('pacs-name').fill('Orthanc (test)');
    await page.getByTestId('pacs-url').fill(`${orthanc.dicomWeb}/`);
    await page.getByTestId('pacs-auth').selectOption('basic');
    await page.getByTestId('pacs-user').fill(orthanc.user);
    await page.getByTestId('pacs-secret').fill('not-the-password');
    await page.getByTestId('pacs-test').click();
    const result = page.getByTestId('pacs-test-result');
    await expect.poll(() => result.getAttribute('data-failure'), { timeout: 20_000 }).toBe('auth');
    expect(await result.textContent()).toMatch(/401 Unauthorized: the user "radiologist" or the password is wrong/);
    await page.getByTestId('pacs-settings').screenshot({ path: join(outDir, 'pacs-01-settings-wrong-password.png') });
    await page.getByTestId('pacs-secret').fill(orthanc.password);
    await page.getByTestId('pacs-test').click();
    await expect.poll(() => result.getAttribute('data-ok'), { timeout: 20_000 }).toBe('true');
    expect(await result.textContent()).toMatch(/connected to http:\/\/127\.0\.0\.1:\d+\/dicom-web as radiologist/);
    await page.getByTestId('pacs-save').click();
    await expect.poll(() => page.getByTestId('pacs-connection-item').count(), { timeout: 10_000 }).toBe(1);
    await page.getByTestId('pacs-settings').screenshot({ path: join(outDir, 'pacs-02-settings-connected.png') });
    await page.getByTestId('settings-dialog-close').click();

    const settings = readFileSync(join(workstation.dataDir, 'settings.json'), 'utf8');
    expect(settings).toContain(`${orthanc.dicomWeb}`);
    expect(settings).not.toContain(orthanc.password);
    const secrets = join(workstation.dataDir, 'pacs-secrets.json');
    expect(statSync(secrets).mode & 0o777).toBe(0o600);
    expect(readFileSync(secrets, 'utf8')).toContain(orthanc.password);
  });

  it('searches, pages, lists series and opens a four-sequence study with progress', async () => {
    await page.getByTestId('pacs-open').click();
    await page.getByTestId('pacs-search').click();
    await expect.poll(() => page.getByTestId('pacs-study').count(), { timeout: 20_000 }).toBe(2);
    // by patient name, part of it, any case
    await page.getByTestId('pacs-search-patient').fill('doe');
    await page.getByTestId('pacs-search').click();
    await expect.poll(() => page.getByTestId('pacs-study').count(), { timeout: 20_000 }).toBe(1);
    const row = page.getByTestId('pacs-study').first();
    expect((await row.locator('td').allTextContents()).slice(0, 7)).toEqual(['Doe, Jane', 'JD-0042', '2026-11-20', 'MRI BRAIN TUMOUR FOLLOW-UP', 'MR', '4', '96']);
    expect(await page.getByTestId('pacs-next').isDisabled()).toBe(true);
    await page.getByTestId('pacs-study-pick').click();
    await expect.poll(() => page.getByTestId('pacs-series-row').count(), { timeout: 20_000 }).toBe(4);
    const rows = page.getByTestId('pacs-series-row');
    const series = await Promise.all((await rows.all()).map(async (r) => (await r.locator('td').allTextContents()).slice(0, 4).join('|')));
    expect(series).toEqual(['3|AX T1 SE|MR|24', '4|Ax T2 TSE|MR|24', '5|AX T2 FLAIR|MR|24', '7|AX T1 POST GAD|MR|24']);
    await shot('03-browser-series');

    const progress: string[] = [];
    const watching = (async () => {
      for (let i = 0; i < 200; i++) {
        const text = await page.getByTestId('pacs-progress').textContent({ timeout: 50 }).catch(() => null);
        if (text) progress.push(text);
        await new Promise((r) => setTimeout(r, 20));
        if (progress.length && !(await page.getByTestId('pacs-progress').count())) break;
      }
    })();
    await page.getByTestId('pacs-open-study').click();
    await expect.poll(async () => (await page.getByTestId('study').allTextContents()).length, { timeout: 60_000 }).toBe(1);
    await watching;
    expect(progress.length, 'the progress line showed while fetching').toBeGreaterThan(0);
    expect(progress.join('\n')).toMatch(/Fetching Doe, Jane .*: \d+\/96 images, [\d.]+ (KB|MB)/);
    // assembled as the same files from a folder: one study, four sequences recognised from the descriptions
    expect(await page.getByTestId('sequence').locator('option').allTextContents()).toHaveLength(4);
    await expect.poll(() => page.getByTestId('series').count()).toBe(4);
    await shot('04-study-opened');
  });

  it('segments the study and sends its DICOM SEG and PDF report back to the PACS', async () => {
    await page.getByTestId('segment').click();
    await page.getByTestId('segmentation-done').waitFor({ timeout: 150_000 });
    await page.getByTestId('export-open').click();
    await page.getByTestId('pacs-send').click();
    const result = page.getByTestId('pacs-send-result');
    await result.waitFor({ timeout: 60_000 });
    expect(await result.textContent()).toMatch(new RegExp(`stored in http://127\\.0\\.0\\.1:\\d+/dicom-web: DICOM SEG and PDF report \\(study ${STUDY.replace(/\./g, '\\.')}\\)`));
    await page.getByTestId('export-dialog').screenshot({ path: join(outDir, 'pacs-05-sent.png') });
    await page.getByTestId('export-dialog-close').click();
    const client = new DicomWebClient(orthanc.dicomWeb, { auth: { kind: 'basic', user: orthanc.user, password: orthanc.password } });
    const modalities = (await client.searchSeries(STUDY)).map((s) => s.modality).sort();
    expect(modalities).toEqual(['DOC', 'MR', 'MR', 'MR', 'MR', 'SEG']);

    // the browser now lists the study with its six series; opening it again leaves SEG and DOC out, saying so
    await page.getByTestId('pacs-open').click();
    await page.getByTestId('pacs-search').click();
    await page.getByTestId('pacs-study-pick').click();
    await expect.poll(() => page.getByTestId('pacs-series-row').count(), { timeout: 20_000 }).toBe(6);
    await shot('06-browser-after-send');
    await page.getByTestId('pacs-dialog-close').click();
    expect(errors).toEqual([]);
  });

  it('cancels a fetch half-way from the progress line, keeping only whole instances in the cache', async () => {
    const slow = await slowLink(orthanc.origin);
    try {
      const url = `${slow.origin}/dicom-web`;
      const { id } = await workstation.server.service.savePacsConnection({ name: 'Slow link', url, auth: 'basic', user: orthanc.user, secret: orthanc.password });
      await page.getByTestId('pacs-open').click();
      await expect.poll(() => page.getByTestId('pacs-connection').locator('option').count()).toBe(2);
      await page.getByTestId('pacs-connection').selectOption(id);
      await page.getByTestId('pacs-search-patient').fill('');
      await page.getByTestId('pacs-search-patient-id').fill('PHANTOM001');
      await page.getByTestId('pacs-search').click();
      await expect.poll(() => page.getByTestId('pacs-study').count(), { timeout: 20_000 }).toBe(1);
      const studies = await page.getByTestId('study').count();
      await page.getByTestId('pacs-open-study').click();
      const progress = page.getByTestId('pacs-progress');
      await expect.poll(async () => Number(/: (\d+)\/155 images/.exec((await progress.textContent().catch(() => '')) ?? '')?.[1] ?? 0), { timeout: 30_000 }).toBeGreaterThan(5);
      await shot('07-fetch-progress');
      await page.getByTestId('pacs-cancel').click();
      await expect.poll(() => page.getByTestId('pacs-error').textContent().catch(() => ''), { timeout: 20_000 }).toMatch(/fetch cancelled: what arrived is kept in the cache/);
      await shot('08-fetch-cancelled');
      expect(await page.getByTestId('pacs-progress').count()).toBe(0);
      expect(await page.getByTestId('study').count()).toBe(studies);
      // the cache holds whole instances only: no temporary files, fewer than the series
      const cached: string[] = [];
      const walk = (dir: string) => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          if (entry.isDirectory()) walk(join(dir, entry.name));
          else cached.push(entry.name);
        }
      };
      const cacheDir = join(workstation.dataDir, 'pacs-cache');
      if (existsSync(cacheDir)) walk(cacheDir);
      const flair = cached.filter((n) => n.endsWith('.dcm')).length - 96;
      expect(cached.filter((n) => !n.endsWith('.dcm'))).toEqual([]);
      expect(flair).toBeGreaterThan(5);
      expect(flair).toBeLessThan(155);
      await page.getByTestId('pacs-dialog-close').click();
    } finally {
      await slow.close();
    }
  });

  it('opening from a PACS without a connection points to Settings', async () => {
    await page.getByTestId('settings-open').click();
    while ((await page.getByTestId('pacs-delete').count()) > 0) {
      const before = await page.getByTestId('pacs-connection-item').count();
      await page.getByTestId('pacs-delete').first().click();
      await expect.poll(() => page.getByTestId('pacs-connection-item').count()).toBe(before - 1);
    }
    await page.getByTestId('settings-dialog-close').click();
    await page.getByTestId('pacs-open').click();
    await page.getByTestId('pacs-no-connection').waitFor();
    expect(readFileSync(join(workstation.dataDir, 'pacs-secrets.json'), 'utf8')).not.toContain(orthanc.password);
    await page.getByTestId('pacs-dialog-close').click();
  });
});
