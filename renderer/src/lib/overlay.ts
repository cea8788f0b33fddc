/**
 * Label-map overlays: BraTS labels coloured by the region they add (edema → WT only, necrotic
 * core → TC, enhancing → ET), painted into an RGBA buffer once per slice.
 */

/** RGBA per label value; labels not listed are transparent. */
export const LABEL_COLOURS: Record<number, [number, number, number]> = {
  2: [46, 204, 64], // edema: whole tumour only — green
  1: [255, 65, 54], // necrotic / non-enhancing core: tumour core — red
  4: [255, 220, 0], // enhancing tumour — yellow
};

export const REGION_LEGEND = [
  { region: 'WT', label: 'edema (WT)', colour: LABEL_COLOURS[2]! },
  { region: 'TC', label: 'core (TC)', colour: LABEL_COLOURS[1]! },
  { region: 'ET', label: 'enhancing (ET)', colour: LABEL_COLOURS[4]! },
] as const;

const lut = new Uint32Array(256);
function lutFor(alpha: number): Uint32Array {
  for (let v = 0; v < 256; v++) {
    const c = LABEL_COLOURS[v];
    // ImageData is RGBA in memory; a little-endian Uint32 reads it as ABGR.
    lut[v] = c ? ((Math.round(alpha * 255) << 24) | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0 : 0;
  }
  return lut;
}

/**
 * Paints one slice of `labels` into `out` (nx·ny RGBA pixels). `outline` keeps only the pixels
 * on a region boundary, so a ground truth drawn under a prediction stays readable.
 */
export function paintLabels(out: Uint32Array, labels: Uint8Array, offset: number, nx: number, ny: number, alpha: number, outline: boolean): void {
  const colours = lutFor(alpha);
  for (let y = 0; y < ny; y++) {
    const row = offset + y * nx;
    for (let x = 0; x < nx; x++) {
      const value = labels[row + x]!;
      if (value === 0) continue;
      if (outline) {
        const inner =
          x > 0 && x < nx - 1 && y > 0 && y < ny - 1 &&
          labels[row + x - 1] === value && labels[row + x + 1] === value &&
          labels[row + x - nx] === value && labels[row + x + nx] === value;
        if (inner) continue;
      }
      out[y * nx + x] = colours[value]!;
    }
  }
}
