/**
 * The job with the real engine: the golden mini SAM2-UNet checkpoint (hiera_t block structure,
 * embed_dim 8, 1 output channel; ../shared/golden/sam2unet_mini) loaded through
 * sliceModelFromCheckpoint (checkpoint reader → ONNX graph → worker-thread session).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileError, UserError } from '../../../main/core/errors.ts';
import { openPath } from '../../../main/core/io/open.ts';
import type { Study } from '../../../main/core/io/study.ts';
import { bundledModel } from '../../../main/core/jobs/bundled.ts';
import { sliceModelFromCheckpoint, type CheckpointModel } from '../../../main/core/jobs/model.ts';
import { segmentStudy, type SliceResult } from '../../../main/core/jobs/segment.ts';
import { POSTPROCESS_DEFAULTS, postprocessLabels } from '../../../main/core/model/postprocess.ts';
import { composeLabels, inputChannels, isEmptySlice, outsideHead, prepareSlices } from '../../../main/core/model/preprocess.ts';
import { readSafetensors } from '../../../main/core/model/safetensors.ts';

const shared = resolve(process.cwd(), '../shared');
const golden = join(shared, 'golden/sam2unet_mini');
// manifest.json: tolerance.forward_max_abs
const FORWARD_MAX_ABS = 1e-4;

const cache = mkdtempSync(join(tmpdir(), 'sam2unet-jobs-'));
let full: CheckpointModel;
let small: CheckpointModel;
let study: Study;

beforeAll(async () => {
  [full, small, study] = await Promise.all([
    sliceModelFromCheckpoint(join(golden, 'sam2unet.pth'), { size: [352, 352], device: 'cpu', cache }),
    sliceModelFromCheckpoint(join(golden, 'model.safetensors'), { size: [64, 64], device: 'cpu', cache }),
    openPath(join(shared, 'data/phantoms/BraTS20_Training_001')).then((r) => r.studies[0]!),
  ]);
});
afterAll(async () => {
  await Promise.all([full?.dispose(), small?.dispose()]);
  rmSync(cache, { recursive: true, force: true });
});

describe('sliceModelFromCheckpoint with the golden mini SAM2-UNet', () => {
  it(`reproduces the official eval-mode "out" (max |Δ| ≤ ${FORWARD_MAX_ABS})`, async () => {
    const io = await readSafetensors(join(golden, 'infer.safetensors'));
    const input = io.get('input')!;
    const expected = io.get('out')!;
    expect(full.inputSize).toEqual([352, 352]);
    expect(full.outChannels).toBe(1);
    expect(full.provider).toBe('cpu');
    const out = await full.run(input.data.slice(), 1);
    expect(out.length).toBe(expected.data.length);
    let worst = 0;
    for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i]! - expected.data[i]!));
    expect(worst).toBeLessThanOrEqual(FORWARD_MAX_ABS);
  });

  it('segments a 155-slice phantom study, streaming every slice in order', async () => {
    const results: SliceResult[] = [];
    // no ground truth here (whole-volume HD95 of a random model's mask is slow and tested elsewhere)
    const { labels, summary } = await segmentStudy(study, small, { batchSize: 8, groundTruth: null }, { slice: (r) => results.push(r) });
    expect(results.map((r) => r.index)).toEqual(Array.from({ length: 155 }, (_, k) => k));
    const channels = inputChannels(study);
    const empties = results.filter((r) => r.empty).map((r) => r.index);
    expect(empties).toEqual(results.map((r) => r.index).filter((k) => outsideHead(channels, k)));
    // every all-zero slice, and more: slices with a sliver of head too
    const allZero = results.map((r) => r.index).filter((k) => isEmptySlice(channels, k));
    expect(allZero.length).toBeGreaterThan(0);
    expect(empties.length).toBeGreaterThan(allZero.length);
    for (const k of allZero) expect(empties).toContain(k);
    expect(summary).toMatchObject({ case: 'BraTS20_Training_001', slices: 155, regions: 'binary', provider: 'cpu' });
    expect(summary.metrics).toBeNull();
    for (const v of new Set(labels.data)) expect([0, 1]).toContain(v);
    // the streamed mask of a slice is what an independent run of the same slice gives
    const k = 80;
    const logits = await small.run(prepareSlices(study, [k], { size: [64, 64] }), 1);
    const [nx, ny] = labels.dims;
    const alone = composeLabels(logits, { channels: 1, size: [64, 64], sliceSize: [ny, nx] });
    expect(Buffer.from(results[k]!.mask).equals(Buffer.from(alone))).toBe(true);
    // the final label map is the streamed slices after the job's 3D post-processing (run once the
    // whole volume is known, so it may change streamed slices): the same post-processing of the
    // stacked streamed masks gives it exactly, and slices it did not touch are as streamed
    const plane = nx * ny;
    const stacked = new Uint8Array(plane * 155);
    for (const r of results) stacked.set(r.mask, r.index * plane);
    const record = postprocessLabels(stacked, [nx, ny, 155], labels.geometry.spacing, 'binary', POSTPROCESS_DEFAULTS);
    expect(summary.postprocessing).toEqual(record);
    expect(Buffer.from(labels.data as Uint8Array).equals(Buffer.from(stacked))).toBe(true);
    const changed = new Set(record.changedSlices);
    for (const r of results) if (!changed.has(r.index)) expect(Buffer.from(labels.sliceView(r.index) as Uint8Array).equals(Buffer.from(r.mask))).toBe(true);
  });

  it('refuses a bare SAM2 trunk checkpoint and explains the missing bundled model', async () => {
    await expect(sliceModelFromCheckpoint(join(shared, 'golden/hiera_mini/sam2_checkpoint.pt'), { size: [64, 64], cache })).rejects.toThrow(FileError);
    await expect(sliceModelFromCheckpoint(join(shared, 'golden/hiera_mini/sam2_checkpoint.pt'), { size: [64, 64], cache })).rejects.toThrow(/only a SAM2 Hiera trunk/);
    await expect(sliceModelFromCheckpoint(join(golden, 'model.safetensors'), { size: [100, 100] })).rejects.toThrow(/multiple of 32/);
    await expect(bundledModel(join(cache, 'nowhere'))).rejects.toThrow(UserError);
    await expect(bundledModel(join(cache, 'nowhere'))).rejects.toThrow(/no bundled model exists yet .* pass --checkpoint/);
  });
});
