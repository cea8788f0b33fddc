import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileError } from '../../../main/core/errors.ts';
import { HIERA_PRESETS, parseHieraConfig, presetName, type HieraConfig } from '../../../main/core/model/config.ts';
import {
  adapterKey,
  detectHieraConfig,
  expectedSam2UNetKeys,
  expectedTrunkKeys,
  loraParameterCount,
  parameterCounts,
  sam2UNetKeyToTrunk,
  trunkKeyToSam2UNet,
  validateStateDict,
  type KeySpec,
} from '../../../main/core/model/keys.ts';
import { readSafetensors } from '../../../main/core/model/safetensors.ts';
import { numel, type StateDict } from '../../../main/core/model/tensor.ts';
import { readTorchStateDict } from '../../../main/core/model/torch-pickle.ts';

const golden = resolve(process.cwd(), '../shared/golden');
const manifest = JSON.parse(readFileSync(resolve(golden, 'sam2unet_mini/manifest.json'), 'utf8'));
const mini = parseHieraConfig(manifest, 'manifest');

/** A state dict with the right shapes and no real data (data length 0 is never read by these functions). */
function shapeOnly(specs: KeySpec[]): StateDict {
  return new Map(specs.map((s) => [s.key, { shape: s.shape, data: new Float32Array(0) }]));
}

function fileError(fn: () => unknown): FileError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FileError);
    return err as FileError;
  }
  throw new Error('expected a FileError');
}

describe('parameter counts', () => {
  it("match model.md's table for the four presets", () => {
    const table: Record<string, number> = { hiera_t: 26_849_472, hiera_s: 33_947_328, 'hiera_b+': 68_675_712, hiera_l: 212_149_296 };
    for (const [name, trunk] of Object.entries(table)) expect(parameterCounts(HIERA_PRESETS[name]!).trunk, name).toBe(trunk);
  });

  it('hiera_l trainable: 4,380,595 (4,269,747 without the unused up4)', () => {
    const c = parameterCounts(HIERA_PRESETS.hiera_l!);
    expect(c.byStrategy.adapter).toBe(4_380_595);
    expect(c.byStrategy.adapter - c.up4Unused).toBe(4_269_747);
    expect(c.adapter + c.decoder + c.up4Unused).toBe(4_380_595);
    expect(c.byStrategy.full).toBe(212_149_296 + 4_380_595);
  });

  it("golden mini: the manifest's trainable and frozen counts", () => {
    const c = parameterCounts(mini);
    expect(c.byStrategy.adapter).toBe(manifest.trainable_params);
    expect(c.trunk).toBe(manifest.frozen_params);
    // up4's six parameter tensors are exactly the manifest's unused_trainable
    const up4 = expectedSam2UNetKeys(mini).filter((s) => s.group === 'up4' && !s.buffer).map((s) => s.key);
    expect(up4).toEqual(manifest.unused_trainable);
  });

  it('LoRA adds r·(in + out) per attn.qkv and attn.proj', () => {
    // hiera_t block 0: dim 96 → qkv 96→288, proj 96→96; by hand for one block
    const one: HieraConfig = { ...HIERA_PRESETS.hiera_t!, stages: [1, 1, 1, 1], global_att_blocks: [] };
    // blocks: 96→96, 96→192, 192→384, 384→768
    const byHand = [[96, 96], [96, 192], [192, 384], [384, 768]].reduce((a, [d, o]) => a + (d! + 3 * o!) + (o! + o!), 0);
    expect(loraParameterCount(one, 1)).toBe(byHand);
    expect(loraParameterCount(one, 8)).toBe(8 * byHand);
    const c = parameterCounts(HIERA_PRESETS.hiera_l!);
    expect(c.byStrategy.lora(4)).toBe(loraParameterCount(HIERA_PRESETS.hiera_l!, 4) + c.decoder + c.up4Unused);
  });

  it('outChannels 3 (BraTS) adds 2·65 parameters to each of side1, side2, head', () => {
    expect(parameterCounts(mini, 3).decoder - parameterCounts(mini, 1).decoder).toBe(3 * 2 * 65);
  });
});

