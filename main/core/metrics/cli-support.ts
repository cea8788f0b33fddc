/** Helpers of `sam2unet eval`: label maps from NIfTI volumes, and the readable table. */
import { FileError, UserError } from '../errors.ts';
import type { Geometry, Volume } from '../io/volume.ts';
import type { RegionResults } from './evaluate.ts';
import type { LesionWiseRegion } from './lesion-wise.ts';
import type { RegionKind } from './regions.ts';

/**
 * The volume's real values as uint8 labels. Refuses 4-D files, colour images, and values that are
 * not integers 0…255 (a probability map is not a mask: threshold it first).
 */
export function labelMapOf(volumes: Volume[], file: string): { volume: Volume; labels: Uint8Array } {
  if (volumes.length !== 1) throw new FileError(file, `has ${volumes.length} frames; a mask must be a single 3-D volume`);
  const volume = volumes[0]!;
  if (volume.components !== 1) throw new FileError(file, 'is a colour image, not a label map');
  if (volume.data instanceof Uint8Array && !volume.isScaled) return { volume, labels: volume.data };
  const labels = new Uint8Array(volume.data.length);
  for (let i = 0; i < labels.length; i++) {
    const v = volume.value(i);
    if (!Number.isInteger(v) || v < 0 || v > 255) {
      throw new FileError(file, `voxel ${i} has value ${v}; a label map holds integers 0…255 (threshold a probability map first)`);
    }
    labels[i] = v;
  }
  return { volume, labels };
}

export function describeGrid(g: Geometry): string {
  const round = (v: number): number => +v.toFixed(4);
  return `${g.dims.join('×')} voxels of ${g.spacing.map(round).join('×')} mm at origin (${g.origin.map(round).join(', ')})`;
}

export function formatMetricsTable(metrics: RegionResults, regions: readonly string[], kind: RegionKind): string {
  const header = ['Region', 'Dice', 'IoU', 'Sensitivity', 'Specificity', 'HD95 (mm)', 'Volume (ml)', 'GT vol. (ml)'];
  const rows = regions.map((r) => {
    const m = metrics[r]!;
    return [r, m.dice.toFixed(4), m.iou.toFixed(4), m.sensitivity.toFixed(4), m.specificity.toFixed(4), m.hd95.toFixed(2), m.volumeMl.toFixed(2), m.gtVolumeMl.toFixed(2)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `Regions: ${kind === 'brats' ? 'BraTS (WT = 1+2+4, TC = 1+4, ET = 4)' : 'binary (foreground = label > 0)'}`,
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
  ].join('\n');
}

/** A non-negative integer option, or its default when absent. */
export function integerOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UserError(`--${name} must be a whole number ≥ 0, not "${String(value)}"`);
  return n;
}

export function formatLesionWiseTable(results: Record<string, LesionWiseRegion>, regions: readonly string[], dilation: number, threshold: number): string {
  const header = ['Region', 'Lesion-wise Dice', 'Lesion-wise HD95 (mm)', 'TP', 'FP', 'FN'];
  const rows = regions.map((r) => {
    const m = results[r]!;
    return [r, m.dice.toFixed(4), m.hd95.toFixed(2), String(m.tp), String(m.fp), String(m.fn)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `Lesion-wise (BraTS 2023): dilation ${dilation}, ground-truth lesions above ${threshold} mm³; misses and false positives score Dice 0, HD95 374`,
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
  ].join('\n');
}
