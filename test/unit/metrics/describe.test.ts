import { describe, expect, it } from 'vitest';
import { describeTumour, maxDiameterMm } from '../../../main/core/metrics/describe.ts';
import { indexToWorld, type Geometry, type Vec3 } from '../../../main/core/io/volume.ts';

type V3 = [number, number, number];

function grid(dims: V3, spacing: V3, direction = [1, 0, 0, 0, 1, 0, 0, 0, 1], origin: V3 = [-40, 25, 7]): Geometry {
  return { dims, spacing, origin, direction };
}

/** Sets `label` on every voxel whose centre (LPS mm) satisfies `inside`. */
function paint(labels: Uint8Array, g: Geometry, label: number, inside: (p: Vec3) => boolean): number {
  const [nx, ny, nz] = g.dims;
  let count = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++)
        if (inside(indexToWorld(g, i, j, k))) {
          labels[k * nx * ny + j * nx + i] = label;
          count++;
        }
  return count;
}

const rotZ = (deg: number): number[] => {
  const c = Math.cos((deg * Math.PI) / 180);
  const s = Math.sin((deg * Math.PI) / 180);
  return [c, -s, 0, s, c, 0, 0, 0, 1];
};

describe('describeTumour: volumes and diameters', () => {
  it('an ellipsoid of known axes on an anisotropic, rotated grid: exact volume, centroid, diameter within a voxel diagonal', () => {
    const g = grid([70, 60, 30], [0.8, 1.1, 2.5], rotZ(20));
    const centre = indexToWorld(g, 34.3, 29.6, 14.2);
    const [a, b, c] = [22, 13, 10];
    const labels = new Uint8Array(70 * 60 * 30);
    const inside = (p: Vec3): boolean => ((p[0] - centre[0]) / a) ** 2 + ((p[1] - centre[1]) / b) ** 2 + ((p[2] - centre[2]) / c) ** 2 <= 1;
    const ed = paint(labels, g, 2, inside);
    const d = describeTumour(labels, g, 'brats');
    const voxelMl = (0.8 * 1.1 * 2.5) / 1000;
    expect(d.regions.WT!.voxels).toBe(ed);
    expect(d.regions.WT!.volume_ml).toBeCloseTo(ed * voxelMl, 12);
    expect(d.regions.ED!.voxels).toBe(ed);
    expect(d.regions.ET!.voxels).toBe(0);
    // the voxelised volume approaches the analytic one
    expect(Math.abs(d.regions.WT!.volume_ml - ((4 / 3) * Math.PI * a * b * c) / 1000) / d.regions.WT!.volume_ml).toBeLessThan(0.03);
    expect(d.lesions).toHaveLength(1);
    const lesion = d.lesions[0]!;
    for (let i = 0; i < 3; i++) expect(Math.abs(lesion.centroid_lps[i]! - centre[i]!)).toBeLessThan(0.3);
    const diagonal = Math.hypot(0.8, 1.1, 2.5);
    expect(lesion.max_diameter_mm).toBeLessThanOrEqual(2 * a + 1e-9);
    expect(lesion.max_diameter_mm).toBeGreaterThan(2 * a - diagonal);
    expect(lesion.rano.slice).toBeNull();
    expect(lesion.rano.measurable).toBe(false);
  });

  it('the largest diameter equals the brute-force farthest pair of voxel centres', () => {
    const g = grid([24, 20, 12], [0.7, 1.3, 2], rotZ(35));
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const indices: number[] = [];
    for (let i = 0; i < 24 * 20 * 12; i++) if (random() < 0.08) indices.push(i);
    const points = indices.map((idx) => indexToWorld(g, idx % 24, Math.floor(idx / 24) % 20, Math.floor(idx / 480)));
    let best = 0;
    for (let i = 0; i < points.length; i++)
      for (let j = i + 1; j < points.length; j++) best = Math.max(best, Math.hypot(...points[i]!.map((v, c) => v - points[j]![c]!)));
    expect(maxDiameterMm(indices, g)).toBeCloseTo(best, 9);
  });
});

