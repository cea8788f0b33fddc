/**
 * Cohorts end to end with the bundled model: the four shared phantoms plus a broken study
 * (a truncated .nii.gz), on one machine (`segment <folder>`), then rerun (everything up to date).
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import { findCohort } from '../../../main/core/cohort/find.ts';
import { CaseRunner } from '../../../main/core/cohort/case-run.ts';
import { POSTPROCESS_DEFAULTS } from '../../../main/core/model/postprocess.ts';
import type { CohortSummary } from '../../../main/core/cohort/summary.ts';
import { pdfPageTexts } from '../report/pdftext.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const CASES = ['BraTS20_Training_001', 'BraTS20_Training_002', 'BraTS20_Training_003', 'BraTS20_Training_004'];
const BROKEN = 'BraTS20_Training_005';
const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-cohort-'));
const cohortDir = join(tmp, 'cohort');
const out = join(tmp, 'out');
/** ~7 s per phantom on an idle machine; a shared CI machine may be several times slower */
const SLOW = 600_000;

/** A BraTS case folder like 001 whose FLAIR is cut off after 1 MB (a copy interrupted mid-file). */
function makeBrokenCase(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const role of ['t1', 't1ce', 't2', 'seg']) copyFileSync(join(phantoms, CASES[0]!, `${CASES[0]}_${role}.nii.gz`), join(dir, `${BROKEN}_${role}.nii.gz`));
  writeFileSync(join(dir, `${BROKEN}_flair.nii.gz`), readFileSync(join(phantoms, CASES[0]!, `${CASES[0]}_flair.nii.gz`)).subarray(0, 1_000_000));
}

async function run(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const started = performance.now();
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), interactive: false });
  return { code, stdout, stderr, ms: performance.now() - started };
}

