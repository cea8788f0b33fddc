/**
 * THE service interface the renderer sees (architecture.md: renderer → api.ts ← app | web | cli).
 * One definition of every request, reply and event, with a small runtime validator for each
 * message that crosses a process or network boundary, and the binary frame codec the web bridge
 * uses to carry typed arrays without base64.
 *
 * This file is imported by the renderer (browser), the Electron main and preload, and the web
 * server: it must stay free of Node and DOM imports.
 */

import type { StudyMetadata } from './io/study.ts';
import type { TumourDescription } from './metrics/describe.ts';

export type Vec3 = [number, number, number];

/** BraTS evaluation regions: whole tumour (1+2+4), tumour core (1+4), enhancing tumour (4). */
export const REGIONS = ['WT', 'TC', 'ET'] as const;
export type Region = (typeof REGIONS)[number];
/** Dice per region; null when the region is absent from both masks (nothing to score). */
export type RegionDice = Record<Region, number | null>;

export const EXPORT_FORMATS = ['nifti', 'dicom-seg', 'report'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export const MASK_SOURCES = ['prediction', 'groundTruth'] as const;
export type MaskSource = (typeof MASK_SOURCES)[number];

export interface DisplayWindow {
  center: number;
  width: number;
}

export interface SequenceSummary {
  name: string;
  dtype: string;
  /** 1: greyscale; 3: colour (RGB or YCbCr in the file, sent as RGB by getVolume) */
  components: 1 | 3;
  /** real-value range (slope and intercept applied); for colour, of the RGB samples */
  range: [number, number];
  /** a default window from robust percentiles of the non-zero voxels; for colour, the full range of the stored bits (applied to each channel) */
  window: DisplayWindow;
  /** what the file calls it: the DICOM SeriesDescription, or the BraTS sequence / NIfTI file name */
  description?: string;
  /** DICOM: the SeriesInstanceUID it was read from */
  seriesId?: string;
}

export type { StudyMetadata } from './io/study.ts';

/** The sequence names a multi-sequence study uses (BraTS's), in display order, with their labels. */
export const SEQUENCE_ROLES = ['t1', 't1ce', 't2', 'flair'] as const;
export type SequenceRole = (typeof SEQUENCE_ROLES)[number];
export const SEQUENCE_ROLE_LABELS: Record<SequenceRole, string> = { t1: 'T1', t1ce: 'T1 post-contrast', t2: 'T2', flair: 'FLAIR' };

/** One DICOM series of a study and the sequence it plays (the mapping shown, and changeable, in the study list). */
export interface SeriesRoleSummary {
  seriesId: string;
  description: string;
  seriesNumber?: number;
  /** the sequence of the study it is now */
  role: SequenceRole;
  /** what recognition made of it, and from what */
  recognised: SequenceRole | null;
  reason: string;
  /** resampled onto the study's grid (the FLAIR's) through world coordinates */
  resampled: boolean;
}

export interface StudySummary {
  id: string;
  name: string;
  kind: string;
  source: string;
  dims: Vec3;
  spacing: Vec3;
  origin: Vec3;
  direction: number[];
  sequences: SequenceSummary[];
  hasGroundTruth: boolean;
  /** whether segment() accepts this study (colour images are not MRI), and why not */
  segmentable: Availability;
  metadata?: StudyMetadata;
  /** DICOM: the series the sequences come from, with their recognised and current roles */
  series?: SeriesRoleSummary[];
  /** remarks about how the study was assembled (resampling, series kept apart) */
  notes?: string[];
}

export interface StudyRequest {
  studyId: string;
}
export interface SetSequenceRolesRequest {
  studyId: string;
  /** SeriesInstanceUID → sequence role; roles must stay distinct (a role given away is swapped) */
  roles: Record<string, SequenceRole>;
}
export interface GetTagsRequest {
  studyId: string;
  sequence: string;
}
/** One element of a DICOM dataset, for the tag viewer; long and binary values are shortened. */
export interface DicomTag {
  /** "(0010,0010)" */
  tag: string;
  vr: string;
  /** the dictionary keyword, or '' for private and unknown tags */
  keyword: string;
  value: string;
  /** SQ: one list of elements per item */
  items?: DicomTag[][];
}
export interface DicomTags {
  /** the file the elements were read from (the series' first slice along its normal) */
  file: string;
  tags: DicomTag[];
}

export interface OpenStudyRequest {
  /** a file or folder path on the machine running the services */
  path: string;
}
export interface OpenStudyResult {
  studies: StudySummary[];
  /** reader remarks worth showing (skipped files, assumptions) */
  notes: string[];
}

export type VoxelData = Int16Array | Uint16Array | Uint8Array | Int8Array | Float32Array | Int32Array | Uint32Array | Float64Array;

export interface GetVolumeRequest {
  studyId: string;
  sequence: string;
}
/**
 * A whole volume, x fastest; real value = data[i] · slope + intercept. Sent once per sequence.
 * Colour volumes (components 3) are interleaved RGB, R G B per voxel, in the stored bit depth
 * (8 or 16 bits), slope 1 and intercept 0.
 */
export interface VolumeData {
  studyId: string;
  sequence: string;
  dims: Vec3;
  spacing: Vec3;
  origin: Vec3;
  direction: number[];
  slope: number;
  intercept: number;
  window: DisplayWindow;
  components: 1 | 3;
  data: VoxelData;
}

export interface GetLabelsRequest {
  studyId: string;
  source: MaskSource;
}
/** A label map on the study grid (BraTS labels 0, 1, 2, 4), or null when there is none. */
export interface LabelData {
  studyId: string;
  source: MaskSource;
  dims: Vec3;
  data: Uint8Array;
}

/**
 * The tumour description of one of a study's masks (metrics/describe.ts), with each lesion's RANO
 * lines in voxel indices (i, j, k) so the axial view can draw them; null entries for lesions
 * without an enhancing part.
 */
export interface TumourView {
  studyId: string;
  source: MaskSource;
  description: TumourDescription;
  ranoLines: ({ long: [Vec3, Vec3]; perp: [Vec3, Vec3] } | null)[];
}

export const MODEL_KINDS = ['bundled', 'file', 'trained'] as const;
export const RUN_SETTING_SOURCES = ['user', 'checkpoint', 'bundled', 'default'] as const;
/** How a model must be run (main/core/model/run-settings.ts), each setting with where it came from. */
export interface ModelRunInfo {
  /** input [height, width] */
  size: [number, number];
  /** the sequence each input channel takes, in channel order */
  channels: string[];
  regions: 'brats' | 'binary';
  from: Record<'size' | 'channels' | 'regions', (typeof RUN_SETTING_SOURCES)[number]>;
}
export interface ModelInfo {
  /** what SegmentRequest.checkpoint and TrainRequest.model take: the checkpoint's path */
  id: string;
  name: string;
  kind: (typeof MODEL_KINDS)[number];
  /** what it segments, e.g. ['WT', 'TC', 'ET'] */
  regions: string[];
  description: string;
  run: ModelRunInfo;
}

export interface AddModelRequest {
  /** a SAM2-UNet checkpoint (.pth, .pt or .safetensors) */
  path: string;
}

export const TRAIN_STRATEGIES = ['adapter', 'lora', 'full'] as const;
export type TrainStrategy = (typeof TRAIN_STRATEGIES)[number];

export interface TrainRequest {
  /** labelled studies: BraTS case folders (with <case>_seg), or folders holding them */
  data: string[];
  /** studies scored (whole-volume Dice) after every epoch */
  val?: string[];
  /** the model to start from (a ModelInfo id); default the bundled model */
  model?: string;
  strategy: TrainStrategy;
  /** give steps or epochs; default 1 epoch */
  steps?: number;
  epochs?: number;
  batch?: number;
  lr?: number;
  /** model input size in pixels, a multiple of 32; default the starting model's */
  size?: number;
  loraRank?: number;
  loraAlpha?: number;
  /** the run's name: its folder in the training folder; with resume, the run to continue */
  name?: string;
  resume?: boolean;
}

export interface TrainingRun {
  name: string;
  /** where its checkpoints and logs are */
  dir: string;
  /** the last step a checkpoint holds (resume continues from there) */
  step: number;
  /** the finished model, when the run completed */
  model?: string;
}

/** What a folder entry would open as, judged from names only (no file is read). */
export const STUDY_HINTS = ['brats', 'dicom', 'nifti'] as const;
export type StudyHint = (typeof STUDY_HINTS)[number];

export interface DirectoryEntry {
  name: string;
  /** absolute path on the machine running the services (what openStudy and listDirectory take) */
  path: string;
  kind: 'directory' | 'file';
  /** set when the entry looks like a study: a BraTS case folder, DICOM files, a NIfTI file */
  study?: StudyHint;
}

export interface ListDirectoryRequest {
  /** a folder the services may read; absent: the places they may read from (their read roots) */
  path?: string;
}
export interface DirectoryListing {
  /** the folder listed; null for the list of places */
  path: string | null;
  /** the enclosing folder when it may be read too; null at a root (go back to the places) */
  parent: string | null;
  entries: DirectoryEntry[];
  /** the folder has more entries than are listed */
  truncated: boolean;
}

export interface RecentStudy {
  path: string;
  name: string;
  openedAt: string;
}

export const OVERLAY_MODES = ['fill', 'outline'] as const;
/** radiological: the patient's left on screen right in axial and coronal views; neurological: on screen left */
export const VIEW_CONVENTIONS = ['radiological', 'neurological'] as const;
export type ViewConvention = (typeof VIEW_CONVENTIONS)[number];
export interface Settings {
  /** execution provider for segmentation and training ('auto' picks the best present) */
  device: string;
  overlayOpacity: number;
  overlayMode: (typeof OVERLAY_MODES)[number];
  /** CSS colours of the BraTS labels: 1 necrotic core, 2 edema, 4 enhancing tumour */
  labelColors: { necrotic: string; edema: string; enhancing: string };
  /** how the views lay out left and right */
  viewConvention: ViewConvention;
  /** 3D post-processing of predictions (model/postprocess.ts), volumes in ml, 0 = that step off; a segment request may override them */
  postprocessing: { minComponentMl: number; minEtMl: number };
  /**
   * the inference graph's arithmetic (onnx/quantize.ts): float32 (the default), int8 (integer
   * kernels on the CPU, about half the time) or float16 (GPU providers)
   */
  precision: (typeof PRECISION_CHOICES)[number];
}

/** Settings['precision']'s choices (onnx/quantize.ts PRECISIONS; api.ts stays free of the engine). */
export const PRECISION_CHOICES = ['float32', 'int8', 'float16'] as const;

export interface ThumbnailRequest {
  studyId: string;
  sequence: string;
  /** longest side in pixels */
  size: number;
}
/** The middle axial slice, windowed to 8-bit grey, row-major (x fastest), for the study list. */
export interface Thumbnail {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface Availability {
  available: boolean;
  /** why not, in words the user can act on */
  reason?: string;
}

export interface Capabilities {
  mode: 'electron' | 'web';
  segmentation: Availability;
  exports: Record<ExportFormat, Availability>;
  /** Electron: studies are picked and exports placed through native dialogs; web: typed paths and the server's export folder */
  dialogs: boolean;
  devices: string[];
}

export interface SegmentRequest {
  studyId: string;
  checkpoint?: string;
  device?: string;
  /**
   * the study's sequence fed to each model channel, in channel order ('' = the sequence the model
   * takes there); needed when the study lacks one (a substitution, written into the report)
   */
  channels?: string[];
  /**
   * 3D post-processing (model/postprocess.ts), volumes in ml: whole-tumour components smaller than
   * minComponentMl are removed, enhancing tumour smaller than minEtMl in total becomes necrosis (1);
   * 0 switches a step off, absent = the defaults. The streamed slices are the raw prediction; when
   * the job ends, the slices post-processing changed are sent again (sliceResult) and the prediction,
   * exports and report are the post-processed label map.
   */
  minComponentMl?: number;
  minEtMl?: number;
  /** the axial slice on screen (0-based): segmented first, then the slices outward from it (absent: index order) */
  focus?: number;
  /** the graph's arithmetic for this run (default: Settings.precision) */
  precision?: Settings['precision'];
}
/** The slice the user now looks at, for a running segmentation: the slices not yet done are reordered around it. */
export interface FocusSliceRequest {
  jobId: string;
  /** axial slice index, 0-based */
  index: number;
}
export interface JobStarted {
  jobId: string;
  slices: number;
}

export interface CancelRequest {
  jobId: string;
}

export interface ChooseExportPathRequest {
  studyId: string;
  format: ExportFormat;
  /** names the suggested file: a prediction is `<case>_pred.nii.gz`, ground truth `<case>_seg.nii.gz` (default prediction) */
  source?: MaskSource;
}

export interface ExportRequest {
  studyId: string;
  format: ExportFormat;
  source: MaskSource;
  /** Electron: a path returned by chooseExportPath (others are refused); web: ignored */
  path?: string;
}
export interface ExportResult {
  files: string[];
  /** web mode: where the browser can download the first file */
  downloadUrl?: string;
  /** web mode: where the browser opens each file, in the order of `files` (HTML and PDF are served to show, not to download) */
  urls?: string[];
}

export interface OpenExportRequest {
  /** one of the `files` an exportMasks reply listed */
  file: string;
}

export interface SliceResultEvent {
  type: 'sliceResult';
  jobId: string;
  studyId: string;
  index: number;
  /** label values (0, 1, 2, 4) of axial slice `index`, x fastest */
  mask: Uint8Array;
  dice: RegionDice | null;
  ms: number;
}
export interface ProgressEvent {
  type: 'progress';
  jobId: string;
  done: number;
  total: number;
  message?: string;
}
export interface DoneEvent {
  type: 'done';
  jobId: string;
  studyId: string;
  /** whole-volume Dice when ground truth is loaded */
  dice: RegionDice | null;
  ms: number;
  device: string;
}
export interface FailedEvent {
  type: 'failed';
  jobId: string;
  message: string;
}
export interface CancelledEvent {
  type: 'cancelled';
  jobId: string;
}
export interface TrainStartEvent {
  type: 'trainStart';
  jobId: string;
  run: string;
  totalSteps: number;
  stepsPerEpoch: number;
  resumedFrom: number;
  trainable: number;
  frozen: number;
  studies: number;
  slices: number;
}
export interface TrainStepEvent {
  type: 'trainStep';
  jobId: string;
  step: number;
  totalSteps: number;
  epoch: number;
  /** the summed structure loss of the three outputs */
  loss: number;
  lr: number;
  imagesPerSecond: number;
  etaSeconds: number;
}
export interface TrainValidationEvent {
  type: 'trainValidation';
  jobId: string;
  step: number;
  epoch: number;
  /** mean whole-volume Dice over the validation studies, per region */
  dice: Record<string, number>;
}
export interface TrainDoneEvent {
  type: 'trainDone';
  jobId: string;
  /** the trained model, ready to select for segmentation */
  model: ModelInfo;
  steps: number;
  ms: number;
}
export const MENU_ACTIONS = ['open', 'export', 'segment', 'train', 'toggleOverlay', 'settings'] as const;
export type MenuAction = (typeof MENU_ACTIONS)[number];
/** The desktop application menu (and its shortcuts) asking the renderer to act. */
export interface MenuEvent {
  type: 'menu';
  action: MenuAction;
}
export type ApiEvent =
  | SliceResultEvent
  | ProgressEvent
  | DoneEvent
  | FailedEvent
  | CancelledEvent
  | TrainStartEvent
  | TrainStepEvent
  | TrainValidationEvent
  | TrainDoneEvent
  | MenuEvent;

/**
 * The services. Every method takes exactly one request object (possibly empty) so that the wire
 * format is uniform: `{method, request}` → reply.
 */
export interface WorkstationApi {
  capabilities(request: Record<string, never>): Promise<Capabilities>;
  openStudy(request: OpenStudyRequest): Promise<OpenStudyResult>;
  /** forgets an open study and its results (a running segmentation of it is cancelled) */
  closeStudy(request: StudyRequest): Promise<{ closed: boolean }>;
  /** changes which DICOM series plays which sequence; the study's prediction is dropped (its inputs changed) */
  setSequenceRoles(request: SetSequenceRolesRequest): Promise<StudySummary>;
  /** the DICOM elements of the first slice (along the slice normal) of a sequence's series */
  getTags(request: GetTagsRequest): Promise<DicomTags>;
  getVolume(request: GetVolumeRequest): Promise<VolumeData>;
  getLabels(request: GetLabelsRequest): Promise<LabelData | null>;
  /** volumes, lesions, RANO diameters, multifocality and laterality of a mask; null when there is none */
  describeTumour(request: GetLabelsRequest): Promise<TumourView | null>;
  listModels(request: Record<string, never>): Promise<ModelInfo[]>;
  segment(request: SegmentRequest): Promise<JobStarted>;
  /** a running segmentation works outward from this slice from now on; false when the job is no longer running */
  focusSlice(request: FocusSliceRequest): Promise<{ focused: boolean }>;
  cancel(request: CancelRequest): Promise<{ cancelled: boolean }>;
  /** Electron: the native open dialog (files or folders); null when the user cancelled */
  chooseStudyPath(request: Record<string, never>): Promise<{ path: string } | null>;
  chooseExportPath(request: ChooseExportPathRequest): Promise<{ path: string } | null>;
  exportMasks(request: ExportRequest): Promise<ExportResult>;
  /** Electron: opens a file this app exported with the system's default application (HTML in the browser, PDF in the viewer) */
  openExport(request: OpenExportRequest): Promise<{ opened: boolean }>;
  getThumbnail(request: ThumbnailRequest): Promise<Thumbnail>;
  /** Electron: the native open dialog for a checkpoint file; null when the user cancelled */
  chooseModelPath(request: Record<string, never>): Promise<{ path: string } | null>;
  /** checks the checkpoint and adds it to the models list (remembered) */
  addModel(request: AddModelRequest): Promise<ModelInfo>;
  /** fine-tunes a model on labelled studies in a worker; trainStart/trainStep/trainValidation/trainDone events follow */
  train(request: TrainRequest): Promise<JobStarted>;
  /** earlier training runs (to resume, or to pick their model) */
  listTrainingRuns(request: Record<string, never>): Promise<TrainingRun[]>;
  recentStudies(request: Record<string, never>): Promise<RecentStudy[]>;
  /** a folder's entries for the file browser, only where the services may read (web: the server's read roots) */
  listDirectory(request: ListDirectoryRequest): Promise<DirectoryListing>;
  /** generates the sample study (a seeded phantom with ground truth) into the data folder once, then opens it */
  openSampleStudy(request: Record<string, never>): Promise<OpenStudyResult>;
  getSettings(request: Record<string, never>): Promise<Settings>;
  /** merges the given fields; returns the settings now in force (persisted) */
  updateSettings(request: Partial<Settings>): Promise<Settings>;
}

export type ApiMethod = keyof WorkstationApi;
export type ApiRequest<M extends ApiMethod> = Parameters<WorkstationApi[M]>[0];
export type ApiReply<M extends ApiMethod> = Awaited<ReturnType<WorkstationApi[M]>>;

/** What the renderer holds: the services plus the event stream (preload and web client both give this). */
export interface ClientApi extends WorkstationApi {
  onEvent(listener: (event: ApiEvent) => void): () => void;
  /** Electron only: opens a file or folder the user dropped on the window (browser mode has no paths for dropped files) */
  openDropped?(file: File): Promise<OpenStudyResult>;
}

/** Errors cross the boundary as plain data; `user` marks messages meant to be shown as they are. */
export interface WireError {
  name: string;
  message: string;
  user: boolean;
}
export type Reply<T = unknown> = { ok: true; value: T } | { ok: false; error: WireError };

// ---------------------------------------------------------------------------------------------
// Validators: small, hand-written, no dependency. A validator returns null when the value is
// valid, else a message naming the offending field.

export type Check = (value: unknown, at: string) => string | null;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

const MAX_STRING = 4096;
/** a folder listing stops here (and says so): enough for any study folder, small enough to send */
export const MAX_LISTED_ENTRIES = 5000;

/**
 * Keys no request may carry: merged into an object (settings, a record) they would reach its
 * prototype chain. Refused everywhere, even where any key is allowed.
 */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// own properties only: `key in table` is true for inherited names (toString, __proto__)
const own = (table: object, key: string): boolean => Object.prototype.hasOwnProperty.call(table, key);

export const v = {
  string(opts: { max?: number; nonEmpty?: boolean } = {}): Check {
    const max = opts.max ?? MAX_STRING;
    return (x, at) => {
      if (typeof x !== 'string') return `${at} must be a string`;
      if (x.length > max) return `${at} is longer than ${max} characters`;
      if (opts.nonEmpty && x.length === 0) return `${at} must not be empty`;
      if (x.includes('\0')) return `${at} contains a NUL character`;
      return null;
    };
  },
  number(opts: { int?: boolean; min?: number; max?: number } = {}): Check {
    return (x, at) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) return `${at} must be a finite number`;
      if (opts.int && !Number.isInteger(x)) return `${at} must be an integer`;
      if (opts.min !== undefined && x < opts.min) return `${at} must be ≥ ${opts.min}`;
      if (opts.max !== undefined && x > opts.max) return `${at} must be ≤ ${opts.max}`;
      return null;
    };
  },
  boolean(): Check {
    return (x, at) => (typeof x === 'boolean' ? null : `${at} must be a boolean`);
  },
  literal<T extends string>(values: readonly T[]): Check {
    return (x, at) => ((values as readonly unknown[]).includes(x) ? null : `${at} must be one of ${values.join(', ')}`);
  },
  nullable(inner: Check): Check {
    return (x, at) => (x === null ? null : inner(x, at));
  },
  array(item: Check, opts: { length?: number; max?: number } = {}): Check {
    return (x, at) => {
      if (!Array.isArray(x)) return `${at} must be an array`;
      if (opts.length !== undefined && x.length !== opts.length) return `${at} must have ${opts.length} items`;
      if (opts.max !== undefined && x.length > opts.max) return `${at} has more than ${opts.max} items`;
      for (let i = 0; i < x.length; i++) {
        const problem = item(x[i], `${at}[${i}]`);
        if (problem) return problem;
      }
      return null;
    };
  },
  typedArray(ctors: readonly (abstract new (...args: any[]) => ArrayBufferView)[]): Check {
    return (x, at) => (ctors.some((c) => x instanceof c) ? null : `${at} must be a ${ctors.map((c) => c.name).join(' or ')}`);
  },
  /** Exact shape: unknown keys are refused, `optional` keys may be missing (not null). */
  object(required: Record<string, Check>, optional: Record<string, Check> = {}): Check {
    return (x, at) => {
      if (!isPlainObject(x)) return `${at} must be an object`;
      for (const key of Object.keys(x)) {
        if (PROTOTYPE_KEYS.has(key)) return `${at}.${key} is not allowed`;
        if (!own(required, key) && !own(optional, key)) return `${at}.${key} is not expected`;
      }
      for (const [key, check] of Object.entries(required)) {
        if (!own(x, key)) return `${at}.${key} is missing`;
        const problem = check(x[key], `${at}.${key}`);
        if (problem) return problem;
      }
      for (const [key, check] of Object.entries(optional)) {
        if (!own(x, key) || x[key] === undefined) continue;
        const problem = check(x[key], `${at}.${key}`);
        if (problem) return problem;
      }
      return null;
    };
  },
  /** a plain object with any keys (at most `max`), every value passing `value` */
  record(value: Check, opts: { max?: number } = {}): Check {
    const max = opts.max ?? 64;
    return (x, at) => {
      if (!isPlainObject(x)) return `${at} must be an object`;
      const keys = Object.keys(x);
      if (keys.length > max) return `${at} has more than ${max} keys`;
      for (const key of keys) {
        if (PROTOTYPE_KEYS.has(key)) return `${at}.${key} is not allowed`;
        const problem = value(x[key], `${at}.${key}`);
        if (problem) return problem;
      }
      return null;
    };
  },
  union(tag: string, variants: Record<string, Check>): Check {
    return (x, at) => {
      if (!isPlainObject(x)) return `${at} must be an object`;
      const name = own(x, tag) ? String(x[tag]) : '';
      const variant = own(variants, name) ? variants[name] : undefined;
      return variant ? variant(x, at) : `${at}.${tag} must be one of ${Object.keys(variants).join(', ')}`;
    };
  },
};