describe('describeTumour: lesions, foci and multifocality', () => {
  const g = grid([60, 30, 20], [1.5, 1, 2]);
  const cube = (labels: Uint8Array, [x0, x1]: [number, number], label = 2): void => {
    for (let k = 5; k < 15; k++) for (let j = 5; j < 25; j++) for (let i = x0; i <= x1; i++) labels[k * 1800 + j * 60 + i] = label;
  };

  it('two foci at a known distance; a component closer than 5 mm joins its focus; specks under 0.1 ml are no lesion', () => {
    const labels = new Uint8Array(60 * 30 * 20);
    cube(labels, [5, 14]); // 10×20×10 voxels = 6 ml
    cube(labels, [26, 33]); // 11 voxels apart along x: (26 − 14) × 1.5 = 18 mm between centres
    labels[2 * 1800 + 2 * 60 + 50] = 4; // one voxel, 3 µl
    let d = describeTumour(labels, g, 'brats');
    expect(d.lesions.map((l) => l.voxels)).toEqual([2000, 1600]);
    expect(d.multifocal).toEqual({ foci: 2, largest_distance_mm: 18 });
    cube(labels, [36, 40]); // 3 voxels from the second: 4.5 mm < 5 mm
    d = describeTumour(labels, g, 'brats');
    expect(d.lesions).toHaveLength(3);
    expect(d.multifocal.foci).toBe(2);
    expect(d.multifocal.largest_distance_mm).toBeCloseTo(18, 9);
    cube(labels, [44, 50]); // 4 voxels from the third: 6 mm, a third focus
    d = describeTumour(labels, g, 'brats');
    expect(d.multifocal.foci).toBe(3);
    // largest of the gaps between foci: focus 1 to focus 2 is 18 mm, focus 1 to focus 3 more
    expect(d.multifocal.largest_distance_mm).toBeCloseTo((44 - 14) * 1.5, 9);
  });

  it('one lesion is not multifocal', () => {
    const labels = new Uint8Array(60 * 30 * 20);
    cube(labels, [5, 14]);
    expect(describeTumour(labels, g, 'brats').multifocal).toEqual({ foci: 1, largest_distance_mm: 0 });
  });
});

/** An elliptical enhancing rim (outer semi-axes A, B mm; `thickness` mm) around necrosis, in-plane angle `deg`. */
function rimLesion(labels: Uint8Array, g: Geometry, centre: Vec3, A: number, B: number, deg: number, thickness: number, slices: number): void {
  const c = Math.cos((deg * Math.PI) / 180);
  const s = Math.sin((deg * Math.PI) / 180);
  const local = (p: Vec3): [number, number, number] => {
    const dx = p[0] - centre[0];
    const dy = p[1] - centre[1];
    return [dx * c + dy * s, -dx * s + dy * c, p[2] - centre[2]];
  };
  // the rim shrinks away from the middle slice, so the key slice is the middle one
  const scale = (dz: number): number => Math.sqrt(Math.max(0, 1 - (dz / ((slices / 2) * g.spacing[2])) ** 2));
  paint(labels, g, 4, (p) => {
    const [u, v, w] = local(p);
    const f = scale(w);
    return f > 0 && (u / (A * f)) ** 2 + (v / (B * f)) ** 2 <= 1;
  });
  paint(labels, g, 1, (p) => {
    const [u, v, w] = local(p);
    const f = scale(w);
    return f > 0 && (u / (A * f - thickness)) ** 2 + (v / (B * f - thickness)) ** 2 <= 1 && A * f > thickness && B * f > thickness;
  });
}

