/**
 * The jobs that run inside the job worker (job-host.ts starts it), and the messages between the
 * host and the worker. Studies cross the boundary as plain data (geometry, voxels, metadata);
 * slice masks come back as transferred buffers.
 */
import type { ReadScope } from '../util/fs.ts';
import { scoredDice } from '../conventions.ts';
import { stat } from 'node:fs/promises';
import type { DisplayWindow, RegionDice } from '../api.ts';
import { displayWindow, seedDisplayWindow } from '../io/display-window.ts';
import { type IntensityScaling, knownIntensityScaling, seedIntensityScaling, volumeIntensityScaling } from '../model/preprocess.ts';
import type { SegmentationOutcome } from '../api-ports.ts';
import type { BratsSequence, Study, StudySeries } from '../io/study.ts';
import { Volume, type Geometry, type VolumeInit } from '../io/volume.ts';
import type { RegionResults } from '../metrics/evaluate.ts';
import type { TumourDescription } from '../metrics/describe.ts';
import type { StepEvent, TrainEvents, TrainOptions, TrainResult, ValidationResult } from '../train/trainer.ts';
import type { SerializedError } from '../util/worker.ts';
import type { StoredRunSettings } from '../model/run-settings.ts';
import type { CheckpointModel } from './model.ts';
import type { SegmentOutcome } from './segment.ts';
import type { PostprocessOptions } from '../model/postprocess.ts';

/** A volume as plain data, with what the reader worker computed from its voxels. */
export type VolumeData = VolumeInit & { window?: DisplayWindow; scaling?: IntensityScaling };

export interface StudyData {
  name: string;
  kind: Study['kind'];
  source: string;
  sequences: Record<string, VolumeData>;
  seg?: VolumeData;
  metadata?: Study['metadata'];
  notes?: string[];
  /** a series' volume travels only when it is not the sequence itself (it was resampled) */
  series?: (Omit<StudySeries, 'volume'> & { volume?: VolumeData })[];
}

/** The same values in shared memory: posting it to another thread then costs nothing. */
function shared<T extends Volume['data']>(data: T): T {
  if (data.buffer instanceof SharedArrayBuffer) return data;
  const Ctor = data.constructor as new (buffer: SharedArrayBuffer) => T;
  const copy = new Ctor(new SharedArrayBuffer(data.byteLength));
  copy.set(data as never);
  return copy;
}

function volumeData(volume: Volume, opts: { toShared: boolean; summarise: boolean }): VolumeData {
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

function toVolume({ window, scaling, ...init }: VolumeData): Volume {
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
  };
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
export type SegmentJobEvent =
  | { kind: 'slice'; index: number; mask: Uint8Array; dice: RegionDice | null; ms: number }
  | { kind: 'progress'; message: string };

export type TrainJobEvent =
  | { kind: 'start'; info: Parameters<NonNullable<TrainEvents['start']>>[0] }
  | { kind: 'step'; step: StepEvent }
  | { kind: 'validation'; result: ValidationResult }
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
}

export interface OpenedStudies {
  studies: StudyData[];
  notes: string[];
}

export interface JobKinds {
  open: { payload: { path: string }; event: never; result: OpenedStudies };
  roles: { payload: RolesJobPayload; event: never; result: StudyData };
  describe: { payload: DescribeJobPayload; event: never; result: TumourDescription };
  segment: { payload: SegmentJobPayload; event: SegmentJobEvent; result: SegmentationOutcome; control: SegmentControl };
  inspect: { payload: { path: string }; event: never; result: CheckpointSummary };
  prepare: { payload: ModelChoice; event: never; result: { loadMs: number; cached: boolean } };
  train: { payload: TrainOptions; event: TrainJobEvent; result: TrainResult };
}
export type JobKind = keyof JobKinds;

export type HostMessage =
  | { type: 'start'; id: number; kind: JobKind; payload: unknown; readScope?: ReadScope }
  | { type: 'cancel'; id: number }
  | { type: 'control'; id: number; message: unknown }
  | { type: 'dispose' };
