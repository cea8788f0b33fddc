import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileError } from '../../../main/core/errors.ts';
import { readCheckpoint, readStoredRunSettings, writeSam2UNetCheckpoint } from '../../../main/core/model/checkpoint.ts';
import { HIERA_PRESETS, parseHieraConfig, type HieraConfig } from '../../../main/core/model/config.ts';
import { expectedSam2UNetKeys } from '../../../main/core/model/keys.ts';
import { readSafetensors, writeSafetensors } from '../../../main/core/model/safetensors.ts';
import { numel, type StateDict } from '../../../main/core/model/tensor.ts';

const golden = resolve(process.cwd(), '../shared/golden');
const mini = parseHieraConfig(JSON.parse(readFileSync(resolve(golden, 'hiera_mini/manifest.json'), 'utf8')), 'manifest');
const tmp = mkdtempSync(join(tmpdir(), 'checkpoint-test-'));
const TRUNK = 'image_encoder.trunk.';

function sameBits(a: StateDict, b: StateDict): string[] {
  const bad: string[] = [];
  for (const [k, t] of b) {
    const u = a.get(k);
    if (!u || u.shape.join() !== t.shape.join() || u.data.length !== t.data.length) {
      bad.push(k);
      continue;
    }
    // compare bit patterns: NaN equals NaN, -0 differs from 0
    const x = new Uint32Array(u.data.buffer, u.data.byteOffset, u.data.length);
    const y = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    for (let i = 0; i < x.length; i++) {
      if (x[i] !== y[i]) {
        bad.push(k);
        break;
      }
    }
  }
  return bad;
}

function randomWeights(config: HieraConfig, outChannels: number, seed = 1): StateDict {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff) - 0.5;
  const make = (n: number) => {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rand();
    return data;
  };
  return new Map(expectedSam2UNetKeys(config, outChannels).map((spec) => [spec.key, { shape: spec.shape, data: make(numel(spec.shape)) }]));
}

async function expectFileError(promise: Promise<unknown>, origin: string, pattern: RegExp): Promise<FileError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err, `expected a FileError matching ${pattern}`).toBeInstanceOf(FileError);
  expect((err as FileError).file).toBe(origin);
  expect((err as FileError).problem).toMatch(pattern);
  return err as FileError;
}

describe('readCheckpoint on the goldens', () => {
  it('SAM2 checkpoint (.pt): the trunk without prefix, other keys ignored, bit-exact', async () => {
    const ck = await readCheckpoint(resolve(golden, 'hiera_mini/sam2_checkpoint.pt'));
    expect(ck.kind).toBe('trunk');
    expect(ck.format).toBe('sam2-pt');
    expect(ck.config).toEqual(mini);
    expect(ck.outChannels).toBe(1);
    expect(ck.ignored.sort()).toEqual(['image_encoder.neck.convs.0.conv.weight', 'maskmem_tpos_enc', 'memory_encoder.out_proj.bias', 'sam_mask_decoder.iou_token.weight']);
    expect(ck.weights.has('blocks.0.attn.qkv.weight')).toBe(true);
    expect(ck.weights.has('pos_embed')).toBe(true);
    const ref = await readSafetensors(resolve(golden, 'hiera_mini/trunk.safetensors'));
    const stripped: StateDict = new Map([...ref].map(([k, t]) => [k.slice(TRUNK.length), t]));
    expect(ck.weights.size).toBe(154);
    expect(sameBits(ck.weights, stripped)).toEqual([]);
    expect(ck.buffers).toEqual([]);
  });

  it('SAM2 trunk as safetensors', async () => {
    const ck = await readCheckpoint(resolve(golden, 'hiera_mini/trunk.safetensors'));
    expect([ck.kind, ck.format]).toEqual(['trunk', 'safetensors']);
    expect(ck.config).toEqual(mini);
    expect(ck.weights.size).toBe(154);
    expect(ck.ignored).toEqual([]);
  });

  it('SAM2-UNet checkpoint (.pth): official keys, BN buffers, bit-exact against model.safetensors', async () => {
    const ck = await readCheckpoint(resolve(golden, 'sam2unet_mini/sam2unet.pth'));
    expect([ck.kind, ck.format]).toEqual(['sam2unet', 'sam2unet-pth']);
    expect(ck.config).toEqual(mini);
    expect(ck.outChannels).toBe(1);
    expect(ck.weights.size).toBe(616);
    expect(ck.buffers.length).toBe(3 * 68);
    expect(ck.buffers).toContain('up1.conv.double_conv.1.running_var');
    const ref = await readSafetensors(resolve(golden, 'sam2unet_mini/model.safetensors'));
    expect(sameBits(ck.weights, ref)).toEqual([]);
    expect(ck.dtypes.get('up1.conv.double_conv.1.num_batches_tracked')).toBe('int64');
  });

  it('SAM2-UNet as safetensors (no num_batches_tracked)', async () => {
    const ck = await readCheckpoint(resolve(golden, 'sam2unet_mini/model.safetensors'));
    expect([ck.kind, ck.format]).toEqual(['sam2unet', 'safetensors']);
    expect(ck.weights.size).toBe(548);
    expect(ck.buffers.length).toBe(2 * 68);
  });
});

