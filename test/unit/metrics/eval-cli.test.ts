import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import type { CommandIO } from '../../../main/cli/command.ts';
import { readNifti, writeNifti } from '../../../main/core/io/nifti.ts';
import { Volume } from '../../../main/core/io/volume.ts';
import { evaluateVolume, regionsFor } from '../../../main/core/metrics/index.ts';
import { makePrediction, PHANTOMS, type Dims } from './predictions.ts';

function capture(): CommandIO & { out: string; err: string } {
  const io = { out: '', err: '', interactive: false, stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
}

const lastLine = (text: string): string => text.trimEnd().split('\n').at(-1)!;

describe('sam2unet eval', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sam2unet-eval-'));
  const gtPath = new URL('BraTS20_Training_003/BraTS20_Training_003_seg.nii.gz', PHANTOMS).pathname;
  const predPath = join(dir, 'pred.nii.gz');
  let gt: Volume;
  let pred: Uint8Array;

  beforeAll(async () => {
    gt = (await readNifti(gtPath)).volumes[0]!;
    pred = makePrediction('shift', gt.data as Uint8Array, [...gt.dims] as Dims);
    await writeNifti(predPath, gt.withData(pred));
  });

  it('prints BraTS regions as the last JSON line, equal to evaluateVolume', async () => {
    const io = capture();
    expect(await main(['eval', '--pred', predPath, '--gt', gtPath, '--json'], io)).toBe(0);
    const result = JSON.parse(lastLine(io.out)) as { regions: Record<string, Record<string, number>> };
    expect(Object.keys(result.regions)).toEqual(['WT', 'TC', 'ET']);
    const want = evaluateVolume(pred, gt.data as Uint8Array, gt.dims, gt.geometry.spacing, regionsFor('brats'));
    for (const [name, m] of Object.entries(result.regions)) {
      expect(Object.keys(m).sort()).toEqual(['dice', 'hd95', 'iou', 'sensitivity', 'specificity', 'volume_ml']);
      expect(m.dice).toBe(want[name]!.dice);
      expect(m.hd95).toBe(want[name]!.hd95);
      expect(m.volume_ml).toBe(want[name]!.volumeMl);
    }
    // case 003 has no ET in either file: both-empty rule
    expect(result.regions.ET).toMatchObject({ dice: 1, hd95: 0 });
  });

  it('prints a readable table without --json', async () => {
    const io = capture();
    expect(await main(['eval', '--pred', predPath, '--gt', gtPath], io)).toBe(0);
    expect(io.out).toMatch(/^WT\s+0\.\d{4}/m);
    expect(io.out).toContain('HD95 (mm)');
  });

  it('scores binary masks as one foreground region', async () => {
    const dims: [number, number, number] = [20, 16, 8];
    const geometry = { dims, spacing: [0.5, 0.5, 2] as [number, number, number], origin: [0, 0, 0] as [number, number, number], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
    const a = new Uint8Array(20 * 16 * 8);
    const b = new Uint8Array(20 * 16 * 8);
    for (let i = 0; i < a.length; i++) {
      const x = i % 20;
      a[i] = x >= 5 && x < 10 ? 1 : 0;
      b[i] = x >= 6 && x < 10 ? 1 : 0;
    }
    const meta = { id: 'm', description: 'mask', modality: '', sources: [] };
    await writeNifti(join(dir, 'a.nii'), new Volume({ geometry, data: a, meta }));
    await writeNifti(join(dir, 'b.nii'), new Volume({ geometry, data: b, meta }));
    const io = capture();
    expect(await main(['eval', '--pred', join(dir, 'a.nii'), '--gt', join(dir, 'b.nii'), '--json'], io)).toBe(0);
    const result = JSON.parse(lastLine(io.out)) as { regions: Record<string, Record<string, number>> };
    expect(Object.keys(result.regions)).toEqual(['foreground']);
    expect(result.regions.foreground!.dice).toBeCloseTo((2 * 4) / 9, 12);
    expect(result.regions.foreground!.volume_ml).toBeCloseTo((5 * 16 * 8 * 0.5) / 1000, 12);
  });

  it('refuses different grids, probability maps and missing files with one line and status 2', async () => {
    const other = join(dir, 'other-grid.nii.gz');
    await writeNifti(other, new Volume({ geometry: { ...gt.geometry, spacing: [1, 1, 2] }, data: pred, meta: gt.meta }));
    let io = capture();
    expect(await main(['eval', '--pred', other, '--gt', gtPath], io)).toBe(2);
    expect(io.err).toMatch(/different grids/);
    expect(io.err.trim().split('\n')).toHaveLength(1);

    const probability = join(dir, 'prob.nii');
    await writeNifti(probability, new Volume({ geometry: gt.geometry, data: new Float32Array(gt.data.length).fill(0.25), meta: gt.meta }));
    io = capture();
    expect(await main(['eval', '--pred', probability, '--gt', gtPath], io)).toBe(2);
    expect(io.err).toMatch(/prob\.nii: .*integers 0…255/);

    io = capture();
    expect(await main(['eval', '--pred', join(dir, 'missing.nii.gz'), '--gt', gtPath], io)).toBe(2);
    expect(io.err).toContain('missing.nii.gz');
    io = capture();
    expect(await main(['eval', '--gt', gtPath], io)).toBe(2);
    expect(io.err).toContain('--pred is required');
  });
});
