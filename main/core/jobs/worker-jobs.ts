/**
 * The jobs that run inside the job worker (job-worker.ts serves them on its channel): reading
 * studies, changing sequence roles, describing a tumour, inspecting a checkpoint (the io lane),
 * segmentation (the inference lane, models kept loaded by model-cache.ts) and training (a lane of
 * its own per run). What crosses the channel is declared in kinds.ts.
 */
import type { MaskInspection, ModelProvenance, RegionDice, TumourDescription } from '../api.ts';
import type { LoadedMask } from '../io/masks.ts';
import type { SaveReviewedOutcome } from '../review/reviewed.ts';
import { sliceDiceOf } from '../metrics/slice-dice.ts';
import type { RegionResults } from '../metrics/evaluate.ts';
import type { InstanceCache } from '../pacs/cache.ts';
import type { RetrieveProgress } from '../pacs/retrieve.ts';
import type { TrainResult } from '../train/trainer.ts';
import type { TrainOptions } from '../train/trainer.ts';
import {
  studyFromData,
  studyToData,
  toVolume,
  type CheckpointSummary,
  type DescribeJobPayload,
  type MaskJobPayload,
  type ReviewJobPayload,
  type OpenedStudies,
  type PacsOpenJobPayload,
  type PacsOpenedStudies,
  type Post,
  type RolesJobPayload,
  type SegmentJobEvent,
  type SegmentJobPayload,
  type SegmentControl,
  type ModelChoice,
  type SegmentationOutcome,
  type StudyData,
  type TrainJobEvent,
} from './kinds.ts';
import { withLoadedModel } from './model-cache.ts';
import type { SegmentOutcome } from './segment.ts';
import type { CheckpointModel } from './model.ts';

