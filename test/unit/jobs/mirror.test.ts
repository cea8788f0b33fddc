/**
 * Test-time mirroring (run-settings.ts 'mirror', jobs/slice-model.ts mirrorAveraged): each batch
 * runs as is and flipped left-right, front-back and both; the logits come back flipped into place
 * and averaged. Checked against a model that is not itself symmetric, so a view flipped the wrong
 * way, or not flipped back, shows.
 */
import { describe, expect, it } from 'vitest';
import { mirrorAveraged, type SliceModel } from '../../../main/core/jobs/slice-model.ts';

const [H, W] = [4, 6];

/** out[b, c, y, x] = (c + 1)·in[b, 0, y, x] + 10·x + 100·y: depends on where a pixel is, not only on its value */
function positionalModel(calls: Float32Array[]): SliceModel {
  return {
    inputSize: [H, W],
    outChannels: 2,
    provider: 'cpu',
    async run(batch, n) {
      calls.push(batch);
      const out = new Float32Array(n * 2 * H * W);
      for (let b = 0; b < n; b++)
        for (let c = 0; c < 2; c++)
          for (let y = 0; y < H; y++)
            for (let x = 0; x < W; x++) out[((b * 2 + c) * H + y) * W + x] = (c + 1) * batch[(b * 3 * H + y) * W + x]! + 10 * x + 100 * y;
      return out;
    },
    dispose: () => undefined,
  };
}

describe('test-time mirroring', () => {
  it('averages the four views, each flipped back into place', async () => {
    const n = 2;
    const input = Float32Array.from({ length: n * 3 * H * W }, (_, i) => ((i * 7919) % 23) / 4);
    const original = input.slice();
    const calls: Float32Array[] = [];
    const out = await mirrorAveraged(positionalModel(calls)).run(input, n);

    // a pixel's value moves with the flip and comes back; its position term is averaged over
    // the four places the pixel was at: x and W−1−x, y and H−1−y
    for (let b = 0; b < n; b++)
      for (let c = 0; c < 2; c++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            const value = (c + 1) * original[(b * 3 * H + y) * W + x]!;
            const expected = value + (10 * (x + (W - 1 - x))) / 2 + (100 * (y + (H - 1 - y))) / 2;
            expect(out[((b * 2 + c) * H + y) * W + x]).toBeCloseTo(expected, 4);
          }
    expect(out.length).toBe(n * 2 * H * W);
    // four runs, the first as is, the second flipped left-right (pixel x ↔ W−1−x)
    expect(calls.length).toBe(4);
    expect(Array.from(calls[0]!)).toEqual(Array.from(original));
    expect(calls[1]![0]).toBe(original[W - 1]);
    expect(calls[2]![0]).toBe(original[(H - 1) * W]);
    expect(calls[3]![0]).toBe(original[(H - 1) * W + W - 1]);
    // the caller's batch is left alone (each view is a copy the inner model may transfer)
    expect(Array.from(input)).toEqual(Array.from(original));
  });

  it('changes nothing for a model that treats every pixel alike', async () => {
    const pointwise: SliceModel = {
      inputSize: [H, W],
      outChannels: 1,
      provider: 'cpu',
      run: async (batch, n) => Float32Array.from({ length: n * H * W }, (_, i) => 3 * batch[Math.floor(i / (H * W)) * 3 * H * W + (i % (H * W))]! - 1),
      dispose: () => undefined,
    };
    const input = Float32Array.from({ length: 3 * H * W }, (_, i) => Math.sin(i));
    const [plain, mirrored] = [await pointwise.run(input.slice(), 1), await mirrorAveraged(pointwise).run(input.slice(), 1)];
    for (let i = 0; i < plain.length; i++) expect(mirrored[i]).toBeCloseTo(plain[i]!, 6);
  });

  it('refuses a batch too short for n items, as the plain model does', async () => {
    await expect(mirrorAveraged(positionalModel([])).run(new Float32Array(3 * H * W), 2)).rejects.toThrow(/batch holds 72 values, 2×3×4×6 needs 144/);
  });
});
