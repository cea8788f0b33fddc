/**
 * Fine-tuning within a time budget with held-out studies (issue 15): the run stops at the budget
 * and saves its model, the held-out studies are scored with the starting and the trained weights,
 * and the checkpoint's metadata carries the run's provenance. A tiny fresh model on phantom data.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHieraConfig } from '../../../main/core/model/config.ts';
import { readSafetensors, readSafetensorsHeader } from '../../../main/core/model/safetensors.ts';
import { provenanceFromMetadata } from '../../../main/core/train/provenance.ts';
import { train, type TrainOptions } from '../../../main/core/train/trainer.ts';

const phantoms = resolve(process.cwd(), '../shared/data/phantoms');
const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-budget-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const tinyConfig = parseHieraConfig({ embed_dim: 8, num_heads: 1, stages: [1, 1, 1, 1], global_att_blocks: [2], window_pos_embed_bkg_spatial_size: [4, 4], window_spec: [4, 4, 4, 2] });

const options = (out: string, extra: Partial<TrainOptions>): TrainOptions => ({
  data: [join(phantoms, 'BraTS20_Training_001')],
  init: { fresh: tinyConfig },
  out,
  strategy: 'full',
  steps: 100_000,
  batch: 2,
  lr: 1e-3,
  weightDecay: 5e-4,
  size: [64, 64],
  regions: 'brats',
  seed: 3,
  emptyRatio: 0.25,
  checkpointEvery: 1000,
  loss: 'official',
  resume: false,
  threads: 1,
  validateEvery: 0,
  ...extra,
});

describe('training within a time budget, with held-out studies', () => {
  it('stops at the budget, saves the model, scores the held-out study before and after, and records its provenance', async () => {
    const out = join(tmp, 'budget');
    const seen: string[] = [];
    const started = performance.now();
    const result = await train(options(out, { maxSeconds: 3, heldOut: [join(phantoms, 'BraTS20_Training_004')], baseModel: 'a fresh tiny model' }), {
      heldOut: (phase, v) => seen.push(`${phase} ${v.studies.map((s) => s.name).join(',')}`),
    });
    const seconds = (performance.now() - started) / 1000;
    expect(result.stoppedByBudget).toBe(true);
    expect(result.steps).toBeGreaterThan(0);
    expect(result.steps).toBeLessThan(100_000);
    expect(seen).toEqual(['before BraTS20_Training_004', 'after BraTS20_Training_004']);
    expect(result.provenance.seconds).toBeGreaterThanOrEqual(3);
    // the budget counts training: one step past it at most (a step is well under 10 s here)
    expect(result.provenance.seconds!).toBeLessThan(13);
    expect(seconds).toBeGreaterThan(3);
    const { metadata } = await readSafetensorsHeader(result.model);
    const provenance = provenanceFromMetadata(metadata)!;
    expect(provenance).toEqual(result.provenance);
    expect(provenance).toMatchObject({ baseModel: 'a fresh tiny model', studies: ['BraTS20_Training_001'], heldOut: ['BraTS20_Training_004'], strategy: 'full', steps: result.steps });
    expect(Object.keys(provenance.heldOutDice!.before).sort()).toEqual(['ET', 'TC', 'WT']);
    expect(provenance.heldOutDice!.after).toEqual(result.heldOut!.after.meanDice);
    expect(metadata.steps).toBe(String(result.steps));
  }, 240_000);

  it('with more studies than fit in its memory budget, keeps only the slices it draws and ends with the same weights', async () => {
    const data = ['BraTS20_Training_001', 'BraTS20_Training_002'].map((name) => join(phantoms, name));
    const run = { data, steps: 6, tumourSlicesPerStudy: 4, emptyRatio: 0.5 };
    const roomy = await train(options(join(tmp, 'roomy'), run));
    const messages: string[] = [];
    // about one whole study (62.5 MB): the first is read whole, the second for its slice lists first
    const tight = await train(options(join(tmp, 'tight'), { ...run, memoryBudget: 80e6 }), { message: (text) => messages.push(text) });
    expect(messages.filter((m) => m.startsWith('the studies do not fit in memory whole'))).toEqual([
      expect.stringMatching(/^the studies do not fit in memory whole: 2 of 2 keep only the slices this run draws \((\d+) of their \d+ with brain\)$/),
    ]);
    const [a, b] = await Promise.all([readSafetensors(roomy.model), readSafetensors(tight.model)]);
    expect([...b.keys()]).toEqual([...a.keys()]);
    const bytes = (t: Float32Array): Buffer => Buffer.from(t.buffer, t.byteOffset, t.byteLength);
    for (const [key, t] of a) expect(bytes(b.get(key)!.data).equals(bytes(t.data)), key).toBe(true);
    await expect(train(options(join(tmp, 'cramped'), { ...run, memoryBudget: 1e6 }))).rejects.toThrow(/does not fit in memory even as the \d+ slices the run draws/);
  }, 240_000);

  it('refuses a held-out study that is also trained on', async () => {
    const study = join(phantoms, 'BraTS20_Training_001');
    await expect(train(options(join(tmp, 'overlap'), { steps: 1, heldOut: [study] }))).rejects.toThrow(/held-out studies must not be trained on: BraTS20_Training_001 is in both/);
  }, 120_000);

  it('a provenance entry that is not what the trainer writes is left out', () => {
    expect(provenanceFromMetadata({})).toBeUndefined();
    expect(provenanceFromMetadata({ provenance: '{not json' })).toBeUndefined();
    expect(provenanceFromMetadata({ provenance: JSON.stringify({ baseModel: 'x', studies: 'a', heldOut: [], strategy: 'full', steps: 1, date: 'd' }) })).toBeUndefined();
  });
});