/** The job's per-region metrics as the API's Dice; a binary model's one region counts as WT. */
export function diceOf(regions: RegionResults | Record<string, { dice: number }> | null): RegionDice | null {
  if (!regions) return null;
  const byName = regions as Record<string, { dice: number } | undefined>;
  const pick = (name: string) => byName[name]?.dice ?? null;
  return { WT: pick('WT') ?? pick('foreground'), TC: pick('TC'), ET: pick('ET') };
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
export class ControlInbox<M> {
  #handler?: (message: M) => void;
  #waiting: M[] = [];

  deliver(message: M): void {
    if (this.#handler) this.#handler(message);
    else this.#waiting.push(message);
  }

  listen(handler: (message: M) => void): void {
    this.#handler = handler;
    for (const m of this.#waiting.splice(0)) handler(m);
  }
}

/** Runs `use` with the loaded model of `choice` (model-cache.ts), loading it when it is not. */
async function withModel<T>(choice: ModelChoice, progress: (message: string) => void, use: (model: CheckpointModel) => Promise<T>): Promise<T> {
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
  const load = () => {
    progress(`loading the model ${checkpoint}${precision === 'float32' ? '' : ` (${precision})`}`);
    return sliceModelFromCheckpoint(checkpoint, { device, precision, onMessage: progress });
  };
  return withLoadedModel(checkpoint, device, precision, load, (model) => use(model));
}

export async function runSegmentJob(payload: SegmentJobPayload, post: Post<SegmentJobEvent>, signal: AbortSignal, inbox = new ControlInbox<SegmentControl>()): Promise<SegmentationOutcome> {
  const [{ segmentStudy, SliceFocus }, { predictionRun }, runSettings] = await Promise.all([import('./segment.ts'), import('./prediction-run.ts'), import('../model/run-settings.ts')]);
  const focus = payload.focus === undefined ? undefined : new SliceFocus(payload.focus);
  inbox.listen((message) => {
    // the service validated it; a stray message never stops the job
    if (focus && message?.kind === 'focus' && Number.isInteger(message.index) && message.index >= 0) focus.index = message.index;
  });
  const progress = (message: string) => post({ kind: 'progress', message });
  return withModel(payload, progress, async (model) => {
    progress(`model ready on ${model.provider} (loaded in ${(model.loadMs / 1000).toFixed(1)} s${model.cached ? ' from the cache' : ''})`);
    const study = studyFromData(payload.study);
    const sequences = Object.keys(study.sequences);
    const mapping = runSettings.mapChannels(study.name, sequences, model.settings.channels, payload.channels);
    const channels = runSettings.requireChannels(study.name, sequences, mapping, 'Choose a sequence to feed instead of each missing one in the run panel; the substitution is written into the report.');
    const [sizeWords, , regionWords, ttaWords] = runSettings.describeRunSettings(model.settings);
    progress(`${sizeWords}; ${regionWords}; channels ${runSettings.describeMapping(mapping)}; ${ttaWords}`);
    const outcome = await segmentStudy(study, model, { signal, channels, regions: model.settings.regions, postprocess: payload.postprocess, ...(focus ? { focus } : {}) }, {
      slice: (result) => post({ kind: 'slice', index: result.index, mask: result.mask, dice: sliceDiceOf(result.regions), ms: result.ms }, [result.mask.buffer as ArrayBuffer]),
    });
    return {
      device: model.provider,
      dice: diceOf(outcome.summary.metrics),
      run: predictionRun(model, mapping, outcome.summary),
      revisedSlices: revisedSlices(outcome),
    };
  });
}

/**
 * Loads a model before anyone asks for a segmentation (the service does this when a study is
 * opened) and runs it once on zeros: ONNX Runtime's first run allocates its buffers, and the user
 * waits for neither when they press Segment.
 */
export async function runPrepareJob(choice: ModelChoice, signal: AbortSignal): Promise<{ loadMs: number; cached: boolean }> {
  return withModel(choice, () => undefined, async (model) => {
    if (!signal.aborted) {
      const [h, w] = model.inputSize;
      await model.run(new Float32Array(3 * h * w), 1);
    }
    return { loadMs: model.loadMs, cached: model.cached };
  });
}

export async function runTrainJob(options: TrainOptions, post: Post<TrainJobEvent>, signal: AbortSignal): Promise<TrainResult> {
  const { train } = await import('../train/trainer.ts');
  return train(
    options,
    {
      start: (info) => post({ kind: 'start', info }),
      step: (step) => post({ kind: 'step', step }),
      validation: (result) => post({ kind: 'validation', result }),
      heldOut: (phase, result) => post({ kind: 'heldOut', phase, result }),
      checkpoint: (path, step) => post({ kind: 'checkpoint', path, step }),
      message: (text) => post({ kind: 'message', text }),
    },
    signal,
  );
}

/** Reads a study in the worker: decoding (gzip, JPEG…) and parsing never block the UI's thread. */
export async function runOpenJob({ path }: { path: string }): Promise<OpenedStudies> {
  const { openPath } = await import('../io/open.ts');
  const opened = await openPath(path, { segmentationsOnly: 'return' });
  return { studies: opened.studies.map((study) => studyToData(study, { toShared: true, summarise: true })), notes: opened.notes, segmentations: opened.segmentations };
}

/** The PACS instance caches this worker writes to, by folder (one object per folder: its index, pins and pending writes). */
const pacsCaches = new Map<string, InstanceCache>();

/**
 * Fetches a study from a PACS and opens it in the worker: the transfer, the parsing of each
 * instance as it arrives and the assembly never touch the UI's thread, and the study is assembled
 * from the instances in memory. The cache writes go on here after the reply (settlePacsCaches).
 */
export async function runPacsOpenJob(payload: PacsOpenJobPayload, post: Post<RetrieveProgress>, signal: AbortSignal): Promise<PacsOpenedStudies> {
  const [{ InstanceCache }, { DicomWebClient }, { openPacsStudy }] = await Promise.all([import('../pacs/cache.ts'), import('../pacs/dicomweb.ts'), import('../pacs/open-study.ts')]);
  let cache = pacsCaches.get(payload.cacheDir);
  if (!cache || cache.maxBytes !== payload.cacheBytes) {
    cache = new InstanceCache(payload.cacheDir, payload.cacheBytes);
    pacsCaches.set(payload.cacheDir, cache);
  }
  const client = new DicomWebClient(payload.baseUrl, { auth: payload.auth });
  const opened = await openPacsStudy(client, cache, {
    studyUid: payload.studyUid,
    ...(payload.seriesUid ? { seriesUid: payload.seriesUid } : {}),
    signal,
    onProgress: (progress) => post(progress),
  });
  try {
    return { studies: opened.studies.map((study) => studyToData(study, { toShared: true, summarise: true })), notes: opened.notes, segmentations: opened.segmentations, fetched: opened.fetched };
  } finally {
    // once the reply is on its way
    setImmediate(() => void opened.writeCache());
  }
}

/** Resolves when the PACS cache writes still going on in this worker (in `cacheDir`, or anywhere) are done. */
export async function settlePacsCaches(cacheDir?: string): Promise<null> {
  await Promise.all([...pacsCaches].filter(([dir]) => cacheDir === undefined || dir === cacheDir).map(([, cache]) => cache.settled()));
  return null;
}

/** Gives a DICOM study's series other roles in the worker: resampling onto a new grid never blocks the UI's thread. */
export async function runRolesJob({ study, roles }: RolesJobPayload): Promise<StudyData> {
  const { reassignRoles } = await import('../io/dicom-study.ts');
  return studyToData(reassignRoles(studyFromData(study), roles), { toShared: true, summarise: true });
}

/** A tumour description in the worker: the symmetry fit over the images takes seconds on a full volume. */
export async function runDescribeJob({ labels, geometry, images }: DescribeJobPayload): Promise<TumourDescription> {
  const [{ describeTumour }, { detectRegionKind, labelsPresent }] = await Promise.all([import('../metrics/describe.ts'), import('../metrics/regions.ts')]);
  const volumes = images.map(toVolume);
  return describeTumour(labels, geometry, detectRegionKind(labelsPresent(labels)), { images: volumes.map((v) => ({ data: v.isScaled ? v.toFloat32() : v.data })) });
}

export async function inspectCheckpoint({ path }: { path: string }): Promise<CheckpointSummary> {
  const [{ readCheckpoint }, { presetName }] = await Promise.all([import('../model/checkpoint.ts'), import('../model/config.ts')]);
  const checkpoint = await readCheckpoint(path);
  const provenance = /\.safetensors$/i.test(path) ? await readProvenance(path) : undefined;
  return { kind: checkpoint.kind, outChannels: checkpoint.outChannels, embedDim: checkpoint.config.embed_dim, preset: presetName(checkpoint.config) ?? null, run: checkpoint.run, ...(provenance ? { provenance } : {}) };
}

async function readProvenance(path: string): Promise<ModelProvenance | undefined> {
  const [{ readSafetensorsHeader }, { provenanceFromMetadata }] = await Promise.all([import('../model/safetensors.ts'), import('../train/provenance.ts')]);
  return provenanceFromMetadata((await readSafetensorsHeader(path)).metadata);
}

/** Inspects or loads a mask file in the io worker: reading, decoding and resampling never block the UI's thread. */
export async function runMaskJob(payload: MaskJobPayload): Promise<MaskInspection | LoadedMask> {
  const { inspectMask, loadMask } = await import('../io/masks.ts');
  if (payload.op === 'inspect') return inspectMask(payload.path, payload.target);
  return loadMask(payload.path, payload.target, payload.segmentLabels);
}

/** Writes a reviewed case (several compressed NIfTI files) in the io worker. */
export async function runReviewJob(payload: ReviewJobPayload): Promise<SaveReviewedOutcome> {
  const { saveReviewedCase } = await import('../review/reviewed.ts');
  const sequences = Object.fromEntries(Object.entries(payload.sequences).map(([name, data]) => [name, toVolume(data)]));
  return saveReviewedCase({ ...payload, sequences });
}
