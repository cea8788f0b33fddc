/**
 * THE contract between the renderer and the services (architecture.md: renderer → api.ts ← app |
 * web | cli). Every request, reply and event is declared once, as a schema (schema.ts), and its
 * TypeScript type is derived from that schema: the check that runs on a boundary and the type the
 * code is written against cannot disagree. The channel (rpc/channel.ts) runs the checks on every
 * boundary in both directions; the display conventions and default settings that every output
 * shares are in conventions.ts, built on these types.
 *
 * A leaf module: it imports nothing of the project but schema.ts, so anything may import it
 * without a cycle. The renderer, the Electron main and preload and the web server all load it:
 * it must stay free of Node and DOM imports.
 */

import { s, type Infer, type Schema } from './schema.ts';

// ---------------------------------------------------------------------------------------------
// Building blocks

const MAX_STRING = 4096;
/** a folder listing stops here (and says so): enough for any study folder, small enough to send */
export const MAX_LISTED_ENTRIES = 5000;

const id = s.string({ max: 256, nonEmpty: true });
const path = s.string({ max: MAX_STRING, nonEmpty: true });
const text = s.string({ max: 65_536 });
const name64 = s.string({ max: 64, nonEmpty: true });
const count = s.number({ int: true, min: 0 });
const finite = s.number();

export const Vec3 = s.tuple(finite, finite, finite);
/** A point or a vector in patient space (LPS mm), or voxel indices (i, j, k). */
export type Vec3 = Infer<typeof Vec3>;
const direction = s.array(finite, { length: 9 });

/** BraTS evaluation regions: whole tumour (1+2+4), tumour core (1+4), enhancing tumour (4). */
export const REGIONS = ['WT', 'TC', 'ET'] as const;
export type Region = (typeof REGIONS)[number];
/** How a label map is read: BraTS labels (0, 1, 2, 4 → WT, TC, ET) or one binary region. */
export const REGION_KINDS = ['brats', 'binary'] as const;
export type RegionKind = (typeof REGION_KINDS)[number];
const regionKind = s.literal(REGION_KINDS);

/** Dice per region; null when the region is absent from both masks (nothing to score). */
export const RegionDice = s.object({ WT: s.nullable(finite), TC: s.nullable(finite), ET: s.nullable(finite) });
export type RegionDice = Infer<typeof RegionDice>;