const id = v.string({ max: 256, nonEmpty: true });
const path = v.string({ nonEmpty: true });
const vec3 = v.array(v.number(), { length: 3 });
const exportFormat = v.literal(EXPORT_FORMATS);
const maskSource = v.literal(MASK_SOURCES);
const empty = v.object({});
const regionDice = v.nullable(v.object({ WT: v.nullable(v.number()), TC: v.nullable(v.number()), ET: v.nullable(v.number()) }));
const window = v.object({ center: v.number(), width: v.number() });
const voxelArrays = [Int16Array, Uint16Array, Uint8Array, Int8Array, Float32Array, Int32Array, Uint32Array, Float64Array] as const;

const color = v.string({ max: 64, nonEmpty: true });
const settingsFields: Record<keyof Settings, Check> = {
  device: v.string({ max: 64, nonEmpty: true }),
  overlayOpacity: v.number({ min: 0, max: 1 }),
  overlayMode: v.literal(OVERLAY_MODES),
  labelColors: v.object({ necrotic: color, edema: color, enhancing: color }),
  viewConvention: v.literal(VIEW_CONVENTIONS),
  postprocessing: v.object({ minComponentMl: v.number({ min: 0, max: 1e6 }), minEtMl: v.number({ min: 0, max: 1e6 }) }),
  precision: v.literal(PRECISION_CHOICES),
};
const sourceOf = v.literal(RUN_SETTING_SOURCES);
const modelRun = v.object({
  size: v.array(v.number({ int: true, min: 1 }), { length: 2 }),
  channels: v.array(v.string({ max: 64 }), { max: 16 }),
  regions: v.literal(['brats', 'binary']),
  from: v.object({ size: sourceOf, channels: sourceOf, regions: sourceOf }),
});
const modelInfo = v.object({ id: path, name: v.string(), kind: v.literal(MODEL_KINDS), regions: v.array(v.string(), { max: 16 }), description: v.string(), run: modelRun });
const count = v.number({ int: true, min: 0 });

