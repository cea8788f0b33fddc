/**
 * The jobs that run inside the job worker (job-worker.ts serves them on its channel): reading
 * studies, changing sequence roles, describing a tumour, inspecting a checkpoint (the io lane),
 * segmentation (the inference lane, models kept loaded by model-cache.ts) and training (a lane of
 * its own per run). What crosses the channel is declared in kinds.ts.
 */
import type { RegionDice, TumourDescription } from '../api.ts';
import { scoredDice } from '../conventions.ts';
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
  type OpenedStudies,
  type PacsOpenJobPayload,
  type PacsOpenedStudies,
  type Post,
  type RolesJobPayload,
  type SegmentJobEvent,
  type SegmentJobPayload,
  type SegmentationOutcome,
  type StudyData,
  type TrainJobEvent,
} from './kinds.ts';
import { withLoadedModel } from './model-cache.ts';
import type { SegmentOutcome } from './segment.ts';

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

export async function runSegmentJob(payload: SegmentJobPayload, post: Post<SegmentJobEvent>, signal: AbortSignal): Promise<SegmentationOutcome> {
  const [{ segmentStudy }, { predictionRun }, { sliceModelFromCheckpoint }, { bundledModel }, { parseDevice }, runSettings] = await Promise.all([
    import('./segment.ts'),
    import('./prediction-run.ts'),
    import('./model.ts'),
    import('./bundled.ts'),
    import('../onnx/session.ts'),
    import('../model/run-settings.ts'),
  ]);
  const progress = (message: string) => post({ kind: 'progress', message });
  // the bundled model's config.json applies however it is named (sliceModelFromCheckpoint looks)
  const source = payload.checkpoint ? { checkpoint: payload.checkpoint } : await bundledModel();
  const device = parseDevice(payload.device);
  const load = () => {
    progress(`loading the model ${source.checkpoint}`);
    return sliceModelFromCheckpoint(source.checkpoint, { device, onMessage: progress });
  };
  return withLoadedModel(source.checkpoint, device, load, async (model) => {
    progress(`model ready on ${model.provider} (loaded in ${(model.loadMs / 1000).toFixed(1)} s${model.cached ? ' from the cache' : ''})`);
    const study = studyFromData(payload.study);
    const sequences = Object.keys(study.sequences);
    const mapping = runSettings.mapChannels(study.name, sequences, model.settings.channels, payload.channels);
    const channels = runSettings.requireChannels(study.name, sequences, mapping, 'Choose a sequence to feed instead of each missing one in the run panel; the substitution is written into the report.');
    const [sizeWords, , regionWords] = runSettings.describeRunSettings(model.settings);
    progress(`${sizeWords}; ${regionWords}; channels ${runSettings.describeMapping(mapping)}`);
    const outcome = await segmentStudy(study, model, { signal, channels, regions: model.settings.regions, postprocess: payload.postprocess }, {
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
    return { studies: opened.studies.map((study) => studyToData(study, { toShared: true, summarise: true })), notes: opened.notes, fetched: opened.fetched };
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
  return { kind: checkpoint.kind, outChannels: checkpoint.outChannels, embedDim: checkpoint.config.embed_dim, preset: presetName(checkpoint.config) ?? null, run: checkpoint.run };
}