export const EXPORT_FORMATS = ['nifti', 'dicom-seg', 'report'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
const exportFormat = s.literal(EXPORT_FORMATS);

export const MASK_SOURCES = ['prediction', 'groundTruth'] as const;
export type MaskSource = (typeof MASK_SOURCES)[number];
const maskSource = s.literal(MASK_SOURCES);

export const DisplayWindow = s.object({ center: finite, width: finite });
export type DisplayWindow = Infer<typeof DisplayWindow>;

export const Availability = s.object(
  { available: s.boolean() },
  {
    /** why not, in words the user can act on */
    reason: text,
  },
);
export type Availability = Infer<typeof Availability>;

/** The typed arrays a volume's voxels may come in. */
const VOXEL_ARRAYS = [Int16Array, Uint16Array, Uint8Array, Int8Array, Float32Array, Int32Array, Uint32Array, Float64Array] as const;
const voxelData = s.typedArray<Int16Array | Uint16Array | Uint8Array | Int8Array | Float32Array | Int32Array | Uint32Array | Float64Array>(VOXEL_ARRAYS);
/** A volume's voxels, in the type the file stores them in. */
export type VoxelArray = Infer<typeof voxelData>;
const labelBytes = s.typedArray<Uint8Array>([Uint8Array]);

const Empty = s.object({});
type Empty = Infer<typeof Empty>;

// ---------------------------------------------------------------------------------------------
// Studies

/** The sequence names a multi-sequence study uses (BraTS's), in display order, with their labels. */
export const SEQUENCE_ROLES = ['t1', 't1ce', 't2', 'flair'] as const;
export type SequenceRole = (typeof SEQUENCE_ROLES)[number];
export const SEQUENCE_ROLE_LABELS: Record<SequenceRole, string> = { t1: 'T1', t1ce: 'T1 post-contrast', t2: 'T2', flair: 'FLAIR' };
const sequenceRole = s.literal(SEQUENCE_ROLES);

export const SequenceSummary = s.object(
  {
    name: s.string({ max: 256 }),
    dtype: s.string({ max: 64 }),
    /** 1: greyscale; 3: colour (RGB or YCbCr in the file, sent as RGB by getVolume) */
    components: s.literal([1, 3], '1 or 3'),
    /** real-value range (slope and intercept applied); for colour, of the RGB samples */
    range: s.tuple(finite, finite),
    /** a default window from robust percentiles of the non-zero voxels; for colour, the full range of the stored bits (applied to each channel) */
    window: DisplayWindow,
  },
  {
    /** what the file calls it: the DICOM SeriesDescription, or the BraTS sequence / NIfTI file name */
    description: s.string(),
    /** DICOM: the SeriesInstanceUID it was read from */
    seriesId: s.string({ max: 256 }),
  },
);
export type SequenceSummary = Infer<typeof SequenceSummary>;

/** Who and what a study is; DICOM fills every field it has, NIfTI and BraTS only the case name. */
export const StudyMetadata = s.object(
  {},
  {
    patientName: s.string(),
    patientId: s.string(),
    /** DICOM DA, YYYYMMDD as stored */
    studyDate: s.string(),
    studyDescription: s.string(),
    modality: s.string(),
  },
);
export type StudyMetadata = Infer<typeof StudyMetadata>;

/** One DICOM series of a study and the sequence it plays (the mapping shown, and changeable, in the study list). */
export const SeriesRoleSummary = s.object(
  {
    seriesId: s.string({ max: 256 }),
    description: s.string(),
    /** the sequence of the study it is now */
    role: sequenceRole,
    /** what recognition made of it, and from what */
    recognised: s.nullable(sequenceRole),
    reason: s.string(),
    /** resampled onto the study's grid (the FLAIR's) through world coordinates */
    resampled: s.boolean(),
  },
  { seriesNumber: finite },
);
export type SeriesRoleSummary = Infer<typeof SeriesRoleSummary>;

/** A DICOM SEG file found among images or opened by itself. */
export const SegmentationSummary = s.object(
  {
    file: path,
    description: s.string(),
    segments: s.array(s.object({ number: count, name: s.string() }, { type: s.string({ max: 64 }) }), { max: 1000 }),
    referencedInstances: count,
  },
  {
    /** the image series it was made on, when it says */
    referencedSeriesUid: s.string({ max: 256 }),
    /** opened by itself: the open study holding the series it references, if there is one */
    openStudyId: id,
    openStudyName: s.string(),
  },
);
export type SegmentationSummary = Infer<typeof SegmentationSummary>;

export const StudySummary = s.object(
  {
    id,
    name: s.string(),
    kind: s.string({ max: 64 }),
    source: s.string(),
    dims: Vec3,
    spacing: Vec3,
    origin: Vec3,
    direction,
    sequences: s.array(SequenceSummary, { max: 256 }),
    hasGroundTruth: s.boolean(),
    /** whether segment() accepts this study (colour images are not MRI), and why not */
    segmentable: Availability,
  },
  {
    metadata: StudyMetadata,
    /** DICOM: the series the sequences come from, with their recognised and current roles */
    series: s.array(SeriesRoleSummary, { max: 1000 }),
    /** remarks about how the study was assembled (resampling, series kept apart) */
    notes: s.array(text, { max: 1000 }),
    /** DICOM SEG files found with the study's images: masks Load mask offers */
    masks: s.array(SegmentationSummary, { max: 1000 }),
  },
);
export type StudySummary = Infer<typeof StudySummary>;

export const StudyRequest = s.object({ studyId: id });
export type StudyRequest = Infer<typeof StudyRequest>;

export const SetSequenceRolesRequest = s.object({
  studyId: id,
  /** SeriesInstanceUID → sequence role; roles must stay distinct (a role given away is swapped) */
  roles: s.record(sequenceRole, { max: 64 }),
});
export type SetSequenceRolesRequest = Infer<typeof SetSequenceRolesRequest>;

export const GetTagsRequest = s.object({ studyId: id, sequence: name64 });
export type GetTagsRequest = Infer<typeof GetTagsRequest>;

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
// A recursive shape cannot be inferred: the interface above is its type, checked against the schema here.
export const DicomTag: Schema<DicomTag> = s.object(
  { tag: s.string({ max: 16 }), vr: s.string({ max: 4 }), keyword: s.string({ max: 256 }), value: text },
  { items: s.array(s.array(s.lazy(() => DicomTag), { max: 100_000 }), { max: 100_000 }) },
);
export const DicomTags = s.object({
  /** the file the elements were read from (the series' first slice along its normal) */
  file: path,
  tags: s.array(DicomTag, { max: 100_000 }),
});
export type DicomTags = Infer<typeof DicomTags>;

export const OpenStudyRequest = s.object({
  /** a file or folder path on the machine running the services */
  path,
});
export type OpenStudyRequest = Infer<typeof OpenStudyRequest>;

export const OpenStudyResult = s.object(
  {
    studies: s.array(StudySummary, { max: 10_000 }),
    /** reader remarks worth showing (skipped files, assumptions) */
    notes: s.array(text, { max: 10_000 }),
  },
  {
    /** DICOM SEG files opened without their images: what they are and which series they belong to */
    segmentations: s.array(SegmentationSummary, { max: 10_000 }),
  },
);
export type OpenStudyResult = Infer<typeof OpenStudyResult>;

export const GetVolumeRequest = s.object({ studyId: id, sequence: name64 });
export type GetVolumeRequest = Infer<typeof GetVolumeRequest>;

/**
 * A whole volume, x fastest; real value = data[i] · slope + intercept. Sent once per sequence.
 * Colour volumes (components 3) are interleaved RGB, R G B per voxel, in the stored bit depth
 * (8 or 16 bits), slope 1 and intercept 0.
 */
export const VolumeData = s.object({
  studyId: id,
  sequence: s.string({ max: 256 }),
  dims: Vec3,
  spacing: Vec3,
  origin: Vec3,
  direction,
  slope: finite,
  intercept: finite,
  window: DisplayWindow,
  components: s.literal([1, 3], '1 or 3'),
  data: voxelData,
});
export type VolumeData = Infer<typeof VolumeData>;

export const GetLabelsRequest = s.object({ studyId: id, source: maskSource });
export type GetLabelsRequest = Infer<typeof GetLabelsRequest>;

/** A label map on the study grid (BraTS labels 0, 1, 2, 4). */
export const LabelData = s.object({ studyId: id, source: maskSource, dims: Vec3, data: labelBytes });
export type LabelData = Infer<typeof LabelData>;

// ---------------------------------------------------------------------------------------------
// The tumour description (metrics/describe.ts computes it)

export const RegionVolume = s.object({ volume_ml: finite, voxels: count });
export type RegionVolume = Infer<typeof RegionVolume>;

const line = s.tuple(Vec3, Vec3);
export const RanoMeasurement = s.object(
  {
    /** 0-based axial slice index of the key slice; null without an enhancing part */
    slice: s.nullable(count),
    long_mm: finite,
    perp_mm: finite,
    product_mm2: finite,
    /** both diameters ≥ 10 mm */
    measurable: s.boolean(),
  },
  {
    /** end points (LPS mm) of the two diameters, for drawing; absent without an enhancing part */
    long_line_lps: line,
    perp_line_lps: line,
  },
);
export type RanoMeasurement = Infer<typeof RanoMeasurement>;

export const Lesion = s.object({
  volume_ml: finite,
  voxels: count,
  centroid_lps: Vec3,
  max_diameter_mm: finite,
  et_volume_ml: finite,
  rano: RanoMeasurement,
});
export type Lesion = Infer<typeof Lesion>;

export const Laterality = s.object({
  left_pct: finite,
  right_pct: finite,
  crosses_midline: s.boolean(),
  /** 'image-symmetry': the plane was fitted to the images; 'patient-axes': the sagittal plane through the grid centre */
  method: s.literal(['image-symmetry', 'patient-axes']),
  /** the mid-sagittal plane: unit normal (towards the patient's left) and offset, n·x = d (LPS mm) */
  plane: s.object({ normal: Vec3, offset_mm: finite }),
});
export type Laterality = Infer<typeof Laterality>;

export const TumourDescription = s.object({
  kind: regionKind,
  regions: s.record(RegionVolume, { max: 16 }),
  lesions: s.array(Lesion, { max: 100_000 }),
  rano_sum_products_mm2: finite,
  measurable_lesions: count,
  multifocal: s.object({ foci: count, largest_distance_mm: finite }),
  laterality: Laterality,
});
export type TumourDescription = Infer<typeof TumourDescription>;

/**
 * The tumour description of one of a study's masks, with each lesion's RANO lines in voxel
 * indices (i, j, k) so the axial view can draw them; null entries for lesions without an
 * enhancing part.
 */
export const TumourView = s.object({
  studyId: id,
  source: maskSource,
  description: TumourDescription,
  ranoLines: s.array(s.nullable(s.object({ long: s.tuple(Vec3, Vec3), perp: s.tuple(Vec3, Vec3) })), { max: 100_000 }),
});
export type TumourView = Infer<typeof TumourView>;

// ---------------------------------------------------------------------------------------------
// Models and training

export const MODEL_KINDS = ['bundled', 'file', 'trained'] as const;
export const RUN_SETTING_SOURCES = ['user', 'checkpoint', 'bundled', 'default'] as const;
/** test-time augmentation (model/run-settings.ts says what each means) */
export const TEST_TIME_AUGMENTATIONS = ['none', 'mirror'] as const;
export type RunSettingSource = (typeof RUN_SETTING_SOURCES)[number];
const runSettingSource = s.literal(RUN_SETTING_SOURCES);

/** How a model must be run (main/core/model/run-settings.ts), each setting with where it came from. */
export const ModelRunInfo = s.object({
  /** input [height, width] */
  size: s.tuple(s.number({ int: true, min: 1 }), s.number({ int: true, min: 1 })),
  /** the sequence each input channel takes, in channel order */
  channels: s.array(s.string({ max: 64 }), { max: 16 }),
  regions: regionKind,
  /** test-time augmentation, one of TEST_TIME_AUGMENTATIONS */
  tta: s.literal(TEST_TIME_AUGMENTATIONS),
  from: s.object({ size: runSettingSource, channels: runSettingSource, regions: runSettingSource, tta: runSettingSource }),
});
export type ModelRunInfo = Infer<typeof ModelRunInfo>;

const diceRecord = s.record(finite, { max: 16 });

/** Where a model fine-tuned here came from (the checkpoint's safetensors metadata "provenance"). */
export const ModelProvenance = s.object(
  { baseModel: s.string(), studies: s.array(s.string(), { max: 10_000 }), heldOut: s.array(s.string(), { max: 10_000 }), strategy: s.string({ max: 64 }), steps: count, date: s.string({ max: 64 }) },
  {
    /** seconds of training, when a time budget ended the run */
    seconds: s.number({ min: 0 }),
    heldOutDice: s.object({ before: diceRecord, after: diceRecord }),
  },
);
export type ModelProvenance = Infer<typeof ModelProvenance>;

/** Held-out Dice of a fine-tuning run: each study before (starting model) and after (trained model). */
export const HeldOutComparison = s.object({
  studies: s.array(s.object({ name: s.string(), before: diceRecord, after: diceRecord }), { max: 10_000 }),
  meanBefore: diceRecord,
  meanAfter: diceRecord,
});
export type HeldOutComparison = Infer<typeof HeldOutComparison>;

export const ModelInfo = s.object(
  {
    /** what SegmentRequest.checkpoint and TrainRequest.model take: the checkpoint's path */
    id: path,
    name: s.string(),
    kind: s.literal(MODEL_KINDS),
    /** what it segments, e.g. ['WT', 'TC', 'ET'] */
    regions: s.array(s.string({ max: 64 }), { max: 16 }),
    description: text,
    run: ModelRunInfo,
  },
  {
    /** a model fine-tuned here: what it came from (stored in the checkpoint's metadata) */
    provenance: ModelProvenance,
  },
);
export type ModelInfo = Infer<typeof ModelInfo>;

export const AddModelRequest = s.object({
  /** a SAM2-UNet checkpoint (.pth, .pt or .safetensors) */
  path,
});
export type AddModelRequest = Infer<typeof AddModelRequest>;

export const TRAIN_STRATEGIES = ['adapter', 'lora', 'full'] as const;
export type TrainStrategy = (typeof TRAIN_STRATEGIES)[number];

export const TrainRequest = s.object(
  {
    /** labelled studies: BraTS case folders (with <case>_seg), or folders holding them */
    data: s.array(path, { max: 1000 }),
    strategy: s.literal(TRAIN_STRATEGIES),
  },
  {
    /** studies scored (whole-volume Dice) after every epoch */
    val: s.array(path, { max: 1000 }),
    /** the model to start from (a ModelInfo id); default the bundled model */
    model: path,
    /** give steps or epochs; default 1 epoch */
    steps: s.number({ int: true, min: 1, max: 10_000_000 }),
    epochs: s.number({ int: true, min: 1, max: 100_000 }),
    batch: s.number({ int: true, min: 1, max: 256 }),
    lr: s.number({ min: 0, max: 1 }),
    /** model input size in pixels, a multiple of 32; default the starting model's */
    size: s.number({ int: true, min: 32, max: 2048 }),
    loraRank: s.number({ int: true, min: 1, max: 1024 }),
    loraAlpha: s.number({ min: 0, max: 1e6 }),
    /** the run's name: its folder in the training folder; with resume, the run to continue */
    name: s.string({ max: 128, nonEmpty: true }),
    resume: s.boolean(),
    /** stop after this many seconds of training (the model is saved then); steps/epochs stay the upper bound */
    maxSeconds: s.number({ min: 1, max: 7 * 24 * 3600 }),
    /**
     * studies scored with the starting model before the first step and with the trained model after
     * the last (whole-volume Dice, side by side in trainDone and in the checkpoint's provenance)
     */
    heldOut: s.array(path, { max: 1000 }),
  },
);
export type TrainRequest = Infer<typeof TrainRequest>;

export const TrainingRun = s.object(
  {
    name: s.string(),
    /** where its checkpoints and logs are */
    dir: path,
    /** the last step a checkpoint holds (resume continues from there) */
    step: count,
  },
  {
    /** the finished model, when the run completed */
    model: path,
  },
);
export type TrainingRun = Infer<typeof TrainingRun>;

// ---------------------------------------------------------------------------------------------
// Files, settings, exports

/** What a folder entry would open as, judged from names only (no file is read). */
export const STUDY_HINTS = ['brats', 'dicom', 'nifti'] as const;
export type StudyHint = (typeof STUDY_HINTS)[number];

export const DirectoryEntry = s.object(
  {
    name: s.string({ nonEmpty: true }),
    /** absolute path on the machine running the services (what openStudy and listDirectory take) */
    path,
    kind: s.literal(['directory', 'file']),
  },
  {
    /** set when the entry looks like a study: a BraTS case folder, DICOM files, a NIfTI file */
    study: s.literal(STUDY_HINTS),
  },
);
export type DirectoryEntry = Infer<typeof DirectoryEntry>;

export const ListDirectoryRequest = s.object(
  {},
  {
    /** a folder the services may read; absent: the places they may read from (their read roots) */
    path,
  },
);
export type ListDirectoryRequest = Infer<typeof ListDirectoryRequest>;

export const DirectoryListing = s.object({
  /** the folder listed; null for the list of places */
  path: s.nullable(path),
  /** the enclosing folder when it may be read too; null at a root (go back to the places) */
  parent: s.nullable(path),
  entries: s.array(DirectoryEntry, { max: MAX_LISTED_ENTRIES }),
  /** the folder has more entries than are listed */
  truncated: s.boolean(),
});
export type DirectoryListing = Infer<typeof DirectoryListing>;

export const RecentStudy = s.object({ path, name: s.string(), openedAt: s.string({ max: 64 }) });
export type RecentStudy = Infer<typeof RecentStudy>;

export const OVERLAY_MODES = ['fill', 'outline'] as const;
/** radiological: the patient's left on screen right in axial and coronal views; neurological: on screen left */
export const VIEW_CONVENTIONS = ['radiological', 'neurological'] as const;
export type ViewConvention = (typeof VIEW_CONVENTIONS)[number];

const colour = s.string({ max: 64, nonEmpty: true });
/** CSS colours of the BraTS labels: 1 necrotic core, 2 edema, 4 enhancing tumour */
export const LabelColours = s.object({ necrotic: colour, edema: colour, enhancing: colour });
export type LabelColours = Infer<typeof LabelColours>;

/** Settings['precision']'s choices (onnx/quantize.ts PRECISIONS; api.ts stays free of the engine). */
export const PRECISION_CHOICES = ['float32', 'int8', 'float16'] as const;
export type PrecisionChoice = (typeof PRECISION_CHOICES)[number];

const settingsFields = {
  /** execution provider for segmentation and training ('auto' picks the best present) */
  device: name64,
  overlayOpacity: s.number({ min: 0, max: 1 }),
  overlayMode: s.literal(OVERLAY_MODES),
  /** CSS colours of the BraTS labels: 1 necrotic core, 2 edema, 4 enhancing tumour */
  labelColors: LabelColours,
  /** how the views lay out left and right */
  viewConvention: s.literal(VIEW_CONVENTIONS),
  /** 3D post-processing of predictions (model/postprocess.ts), volumes in ml, 0 = that step off; a segment request may override them */
  postprocessing: s.object({ minComponentMl: s.number({ min: 0, max: 1e6 }), minEtMl: s.number({ min: 0, max: 1e6 }) }),
  /**
   * the inference graph's arithmetic (onnx/quantize.ts): float32 (the default), int8 (integer
   * kernels on the CPU, about half the time) or float16 (GPU providers)
   */
  precision: s.literal(PRECISION_CHOICES),
};
export const Settings = s.object(settingsFields);
export type Settings = Infer<typeof Settings>;
/** A settings change: any of the fields, merged into what is in force. */
export const SettingsUpdate = s.object({}, settingsFields);
export type SettingsUpdate = Infer<typeof SettingsUpdate>;

export const ThumbnailRequest = s.object({
  studyId: id,
  sequence: name64,
  /** longest side in pixels */
  size: s.number({ int: true, min: 8, max: 512 }),
});
export type ThumbnailRequest = Infer<typeof ThumbnailRequest>;

/** The middle axial slice, windowed to 8-bit grey, row-major (x fastest), for the study list. */
export const Thumbnail = s.object({ width: count, height: count, data: labelBytes });
export type Thumbnail = Infer<typeof Thumbnail>;

export const Capabilities = s.object({
  mode: s.literal(['electron', 'web']),
  segmentation: Availability,
  exports: s.object({ nifti: Availability, 'dicom-seg': Availability, report: Availability }),
  /** Electron: studies are picked and exports placed through native dialogs; web: typed paths and the server's export folder */
  dialogs: s.boolean(),
  devices: s.array(s.string({ max: 64 }), { max: 64 }),
});
export type Capabilities = Infer<typeof Capabilities>;

const mlThreshold = s.number({ min: 0, max: 1e6 });
export const SegmentRequest = s.object(
  { studyId: id },
  {
    checkpoint: path,
    device: name64,
    /**
     * the study's sequence fed to each model channel, in channel order ('' = the sequence the model
     * takes there); needed when the study lacks one (a substitution, written into the report)
     */
    channels: s.array(s.string({ max: 64 }), { max: 3 }),
    /**
     * 3D post-processing (model/postprocess.ts), volumes in ml: whole-tumour components smaller than
     * minComponentMl are removed, enhancing tumour smaller than minEtMl in total becomes necrosis (1);
     * 0 switches a step off, absent = the settings. The streamed slices are the raw prediction; when
     * the job ends, the slices post-processing changed are sent again (sliceResult) and the prediction,
     * exports and report are the post-processed label map.
     */
    minComponentMl: mlThreshold,
    minEtMl: mlThreshold,
    /** the axial slice on screen (0-based): segmented first, then the slices outward from it (absent: index order) */
    focus: s.number({ int: true, min: 0, max: 1e6 }),
    /** the graph's arithmetic for this run (default: Settings.precision) */
    precision: s.literal(PRECISION_CHOICES),
  },
);
export type SegmentRequest = Infer<typeof SegmentRequest>;

export const JobStarted = s.object({ jobId: id, slices: count });
export type JobStarted = Infer<typeof JobStarted>;

/** The slice the user now looks at, for a running segmentation: the slices not yet done are reordered around it. */
export const FocusSliceRequest = s.object({
  jobId: id,
  /** axial slice index, 0-based */
  index: s.number({ int: true, min: 0, max: 1e6 }),
});
export type FocusSliceRequest = Infer<typeof FocusSliceRequest>;

export const CancelRequest = s.object({ jobId: id });
export type CancelRequest = Infer<typeof CancelRequest>;

export const ChooseExportPathRequest = s.object(
  { studyId: id, format: exportFormat },
  {
    /** names the suggested file: a prediction is `<case>_pred.nii.gz`, ground truth `<case>_seg.nii.gz` (default prediction) */
    source: maskSource,
  },
);
export type ChooseExportPathRequest = Infer<typeof ChooseExportPathRequest>;

export const ExportRequest = s.object(
  { studyId: id, format: exportFormat, source: maskSource },
  {
    /** Electron: a path returned by chooseExportPath (others are refused); web: ignored */
    path,
  },
);
export type ExportRequest = Infer<typeof ExportRequest>;

export const ExportResult = s.object(
  { files: s.array(path, { max: 64 }) },
  {
    /** web mode: where the browser can download the first file */
    downloadUrl: s.string(),
    /** web mode: where the browser opens each file, in the order of `files` (HTML and PDF are served to show, not to download) */
    urls: s.array(s.string(), { max: 64 }),
  },
);
export type ExportResult = Infer<typeof ExportResult>;

export const OpenExportRequest = s.object({
  /** one of the `files` an exportMasks reply listed */
  file: path,
});
export type OpenExportRequest = Infer<typeof OpenExportRequest>;

const PathChoice = s.nullable(s.object({ path }));

// ---------------------------------------------------------------------------------------------
// Masks: loading one onto a study, editing the prediction layer, saving it as reviewed (issue 15)

export const MASK_LABELS = [0, 1, 2, 4] as const;
export type MaskLabel = (typeof MASK_LABELS)[number];
const maskLabel = s.literal(MASK_LABELS);

/** One segment of a DICOM SEG and the BraTS label it would become (null: the user must choose). */
export const MaskSegmentSummary = s.object({ number: count, name: s.string(), proposed: s.nullable(maskLabel), reason: s.string() }, { type: s.string({ max: 64 }) });
export type MaskSegmentSummary = Infer<typeof MaskSegmentSummary>;

export const InspectMaskRequest = s.object({
  studyId: id,
  /** a NIfTI label map or a DICOM SEG on the machine running the services */
  path,
});
export type InspectMaskRequest = Infer<typeof InspectMaskRequest>;

export const MaskInspection = s.object({
  path,
  format: s.literal(['nifti', 'dicom-seg']),
  description: s.string(),
  /** DICOM SEG: its segments with their proposed labels */
  segments: s.array(MaskSegmentSummary, { max: 1000 }),
  notes: s.array(text, { max: 1000 }),
});
export type MaskInspection = Infer<typeof MaskInspection>;

export const LoadMaskRequest = s.object(
  {
    studyId: id,
    path,
    /** 'prediction': the editable layer (replaces the prediction); 'groundTruth': the reference Dice is scored against */
    as: maskSource,
  },
  {
    /** DICOM SEG: segment number → label (0 leaves the segment out), overriding the proposals */
    segmentLabels: s.record(maskLabel, { max: 256 }),
  },
);
export type LoadMaskRequest = Infer<typeof LoadMaskRequest>;

/** The loaded labels on the study's grid, with what loading said (resampling, label mapping). */
export const LoadedMask = s.object({ studyId: id, source: maskSource, dims: Vec3, data: labelBytes, notes: s.array(text, { max: 1000 }) });
export type LoadedMask = Infer<typeof LoadedMask>;

export const EditLabelsRequest = s.object({
  studyId: id,
  /**
   * edits of the prediction layer in the order they were made, each an encoded change
   * (core/edit/diff.ts: runs of voxels with their label before and after); every change must fit
   * the labels the service holds, or none is applied
   */
  changes: s.array(labelBytes, { max: 1000 }),
});
export type EditLabelsRequest = Infer<typeof EditLabelsRequest>;

export const EditLabelsResult = s.object({
  /** voxels changed by this call */
  voxels: count,
  /** edits applied to this study's prediction since it was made or loaded */
  edits: count,
});
export type EditLabelsResult = Infer<typeof EditLabelsResult>;

export const SaveReviewedRequest = s.object(
  { studyId: id },
  {
    /** who reviewed it (default: the user running the services) */
    reviewer: s.string({ max: 128, nonEmpty: true }),
  },
);
export type SaveReviewedRequest = Infer<typeof SaveReviewedRequest>;

/** A study saved as reviewed: a BraTS case folder in the reviewed-studies folder. */
export const ReviewedStudy = s.object(
  {
    /** the case name (its folder and file prefix) */
    name: s.string(),
    dir: path,
    reviewedAt: s.string({ max: 64 }),
    reviewer: s.string(),
    /** what the starting mask was: the model that made it, or the file it was loaded from */
    startingMask: s.string(),
    /** whether the trainer can use it (the BraTS layout needs T1, T1ce, T2 and FLAIR) */
    trainable: s.boolean(),
  },
  { reason: text },
);
export type ReviewedStudy = Infer<typeof ReviewedStudy>;

export const SaveReviewedResult = s.object({ study: ReviewedStudy, files: s.array(path, { max: 64 }), notes: s.array(text, { max: 1000 }) });
export type SaveReviewedResult = Infer<typeof SaveReviewedResult>;

// ---------------------------------------------------------------------------------------------
// PACS over DICOMweb (issue 17; core/pacs/). A connection's secret never crosses this interface
// outwards: replies say only whether one is saved.

export const PACS_AUTH_KINDS = ['none', 'basic', 'bearer'] as const;
const pacsAuth = s.literal(PACS_AUTH_KINDS);
const pacsText = s.string({ max: 256 });
/** a DICOM UID: digits and dots, at most 64 characters (it goes into URLs and cache folder names) */
const uid = s.refine(s.string({ max: 64 }), (x, at) => (/^[0-9]+(\.[0-9]+)*$/.test(x) ? null : `${at} must be a DICOM UID`));
const pacsUrl = s.string({ max: 2048, nonEmpty: true });
const pacsUser = s.string({ max: 256 });
const pacsSecret = s.string({ max: 8192 });

export const PacsConnectionInfo = s.object(
  {
    id,
    name: s.string(),
    /** the DICOMweb base URL (QIDO-RS, WADO-RS and STOW-RS share it) */
    url: s.string(),
    auth: pacsAuth,
    /** a password or token is saved (in the keychain, or the server's owner-only file) */
    hasSecret: s.boolean(),
  },
  { user: s.string() },
);
export type PacsConnectionInfo = Infer<typeof PacsConnectionInfo>;

export const SavePacsConnectionRequest = s.object(
  { name: s.string({ max: 128 }), url: pacsUrl, auth: pacsAuth },
  {
    /** absent: a new connection */
    id,
    user: pacsUser,
    /** the password or token; absent: keep the saved one */
    secret: pacsSecret,
  },
);
export type SavePacsConnectionRequest = Infer<typeof SavePacsConnectionRequest>;

/** A saved connection (`id`), or one being edited (its fields; `secret` absent = the saved one of `id`). */
export const TestPacsConnectionRequest = s.object({}, { id, url: pacsUrl, auth: pacsAuth, user: pacsUser, secret: pacsSecret });
export type TestPacsConnectionRequest = Infer<typeof TestPacsConnectionRequest>;

export const PacsTestResult = s.object(
  { ok: s.boolean(), message: text, ms: s.number({ min: 0 }) },
  {
    /** what failed: dns, refused, unreachable, tls, timeout, connection, auth, forbidden, not-found, http, protocol, url */
    failure: s.string({ max: 32 }),
  },
);
export type PacsTestResult = Infer<typeof PacsTestResult>;

export const PacsSearchRequest = s.object(
  { connectionId: id },
  {
    patientName: pacsText,
    patientId: pacsText,
    /** YYYYMMDD or YYYY-MM-DD; either may be absent */
    studyDateFrom: s.string({ max: 10 }),
    studyDateTo: s.string({ max: 10 }),
    modality: s.string({ max: 16 }),
    description: pacsText,
    offset: s.number({ int: true, min: 0, max: 1_000_000 }),
    limit: s.number({ int: true, min: 1, max: 1000 }),
  },
);
export type PacsSearchRequest = Infer<typeof PacsSearchRequest>;

export const PacsStudySummary = s.object(
  {
    studyUid: uid,
    /** as people read it ("DOE, JANE") */
    patientName: s.string(),
    patientId: s.string(),
    modalities: s.array(s.string({ max: 16 }), { max: 64 }),
  },
  { studyDate: s.string(), description: s.string(), series: count, instances: count },
);
export type PacsStudySummary = Infer<typeof PacsStudySummary>;

export const PacsSearchResult = s.object({
  studies: s.array(PacsStudySummary, { max: 1000 }),
  offset: count,
  /** the PACS has more studies past this page */
  more: s.boolean(),
});
export type PacsSearchResult = Infer<typeof PacsSearchResult>;

export const PacsSeriesRequest = s.object({ connectionId: id, studyUid: uid });
export type PacsSeriesRequest = Infer<typeof PacsSeriesRequest>;

export const PacsSeriesSummary = s.object({ seriesUid: uid }, { modality: s.string(), description: s.string(), number: finite, instances: count });
export type PacsSeriesSummary = Infer<typeof PacsSeriesSummary>;

export const PacsOpenRequest = s.object(
  {
    connectionId: id,
    studyUid: uid,
    /** chosen by the caller (unique): pacsProgress events carry it, cancel({jobId}) stops the fetch */
    jobId: id,
  },
  {
    /** one series only */
    seriesUid: uid,
  },
);
export type PacsOpenRequest = Infer<typeof PacsOpenRequest>;

export const PacsSendRequest = s.object(
  {
    /** the open study whose finished prediction is sent (DICOM SEG + PDF report) */
    studyId: id,
  },
  {
    /** default: the connection the study was opened from */
    connectionId: id,
  },
);
export type PacsSendRequest = Infer<typeof PacsSendRequest>;

export const PacsSendResult = s.object({
  studyUid: uid,
  sent: s.array(s.object({ kind: s.literal(['seg', 'pdf']), sopInstanceUid: uid, seriesUid: uid }), { max: 64 }),
  warnings: s.array(text, { max: 1000 }),
  /** where it went */
  pacs: s.string(),
});
export type PacsSendResult = Infer<typeof PacsSendResult>;

// ---------------------------------------------------------------------------------------------
// Cohorts (issue 18; core/cohort/): a folder whose sub-folders are studies

/** The status of a cohort's case (cohort/record.ts), and "running" while "Segment all" runs it. */
export const COHORT_STATUSES = ['done', 'skipped', 'failed', 'pending', 'running'] as const;
export type CohortStatus = (typeof COHORT_STATUSES)[number];

/** One case (a sub-folder that is a study) of a cohort, as the cohort table shows it. */
export const CohortRow = s.object({
  /** the sub-folder's name: the case's folder in the outputs */
  case: s.string({ nonEmpty: true }),
  /** the study's folder (what openStudy takes) */
  path,
  kind: s.string({ max: 64 }),
  /** the study's sequences: from its file names before it is segmented, from the run afterwards */
  sequences: s.array(s.string(), { max: 64 }),
  /** the sequences fed to the model, once segmented */
  sequencesUsed: s.nullable(s.array(s.string(), { max: 64 })),
  /** null: not known before the study is read (DICOM) */
  groundTruth: s.nullable(s.boolean()),
  status: s.literal(COHORT_STATUSES),
  error: s.nullable(text),
  /** predicted ml per region, once segmented */
  volumes: s.nullable(s.record(finite)),
  /** whole-volume Dice per region with ground truth */
  dice: s.nullable(s.record(s.nullable(finite))),
  seconds: s.nullable(s.number({ min: 0 })),
});
export type CohortRow = Infer<typeof CohortRow>;

export const CohortView = s.object({
  cohortId: id,
  name: s.string(),
  folder: path,
  /** where the outputs are written (null until chosen, on the desktop) */
  out: s.nullable(path),
  /** the regions the rows have figures for */
  regions: s.array(s.string({ max: 64 }), { max: 16 }),
  rows: s.array(CohortRow, { max: 100_000 }),
  /** sub-folders left out, and why */
  notes: s.array(text, { max: 100_000 }),
  /** the "Segment all" job running on it */
  jobId: s.nullable(id),
});
export type CohortView = Infer<typeof CohortView>;

export const OpenCohortRequest = s.object({
  /** a folder whose sub-folders are studies */
  path,
});
export type OpenCohortRequest = Infer<typeof OpenCohortRequest>;

export const SegmentCohortRequest = s.object(
  { cohortId: id },
  {
    checkpoint: path,
    device: name64,
    /** segment every case again, also those whose outputs are up to date */
    force: s.boolean(),
    /** Electron: the output folder chosen through chooseExportPath; web: ignored (the export folder) */
    out: path,
  },
);
export type SegmentCohortRequest = Infer<typeof SegmentCohortRequest>;

export const CohortCaseRequest = s.object({ cohortId: id, case: s.string({ max: 256, nonEmpty: true }) });
export type CohortCaseRequest = Infer<typeof CohortCaseRequest>;

export const CohortRequest = s.object({ cohortId: id });
export type CohortRequest = Infer<typeof CohortRequest>;

// ---------------------------------------------------------------------------------------------
// Events

export const SliceResultEvent = s.object({
  type: s.literal(['sliceResult']),
  jobId: id,
  studyId: id,
  index: count,
  /** label values (0, 1, 2, 4) of axial slice `index`, x fastest */
  mask: labelBytes,
  dice: s.nullable(RegionDice),
  ms: s.number({ min: 0 }),
});
export const ProgressEvent = s.object(
  { type: s.literal(['progress']), jobId: id, done: count, total: count },
  { message: text },
);
export const DoneEvent = s.object({
  type: s.literal(['done']),
  jobId: id,
  studyId: id,
  /** whole-volume Dice when ground truth is loaded */
  dice: s.nullable(RegionDice),
  ms: s.number({ min: 0 }),
  device: s.string({ max: 64 }),
});
export const FailedEvent = s.object({ type: s.literal(['failed']), jobId: id, message: text });
export const CancelledEvent = s.object({ type: s.literal(['cancelled']), jobId: id });
export const TrainStartEvent = s.object({
  type: s.literal(['trainStart']),
  jobId: id,
  run: s.string(),
  totalSteps: count,
  stepsPerEpoch: count,
  resumedFrom: count,
  trainable: count,
  frozen: count,
  studies: count,
  slices: count,
});
export const TrainStepEvent = s.object({
  type: s.literal(['trainStep']),
  jobId: id,
  step: count,
  totalSteps: count,
  epoch: count,
  /** the summed structure loss of the three outputs (NaN when training diverged) */
  loss: s.anyNumber(),
  lr: finite,
  imagesPerSecond: s.number({ min: 0 }),
  etaSeconds: s.number({ min: 0 }),
});
export const TrainValidationEvent = s.object({
  type: s.literal(['trainValidation']),
  jobId: id,
  step: count,
  epoch: count,
  /** mean whole-volume Dice over the validation studies, per region */
  dice: s.record(finite),
});
export const TrainDoneEvent = s.object(
  {
    type: s.literal(['trainDone']),
    jobId: id,
    /** the trained model, ready to select for segmentation */
    model: ModelInfo,
    steps: count,
    ms: s.number({ min: 0 }),
  },
  {
    /** with TrainRequest.heldOut: whole-volume Dice of the held-out studies before and after the run */
    heldOut: HeldOutComparison,
  },
);
export const MENU_ACTIONS = ['open', 'export', 'segment', 'train', 'toggleOverlay', 'settings'] as const;
export type MenuAction = (typeof MENU_ACTIONS)[number];
/** The desktop application menu (and its shortcuts) asking the renderer to act. */
export const MenuEvent = s.object({ type: s.literal(['menu']), action: s.literal(MENU_ACTIONS) });
/** A PACS fetch (pacsOpen) going on: instances and bytes so far. */
/** A case of a cohort changed (started, done, failed) while "Segment all" runs. */
export const CohortCaseEvent = s.object({ type: s.literal(['cohortCase']), cohortId: id, jobId: id, row: CohortRow });
/** "Segment all" ended (a cancelled one ends with a `cancelled` event, a broken one with `failed`). */
export const CohortDoneEvent = s.object({ type: s.literal(['cohortDone']), cohortId: id, jobId: id, counts: s.object({ done: count, skipped: count, failed: count, pending: count }) });
export const PacsProgressEvent = s.object({ type: s.literal(['pacsProgress']), jobId: id, instances: count, totalInstances: count, bytes: count, cachedInstances: count });

export type SliceResultEvent = Infer<typeof SliceResultEvent>;
export type ProgressEvent = Infer<typeof ProgressEvent>;
export type DoneEvent = Infer<typeof DoneEvent>;
export type FailedEvent = Infer<typeof FailedEvent>;
export type CancelledEvent = Infer<typeof CancelledEvent>;
export type TrainStartEvent = Infer<typeof TrainStartEvent>;
export type TrainStepEvent = Infer<typeof TrainStepEvent>;
export type TrainValidationEvent = Infer<typeof TrainValidationEvent>;
export type TrainDoneEvent = Infer<typeof TrainDoneEvent>;
export type MenuEvent = Infer<typeof MenuEvent>;
export type PacsProgressEvent = Infer<typeof PacsProgressEvent>;
export type CohortCaseEvent = Infer<typeof CohortCaseEvent>;
export type CohortDoneEvent = Infer<typeof CohortDoneEvent>;

export const ApiEvent = s.union('type', {
  sliceResult: SliceResultEvent,
  progress: ProgressEvent,
  done: DoneEvent,
  failed: FailedEvent,
  cancelled: CancelledEvent,
  trainStart: TrainStartEvent,
  trainStep: TrainStepEvent,
  trainValidation: TrainValidationEvent,
  trainDone: TrainDoneEvent,
  menu: MenuEvent,
  pacsProgress: PacsProgressEvent,
  cohortCase: CohortCaseEvent,
  cohortDone: CohortDoneEvent,
});
export type ApiEvent = Infer<typeof ApiEvent>;

// ---------------------------------------------------------------------------------------------
// The services: one row per method, its request and its reply. Every method takes exactly one
// request object (possibly empty) so that the wire format is uniform.

const method = <Q, R>(request: Schema<Q>, reply: Schema<R>) => ({ request, reply });

export const API = {
  capabilities: method(Empty, Capabilities),
  openStudy: method(OpenStudyRequest, OpenStudyResult),
  /** forgets an open study and its results (a running segmentation of it is cancelled) */
  closeStudy: method(StudyRequest, s.object({ closed: s.boolean() })),
  /** changes which DICOM series plays which sequence; the study's prediction is dropped (its inputs changed) */
  setSequenceRoles: method(SetSequenceRolesRequest, StudySummary),
  /** the DICOM elements of the first slice (along the slice normal) of a sequence's series */
  getTags: method(GetTagsRequest, DicomTags),
  getVolume: method(GetVolumeRequest, VolumeData),
  /** the label map, or null when there is none */
  getLabels: method(GetLabelsRequest, s.nullable(LabelData)),
  /** volumes, lesions, RANO diameters, multifocality and laterality of a mask; null when there is none */
  describeTumour: method(GetLabelsRequest, s.nullable(TumourView)),
  listModels: method(Empty, s.array(ModelInfo, { max: 10_000 })),
  segment: method(SegmentRequest, JobStarted),
  cancel: method(CancelRequest, s.object({ cancelled: s.boolean() })),
  /** a running segmentation works outward from this slice from now on; false when the job is no longer running */
  focusSlice: method(FocusSliceRequest, s.object({ focused: s.boolean() })),
  /** Electron: the native open dialog (files or folders); null when the user cancelled */
  chooseStudyPath: method(Empty, PathChoice),
  chooseExportPath: method(ChooseExportPathRequest, PathChoice),
  exportMasks: method(ExportRequest, ExportResult),
  /** Electron: opens a file this app exported with the system's default application (HTML in the browser, PDF in the viewer) */
  openExport: method(OpenExportRequest, s.object({ opened: s.boolean() })),
  getThumbnail: method(ThumbnailRequest, Thumbnail),
  /** Electron: the native open dialog for a checkpoint file; null when the user cancelled */
  chooseModelPath: method(Empty, PathChoice),
  /** checks the checkpoint and adds it to the models list (remembered) */
  addModel: method(AddModelRequest, ModelInfo),
  /** fine-tunes a model on labelled studies in a worker; trainStart/trainStep/trainValidation/trainDone events follow */
  train: method(TrainRequest, JobStarted),
  /** earlier training runs (to resume, or to pick their model) */
  listTrainingRuns: method(Empty, s.array(TrainingRun, { max: 10_000 })),
  recentStudies: method(Empty, s.array(RecentStudy, { max: 1000 })),
  /** a folder's entries for the file browser, only where the services may read (web: the server's read roots) */
  listDirectory: method(ListDirectoryRequest, DirectoryListing),
  /** generates the sample study (a seeded phantom with ground truth) into the data folder once, then opens it */
  openSampleStudy: method(Empty, OpenStudyResult),
  getSettings: method(Empty, Settings),
  /** merges the given fields; returns the settings now in force (persisted) */
  updateSettings: method(SettingsUpdate, Settings),
  /** the saved PACS connections (no secrets) */
  pacsConnections: method(Empty, s.array(PacsConnectionInfo, { max: 1000 })),
  /** adds or changes a PACS connection; the secret goes to the keychain (desktop) or the server's owner-only file */
  savePacsConnection: method(SavePacsConnectionRequest, PacsConnectionInfo),
  deletePacsConnection: method(s.object({ id }), s.object({ deleted: s.boolean() })),
  /** checks URL and credentials with a one-study QIDO-RS query; says what failed (DNS, refused, TLS, 401, 404 …) */
  testPacsConnection: method(TestPacsConnectionRequest, PacsTestResult),
  /** QIDO-RS study search, one page */
  pacsSearch: method(PacsSearchRequest, PacsSearchResult),
  pacsSeries: method(PacsSeriesRequest, s.array(PacsSeriesSummary, { max: 100_000 })),
  /** fetches a study (or a series) into the cache with pacsProgress events, then opens it like a folder; cancel({jobId}) stops it */
  pacsOpen: method(PacsOpenRequest, OpenStudyResult),
  /** stores the DICOM SEG and the PDF report of the study's finished prediction in its PACS study (STOW-RS) */
  pacsSend: method(PacsSendRequest, PacsSendResult),
  /** a folder whose sub-folders are studies, as a cohort: its cases and what their outputs hold already */
  openCohort: method(OpenCohortRequest, CohortView),
  /** the cohort as its outputs are now */
  getCohort: method(CohortRequest, CohortView),
  /** segments every case not up to date, one after the other, in the background: progress, cohortCase and cohortDone events follow; cancel({jobId}) stops it */
  segmentCohort: method(SegmentCohortRequest, JobStarted),
  /** opens a case's study, with the cohort's prediction when it was segmented */
  openCohortCase: method(CohortCaseRequest, OpenStudyResult),
  /** writes the cohort summary (cohort.html, .pdf, .csv, .json) into the cohort's output folder */
  exportCohort: method(CohortRequest, ExportResult),
  /** what a mask file is and how its segments would map to labels, before loading it */
  inspectMask: method(InspectMaskRequest, MaskInspection),
  /** loads a NIfTI label map or DICOM SEG onto the study, as its editable prediction or as ground truth */
  loadMask: method(LoadMaskRequest, LoadedMask),
  /** applies the renderer's edits of the prediction layer (an empty layer is made when there is none) */
  editLabels: method(EditLabelsRequest, EditLabelsResult),
  /** writes the prediction layer as <case>_seg.nii.gz with the study's images into the reviewed-studies folder */
  saveReviewed: method(SaveReviewedRequest, SaveReviewedResult),
  /** the studies saved as reviewed (the fine-tuning set) */
  listReviewed: method(Empty, s.array(ReviewedStudy, { max: 100_000 })),
};

export type ApiMethod = keyof typeof API;
export type ApiRequest<M extends ApiMethod> = Infer<(typeof API)[M]['request']>;
export type ApiReply<M extends ApiMethod> = Infer<(typeof API)[M]['reply']>;
export type WorkstationApi = { [M in ApiMethod]: (request: ApiRequest<M>) => Promise<ApiReply<M>> };

export const API_METHODS = Object.keys(API) as ApiMethod[];

export function isApiMethod(name: unknown): name is ApiMethod {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(API, name);
}

/** What the renderer holds: the services plus the event stream (the Electron preload and the web client both give this). */
export interface ClientApi extends WorkstationApi {
  onEvent(listener: (event: ApiEvent) => void): () => void;
  /** Electron only: opens a file or folder the user dropped on the window (browser mode has no paths for dropped files) */
  openDropped?(file: File): Promise<OpenStudyResult>;
}

/** Returns null when `request` is a valid request for `method`, else the reason it is not. */
export function validateRequest(name: unknown, request: unknown): string | null {
  if (!isApiMethod(name)) return `unknown method ${JSON.stringify(String(name)).slice(0, 80)}`;
  return API[name].request(request, name);
}

/** Returns null when `reply` is a valid reply of `method`, else the reason it is not. */
export function validateReply(name: ApiMethod, reply: unknown): string | null {
  return API[name].reply(reply, `${name} reply`);
}

/** The request check of each method (tests and fuzzers iterate them). */
export const requestValidators = Object.fromEntries(API_METHODS.map((m) => [m, API[m].request])) as { [M in ApiMethod]: (typeof API)[M]['request'] };
/** The reply check of each method. */
export const replyValidators = Object.fromEntries(API_METHODS.map((m) => [m, API[m].reply])) as { [M in ApiMethod]: (typeof API)[M]['reply'] };
export const eventValidator = ApiEvent;