/** Validators of every request, one per method: the Electron main and the web server run them on each call. */
export const requestValidators: Record<ApiMethod, Check> = {
  capabilities: empty,
  openStudy: v.object({ path }),
  closeStudy: v.object({ studyId: id }),
  setSequenceRoles: v.object({ studyId: id, roles: v.record(v.literal(SEQUENCE_ROLES), { max: 64 }) }),
  getTags: v.object({ studyId: id, sequence: v.string({ max: 64, nonEmpty: true }) }),
  getVolume: v.object({ studyId: id, sequence: v.string({ max: 64, nonEmpty: true }) }),
  getLabels: v.object({ studyId: id, source: maskSource }),
  describeTumour: v.object({ studyId: id, source: maskSource }),
  listModels: empty,
  segment: v.object(
    { studyId: id },
    {
      checkpoint: path,
      device: v.string({ max: 64, nonEmpty: true }),
      channels: v.array(v.string({ max: 64 }), { max: 3 }),
      minComponentMl: v.number({ min: 0, max: 1e6 }),
      minEtMl: v.number({ min: 0, max: 1e6 }),
      focus: v.number({ int: true, min: 0, max: 1e6 }),
      precision: v.literal(PRECISION_CHOICES),
    },
  ),
  focusSlice: v.object({ jobId: id, index: v.number({ int: true, min: 0, max: 1e6 }) }),
  cancel: v.object({ jobId: id }),
  chooseStudyPath: empty,
  chooseExportPath: v.object({ studyId: id, format: exportFormat }, { source: maskSource }),
  exportMasks: v.object({ studyId: id, format: exportFormat, source: maskSource }, { path }),
  openExport: v.object({ file: path }),
  getThumbnail: v.object({ studyId: id, sequence: v.string({ max: 64, nonEmpty: true }), size: v.number({ int: true, min: 8, max: 512 }) }),
  chooseModelPath: empty,
  addModel: v.object({ path }),
  train: v.object(
    { data: v.array(path, { max: 1000 }), strategy: v.literal(TRAIN_STRATEGIES) },
    {
      val: v.array(path, { max: 1000 }),
      model: path,
      steps: v.number({ int: true, min: 1, max: 10_000_000 }),
      epochs: v.number({ int: true, min: 1, max: 100_000 }),
      batch: v.number({ int: true, min: 1, max: 256 }),
      lr: v.number({ min: 0, max: 1 }),
      size: v.number({ int: true, min: 32, max: 2048 }),
      loraRank: v.number({ int: true, min: 1, max: 1024 }),
      loraAlpha: v.number({ min: 0, max: 1e6 }),
      name: v.string({ max: 128, nonEmpty: true }),
      resume: v.boolean(),
    },
  ),
  listTrainingRuns: empty,
  recentStudies: empty,
  listDirectory: v.object({}, { path }),
  openSampleStudy: empty,
  getSettings: empty,
  updateSettings: v.object({}, settingsFields),
};

