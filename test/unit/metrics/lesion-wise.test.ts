import { describe, expect, it } from 'vitest';
import { lesionWise } from '../../../main/core/metrics/lesion-wise.ts';
import { regionsFor } from '../../../main/core/metrics/regions.ts';

type V3 = [number, number, number];

/**
 * An independent re-computation that follows the published BraTS 2023 metrics code step by step
 * on the whole grid (get_LesionWiseScores / get_LesionWiseResults, with the dilated-lesion
 * matching of the current version), written naively: union–find components, pull-style dilation,
 * brute-force surface distances.
 */
function reference(pred: Uint8Array, gt: Uint8Array, dims: V3, spacing: V3, labels: number[], dilation: number, threshold: number): { dice: number; hd95: number; tp: number; fp: number; fn: number } {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const at = (x: number, y: number, z: number): number => z * nx * ny + y * nx + x;
  const inside = (x: number, y: number, z: number): boolean => x >= 0 && y >= 0 && z >= 0 && x < nx && y < ny && z < nz;
  const tissue = (m: Uint8Array): Uint8Array => m.map((v) => (labels.includes(v) ? 1 : 0));

  function cc3d(mask: Uint8Array): Int32Array {
    const parent = new Int32Array(n).map((_, i) => i);
    const find = (i: number): number => {
      while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
      return i;
    };
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++) {
          if (!mask[at(x, y, z)]) continue;
          for (let dz = -1; dz <= 1; dz++)
            for (let dy = -1; dy <= 1; dy++)
              for (let dx = -1; dx <= 1; dx++)
                if (inside(x + dx, y + dy, z + dz) && mask[at(x + dx, y + dy, z + dz)]) parent[find(at(x + dx, y + dy, z + dz))] = find(at(x, y, z));
        }
    const ids = new Map<number, number>();
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      if (!mask[i]) continue;
      const r = find(i);
      if (!ids.has(r)) ids.set(r, ids.size + 1);
      out[i] = ids.get(r)!;
    }
    return out;
  }

  function binaryDilation(mask: Uint8Array, iterations: number): Uint8Array {
    let cur = mask;
    for (let it = 0; it < iterations; it++) {
      const next = new Uint8Array(n);
      for (let z = 0; z < nz; z++)
        for (let y = 0; y < ny; y++)
          for (let x = 0; x < nx; x++) {
            let hit = 0;
            for (let dz = -1; dz <= 1 && !hit; dz++)
              for (let dy = -1; dy <= 1 && !hit; dy++)
                for (let dx = -1; dx <= 1 && !hit; dx++)
                  if (Math.abs(dx) + Math.abs(dy) + Math.abs(dz) <= 2 && inside(x + dx, y + dy, z + dz) && cur[at(x + dx, y + dy, z + dz)]) hit = 1;
            next[at(x, y, z)] = hit;
          }
      cur = next;
    }
    return cur;
  }

  function hd95(a: Uint8Array, b: Uint8Array): number {
    const surface = (m: Uint8Array): number[][] => {
      const pts: number[][] = [];
      for (let z = 0; z < nz; z++)
        for (let y = 0; y < ny; y++)
          for (let x = 0; x < nx; x++) {
            if (!m[at(x, y, z)]) continue;
            const eroded = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]].every(([dx, dy, dz]) => inside(x + dx!, y + dy!, z + dz!) && m[at(x + dx!, y + dy!, z + dz!)]);
            if (!eroded) pts.push([x * spacing[0], y * spacing[1], z * spacing[2]]);
          }
      return pts;
    };
    const sa = surface(a);
    const sb = surface(b);
    const nearest = (from: number[][], to: number[][]): number[] => from.map((p) => Math.min(...to.map((q) => Math.hypot(p[0]! - q[0]!, p[1]! - q[1]!, p[2]! - q[2]!))));
    const all = [...nearest(sa, sb), ...nearest(sb, sa)].sort((x, y) => x - y);
    const pos = (all.length - 1) * 0.95;
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, all.length - 1);
    return all[lo]! + (all[hi]! - all[lo]!) * (pos - lo);
  }

  const gtMat = tissue(gt);
  const predMat = tissue(pred);
  const gtCc = cc3d(gtMat);
  const predCc = cc3d(predMat);
  const dilCc = cc3d(binaryDilation(gtMat, dilation));
  const maxDil = Math.max(0, ...dilCc);
  const combined = new Int32Array(n);
  for (let comp = 1; comp <= maxDil; comp++) for (let i = 0; i < n; i++) if (dilCc[i] === comp && gtCc[i]! > 0) combined[i] = comp;
  const tp: number[] = [];
  const rows: { vol: number; dice: number; hd: number; matched: number }[] = [];
  for (let comp = 1; comp <= Math.max(0, ...combined); comp++) {
    const gtTmp = combined.map((v) => (v === comp ? 1 : 0)) as unknown as Uint8Array;
    const gtTmp8 = Uint8Array.from(gtTmp);
    const vol = gtTmp8.reduce((s, v) => s + v, 0) * spacing[0] * spacing[1] * spacing[2];
    const dil = binaryDilation(gtTmp8, dilation);
    const intersecting = [...new Set(predCc.filter((v, i) => v !== 0 && dil[i] === 1))];
    tp.push(...intersecting);
    const predTmp = Uint8Array.from(predCc, (v) => (v !== 0 && intersecting.includes(v) ? 1 : 0));
    let inter = 0;
    let sumA = 0;
    let sumB = 0;
    for (let i = 0; i < n; i++) {
      inter += predTmp[i]! & gtTmp8[i]!;
      sumA += predTmp[i]!;
      sumB += gtTmp8[i]!;
    }
    const dice = (2 * inter) / (sumA + sumB);
    const hd = sumA === 0 ? Infinity : hd95(gtTmp8, predTmp);
    rows.push({ vol, dice, hd: hd === Infinity ? 374 : hd, matched: intersecting.length });
  }
  const fp = new Set([...predCc].filter((v) => v !== 0 && !tp.includes(v))).size;
  const kept = rows.filter((r) => r.vol > threshold);
  let dice = kept.reduce((s, r) => s + r.dice, 0) / (kept.length + fp);
  let hd = (kept.reduce((s, r) => s + r.hd, 0) + fp * 374) / (kept.length + fp);
  if (Number.isNaN(dice)) dice = 1;
  if (Number.isNaN(hd)) hd = 0;
  return { dice, hd95: hd, tp: kept.filter((r) => r.matched > 0).length, fp, fn: kept.filter((r) => r.matched === 0).length };
}

