import { describe, expect, it } from 'vitest';
import { Volume, affineLPS, affineRAS, geometryFromAffineLPS, indexToWorld, sameGrid, type Geometry } from '../../../main/core/io/volume.ts';

const geometry: Geometry = {
  dims: [4, 3, 2],
  spacing: [0.5, 2, 3],
  origin: [10, -20, 30],
  direction: [0, 1, 0, -1, 0, 0, 0, 0, 1],
};

describe('Volume', () => {
  it('gives slice views without copying and scaled slice values', () => {
    const data = Int16Array.from({ length: 24 }, (_, i) => i);
    const volume = new Volume({ geometry, data, slope: 2, intercept: -1, meta: { id: 'v', description: '', modality: 'MR', sources: [] } });
    const view = volume.sliceView(1);
    expect(view.buffer).toBe(data.buffer);
    expect(Array.from(view)).toEqual(Array.from({ length: 12 }, (_, i) => 12 + i));
    expect(volume.sliceValues(1)[0]).toBe(23);
    expect(volume.stats()).toEqual({ min: -1, max: 45, mean: 22 });
    expect(() => volume.sliceView(2)).toThrow(RangeError);
  });

  it('refuses data that does not fit the geometry', () => {
    expect(() => new Volume({ geometry, data: new Uint8Array(5), meta: { id: 'v', description: '', modality: '', sources: [] } })).toThrow(/24/);
  });

  it('round-trips geometry through the LPS affine and maps indices to world', () => {
    const back = geometryFromAffineLPS(affineLPS(geometry), geometry.dims);
    expect(sameGrid(back, geometry, 1e-12)).toBe(true);
    expect(indexToWorld(geometry, 1, 1, 1)).toEqual([12, -20.5, 33]);
    const ras = affineRAS(geometry);
    expect(ras[3]).toBe(-10);
    expect(ras[7]).toBe(20);
    expect(ras[11]).toBe(30);
  });
});
