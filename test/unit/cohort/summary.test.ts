/** The cohort summary's arithmetic and files without a model: statistics, CSV quoting, what counts as done. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { boxPlot, histogram, quantile, renderCohortHtml } from '../../../main/core/cohort/report.ts';
import { CASE_RECORD, type CaseRecord, type RunFingerprint } from '../../../main/core/cohort/record.ts';
import { buildSummary, renderCohortCsv, rowFromCase, rowFromDisk, rowFromRecord } from '../../../main/core/cohort/summary.ts';

const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-cohort-summary-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run: RunFingerprint = { model_hash: 'a'.repeat(64), size: [128, 128], channels: ['flair', 't1ce', 't2'], regions: 'brats', tta: 'none', channels_chosen: [], config: null, postprocess: { minComponentMl: 0.2, minEtMl: 0.2 }, dicom_seg: false };

function record(name: string, over: Partial<CaseRecord> = {}): CaseRecord {
  return {
    case: name,
    study: name,
    source: `/data/${name}`,
    kind: 'brats',
    sequences_found: ['t1', 't1ce', 't2', 'flair'],
    sequences_used: ['flair', 't1ce', 't2'],
    channels: 'flair ← flair, t1ce ← t1ce, t2 ← t2',
    ground_truth: true,
    regions: ['WT', 'TC', 'ET'],
    volumes_ml: { WT: 96.157, TC: 9.746, ET: 8.847 },
    metrics: { WT: { dice: 0.9476405600993448, hd95: 1.7320508075688772 }, TC: { dice: 0.85, hd95: 2 }, ET: { dice: null, hd95: null } },
    lesion_wise: null,
    lesions: 4,
    model: 'bundled default model',
    checkpoint: '/m.safetensors',
    preset: 'custom',
    device: 'cpu',
    input_hash: 'b'.repeat(64),
    run,
    notes: [],
    seconds: 7.25,
    finished_at: '2026-01-01T00:00:00Z',
    files: [{ name: 'metrics.json', bytes: 2 }],
    worker: 'w1',
    ...over,
  };
}

describe('cohort statistics', () => {
  it('quartiles interpolate between order statistics as numpy does', () => {
    expect(quantile([1, 2, 3, 4], 0.25)).toBeCloseTo(1.75, 12);
    expect(quantile([1, 2, 3, 4], 0.5)).toBeCloseTo(2.5, 12);
    expect(quantile([5], 0.75)).toBe(5);
  });

  it('box whiskers stop at the last case within 1.5 IQR; the outlier stays a dot', () => {
    const box = boxPlot('WT', '#0f0', [0.9, 0.91, 0.92, 0.93, 0.1]);
    expect(box.median).toBeCloseTo(0.91, 12);
    expect(box.low).toBe(0.9);
    expect(box.high).toBe(0.93);
    expect(box.min).toBe(0.1);
    expect(box.values).toHaveLength(5);
  });

  it('histogram bins start at 0, have a round width and count every case once', () => {
    const hist = histogram('WT', '#0f0', [81.4, 96.2, 118.3, 136.5]);
    expect(hist.bins[0]!.lo).toBe(0);
    expect(hist.bins.reduce((n, b) => n + b.count, 0)).toBe(4);
    const width = hist.bins[0]!.hi - hist.bins[0]!.lo;
    expect([1, 2, 5, 10, 20, 50].includes(width)).toBe(true);
    expect(hist.bins.at(-1)!.hi).toBeGreaterThan(136.5);
  });
});

describe('the cohort summary files', () => {
  it('writes numbers at full precision and quotes an error holding commas, quotes and line breaks', () => {
    const summary = buildSummary({
      cohort: '/data',
      out: '/out',
      rows: [rowFromRecord(record('c1'), 'done'), rowFromCase({ name: 'c2', path: '/data/c2', kind: 'brats' }, 'failed', { error: '/data/c2/x.nii.gz: bad "header", line\nbreak' })],
    });
    const [header, first, ...rest] = renderCohortCsv(summary).trim().split('\n');
    const columns = header!.split(',');
    const cells = first!.split(',');
    expect(cells[columns.indexOf('dice_WT')]).toBe('0.9476405600993448');
    expect(cells[columns.indexOf('dice_ET')]).toBe('');
    expect(cells[columns.indexOf('volume_ml_WT')]).toBe('96.157');
    expect(rest.join('\n')).toContain('"/data/c2/x.nii.gz: bad ""header"", line\nbreak"');
    expect(summary.counts).toEqual({ done: 1, skipped: 0, failed: 1, pending: 0 });
    // the HTML escapes what the error says
    expect(renderCohortHtml(summary)).toContain('bad &quot;header&quot;');
  });

  it('counts a case done only when its folder is complete, and only for the run asked about', async () => {
    const out = join(tmp, 'out');
    const entry = { name: 'c1', path: '/data/c1', kind: 'brats' as const };
    mkdirSync(join(out, 'c1'), { recursive: true });
    writeFileSync(join(out, 'c1', CASE_RECORD), JSON.stringify(record('c1')));
    // the record lists metrics.json (2 bytes), which is missing: not complete
    expect((await rowFromDisk(entry, out)).status).toBe('pending');
    writeFileSync(join(out, 'c1', 'metrics.json'), '{}');
    expect((await rowFromDisk(entry, out)).status).toBe('done');
    expect((await rowFromDisk(entry, out, { fingerprint: run })).status).toBe('done');
    expect((await rowFromDisk(entry, out, { fingerprint: { ...run, postprocess: { minComponentMl: 0, minEtMl: 0 } } })).status).toBe('pending');
    expect((await rowFromDisk(entry, out, { inputHash: 'c'.repeat(64) })).status).toBe('pending');
  });
});