export const API_METHODS = Object.keys(requestValidators) as ApiMethod[];

export function isApiMethod(name: unknown): name is ApiMethod {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(requestValidators, name);
}

/** Replies and events are checked by the clients (and tests): a server bug must not become a renderer crash. */
export const eventValidator: Check = v.union('type', {
  sliceResult: v.object({
    type: v.literal(['sliceResult']),
    jobId: id,
    studyId: id,
    index: v.number({ int: true, min: 0 }),
    mask: v.typedArray([Uint8Array]),
    dice: regionDice,
    ms: v.number({ min: 0 }),
  }),
  progress: v.object(
    { type: v.literal(['progress']), jobId: id, done: v.number({ int: true, min: 0 }), total: v.number({ int: true, min: 0 }) },
    { message: v.string() },
  ),
  done: v.object({ type: v.literal(['done']), jobId: id, studyId: id, dice: regionDice, ms: v.number({ min: 0 }), device: v.string() }),
  failed: v.object({ type: v.literal(['failed']), jobId: id, message: v.string({ max: 65536 }) }),
  cancelled: v.object({ type: v.literal(['cancelled']), jobId: id }),
  trainStart: v.object({
    type: v.literal(['trainStart']),
    jobId: id,
    run: v.string(),
    totalSteps: count,
    stepsPerEpoch: count,
    resumedFrom: count,
    trainable: count,
    frozen: count,
    studies: count,
    slices: count,
  }),
  trainStep: v.object({
    type: v.literal(['trainStep']),
    jobId: id,
    step: count,
    totalSteps: count,
    epoch: count,
    loss: v.number(),
    lr: v.number(),
    imagesPerSecond: v.number({ min: 0 }),
    etaSeconds: v.number({ min: 0 }),
  }),
  trainValidation: v.object({ type: v.literal(['trainValidation']), jobId: id, step: count, epoch: count, dice: v.record(v.number()) }),
  trainDone: v.object({ type: v.literal(['trainDone']), jobId: id, model: modelInfo, steps: count, ms: v.number({ min: 0 }) }),
  menu: v.object({ type: v.literal(['menu']), action: v.literal(MENU_ACTIONS) }),
});