describe('readCheckpoint on synthetic files', () => {
  it('a bare trunk (no prefix) in safetensors', async () => {
    const ref = await readSafetensors(resolve(golden, 'hiera_mini/trunk.safetensors'));
    const bare: StateDict = new Map([...ref].map(([k, t]) => [k.slice(TRUNK.length), t]));
    const path = join(tmp, 'bare.safetensors');
    await writeSafetensors(path, bare);
    const ck = await readCheckpoint(path, { outChannels: 3 });
    expect([ck.kind, ck.format, ck.outChannels]).toEqual(['trunk', 'safetensors', 3]);
    expect(sameBits(ck.weights, bare)).toEqual([]);
  });

  it('a BraTS (3-channel) model with a custom trunk round-trips through writeSam2UNetCheckpoint', async () => {
    const custom: HieraConfig = { ...HIERA_PRESETS.hiera_t!, embed_dim: 8, stages: [1, 2, 3, 2], global_att_blocks: [4, 6] };
    const weights = randomWeights(custom, 3);
    const path = join(tmp, 'brats.safetensors');
    await writeSam2UNetCheckpoint(path, weights, custom, 3, { size: [96, 128], channels: ['t1', 't1ce', 'flair'], regions: 'brats' }, { note: 'test' });
    const ck = await readCheckpoint(path);
    expect([ck.kind, ck.outChannels]).toEqual(['sam2unet', 3]);
    // how it must be run travels with it, readable from the header alone too
    expect(ck.run).toEqual({ size: [96, 128], channels: ['t1', 't1ce', 'flair'], regions: 'brats' });
    expect(await readStoredRunSettings(path)).toEqual(ck.run);
    expect(ck.config).toEqual(custom); // from the metadata: no preset has these stages
    expect(sameBits(ck.weights, weights)).toEqual([]);
    // without the metadata the stages match no preset: the user must say
    const plain = join(tmp, 'brats-plain.safetensors');
    await writeSafetensors(plain, weights);
    await expectFileError(readCheckpoint(plain), plain, /matches no preset.*--config/);
    expect((await readCheckpoint(plain, { config: custom })).config).toEqual(custom);
  });

  it('writeSam2UNetCheckpoint refuses weights that do not fit the configuration', async () => {
    const weights = randomWeights(mini, 1);
    weights.delete('head.bias');
    const path = join(tmp, 'refused.safetensors');
    await expectFileError(writeSam2UNetCheckpoint(path, weights, mini, 1, { size: [64, 64], channels: ['flair'], regions: 'binary' }), path, /missing key\(s\) \(head\.bias\)/);
  });
});

