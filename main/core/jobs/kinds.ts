/**
 * What crosses the job workers' channel (job-host.ts ↔ job-worker.ts): the job kinds with their
 * payloads, events and results, and studies as plain data (geometry, voxels, metadata). A leaf
 * of the jobs layer: the host, the worker, the service's ports and the runners all import it,
 * and it imports none of them.
 */
import type { DisplayWindow, MaskInspection, ModelProvenance, RegionDice, RegionKind, TumourDescription } from '../api.ts';
import type { LoadedMask, MaskTarget } from '../io/masks.ts';
import type { SegmentationFile } from '../io/segmentations.ts';
import type { SaveReviewedInput, SaveReviewedOutcome } from '../review/reviewed.ts';
import { displayWindow, seedDisplayWindow } from '../io/display-window.ts';
import { knownIntensityScaling, seedIntensityScaling, volumeIntensityScaling, type IntensityScaling } from '../model/preprocess.ts';
import type { BratsSequence, Study, StudySeries } from '../io/study.ts';
import { Volume, type Geometry, type VolumeInit } from '../io/volume.ts';
import type { StoredRunSettings, TestTimeAugmentation } from '../model/run-settings.ts';
import type { PacsAuth } from '../pacs/dicomweb.ts';
import type { PacsFetchSummary } from '../pacs/open-study.ts';
import type { RetrieveProgress } from '../pacs/retrieve.ts';
import type { ReadScope } from '../util/fs.ts';
import type { PostprocessOptions, PostprocessRecord } from '../model/postprocess.ts';
import type { StepEvent, TrainEvents, TrainOptions, TrainResult, ValidationResult } from '../train/trainer.ts';

/** A volume as plain data, with what the reader worker computed from its voxels. */
export type VolumeRecord = VolumeInit & { window?: DisplayWindow; scaling?: IntensityScaling };

export interface StudyData {
  name: string;
  kind: Study['kind'];
  source: string;
  sequences: Record<string, VolumeRecord>;
  seg?: VolumeRecord;
  metadata?: Study['metadata'];
  notes?: string[];
  /** a series' volume travels only when it is not the sequence itself (it was resampled) */
  series?: (Omit<StudySeries, 'volume'> & { volume?: VolumeRecord })[];
  segmentations?: Study['segmentations'];
}

/** The same values in shared memory: posting it to another thread then costs nothing. */
function shared<T extends Volume['data']>(data: T): T {
  if (data.buffer instanceof SharedArrayBuffer) return data;
  const Ctor = data.constructor as new (buffer: SharedArrayBuffer) => T;
  const copy = new Ctor(new SharedArrayBuffer(data.byteLength));
  copy.set(data as never);
  return copy;
}

function volumeData(volume: Volume, opts: { toShared: boolean; summarise: boolean }): VolumeRecord {
  const { geometry, slope, intercept, components, meta } = volume;
  let data = volume.data;
  if (opts.toShared) data = shared(data);
  // a view into a bigger buffer (a 4-D NIfTI's frames share one) would otherwise be cloned whole
  else if (!(data.buffer instanceof SharedArrayBuffer) && data.byteLength !== data.buffer.byteLength) data = data.slice();
  // the model's intensity scaling too: a segmentation then starts without reading every voxel again
  const summary = opts.summarise && components === 1 ? { stats: volume.stats(), window: displayWindow(volume), scaling: volumeIntensityScaling(volume) } : {};
  // known from the reader: it travels on with the volume (to a segmentation job)
  const scaling = knownIntensityScaling(volume);
  return { geometry, data, slope, intercept, components, meta, ...(scaling ? { scaling } : {}), ...summary };
}

export function toVolume({ window, scaling, ...init }: VolumeRecord): Volume {
  const volume = new Volume(init);
  if (window) seedDisplayWindow(volume, window);
  if (scaling) seedIntensityScaling(volume, scaling);
  return volume;
}

/**
 * The study as plain data. Volumes the reader worker opened are in shared memory already and
 * cross to a job worker without a copy; `toShared` moves others there (done in the worker that
 * reads them, never on the thread that serves the UI).
 */