/** A CSV line split into fields (quoted fields may hold commas and doubled quotes). */
function csvRow(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

function readCsv(file: string): Record<string, string>[] {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const columns = csvRow(header!);
  return lines.map((l) => Object.fromEntries(csvRow(l).map((v, i) => [columns[i]!, v])));
}

beforeAll(() => {
  mkdirSync(cohortDir);
  // a cohort assembled from links to where the studies lie, as a research group does
  for (const c of CASES) symlinkSync(join(phantoms, c), join(cohortDir, c));
  makeBrokenCase(join(cohortDir, BROKEN));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let first: Awaited<ReturnType<typeof run>>;

describe('a cohort on one machine', () => {
  it('is recognised from its sub-folders; a study folder and the series folders of one study are not cohorts', async () => {
    const cohort = await findCohort(cohortDir);
    expect(cohort?.cases.map((c) => c.name)).toEqual([...CASES, BROKEN]);
    expect(cohort?.cases.every((c) => c.kind === 'brats')).toBe(true);
    expect(cohort?.cases[0]).toMatchObject({ sequences: ['flair', 't1', 't1ce', 't2'], groundTruth: true });
    expect(await findCohort(join(phantoms, CASES[0]!))).toBeNull();
    await expect(findCohort(join(phantoms, CASES[0]!), { explicit: true })).rejects.toThrow(/is not a cohort: it holds a BraTS case itself/);
    const series = join(tmp, 'one-study');
    for (const s of ['flair', 'flair-copy']) {
      mkdirSync(join(series, s), { recursive: true });
      const src = join(phantoms, 'BraTS20_Training_001_flair_dicom');
      for (const f of ['IM00526276.dcm', 'IM00660277.dcm']) copyFileSync(join(src, f), join(series, s, f));
    }
    expect(await findCohort(series)).toBeNull();
    await expect(findCohort(series, { explicit: true })).rejects.toThrow(/series of one DICOM study/);
  });

  it('segments the four phantoms, records the broken study as failed with its error, and summarises them', async () => {
    first = await run('segment', cohortDir, '--out', out);
    console.log(`cohort of ${CASES.length + 1}: first run ${(first.ms / 1000).toFixed(1)} s`);
    expect(first.code, first.stderr).toBe(3); // some studies failed
    expect(first.stderr).toMatch(/cohort: 5 studies in .*, 0 up to date, 5 to segment/);
    expect(first.stderr).toMatch(/cohort +\d+% \d\/5 studies ETA/);
    expect(first.stdout).toMatch(new RegExp(`FAILED +${BROKEN}: .*${BROKEN}_flair\\.nii\\.gz: truncated gzip`));
    const summary = JSON.parse(readFileSync(join(out, 'cohort.json'), 'utf8')) as CohortSummary;
    expect(summary.counts).toEqual({ done: 4, skipped: 0, failed: 1, pending: 0 });
    expect(summary.cases.map((c) => [c.case, c.status])).toEqual([...CASES.map((c) => [c, 'done']), [BROKEN, 'failed']]);
    expect(summary.cases[4]!.error).toMatch(/BraTS20_Training_005_flair\.nii\.gz: truncated gzip data/);
    expect(summary.run?.model_hash).toMatch(/^[0-9a-f]{64}$/);
    for (const c of summary.cases.slice(0, 4)) {
      expect(c.input_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(c).toMatchObject({ ground_truth: true, sequences_used: ['flair', 't1ce', 't2'], model: 'bundled default model', outputs: c.case });
      expect(c.seconds).toBeGreaterThan(0);
      // each study's outputs as a single-study segment writes them, plus its record
      for (const f of [`${c.case}_pred.nii.gz`, 'metrics.json', 'metrics.csv', 'report.html', 'report.pdf', 'cohort-case.json']) expect(existsSync(join(out, c.case, f)), f).toBe(true);
    }
    expect(existsSync(join(out, BROKEN))).toBe(false);

    // cohort.csv carries exactly the figures of each case's metrics.json
    const rows = readCsv(join(out, 'cohort.csv'));
    expect(rows.map((r) => r.status)).toEqual(['done', 'done', 'done', 'done', 'failed']);
    for (const row of rows.slice(0, 4)) {
      const metrics = JSON.parse(readFileSync(join(out, row.case!, 'metrics.json'), 'utf8'));
      for (const region of ['WT', 'TC', 'ET']) {
        expect(Number(row[`dice_${region}`]), `${row.case} ${region} Dice`).toBe(metrics.perVolume[region].dice);
        expect(Number(row[`hd95_${region}`]), `${row.case} ${region} HD95`).toBe(metrics.perVolume[region].hd95);
        expect(Number(row[`volume_ml_${region}`]), `${row.case} ${region} volume`).toBe(metrics.prediction.regionVolumesMl[region]);
        expect(Number(row[`lesion_dice_${region}`]), `${row.case} ${region} lesion-wise Dice`).toBe(metrics.tumour.lesionWise.regions[region].dice);
        expect(Number(row[`lesion_hd95_${region}`]), `${row.case} ${region} lesion-wise HD95`).toBe(metrics.tumour.lesionWise.regions[region].hd95);
      }
      expect(Number(row.lesions)).toBe(metrics.tumour.description.lesions.length);
    }
    expect(rows[4]!.error).toMatch(/truncated gzip/);

    // the distributions and the table, in the HTML and the PDF
    const html = readFileSync(join(out, 'cohort.html'), 'utf8');
    expect(html.match(/<g class="box" data-region="(WT|TC|ET)" data-n="4"/g)).toHaveLength(3);
    expect(html.match(/<svg [^>]*class="cohort-volume"/g)).toHaveLength(3);
    expect(html).toContain(`<tr class="status-failed" data-case="${BROKEN}"`);
    expect(html).toContain(`<a href="${CASES[0]}/report.html">`);
    const pdf = readFileSync(join(out, 'cohort.pdf'));
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    const pdfText = pdfPageTexts(pdf).flat();
    expect(pdfText).toContain('5 studies · 4 segmented · 0 up to date (skipped) · 1 failed');
    expect(pdfText.some((t) => t.startsWith(`${BROKEN}: `) && /truncated gzip/.test(t))).toBe(true);
  }, SLOW);

  it('skips every done study on a rerun, in under a tenth of the first run\'s time', async () => {
    const predictions = CASES.map((c) => statSync(join(out, c, `${c}_pred.nii.gz`)).mtimeMs);
    const again = await run('segment', cohortDir, '--out', out);
    console.log(`rerun: ${(again.ms / 1000).toFixed(2)} s (${((100 * again.ms) / first.ms).toFixed(1)} % of the first run)`);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/cohort: 5 studies in .*, 4 up to date, 1 to segment/);
    const summary = JSON.parse(readFileSync(join(out, 'cohort.json'), 'utf8')) as CohortSummary;
    expect(summary.counts).toEqual({ done: 0, skipped: 4, failed: 1, pending: 0 });
    // untouched outputs, and the skipped rows keep their figures
    expect(CASES.map((c) => statSync(join(out, c, `${c}_pred.nii.gz`)).mtimeMs)).toEqual(predictions);
    expect(summary.cases[0]!.metrics?.WT?.dice).toBeGreaterThan(0.5);
    expect(again.ms).toBeLessThan(first.ms / 10);
  }, SLOW);

  it('decides "up to date" from contents: a copy of a study is, a changed file or another setting is not', async () => {
    const runner = await CaseRunner.create({ model: {}, postprocess: POSTPROCESS_DEFAULTS });
    const copy = join(tmp, 'copy', CASES[0]!);
    mkdirSync(copy, { recursive: true });
    for (const role of ['t1', 't1ce', 't2', 'flair', 'seg']) copyFileSync(join(phantoms, CASES[0]!, `${CASES[0]}_${role}.nii.gz`), join(copy, `${CASES[0]}_${role}.nii.gz`));
    const entry = { name: CASES[0]!, path: copy, kind: 'brats' as const };
    expect((await runner.upToDate(entry, out)).record?.case).toBe(CASES[0]);
    const t2 = join(copy, `${CASES[0]}_t2.nii.gz`);
    const bytes = readFileSync(t2);
    bytes[bytes.length - 20] ^= 0xff;
    writeFileSync(t2, bytes);
    expect((await runner.upToDate(entry, out)).record).toBeNull();
    const other = await CaseRunner.create({ model: {}, postprocess: { ...POSTPROCESS_DEFAULTS, minEtMl: 0 } });
    expect((await other.upToDate({ ...entry, path: join(phantoms, CASES[0]!) }, out)).record).toBeNull();
    expect((await runner.upToDate({ ...entry, path: join(phantoms, CASES[0]!) }, out)).record?.case).toBe(CASES[0]);
  });
});