export type WorkerMessage =
  | { type: 'event'; id: number; event: unknown }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; error: SerializedError };

export type Post<E> = (event: E, transfer?: ArrayBuffer[]) => void;

/** The job's per-region metrics as the API's Dice; a binary model's one region counts as WT. */
export function diceOf(regions: RegionResults | Record<string, { dice: number }> | null): RegionDice | null {
  if (!regions) return null;
  const byName = regions as Record<string, { dice: number } | undefined>;
  const pick = (name: string) => byName[name]?.dice ?? null;
  return { WT: pick('WT') ?? pick('foreground'), TC: pick('TC'), ET: pick('ET') };
}

/** One slice's Dice for the app's chart: null for a region absent from both masks (conventions.ts). */
export function sliceDiceOf(regions: RegionResults | null): RegionDice | null {
  if (!regions) return null;
  const pick = (name: string) => scoredDice(regions[name]);
  return { WT: regions.WT ? pick('WT') : pick('foreground'), TC: pick('TC'), ET: pick('ET') };
}

// Models stay loaded between jobs: loading costs seconds, and a cancelled job's last batch may
// still be running in the session's worker, which must not be torn down under it (dispose waits
// for it). The least recently used go when more than this many are loaded: a large model holds
// gigabytes.
const MAX_LOADED_MODELS = 2;
const loadedModels = new Map<string, Promise<CheckpointModel>>();
/** jobs using each model now: those are never evicted */
const modelUsers = new Map<string, number>();

function keepLoaded(key: string, model: Promise<CheckpointModel>): void {
  loadedModels.delete(key);
  loadedModels.set(key, model);
  for (const [candidate, evicted] of loadedModels) {
    if (loadedModels.size <= MAX_LOADED_MODELS) break;
    if (candidate === key || (modelUsers.get(candidate) ?? 0) > 0) continue;
    loadedModels.delete(candidate);
    void evicted.then((m) => m.dispose(), () => undefined);
  }
}

/** The slices post-processing changed, with their masks and Dice as they are now. */
function revisedSlices(outcome: SegmentOutcome): NonNullable<SegmentationOutcome['revisedSlices']> {
  const [nx, ny] = outcome.labels.dims;
  const plane = nx * ny;
  const labels = outcome.labels.data as Uint8Array;
  const metrics = new Map(outcome.summary.perSlice.map((e) => [e.slice, e.metrics]));
  return outcome.summary.postprocessing.changedSlices.map((index) => ({
    index,
    mask: labels.slice(index * plane, (index + 1) * plane),
    dice: sliceDiceOf(metrics.get(index) ?? null),
  }));
}

/** Where a job's control messages arrive: the job sets the handler, messages before that wait. */
export class ControlInbox {
  #handler?: (message: unknown) => void;
  #waiting: unknown[] = [];