describe('describeTumour: RANO bidimensional measurement', () => {
  for (const [A, B, deg, spacing] of [
    [20, 12, 30, [0.9, 1.2, 3]],
    [16, 9, 115, [1, 1, 1.5]],
    [25, 14, 0, [1.1, 0.8, 2]],
  ] as [number, number, number, V3][]) {
    it(`elliptical rim, axes ${2 * A}×${2 * B} mm at ${deg}°, spacing ${spacing.join('×')}: diameters within 1.5 mm on the middle slice`, () => {
      const dims: V3 = [80, 80, 11];
      const g = grid(dims, spacing);
      const labels = new Uint8Array(80 * 80 * 11);
      const centre = indexToWorld(g, 40.2, 39.7, 5);
      rimLesion(labels, g, centre, A, B, deg, 3, 9);
      const d = describeTumour(labels, g, 'brats');
      expect(d.lesions).toHaveLength(1);
      const { rano } = d.lesions[0]!;
      expect(rano.slice).toBe(5);
      expect(Math.abs(rano.long_mm - 2 * A)).toBeLessThanOrEqual(1.5);
      expect(Math.abs(rano.perp_mm - 2 * B)).toBeLessThanOrEqual(1.5);
      expect(rano.product_mm2).toBeCloseTo(rano.long_mm * rano.perp_mm, 9);
      expect(rano.measurable).toBe(true);
      // the long line lies along the rim's axis (mod 180°) — up to the tilt a voxelised ellipse's flat
      // end caps allow (opposite corners of the caps are farther apart) — the perpendicular at right angles to it
      const [p, q] = rano.long_line_lps!;
      const angle = (Math.atan2(q[1] - p[1], q[0] - p[0]) * 180) / Math.PI;
      const off = (((angle - deg) % 180) + 180) % 180;
      expect(Math.min(off, 180 - off)).toBeLessThan(10);
      const [r, t] = rano.perp_line_lps!;
      const dot = (q[0] - p[0]) * (t[0] - r[0]) + (q[1] - p[1]) * (t[1] - r[1]);
      expect(Math.abs(dot)).toBeLessThan(1e-6);
      expect(d.rano_sum_products_mm2).toBeCloseTo(rano.product_mm2, 9);
      expect(d.measurable_lesions).toBe(1);
    });
  }

  it('a rim under 10 mm across is not measurable; the sum takes the five largest measurable products', () => {
    const g = grid([200, 120, 9], [1, 1, 2]);
    const labels = new Uint8Array(200 * 120 * 9);
    const sizes: [number, number][] = [[4, 3], [8, 6], [9, 7], [10, 8], [11, 8], [12, 9], [13, 10]];
    sizes.forEach(([A, B], n) => rimLesion(labels, g, indexToWorld(g, 20 + (n % 4) * 45, 30 + Math.floor(n / 4) * 55, 4), A, B, 0, 2, 7));
    const d = describeTumour(labels, g, 'brats');
    expect(d.lesions).toHaveLength(7);
    const small = d.lesions.find((l) => l.rano.long_mm < 10)!;
    expect(small.rano.measurable).toBe(false);
    expect(d.measurable_lesions).toBe(6);
    const products = d.lesions.filter((l) => l.rano.measurable).map((l) => l.rano.product_mm2).sort((a, b) => b - a);
    expect(d.rano_sum_products_mm2).toBeCloseTo(products.slice(0, 5).reduce((s, v) => s + v, 0), 9);
    expect(d.rano_sum_products_mm2).toBeLessThan(products.reduce((s, v) => s + v, 0));
  });
});

