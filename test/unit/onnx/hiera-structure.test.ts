/**
 * hiera_l's structure (stages 2/6/36/4, windows 8/4/16/8, global blocks 23/33/43) with a small
 * embed_dim and random weights: shapes at square and non-square sizes, dynamic batch, and that
 * batch items never mix (window partitioning keeps each image's windows its own).
 */
import { describe, expect, it } from 'vitest';
import { blockPlan, HIERA_PRESETS, type HieraConfig } from '../../../main/core/model/config.ts';
import { buildTrunkGraph, buildSam2UNetGraph, TRUNK_OUTPUTS } from '../../../main/core/model/engine.ts';
import { positionalEmbedding, resizeBicubic } from '../../../main/core/model/hiera.ts';
import { RandomWeights } from '../../../main/core/onnx/layers.ts';
import { loadOrt } from '../../../main/core/onnx/session.ts';
import { joinChunks, serializeModel } from '../../../main/core/onnx/writer.ts';

const smallL: HieraConfig = { ...structuredClone(HIERA_PRESETS.hiera_l!), embed_dim: 8 };

describe('hiera_l block schedule', () => {
  it('lags windows by one block, pools at stage starts and goes global at 23/33/43', () => {
    const plan = blockPlan(HIERA_PRESETS.hiera_l!);
    expect(plan).toHaveLength(48);
    expect(plan.filter((p) => p.poolQuery).map((p) => [p.index, p.window, p.dim, p.dimOut, p.heads])).toEqual([
      [2, 8, 144, 288, 4],
      [8, 4, 288, 576, 8],
      [44, 16, 576, 1152, 16],
    ]);
    expect(plan.filter((p) => p.window === 0).map((p) => p.index)).toEqual([23, 33, 43]);
    expect(plan.slice(45).map((p) => p.window)).toEqual([8, 8, 8]);
    expect(plan.filter((p) => p.stageEnd).map((p) => p.index)).toEqual([1, 7, 43, 47]);
  });
});

describe('hiera_l-structured trunk (embed_dim 8, random weights)', () => {
  for (const [h, w] of [[352, 352], [224, 288]] as const) {
    it(`gives the four features at ${h}×${w} with a dynamic batch, batch items independent`, async () => {
      const g = buildTrunkGraph(smallL, new RandomWeights(7), { height: h, width: w });
      const ort = await loadOrt();
      const session = await ort.InferenceSession.create(joinChunks(serializeModel(g)), { graphOptimizationLevel: 'all' });
      const n = 3 * h * w;
      const batch = new Float32Array(2 * n);
      for (let i = 0; i < batch.length; i++) batch[i] = Math.sin(i * 0.37) + (i >= n ? 0.5 : 0);
      const both = await session.run({ input: new ort.Tensor('float32', batch, [2, 3, h, w]) });
      const second = await session.run({ input: new ort.Tensor('float32', batch.slice(n), [1, 3, h, w]) });
      const channels = [8, 16, 32, 64];
      TRUNK_OUTPUTS.forEach((name, s) => {
        const f = 4 * 2 ** s;
        expect(both[name]!.dims).toEqual([2, channels[s], h / f, w / f]);
        const a = both[name]!.data as Float32Array;
        const b = second[name]!.data as Float32Array;
        let err = 0;
        for (let i = 0; i < b.length; i++) err = Math.max(err, Math.abs(a[b.length + i]! - b[i]!));
        expect(err, `${name}: batch item 1 alone vs in a batch`).toBeLessThan(1e-4);
        expect(Number.isFinite(a[0]!)).toBe(true);
      });
      await session.release();
    });
  }

  it('builds the whole SAM2-UNet around it (3 BraTS channels) with the expected output shapes', () => {
    const g = buildSam2UNetGraph(smallL, new RandomWeights(3), { height: 352, width: 352, outChannels: 3 });
    expect(g.outputs).toEqual(['out', 'out1', 'out2']);
    for (const o of g.outputs) expect(g.shape(o)).toEqual(['batch', 3, 352, 352]);
  });

  it('refuses sizes that are not multiples of 32', () => {
    expect(() => buildTrunkGraph(smallL, new RandomWeights(1), { height: 350, width: 352 })).toThrow(/multiples of 32/);
  });
});

describe('positional embedding (bicubic, a = −0.75, align_corners False)', () => {
  it('keeps constants constant (the kernel sums to one, border taps clamp)', () => {
    const out = resizeBicubic(new Float32Array(2 * 7 * 7).fill(0.25), 2, 7, 7, 88, 64);
    for (const v of out) expect(v).toBeCloseTo(0.25, 6);
  });

  it('is the identity at the same size and symmetric under mirroring', () => {
    const src = Float32Array.from({ length: 49 }, (_, i) => Math.sin(i));
    expect([...resizeBicubic(src, 1, 7, 7, 7, 7)]).toEqual([...src]);
    const mirrored = Float32Array.from({ length: 49 }, (_, i) => src[Math.floor(i / 7) * 7 + (6 - (i % 7))]!);
    const a = resizeBicubic(src, 1, 7, 7, 22, 22);
    const b = resizeBicubic(mirrored, 1, 7, 7, 22, 22);
    for (let y = 0; y < 22; y++) for (let x = 0; x < 22; x++) expect(a[y * 22 + x]).toBeCloseTo(b[y * 22 + 21 - x]!, 5);
  });

  it('matches hand-computed taps at the first output (source −0.25: t = 0.75, taps clamped)', () => {
    // 1 row of 4 values, 4 → 8 along x (and 1 → 1 along y): real = 0.5·(0 + 0.5) − 0.5 = −0.25
    const src = Float32Array.of(1, 2, 4, 8);
    const out = resizeBicubic(src, 1, 1, 4, 1, 8);
    const a = -0.75;
    const near = (x: number): number => ((a + 2) * x - (a + 3)) * x * x + 1;
    const far = (x: number): number => ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    const t = 0.75; // floor(−0.25) = −1, t = 0.75; taps −2, −1, 0, 1 → clamped 0, 0, 0, 1
    const expected = far(t + 1) * 1 + near(t) * 1 + near(1 - t) * 1 + far(2 - t) * 2;
    expect(out[0]).toBeCloseTo(expected, 6);
  });

  it('adds the window embedding tiled', () => {
    const pos = { shape: [1, 1, 2, 2], data: new Float32Array(4) };
    const win = { shape: [1, 1, 2, 2], data: Float32Array.of(1, 2, 3, 4) };
    expect([...positionalEmbedding(pos, win, 4, 4)]).toEqual([1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4]);
  });
});
