/**
 * The display conventions every output shares: label and region colours, slice numbering and
 * how a slice where a region is absent from both masks is shown. The settings, the renderer
 * (overlay, Dice chart, training curves) and the reports (HTML, PDF, CSV, JSON) all import
 * them from here, so the app and a report printed from it cannot disagree.
 *
 * Plain TypeScript without Node or DOM imports: the renderer bundles it.
 */
import type { Settings } from './api.ts';
import { POSTPROCESS_DEFAULTS } from './model/postprocess.ts';

/** The label colours the user can change in Settings (the keys are Settings['labelColors']'s). */
export interface LabelColours {
  necrotic: string;
  edema: string;
  enhancing: string;
}

/**
 * BraTS label colours as ITK-SNAP and most BraTS viewers show them: necrotic core red, edema
 * green, enhancing tumour yellow.
 */
export const DEFAULT_LABEL_COLOURS: Readonly<LabelColours> = Object.freeze({ necrotic: '#ff4136', edema: '#2ecc40', enhancing: '#ffdc00' });

/** RANO's long and perpendicular diameters as the reports draw them: colours none of the label colours use. */
export const RANO_LINE_COLOURS = Object.freeze({ long: '#00e5ff', perp: '#ff4fd8' });

/**
 * The settings before the user changes any: the service's store starts from them and the
 * renderer shows them until the service's answer arrives.
 */
export const DEFAULT_SETTINGS: Settings = {
  device: 'auto',
  overlayOpacity: 0.5,
  overlayMode: 'fill',
  labelColors: { ...DEFAULT_LABEL_COLOURS },
  viewConvention: 'radiological',
  postprocessing: { ...POSTPROCESS_DEFAULTS },
  precision: 'float32',
};

/** The BraTS labels in the order the legends list them. */
export const BRATS_LABEL_INFO = [
  { value: 1, key: 'necrotic', short: 'NCR', name: 'necrotic core' },
  { value: 2, key: 'edema', short: 'ED', name: 'edema' },
  { value: 4, key: 'enhancing', short: 'ET', name: 'enhancing tumour' },
] as const satisfies readonly { value: number; key: keyof LabelColours; short: string; name: string }[];

/**
 * A nested region is drawn in the colour of the label it adds to the region inside it: WT adds
 * edema (green), TC adds necrotic core (red), ET is the enhancing tumour (yellow). A binary
 * model's foreground is label 1, painted like the necrotic core.
 */
export const REGION_LABEL: Readonly<Record<string, keyof LabelColours>> = Object.freeze({ WT: 'edema', TC: 'necrotic', ET: 'enhancing', foreground: 'necrotic' });

/** What each region is made of, for legends. */
export const REGION_DESCRIPTION: Readonly<Record<string, string>> = Object.freeze({
  WT: 'whole tumour (labels 1, 2, 4)',
  TC: 'tumour core (labels 1, 4)',
  ET: 'enhancing tumour (label 4)',
  foreground: 'foreground (label > 0)',
});

const FALLBACK_PALETTE = ['#1f77b4', '#9467bd', '#17becf', '#8c564b'];

/** CSS hex colour of a region (see REGION_LABEL). */
export function regionColourHex(region: string, colours: LabelColours = DEFAULT_LABEL_COLOURS, index = 0): string {
  const label = REGION_LABEL[region];
  return label ? colours[label] : FALLBACK_PALETTE[index % FALLBACK_PALETTE.length]!;
}

/** '#rgb' or '#rrggbb' → [r, g, b]; anything else is an error naming the value. */
export function hexToRgb(hex: string): [number, number, number] {
  const short = /^#([0-9a-f])([0-9a-f])([0-9a-f])$/i.exec(hex);
  const full = short ? `#${short[1]}${short[1]}${short[2]}${short[2]}${short[3]}${short[3]}` : hex;
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(full);
  if (!m) throw new Error(`colour ${JSON.stringify(hex)} is not a #rrggbb hex colour`);
  return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
}

export function rgbToHex(c: readonly number[]): string {
  return `#${c.map((v) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, '0')).join('')}`;
}