describe('describeTumour: laterality in a rotated head', () => {
  // a left–right symmetric head, turned by yaw and roll and shifted: its mid-sagittal plane is known
  const yaw = (6 * Math.PI) / 180;
  const roll = (4 * Math.PI) / 180;
  const trueNormal: Vec3 = [Math.cos(yaw) * Math.cos(roll), Math.sin(yaw) * Math.cos(roll), Math.sin(roll)];
  // orthonormal head frame: e1 = normal, e2 and e3 completing it
  const e2n = [-Math.sin(yaw), Math.cos(yaw), 0];
  const e3 = [
    trueNormal[1] * e2n[2]! - trueNormal[2] * e2n[1]!,
    trueNormal[2] * e2n[0]! - trueNormal[0] * e2n[2]!,
    trueNormal[0] * e2n[1]! - trueNormal[1] * e2n[0]!,
  ];
  const g = grid([110, 128, 90], [1.6, 1.6, 1.8], undefined, [-88, -100, -80]);
  const centre: Vec3 = [3.5, -2, 1];
  const head = (p: Vec3): [number, number, number] => {
    const d = [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]];
    const dot = (v: readonly number[]): number => d[0]! * v[0]! + d[1]! * v[1]! + d[2]! * v[2]!;
    return [dot(trueNormal), dot(e2n), dot(e3)];
  };
  const n = 110 * 128 * 90;
  const image = new Float32Array(n);
  const labels = new Uint8Array(n);
  const side = new Float64Array(n);
  {
    const [nx, ny, nz] = g.dims;
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++) {
          const idx = k * nx * ny + j * nx + i;
          const [x, y, z] = head(indexToWorld(g, i, j, k));
          side[idx] = x;
          const r = (x / 68) ** 2 + (y / 86) ** 2 + (z / 62) ** 2;
          if (r > 1) continue;
          // grey rim, white interior with a front–back gradient, ventricles either side of the midline
          let v = r > 0.8 ? 140 : 90 + 0.2 * y + 0.15 * z;
          if (((Math.abs(x) - 11) / 6) ** 2 + (y / 25) ** 2 + ((z - 5) / 12) ** 2 <= 1) v = 25;
          if (Math.abs(x) < 1.5 && z > 10) v = 60; // the falx
          image[idx] = v;
        }
  }
  const sphere = (c: [number, number, number], radius: number): void => {
    const [nx, ny, nz] = g.dims;
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++) {
          const [x, y, z] = head(indexToWorld(g, i, j, k));
          if ((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius ** 2) {
            labels[k * nx * ny + j * nx + i] = 2;
            image[k * nx * ny + j * nx + i] = 170; // the tumour is bright and breaks the symmetry
          }
        }
  };
  /** the expected split, counted against the true plane with the description's 1 mm band */
  const truth = (): { left: number; right: number } => {
    let left = 0;
    let right = 0;
    for (let i = 0; i < n; i++) {
      if (!labels[i]) continue;
      if (side[i]! > 1) left++;
      else if (side[i]! < -1) right++;
      else {
        left += 0.5;
        right += 0.5;
      }
    }
    return { left: (100 * left) / (left + right), right: (100 * right) / (left + right) };
  };

  it('a lesion wholly on the left, then one straddling the midline: plane, percentages and crossing from image symmetry', () => {
    labels.fill(0);
    sphere([30, 20, 10], 11);
    let d = describeTumour(labels, g, 'brats', { images: [{ data: image }] });
    expect(d.laterality.method).toBe('image-symmetry');
    expect(d.laterality.left_pct).toBe(100);
    expect(d.laterality.right_pct).toBe(0);
    expect(d.laterality.crosses_midline).toBe(false);
    const { normal, offset_mm } = d.laterality.plane;
    const cosine = normal[0] * trueNormal[0] + normal[1] * trueNormal[1] + normal[2] * trueNormal[2];
    expect((Math.acos(Math.min(1, cosine)) * 180) / Math.PI).toBeLessThan(1.5);
    expect(Math.abs(offset_mm - (trueNormal[0] * centre[0] + trueNormal[1] * centre[1] + trueNormal[2] * centre[2]))).toBeLessThan(1);

    sphere([-6, -30, 0], 14);
    d = describeTumour(labels, g, 'brats', { images: [{ data: image }] });
    const want = truth();
    expect(want.right).toBeGreaterThan(20);
    expect(Math.abs(d.laterality.left_pct - want.left)).toBeLessThan(2);
    expect(Math.abs(d.laterality.right_pct - want.right)).toBeLessThan(2);
    expect(d.laterality.left_pct + d.laterality.right_pct).toBeCloseTo(100, 9);
    expect(d.laterality.crosses_midline).toBe(true);
  });

  it('without images: the patient axes, said so', () => {
    labels.fill(0);
    sphere([30, 20, 10], 11);
    const d = describeTumour(labels, g, 'brats');
    expect(d.laterality.method).toBe('patient-axes');
    expect(d.laterality.plane.normal).toEqual([1, 0, 0]);
    expect(d.laterality.left_pct).toBe(100);
  });
});

describe('describeTumour: binary masks', () => {
  it('a binary mask is one region, WT, and its lesion is measured as a whole', () => {
    const g = grid([60, 60, 5], [1, 1, 3]);
    const labels = new Uint8Array(60 * 60 * 5);
    const c = indexToWorld(g, 30, 30, 2);
    paint(labels, g, 1, (p) => Math.hypot(p[0] - c[0], p[1] - c[1]) <= 12 && Math.abs(p[2] - c[2]) < 4);
    const d = describeTumour(labels, g, 'binary');
    expect(Object.keys(d.regions)).toEqual(['WT']);
    expect(d.lesions[0]!.et_volume_ml).toBe(0);
    expect(Math.abs(d.lesions[0]!.rano.long_mm - 24)).toBeLessThanOrEqual(1.5);
    expect(Math.abs(d.lesions[0]!.rano.perp_mm - 24)).toBeLessThanOrEqual(1.5);
  });
});