export const replyValidators: Partial<Record<ApiMethod, Check>> = {
  getVolume: v.object({
    studyId: id,
    sequence: v.string(),
    dims: vec3,
    spacing: vec3,
    origin: vec3,
    direction: v.array(v.number(), { length: 9 }),
    slope: v.number(),
    intercept: v.number(),
    window,
    components: (x, at) => (x === 1 || x === 3 ? null : `${at} must be 1 or 3`),
    data: v.typedArray(voxelArrays),
  }),
  getLabels: v.nullable(v.object({ studyId: id, source: maskSource, dims: vec3, data: v.typedArray([Uint8Array]) })),
  getThumbnail: v.object({ width: count, height: count, data: v.typedArray([Uint8Array]) }),
  listModels: v.array(modelInfo, { max: 10_000 }),
  listDirectory: v.object({
    path: v.nullable(path),
    parent: v.nullable(path),
    entries: v.array(v.object({ name: v.string({ nonEmpty: true }), path, kind: v.literal(['directory', 'file']) }, { study: v.literal(STUDY_HINTS) }), { max: MAX_LISTED_ENTRIES }),
    truncated: v.boolean(),
  }),
};

/** Returns null when `request` is a valid request for `method`, else the reason it is not. */
export function validateRequest(method: unknown, request: unknown): string | null {
  if (!isApiMethod(method)) return `unknown method ${JSON.stringify(String(method)).slice(0, 80)}`;
  return requestValidators[method](request, method);
}

