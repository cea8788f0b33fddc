/** `forward`, `model-info` and `bench` end to end through the CLI entry point (golden mini models). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../main/cli/index.ts';
import type { CommandIO } from '../../../main/cli/command.ts';
import { readSafetensors, writeSafetensors } from '../../../main/core/model/safetensors.ts';
import { defaultWeightEncoding } from '../../../main/core/onnx/quantize.ts';

const GOLDEN = resolve(process.cwd(), '../shared/golden');
const tmp = mkdtempSync(join(tmpdir(), 'sam2unet-cli-engine-'));
process.env.SAM2UNET_CACHE = join(tmp, 'cache');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function capture(): CommandIO & { out: string; err: string } {
  const io = { out: '', err: '', interactive: false, stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('sam2unet forward', () => {
  it('writes out, out1, out2 of a SAM2-UNet checkpoint matching the golden within 1e-4', async () => {
    const io = capture();
    const output = join(tmp, 'y.safetensors');
    const dir = join(GOLDEN, 'sam2unet_mini');
    const code = await main(['forward', '--checkpoint', join(dir, 'model.safetensors'), '--config', join(dir, 'manifest.json'), '--input', join(dir, 'infer.safetensors'), '--output', output, '--json'], io);
    expect(io.err).not.toMatch(/sam2unet: /);
    expect(code).toBe(0);
    expect(JSON.parse(io.out.trim().split('\n').pop()!).outputs.out).toEqual([1, 1, 352, 352]);
    const got = await readSafetensors(output);
    const want = await readSafetensors(join(dir, 'infer.safetensors'));
    for (const k of ['out', 'out1', 'out2']) expect(maxAbs(got.get(k)!.data, want.get(k)!.data), k).toBeLessThanOrEqual(1e-4);
  });

  it('writes feat0…feat3 for a trunk-only SAM2 checkpoint', async () => {
    const io = capture();
    const output = join(tmp, 'feats.safetensors');
    const dir = join(GOLDEN, 'hiera_mini');
    expect(await main(['forward', '--checkpoint', join(dir, 'sam2_checkpoint.pt'), '--config', join(dir, 'manifest.json'), '--input', join(dir, 'io.safetensors'), '--output', output], io)).toBe(0);
    const got = await readSafetensors(output);
    expect([...got.keys()].sort()).toEqual(['feat0', 'feat1', 'feat2', 'feat3']);
    expect(maxAbs(got.get('feat3')!.data, (await readSafetensors(join(dir, 'io.safetensors'))).get('feat3')!.data)).toBeLessThanOrEqual(1e-4);
  });

  it('refuses an input without "input" or with a size that is not a multiple of 32, naming the file', async () => {
    const bad = join(tmp, 'bad.safetensors');
    await writeSafetensors(bad, new Map([['x', { shape: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32) }]]));
    const odd = join(tmp, 'odd.safetensors');
    await writeSafetensors(odd, new Map([['input', { shape: [1, 3, 40, 32], data: new Float32Array(3 * 40 * 32) }]]));
    const dir = join(GOLDEN, 'hiera_mini');
    for (const [file, message] of [[bad, /no tensor named "input"/], [odd, /multiples of 32/]] as const) {
      const io = capture();
      expect(await main(['forward', '--checkpoint', join(dir, 'trunk.safetensors'), '--config', join(dir, 'manifest.json'), '--input', file, '--output', join(tmp, 'z.safetensors')], io)).toBe(2);
      expect(io.err).toMatch(message);
      expect(io.err).toContain(file);
    }
  });
});

describe('sam2unet model-info', () => {
  it('reports configuration and the manifest’s parameter counts', async () => {
    const io = capture();
    const dir = join(GOLDEN, 'sam2unet_mini');
    expect(await main(['model-info', '--checkpoint', join(dir, 'sam2unet.pth'), '--config', join(dir, 'manifest.json'), '--json'], io)).toBe(0);
    const info = JSON.parse(io.out);
    expect(info.kind).toBe('sam2unet');
    expect(info.config.embed_dim).toBe(8);
    expect(info.parameters.frozenTrunk).toBe(193_040);
    expect(info.parameters.trainable.adapter).toBe(2_035_603);
    expect(info.keys.groups.rfb1.keys).toBeGreaterThan(0);
  });
});

describe('sam2unet bench', () => {
  it('ends stdout with the JSON result line', async () => {
    const io = capture();
    const small = JSON.stringify({ embed_dim: 8, num_heads: 1, stages: [1, 2, 7, 2], global_att_blocks: [5, 7, 9], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 14, 7] });
    expect(await main(['bench', '--config', small, '--size', '64', '--runs', '1', '--device', 'cpu', '--trunk'], io)).toBe(0);
    const last = JSON.parse(io.out.trim().split('\n').pop()!);
    for (const key of ['median_ms', 'min_ms', 'provider', 'threads', 'gflops', 'peak_rss_mb']) expect(last).toHaveProperty(key);
    expect(last.provider).toBe('cpu');
    expect(last.gflops).toBeGreaterThan(0);
    expect(io.err).toMatch(/built custom trunk 64×64 float32 in \d+ ms/);
    expect(last).toMatchObject({ precision: 'float32', spinning: false });
    expect(last).not.toHaveProperty('baseline');
  });

  it('--precision int8 times float32 in the same run and reports the ratio', async () => {
    const io = capture();
    const small = JSON.stringify({ embed_dim: 8, num_heads: 1, stages: [1, 2, 7, 2], global_att_blocks: [5, 7, 9], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 14, 7] });
    expect(await main(['bench', '--config', small, '--size', '64', '--runs', '2', '--device', 'cpu', '--precision', 'int8'], io)).toBe(0);
    const last = JSON.parse(io.out.trim().split('\n').pop()!);
    expect(last).toMatchObject({ precision: 'int8', model: 'sam2unet', baseline: { precision: 'float32' } });
    expect(last.ratio).toBeCloseTo(last.median_ms / last.baseline.median_ms, 2);
    // the GFLOP/s of an int8 run count the float32 graph's FLOPs (an equivalent rate)
    // both sides of FLOPs = rate × time carry the rounding of rate and time to 0.1 (large on a 64² model)
    const roundingError = (f: { gflops: number; median_ms: number }) => 0.05 * f.median_ms + 0.05 * f.gflops + 0.0025;
    expect(Math.abs(last.gflops * last.median_ms - last.baseline.gflops * last.baseline.median_ms)).toBeLessThanOrEqual(roundingError(last) + roundingError(last.baseline));
    expect(io.out).toMatch(/int8 \/ float32 median: [\d.]+×/);
    expect(io.err).toMatch(/int8 \((s8|s7) weights\) run 2\/2/);
    expect(last.weights).toBe(defaultWeightEncoding());
    expect(await main(['bench', '--preset', 'hiera_t', '--precision', 'int4'], capture())).toBe(2);
  });

  it('--int8-weights times several weight encodings in the same alternating run, the first as the result', async () => {
    const io = capture();
    const small = JSON.stringify({ embed_dim: 8, num_heads: 1, stages: [1, 2, 7, 2], global_att_blocks: [5, 7, 9], window_pos_embed_bkg_spatial_size: [7, 7], window_spec: [8, 4, 14, 7] });
    expect(await main(['bench', '--config', small, '--size', '64', '--runs', '2', '--device', 'cpu', '--precision', 'int8', '--int8-weights', 'u8,s7', '--no-baseline'], io)).toBe(0);
    const last = JSON.parse(io.out.trim().split('\n').pop()!);
    expect(last).toMatchObject({ precision: 'int8', weights: 'u8', alternatives: [{ precision: 'int8', weights: 's7' }] });
    expect(last).not.toHaveProperty('baseline');
    expect(last.alternatives[0].ratio_to_main).toBeCloseTo(last.alternatives[0].median_ms / last.median_ms, 2);
    expect(io.out).toMatch(/int8 \(u8 weights\): median/);
    expect(io.err).toMatch(/int8 \(s7 weights\) run 2\/2/);
    const refused = capture();
    expect(await main(['bench', '--preset', 'hiera_t', '--precision', 'int8', '--int8-weights', 'u4'], refused)).toBe(2);
    expect(refused.err).toMatch(/--int8-weights: unknown encoding "u4"; choose from s8, s7, u8/);
    expect(await main(['bench', '--preset', 'hiera_t', '--int8-weights', 'u8'], capture())).toBe(2);
  });

  it('refuses a size that is not a multiple of 32', async () => {
    const io = capture();
    expect(await main(['bench', '--preset', 'hiera_t', '--size', '100'], io)).toBe(2);
    expect(io.err).toMatch(/multiple of 32/);
  });
});