export function studyToData(study: Study, opts: { toShared?: boolean; summarise?: boolean } = {}): StudyData {
  const o = { toShared: opts.toShared ?? false, summarise: opts.summarise ?? false };
  return {
    name: study.name,
    kind: study.kind,
    source: study.source,
    sequences: Object.fromEntries(Object.entries(study.sequences).map(([name, volume]) => [name, volumeData(volume, o)])),
    ...(study.seg ? { seg: volumeData(study.seg, { ...o, summarise: false }) } : {}),
    ...(study.metadata ? { metadata: study.metadata } : {}),
    ...(study.notes ? { notes: study.notes } : {}),
    ...(study.series
      ? { series: study.series.map(({ volume, ...s }) => (study.sequences[s.role] === volume ? s : { ...s, volume: volumeData(volume, { ...o, summarise: false }) })) }
      : {}),
    ...(study.segmentations ? { segmentations: study.segmentations } : {}),
  };
}

export function studyFromData(data: StudyData): Study {
  const sequences: Record<string, Volume> = Object.fromEntries(Object.entries(data.sequences).map(([name, init]) => [name, toVolume(init)]));
  return {
    name: data.name,
    kind: data.kind,
    source: data.source,
    sequences,
    ...(data.seg ? { seg: toVolume(data.seg) } : {}),
    ...(data.metadata ? { metadata: data.metadata } : {}),
    ...(data.notes ? { notes: data.notes } : {}),
    ...(data.series ? { series: data.series.map(({ volume, ...s }) => ({ ...s, volume: volume ? toVolume(volume) : sequences[s.role]! })) } : {}),
    ...(data.segmentations ? { segmentations: data.segmentations } : {}),
  };
}

/** What produced a prediction: recorded in reports. */
export interface PredictionRun {
  /** what the model list calls the model ("bundled default model", a file or run name) */
  model: string;
  checkpoint: string;
  preset: string;
  device: string;
  inputSize: number;
  regions: RegionKind;
  /** test-time augmentation the slices ran with (absent: not recorded, e.g. an older cohort record) */
  tta?: TestTimeAugmentation;
  /** model channel ← study sequence, e.g. "flair ← flair, t1ce ← flair (substitute), t2 ← flair (substitute)" */
  channels: string;
  /** substitutions and assumed defaults, for the report (run-settings.ts runNotes) */
  notes: string[];
  loadMs: number;
  ms: number;
  /** the inference graph's arithmetic (float32, int8, float16) */
  precision?: string;
  /** how the slices went through the model: how many were empty (skipped), the batch sizes */
  slices?: { total: number; empty: number; batches: number };
  /** what 3D post-processing did to the prediction (absent: none, e.g. an imported mask) */
  postprocessing?: PostprocessRecord;
}

export interface SegmentationOutcome {
  device: string;
  /** whole-volume Dice when there is ground truth */
  dice: RegionDice | null;
  run: PredictionRun;
  /** the slices 3D post-processing changed, as they are now (the streamed ones were raw) */
  revisedSlices?: { index: number; mask: Uint8Array; dice: RegionDice | null }[];
}

export interface SegmentJobPayload {
  study: StudyData;
  /** a SAM2-UNet checkpoint; default the bundled model */
  checkpoint?: string;
  device?: string;
  /** the study's sequence for each model channel ('' = the model's own; run-settings.ts mapChannels) */
  channels?: string[];
  /** 3D post-processing thresholds; default POSTPROCESS_DEFAULTS */
  postprocess?: PostprocessOptions;
  /** the slice to do first, then outward (absent: index order); moved by SegmentControl messages */
  focus?: number;
  /** the inference graph's arithmetic (default float32) */
  precision?: string;
}
/** Messages to a running segmentation. */
export type SegmentControl = { kind: 'focus'; index: number };
/** A model to have loaded: a checkpoint (default the bundled model), device and arithmetic. */
export interface ModelChoice {
  checkpoint?: string;
  device?: string;
  precision?: string;
}
export type SegmentJobEvent =
  | { kind: 'slice'; index: number; mask: Uint8Array; dice: RegionDice | null; ms: number }
  | { kind: 'progress'; message: string };

