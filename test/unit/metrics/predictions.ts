/**
 * The predictions of test/fixtures/metrics/make_reference.py, rebuilt from a ground-truth label
 * map with the same definitions (arrays x fastest, i.e. numpy's [x, y, z] in Fortran order).
 */
import { readNifti } from '../../../main/core/io/nifti.ts';

export type Dims = [number, number, number];

export const PHANTOMS = new URL('../../../../shared/data/phantoms/', import.meta.url);
export const CASES = ['BraTS20_Training_001', 'BraTS20_Training_002', 'BraTS20_Training_003', 'BraTS20_Training_004'];

export async function readSeg(caseName: string): Promise<{ labels: Uint8Array; dims: Dims }> {
  const file = new URL(`${caseName}/${caseName}_seg.nii.gz`, PHANTOMS).pathname;
  const { volumes } = await readNifti(file);
  const volume = volumes[0]!;
  const labels = volume.data instanceof Uint8Array && !volume.isScaled ? volume.data : Uint8Array.from(volume.toFloat32());
  return { labels, dims: [...volume.dims] as Dims };
}

/** One step of 6-connected binary erosion (outside the image is background) or dilation. */
function morph(mask: Uint8Array, dims: Dims, erode: boolean): Uint8Array {
  const [nx, ny, nz] = dims;
  const out = new Uint8Array(mask.length);
  const sxy = nx * ny;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        const i = z * sxy + y * nx + x;
        const inside = (x > 0 ? mask[i - 1]! : 0) + (x < nx - 1 ? mask[i + 1]! : 0) +
          (y > 0 ? mask[i - nx]! : 0) + (y < ny - 1 ? mask[i + nx]! : 0) +
          (z > 0 ? mask[i - sxy]! : 0) + (z < nz - 1 ? mask[i + sxy]! : 0);
        out[i] = erode ? (mask[i] && inside === 6 ? 1 : 0) : mask[i] || inside > 0 ? 1 : 0;
      }
  return out;
}

export const PREDICTIONS = ['identical', 'shift', 'erode', 'dilate', 'outlier', 'empty'] as const;
export type PredictionName = (typeof PREDICTIONS)[number];

export function makePrediction(name: PredictionName, gt: Uint8Array, dims: Dims): Uint8Array {
  const [nx, ny, nz] = dims;
  const at = (x: number, y: number, z: number): number => (z * ny + y) * nx + x;
  switch (name) {
    case 'identical':
      return gt.slice();
    case 'shift': {
      const out = new Uint8Array(gt.length);
      for (let z = 0; z + 1 < nz; z++)
        for (let y = 2; y < ny; y++)
          for (let x = 0; x + 3 < nx; x++) out[at(x + 3, y - 2, z + 1)] = gt[at(x, y, z)]!;
      return out;
    }
    case 'erode': {
      const kept = morph(gt.map((v) => (v > 0 ? 1 : 0)), dims, true);
      return gt.map((v, i) => (kept[i] ? v : 0));
    }
    case 'dilate': {
      const out = gt.slice();
      const grown = morph(gt.map((v) => (v > 0 ? 1 : 0)), dims, false);
      for (let i = 0; i < out.length; i++) if (grown[i] && gt[i] === 0) out[i] = 2;
      const et = morph(morph(gt.map((v) => (v === 4 ? 1 : 0)), dims, false), dims, false);
      for (let i = 0; i < out.length; i++) if (et[i]) out[i] = 4;
      return out;
    }
    case 'outlier': {
      const out = gt.slice();
      for (let z = 150; z < 155; z++) for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) out[at(x, y, z)] = 1;
      return out;
    }
    case 'empty':
      return new Uint8Array(gt.length);
  }
}