describe('readCheckpoint errors name the file and the offending keys', () => {
  it('files that are not checkpoints', async () => {
    const manifest = resolve(golden, 'hiera_mini/manifest.json');
    await expectFileError(readCheckpoint(manifest), manifest, /not a checkpoint \(neither a torch\.save zip nor safetensors\)/);
    const empty = join(tmp, 'empty.pt');
    writeFileSync(empty, '');
    await expectFileError(readCheckpoint(empty), empty, /not a checkpoint \(the file is empty\)/);
    const dir = join(tmp, 'a-directory.pt');
    mkdirSync(dir, { recursive: true });
    await expectFileError(readCheckpoint(dir), dir, /not a regular file/);
    const missing = join(tmp, 'missing.pt');
    await expectFileError(readCheckpoint(missing), missing, /no such file or directory/);
    const io = resolve(golden, 'sam2unet_mini/infer.safetensors');
    await expectFileError(readCheckpoint(io), io, /neither a SAM2 checkpoint.*keys: input, out, out1, out2/);
    const legacy = resolve(process.cwd(), 'test/fixtures/checkpoints/legacy.pt');
    await expectFileError(readCheckpoint(legacy), legacy, /legacy \(pre-1\.6\)/);
  });

  it('a truncated safetensors checkpoint', async () => {
    const bytes = readFileSync(resolve(golden, 'sam2unet_mini/model.safetensors'));
    const path = join(tmp, 'truncated.safetensors');
    writeFileSync(path, bytes.subarray(0, bytes.byteLength - 1000));
    await expectFileError(readCheckpoint(path), path, /run past the \d+ data bytes \(truncated file\?\)/);
  });

  it('a truncated .pth', async () => {
    const bytes = readFileSync(resolve(golden, 'sam2unet_mini/sam2unet.pth'));
    const path = join(tmp, 'truncated.pth');
    writeFileSync(path, bytes.subarray(0, 4_000_000));
    await expectFileError(readCheckpoint(path), path, /corrupt torch\.save zip/);
  });

  it('missing, unexpected and mis-shaped keys', async () => {
    const weights = randomWeights(mini, 1);
    weights.delete('encoder.blocks.3.block.mlp.layers.1.bias');
    weights.set('rfb2.conv_res.conv.weight', { shape: [64, 17, 1, 1], data: new Float32Array(64 * 17) });
    weights.set('decoder.extra', { shape: [2], data: new Float32Array(2) });
    const path = join(tmp, 'broken.safetensors');
    await writeSafetensors(path, weights);
    const err = await expectFileError(readCheckpoint(path), path, /weights do not match the model/);
    expect(err.problem).toContain('rfb2.conv_res.conv.weight: expected [64, 16, 1, 1], found [64, 17, 1, 1]');
    expect(err.problem).toContain('1 missing key(s) (encoder.blocks.3.block.mlp.layers.1.bias)');
    expect(err.problem).toContain('1 unexpected key(s) (decoder.extra)');
  });

  it('a SAM2 trunk that does not fit the given configuration', async () => {
    const path = resolve(golden, 'hiera_mini/sam2_checkpoint.pt');
    const err = await expectFileError(readCheckpoint(path, { config: HIERA_PRESETS.hiera_t! }), path, /wrong shape/);
    // keys are named as the file names them
    expect(err.problem).toContain('image_encoder.trunk.pos_embed: expected [1, 96, 7, 7], found [1, 8, 7, 7]');
  });

  it('NaN or infinite weights', async () => {
    const weights = randomWeights(mini, 1);
    weights.get('side2.weight')!.data[5] = Number.NaN;
    weights.get('encoder.pos_embed')!.data[0] = Infinity;
    const path = join(tmp, 'nan.safetensors');
    await writeSafetensors(path, weights);
    await expectFileError(readCheckpoint(path), path, /2 tensor\(s\) hold NaN or infinite values \(encoder\.pos_embed, side2\.weight\)/);
  });
});
