/**
 * Putting a volume onto another grid through world (LPS) coordinates: every target voxel centre
 * is mapped to the source's continuous index and sampled there (trilinear for images, nearest
 * for label maps). What falls outside the source is 0, as outside a skull-stripped brain.
 * Orientation is only ever read from the geometries (volume.ts), never assumed.
 */
import { Volume, affineLPS, worldToIndexMatrix, type Geometry } from './volume.ts';

export type Interpolation = 'trilinear' | 'nearest';

/** target index → source continuous index, as a 3×4 row-major matrix */
function indexToIndex(target: Geometry, source: Geometry): number[] {
  const t = affineLPS(target);
  const s = worldToIndexMatrix(source);
  const out = new Array<number>(12);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      let sum = c === 3 ? s[r * 4 + 3]! : 0;
      for (let k = 0; k < 3; k++) sum += s[r * 4 + k]! * t[k * 4 + c]!;
      out[r * 4 + c] = sum;
    }
  }
  return out;
}

/**
 * How much of `target`'s box lies inside `source`'s (0…1), measured on a coarse grid of target
 * voxel centres: the question is whether two series image the same anatomy at all.
 */
export function overlapFraction(target: Geometry, source: Geometry): number {
  const m = indexToIndex(target, source);
  const [nx, ny, nz] = target.dims;
  const [sx, sy, sz] = source.dims;
  const steps = 8;
  let inside = 0;
  let total = 0;
  for (let a = 0; a < steps; a++) {
    for (let b = 0; b < steps; b++) {
      for (let c = 0; c < steps; c++) {
        const i = ((a + 0.5) / steps) * nx - 0.5;
        const j = ((b + 0.5) / steps) * ny - 0.5;
        const k = ((c + 0.5) / steps) * nz - 0.5;
        const x = m[0]! * i + m[1]! * j + m[2]! * k + m[3]!;
        const y = m[4]! * i + m[5]! * j + m[6]! * k + m[7]!;
        const z = m[8]! * i + m[9]! * j + m[10]! * k + m[11]!;
        total++;
        if (x >= -0.5 && x <= sx - 0.5 && y >= -0.5 && y <= sy - 0.5 && z >= -0.5 && z <= sz - 0.5) inside++;
      }
    }
  }
  return inside / total;
}

/**
 * `volume` sampled on `target`. Trilinear output is float32 real values (slope and intercept
 * applied); nearest keeps the stored type and rescale. Samples within half a voxel of the source's
 * edge take the edge value (the source voxel extends that far); beyond that they are 0.
 */
export function resampleToGrid(volume: Volume, target: Geometry, interpolation: Interpolation = 'trilinear'): Volume {
  if (volume.components !== 1) throw new Error(`${volume.meta.id}: only scalar volumes can be resampled`);
  const m = indexToIndex(target, volume.geometry);
  const [nx, ny, nz] = target.dims;
  const [sx, sy, sz] = volume.dims;
  const sxy = sx * sy;
  const src = volume.data;
  const { slope, intercept } = volume;
  // the source's SOP instances are not slices of the new grid: nothing may reference them per slice (DICOM SEG)
  const { sopInstanceUids: _, ...kept } = volume.meta;
  const meta = { ...kept, extra: { ...volume.meta.extra, resampledFrom: { dims: volume.dims, spacing: volume.geometry.spacing, origin: volume.geometry.origin, direction: volume.geometry.direction } } };
  if (interpolation === 'nearest') {
    const out = new (src.constructor as new (n: number) => typeof src)(nx * ny * nz);
    let at = 0;
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        let x = m[1]! * j + m[2]! * k + m[3]!;
        let y = m[5]! * j + m[6]! * k + m[7]!;
        let z = m[9]! * j + m[10]! * k + m[11]!;
        for (let i = 0; i < nx; i++, at++, x += m[0]!, y += m[4]!, z += m[8]!) {
          const ii = Math.round(x);
          const jj = Math.round(y);
          const kk = Math.round(z);
          if (ii >= 0 && ii < sx && jj >= 0 && jj < sy && kk >= 0 && kk < sz) out[at] = src[kk * sxy + jj * sx + ii]!;
        }
      }
    }
    return new Volume({ geometry: target, data: out, slope, intercept, meta });
  }
  const out = new Float32Array(nx * ny * nz);
  let at = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      let x = m[1]! * j + m[2]! * k + m[3]!;
      let y = m[5]! * j + m[6]! * k + m[7]!;
      let z = m[9]! * j + m[10]! * k + m[11]!;
      for (let i = 0; i < nx; i++, at++, x += m[0]!, y += m[4]!, z += m[8]!) {
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > sx - 0.5 || y > sy - 0.5 || z > sz - 0.5) continue;
        const cx = Math.min(Math.max(x, 0), sx - 1);
        const cy = Math.min(Math.max(y, 0), sy - 1);
        const cz = Math.min(Math.max(z, 0), sz - 1);
        const x0 = Math.min(Math.floor(cx), sx - 2 < 0 ? 0 : sx - 2);
        const y0 = Math.min(Math.floor(cy), sy - 2 < 0 ? 0 : sy - 2);
        const z0 = Math.min(Math.floor(cz), sz - 2 < 0 ? 0 : sz - 2);
        const fx = sx > 1 ? cx - x0 : 0;
        const fy = sy > 1 ? cy - y0 : 0;
        const fz = sz > 1 ? cz - z0 : 0;
        const dx = sx > 1 ? 1 : 0;
        const dy = sy > 1 ? sx : 0;
        const dz = sz > 1 ? sxy : 0;
        const base = z0 * sxy + y0 * sx + x0;
        const c00 = src[base]! * (1 - fx) + src[base + dx]! * fx;
        const c10 = src[base + dy]! * (1 - fx) + src[base + dy + dx]! * fx;
        const c01 = src[base + dz]! * (1 - fx) + src[base + dz + dx]! * fx;
        const c11 = src[base + dz + dy]! * (1 - fx) + src[base + dz + dy + dx]! * fx;
        const c0 = c00 * (1 - fy) + c10 * fy;
        const c1 = c01 * (1 - fy) + c11 * fy;
        out[at] = (c0 * (1 - fz) + c1 * fz) * slope + intercept;
      }
    }
  }
  return new Volume({ geometry: target, data: out, meta });
}
