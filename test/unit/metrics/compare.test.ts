import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import type { CommandIO } from '../../../main/cli/command.ts';
import { writeNifti } from '../../../main/core/io/nifti.ts';
import { Volume, type Geometry } from '../../../main/core/io/volume.ts';
import { compareDescriptions, type Comparison } from '../../../main/core/metrics/compare.ts';
import { describeTumour, type TumourDescription } from '../../../main/core/metrics/describe.ts';

const g: Geometry = { dims: [120, 100, 9], spacing: [1, 1, 2], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
const N = 120 * 100 * 9;

/** A lesion: oedema around an enhancing rectangle of w×h mm (one voxel per mm) on slices 3…5, optionally hollow. */
function lesion(labels: Uint8Array, x0: number, y0: number, w: number, h: number, et = true): void {
  for (let k = 2; k <= 6; k++)
    for (let j = y0 - 3; j < y0 + h + 3; j++)
      for (let i = x0 - 3; i < x0 + w + 3; i++) {
        const core = k >= 3 && k <= 5 && i >= x0 && i < x0 + w && j >= y0 && j < y0 + h;
        labels[k * 12000 + j * 120 + i] = core ? (et ? 4 : 1) : 2;
      }
}

function describeLesions(...specs: [number, number, number, number, boolean?][]): TumourDescription {
  const labels = new Uint8Array(N);
  for (const [x, y, w, h, et] of specs) lesion(labels, x, y, w, h, et ?? true);
  return describeTumour(labels, g, 'brats');
}

describe('compare: RANO-style categories from measurements', () => {
  const baseline = describeLesions([20, 20, 24, 16]);

  it('the baseline is one measurable lesion', () => {
    expect(baseline.measurable_lesions).toBe(1);
    expect(baseline.rano_sum_products_mm2).toBeGreaterThan(300);
  });

  const cases: [string, TumourDescription, Comparison['category']][] = [
    ['no enhancing disease left (the core is necrotic now)', describeLesions([20, 20, 24, 16, false]), 'CR'],
    ['half the product or less', describeLesions([20, 20, 16, 11]), 'PR'],
    ['a quarter more or larger', describeLesions([20, 20, 28, 19]), 'PD'],
    ['slightly smaller', describeLesions([20, 20, 22, 15]), 'SD'],
    ['the same lesion and a new measurable one far away', describeLesions([20, 20, 24, 16], [80, 60, 14, 12]), 'PD'],
  ];
  for (const [what, followUp, category] of cases) {
    it(`${what}: ${category}`, () => {
      const c = compareDescriptions(baseline, followUp);
      expect(c.category).toBe(category);
      expect(c.note).toMatch(/not a diagnosis/);
      const change = c.rano.change_pct!;
      if (category === 'PR') expect(change).toBeLessThanOrEqual(-50);
      if (category === 'SD') expect(Math.abs(change)).toBeLessThan(25);
      expect(c.regions.WT!.change_ml).toBeCloseTo(followUp.regions.WT!.volume_ml - baseline.regions.WT!.volume_ml, 12);
    });
  }

  it('a new lesion under 10 mm is not a new measurable lesion', () => {
    const c = compareDescriptions(baseline, describeLesions([20, 20, 24, 16], [80, 60, 6, 5]));
    expect(c.rano.new_measurable_lesions).toBe(0);
    expect(c.category).toBe('SD');
  });

  it('the same lesion is never new', () => {
    expect(compareDescriptions(baseline, baseline).rano.new_measurable_lesions).toBe(0);
    expect(compareDescriptions(baseline, baseline).category).toBe('SD');
  });
});

function capture(): CommandIO & { out: string; err: string } {
  const io = { out: '', err: '', interactive: false, stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
}

describe('sam2unet measure / compare / eval --lesion-wise', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sam2unet-measure-'));
  const write = async (name: string, labels: Uint8Array): Promise<string> => {
    const path = join(dir, name);
    await writeNifti(path, new Volume({ geometry: g, data: labels, meta: { id: name, description: '', modality: 'SEG', sources: [] } }));
    return path;
  };

  it('measure --json prints one line with the issue\'s keys; compare reads it back beside a mask', async () => {
    const a = new Uint8Array(N);
    lesion(a, 20, 20, 24, 16);
    const b = new Uint8Array(N);
    lesion(b, 20, 20, 16, 11);
    const baselineMask = await write('baseline.nii.gz', a);
    const followUpMask = await write('follow-up.nii.gz', b);
    const io = capture();
    expect(await main(['measure', '--mask', baselineMask, '--json'], io)).toBe(0);
    expect(io.out.trimEnd().split('\n')).toHaveLength(1);
    const d = JSON.parse(io.out) as TumourDescription;
    expect(Object.keys(d.regions)).toEqual(['NCR', 'ED', 'ET', 'TC', 'WT']);
    for (const r of Object.values(d.regions)) expect(Object.keys(r).sort()).toEqual(['volume_ml', 'voxels']);
    for (const key of ['lesions', 'rano_sum_products_mm2', 'measurable_lesions', 'multifocal', 'laterality']) expect(d).toHaveProperty(key);
    const l = d.lesions[0]!;
    for (const key of ['volume_ml', 'centroid_lps', 'max_diameter_mm', 'et_volume_ml', 'rano']) expect(l).toHaveProperty(key);
    for (const key of ['slice', 'long_mm', 'perp_mm', 'product_mm2', 'measurable']) expect(l.rano).toHaveProperty(key);
    expect(Object.keys(d.multifocal).sort()).toEqual(['foci', 'largest_distance_mm']);
    for (const key of ['left_pct', 'right_pct', 'crosses_midline', 'method']) expect(d.laterality).toHaveProperty(key);
    expect(d.laterality.method).toBe('patient-axes');
    const jsonPath = join(dir, 'baseline.json');
    writeFileSync(jsonPath, io.out);

    const cmp = capture();
    expect(await main(['compare', '--baseline', jsonPath, '--follow-up', followUpMask, '--json'], cmp)).toBe(0);
    const c = JSON.parse(cmp.out) as Comparison;
    expect(c.category).toBe('PR');
    expect(c.rano.baseline_sum_products_mm2).toBe(d.rano_sum_products_mm2);

    const text = capture();
    expect(await main(['compare', '--baseline', baselineMask, '--follow-up', followUpMask], text)).toBe(0);
    expect(text.out).toContain('RANO-style category: PR (partial response)');
    expect(text.out).toContain('not a diagnosis');
  });

  it('measure prints a readable description; a JSON that is not a description is refused naming the file', async () => {
    const a = new Uint8Array(N);
    lesion(a, 20, 20, 24, 16);
    const mask = await write('readable.nii.gz', a);
    const io = capture();
    expect(await main(['measure', '--mask', mask], io)).toBe(0);
    expect(io.out).toMatch(/^WT\s+\d+\.\d\d\s+\d+$/m);
    expect(io.out).toContain('RANO sum of products');
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"regions": {}}\n');
    const err = capture();
    expect(await main(['compare', '--baseline', bad, '--follow-up', mask], err)).toBe(2);
    expect(err.err).toContain(bad);
  });

  it('eval --json carries lesion_wise; --lesion-wise prints its table; options are checked', async () => {
    const gt = new Uint8Array(N);
    lesion(gt, 20, 20, 24, 16);
    lesion(gt, 80, 60, 10, 10);
    const pred = new Uint8Array(N);
    lesion(pred, 21, 20, 24, 16);
    const gtPath = await write('gt.nii.gz', gt);
    const predPath = await write('pred.nii.gz', pred);
    const io = capture();
    expect(await main(['eval', '--pred', predPath, '--gt', gtPath, '--json', '--dilation', '2'], io)).toBe(0);
    const result = JSON.parse(io.out.trimEnd().split('\n').at(-1)!) as { lesion_wise: { dilation: number; threshold_mm3: number; regions: Record<string, { dice: number; hd95: number; fn: number }> } };
    expect(result.lesion_wise.dilation).toBe(2);
    expect(result.lesion_wise.threshold_mm3).toBe(50);
    expect(Object.keys(result.lesion_wise.regions)).toEqual(['WT', 'TC', 'ET']);
    expect(result.lesion_wise.regions.WT!.fn).toBe(1);
    expect(result.lesion_wise.regions.WT!.dice).toBeLessThan(0.5);
    const text = capture();
    expect(await main(['eval', '--pred', predPath, '--gt', gtPath, '--lesion-wise'], text)).toBe(0);
    expect(text.out).toContain('Lesion-wise (BraTS 2023)');
    expect(text.out).toMatch(/^WT\s+0\.\d{4}\s+\d+\.\d\d\s+1\s+0\s+1$/m);
    const bad = capture();
    expect(await main(['eval', '--pred', predPath, '--gt', gtPath, '--lesion-wise', '--dilation', 'two'], bad)).toBe(2);
    expect(bad.err).toContain('--dilation');
  });
});
