import { describe, expect, it } from 'vitest';
import { connectedComponents } from '../../../main/core/metrics/components.ts';

const dims = [5, 4, 3] as const;
const at = (x: number, y: number, z: number) => z * dims[0] * dims[1] + y * dims[0] + x;

describe('connectedComponents', () => {
  it('joins voxels that touch at a corner with 26-connectivity and keeps them apart with 6', () => {
    const mask = new Uint8Array(dims[0] * dims[1] * dims[2]);
    mask[at(0, 0, 0)] = 1;
    mask[at(1, 1, 1)] = 2; // corner neighbour
    mask[at(4, 3, 2)] = 4; // far away
    mask[at(4, 2, 2)] = 1; // face neighbour of the previous
    const c26 = connectedComponents(mask, dims, 26);
    expect(c26.sizes).toEqual([2, 2]);
    expect(c26.labels[at(1, 1, 1)]).toBe(1);
    expect(c26.labels[at(4, 3, 2)]).toBe(2);
    expect(connectedComponents(mask, dims, 18).sizes).toEqual([1, 1, 2]);
    expect(connectedComponents(mask, dims, 6).sizes).toEqual([1, 1, 2]);
  });

  it('numbers components in memory order, honours the membership test and checks the grid', () => {
    const mask = new Uint8Array(dims[0] * dims[1] * dims[2]);
    mask[at(3, 0, 0)] = 4;
    mask[at(0, 3, 0)] = 2;
    const onlyEnhancing = connectedComponents(mask, dims, 26, (v) => v === 4);
    expect(onlyEnhancing.sizes).toEqual([1]);
    expect(onlyEnhancing.labels[at(0, 3, 0)]).toBe(0);
    expect(connectedComponents(mask, dims).labels[at(3, 0, 0)]).toBe(1);
    expect(() => connectedComponents(new Uint8Array(3), dims)).toThrow(/3 voxels.*5×4×3/);
  });

  it('labels a component larger than the initial queue', () => {
    const big = [40, 40, 4] as const;
    const mask = new Uint8Array(big[0] * big[1] * big[2]).fill(1);
    expect(connectedComponents(mask, big).sizes).toEqual([6400]);
  });
});