describe('expected key layouts', () => {
  it('match the golden SAM2-UNet state_dict key for key, shape for shape, in order', async () => {
    const pth = await readTorchStateDict(resolve(golden, 'sam2unet_mini/sam2unet.pth'));
    const specs = expectedSam2UNetKeys(mini, 1);
    expect(specs.map((s) => s.key)).toEqual([...pth.tensors.keys()]);
    for (const s of specs) expect(pth.tensors.get(s.key)!.shape, s.key).toEqual(s.shape);
    expect(specs.filter((s) => s.buffer).every((s) => /running_(mean|var)|num_batches_tracked/.test(s.key))).toBe(true);
  });

  it('match the golden trunk (SAM2 names minus the prefix)', async () => {
    const st = await readSafetensors(resolve(golden, 'hiera_mini/trunk.safetensors'));
    const specs = expectedTrunkKeys(mini);
    expect(specs.map((s) => 'image_encoder.trunk.' + s.key).sort()).toEqual([...st.keys()].sort());
    for (const s of specs) expect(st.get('image_encoder.trunk.' + s.key)!.shape, s.key).toEqual(s.shape);
  });

  it('map trunk ↔ SAM2-UNet names both ways', () => {
    expect(trunkKeyToSam2UNet('pos_embed')).toBe('encoder.pos_embed');
    expect(trunkKeyToSam2UNet('blocks.12.attn.qkv.weight')).toBe('encoder.blocks.12.block.attn.qkv.weight');
    expect(sam2UNetKeyToTrunk('encoder.blocks.12.block.attn.qkv.weight')).toBe('blocks.12.attn.qkv.weight');
    expect(sam2UNetKeyToTrunk('encoder.patch_embed.proj.bias')).toBe('patch_embed.proj.bias');
    expect(sam2UNetKeyToTrunk(adapterKey(3, 0, 'weight'))).toBeUndefined();
    expect(sam2UNetKeyToTrunk('rfb1.conv_res.conv.weight')).toBeUndefined();
    for (const s of expectedTrunkKeys(HIERA_PRESETS['hiera_b+']!)) expect(sam2UNetKeyToTrunk(trunkKeyToSam2UNet(s.key))).toBe(s.key);
  });

  it('give every preset trunk its three dim-changing blocks', () => {
    for (const c of Object.values(HIERA_PRESETS)) {
      const proj = expectedTrunkKeys(c).filter((s) => /^blocks\.\d+\.proj\.weight$/.test(s.key)).map((s) => Number(s.key.split('.')[1]));
      const ends = c.stages.slice(0, 3).map((_, i) => c.stages.slice(0, i + 1).reduce((a, b) => a + b, 0));
      expect(proj).toEqual(ends);
    }
  });
});

