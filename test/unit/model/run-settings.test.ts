/**
 * "A model knows how it must be run" (issue 12): the trainer writes input size, channels and
 * regions into every checkpoint; segment, the app and train --checkpoint use them unless the user
 * overrides them; a checkpoint without them gets the defaults, said to be defaults. And the
 * sequence → channel mapping: a study lacking a sequence is refused unless a substitute is named.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import { FileError, UserError } from '../../../main/core/errors.ts';
import { DEFAULT_MODEL_DIR, bundledFor, bundledModel } from '../../../main/core/jobs/bundled.ts';
import { sliceModelFromCheckpoint } from '../../../main/core/jobs/model.ts';
import { readCheckpoint, readStoredRunSettings } from '../../../main/core/model/checkpoint.ts';
import { parseHieraConfig } from '../../../main/core/model/config.ts';
import {
  describeMapping,
  describeRunSettings,
  mapChannels,
  requireChannels,
  resolveRunSettings,
  runNotes,
  runSettingsFromMetadata,
  runSettingsMetadata,
} from '../../../main/core/model/run-settings.ts';
import { readSafetensorsFile, readSafetensorsHeader, writeSafetensors } from '../../../main/core/model/safetensors.ts';
import { train } from '../../../main/core/train/trainer.ts';

const shared = resolve(process.cwd(), '../shared');
const phantom = join(shared, 'data/phantoms/BraTS20_Training_001');
const officialPth = join(shared, 'golden/sam2unet_mini/sam2unet.pth');
const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-run-settings-'));
process.env.SAM2UNET_CACHE = join(tmp, 'cache');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tinyConfig = parseHieraConfig({
  embed_dim: 8,
  num_heads: 1,
  stages: [1, 1, 1, 1],
  global_att_blocks: [2],
  window_pos_embed_bkg_spatial_size: [4, 4],
  window_spec: [4, 4, 4, 2],
});

const fail = (problem: string): never => {
  throw new UserError(problem);
};

describe('which setting wins', () => {
  it('user > checkpoint > bundled config.json > defaults, each setting on its own, with its source', () => {
    const checkpoint = { size: [128, 128] as [number, number], channels: ['flair', 't1ce', 't2'] };
    const bundled = { size: [256, 256] as [number, number], channels: ['t1', 't1', 't1'], regions: 'binary' as const };
    expect(resolveRunSettings({ checkpoint, bundled }, 3)).toEqual({
      size: [128, 128],
      channels: ['flair', 't1ce', 't2'],
      regions: 'binary',
      tta: 'none',
      from: { size: 'checkpoint', channels: 'checkpoint', regions: 'bundled', tta: 'default' },
    });
    expect(resolveRunSettings({ user: { size: [64, 96] }, checkpoint, bundled }, 3)).toMatchObject({ size: [64, 96], from: { size: 'user', channels: 'checkpoint' } });
    // nothing said: 352, FLAIR/T1ce/T2, regions by the number of output channels
    expect(resolveRunSettings({}, 1)).toEqual({ size: [352, 352], channels: ['flair', 't1ce', 't2'], regions: 'binary', tta: 'none', from: { size: 'default', channels: 'default', regions: 'default', tta: 'default' } });
    expect(resolveRunSettings({ checkpoint: {} }, 3).regions).toBe('brats');
    // test-time mirroring: the same precedence, one view when nobody says
    expect(resolveRunSettings({ bundled: { tta: 'mirror' } }, 3)).toMatchObject({ tta: 'mirror', from: { tta: 'bundled' } });
    expect(resolveRunSettings({ checkpoint: { tta: 'none' }, bundled: { tta: 'mirror' } }, 3)).toMatchObject({ tta: 'none', from: { tta: 'checkpoint' } });
    expect(resolveRunSettings({ user: { tta: 'mirror' }, checkpoint: { tta: 'none' } }, 3)).toMatchObject({ tta: 'mirror', from: { tta: 'user' } });
  });

  it('says where each setting came from, and names the defaults in the report notes', () => {
    const s = resolveRunSettings({ checkpoint: { size: [128, 128], regions: 'brats' } }, 3);
    expect(describeRunSettings(s)).toEqual(['input 128×128 from the checkpoint', 'channels flair, t1ce, t2 by default', 'regions brats from the checkpoint', 'test-time augmentation none (one view) by default']);
    expect(describeRunSettings(resolveRunSettings({ bundled: { tta: 'mirror' } }, 3))[3]).toBe(
      "test-time augmentation mirroring: 4 views averaged (as is, flipped left-right, front-back, both) from the bundled model's config.json",
    );
    expect(runNotes(s)).toEqual(['the checkpoint does not say how it must be run; defaults used: channels flair, t1ce, t2']);
    expect(runNotes(resolveRunSettings({ checkpoint: { size: [128, 128], channels: ['flair'], regions: 'binary' } }, 1))).toEqual([]);
  });

  it('metadata round trip, and bad stored values are refused with the problem named', () => {
    const stored = runSettingsFromMetadata(runSettingsMetadata({ size: [128, 96], channels: ['t2'], regions: 'binary' }), fail);
    expect(stored).toEqual({ size: [128, 96], channels: ['t2', 't2', 't2'], regions: 'binary' });
    // tta is written only when given, and read back
    const mirrored = runSettingsMetadata({ size: [128, 96], channels: ['t2'], regions: 'binary', tta: 'mirror' });
    expect(mirrored.test_time_augmentation).toBe('mirror');
    expect(runSettingsFromMetadata(mirrored, fail).tta).toBe('mirror');
    expect(runSettingsMetadata({ size: [128, 96], channels: ['t2'], regions: 'binary' })).not.toHaveProperty('test_time_augmentation');
    expect(() => runSettingsFromMetadata({ test_time_augmentation: 'rotate' }, fail)).toThrow(/metadata: test-time augmentation "rotate" must be "none" or "mirror"/);
    expect(runSettingsFromMetadata({}, fail)).toEqual({});
    expect(() => runSettingsFromMetadata({ input_size: '[100,100]' }, fail)).toThrow(/metadata: input size \[100,100\] must be N or \[height, width\], each a multiple of 32 between 32 and 4096/);
    expect(() => runSettingsFromMetadata({ input_channels: '["a","b"]' }, fail)).toThrow(/input channels \["a","b"\] must be a list of one or three/);
    expect(() => runSettingsFromMetadata({ regions: 'lungs' }, fail)).toThrow(/regions "lungs" must be "brats" or "binary"/);
    expect(() => runSettingsFromMetadata({ input_size: '128x128' }, fail)).toThrow(/metadata "input_size" is not JSON/);
  });
});

describe('sequence → channel mapping', () => {
  const brats = ['t1', 't1ce', 'T2', 'flair'];
  it('feeds each channel the sequence of its name, in any case', () => {
    const m = mapChannels('case', brats, ['flair', 't1ce', 't2']);
    expect(m.assignments.map((a) => a.sequence)).toEqual(['flair', 't1ce', 'T2']);
    expect([m.missing, m.notes]).toEqual([[], []]);
    expect(describeMapping(m)).toBe('flair ← flair, t1ce ← t1ce, t2 ← T2');
  });

  it('refuses a study that lacks a sequence, naming it and the way to substitute', () => {
    const m = mapChannels('FLAIR series', ['flair'], ['flair', 't1ce', 't2']);
    expect(m.missing.map((a) => a.expects)).toEqual(['t1ce', 't2']);
    expect(() => requireChannels('FLAIR series', ['flair'], m, 'Pick substitutes.')).toThrow(
      'FLAIR series: the model takes flair, t1ce, t2; the study has no t1ce (channel 2), t2 (channel 3) (it has flair). Pick substitutes.',
    );
  });

  it('runs with substitutes the user picked, and says so in notes', () => {
    const m = mapChannels('FLAIR series', ['flair'], ['flair', 't1ce', 't2'], ['', 'flair', 'FLAIR']);
    expect(requireChannels('FLAIR series', ['flair'], m, '')).toEqual(['flair', 'flair', 'flair']);
    expect(m.notes).toEqual(['channel 2 takes t1ce; fed with flair instead (the study has no t1ce)', 'channel 3 takes t2; fed with flair instead (the study has no t2)']);
    expect(describeMapping(m)).toBe('flair ← flair, t1ce ← flair (substitute), t2 ← flair (substitute)');
    // one name feeds all three; a choice over a sequence the study has is a substitution too
    const swapped = mapChannels('case', brats, ['flair', 't1ce', 't2'], ['t1']);
    expect(swapped.notes[1]).toBe("channel 2 takes t1ce; fed with t1 instead (chosen over the study's t1ce)");
  });

  it('refuses choices the study cannot meet', () => {
    expect(() => mapChannels('case', ['flair'], ['flair', 't1ce', 't2'], ['flair', 'dwi', 'flair'])).toThrow('case: no sequence "dwi" to feed channel 2 (it has flair)');
    expect(() => mapChannels('case', ['flair'], ['flair', 't1ce', 't2'], ['flair', 'flair'])).toThrow(/the model takes 3 \(flair, t1ce, t2\); 2 given/);
  });
});

describe('checkpoints carry their run settings', () => {
  let model: string;
  it('the trainer writes size, channels and regions into every checkpoint it saves', async () => {
    const out = join(tmp, 'run');
    const result = await train({
      data: [phantom],
      init: { fresh: tinyConfig },
      out,
      strategy: 'full',
      steps: 1,
      batch: 2,
      lr: 1e-3,
      weightDecay: 5e-4,
      size: [64, 64],
      channels: ['t2', 'FLAIR', 't1ce'],
      regions: 'brats',
      seed: 1,
      emptyRatio: 0.25,
      checkpointEvery: 1,
      loss: 'official',
      resume: false,
      threads: 1,
      validateEvery: 0,
    });
    model = result.model;
    const expected = { size: [64, 64], channels: ['t2', 'FLAIR', 't1ce'], regions: 'brats' };
    expect((await readCheckpoint(model)).run).toEqual(expected);
    expect(await readStoredRunSettings(model)).toEqual(expected);
    // the step checkpoint too (resume and "pick a checkpoint" use those)
    expect(await readStoredRunSettings(join(out, 'checkpoints', 'step-000001.safetensors'))).toEqual(expected);
    const { metadata } = await readSafetensorsHeader(model);
    expect(metadata).toMatchObject({ input_size: '[64,64]', input_channels: '["t2","FLAIR","t1ce"]', regions: 'brats', kind: 'sam2unet', out_channels: '3' });
  }, 240_000);

  it('without channels the trainer records the sequences its data loader chose', async () => {
    const out = join(tmp, 'run-default-channels');
    const result = await train({
      data: [phantom], init: { fresh: tinyConfig }, out, strategy: 'full', steps: 1, batch: 2, lr: 1e-3, weightDecay: 5e-4, size: [64, 64],
      regions: 'brats', seed: 1, emptyRatio: 0.25, checkpointEvery: 5, loss: 'official', resume: false, threads: 1, validateEvery: 0,
    });
    expect((await readStoredRunSettings(result.model)).channels).toEqual(['flair', 't1ce', 't2']);
  }, 240_000);

  it('a model loads at the size its checkpoint says, unless the user overrides it; an official .pth gets the defaults', async () => {
    const fromFile = await sliceModelFromCheckpoint(model, { device: 'cpu', threads: 1 });
    try {
      expect(fromFile.inputSize).toEqual([64, 64]);
      expect(fromFile.settings).toMatchObject({ channels: ['t2', 'FLAIR', 't1ce'], regions: 'brats', from: { size: 'checkpoint', channels: 'checkpoint', regions: 'checkpoint' } });
      expect(fromFile.bundled).toBe(false);
      expect(fromFile.settings).toMatchObject({ tta: 'none', from: { tta: 'default' } });
    } finally {
      await fromFile.dispose();
    }
    const overridden = await sliceModelFromCheckpoint(model, { device: 'cpu', threads: 1, size: [96, 96] });
    try {
      expect(overridden.inputSize).toEqual([96, 96]);
      expect(overridden.settings.from.size).toBe('user');
    } finally {
      await overridden.dispose();
    }
    expect(await readStoredRunSettings(officialPth)).toEqual({});
    const official = await sliceModelFromCheckpoint(officialPth, { device: 'cpu', threads: 1 });
    try {
      expect(official.inputSize).toEqual([352, 352]);
      expect(official.settings).toMatchObject({ channels: ['flair', 't1ce', 't2'], regions: 'binary', from: { size: 'default', channels: 'default', regions: 'default' } });
    } finally {
      await official.dispose();
    }
  }, 240_000);

  it('a checkpoint with a bad stored value is refused, naming the file', async () => {
    const { tensors, metadata } = await readSafetensorsFile(model);
    const bad = join(tmp, 'bad.safetensors');
    await writeSafetensors(bad, tensors, { ...metadata, input_size: '[100,100]' });
    await expect(readCheckpoint(bad)).rejects.toThrow(FileError);
    await expect(readStoredRunSettings(bad)).rejects.toThrow(`${bad}: metadata: input size [100,100] must be`);
    await writeSafetensors(bad, tensors, { ...metadata, test_time_augmentation: 'flip' });
    await expect(readStoredRunSettings(bad)).rejects.toThrow(`${bad}: metadata: test-time augmentation "flip" must be "none" or "mirror"`);
  });

  it('train --checkpoint goes on with the checkpoint\'s settings and says so; flags override them', async () => {
    const run = async (...argv: string[]) => {
      let stderr = '';
      const code = await main(['train', ...argv], { stdout: () => undefined, stderr: (t) => void (stderr += t), interactive: false });
      return { code, stderr };
    };
    const common = ['--data', phantom, '--checkpoint', model, '--strategy', 'full', '--steps', '1', '--batch', '2', '--threads', '1', '--validate-every', '0'];
    const kept = await run(...common, '--out', join(tmp, 'fine-tuned'));
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stderr).toContain('input 64×64 from the checkpoint; channels t2, FLAIR, t1ce from the checkpoint; regions brats from the checkpoint');
    expect(await readStoredRunSettings(join(tmp, 'fine-tuned', 'model.safetensors'))).toEqual({ size: [64, 64], channels: ['t2', 'FLAIR', 't1ce'], regions: 'brats' });
    const changed = await run(...common, '--out', join(tmp, 'fine-tuned-96'), '--size', '96', '--channels', 'flair,t1ce,t2', '--edge-share', '0.5');
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stderr).toContain('input 96×96 as chosen; channels flair, t1ce, t2 as chosen; regions brats from the checkpoint');
    expect(await readStoredRunSettings(join(tmp, 'fine-tuned-96', 'model.safetensors'))).toEqual({ size: [96, 96], channels: ['flair', 't1ce', 't2'], regions: 'brats' });
    for (const [option, message] of [
      ['--edge-share=1.5', '--edge-share expects a number 0…1, got 1.5'],
      ['--empty-ratio=-1', '--empty-ratio expects a number ≥ 0, got -1'],
      ['--lr=0', '--lr expects a number > 0, got 0'],
      ['--seed=1.5', '--seed expects an integer 0…4294967295, got 1.5'],
      ['--size=100', 'model input size 100×100: each side must be a multiple of 32 between 32 and 4096'],
    ] as const) {
      const refused = await run(...common, '--out', join(tmp, 'refused'), option);
      expect(refused.code, option).not.toBe(0);
      expect(refused.stderr).toContain(message);
    }
    // a checkpoint that runs mirrored hands that on to its fine-tunes
    const { tensors, metadata } = await readSafetensorsFile(model);
    const mirrored = join(tmp, 'mirrored.safetensors');
    await writeSafetensors(mirrored, tensors, { ...metadata, test_time_augmentation: 'mirror' });
    const inherited = await run('--data', phantom, '--checkpoint', mirrored, '--strategy', 'full', '--steps', '1', '--batch', '2', '--threads', '1', '--validate-every', '0', '--out', join(tmp, 'fine-tuned-mirrored'));
    expect(inherited.code, inherited.stderr).toBe(0);
    expect(inherited.stderr).toContain('test-time augmentation mirroring: 4 views averaged (as is, flipped left-right, front-back, both) from the checkpoint');
    expect((await readStoredRunSettings(join(tmp, 'fine-tuned-mirrored', 'model.safetensors'))).tta).toBe('mirror');
  }, 300_000);
});

describe('the bundled model', () => {
  it('config.json applies to the bundled file however it is named, not to a copy', async () => {
    const bundled = await bundledModel();
    expect(bundled.run).toMatchObject({ size: [256, 256], channels: ['flair', 't1ce', 't2'], regions: 'brats' });
    expect(bundled.run.tta).toBeUndefined();
    expect((await bundledFor(undefined))?.checkpoint).toBe(bundled.checkpoint);
    expect(await bundledFor(join(DEFAULT_MODEL_DIR, '..', 'default', 'model.safetensors'))).not.toBeNull();
    const copy = join(tmp, 'copy.safetensors');
    copyFileSync(bundled.checkpoint, copy);
    expect(await bundledFor(copy)).toBeNull();
    // the copy still runs the same: the file itself says how
    expect(await readStoredRunSettings(copy)).toEqual({ size: [256, 256], channels: ['flair', 't1ce', 't2'], regions: 'brats' });
  });

  it('a bad config.json value names the file', async () => {
    const dir = join(tmp, 'bundle');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(DEFAULT_MODEL_DIR, 'model.safetensors'), join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ size: 100 }));
    await expect(bundledModel(dir)).rejects.toThrow(`${join(dir, 'config.json')}: input size 100 must be N or [height, width]`);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ channels: ['flair', 't2'] }));
    await expect(bundledModel(dir)).rejects.toThrow(/config\.json: input channels \["flair","t2"\] must be a list of one or three/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ tta: true }));
    await expect(bundledModel(dir)).rejects.toThrow(`${join(dir, 'config.json')}: test-time augmentation true must be "none" or "mirror"`);
  });
});
