import type { LabelColours } from '../conventions.ts';
import type { RegionResults, RegionSummary } from '../metrics/evaluate.ts';
import type { TumourDescription } from '../metrics/describe.ts';
import type { LesionWiseRegion } from '../metrics/lesion-wise.ts';

/** What produced the segmentation: printed in every report so a result can be reproduced. */
export interface ReportSettings {
  /** what the app's model list calls the model (e.g. "bundled default model"); absent: the checkpoint's path says it */
  model?: string;
  checkpoint: string;
  preset: string;
  /** execution provider that ran, e.g. 'cpu', 'cuda' */
  device: string;
  /** model input side in pixels (e.g. 352) */
  inputSize: number;
  /** test-time augmentation in words (run-settings.ts describeTta); absent: not recorded */
  testTimeAugmentation?: string;
  /** probability threshold of the mask */
  threshold: number;
  /** region names, in display order */
  regions: string[];
  /** the label colours the overlays and charts use (the app's Settings; default conventions.ts's) */
  labelColours: LabelColours;
  /** anything else worth recording (version, commit, ...) */
  extra?: Record<string, string | number | boolean>;
  /** how the run departed from the model's own settings: sequence substitutions, defaults assumed (run-settings.ts runNotes) */
  notes?: string[];
  /** post-processing applied to the prediction, in order */
  postprocessing?: PostprocessingRecord[];
}

/**
 * One thumbnail: an axial slice in grey plus label maps, composed into a picture by the writers.
 * Pixels are x fastest, in the radiological view (patient's right on the left, anterior at the top)
 * for a grid aligned with the body axes (thumbnail.ts radiologicalFlips).
 */
export interface ReportThumbnail {
  /** 0-based axial index (shown 1-based, conventions.ts) */
  slice: number;
  /** e.g. "worst WT Dice" */
  caption: string;
  /**
   * Picture size in pixels: the crop resampled to square pixels when the in-plane spacing is not
   * isotropic, so a picture always has the slice's true aspect ratio.
   */
  width: number;
  height: number;
  /** windowed intensities 0…255 */
  grey: Uint8Array;
  /** predicted labels */
  pred: Uint8Array;
  /** ground-truth labels, when known */
  gt?: Uint8Array;
  /** RANO diameters drawn on the prediction, in picture pixels (x right, y down; pixel centres at .5) */
  lines?: { long: [[number, number], [number, number]]; perp: [[number, number], [number, number]] };
}

/** The tumour description of the prediction (metrics/describe.ts, as `sam2unet measure` gives it), for the report. */
export interface TumourSection {
  description: TumourDescription;
  /** the key axial slice of each measurable lesion with its RANO lines; `lesion` is its 0-based index in description.lesions */
  keySlices: { lesion: number; thumbnail: ReportThumbnail }[];
  /** BraTS 2023 lesion-wise Dice and HD95 per region, with ground truth */
  lesionWise?: { dilation: number; threshold_mm3: number; regions: Record<string, LesionWiseRegion> };
}

export interface SliceEntry {
  /** 0-based axial index (shown 1-based, conventions.ts) */
  slice: number;
  metrics: RegionResults;
}

/** What a label map holds, with or without ground truth to compare it with. */
export interface LabelMapSummary {
  /** millilitres per BraTS label by short name (NCR 1, ED 2, ET 4); empty for a binary map */
  labelVolumesMl: Record<string, number>;
  /** millilitres per region (WT, TC, ET or foreground) */
  regionVolumesMl: Record<string, number>;
  /** first and last 0-based axial index holding any label, or null when the map is empty */
  sliceRange: [number, number] | null;
  /** 26-connected components of the whole tumour (every label > 0), largest first, in ml */
  lesionVolumesMl: number[];
}

/** Predicted volume of each region on one axial slice (the slab of one slice thickness), ml. */
export interface SliceVolumes {
  /** 0-based axial index */
  slice: number;
  ml: Record<string, number>;
}

/** A post-processing step applied to the prediction, as the segmentation recorded it. */
export interface PostprocessingRecord {
  /** e.g. "small components removed" */
  name: string;
  /** what it did, in words, with its parameters (e.g. "components below 0.1 ml dropped: 3, 0.21 ml") */
  description: string;
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
  thumbnails: ReportThumbnail[];
  /** what the predicted labels hold */
  prediction: LabelMapSummary;
  /** the same of the ground truth, when there is one */
  groundTruth?: LabelMapSummary;
  /** predicted volume per region on every axial slice (the chart without ground truth) */
  sliceVolumes: SliceVolumes[];
  /** volumes, lesions with RANO, multifocality and laterality of the prediction */
  tumour: TumourSection;
  /** the axial index grows towards the patient's superior (true), inferior (false), or the axis is oblique (null) */
  slicesAscendSuperior: boolean | null;
}
