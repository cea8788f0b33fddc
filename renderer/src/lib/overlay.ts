/**
 * Label-map overlays: the colour of each BraTS label (from the settings), the difference map
 * between a prediction and the ground truth, and painting one plane into RGBA pixels.
 */
import type { Settings } from '../../../main/core/api.ts';

export const OVERLAY_SOURCES = ['prediction', 'groundTruth', 'difference'] as const;
export type OverlaySource = (typeof OVERLAY_SOURCES)[number];

/**
 * Codes of the difference map, outside the BraTS label range. A voxel is a false positive when
 * the prediction marks tumour where the ground truth has none, a false negative the reverse,
 * and a label mismatch when both mark tumour with different labels.
 */
export const DIFF = { falsePositive: 250, falseNegative: 251, mismatch: 252 } as const;
const DIFF_COLOURS: Record<number, [number, number, number]> = {
  [DIFF.falsePositive]: [255, 0, 255],
  [DIFF.falseNegative]: [0, 200, 255],
  [DIFF.mismatch]: [255, 255, 255],
};

export const LEGEND: Record<OverlaySource, { key: string; label: string }[]> = {
  prediction: [
    { key: 'necrotic', label: 'necrotic core (1)' },
    { key: 'edema', label: 'edema (2)' },
    { key: 'enhancing', label: 'enhancing (4)' },
  ],
  groundTruth: [],
  difference: [
    { key: 'fp', label: 'false positive' },
    { key: 'fn', label: 'false negative' },
    { key: 'mismatch', label: 'wrong label' },
  ],
};
LEGEND.groundTruth = LEGEND.prediction;

/** CSS colour of a legend key, for the legend swatches. */
export function legendColour(key: string, colours: Settings['labelColors']): string {
  const rgb = (c: [number, number, number]) => `rgb(${c.join(',')})`;
  if (key === 'fp') return rgb(DIFF_COLOURS[DIFF.falsePositive]!);
  if (key === 'fn') return rgb(DIFF_COLOURS[DIFF.falseNegative]!);
  if (key === 'mismatch') return rgb(DIFF_COLOURS[DIFF.mismatch]!);
  return colours[key as keyof Settings['labelColors']];
}

let probe: CanvasRenderingContext2D | null = null;
/** Any CSS colour → [r, g, b] (the browser parses it; an invalid colour gives black). */
export function parseColour(css: string): [number, number, number] {
  probe ??= document.createElement('canvas').getContext('2d')!;
  probe.fillStyle = '#000000';
  probe.fillStyle = css;
  const normalised = String(probe.fillStyle);
  const hex = /^#([0-9a-f]{6})$/i.exec(normalised);
  if (hex) {
    const n = parseInt(hex[1]!, 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const parts = /rgba?\(([^)]+)\)/.exec(normalised)?.[1]?.split(',').map(Number) ?? [0, 0, 0];
  return [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
}

/**
 * Packed RGBA per label value (ImageData memory order read as a little-endian Uint32: ABGR);
 * `hidden` labels (the editor's per-label visibility) are transparent.
 */
export function labelLut(colours: Settings['labelColors'], opacity: number, hidden: readonly number[] = []): Uint32Array {
  const lut = new Uint32Array(256);
  const a = Math.round(Math.max(0, Math.min(1, opacity)) * 255);
  const pack = ([r, g, b]: [number, number, number]) => ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
  if (!hidden.includes(1)) lut[1] = pack(parseColour(colours.necrotic));
  if (!hidden.includes(2)) lut[2] = pack(parseColour(colours.edema));
  if (!hidden.includes(4)) lut[4] = pack(parseColour(colours.enhancing));
  for (const [code, colour] of Object.entries(DIFF_COLOURS)) lut[Number(code)] = pack(colour);
  return lut;
}

/** Difference codes of one plane (both inputs already extracted for the same plane). */
export function differencePlane(prediction: ArrayLike<number>, truth: ArrayLike<number>, out: Uint8Array): Uint8Array {
  for (let i = 0; i < out.length; i++) {
    const p = prediction[i]!;
    const t = truth[i]!;
    out[i] = p === t ? 0 : t === 0 ? DIFF.falsePositive : p === 0 ? DIFF.falseNegative : DIFF.mismatch;
  }
  return out;
}

/**
 * Paints a plane of label codes into `out` (width·height RGBA pixels). `outline` keeps only the
 * pixels on a region boundary, so the image under a large region stays readable.
 */
export function paintPlane(out: Uint32Array, labels: Uint8Array, width: number, height: number, lut: Uint32Array, outline: boolean): void {
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const value = labels[row + x]!;
      if (value === 0) continue;
      if (outline) {
        const inner =
          x > 0 && x < width - 1 && y > 0 && y < height - 1 &&
          labels[row + x - 1] === value && labels[row + x + 1] === value &&
          labels[row + x - width] === value && labels[row + x + width] === value;
        if (inner) continue;
      }
      out[row + x] = lut[value]!;
    }
  }
}