function ball(m: Uint8Array, dims: V3, c: V3, r: number, label: number, radii: V3 = [r, r, r]): void {
  const [nx, ny, nz] = dims;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++)
        if (((x - c[0]) / radii[0]) ** 2 + ((y - c[1]) / radii[1]) ** 2 + ((z - c[2]) / radii[2]) ** 2 <= 1) m[z * nx * ny + y * nx + x] = label;
}

function box(m: Uint8Array, dims: V3, lo: V3, hi: V3, label: number): void {
  const [nx, ny] = dims;
  for (let z = lo[2]; z <= hi[2]; z++) for (let y = lo[1]; y <= hi[1]; y++) for (let x = lo[0]; x <= hi[0]; x++) m[z * nx * ny + y * nx + x] = label;
}

/** Several lesions: a matched one, a pair merged by dilation, a sub-threshold one, a missed one, and false positives. */
function scene(dims: V3): { gt: Uint8Array; pred: Uint8Array } {
  const n = dims[0] * dims[1] * dims[2];
  const gt = new Uint8Array(n);
  const pred = new Uint8Array(n);
  // lesion 1: oedema around a core with an enhancing part; the prediction is shifted and smaller
  ball(gt, dims, [10, 10, 9], 6, 2);
  ball(gt, dims, [10, 10, 9], 3.5, 1);
  ball(gt, dims, [11, 10, 9], 2, 4);
  ball(pred, dims, [11, 11, 9], 5.5, 2);
  ball(pred, dims, [11, 11, 9], 3, 4);
  // lesion 2: two blobs 3 voxels apart, one lesion after dilation; only one blob predicted, with a satellite
  box(gt, dims, [24, 6, 6], [28, 11, 11], 2);
  box(gt, dims, [32, 6, 6], [35, 10, 10], 1);
  box(pred, dims, [25, 6, 6], [29, 12, 11], 2);
  box(pred, dims, [31, 14, 8], [31, 14, 8], 1);
  // lesion 3: 27 voxels, under the threshold, predicted (neither TP nor FP in the score)
  box(gt, dims, [8, 26, 8], [10, 28, 10], 4);
  box(pred, dims, [8, 26, 9], [10, 28, 10], 4);
  // lesion 4: missed
  ball(gt, dims, [28, 27, 15], 4, 2, [4, 3, 3]);
  ball(gt, dims, [28, 27, 15], 2, 4);
  // false positives far from any lesion
  box(pred, dims, [18, 30, 2], [21, 33, 4], 2);
  box(pred, dims, [2, 2, 19], [3, 3, 20], 4);
  return { gt, pred };
}