export function regionColourRgb(region: string, colours: LabelColours = DEFAULT_LABEL_COLOURS, index = 0): [number, number, number] {
  return hexToRgb(regionColourHex(region, colours, index));
}

// ---------------------------------------------------------------------------------------------
// Slice numbering

/**
 * Slices are shown 1-based, as radiology viewers do ("slice 41/155"): the number is the voxel
 * index along the third (axial) axis plus one. Machine interfaces (the API, data-slice
 * attributes) keep the 0-based index; every text a person reads uses sliceNumber().
 */
export const sliceNumber = (index: number): number => index + 1;
export const sliceIndex = (number: number): number => number - 1;

export const SLICE_NUMBERING = 'Axial slices are numbered from 1 (voxel index along the third axis + 1), as in the viewer.';

/** "slice 41/155" */
export function sliceLabel(index: number, count?: number): string {
  return count ? `slice ${sliceNumber(index)}/${count}` : `slice ${sliceNumber(index)}`;
}

/**
 * Axis ticks for slices 1…count, as slice numbers: 1, then round multiples of a 1-2-5 step, and
 * `count` itself when it is not too close to the last multiple. App chart and report charts
 * both use these, so their axes read the same.
 */
export function sliceTicks(count: number, maxTicks = 8): number[] {
  if (count <= 1) return [1];
  const step = niceStep(count - 1, maxTicks);
  const ticks = [1];
  for (let t = step; t <= count; t += step) if (t - ticks.at(-1)! >= step / 2) ticks.push(t);
  if (count - ticks.at(-1)! >= step / 2) ticks.push(count);
  return ticks;
}

export function niceStep(range: number, maxTicks: number): number {
  const raw = Math.max(range, 1e-9) / maxTicks;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

/** Ticks for a value axis from `lo` to `hi` (training curves): round values, at most `maxTicks`. */
export function valueTicks(lo: number, hi: number, maxTicks = 4): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, maxTicks);
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

// ---------------------------------------------------------------------------------------------
// Slices where a region is absent

/**
 * A region absent from both the prediction and the ground truth on a slice has nothing to
 * score there: BraTS's empty rule would give Dice 1, and sixty such slices at 1 make a chart
 * unreadable and the mean meaningless. Such a slice is not scored for that region: the charts
 * leave a gap, tables print ABSENT_TEXT, the CSV leaves the scores empty with status ABSENT_STATUS.
 */
export function regionPresent(counts: { tp: number; fp: number; fn: number }): boolean {
  return counts.tp + counts.fp + counts.fn > 0;
}

/** A slice's Dice of a region under the rule: null when the region is absent from both masks. */
export function scoredDice(metrics: { tp: number; fp: number; fn: number; dice: number } | undefined): number | null {
  return metrics && regionPresent(metrics) ? metrics.dice : null;
}

export const ABSENT_TEXT = 'absent';
export const ABSENT_STATUS = 'absent';
export const SCORED_STATUS = 'scored';

/** The legend line of every Dice chart (app, HTML, PDF): the empty-slice rule in words. */
export const EMPTY_SLICE_RULE = 'Gap: region absent from both prediction and ground truth on that slice (not scored).';

/** The same rule for the chart of predicted volume per slice (no ground truth to compare with). */
export const EMPTY_SLICE_RULE_PREDICTION = 'Gap: region absent from the prediction on that slice.';

// ---------------------------------------------------------------------------------------------
// Exported file names

/**
 * A label map's file name: a prediction is `<case>_pred.nii.gz` / `<case>_pred_seg.dcm`, so it is
 * never mistaken for BraTS's ground truth `<case>_seg.nii.gz` (which a ground-truth export keeps).
 */
export function maskFileName(stem: string, format: 'nifti' | 'dicom-seg', source: 'prediction' | 'groundTruth' = 'prediction'): string {
  const names = source === 'prediction' ? { nifti: '_pred.nii.gz', 'dicom-seg': '_pred_seg.dcm' } : { nifti: '_seg.nii.gz', 'dicom-seg': '_seg.dcm' };
  return `${stem}${names[format]}`;
}