  deliver(message: unknown): void {
    if (this.#handler) this.#handler(message);
    else this.#waiting.push(message);
  }

  listen(handler: (message: unknown) => void): void {
    this.#handler = handler;
    for (const m of this.#waiting.splice(0)) handler(m);
  }
}

export interface ModelChoice {
  /** a SAM2-UNet checkpoint; default the bundled model */
  checkpoint?: string;
  device?: string;
  precision?: string;
}

/**
 * The loaded model for a choice (loading it once; jobs asking meanwhile share the load), counted
 * as in use until the caller calls `release`.
 */
async function acquireModel(choice: ModelChoice, progress: (message: string) => void): Promise<{ key: string; loading: Promise<CheckpointModel>; checkpoint: string }> {
  const [{ sliceModelFromCheckpoint }, { bundledModel }, { parseDevice }, { parsePrecision }] = await Promise.all([
    import('./model.ts'),
    import('./bundled.ts'),
    import('../onnx/session.ts'),
    import('../onnx/quantize.ts'),
  ]);
  const precision = parsePrecision(choice.precision, 'precision');
  // the bundled model's config.json applies however it is named (sliceModelFromCheckpoint looks)
  const checkpoint = choice.checkpoint ?? (await bundledModel()).checkpoint;
  const device = parseDevice(choice.device);
  // a checkpoint rewritten in place (a training run finishing again) is loaded afresh
  const modified = await stat(checkpoint).then((s) => s.mtimeMs, () => 0);
  const key = `${checkpoint}\0${modified}\0${device}\0${precision}`;
  let loading = loadedModels.get(key);
  if (!loading) {
    progress(`loading the model ${checkpoint}${precision === 'float32' ? '' : ` (${precision})`}`);
    loading = sliceModelFromCheckpoint(checkpoint, { device, precision, onMessage: progress });
    loading.catch(() => loadedModels.delete(key));
  }
  keepLoaded(key, loading);
  modelUsers.set(key, (modelUsers.get(key) ?? 0) + 1);
  return { key, loading, checkpoint };
}

/**
 * Loads a model before anyone asks for a segmentation (the service does this when a study is
 * opened) and runs it once on zeros: ONNX Runtime's first run allocates its buffers, and the user
 * waits for neither when they press Segment.
 */
export async function runPrepareJob(choice: ModelChoice, _post: Post<never>, signal: AbortSignal): Promise<{ loadMs: number; cached: boolean }> {
  const { key, loading } = await acquireModel(choice, () => undefined);
  try {
    const model = await loading;
    if (!signal.aborted) {
      const [h, w] = model.inputSize;
      await model.run(new Float32Array(3 * h * w), 1);
    }
    return { loadMs: model.loadMs, cached: model.cached };
  } finally {
    modelUsers.set(key, modelUsers.get(key)! - 1);
  }
}

export async function runSegmentJob(payload: SegmentJobPayload, post: Post<SegmentJobEvent>, signal: AbortSignal, inbox = new ControlInbox()): Promise<SegmentationOutcome> {
  const [{ segmentStudy, SliceFocus }, { modelName }, { presetName }, runSettings] = await Promise.all([
    import('./segment.ts'),
    import('./bundled.ts'),
    import('../model/config.ts'),
    import('../model/run-settings.ts'),
  ]);
  const focus = payload.focus === undefined ? undefined : new SliceFocus(payload.focus);
  inbox.listen((message) => {
    const m = message as Partial<SegmentControl>;
    // the service validated it; a stray message never stops the job
    if (focus && m?.kind === 'focus' && Number.isInteger(m.index) && m.index! >= 0) focus.index = m.index!;
  });
  const progress = (message: string) => post({ kind: 'progress', message });
  const { key, loading, checkpoint } = await acquireModel(payload, progress);
  const source = { checkpoint };
  try {
    const model = await loading;
    progress(`model ready on ${model.provider} (loaded in ${(model.loadMs / 1000).toFixed(1)} s${model.cached ? ' from the cache' : ''})`);
    const study = studyFromData(payload.study);
    const sequences = Object.keys(study.sequences);
    const mapping = runSettings.mapChannels(study.name, sequences, model.settings.channels, payload.channels);
    const channels = runSettings.requireChannels(study.name, sequences, mapping, 'Choose a sequence to feed instead of each missing one in the run panel; the substitution is written into the report.');
    const [sizeWords, , regionWords] = runSettings.describeRunSettings(model.settings);
    progress(`${sizeWords}; ${regionWords}; channels ${runSettings.describeMapping(mapping)}`);
    const outcome = await segmentStudy(study, model, { signal, channels, regions: model.settings.regions, postprocess: payload.postprocess, ...(focus ? { focus } : {}) }, {
      slice: (result) => post({ kind: 'slice', index: result.index, mask: result.mask, dice: sliceDiceOf(result.regions), ms: result.ms }, [result.mask.buffer as ArrayBuffer]),
    });
    return {
      device: model.provider,
      dice: diceOf(outcome.summary.metrics),
      run: {
        model: modelName(source.checkpoint, model.bundled),
        checkpoint: source.checkpoint,
        preset: presetName(model.config) ?? `custom (embed_dim ${model.config.embed_dim})`,
        device: model.provider,
        inputSize: model.inputSize[0],
        regions: outcome.summary.regions,
        channels: runSettings.describeMapping(mapping),
        notes: runSettings.runNotes(model.settings, mapping),
        loadMs: model.loadMs,
        ms: outcome.summary.ms,
        postprocessing: outcome.summary.postprocessing,
        precision: model.precision,
      },
      revisedSlices: revisedSlices(outcome),
    };
  } finally {
    modelUsers.set(key, modelUsers.get(key)! - 1);
  }
}

export async function runTrainJob(options: TrainOptions, post: Post<TrainJobEvent>, signal: AbortSignal): Promise<TrainResult> {
  const { train } = await import('../train/trainer.ts');
  return train(
    options,
    {
      start: (info) => post({ kind: 'start', info }),
      step: (step) => post({ kind: 'step', step }),
      validation: (result) => post({ kind: 'validation', result }),
      checkpoint: (path, step) => post({ kind: 'checkpoint', path, step }),
      message: (text) => post({ kind: 'message', text }),
    },
    signal,
  );
}

/** Reads a study in the worker: decoding (gzip, JPEG…) and parsing never block the UI's thread. */
export async function runOpenJob({ path }: { path: string }): Promise<OpenedStudies> {
  const { openPath } = await import('../io/open.ts');
  const opened = await openPath(path);
  return { studies: opened.studies.map((study) => studyToData(study, { toShared: true, summarise: true })), notes: opened.notes };
}

export interface RolesJobPayload {
  study: StudyData;
  roles: Record<string, BratsSequence>;
}

/** Gives a DICOM study's series other roles in the worker: resampling onto a new grid never blocks the UI's thread. */
export async function runRolesJob({ study, roles }: RolesJobPayload): Promise<StudyData> {
  const { reassignRoles } = await import('../io/dicom-study.ts');
  return studyToData(reassignRoles(studyFromData(study), roles), { toShared: true, summarise: true });
}

export interface DescribeJobPayload {
  labels: Uint8Array;
  geometry: Geometry;
  /** the study's greyscale images (the mid-sagittal fit); shared memory when the reader worker opened them */
  images: VolumeData[];
}

/** A tumour description in the worker: the symmetry fit over the images takes seconds on a full volume. */
export async function runDescribeJob({ labels, geometry, images }: DescribeJobPayload): Promise<TumourDescription> {
  const [{ describeTumour }, { detectRegionKind, labelsPresent }] = await Promise.all([import('../metrics/describe.ts'), import('../metrics/regions.ts')]);
  const volumes = images.map(toVolume);
  return describeTumour(labels, geometry, detectRegionKind(labelsPresent(labels)), { images: volumes.map((v) => ({ data: v.isScaled ? v.toFloat32() : v.data })) });
}

/** The volume fields a describe job needs, without copying voxels held in shared memory. */
export function describeImageData(volume: Volume): VolumeData {
  return volumeData(volume, { toShared: false, summarise: false });
}

export async function inspectCheckpoint({ path }: { path: string }): Promise<CheckpointSummary> {
  const [{ readCheckpoint }, { presetName }] = await Promise.all([import('../model/checkpoint.ts'), import('../model/config.ts')]);
  const checkpoint = await readCheckpoint(path);
  return { kind: checkpoint.kind, outChannels: checkpoint.outChannels, embedDim: checkpoint.config.embed_dim, preset: presetName(checkpoint.config) ?? null, run: checkpoint.run };
}

/** How many models the worker holds now (tests). */
export function loadedModelCount(): number {
  return loadedModels.size;
}

export async function releaseModels(): Promise<void> {
  const models = [...loadedModels.values()];
  loadedModels.clear();
  await Promise.all(models.map((m) => m.then((model) => model.dispose(), () => undefined)));
}
