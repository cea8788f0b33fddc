/**
 * Colour volumes hold their samples in the colour space the file stores them in, as pydicom
 * delivers them (decoding is kept apart from colour conversion): RGB, or full-range YCbCr for
 * DICOM's YBR_FULL and YBR_FULL_422 (the latter expanded to one Cb/Cr pair per pixel). Whatever
 * needs RGB — display, RGB24 NIfTI — converts here.
 */
import type { Volume, VoxelArray } from './volume.ts';

export type ColourSpace = 'RGB' | 'YBR_FULL';

export function colourSpace(volume: Volume): ColourSpace {
  return volume.meta.extra?.photometric === 'YBR_FULL' ? 'YBR_FULL' : 'RGB';
}

/** The volume's samples as interleaved RGB: the data itself when it is RGB, else a converted copy. */
export function rgbData(volume: Volume): VoxelArray {
  if (volume.components !== 3) throw new Error(`${volume.meta.id} is not a colour volume`);
  if (colourSpace(volume) === 'RGB') return volume.data;
  const bitsStored = Number((volume.meta.extra?.dicom as { BitsStored?: number } | undefined)?.BitsStored ?? volume.data.BYTES_PER_ELEMENT * 8);
  const out = volume.data.slice() as VoxelArray;
  ybrFullToRgb(out, bitsStored);
  return out;
}

/** Full-range YCbCr → RGB with pydicom's coefficients, rounding and clipping. */
export function ybrFullToRgb(data: VoxelArray, bitsStored: number): void {
  const half = 2 ** (bitsStored - 1);
  const top = 2 ** bitsStored - 1;
  const gCb = (-0.114 * 1.772) / 0.587;
  const gCr = (-0.299 * 1.402) / 0.587;
  const clamp = (v: number) => (v < 0 ? 0 : v > top ? top : v);
  for (let i = 0; i + 2 < data.length; i += 3) {
    const y = data[i]!;
    const cb = data[i + 1]! - half;
    const cr = data[i + 2]! - half;
    data[i] = clamp(Math.floor(y + 1.402 * cr + 0.5));
    data[i + 1] = clamp(Math.floor(y + gCb * cb + gCr * cr + 0.5));
    data[i + 2] = clamp(Math.floor(y + 1.772 * cb + 0.5));
  }
}