export type TrainJobEvent =
  | { kind: 'start'; info: Parameters<NonNullable<TrainEvents['start']>>[0] }
  | { kind: 'step'; step: StepEvent }
  | { kind: 'validation'; result: ValidationResult }
  | { kind: 'heldOut'; phase: 'before' | 'after'; result: ValidationResult }
  | { kind: 'checkpoint'; path: string; step: number }
  | { kind: 'message'; text: string };

/** What a checkpoint file holds, checked by reading it (without building a model). */
export interface CheckpointSummary {
  kind: 'sam2unet' | 'trunk';
  outChannels: number;
  embedDim: number;
  preset: string | null;
  /** how it must be run, as far as the file says (run-settings.ts) */
  run: StoredRunSettings;
  /** a model fine-tuned here: where it came from (its safetensors metadata) */
  provenance?: ModelProvenance;
}

export interface OpenedStudies {
  studies: StudyData[];
  notes: string[];
  /** DICOM SEG files opened without their images (io/open.ts) */
  segmentations: SegmentationFile[];
}

export type MaskJobPayload = { op: 'inspect'; path: string; target: MaskTarget } | { op: 'load'; path: string; target: MaskTarget; segmentLabels?: Record<string, number> };
export type ReviewJobPayload = Omit<SaveReviewedInput, 'sequences'> & { sequences: Record<string, VolumeRecord> };
/** A study (or one series) to fetch from a PACS into the instance cache and open (pacs/open-study.ts). */
export interface PacsOpenJobPayload {
  /** the DICOMweb base URL and the credentials for it */
  baseUrl: string;
  auth: PacsAuth;
  /** the instance cache: the worker keeps one per folder, so its index and pending writes persist between opens */
  cacheDir: string;
  cacheBytes: number;
  studyUid: string;
  seriesUid?: string;
}

export interface PacsOpenedStudies extends OpenedStudies {
  fetched: PacsFetchSummary;
}

export interface JobKinds {
  open: { payload: { path: string }; event: never; result: OpenedStudies };
  pacsOpen: { payload: PacsOpenJobPayload; event: RetrieveProgress; result: PacsOpenedStudies };
  /** resolves when the cache writes a pacsOpen left going on in that folder are done */
  pacsSettle: { payload: { cacheDir: string }; event: never; result: null };
  roles: { payload: RolesJobPayload; event: never; result: StudyData };
  describe: { payload: DescribeJobPayload; event: never; result: TumourDescription };
  segment: { payload: SegmentJobPayload; event: SegmentJobEvent; result: SegmentationOutcome; control: SegmentControl };
  prepare: { payload: ModelChoice; event: never; result: { loadMs: number; cached: boolean } };
  inspect: { payload: { path: string }; event: never; result: CheckpointSummary };
  train: { payload: TrainOptions; event: TrainJobEvent; result: TrainResult };
  mask: { payload: MaskJobPayload; event: never; result: MaskInspection | LoadedMask };
  review: { payload: ReviewJobPayload; event: never; result: SaveReviewedOutcome };
}
export type JobKind = keyof JobKinds;

/** What the host sends with each job: the payload, and the read roots of the caller it runs for. */
export interface JobRequest<K extends JobKind> {
  payload: JobKinds[K]['payload'];
  readScope?: ReadScope;
  /** names the job for the control messages it may be sent while it runs (JobControl) */
  key: number;
}
/** What a running job of kind K can be told (the segmentation: the slice in focus). */
export type JobControl<K extends JobKind> = JobKinds[K] extends { control: infer C } ? C : never;


export interface RolesJobPayload {
  study: StudyData;
  roles: Record<string, BratsSequence>;
}

export interface DescribeJobPayload {
  labels: Uint8Array;
  geometry: Geometry;
  /** the study's greyscale images (the mid-sagittal fit); shared memory when the reader worker opened them */
  images: VolumeRecord[];
}

/** The volume fields a job needs (describe, review), without copying voxels held in shared memory. */
export function describeImageData(volume: Volume): VolumeRecord {
  return volumeData(volume, { toShared: false, summarise: false });
}

export type Post<E> = (event: E, transfer?: ArrayBuffer[]) => void;