describe('configuration detection', () => {
  it('finds the golden mini configuration (hiera_t structure, embed_dim 8)', async () => {
    const st = await readSafetensors(resolve(golden, 'hiera_mini/trunk.safetensors'));
    const trunk: StateDict = new Map([...st].map(([k, t]) => [k.slice('image_encoder.trunk.'.length), t]));
    expect(detectHieraConfig(trunk, 'trunk.safetensors')).toEqual(mini);
  });

  it('finds each preset from a shape-only state dict', () => {
    for (const [name, c] of Object.entries(HIERA_PRESETS)) {
      const found = detectHieraConfig(shapeOnly(expectedTrunkKeys(c)), name);
      expect(found).toEqual(c);
      expect(presetName(found)).toBe(name);
    }
  });

  it('reads a non-preset embed_dim and background size from the shapes', () => {
    const custom: HieraConfig = { ...HIERA_PRESETS['hiera_b+']!, embed_dim: 64, window_pos_embed_bkg_spatial_size: [9, 11] };
    expect(detectHieraConfig(shapeOnly(expectedTrunkKeys(custom)), 'x')).toEqual(custom);
  });

  it('asks for --config when the stages match no preset', () => {
    const odd: HieraConfig = { ...HIERA_PRESETS.hiera_t!, stages: [1, 2, 5, 2], global_att_blocks: [5] };
    const err = fileError(() => detectHieraConfig(shapeOnly(expectedTrunkKeys(odd)), 'odd.pt'));
    expect(err.file).toBe('odd.pt');
    expect(err.problem).toMatch(/stages \[1, 2, 5, 2\].*matches no preset.*--config/);
  });

  it('explains what is missing', () => {
    expect(fileError(() => detectHieraConfig(new Map(), 'e.pt')).problem).toMatch(/patch_embed\.proj\.weight/);
    const noProj = shapeOnly(expectedTrunkKeys(mini).filter((s) => s.key !== 'blocks.3.proj.weight'));
    expect(fileError(() => detectHieraConfig(noProj, 'p.pt')).problem).toMatch(/3 dim-changing blocks.*found 2/);
  });
});

describe('validateStateDict', () => {
  const specs = expectedSam2UNetKeys(mini, 1);
  const full = () => shapeOnly(specs);

  it('accepts the exact layout and tolerates missing batch counters only when asked', () => {
    expect(validateStateDict(full(), specs, 'ok.pth').unexpected).toEqual([]);
    const noCounters = full();
    for (const k of [...noCounters.keys()]) if (k.endsWith('num_batches_tracked')) noCounters.delete(k);
    expect(() => validateStateDict(noCounters, specs, 'ok.pth', { allowMissingBatchCounters: true })).not.toThrow();
    expect(fileError(() => validateStateDict(noCounters, specs, 'nc.pth')).problem).toMatch(/68 missing key\(s\).*num_batches_tracked.*\(68 in all\)/);
  });

  it('lists wrong shapes with expected and found', () => {
    const sd = full();
    sd.set('head.weight', { shape: [3, 64, 1, 1], data: new Float32Array(0) });
    sd.set('encoder.pos_embed', { shape: [1, 8, 14, 14], data: new Float32Array(0) });
    const err = fileError(() => validateStateDict(sd, specs, 'shape.pth'));
    expect(err.message.startsWith('shape.pth: ')).toBe(true);
    expect(err.problem).toContain('2 tensor(s) with the wrong shape');
    expect(err.problem).toContain('head.weight: expected [1, 64, 1, 1], found [3, 64, 1, 1]');
    expect(err.problem).toContain('encoder.pos_embed: expected [1, 8, 7, 7], found [1, 8, 14, 14]');
  });

  it('lists missing and unexpected keys, at most five of each', () => {
    const sd = full();
    sd.delete('side1.bias');
    for (let i = 0; i < 7; i++) sd.set(`extra.${i}`, { shape: [1], data: new Float32Array(0) });
    const err = fileError(() => validateStateDict(sd, specs, 'keys.pth'));
    expect(err.problem).toMatch(/1 missing key\(s\) \(side1\.bias\)/);
    expect(err.problem).toMatch(/7 unexpected key\(s\) \(extra\.0; extra\.1; extra\.2; extra\.3; extra\.4; … \(7 in all\)\)/);
    expect(validateStateDict(full().set('x', { shape: [1], data: new Float32Array(0) }), specs, 'x', { allowUnexpected: true }).unexpected).toEqual(['x']);
  });

  it('treats a [1] tensor as the 0-d num_batches_tracked scalar', () => {
    const sd = full();
    sd.set('head.weight', sd.get('head.weight')!);
    sd.set('rfb1.conv_res.bn.num_batches_tracked', { shape: [1], data: new Float32Array(0) });
    expect(() => validateStateDict(sd, specs, 'x')).not.toThrow();
    expect(numel([])).toBe(1);
  });
});
