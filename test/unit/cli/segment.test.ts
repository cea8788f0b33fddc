import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import { DEFAULT_MODEL_DIR } from '../../../main/core/jobs/bundled.ts';
import { readDicomSeg } from '../../../main/core/io/dicom-seg.ts';
import { readNifti, writeNifti } from '../../../main/core/io/nifti.ts';
import { openPath } from '../../../main/core/io/open.ts';
import { Volume, sameGrid } from '../../../main/core/io/volume.ts';

const shared = resolve(process.cwd(), '../shared');
const checkpoint = join(shared, 'golden/sam2unet_mini/model.safetensors');
const out = mkdtempSync(join(tmpdir(), 'sam2unet-segment-cli-'));
const [NX, NY, NZ] = [48, 40, 12];
const image = join(out, 'input', 'case7.nii.gz');
const seg = join(out, 'input', 'case7_labels.nii.gz');
// the engine caches built graphs; keep this test's out of the user's cache
process.env.SAM2UNET_CACHE = join(out, 'cache');

beforeAll(async () => {
  // a small single-sequence study: zero first and last slices, a bright blob in the middle
  const data = new Int16Array(NX * NY * NZ);
  const labels = new Uint8Array(NX * NY * NZ);
  for (let z = 1; z < NZ - 1; z++)
    for (let y = 0; y < NY; y++)
      for (let x = 0; x < NX; x++) {
        const i = (z * NY + y) * NX + x;
        if (((x - 24) / 20) ** 2 + ((y - 20) / 16) ** 2 > 1) continue;
        const tumour = Math.hypot(x - 20, y - 18, z - 6) < 5;
        data[i] = tumour ? 400 : 100 + ((x * 7 + y * 3) % 20);
        labels[i] = tumour ? 1 : 0;
      }
  const geometry = { dims: [NX, NY, NZ] as [number, number, number], spacing: [1, 1, 2] as [number, number, number], origin: [10, -5, 3] as [number, number, number], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
  const meta = { description: '', modality: 'MR', sources: [] };
  await writeNifti(image, new Volume({ geometry, data, meta: { ...meta, id: 'case7' } }));
  await writeNifti(seg, new Volume({ geometry, data: labels, meta: { ...meta, id: 'case7_labels' } }));
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

async function run(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(['segment', ...argv], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), interactive: false });
  return { code, stdout, stderr };
}

describe('sam2unet segment', () => {
  it('explains user errors in one line with exit status 2', async () => {
    const noOut = await run(image);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toMatch(/--out is required/);
    const dicomSeg = await run(image, '--out', out, '--checkpoint', checkpoint, '--dicom-seg');
    expect(dicomSeg.code).toBe(2);
    expect(dicomSeg.stderr).toMatch(/--dicom-seg needs a DICOM study; .*case7.nii.gz is a NIfTI file/);
    const noModel = await run(image, '--out', out, '--checkpoint', join(out, 'missing.pth'));
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toMatch(/missing\.pth: no such file/);
    const badSize = await run(image, '--out', out, '--checkpoint', checkpoint, '--size', '100');
    expect(badSize.stderr).toMatch(/multiple of 32/);
    const badPrecision = await run(image, '--out', out, '--checkpoint', checkpoint, '--precision', 'int4');
    expect(badPrecision.code).toBe(2);
    expect(badPrecision.stderr).toMatch(/--precision: unknown precision "int4"; choose one of float32, int8, float16/);
    const badRegions = await run(image, '--out', out, '--checkpoint', checkpoint, '--regions', 'lungs');
    expect(badRegions.stderr).toMatch(/--regions expects brats or binary/);
    const badTta = await run(image, '--out', out, '--checkpoint', checkpoint, '--tta', 'rotate');
    expect(badTta.code).toBe(2);
    expect(badTta.stderr).toMatch(/--tta expects none or mirror, got "rotate"/);
    const badGt = await run(image, '--out', out, '--checkpoint', checkpoint, '--channels', 'image', '--gt', join(shared, 'data/external/nifti/anatomical.nii'));
    expect(badGt.code).toBe(2);
    expect(badGt.stderr).toMatch(/anatomical\.nii: the ground truth .* is not on the study's grid/);
    const badConfig = await run(image, '--out', out, '--checkpoint', checkpoint, '--config', 'hiera_zz');
    expect(badConfig.stderr).toMatch(/--config "hiera_zz" is neither a preset/);
    const badJson = await run(image, '--out', out, '--checkpoint', checkpoint, '--config', '{"embed_dim": 8');
    expect(badJson.stderr).toMatch(/--config: not valid JSON/);
    if (!existsSync(join(DEFAULT_MODEL_DIR, 'model.safetensors'))) {
      const noBundled = await run(image, '--out', out);
      expect(noBundled.code).toBe(2);
      expect(noBundled.stderr).toMatch(/no bundled model exists yet .* pass --checkpoint/);
    } else {
      console.log('models/default/model.safetensors exists: the "no bundled model" message is not checked');
    }
    // the model takes FLAIR, T1ce and T2 (the golden checkpoint does not say: defaults); the study has one sequence
    const lacking = await run(image, '--out', out, '--checkpoint', checkpoint);
    expect(lacking.code).toBe(2);
    expect(lacking.stderr).toMatch(/case7: the model takes flair, t1ce, t2; the study has no flair \(channel 1\), t1ce \(channel 2\), t2 \(channel 3\) \(it has image\)\. To feed another sequence instead, pass --channels image,image,image/);
    const unknown = await run(image, '--out', out, '--checkpoint', checkpoint, '--channels', 'image,t2,image');
    expect(unknown.stderr).toMatch(/case7: no sequence "t2" to feed channel 2 \(it has image\)/);
    for (const r of [noOut, dicomSeg, noModel, badSize, badRegions, badTta, badGt, badConfig, badJson, lacking, unknown]) expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^sam2unet: /);
  });

  it('segments a NIfTI study against --gt: JSON lines per slice in order, a summary, the label NIfTI on the study grid', async () => {
    const r = await run(image, '--out', join(out, 'result'), '--checkpoint', checkpoint, '--channels', 'image', '--gt', seg, '--size', '64', '--json', '--batch', '4');
    expect(r.stderr).not.toMatch(/^sam2unet: /m);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const slices = lines.filter((l) => l.type === 'slice');
    expect(slices.map((l) => l.index)).toEqual(Array.from({ length: NZ }, (_, k) => k));
    expect(Object.keys(slices[0]!).sort()).toEqual(['empty', 'index', 'ms', 'regions', 'type']);
    expect(slices.map((l) => l.empty)).toEqual(Array.from({ length: NZ }, (_, k) => k === 0 || k === NZ - 1));
    expect(Object.keys(slices[6]!.regions)).toEqual(['foreground']);
    expect(typeof slices[6]!.regions.foreground.dice).toBe('number');
    const summary = lines.at(-1)!;
    expect(summary).toMatchObject({ type: 'summary', case: 'case7', slices: NZ, emptySlices: 2, regions: 'binary', provider: 'cpu' });
    expect(typeof summary.metrics.foreground.dice).toBe('number');
    const pred = join(out, 'result', 'case7_pred.nii.gz');
    expect(summary.files).toContain(pred);
    for (const name of ['metrics.json', 'metrics.csv', 'report.html', 'report.pdf']) expect(summary.files).toContain(join(out, 'result', name));
    const metrics = JSON.parse(readFileSync(join(out, 'result', 'metrics.json'), 'utf8'));
    expect(metrics.settings).toMatchObject({ model: 'sam2unet_mini', checkpoint, device: 'cpu', inputSize: 64, regions: ['foreground'] });
    // every channel fed with the one sequence, and the defaults the checkpoint leaves to us, are in the report
    expect(metrics.settings.extra.channels).toBe('flair ← image (substitute), t1ce ← image (substitute), t2 ← image (substitute)');
    expect(metrics.settings.notes).toEqual([
      'channel 1 takes flair; fed with image instead (the study has no flair)',
      'channel 2 takes t1ce; fed with image instead (the study has no t1ce)',
      'channel 3 takes t2; fed with image instead (the study has no t2)',
      'the checkpoint does not say how it must be run; defaults used: channels flair, t1ce, t2, regions binary (from its 1 output channel)',
    ]);
    expect(readFileSync(join(out, 'result', 'report.html'), 'utf8')).toContain('channel 2 takes t1ce; fed with image instead (the study has no t1ce)');
    expect(r.stderr).toMatch(/input 64×64 as chosen; regions binary by default; channels flair ← image \(substitute\)/);
    expect(metrics.perVolume.foreground.dice).toBeCloseTo(summary.metrics.foreground.dice, 4);
    // slices are numbered 1-based as every output shows them; `index` is the 0-based voxel index
    expect(metrics.perSlice.map((e: { slice: number; index: number }) => [e.slice, e.index])).toEqual(Array.from({ length: NZ }, (_, k) => [k + 1, k]));
    expect(readFileSync(join(out, 'result', 'report.pdf')).subarray(0, 5).toString()).toBe('%PDF-');
    const written = (await readNifti(pred)).volumes[0]!;
    const study = (await openPath(image)).studies[0]!;
    expect(sameGrid(written.geometry, study.sequences.image!.geometry)).toBe(true);
    expect(written.dtype).toBe('uint8');
    for (const v of new Set(written.data)) expect([0, 1]).toContain(v);
    // progress went to stderr, not stdout
    expect(r.stderr).toMatch(/segmenting case7 100% 12\/12 slices/);
    expect(r.stderr).toMatch(/test-time augmentation none \(one view\) by default/);
    expect(metrics.settings.testTimeAugmentation).toBe('none (one view)');

    // --tta mirror: four views averaged (mirror.test.ts checks the arithmetic), said on stderr and in the reports
    const m = await run(image, '--out', join(out, 'mirrored'), '--checkpoint', checkpoint, '--channels', 'image', '--gt', seg, '--size', '64', '--tta', 'mirror');
    expect(m.code, m.stderr).toBe(0);
    expect(m.stderr).toMatch(/test-time augmentation mirroring: 4 views averaged \(as is, flipped left-right, front-back, both\) as chosen/);
    const mirroredMetrics = JSON.parse(readFileSync(join(out, 'mirrored', 'metrics.json'), 'utf8'));
    expect(mirroredMetrics.settings.testTimeAugmentation).toBe('mirroring: 4 views averaged (as is, flipped left-right, front-back, both)');
    expect(readFileSync(join(out, 'mirrored', 'report.html'), 'utf8')).toContain('Test-time augmentation');
  });

  it('writes a DICOM SEG for a DICOM series that reads back as the predicted labels', async () => {
    const series = join(shared, 'data/phantoms/BraTS20_Training_001_flair_dicom');
    const dir = join(out, 'dicom');
    const r = await run(series, '--out', dir, '--checkpoint', checkpoint, '--channels', 'flair', '--size', '64', '--dicom-seg', '--json');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(summary.metrics).toBeNull();
    const segFile = summary.files.find((f: string) => f.endsWith('_seg.dcm'));
    const predFile = summary.files.find((f: string) => f.endsWith('_pred.nii.gz'));
    expect(segFile).toBeDefined();
    // the predicted NIfTI is on the series' grid: place the SEG's frames there
    const pred = (await readNifti(predFile)).volumes[0]!;
    const { labels } = await readDicomSeg(segFile, pred.geometry);
    expect(labels.dims).toEqual(pred.dims);
    expect(Buffer.from(labels.data as Uint8Array).equals(Buffer.from(pred.data as Uint8Array))).toBe(true);
  });
});
