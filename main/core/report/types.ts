import type { RegionResults, RegionSummary } from '../metrics/evaluate.ts';

/** What produced the segmentation: printed in every report so a result can be reproduced. */
export interface ReportSettings {
  checkpoint: string;
  preset: string;
  /** execution provider that ran, e.g. 'cpu', 'cuda' */
  device: string;
  /** model input side in pixels (e.g. 352) */
  inputSize: number;
  /** probability threshold of the mask */
  threshold: number;
  /** region names, in display order */
  regions: string[];
  /** anything else worth recording (version, commit, ...) */
  extra?: Record<string, string | number | boolean>;
}

/**
 * One thumbnail: an axial slice in grey plus label maps, composed into a picture by the writers.
 * Pixels are x fastest, row 0 at the top (radiological view for an LPS-aligned volume).
 */
export interface Thumbnail {
  slice: number;
  /** e.g. "worst WT Dice" */
  caption: string;
  width: number;
  height: number;
  /** windowed intensities 0…255 */
  grey: Uint8Array;
  /** predicted labels */
  pred: Uint8Array;
  /** ground-truth labels, when known */
  gt?: Uint8Array;
}

export interface SliceEntry {
  slice: number;
  metrics: RegionResults;
}

export interface MetricsReport {
  study: string;
  /** ISO 8601 time the report was made */
  createdAt: string;
  settings: ReportSettings;
  /** grid of the evaluated volume: [nx, ny, nz] and spacing in mm */
  dims: [number, number, number];
  spacing: [number, number, number];
  /** 'brats' (WT/TC/ET from labels 1, 2, 4) or 'binary' (foreground) */
  regionKind: 'brats' | 'binary';
  /** per-slice 2D metrics per region (slices without ground truth or prediction may be left out) */
  perSlice: SliceEntry[];
  /** 3D metrics per region; absent when there is no ground truth */
  perVolume?: RegionResults;
  /** per-region means over slices (metrics/summarise) */
  summary?: Record<string, RegionSummary>;
  /** durations in milliseconds, by step name (e.g. load, inference, metrics, total) */
  timings: Record<string, number>;
  thumbnails: Thumbnail[];
}