// ---------------------------------------------------------------------------------------------
// Binary frames for the web bridge. Layout: u32 LE header length · UTF-8 JSON header · zero
// padding to 8 bytes · each typed array's bytes, each starting on an 8-byte boundary. In the
// JSON, a typed array is replaced by {"$ta": <constructor name>, "o": byteOffset, "n": length}.

const TYPED_ARRAYS = {
  Int8Array,
  Uint8Array,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
} as const;
type TypedArrayName = keyof typeof TYPED_ARRAYS;
type AnyTypedArray = InstanceType<(typeof TYPED_ARRAYS)[TypedArrayName]>;

const align8 = (n: number) => (n + 7) & ~7;

function typedArrayName(value: unknown): TypedArrayName | null {
  if (!ArrayBuffer.isView(value) || value instanceof DataView) return null;
  const name = value.constructor.name;
  // Node's Buffer is a Uint8Array subclass.
  if (name in TYPED_ARRAYS) return name as TypedArrayName;
  return value instanceof Uint8Array ? 'Uint8Array' : null;
}

export function encodeFrame(message: unknown): Uint8Array {
  const blobs: AnyTypedArray[] = [];
  let offset = 0;
  const header = JSON.stringify(message, function (this: unknown, _key, value: unknown) {
    const name = typedArrayName(value);
    if (!name) return value;
    const array = value as AnyTypedArray;
    const ref = { $ta: name, o: offset, n: array.length };
    blobs.push(array);
    offset += align8(array.byteLength);
    return ref;
  });
  const headerBytes = new TextEncoder().encode(header);
  const start = align8(4 + headerBytes.length);
  const frame = new Uint8Array(start + offset);
  new DataView(frame.buffer).setUint32(0, headerBytes.length, true);
  frame.set(headerBytes, 4);
  let at = start;
  for (const blob of blobs) {
    frame.set(new Uint8Array(blob.buffer, blob.byteOffset, blob.byteLength), at);
    at += align8(blob.byteLength);
  }
  return frame;
}