describe('BraTS 2023 lesion-wise Dice and HD95', () => {
  const cases: { name: string; dims: V3; spacing: V3; dilation: number; threshold: number }[] = [
    { name: 'isotropic, defaults', dims: [40, 36, 22], spacing: [1, 1, 1], dilation: 3, threshold: 50 },
    { name: 'anisotropic, dilation 1, threshold 30 mm³', dims: [40, 36, 22], spacing: [0.9, 1.1, 2], dilation: 1, threshold: 30 },
    { name: 'no dilation, threshold 0', dims: [40, 36, 22], spacing: [1, 1, 1.5], dilation: 0, threshold: 0 },
  ];
  for (const c of cases) {
    it(`equals the re-computation after the published code (${c.name}) to 1e-6`, () => {
      const { gt, pred } = scene(c.dims);
      const got = lesionWise(pred, gt, c.dims, c.spacing, regionsFor('brats'), { dilation: c.dilation, threshold: c.threshold });
      for (const [region, labels] of [['WT', [1, 2, 4]], ['TC', [1, 4]], ['ET', [4]]] as const) {
        const want = reference(pred, gt, c.dims, c.spacing, [...labels], c.dilation, c.threshold);
        const g = got[region]!;
        expect(g.dice, `${region} dice`).toBeCloseTo(want.dice, 6);
        expect(g.hd95, `${region} hd95`).toBeCloseTo(want.hd95, 6);
        expect({ tp: g.tp, fp: g.fp, fn: g.fn }, region).toEqual({ tp: want.tp, fp: want.fp, fn: want.fn });
      }
    });
  }

  it('the scene has what it should: misses, false positives, a merged pair and a sub-threshold lesion', () => {
    const dims: V3 = [40, 36, 22];
    const { gt, pred } = scene(dims);
    const wt = lesionWise(pred, gt, dims, [1, 1, 1], regionsFor('brats'))['WT']!;
    expect(wt.lesions).toHaveLength(4); // the two blobs of lesion 2 are one
    expect(wt.fn).toBe(1);
    expect(wt.fp).toBe(2);
    expect(wt.lesions.filter((l) => !l.counted)).toHaveLength(1);
    expect(wt.lesions.find((l) => l.predicted.length === 0)!.hd95).toBe(374);
    // the satellite next to lesion 2 lies within the dilation reach: matched, not a false positive
    expect(wt.lesions.some((l) => l.predicted.length === 2)).toBe(true);
  });

  it('empty versus empty scores 1 and 0; predictions without ground truth are false positives (0 and 374)', () => {
    const dims: V3 = [20, 20, 10];
    const gt = new Uint8Array(4000);
    const pred = new Uint8Array(4000);
    box(gt, dims, [3, 3, 3], [8, 8, 6], 2);
    box(pred, dims, [3, 3, 3], [8, 8, 6], 2);
    let r = lesionWise(pred, gt, dims, [1, 1, 1], regionsFor('brats'));
    expect(r.WT).toMatchObject({ dice: 1, hd95: 0, tp: 1, fp: 0, fn: 0 });
    expect(r.ET).toMatchObject({ dice: 1, hd95: 0, tp: 0, fp: 0, fn: 0 });
    box(pred, dims, [14, 14, 2], [16, 16, 4], 4);
    r = lesionWise(pred, gt, dims, [1, 1, 1], regionsFor('brats'));
    expect(r.ET).toMatchObject({ dice: 0, hd95: 374, fp: 1 });
    expect(r.WT!.dice).toBeCloseTo(0.5, 12);
    expect(r.WT!.hd95).toBeCloseTo(187, 12);
  });
});