export class FrameError extends Error {
  override name = 'FrameError';
}

/** Typed arrays come back as views on the frame when it is 8-byte aligned (no copy), else copies. */
export function decodeFrame(bytes: Uint8Array): unknown {
  if (bytes.byteLength < 4) throw new FrameError('frame shorter than its header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0, true);
  if (4 + headerLength > bytes.byteLength) throw new FrameError('frame header runs past the end of the frame');
  const start = align8(4 + headerLength);
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(4, 4 + headerLength));
  const aligned = bytes.byteOffset % 8 === 0;
  return JSON.parse(text, (_key, value: unknown) => {
    if (!isPlainObject(value) || typeof value.$ta !== 'string') return value;
    const ctor = (own(TYPED_ARRAYS, value.$ta) ? TYPED_ARRAYS[value.$ta as TypedArrayName] : undefined) as (new (buffer: ArrayBufferLike, offset: number, length: number) => AnyTypedArray) | undefined;
    const { o, n } = value;
    if (!ctor || !Number.isInteger(o) || !Number.isInteger(n) || (o as number) < 0 || (n as number) < 0) {
      throw new FrameError('frame holds a malformed array reference');
    }
    const bytesPer = (ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    const begin = start + (o as number);
    const end = begin + (n as number) * bytesPer;
    if (end > bytes.byteLength) throw new FrameError('frame array runs past the end of the frame');
    if (aligned) return new ctor(bytes.buffer, bytes.byteOffset + begin, n as number);
    return new ctor(bytes.slice(begin, end).buffer, 0, n as number);
  });
}

/** Web bridge envelopes. */
export type ClientMessage = { kind: 'call'; id: number; method: ApiMethod; request: unknown };
export type ServerMessage = ({ kind: 'reply'; id: number } & Reply) | { kind: 'event'; event: ApiEvent };

export const clientMessageValidator: Check = v.object({
  kind: v.literal(['call']),
  id: v.number({ int: true, min: 0 }),
  method: v.literal(API_METHODS),
  request: (x, at) => (x === undefined ? `${at} is missing` : null),
});

export function toWireError(err: unknown): WireError {
  if (err instanceof Error) {
    // UserError and its subclasses, and CancelledError, carry messages meant for the user.
    const user = ['UserError', 'FileError', 'CancelledError'].includes(err.name);
    return { name: err.name, message: err.message, user };
  }
  return { name: 'Error', message: String(err), user: false };
}

/** The renderer's error for a failed call: keeps the server's message, and whether it is meant for the user. */
export class ApiCallError extends Error {
  override name = 'ApiCallError';
  readonly remoteName: string;
  readonly user: boolean;
  constructor(method: string, error: WireError) {
    super(error.user ? error.message : `${method} failed: ${error.message}`);
    this.remoteName = error.name;
    this.user = error.user;
  }
}
